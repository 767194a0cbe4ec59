"""The hook library on real clusters: each check fires on its bug and stays quiet without it.

One cluster per PostgreSQL version and module, with pg_ext_memcheck first and buggy_pg_ext preloaded; each test
switches the example's bugs on for its own session with `SET buggy_pg_ext.bugs`.
"""

from __future__ import annotations

import json
import threading
from typing import Any, Dict, Iterator, List, Optional, Sequence

import psycopg
import pytest

from reporter.cluster import Cluster

# The hook library's suite runs on every PostgreSQL under test (the version matrix).
pytestmark = [pytest.mark.integration, pytest.mark.all_majors]

SETUP_SQL = """
CREATE EXTENSION IF NOT EXISTS pg_ext_memcheck;
CREATE TABLE IF NOT EXISTS companies AS SELECT g AS id, 'company ' || g AS name FROM generate_series(1, 100) g;
CREATE OR REPLACE FUNCTION two_step(int) RETURNS int LANGUAGE sql AS $$ SELECT 1; SELECT $1 + 1 $$;
"""

Row = Dict[str, Any]


def start_cluster(pg_config: str, tmp_path_factory: pytest.TempPathFactory, preload: Sequence[str],
                  settings: Optional[Dict[str, object]] = None) -> Cluster:
    cluster = Cluster(pg_config, base_dir=tmp_path_factory.mktemp("hooklib"), preload=list(preload),
                      settings=settings or {})
    cluster.init()
    cluster.start()
    with cluster.connect() as conn:
        conn.execute(SETUP_SQL)
    return cluster


@pytest.fixture(scope="module")
def buggy(installed_pg_config: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Cluster]:
    cluster = start_cluster(installed_pg_config, tmp_path_factory, ["pg_ext_memcheck", "buggy_pg_ext"])
    yield cluster
    cluster.stop()
    cluster.cleanup()


@pytest.fixture(scope="module")
def plain(installed_pg_config: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Cluster]:
    """Only pg_ext_memcheck preloaded: no third-party library at all."""
    cluster = start_cluster(installed_pg_config, tmp_path_factory, ["pg_ext_memcheck"])
    yield cluster
    cluster.stop()
    cluster.cleanup()


def rows(cur: psycopg.Cursor) -> List[Row]:
    names = [d.name for d in cur.description or []]
    return [dict(zip(names, r)) for r in cur.fetchall()]


def window(cluster: Cluster, statements: Sequence[str], bugs: Optional[str] = None, mode: str = "all",
           pattern: str = "", options: Optional[dict] = None, settings: Optional[Dict[str, object]] = None,
           expect_errors: bool = False) -> List[Row]:
    """Run statements in one session between begin() and end(); return end()'s rows."""
    with cluster.connect() as conn:
        if bugs is not None:
            conn.execute("SELECT set_config('buggy_pg_ext.bugs', %s, false)", [bugs])
        for name, value in (settings or {}).items():
            conn.execute("SELECT set_config(%s, %s, false)", [name, str(value)])
        conn.execute("SELECT set_config('pg_ext_memcheck.memcheck_mode', %s, false)", [mode])
        conn.execute("SELECT ext_memcheck.begin(%s, %s)", [pattern, json.dumps(options) if options else None])
        for sql in statements:
            try:
                conn.execute(sql)
            except psycopg.Error:
                if not expect_errors:
                    raise
        return end_rows(conn)


def end_rows(conn: psycopg.Connection) -> List[Row]:
    """end()'s rows, less those of the begin() and end() statements themselves (they are measured too)."""
    found = rows(conn.execute("SELECT * FROM ext_memcheck.\"end\"()"))
    own = ("ext_memcheck.begin", "ext_memcheck.\"end\"")
    return [r for r in found if not any(f in (r["query"] or "") for f in own)]


def only(found: List[Row], **match: Any) -> List[Row]:
    return [r for r in found if all(r[k] == v for k, v in match.items())]


def severe(found: List[Row]) -> List[Row]:
    return [r for r in found if r["severity"] in ("WARNING", "ERROR")]


# --- the reference example ----------------------------------------------------------------------------

