"""Files the run writes and `report` reads, against a hostile or full file system (issue 21, items 7, 8, 9, 14 and
17): no planted symbolic link is followed, no second writer, nothing left behind when the disk is full, no read
that blocks, and results.json written in linear time. The runs themselves are in
tests/integration/test_output_hostile.py."""

from __future__ import annotations

import copy
import json
import os
import subprocess
import sys
from pathlib import Path
from types import SimpleNamespace
from typing import Any, Dict, Iterator, List

import pytest

from reporter import files, results
from reporter.cli import main
from reporter.commands.run import SavePolicy, _Saver

REPO = Path(__file__).resolve().parents[2]
FIXTURE = REPO / "tests" / "fixtures" / "legs" / "clean_pg15" / "results.json"
CLI = [sys.executable, "-c", "import sys; from reporter.cli import main; sys.exit(main())"]


def fixture_doc() -> Dict[str, Any]:
    return json.loads(FIXTURE.read_text())


def leftovers(directory: Path) -> List[str]:
    return sorted(p.name for p in directory.iterdir() if p.name.endswith(".tmp"))


# ---- item 7: a symbolic link planted where the run writes ---------------------------------------------------


def test_a_planted_link_at_the_temporary_name_is_not_followed(tmp_path: Path) -> None:
    victim = tmp_path / "victim"
    victim.write_text("precious\n")
    out = tmp_path / "out"
    out.mkdir()
    (out / "results.json.tmp").symlink_to(victim)  # the name the run used to write through
    results.dump(fixture_doc(), out / "results.json")
    assert victim.read_text() == "precious\n"
    assert (out / "results.json").is_file() and not (out / "results.json").is_symlink()
    assert results.load(out)["workloads"] == fixture_doc()["workloads"]
    assert (out / "results.json.tmp").is_symlink()  # left alone, not written through
    assert leftovers(out) == ["results.json.tmp"]


def test_a_planted_link_at_the_target_is_replaced_not_followed(tmp_path: Path) -> None:
    victim = tmp_path / "victim"
    victim.write_text("precious\n")
    out = tmp_path / "out"
    out.mkdir()
    (out / "results.json").symlink_to(victim)
    results.dump(fixture_doc(), out / "results.json")
    assert victim.read_text() == "precious\n"
    assert not (out / "results.json").is_symlink()


def test_written_files_are_readable_like_any_other(tmp_path: Path) -> None:
    files.write_atomic(tmp_path / "f", b"x")
    mask = os.umask(0)
    os.umask(mask)
    assert (tmp_path / "f").stat().st_mode & 0o777 == 0o666 & ~mask


# ---- item 8: one writer per output directory --------------------------------------------------------------


