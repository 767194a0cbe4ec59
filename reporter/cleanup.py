"""Stop the PostgreSQL servers a run left behind in its own temporary directory, and nothing else.

A run (reporter.cluster.Cluster) keeps each private cluster in ROOT/pgmc-XXXX/data, where ROOT is the run's
TMPDIR. A server there outlives the run only when the run was killed. Before signalling anything, the PID
from postmaster.pid must be a live `postgres` process whose working directory is that very data directory
(the postmaster changes into it at start) and the file must name that directory: a postmaster.pid planted in
ROOT, copied from elsewhere or left by a dead server never gets an unrelated process signalled.
"""

from __future__ import annotations

import os
import signal
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, List, Optional

CLUSTER_PREFIX = "pgmc-"
_FAST_WAIT_S = 15.0  # SIGINT: fast shutdown (backends terminated, a checkpoint)
_IMMEDIATE_WAIT_S = 10.0  # SIGQUIT: immediate shutdown


@dataclass
class Outcome:
    data_dir: Path
    pid: Optional[int]
    action: str  # stopped | not running | left alone | still running
    reason: str = ""


def data_dirs(root: Path) -> List[Path]:
    """ROOT/pgmc-*/data holding a postmaster.pid: the layout a Cluster creates, nothing deeper, no symlinks."""
    found = []
    try:
        entries = sorted(root.iterdir())
    except OSError:
        return []
    for entry in entries:
        if not entry.name.startswith(CLUSTER_PREFIX) or entry.is_symlink() or not entry.is_dir():
            continue
        data = entry / "data"
        pidfile = data / "postmaster.pid"
        if data.is_dir() and not data.is_symlink() and pidfile.is_file() and not pidfile.is_symlink():
            found.append(data)
    return found


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    # A zombie is dead for our purposes (its parent has not reaped it yet).
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except (OSError, IndexError):
        return True
    return state != "Z"


def verify(data_dir: Path) -> tuple[Optional[int], str]:
    """(pid, "") when postmaster.pid names a live postgres serving data_dir; else (pid or None, why not)."""
    try:
        lines = (data_dir / "postmaster.pid").read_text(encoding="utf-8", errors="replace").splitlines()
    except OSError as exc:
        return None, f"cannot read postmaster.pid: {exc.strerror}"
    if not lines or not lines[0].strip().isdigit() or int(lines[0]) <= 1:
        return None, "postmaster.pid holds no process id"
    pid = int(lines[0])
    real = os.path.realpath(data_dir)
    if len(lines) < 2 or os.path.realpath(lines[1].strip()) != real:
        return pid, "postmaster.pid names another data directory"
    if not _alive(pid):
        return pid, "not running"
    try:
        exe = os.readlink(f"/proc/{pid}/exe")
        cwd = os.readlink(f"/proc/{pid}/cwd")
    except OSError as exc:
        return pid, f"cannot inspect process {pid}: {exc.strerror}"
    if os.path.basename(exe.removesuffix(" (deleted)")) != "postgres":
        return pid, f"process {pid} is {exe}, not postgres"
    if os.path.realpath(cwd) != real:
        return pid, f"process {pid} serves {cwd}, not this directory"
    return pid, ""


def _wait_gone(pid: int, seconds: float) -> bool:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if not _alive(pid):
            return True
        time.sleep(0.1)
    return not _alive(pid)


def stop_leftovers(root: Path, log: Callable[[str], None] = lambda _m: None) -> List[Outcome]:
    """Stop every verified leftover server under ROOT (fast shutdown, then immediate); leave the rest alone."""
    outcomes = []
    for data in data_dirs(Path(root)):
        pid, why = verify(data)
        if why == "not running":
            outcomes.append(Outcome(data, pid, "not running"))
            continue
        if why or pid is None:
            log(f"{data}: left alone: {why}")
            outcomes.append(Outcome(data, pid, "left alone", why))
            continue
        log(f"{data}: stopping the server {pid} a run left behind")
        stopped = False
        for sig, wait in ((signal.SIGINT, _FAST_WAIT_S), (signal.SIGQUIT, _IMMEDIATE_WAIT_S)):
            try:
                os.kill(pid, sig)
            except ProcessLookupError:
                stopped = True
                break
            if _wait_gone(pid, wait):
                stopped = True
                break
        outcomes.append(Outcome(data, pid, "stopped" if stopped else "still running",
                                "" if stopped else "did not stop on SIGINT or SIGQUIT"))
    return outcomes