def test_reference_example_single_query(buggy: Cluster) -> None:
    found = window(buggy, ["SELECT count(*) FROM companies"], bugs="planner_ctx_leak,top_ctx_alloc")
    leak_ctx = only(found, check_type="context_leak", context_name="BuggyPlannerLeakCtx")
    parent = only(found, check_type="context_leak", context_name="MessageContext")
    wrong = only(found, check_type="wrong_ctx_alloc", context_name="TopMemoryContext")
    assert len(leak_ctx) == 1 and leak_ctx[0]["used_delta"] >= 8192
    assert leak_ctx[0]["context_path"] == "TopMemoryContext/MessageContext/BuggyPlannerLeakCtx"
    assert leak_ctx[0]["depth"] == 2 and leak_ctx[0]["phase"] == "planner"
    assert len(parent) == 1 and parent[0]["used_delta"] >= 8192
    assert len(wrong) == 1 and wrong[0]["severity"] == "WARNING" and wrong[0]["phase"] == "executor"
    assert 8192 <= wrong[0]["used_delta"] < 8192 + 64
    assert {r["source_lib"] for r in found} == {"buggy_pg_ext.so"}


def test_reference_growth_benchmark_1000(buggy: Cluster) -> None:
    with buggy.connect() as conn:
        conn.execute("SET buggy_pg_ext.bugs = 'planner_ctx_leak,top_ctx_alloc'")
        conn.execute("SET pg_ext_memcheck.memcheck_mode = 'all'")
        conn.execute("SELECT ext_memcheck.begin('')")
        result = conn.execute(
            "SELECT ext_memcheck.run_scenario(scenario_name := 'growth_benchmark', iterations := 1000,"
            " workload := 'SELECT count(*) FROM companies;')").fetchone()[0]
        found = end_rows(conn)
    assert result["verdict"] == "leak" and result["iterations"] == 1000
    assert result["checkpoints"][0] == 1 and result["checkpoints"][-1] == 1000
    top_leak = only(found, check_type="context_leak", context_name="TopMemoryContext", phase="scenario")
    assert len(top_leak) == 1
    assert top_leak[0]["severity"] == "ERROR"
    assert 7_500_000 < top_leak[0]["used_delta"] < 9_000_000
    assert 8000 < top_leak[0]["bytes_per_iteration"] < 8600
    wrong = only(found, check_type="wrong_ctx_alloc", context_name="TopMemoryContext", phase="scenario")
    assert len(wrong) == 1 and wrong[0]["severity"] == "WARNING"
    assert {r["source_lib"] for r in found} == {"buggy_pg_ext.so"}
    top = [c for c in result["contexts"] if c["path"] == "TopMemoryContext" and c["kind"] == "own"]
    assert top and top[0]["verdict"] == "leak" and len(top[0]["samples"]) == len(result["checkpoints"])


# --- each check on its bug, and silent without it ------------------------------------------------------

BUG_EXPECTATIONS = {
    "planner_ctx_leak": dict(check_type="context_leak", context_name="BuggyPlannerLeakCtx"),
    "top_ctx_alloc": dict(check_type="wrong_ctx_alloc", context_name="TopMemoryContext"),
    "dsm_leak": dict(check_type="resource_leak", context_name="dynamic shared memory segment"),
    "relcache_leak": dict(check_type="resource_leak", context_name="relcache reference"),
}


@pytest.mark.parametrize("bug", sorted(BUG_EXPECTATIONS))
def test_check_fires_on_its_bug(buggy: Cluster, bug: str) -> None:
    found = window(buggy, ["SELECT count(*) FROM companies"], bugs=bug)
    hits = only(found, **BUG_EXPECTATIONS[bug])
    assert hits, f"{bug}: no {BUG_EXPECTATIONS[bug]} in {found}"
    assert all(r["source_lib"] == "buggy_pg_ext.so" for r in hits)
    # nothing from the other bugs
    others = [r for r in found if r not in hits and r["context_name"] not in ("MessageContext", "TopMemoryContext")]
    assert others == []


def test_nested_leak_found_although_freed_at_statement_end(buggy: Cluster) -> None:
    found = window(buggy, ["SELECT sum(two_step(g)) FROM generate_series(1, 500) g"], bugs="nested_leak")
    hits = only(found, check_type="context_leak")
    assert len(hits) == 1, found
    hit = hits[0]
    assert hit["source_lib"] == "buggy_pg_ext.so"
    assert hit["severity"] == "ERROR"  # 1000 nested executions x 2 kB
    assert 2048 <= hit["bytes_per_iteration"] < 2048 + 64
    assert hit["used_delta"] > 1_000_000


