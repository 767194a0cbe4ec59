"""Issue 19, item 9: the original tool's documented steps (../shared/reference/testing-a-leaky-extension.md), as a
user types them in psql, with the example's default bugs (planner_ctx_leak, top_ctx_alloc), in every load order.

1. One query, then flush_violations(): violation_log (read in that session, as the reference does) shows, at INFO
   and with no verdict yet, what that statement kept: the 8 kB the example put in TopMemoryContext (saying that one
   statement cannot yet tell a leak from a cache) and the planner's leaked context. No window (begin/end) is
   opened: the reference does not open one.
2. The 1,000-iteration growth_benchmark between begin() and end() stays an ERROR on TopMemoryContext.
"""

from __future__ import annotations

import json
import re
import subprocess
from typing import Dict, Iterator, List, Tuple

import pytest

from reporter.cluster import Cluster
from tests.integration.extlib import (
    ORDER_NAMES,
    Row,
    brief,
    flush_and_read,
    load_orders,
    only,
    rows,
    severe,
    start_cluster,
    stop_cluster,
)

pytestmark = [pytest.mark.integration, pytest.mark.all_majors]

EXAMPLE = "buggy_pg_ext"
EXAMPLE_LIB = "buggy_pg_ext.so"
SETUP_SQL = [
    "CREATE EXTENSION IF NOT EXISTS pg_ext_memcheck",
    "CREATE TABLE IF NOT EXISTS companies AS SELECT g AS id, 'company ' || g AS name FROM generate_series(1, 100) g",
]


@pytest.fixture(scope="module", params=ORDER_NAMES, ids=lambda o: f"order-{o}")
def ordered(request: pytest.FixtureRequest, installed_pg_config: str,
            tmp_path_factory: pytest.TempPathFactory) -> Iterator[Tuple[Cluster, bool]]:
    preload, load_in_session = load_orders([EXAMPLE])[request.param]
    setup = SETUP_SQL if load_in_session else [*SETUP_SQL, f"CREATE EXTENSION IF NOT EXISTS {EXAMPLE}"]
    cluster = start_cluster(installed_pg_config, tmp_path_factory, preload, {}, setup)
    yield cluster, load_in_session
    stop_cluster(cluster)


def psql_steps(cluster: Cluster, steps: List[str]) -> List[str]:
    """One psql session, one simple-protocol message per step (psql -c ... -c ...); the output lines."""
    cmd = [str(cluster.bindir / "psql"), "-X", "-q", "-A", "-t", "-v", "ON_ERROR_STOP=1", "-d", cluster.conninfo()]
    for step in steps:
        cmd += ["-c", step]
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr
    return proc.stdout.splitlines()


def cannot_tell_yet(row: Row) -> bool:
    """An INFO row that says one statement cannot tell a leak from a cache (no verdict either way)."""
    return (row["severity"] == "INFO" and row["verdict"] not in ("leak", "cache")
            and re.search(r"leak.*cache|cache.*leak", row["detail"] or "") is not None)


def test_one_query_then_flush_shows_info_rows(ordered: Tuple[Cluster, bool]) -> None:
    cluster, load_in_session = ordered
    loading = [f"DROP EXTENSION IF EXISTS {EXAMPLE}", f"CREATE EXTENSION {EXAMPLE}"] if load_in_session else \
        [f"CREATE EXTENSION IF NOT EXISTS {EXAMPLE}"]
    # the reference's steps; violation_log read in the same session, right after the flush (as the reference does:
    # what the backend publishes later, at its exit, is not what the user saw)
    out = psql_steps(cluster, ["SELECT coalesce(max(id), 0) FROM ext_memcheck.violation_log", *loading,
                               "CREATE EXTENSION IF NOT EXISTS pg_ext_memcheck",
                               "SET pg_ext_memcheck.memcheck_mode = 'all'",
                               "SELECT count(*) FROM companies",
                               "SELECT * FROM ext_memcheck.flush_violations()",
                               "SELECT coalesce(jsonb_agg(to_jsonb(v) ORDER BY v.seq), '[]')"
                               " FROM ext_memcheck.violation_log v WHERE v.backend_pid = pg_backend_pid()"])
    before = int(out[0])
    last: Dict[object, Row] = {}
    for r in json.loads(out[-1]):
        if r["id"] > before:
            last[r["finding_id"] if r["finding_id"] is not None else r["seq"]] = r
    logged = list(last.values())
    # what the query kept: one 8 kB chunk in TopMemoryContext, one planner context of the example; judged when
    # the next statement (the flush) starts, before the example's hooks fire for the flush's own statements
    top = [r for r in only(logged, context_name="TopMemoryContext", source_lib=EXAMPLE_LIB, check_type="context_leak")
           if 8192 <= r["used_delta"] < 8192 + 64]
    planner = [r for r in only(logged, context_name="BuggyPlannerLeakCtx", source_lib=EXAMPLE_LIB)
               if r["used_delta"] >= 8192]
    assert len(top) == 1 and cannot_tell_yet(top[0]), brief(logged)
    assert len(planner) == 1 and planner[0]["severity"] == "INFO", brief(logged)
    assert planner[0]["verdict"] not in ("leak", "cache"), brief(logged)
    assert severe(logged) == [], brief(logged)


def test_growth_benchmark_1000_stays_error(ordered: Tuple[Cluster, bool]) -> None:
    cluster, load_in_session = ordered
    with cluster.connect() as conn:
        if load_in_session:
            conn.execute(f"DROP EXTENSION IF EXISTS {EXAMPLE}")
            conn.execute(f"CREATE EXTENSION {EXAMPLE}")
        conn.execute("SET pg_ext_memcheck.memcheck_mode = 'all'")
        conn.execute("SELECT ext_memcheck.begin('')")
        conn.execute("SELECT ext_memcheck.run_scenario(scenario_name := 'growth_benchmark', iterations := 1000,"
                     " workload := 'SELECT count(*) FROM companies;')")
        found = rows(conn.execute('SELECT * FROM ext_memcheck."end"()'))
        pid = conn.info.backend_pid
        logged = flush_and_read(conn, pid)
    for where, got in (("end()", found), ("violation_log", logged)):
        top = only(got, check_type="context_leak", context_name="TopMemoryContext", source_lib=EXAMPLE_LIB)
        assert len(top) == 1 and top[0]["severity"] == "ERROR", f"{where}: {brief(got)}"
