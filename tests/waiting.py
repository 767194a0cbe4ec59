"""Waiting in tests for a real condition, never for a time: poll what the test is about until it holds.

The deadline only ends a wait that would otherwise hang; a test never asserts how long something took (the
machine is shared, two cores for several runs).
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Callable, Optional, TypeVar

from psycopg.conninfo import make_conninfo

from reporter.cluster import PORT

T = TypeVar("T")

DEADLINE_S = 120.0


def wait_until(condition: Callable[[], Optional[T]], what: str, timeout_s: float = DEADLINE_S,
               interval_s: float = 0.05) -> T:
    """Poll `condition` until it returns something true, and return that; fail naming `what` if it never does."""
    deadline = time.monotonic() + timeout_s
    while True:
        found = condition()
        if found:
            return found
        if time.monotonic() > deadline:
            raise AssertionError(f"waited {timeout_s:g}s for {what}; it never happened")
        time.sleep(interval_s)


def poll(condition: Callable[[], Optional[T]], timeout_s: float, interval_s: float = 0.05) -> Optional[T]:
    """Like wait_until, but None when the condition did not come true within timeout_s: for a thing that may
    rightly never happen (a crash the log may not report)."""
    try:
        return wait_until(condition, "", timeout_s, interval_s)
    except AssertionError:
        return None


def run_conninfo(tmpdir: Path, dbname: str = "postgres") -> Optional[str]:
    """The conninfo of the private cluster a `run` started with TMPDIR=tmpdir (its socket directory is a
    pgmc-s-* directory there), as the cluster's superuser; None until the socket exists."""
    sockets = [d for d in tmpdir.glob("pgmc-s-*") if (d / f".s.PGSQL.{PORT}").exists()]
    if len(sockets) != 1:
        return None
    return make_conninfo(host=str(sockets[0]), port=str(PORT), dbname=dbname, user="postgres")
