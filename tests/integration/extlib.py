"""Running the small libraries of tests/extensions/ under pg_ext_memcheck on real clusters (issue 19).

Each library models the shape of a published extension. A suite starts one cluster per load order:
pg_ext_memcheck first in shared_preload_libraries, listed after the libraries, or the libraries not preloaded at
all and loaded by CREATE EXTENSION in the measuring session. No order needs the checker listed first.

The helpers measure a window (begin() ... end()) in one session and return end()'s rows as dicts; a statement
that crashes the backend becomes an assertion naming the crash, after the server is back.
"""

from __future__ import annotations

import json
import re
from contextlib import contextmanager
from typing import Any, Dict, Iterator, List, Optional, Sequence, Tuple

import psycopg
import pytest

from reporter.cluster import Cluster
from tests.waiting import poll, wait_until

MEMCHECK = "pg_ext_memcheck"
Row = Dict[str, Any]
LoadOrder = Tuple[List[str], bool]


def load_orders(libraries: Sequence[str], others: Sequence[str] = ()) -> Dict[str, LoadOrder]:
    """name -> (shared_preload_libraries, whether the measuring session loads `libraries` by CREATE EXTENSION).

    `others` (a third party's hooks, e.g. pg_stat_statements) keep their place in every order: after the checker
    when it is first, before the libraries otherwise."""
    return {
        "first": ([MEMCHECK, *others, *libraries], False),
        "after": ([*others, *libraries, MEMCHECK], False),
        "create_extension": ([*others, MEMCHECK], True),
    }


ORDER_NAMES = ("after", "create_extension", "first")


def start_cluster(pg_config: str, tmp_path_factory: pytest.TempPathFactory, preload: Sequence[str],
                  settings: Optional[Dict[str, object]] = None, setup_sql: Sequence[str] = ()) -> Cluster:
    cluster = Cluster(pg_config, base_dir=tmp_path_factory.mktemp("extlib"), preload=list(preload),
                      settings=settings or {})
    cluster.init()
    cluster.start()
    with cluster.connect() as conn:
        for sql in setup_sql:
            conn.execute(sql)
    return cluster


def stop_cluster(cluster: Cluster) -> None:
    try:
        cluster.stop()
    finally:
        cluster.cleanup()


def rows(cur: psycopg.Cursor) -> List[Row]:
    names = [d.name for d in cur.description or []]
    return [dict(zip(names, r)) for r in cur.fetchall()]


def only(found: List[Row], **match: Any) -> List[Row]:
    return [r for r in found if all(r[k] == v for k, v in match.items())]


def severe(found: List[Row]) -> List[Row]:
    return [r for r in found if r["severity"] in ("WARNING", "ERROR")]


def within(value: Optional[float], expected: float, tolerance: float = 0.10) -> bool:
    return value is not None and abs(value - expected) <= tolerance * expected


def brief(found: List[Row]) -> str:
    """One line per finding, for assertion messages (a string, which pytest shows in full)."""
    lines = [f"{r['check_type']} {r['severity']} lib={r['source_lib']} ctx={r['context_path']}"
             f" used_delta={r['used_delta']} life={r['lifetime']} verdict={r['verdict']}"
             f" rate={r['rate_bytes']}/{r['rate_unit']} calls={r['calls']} entry={r['entry']} detail={r['detail']!r}"
             for r in found]
    return "findings:\n  " + "\n  ".join(lines) if lines else "no findings"


def crash_lines(cluster: Cluster, offset: int) -> str:
    log = cluster.read_log(offset)
    hits = [line for line in log.splitlines()
            if re.search(r"terminated by signal|was terminated by exception|PANIC|server process .* exited", line)]
    return "\n".join(hits) or log[-2000:]


CRASHED = re.compile(r"terminated by signal|was terminated by exception")
READY = "database system is ready to accept connections"


def wait_restarted(cluster: Cluster, offset: int) -> None:
    """After a backend crash the postmaster stops and restarts every process: a connection made before it got to
    it would work and the next one fail. Wait (bounded) for the log's "ready" after the crash, then connect."""
    crash = poll(lambda: CRASHED.search(cluster.read_log(offset)), timeout_s=5)
    if crash is not None:  # else no crash was logged: the connection was lost for another reason
        wait_until(lambda: READY in cluster.read_log(offset)[crash.end():], "the postmaster's restart after a crash")
    cluster.wait_ready()


@contextmanager
def crash_is_a_failure(cluster: Cluster) -> Iterator[None]:
    """A lost connection (the backend crashed) fails the test with the server's own words, once the server
    accepts connections again (so that the module's next tests find it up)."""
    offset = cluster.log_size()
    try:
        yield
    except psycopg.OperationalError as exc:
        if exc.sqlstate is not None and not exc.sqlstate.startswith("57P"):  # a cancel, a timeout: not a crash
            raise
        wait_restarted(cluster, offset)
        raise AssertionError(f"the backend crashed: {exc}\n{crash_lines(cluster, offset)}") from exc


def session(cluster: Cluster, extensions: Sequence[str] = (), load_in_session: bool = False, mode: str = "all",
            settings: Optional[Dict[str, object]] = None) -> psycopg.Connection:
    """A measuring session: `extensions` created here when the order says so, settings set, mode on."""
    conn = cluster.connect()
    if load_in_session:
        for ext in extensions:
            conn.execute(f"DROP EXTENSION IF EXISTS {ext} CASCADE")
            conn.execute(f"CREATE EXTENSION {ext}")
    for name, value in (settings or {}).items():
        conn.execute("SELECT set_config(%s, %s, false)", [name, str(value)])
    conn.execute("SELECT set_config('pg_ext_memcheck.memcheck_mode', %s, false)", [mode])
    return conn


def begin(conn: psycopg.Connection, pattern: str = "", options: Optional[dict] = None) -> None:
    conn.execute("SELECT ext_memcheck.begin(%s, %s)", [pattern, json.dumps(options) if options else None])


def end(conn: psycopg.Connection) -> List[Row]:
    return rows(conn.execute('SELECT * FROM ext_memcheck."end"()'))


def run(conn: psycopg.Connection, statements: Sequence[str], repeat: int = 1) -> None:
    for _ in range(repeat):
        for sql in statements:
            conn.execute(sql, prepare=False)


def fails(conn: psycopg.Connection, sql: str, match: str, repeat: int = 1) -> None:
    """`sql` raises an error matching `match`, every time."""
    for _ in range(repeat):
        with pytest.raises(psycopg.Error, match=match):
            conn.execute(sql, prepare=False)


def flush_and_read(conn: psycopg.Connection, pid: Optional[int] = None) -> List[Row]:
    """flush_violations(), then violation_log (the rows of one backend, when given), the last update of each
    finding only."""
    conn.execute("SELECT ext_memcheck.flush_violations()")
    where = "WHERE backend_pid = %s" if pid is not None else ""
    logged = rows(conn.execute(f"SELECT * FROM ext_memcheck.violation_log {where} ORDER BY seq",
                               [pid] if pid is not None else []))
    last: Dict[Tuple[int, Any], Row] = {}
    for r in logged:
        last[(r["backend_pid"], r["finding_id"] if r["finding_id"] is not None else r["seq"])] = r
    return list(last.values())
