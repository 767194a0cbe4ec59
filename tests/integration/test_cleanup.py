"""`pg-ext-memcheck cleanup`: stops the servers a killed run left in its TMPDIR, and never signals anything else
(issue 11, item 3: a postmaster.pid from an untrusted artifact made the old shell cleanup SIGINT another process)."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Iterator

import pytest

from reporter import cleanup
from reporter.cluster import Cluster, ClusterError

pytestmark = pytest.mark.integration

CLI = [sys.executable, "-c", "import sys; from reporter.cli import main; sys.exit(main())"]


@pytest.fixture
def root() -> Iterator[Path]:
    """A run's TMPDIR, reachable by the unprivileged server user."""
    base = Path(tempfile.mkdtemp(prefix="pgmc-cleanup-test-"))
    os.chmod(base, 0o755)
    tmp = base / "tmp"
    tmp.mkdir()
    os.chmod(tmp, 0o1777)
    yield tmp
    shutil.rmtree(base, ignore_errors=True)


@pytest.fixture
def bystander() -> Iterator[subprocess.Popen]:
    """An unrelated process whose PID a forged postmaster.pid will name."""
    proc = subprocess.Popen(["sleep", "300"])
    yield proc
    proc.kill()
    proc.wait()


def left_behind(pg_config: str, base: Path) -> Cluster:
    """A started cluster nobody will stop: what a killed `run` leaves."""
    cluster = Cluster(pg_config, base_dir=base, preload=[])
    cluster.init()
    cluster.start()
    return cluster


def forge(root: Path, name: str, pid: int, data_line: str | None = None) -> Path:
    data = root / name / "data"
    data.mkdir(parents=True)
    (data / "postmaster.pid").write_text(f"{pid}\n{data_line or data}\n1700000000\n5432\n/tmp\n")
    return data


def test_stops_the_left_behind_server_and_nothing_else(
    pg_config: str, root: Path, bystander: subprocess.Popen, tmp_path_factory: pytest.TempPathFactory
) -> None:
    ours = left_behind(pg_config, root)
    ours_pid = int((ours.data_dir / "postmaster.pid").read_text().splitlines()[0])
    elsewhere = Path(tempfile.mkdtemp(prefix="pgmc-cleanup-other-"))
    os.chmod(elsewhere, 0o755)
    other = left_behind(pg_config, elsewhere)  # another run's server, outside this root
    other_pid = int((other.data_dir / "postmaster.pid").read_text().splitlines()[0])
    try:
        decoys = {
            forge(root, "pgmc-forged", bystander.pid): f"process {bystander.pid} is ",
            forge(root, "pgmc-borrowed", other_pid): f"process {other_pid} serves {other.data_dir}",
            forge(root, "pgmc-elsewhere", other_pid, str(other.data_dir)):
                "postmaster.pid names another data directory",
        }
        nested = forge(root / "downloaded" / "artifact", "pgmc-deep", bystander.pid)  # not a run's layout

        proc = subprocess.run([*CLI, "cleanup", str(root)], capture_output=True, text=True, timeout=120)
        assert proc.returncode == 0, proc.stderr
        assert not cleanup._alive(ours_pid)  # stopped
        assert bystander.poll() is None  # untouched
        assert cleanup._alive(other_pid)  # untouched
        for data, why in decoys.items():
            assert f"{data}: left alone: {why}" in proc.stderr
        assert str(nested) not in proc.stderr
        assert f"{ours.data_dir}: stopping the server {ours_pid}" in proc.stderr
        assert "1 leftover server(s) stopped" in proc.stderr
        assert "database system is shut down" in ours.read_log()
    finally:
        for c in (ours, other):
            try:
                c.stop(mode="immediate")
            except ClusterError:
                pass  # already stopped: the point of the test
            c.cleanup()
        shutil.rmtree(elsewhere, ignore_errors=True)


def test_dead_server_and_garbage_pidfiles(root: Path, bystander: subprocess.Popen) -> None:
    dead = subprocess.Popen(["true"])
    dead.wait()
    gone = forge(root, "pgmc-dead", dead.pid)
    garbage = root / "pgmc-garbage" / "data"
    garbage.mkdir(parents=True)
    (garbage / "postmaster.pid").write_text("-1; kill -9 0\n")
    link = root / "pgmc-link"
    link.symlink_to(forge(root / "outside", "x", bystander.pid).parent)
    outcomes = {o.data_dir: o for o in cleanup.stop_leftovers(root)}
    assert outcomes[gone].action == "not running"
    assert outcomes[garbage].action == "left alone" and outcomes[garbage].reason == "postmaster.pid holds no process id"
    assert link / "data" not in outcomes  # symlinks are not followed
    assert bystander.poll() is None


def test_missing_root_is_nothing_to_do(tmp_path: Path) -> None:
    assert cleanup.stop_leftovers(tmp_path / "nope") == []