def test_bugs_off_no_violations(buggy: Cluster) -> None:
    found = window(buggy, [
        "SELECT count(*) FROM companies",
        "SELECT sum(two_step(g)) FROM generate_series(1, 500) g",
        "CREATE TEMP TABLE t AS SELECT * FROM companies",
        "SELECT ext_memcheck.run_scenario('growth_benchmark', 200, 'SELECT count(*) FROM companies')",
    ], bugs="")
    assert found == []


def test_no_noise_without_third_party_library(plain: Cluster) -> None:
    with plain.connect() as conn:
        conn.execute("SET pg_ext_memcheck.memcheck_mode = 'all'")
        conn.execute("SELECT ext_memcheck.begin('')")
        for sql in ["SELECT count(*) FROM companies", "SELECT sum(two_step(g)) FROM generate_series(1, 500) g",
                    "CREATE TEMP TABLE t AS SELECT * FROM companies", "PREPARE p AS SELECT * FROM companies",
                    "EXECUTE p", "DO $$BEGIN PERFORM count(*) FROM companies; END$$"]:
            conn.execute(sql)
        growth = conn.execute("SELECT ext_memcheck.run_scenario('growth_benchmark', 300,"
                              " 'SELECT count(*) FROM companies')").fetchone()[0]
        abort = conn.execute("SELECT ext_memcheck.run_scenario('tx_abort_loop', 100,"
                             " 'SELECT count(*) FROM companies')").fetchone()[0]
        found = end_rows(conn)
    assert severe(found) == []
    assert growth["verdict"] == "plateau" and abort["verdict"] == "plateau"


def test_library_loaded_by_create_extension(plain: Cluster) -> None:
    """buggy_pg_ext not preloaded: CREATE EXTENSION loads it in the session, and it is still measured."""
    with plain.connect() as conn:
        conn.execute("CREATE EXTENSION IF NOT EXISTS buggy_pg_ext")
    with plain.connect() as conn:
        conn.execute("SET buggy_pg_ext.bugs = 'top_ctx_alloc'")
        conn.execute("SELECT buggy_pg_ext_bugs()")  # loads the library in this session
        conn.execute("SET pg_ext_memcheck.memcheck_mode = 'all'")
        conn.execute("SELECT ext_memcheck.begin('')")
        conn.execute("SELECT count(*) FROM companies")
        found = end_rows(conn)
    wrong = only(found, check_type="wrong_ctx_alloc", context_name="TopMemoryContext")
    assert len(wrong) == 1 and wrong[0]["source_lib"] == "buggy_pg_ext.so"


# --- modes, thresholds, windows -------------------------------------------------------------------------

@pytest.mark.parametrize("mode,phases", [("planner", {"planner"}), ("executor", {"executor"}),
                                         ("all", {"planner", "executor"}), ("off", set()), ("none", set())])
def test_modes(buggy: Cluster, mode: str, phases: set) -> None:
    found = window(buggy, ["SELECT count(*) FROM companies"], bugs="planner_ctx_leak,top_ctx_alloc", mode=mode)
    assert {r["phase"] for r in found} == phases


def test_none_is_off_and_prefix_is_reserved(buggy: Cluster) -> None:
    with buggy.connect() as conn:
        conn.execute("SET pg_ext_memcheck.memcheck_mode = 'none'")
        assert conn.execute("SELECT mode FROM ext_memcheck.status()").fetchone()[0] == "off"
        major = conn.info.server_version // 10000
        if major >= 15:
            with pytest.raises(psycopg.Error, match="pg_ext_memcheck"):
                conn.execute("SET pg_ext_memcheck.no_such_setting = 1")
        with pytest.raises(psycopg.Error, match="memcheck_mode"):
            conn.execute("SET pg_ext_memcheck.memcheck_mode = 'sometimes'")