def test_a_second_run_into_a_locked_output_fails_at_once(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "out"
    out.mkdir()
    (out / "results.json").write_text("the other run's\n")
    config = tmp_path / "memcheck.yml"
    config.write_text("workloads:\n  - {name: a, sql: SELECT 1}\n")
    with files.DirectoryLock(out):  # what the first run holds
        status = main(["run", "--config", str(config), "--pg-config", "/nonexistent", "--output", str(out)])
    err = capsys.readouterr().err
    assert status == 2
    assert (f"pg-ext-memcheck: error: --output {out}: in use: another process is writing its results there: wait "
            "for that run to finish, or give this one another --output") in err
    assert (out / "results.json").read_text() == "the other run's\n"  # not removed by the second


def test_the_lock_is_given_back(tmp_path: Path) -> None:
    with files.DirectoryLock(tmp_path):
        pass
    with files.DirectoryLock(tmp_path):
        pass


# ---- item 9: a full disk ------------------------------------------------------------------------------------


@pytest.fixture
def full_disk(tmp_path: Path) -> Iterator[Path]:
    """A real file system with no space left: a small tmpfs, filled."""
    if os.geteuid() != 0:
        pytest.skip("mounting a tmpfs needs root (CI runs the tests as root)")
    mount = tmp_path / "small"
    mount.mkdir()
    subprocess.run(["mount", "-t", "tmpfs", "-o", "size=256k", "tmpfs", str(mount)], check=True)
    try:
        with open(mount / "filler", "wb") as fh:
            try:
                fh.write(b"\0" * (1024 * 1024))
            except OSError:
                pass
        yield mount
    finally:
        subprocess.run(["umount", "-l", str(mount)], check=False)


def test_results_on_a_full_disk_name_it_and_leave_nothing(full_disk: Path) -> None:
    with pytest.raises(results.ResultsError,
                       match=f"^{full_disk / 'results.json'}: cannot write: no space left on the device \\(its file "
                             "system is full\\)$"):
        results.dump(fixture_doc(), full_disk / "results.json")
    assert leftovers(full_disk) == [] and not (full_disk / "results.json").exists()


def test_run_into_a_full_disk_stops_before_starting(full_disk: Path, capsys: pytest.CaptureFixture[str],
                                                    tmp_path: Path) -> None:
    config = tmp_path / "memcheck.yml"
    config.write_text("workloads:\n  - {name: a, sql: SELECT 1}\n")
    status = main(["run", "--config", str(config), "--pg-config", "/nonexistent", "--output", str(full_disk)])
    err = capsys.readouterr().err
    assert status == 2
    assert f"--output {full_disk}: its file system is full (0 bytes free; results.json and server.log need at" in err


# ---- item 14: `report` on what is not a results file --------------------------------------------------------


def report(*args: str) -> subprocess.CompletedProcess:
    # a read that blocked would hang here: the timeout fails the test instead
    return subprocess.run([*CLI, "report", *args], capture_output=True, text=True, timeout=60)


def test_report_on_a_symlink_loop(tmp_path: Path) -> None:
    leg = tmp_path / "leg"
    leg.mkdir()
    (leg / "results.json").symlink_to(leg / "results.json")
    for arg, shown in ((leg, leg / "results.json"), (leg / "results.json", leg / "results.json")):
        proc = report(str(arg))
        assert proc.returncode == 2 and "Traceback" not in proc.stderr and "internal error" not in proc.stderr
        assert f"error: {shown}: a symbolic link loop" in proc.stderr, proc.stderr


def test_report_on_a_fifo_never_blocks(tmp_path: Path) -> None:
    leg = tmp_path / "leg"
    leg.mkdir()
    os.mkfifo(leg / "results.json")
    proc = report(str(leg))
    assert proc.returncode == 2 and "Traceback" not in proc.stderr
    assert f"error: {leg / 'results.json'}: not a regular file: a FIFO (named pipe)" in proc.stderr
    proc = report(str(leg / "results.json"))
    assert proc.returncode == 2
    assert f"error: {leg / 'results.json'}: not a results.json or a directory: a FIFO (named pipe)" in proc.stderr


def test_report_on_a_device(tmp_path: Path) -> None:
    proc = report("/dev/zero")  # would be read for ever
    assert proc.returncode == 2
    assert "error: /dev/zero: not a results.json or a directory: a character device" in proc.stderr


# ---- item 17: results.json written in linear time ------------------------------------------------------------


class _Clock:
    def __call__(self) -> float:
        return 0.0  # a run of quick workloads: the interval never passes


def test_writing_results_is_linear(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    written: List[int] = []
    real = files.write_atomic

    def counting(path: Path, data: bytes) -> None:
        written.append(len(data))
        real(path, data)

    monkeypatch.setattr(files, "write_atomic", counting)
    doc = fixture_doc()
    one = doc["workloads"][0]
    doc["workloads"] = []
    saver = _Saver(SimpleNamespace(suppressions=()), tmp_path / "results.json",  # type: ignore[arg-type]
                   SavePolicy(clock=_Clock()))
    total = 400
    for n in range(total):
        w = copy.deepcopy(one)
        w["name"] = f"w{n}"
        doc["workloads"].append(w)
        saver(doc, final=False)  # what the runner offers after every workload
    saver(doc)  # the end
    final = written[-1]
    assert len(results.load(tmp_path)["workloads"]) == total
    assert sum(written) <= 10 * final, (len(written), sum(written), final)  # quadratic would be ~200x
    assert len(written) < 60
    assert written[:8] == sorted(written[:8]) and len(set(written[:8])) == 8  # the first 8 saved one by one


def test_a_long_run_is_saved_at_least_every_interval() -> None:
    now = [0.0]
    policy = SavePolicy(interval_s=60, clock=lambda: now[0])
    policy.record(800)
    assert not policy.due(801)  # 100 more would be due
    now[0] = 61.0
    assert policy.due(801)
