"""A workload's deadline, enforced from outside its session.

statement_timeout lives in the workload's own session, so the workload can switch it off (`SET
statement_timeout = 0`), and a cancel can be caught (`EXCEPTION WHEN query_canceled` in a DO block). The
watchdog does not ask the session: at the deadline it calls pg_cancel_backend() from the superuser connection;
if the backend is still busy after a grace period, pg_terminate_backend(); if even that does not end the
statement (a backend stuck where it checks no interrupts), it shuts the client's socket so that the run moves on.
"""

from __future__ import annotations

import socket
import threading
from typing import Any, Callable, List, Optional, Tuple

import psycopg

# Stages, in the order they happen; `fired` holds the last one reached.
CANCEL = "cancel"
TERMINATE = "terminate"
ABANDON = "abandon"

Execute = Callable[[str, Tuple[Any, ...]], List[Tuple[Any, ...]]]


class Watchdog:
    """`with Watchdog(admin.execute, conn, timeout_s, grace_s):` around the statements of one workload."""

    def __init__(
        self,
        execute: Execute,
        conn: psycopg.Connection,
        timeout_s: float,
        grace_s: float,
        progress: Callable[[str], None] = lambda _m: None,
    ) -> None:
        self._execute = execute
        self._conn = conn
        self.pid = conn.info.backend_pid
        self.timeout_s = timeout_s
        self.grace_s = grace_s
        self._progress = progress
        self._stop = threading.Event()
        self._thread: Optional[threading.Thread] = None
        self.fired: Optional[str] = None

    def __enter__(self) -> Watchdog:
        self._thread = threading.Thread(target=self._watch, name=f"watchdog-{self.pid}", daemon=True)
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join()

    def describe(self) -> str:
        """What the watchdog had to do, for the workload's error message."""
        text = f"workload exceeded its timeout of {self.timeout_s:g}s"
        if self.fired == CANCEL:
            return f"{text}; it was cancelled"
        if self.fired == TERMINATE:
            return f"{text}; it ignored the cancel and was terminated {self.grace_s:g}s later"
        if self.fired == ABANDON:
            return (f"{text}; it ignored the cancel and the terminate; its connection was closed and the "
                    f"backend (pid {self.pid}) left to the server's shutdown")
        return text

    def _watch(self) -> None:
        if self._stop.wait(self.timeout_s):
            return
        self.fired = CANCEL
        self._signal("pg_cancel_backend")
        if self._stop.wait(self.grace_s):
            return
        self.fired = TERMINATE
        self._progress(f"backend {self.pid} is still busy {self.grace_s:g}s after the cancel: terminating it")
        self._signal("pg_terminate_backend")
        if self._stop.wait(self.grace_s):
            return
        self.fired = ABANDON
        self._progress(f"backend {self.pid} ignored pg_terminate_backend: closing its connection")
        self._shutdown_socket()

    def _signal(self, function: str) -> None:
        try:
            self._execute(f"SELECT {function}(%s)", (self.pid,))
        except psycopg.Error as exc:  # the server went away: the workload's own error will say so
            self._progress(f"{function}({self.pid}) failed: {exc}")

    def _shutdown_socket(self) -> None:
        """Wake the runner's blocked read: the socket reports end of file, psycopg raises OperationalError."""
        try:
            fd = self._conn.pgconn.socket
            sock = socket.socket(fileno=socket.dup(fd))
        except (OSError, psycopg.Error):
            return
        try:
            sock.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass
        finally:
            sock.close()