def test_severity_thresholds_at_their_boundaries(buggy: Cluster) -> None:
    """min_leak_bytes: reported from that size on; warning/error: strictly above.  The used delta of one
    8 kB palloc varies by a few bytes with block boundaries, so each run is judged by its own delta,
    with thresholds placed on both sides of it and exactly on it."""

    def run(**settings: int) -> List[Row]:
        found = only(window(buggy, ["SELECT count(*) FROM companies"], bugs="top_ctx_alloc",
                            settings={f"pg_ext_memcheck.{k}": v for k, v in settings.items()}),
                     check_type="context_leak", context_name="TopMemoryContext")
        assert len(found) <= 1
        return found

    base = run()
    assert len(base) == 1 and base[0]["severity"] == "INFO"
    delta = base[0]["used_delta"]
    assert 8192 <= delta < 8400
    seen = set()
    for threshold in range(delta - 48, delta + 49, 8):
        for found in [run(min_leak_bytes=threshold)]:
            if found:
                assert found[0]["used_delta"] >= threshold and found[0]["severity"] == "INFO"
                seen.add("reported")
            else:
                seen.add("skipped")
        found = run(warning_bytes=threshold)
        assert len(found) == 1
        expected = "WARNING" if found[0]["used_delta"] > threshold else "INFO"
        assert found[0]["severity"] == expected
        seen.add(expected)
        found = run(warning_bytes=1, error_bytes=threshold)
        expected = "ERROR" if found[0]["used_delta"] > threshold else "WARNING"
        assert found[0]["severity"] == expected
        seen.add(expected)
    # the sweep crossed every boundary
    assert seen == {"reported", "skipped", "INFO", "WARNING", "ERROR"}


def test_begin_pattern_and_allowlist(buggy: Cluster) -> None:
    found = window(buggy, ["SELECT count(*) FROM companies"], bugs="planner_ctx_leak,top_ctx_alloc",
                   pattern="Buggy%")
    assert found and {r["context_name"] for r in found} == {"BuggyPlannerLeakCtx"}

    found = window(buggy, ["SELECT count(*) FROM companies"], bugs="planner_ctx_leak,top_ctx_alloc",
                   options={"allowed_contexts": ["TopMemoryContext"]})
    assert only(found, check_type="wrong_ctx_alloc") == []
    assert only(found, check_type="context_leak", context_name="TopMemoryContext")


def test_end_without_begin_and_window_is_per_backend(buggy: Cluster) -> None:
    with buggy.connect() as conn:
        with pytest.raises(psycopg.Error, match="without ext_memcheck.begin"):
            conn.execute("SELECT * FROM ext_memcheck.\"end\"()")
    with buggy.connect() as watcher, buggy.connect() as worker:
        watcher.execute("SELECT ext_memcheck.begin('')")
        worker.execute("SET buggy_pg_ext.bugs = 'top_ctx_alloc'; SET pg_ext_memcheck.memcheck_mode = 'all'")
        worker.execute("SELECT count(*) FROM companies")
        assert end_rows(watcher) == []


@pytest.mark.parametrize("sql,message", [
    ("SELECT ext_memcheck.run_scenario('no_such', 10, 'SELECT 1')", "scenario_name"),
    ("SELECT ext_memcheck.run_scenario(NULL, 10, 'SELECT 1')", "scenario_name"),
    ("SELECT ext_memcheck.run_scenario('growth_benchmark', -5, 'SELECT 1')", "iterations"),
    ("SELECT ext_memcheck.run_scenario('growth_benchmark', 0, 'SELECT 1')", "iterations"),
    ("SELECT ext_memcheck.run_scenario('growth_benchmark', 5, '  ')", "workload"),
    ("SELECT ext_memcheck.begin('', '{\"allowed\": []}')", "unknown options key \"allowed\""),
    ("SELECT ext_memcheck.begin('', '{\"allowed_contexts\": \"TopMemoryContext\"}')", "allowed_contexts"),
    ("SELECT ext_memcheck.begin('', '{\"allowed_contexts\": [1]}')", "allowed_contexts"),
    ("SELECT ext_memcheck.begin('', '[1]')", "options must be a JSON object"),
    ("SELECT ext_memcheck.begin(repeat('x', 300))", "pattern is too long"),
])
def test_invalid_arguments_name_the_argument(buggy: Cluster, sql: str, message: str) -> None:
    with buggy.connect() as conn:
        with pytest.raises(psycopg.Error, match=message):
            conn.execute(sql)


# --- scenarios ------------------------------------------------------------------------------------------

