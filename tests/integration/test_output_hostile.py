"""Real runs against a hostile or full output directory (issue 21, items 7, 8 and 9): a symbolic link planted
where results.json is written is not followed, a second run into the same --output fails at once while the
first keeps its results, and a disk that fills up during the run is named, with nothing left behind (no
temporary file, no data directory, no server)."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any, Dict, Iterator, List

import pytest
import yaml

from reporter import cleanup, results

pytestmark = pytest.mark.integration

CLI = [sys.executable, "-c", "import sys; from reporter.cli import main; sys.exit(main())"]


def write_config(directory: Path, doc: Dict[str, Any]) -> Path:
    directory.mkdir(parents=True, exist_ok=True)
    path = directory / "memcheck.yml"
    path.write_text(yaml.safe_dump(doc, sort_keys=False))
    return path


def run_cmd(config: Path, pg_config: str, output: Path) -> List[str]:
    return [*CLI, "run", "--config", str(config), "--pg-config", pg_config, "--output", str(output)]


@pytest.fixture
def shared_tmp() -> Iterator[Path]:
    """A TMPDIR the unprivileged server user can use, so the test sees what the run leaves behind."""
    base = Path(tempfile.mkdtemp(prefix="pgmc-test-"))
    os.chmod(base, 0o755)
    tmp = base / "tmp"
    tmp.mkdir()
    os.chmod(tmp, 0o1777)
    yield tmp
    cleanup.stop_leftovers(tmp)
    shutil.rmtree(base, ignore_errors=True)


def test_a_planted_link_is_not_followed(installed_pg_config: str, tmp_path: Path) -> None:
    victim = tmp_path / "victim"
    victim.write_text("precious\n")
    out = tmp_path / "out"
    out.mkdir()
    for name in ("results.json.tmp", "server.log.tmp"):
        (out / name).symlink_to(victim)
    doc = {"workloads": [{"name": f"w{i}", "sql": "SELECT 1"} for i in range(3)]}
    proc = subprocess.run(run_cmd(write_config(tmp_path, doc), installed_pg_config, out), capture_output=True,
                          text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr
    assert victim.read_text() == "precious\n"
    assert [w["name"] for w in results.load(out)["workloads"]] == ["w0", "w1", "w2"]
    assert not (out / "server.log").is_symlink() and (out / "server.log").stat().st_size > 0


def test_two_runs_into_one_output(installed_pg_config: str, tmp_path: Path, shared_tmp: Path) -> None:
    out = tmp_path / "out"
    go = shared_tmp.parent / "go"  # the first run's workload waits for this file (the server user can see it)
    waits = {"workloads": [{"name": "waits", "sql": f"COPY (SELECT 1) TO PROGRAM 'while [ ! -e {go} ]; do sleep "
                                                    f"0.1; done; cat > /dev/null'"}]}
    first = subprocess.Popen(run_cmd(write_config(tmp_path / "a", waits), installed_pg_config, out),
                             stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        assert first.stderr is not None
        seen = []
        for line in first.stderr:  # it holds the directory from its start; wait until it really runs
            seen.append(line)
            if "[1/1] waits" in line:
                break
        second = subprocess.run(
            run_cmd(write_config(tmp_path / "b", {"workloads": [{"name": "other", "sql": "SELECT 1"}]}),
                    installed_pg_config, out), capture_output=True, text=True, timeout=300)
        go.touch()
        rest = first.communicate(timeout=300)[1]
    finally:
        go.touch()
        if first.poll() is None:
            first.kill()
    assert second.returncode == 2, second.stderr
    assert (f"pg-ext-memcheck: error: --output {out}: in use: another process is writing its results there: wait "
            "for that run to finish, or give this one another --output") in second.stderr
    assert first.returncode == 0, "".join(seen) + rest
    found = results.load(out)  # the first run's, whole
    assert [(w["name"], w["status"]) for w in found["workloads"]] == [("waits", "passed")]


def test_a_disk_that_fills_up_during_the_run(installed_pg_config: str, tmp_path: Path, shared_tmp: Path) -> None:
    if os.geteuid() != 0:
        pytest.skip("mounting a tmpfs needs root (CI runs the tests as root)")
    reachable = Path(tempfile.mkdtemp(prefix="pgmc-test-out-"))  # the server user must reach the output
    os.chmod(reachable, 0o755)
    out = reachable / "out"
    out.mkdir()
    subprocess.run(["mount", "-t", "tmpfs", "-o", "size=2m,mode=1777", "tmpfs", str(out)], check=True)
    try:
        doc = {"workloads": [
            {"name": "first", "sql": "SELECT 1"},
            # the server user fills the output's file system (cat stops at ENOSPC; the COPY fails with it)
            {"name": "filler", "sql": f"COPY (SELECT repeat('x', 4000000)) TO PROGRAM 'cat > {out}/filler'"},
            {"name": "never", "sql": "SELECT 1"},
        ]}
        proc = subprocess.run(run_cmd(write_config(tmp_path, doc), installed_pg_config, out), capture_output=True,
                              text=True, timeout=300, env={**os.environ, "TMPDIR": str(shared_tmp)})
        assert proc.returncode == 2, proc.stderr
        assert "Traceback" not in proc.stderr and "internal error" not in proc.stderr
        assert (f"pg-ext-memcheck: error: {out / 'results.json'}: cannot write: no space left on the device (its "
                "file system is full)") in proc.stderr
        assert str(shared_tmp) not in proc.stderr.splitlines()[-1]  # the output is named, not the temporary dir
        left = sorted(p.name for p in out.iterdir())
        assert [n for n in left if n.endswith(".tmp")] == [], left  # no partial results.json or server.log
        assert list(shared_tmp.iterdir()) == []  # the cluster's directories are gone, so is its server
        assert cleanup.data_dirs(shared_tmp) == []
        # what was saved before the disk filled is this run's, and says it is incomplete
        saved = results.load(out)
        assert saved["complete"] is False and [w["name"] for w in saved["workloads"]] == ["first"]
    finally:
        subprocess.run(["umount", "-l", str(out)], check=False)
        shutil.rmtree(reachable, ignore_errors=True)