def test_tx_abort_loop(buggy: Cluster) -> None:
    with buggy.connect() as conn:
        conn.execute("SET buggy_pg_ext.bugs = ''")
        result = conn.execute("SELECT ext_memcheck.run_scenario('tx_abort_loop', 100, 'SELECT 1/0')").fetchone()[0]
        assert result["errors"] == 100 and result["verdict"] == "plateau"
        conn.execute("SET buggy_pg_ext.bugs = 'top_ctx_alloc'")
        conn.execute("SET pg_ext_memcheck.memcheck_mode = 'executor'")
        conn.execute("SELECT ext_memcheck.begin('')")
        result = conn.execute("SELECT ext_memcheck.run_scenario('tx_abort_loop', 200,"
                              " 'SELECT count(*) FROM companies')").fetchone()[0]
        found = end_rows(conn)
    # TopMemoryContext is not rolled back with the subtransaction: the leak survives every abort
    assert result["errors"] == 0 and result["verdict"] == "leak"
    top = only(found, check_type="context_leak", context_name="TopMemoryContext", phase="scenario")
    assert len(top) == 1 and 8000 < top[0]["bytes_per_iteration"] < 8600


# --- errors inside measured statements ------------------------------------------------------------------

def test_failed_statement_leaves_nothing_stale(buggy: Cluster) -> None:
    found = window(buggy, ["SELECT 1/0", "SELECT sum(two_step(g) / (g - 250)) FROM generate_series(1, 500) g",
                           "SELECT count(*) FROM companies"],
                   bugs="top_ctx_alloc", mode="executor", expect_errors=True)
    wrong = only(found, check_type="wrong_ctx_alloc")
    # the failed statements are not reported; the measured one exactly once, with one statement's worth
    assert len(wrong) == 1 and wrong[0]["used_delta"] < 8192 * 2
    assert "companies" in wrong[0]["detail"] or wrong[0]["phase"] == "executor"


# --- ring buffer, flush and privileges ------------------------------------------------------------------

@pytest.fixture(scope="module")
def small_ring(installed_pg_config: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Cluster]:
    cluster = start_cluster(installed_pg_config, tmp_path_factory, ["pg_ext_memcheck", "buggy_pg_ext"],
                            settings={"pg_ext_memcheck.ring_capacity": 64, "max_connections": 30})
    yield cluster
    cluster.stop()
    cluster.cleanup()


def status(conn: psycopg.Connection) -> Row:
    return rows(conn.execute("SELECT * FROM ext_memcheck.status()"))[0]


def test_eight_concurrent_writers_exact_accounting(small_ring: Cluster) -> None:
    with small_ring.connect() as admin:
        before = status(admin)
        logged_before = admin.execute("SELECT count(*) FROM ext_memcheck.violation_log").fetchone()[0]
    errors: List[BaseException] = []

    def writer() -> None:
        try:
            with small_ring.connect() as conn:
                conn.execute("SET buggy_pg_ext.bugs = 'top_ctx_alloc'; SET pg_ext_memcheck.memcheck_mode = 'executor'")
                for _ in range(20):
                    conn.execute("SELECT count(*) FROM companies")
        except BaseException as exc:  # reported below
            errors.append(exc)

    threads = [threading.Thread(target=writer) for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []
    with small_ring.connect() as admin:
        after = status(admin)
        written = after["written"] - before["written"]
        dropped = after["dropped"] - before["dropped"]
        assert written == 8 * 20 * 2  # context_leak + wrong_ctx_alloc per statement
        assert dropped > 0  # 320 writes into 64 slots
        assert after["pending"] == after["capacity"] == 64
        flushed = admin.execute("SELECT ext_memcheck.flush_violations()").fetchone()[0]
        logged = admin.execute("SELECT count(*) FROM ext_memcheck.violation_log").fetchone()[0] - logged_before
        assert logged == flushed
        assert status(admin)["pending"] == 0
        assert logged + dropped == written
        # every stored entry is intact: no torn writes
        bad = admin.execute("SELECT count(*) FROM ext_memcheck.violation_log WHERE source_lib <> 'buggy_pg_ext.so'"
                            " OR check_type NOT IN ('context_leak', 'wrong_ctx_alloc')"
                            " OR context_name <> 'TopMemoryContext'").fetchone()[0]
        assert bad == 0


def make_violations(cluster: Cluster, n_statements: int) -> None:
    with cluster.connect() as conn:
        conn.execute("SET buggy_pg_ext.bugs = 'top_ctx_alloc'; SET pg_ext_memcheck.memcheck_mode = 'executor'")
        for _ in range(n_statements):
            conn.execute("SELECT count(*) FROM companies")


def test_flush_rollback_loses_nothing(small_ring: Cluster) -> None:
    with small_ring.connect() as admin:
        admin.execute("SELECT ext_memcheck.flush_violations()")
        make_violations(small_ring, 5)
        assert status(admin)["pending"] == 10
        logged = admin.execute("SELECT count(*) FROM ext_memcheck.violation_log").fetchone()[0]
        with admin.transaction(force_rollback=True):
            assert admin.execute("SELECT ext_memcheck.flush_violations()").fetchone()[0] == 10
        assert status(admin)["pending"] == 10
        # a flush in a subtransaction that rolls back does not count either
        with admin.transaction():
            admin.execute("SAVEPOINT s")
            admin.execute("SELECT ext_memcheck.flush_violations()")
            admin.execute("ROLLBACK TO SAVEPOINT s")
        assert status(admin)["pending"] == 10
        assert admin.execute("SELECT ext_memcheck.flush_violations()").fetchone()[0] == 10
        assert status(admin)["pending"] == 0
        assert admin.execute("SELECT count(*) FROM ext_memcheck.violation_log").fetchone()[0] == logged + 10


def test_concurrent_flushes_exactly_once(small_ring: Cluster) -> None:
    with small_ring.connect() as admin:
        admin.execute("SELECT ext_memcheck.flush_violations()")
        logged = admin.execute("SELECT count(*) FROM ext_memcheck.violation_log").fetchone()[0]
    make_violations(small_ring, 8)
    first = small_ring.connect(autocommit=False)
    try:
        assert first.execute("SELECT ext_memcheck.flush_violations()").fetchone()[0] == 16
        result: Dict[str, int] = {}

        def second() -> None:
            with small_ring.connect() as conn:  # blocks on the first flusher's unique entries
                result["n"] = conn.execute("SELECT ext_memcheck.flush_violations()").fetchone()[0]

        t = threading.Thread(target=second)
        t.start()
        t.join(timeout=1.0)
        assert t.is_alive(), "the second flush should wait for the first"
        first.rollback()  # the first loses: the second must insert everything
        t.join(timeout=30)
        assert result["n"] == 16
    finally:
        first.close()
    with small_ring.connect() as admin:
        assert admin.execute("SELECT count(*) FROM ext_memcheck.violation_log").fetchone()[0] == logged + 16
        assert admin.execute("SELECT count(*) - count(DISTINCT seq) FROM ext_memcheck.violation_log").fetchone()[0] == 0
        assert status(admin)["pending"] == 0


def test_privileges(buggy: Cluster) -> None:
    with buggy.connect() as conn:
        conn.execute("DROP ROLE IF EXISTS mc_plain; CREATE ROLE mc_plain LOGIN")
        conn.execute("DROP ROLE IF EXISTS mc_monitor; CREATE ROLE mc_monitor LOGIN IN ROLE pg_read_all_stats")
    denied = ["SELECT * FROM ext_memcheck.violation_log", "SELECT ext_memcheck.flush_violations()",
              "SELECT ext_memcheck.run_scenario('growth_benchmark', 1, 'SELECT 1')",
              "SELECT * FROM ext_memcheck.status()", "SELECT * FROM ext_memcheck.pending_violations()"]
    for sql in denied:
        with buggy.connect(user="mc_plain") as conn:
            with pytest.raises(psycopg.errors.InsufficientPrivilege):
                conn.execute(sql)
    with buggy.connect(user="mc_monitor") as conn:
        conn.execute("SELECT count(*) FROM ext_memcheck.violation_log")
        conn.execute("SELECT * FROM ext_memcheck.status()")
        conn.execute("SELECT * FROM ext_memcheck.pending_violations()")
        conn.execute("SELECT ext_memcheck.begin('')")
        conn.execute("SELECT * FROM ext_memcheck.\"end\"()")
    for sql in denied[1:3]:
        with buggy.connect(user="mc_monitor") as conn:
            with pytest.raises(psycopg.errors.InsufficientPrivilege):
                conn.execute(sql)
