"""The hook library on real clusters: every bug of the example is found, in every load order, with the right
library, lifetime and rate, and nothing is found without it.

Load orders: pg_ext_memcheck first in shared_preload_libraries; listed after buggy_pg_ext; and buggy_pg_ext not
preloaded but loaded by CREATE EXTENSION in the measuring session. Each test switches the example's bugs on for
its own session with `set_config('buggy_pg_ext.bugs', ...)`.
"""

from __future__ import annotations

import json
import threading
from typing import Any, Dict, Iterator, List, Optional, Sequence, Tuple

import psycopg
import pytest

from reporter.cluster import Cluster, ClusterError
from tests.waiting import wait_until

# The hook library's suite runs on every PostgreSQL under test (the version matrix).
pytestmark = [pytest.mark.integration, pytest.mark.all_majors]

SETUP_SQL = """
CREATE EXTENSION IF NOT EXISTS pg_ext_memcheck;
CREATE TABLE IF NOT EXISTS companies AS SELECT g AS id, 'company ' || g AS name FROM generate_series(1, 100) g;
CREATE OR REPLACE FUNCTION two_step(int) RETURNS int LANGUAGE sql AS $$ SELECT 1; SELECT $1 + 1 $$;
CREATE TABLE IF NOT EXISTS t_sub (x int);
CREATE SEQUENCE IF NOT EXISTS s_abort;
CREATE OR REPLACE FUNCTION with_subxact(int) RETURNS int LANGUAGE plpgsql AS
  $$ BEGIN BEGIN RETURN $1; EXCEPTION WHEN others THEN RETURN 0; END; END $$;
"""

LIB = "buggy_pg_ext.so"
Row = Dict[str, Any]

# name -> shared_preload_libraries, and whether the session loads buggy_pg_ext itself
LOAD_ORDERS: Dict[str, Tuple[List[str], bool]] = {
    "first": (["pg_ext_memcheck", "buggy_pg_ext"], False),
    "after": (["buggy_pg_ext", "pg_ext_memcheck"], False),
    "create_extension": (["pg_ext_memcheck"], True),
}


def start_cluster(pg_config: str, tmp_path_factory: pytest.TempPathFactory, preload: Sequence[str],
                  settings: Optional[Dict[str, object]] = None, create_example: bool = True) -> Cluster:
    cluster = Cluster(pg_config, base_dir=tmp_path_factory.mktemp("hooklib"), preload=list(preload),
                      settings=settings or {})
    cluster.init()
    cluster.start()
    with cluster.connect() as conn:
        conn.execute(SETUP_SQL)
        if create_example:
            conn.execute("CREATE EXTENSION IF NOT EXISTS buggy_pg_ext")
    return cluster


@pytest.fixture(scope="module", params=sorted(LOAD_ORDERS), ids=lambda o: f"order-{o}")
def ordered(request: pytest.FixtureRequest, installed_pg_config: str,
            tmp_path_factory: pytest.TempPathFactory) -> Iterator[Tuple[Cluster, bool]]:
    preload, load_in_session = LOAD_ORDERS[request.param]
    cluster = start_cluster(installed_pg_config, tmp_path_factory, preload)
    yield cluster, load_in_session
    cluster.stop()
    cluster.cleanup()


@pytest.fixture(scope="module")
def buggy(installed_pg_config: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Cluster]:
    cluster = start_cluster(installed_pg_config, tmp_path_factory, ["pg_ext_memcheck", "buggy_pg_ext"])
    yield cluster
    cluster.stop()
    cluster.cleanup()


@pytest.fixture(scope="module")
def plain(installed_pg_config: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Cluster]:
    """Only pg_ext_memcheck preloaded: no third-party library at all."""
    cluster = start_cluster(installed_pg_config, tmp_path_factory, ["pg_ext_memcheck"], create_example=False)
    yield cluster
    cluster.stop()
    cluster.cleanup()


def rows(cur: psycopg.Cursor) -> List[Row]:
    names = [d.name for d in cur.description or []]
    return [dict(zip(names, r)) for r in cur.fetchall()]


def session(cluster: Cluster, bugs: Optional[str], load_in_session: bool = False, mode: str = "all",
            settings: Optional[Dict[str, object]] = None) -> psycopg.Connection:
    """A measuring session: bugs set, the example loaded (by CREATE EXTENSION when asked), mode on."""
    conn = cluster.connect()
    if bugs is not None:
        conn.execute("SELECT set_config('buggy_pg_ext.bugs', %s, false)", [bugs])
    if load_in_session:
        conn.execute("DROP EXTENSION IF EXISTS buggy_pg_ext")
        conn.execute("CREATE EXTENSION buggy_pg_ext")
    for name, value in (settings or {}).items():
        conn.execute("SELECT set_config(%s, %s, false)", [name, str(value)])
    conn.execute("SELECT set_config('pg_ext_memcheck.memcheck_mode', %s, false)", [mode])
    return conn


def window(cluster: Cluster, statements: Sequence[str], bugs: Optional[str] = None, repeat: int = 1,
           load_in_session: bool = False, mode: str = "all", pattern: str = "", options: Optional[dict] = None,
           settings: Optional[Dict[str, object]] = None, expect_errors: bool = False) -> List[Row]:
    """Run statements (repeat times, each as its own plain statement) between begin() and end()."""
    with session(cluster, bugs, load_in_session, mode, settings) as conn:
        conn.execute("SELECT ext_memcheck.begin(%s, %s)", [pattern, json.dumps(options) if options else None])
        for _ in range(repeat):
            for sql in statements:
                try:
                    conn.execute(sql, prepare=False)
                except psycopg.Error:
                    if not expect_errors:
                        raise
        return rows(conn.execute('SELECT * FROM ext_memcheck."end"()'))


def only(found: List[Row], **match: Any) -> List[Row]:
    return [r for r in found if all(r[k] == v for k, v in match.items())]


def severe(found: List[Row]) -> List[Row]:
    return [r for r in found if r["severity"] in ("WARNING", "ERROR")]


def within(value: Optional[float], expected: float, tolerance: float = 0.25) -> bool:
    return value is not None and abs(value - expected) <= tolerance * expected


# --- every bug, in every load order ---------------------------------------------------------------------

ROWS_100 = "SELECT sum(buggy_pg_ext_work(g)) FROM generate_series(1, 100) g"
NESTED_500 = "SELECT sum(two_step(g)) FROM generate_series(1, 500) g"

# bug -> (statement, repetitions, what the finding must say; "rate" is what the bug keeps per "unit")
BUGS: Dict[str, Tuple[str, int, Dict[str, Any]]] = {
    "top_ctx_alloc": ("SELECT count(*) FROM companies", 12,
                      dict(check_type="context_leak", lifetime="backend", context_name="TopMemoryContext", rate=8192,
                           unit="statement")),
    "nested_leak": (NESTED_500, 2, dict(check_type="context_leak", lifetime="statement", rate=2048,
                                        unit="statement")),
    "private_ctx_growth": ("SELECT count(*) FROM companies", 25,
                           dict(check_type="context_leak", lifetime="backend", context_name="BuggyPrivateCtx",
                                rate=4096, unit="statement")),
    "func_top_leak": (ROWS_100, 4, dict(check_type="context_leak", lifetime="backend",
                                        context_name="TopMemoryContext", rate=1024, unit="call")),
    "func_row_leak": ("SELECT sum(buggy_pg_ext_work(g)) FROM generate_series(1, 500) g", 2,
                      dict(check_type="context_leak", lifetime="statement", rate=512, unit="call")),
    "func_malloc_leak": (ROWS_100, 4, dict(check_type="malloc_leak", lifetime="backend", rate=4096, unit="call")),
    "subxact_ctx_leak": ("INSERT INTO t_sub SELECT with_subxact(g) FROM generate_series(1, 100) g", 2,
                         dict(check_type="context_leak", lifetime="transaction", context_name="BuggySubxactCtx",
                              rate=8192, unit="subtransaction")),
    "parse_cache_leak": ("SELECT 1", 90, dict(check_type="context_leak", lifetime="backend",
                                              context_name="CacheMemoryContext", rate=1024, unit="statement")),
    "perms_leak": (NESTED_500, 2, dict(check_type="context_leak", lifetime="statement",
                                       context_name="PortalContext", rate=256, unit="statement")),
}


def server_major(cluster: Cluster) -> int:
    return cluster.info.major


def piles_up_on(major: int, bug: str) -> bool:
    """From 18, a SQL function runs its queries in the caller's per-row memory (functions.c): what the
    nested_leak bug allocates there is freed with every row, so it is not a leak, and not reported as one."""
    return not (bug == "nested_leak" and major >= 18)


def piles_up(cluster: Cluster, bug: str) -> bool:
    return piles_up_on(server_major(cluster), bug)


@pytest.mark.parametrize("bug", sorted(BUGS))
def test_each_bug_found_in_every_load_order(ordered: Tuple[Cluster, bool], bug: str) -> None:
    cluster, load_in_session = ordered
    statement, repeat, expect = BUGS[bug]
    if not piles_up(cluster, bug):
        found = window(cluster, [statement], bugs=bug, repeat=repeat, load_in_session=load_in_session)
        assert severe(found) == [], found
        return
    found = window(cluster, [statement], bugs=bug, repeat=repeat, load_in_session=load_in_session)
    match = {k: v for k, v in expect.items() if k not in ("rate", "unit")}
    hits = [r for r in only(found, **match) if r["severity"] in ("WARNING", "ERROR")]
    assert len(hits) == 1, f"{bug}: expected one {match} at WARNING or ERROR, got {found}"
    hit = hits[0]
    assert hit["source_lib"] == LIB
    # the unit a user means: a call of the library's SQL function, a statement run for a hook, a
    # subtransaction for a subtransaction callback
    assert hit["rate_unit"] == expect["unit"], hit
    assert within(hit["rate_bytes"], expect["rate"], 0.10), f"{bug}: {hit['rate_bytes']} bytes per {hit['rate_unit']}"
    assert hit["verdict"] == "leak"
    # the allocating line is known
    assert hit["sites"] and hit["sites"][0]["lib"] == LIB and int(hit["sites"][0]["offset"], 16) > 0
    # nothing else at WARNING or above but what this bug is (its wrong_ctx_alloc twin)
    others = [r for r in severe(found) if r is not hit
              and not (r["check_type"] == "wrong_ctx_alloc" and r["context_name"] == hit["context_name"])]
    assert others == [], others


NO_BUG_EXTRAS = ["CREATE TEMP TABLE IF NOT EXISTS t AS SELECT * FROM companies",
                 "PREPARE p AS SELECT * FROM companies", "EXECUTE p", "DEALLOCATE p",
                 "DO $$BEGIN PERFORM count(*) FROM companies; END$$",
                 "SELECT ext_memcheck.run_scenario('growth_benchmark', 200, 'SELECT count(*) FROM companies')",
                 "SELECT ext_memcheck.run_scenario('tx_abort_loop', 100, 'SELECT count(*) FROM companies')"]


def test_no_warning_without_bugs(ordered: Tuple[Cluster, bool]) -> None:
    """With every bug off, the same workloads give nothing at WARNING or above, in every load order."""
    cluster, load_in_session = ordered
    statements = sorted({statement for statement, _, _ in BUGS.values()}) + NO_BUG_EXTRAS
    found = window(cluster, statements, bugs="", repeat=3, load_in_session=load_in_session)
    assert severe(found) == [], severe(found)


def test_no_warning_without_a_foreign_library(plain: Cluster) -> None:
    statements = sorted({s for s, _, _ in BUGS.values() if "buggy_pg_ext" not in s}) + NO_BUG_EXTRAS
    found = window(plain, statements, bugs=None, repeat=3)
    assert found == [], found


def test_coverage_lists_the_library_and_its_hooks(ordered: Tuple[Cluster, bool]) -> None:
    cluster, load_in_session = ordered
    with session(cluster, "", load_in_session) as conn:
        conn.execute("SELECT count(*) FROM companies")
        cov = rows(conn.execute("SELECT * FROM ext_memcheck.coverage()"))
    assert {"kind": "library", "name": LIB, "measured": True} in [
        {k: r[k] for k in ("kind", "name", "measured")} for r in cov]
    hooks = {r["name"] for r in cov if r["kind"] == "hook" and LIB in r["detail"]}
    assert {"planner", "post_parse_analyze", "ExecutorStart", "ExecutorEnd", "ExecutorCheckPerms"} <= hooks
    assert [r for r in cov if r["kind"] == "gap"] == []


def test_beyond_the_followed_records_allocations_are_sampled(buggy: Cluster) -> None:
    """More live allocations than max_tracked_allocations: the rest are sampled, the finding's figures stay
    within 15% of the exact ones, say they are estimates, and nothing is called a coverage gap."""
    exact = window(buggy, [ROWS_100], bugs="func_top_leak", repeat=15)
    sampled = window(buggy, [ROWS_100], bugs="func_top_leak", repeat=15,
                     settings={"pg_ext_memcheck.max_tracked_allocations": 1024})
    assert only(sampled, check_type="coverage_gap") == []
    truth = only(exact, check_type="context_leak", context_name="TopMemoryContext")
    guess = only(sampled, check_type="context_leak", context_name="TopMemoryContext")
    assert len(truth) == 1 and len(guess) == 1, guess
    # 1,500 calls of 1 kB: 1,024 followed one by one, the other ~476 by about 120 samples
    assert truth[0]["used_delta"] >= 1500 * 1024 and "estimated" not in truth[0]["detail"]
    assert within(guess[0]["used_delta"], truth[0]["used_delta"], 0.15), (guess[0]["used_delta"], truth)
    assert within(guess[0]["rate_bytes"], truth[0]["rate_bytes"], 0.15)
    assert guess[0]["rate_unit"] == truth[0]["rate_unit"] and guess[0]["severity"] == truth[0]["severity"]
    assert "estimated: more than 1024 allocations were live" in guess[0]["detail"]
    with buggy.connect() as conn:
        status = rows(conn.execute("SELECT coverage_gaps FROM ext_memcheck.status()"))[0]
    assert status["coverage_gaps"] == 0


# --- the reference example ---------------------------------------------------------------------------------

def test_reference_example_single_query(buggy: Cluster) -> None:
    found = window(buggy, ["SELECT count(*) FROM companies"], bugs="planner_ctx_leak,top_ctx_alloc")
    leak_ctx = only(found, check_type="context_leak", context_name="BuggyPlannerLeakCtx")
    top = only(found, check_type="context_leak", context_name="TopMemoryContext")
    assert len(leak_ctx) == 1 and leak_ctx[0]["used_delta"] >= 8192
    assert leak_ctx[0]["context_path"] == "TopMemoryContext/MessageContext/BuggyPlannerLeakCtx"
    assert leak_ctx[0]["phase"] == "planner" and leak_ctx[0]["lifetime"] == "statement"
    assert len(top) == 1 and 8192 <= top[0]["used_delta"] < 8192 + 64
    # one statement cannot tell a leak from a cache: nothing above INFO yet
    assert {r["severity"] for r in found} == {"INFO"}
    assert {r["source_lib"] for r in found} == {LIB}


def test_reference_growth_benchmark_1000(buggy: Cluster) -> None:
    with session(buggy, "planner_ctx_leak,top_ctx_alloc") as conn:
        conn.execute("SELECT ext_memcheck.begin('')")
        result = conn.execute(
            "SELECT ext_memcheck.run_scenario(scenario_name := 'growth_benchmark', iterations := 1000,"
            " workload := 'SELECT count(*) FROM companies;')").fetchone()[0]
        found = rows(conn.execute('SELECT * FROM ext_memcheck."end"()'))
    assert result["verdict"] == "leak" and result["iterations"] == 1000 and result["transaction"] == "one"
    top = only(found, check_type="context_leak", context_name="TopMemoryContext")
    assert len(top) == 1 and top[0]["severity"] == "ERROR" and top[0]["lifetime"] == "backend"
    assert 7_500_000 < top[0]["used_delta"] < 9_000_000
    assert 8000 < top[0]["bytes_per_iteration"] < 8600
    wrong = only(found, check_type="wrong_ctx_alloc", context_name="TopMemoryContext")
    assert len(wrong) == 1 and wrong[0]["severity"] == "WARNING"
    # the planner's leaked contexts pile up under MessageContext for the whole scenario statement
    planner = only(found, check_type="context_leak", context_name="BuggyPlannerLeakCtx")
    assert len(planner) == 1 and planner[0]["severity"] == "ERROR" and planner[0]["lifetime"] == "statement"
    assert {r["source_lib"] for r in found} == {LIB}


# --- leak or cache, and how long it lives --------------------------------------------------------------------

def test_one_time_cache_never_warns_but_top_ctx_alloc_errors(buggy: Cluster) -> None:
    with session(buggy, None) as conn:
        conn.execute("SELECT ext_memcheck.begin('')")
        # switched on inside the window, so that its first use is measured
        conn.execute("SELECT set_config('buggy_pg_ext.bugs', 'one_time_cache', false)")
        conn.execute("CALL ext_memcheck.scenario('growth_benchmark', 1000, 'SELECT count(*) FROM companies')")
        found = rows(conn.execute('SELECT * FROM ext_memcheck."end"()'))
    cache = only(found, context_name="BuggyOneTimeCache")
    assert cache and all(r["severity"] == "INFO" and r["verdict"] == "cache" for r in cache), found
    assert severe(found) == []
    with session(buggy, "top_ctx_alloc") as conn:
        conn.execute("SELECT ext_memcheck.begin('')")
        conn.execute("CALL ext_memcheck.scenario('growth_benchmark', 1000, 'SELECT count(*) FROM companies')")
        found = rows(conn.execute('SELECT * FROM ext_memcheck."end"()'))
    top = only(found, check_type="context_leak", context_name="TopMemoryContext")
    assert len(top) == 1 and top[0]["severity"] == "ERROR" and top[0]["verdict"] == "leak"
    assert top[0]["rate_unit"] == "statement" and within(top[0]["rate_bytes"], 8192, 0.10)


def test_one_statement_that_keeps_memory_call_after_call_is_a_leak(buggy: Cluster) -> None:
    """Growth kept until backend exit by the 1000 statements one statement runs (a SQL function's two, per row)
    repeats per statement run: a leak at its rate per statement, although the top-level statement ran once. One
    call that kept memory while the others only allocated and freed scratch space there is a cache."""
    found = window(buggy, [NESTED_500], bugs="top_ctx_alloc")
    top = only(found, check_type="context_leak", context_name="TopMemoryContext")
    assert len(top) == 1 and top[0]["verdict"] == "leak" and top[0]["lifetime"] == "backend", top
    assert top[0]["severity"] == "ERROR" and top[0]["rate_unit"] == "statement"
    # the top-level statement and the 1000 it runs
    assert within(top[0]["rate_bytes"], 8192, 0.10) and top[0]["calls"] == 1001, top
    # switched on inside the window, so that its first use is measured
    found = window(buggy, ["SELECT set_config('buggy_pg_ext.bugs', 'one_time_cache', false)", NESTED_500])
    top = only(found, context_name="TopMemoryContext")
    assert top and all(r["verdict"] == "cache" and r["severity"] == "INFO" for r in top), found
    assert severe(found) == []


def test_scenario_samples_what_the_library_holds_at_each_checkpoint(buggy: Cluster) -> None:
    with session(buggy, "top_ctx_alloc") as conn:
        result = conn.execute("CALL ext_memcheck.scenario('growth_benchmark', 160, 'SELECT count(*) FROM companies')"
                              ).fetchone()[0]
    assert result["checkpoints"] == list(range(0, 161, 10))
    top = [c for c in result["contexts"] if c["path"] == "TopMemoryContext"]
    assert len(top) == 1, result["contexts"]
    samples = top[0]["samples"]
    assert len(samples) == 17
    # 8 KiB per call, held for good: ten calls between checkpoints
    steps = [b - a for a, b in zip(samples, samples[1:])]
    assert all(within(step, 10 * 8192) for step in steps), samples


def test_transaction_memory_is_never_backend_memory(buggy: Cluster) -> None:
    """A context created and deleted within each transaction, and TopTransactionContext growth inside a
    transaction that commits, give no backend-lifetime finding; the per-row subtransaction leak is
    reported with lifetime transaction."""
    found = window(buggy, ["BEGIN", "INSERT INTO t_sub SELECT with_subxact(g) FROM generate_series(1, 100) g",
                           "INSERT INTO t_sub SELECT with_subxact(g) FROM generate_series(1, 100) g", "COMMIT"],
                   bugs="subxact_ctx_leak", repeat=3)
    assert only(found, lifetime="backend") == []
    sub = only(found, context_name="BuggySubxactCtx")
    assert len(sub) == 1 and sub[0]["lifetime"] == "transaction" and sub[0]["calls"] == 200
    assert within(sub[0]["rate_bytes"], 8192)
    # the scenario procedure commits every iteration: the same leak stays a transaction finding
    with session(buggy, "subxact_ctx_leak") as conn:
        conn.execute("SELECT ext_memcheck.begin('')")
        result = conn.execute("CALL ext_memcheck.scenario('growth_benchmark', 20,"
                              " 'INSERT INTO t_sub SELECT with_subxact(g) FROM generate_series(1, 50) g')"
                              ).fetchone()[0]
        found = rows(conn.execute('SELECT * FROM ext_memcheck."end"()'))
    assert result["transaction"] == "each"
    assert only(found, lifetime="backend") == []
    assert only(found, context_name="BuggySubxactCtx", lifetime="transaction")


def test_nested_leak_is_statement_memory_with_a_per_call_rate(buggy: Cluster) -> None:
    found = window(buggy, [NESTED_500], bugs="nested_leak")
    if not piles_up(buggy, "nested_leak"):
        assert found == [], found
        return
    hits = only(found, check_type="context_leak", lifetime="statement")
    assert len(hits) == 1, found
    # per statement run: the SQL function's two statements, 500 times
    assert hits[0]["calls"] == 1000 and within(hits[0]["rate_bytes"], 2048, 0.10), hits
    assert hits[0]["rate_unit"] == "statement"
    assert hits[0]["severity"] == "ERROR" and hits[0]["entry"] == "ExecutorEnd"


# --- cannot be silenced ------------------------------------------------------------------------------------

def test_settings_are_superuser_only(buggy: Cluster) -> None:
    with buggy.connect() as conn:
        conn.execute("DROP ROLE IF EXISTS mc_plain; CREATE ROLE mc_plain LOGIN")
    with buggy.connect(user="mc_plain") as conn:
        for sql in ["SET pg_ext_memcheck.memcheck_mode = off", "SET pg_ext_memcheck.min_leak_bytes = 100000000",
                    "SET pg_ext_memcheck.error_bytes = 2000000000"]:
            with pytest.raises(psycopg.errors.InsufficientPrivilege,
                               match='permission denied to set parameter "pg_ext_memcheck[.]'):
                conn.execute(sql)


@pytest.mark.parametrize("tamper", ["RESET ALL", "DISCARD ALL", "SET pg_ext_memcheck.memcheck_mode = off",
                                    "SET pg_ext_memcheck.warning_bytes = 100000000"])
def test_changing_the_settings_inside_a_window_is_a_finding(buggy: Cluster, tamper: str) -> None:
    found = window(buggy, ["SELECT count(*) FROM companies", tamper, "SELECT count(*) FROM companies"],
                   bugs="top_ctx_alloc", repeat=1)
    changed = only(found, check_type="settings_changed")
    assert changed and changed[0]["severity"] == "ERROR", found


# --- the ring: full, flooded, privileged ------------------------------------------------------------------

@pytest.fixture(scope="module")
def small_ring(installed_pg_config: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Cluster]:
    cluster = start_cluster(installed_pg_config, tmp_path_factory, ["pg_ext_memcheck", "buggy_pg_ext"],
                            settings={"pg_ext_memcheck.ring_capacity": 16, "max_connections": 30})
    yield cluster
    cluster.stop()
    cluster.cleanup()


def status(conn: psycopg.Connection) -> Row:
    return rows(conn.execute("SELECT * FROM ext_memcheck.status()"))[0]


def wait_gone(cluster: Cluster, pids: Sequence[int]) -> None:
    """Backends publish what they found when they exit: wait until they have."""
    with cluster.connect() as admin:
        for _ in range(200):
            alive = admin.execute("SELECT count(*) FROM pg_stat_activity WHERE pid = ANY(%s)", [list(pids)]
                                  ).fetchone()[0]
            if alive == 0:
                return
            admin.execute("SELECT pg_sleep(0.05)")
    raise AssertionError(f"backends {pids} did not exit")


def measuring_role_off(cluster: Cluster) -> None:
    """Stop measuring postgres's sessions. The session that does it started measuring (the role's setting), and
    what it publishes when it exits must land before the next test reads the ring: wait for it."""
    with cluster.connect() as admin:
        admin.execute("ALTER ROLE postgres RESET pg_ext_memcheck.memcheck_mode")
        pid = admin.info.backend_pid
    wait_gone(cluster, [pid])


def flood(cluster: Cluster, sessions: int, user: Optional[str] = None) -> None:
    """Short sessions that each publish findings when they exit (mode set for the role, so any user can)."""
    pids: List[int] = []

    def one() -> None:
        with cluster.connect(user=user) as conn:
            pids.append(conn.info.backend_pid)
            conn.execute("SELECT set_config('buggy_pg_ext.bugs', 'top_ctx_alloc,nested_leak', false)")
            for _ in range(4):
                conn.execute("SELECT count(*) FROM companies", prepare=False)
                conn.execute(NESTED_500, prepare=False)

    threads = [threading.Thread(target=one) for _ in range(sessions)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    wait_gone(cluster, pids)


def test_full_ring_hides_nothing_from_end(small_ring: Cluster) -> None:
    with small_ring.connect() as admin:
        admin.execute("ALTER ROLE postgres SET pg_ext_memcheck.memcheck_mode = 'all'")
    try:
        with session(small_ring, "top_ctx_alloc") as mine:
            mine.execute("SELECT ext_memcheck.begin('')")
            flood(small_ring, 8)
            for _ in range(12):
                mine.execute("SELECT count(*) FROM companies", prepare=False)
            with small_ring.connect() as admin:
                st = status(admin)
            assert st["ring_full"] and st["dropped"] > 0, st
            found = rows(mine.execute('SELECT * FROM ext_memcheck."end"()'))
    finally:
        measuring_role_off(small_ring)
        with small_ring.connect() as admin:
            admin.execute("SELECT ext_memcheck.flush_violations()")
    top = only(found, check_type="context_leak", context_name="TopMemoryContext")
    assert top and top[0]["severity"] == "WARNING"


def test_only_privileged_sessions_write_the_ring(small_ring: Cluster) -> None:
    with small_ring.connect() as admin:
        admin.execute("DROP ROLE IF EXISTS mc_flooder; CREATE ROLE mc_flooder LOGIN")
        admin.execute("GRANT SELECT ON companies TO mc_flooder")
        admin.execute("ALTER ROLE mc_flooder SET pg_ext_memcheck.memcheck_mode = 'all'")
        admin.execute("SELECT ext_memcheck.flush_violations()")
        before = status(admin)
    flood(small_ring, 4, user="mc_flooder")
    with small_ring.connect() as admin:
        after = status(admin)
    assert after["refused"] > before["refused"]
    assert after["written"] == before["written"] and after["pending"] == 0


def test_concurrent_writers_exact_accounting(small_ring: Cluster) -> None:
    with small_ring.connect() as admin:
        admin.execute("SELECT ext_memcheck.flush_violations()")
        admin.execute("ALTER ROLE postgres SET pg_ext_memcheck.memcheck_mode = 'all'")
        before = status(admin)
        logged_before = admin.execute("SELECT count(*) FROM ext_memcheck.violation_log").fetchone()[0]
    try:
        flood(small_ring, 8)
    finally:
        measuring_role_off(small_ring)
    with small_ring.connect() as admin:
        after = status(admin)
        written = after["written"] - before["written"]
        dropped = after["dropped"] - before["dropped"]
        assert written > 16 and dropped > 0
        flushed = admin.execute("SELECT ext_memcheck.flush_violations()").fetchone()[0]
        logged = admin.execute("SELECT count(*) FROM ext_memcheck.violation_log").fetchone()[0] - logged_before
        assert logged == flushed and logged + dropped == written
        assert status(admin)["pending"] == 0
        bad = admin.execute("SELECT count(*) FROM ext_memcheck.violation_log WHERE source_lib <> %s"
                            " OR check_type NOT IN ('context_leak', 'wrong_ctx_alloc') OR finding_id IS NULL",
                            [LIB]).fetchone()[0]
        assert bad == 0


def make_findings(cluster: Cluster, sessions: int) -> None:
    """One finding per session, published by its end()."""
    for _ in range(sessions):
        with session(cluster, "perms_leak") as conn:
            conn.execute("SELECT ext_memcheck.begin('')")
            conn.execute(NESTED_500, prepare=False)
            conn.execute('SELECT * FROM ext_memcheck."end"()')


def test_flush_rollback_loses_nothing(small_ring: Cluster) -> None:
    with small_ring.connect() as admin:
        admin.execute("SELECT ext_memcheck.flush_violations()")
        make_findings(small_ring, 3)
        pending = status(admin)["pending"]
        assert pending == 3
        logged = admin.execute("SELECT count(*) FROM ext_memcheck.violation_log").fetchone()[0]
        with admin.transaction(force_rollback=True):
            assert admin.execute("SELECT ext_memcheck.flush_violations()").fetchone()[0] == pending
        assert status(admin)["pending"] == pending
        with admin.transaction():
            admin.execute("SAVEPOINT s")
            admin.execute("SELECT ext_memcheck.flush_violations()")
            admin.execute("ROLLBACK TO SAVEPOINT s")
        assert status(admin)["pending"] == pending
        assert admin.execute("SELECT ext_memcheck.flush_violations()").fetchone()[0] == pending
        assert status(admin)["pending"] == 0
        assert admin.execute("SELECT count(*) FROM ext_memcheck.violation_log").fetchone()[0] == logged + pending


def test_committed_flush_then_rolled_back_savepoint_flush(small_ring: Cluster) -> None:
    """The savepoint's rollback must not undo the flush committed earlier in the same transaction."""
    with small_ring.connect() as admin:
        admin.execute("SELECT ext_memcheck.flush_violations()")
        make_findings(small_ring, 2)
        with admin.transaction():
            assert admin.execute("SELECT ext_memcheck.flush_violations()").fetchone()[0] == 2
            make_findings(small_ring, 1)
            admin.execute("SAVEPOINT s")
            assert admin.execute("SELECT ext_memcheck.flush_violations()").fetchone()[0] == 1
            admin.execute("ROLLBACK TO SAVEPOINT s")
        assert status(admin)["pending"] == 1
        assert admin.execute("SELECT ext_memcheck.flush_violations()").fetchone()[0] == 1
        assert status(admin)["pending"] == 0


def test_concurrent_flushes_exactly_once(small_ring: Cluster) -> None:
    with small_ring.connect() as admin:
        admin.execute("SELECT ext_memcheck.flush_violations()")
        logged = admin.execute("SELECT count(*) FROM ext_memcheck.violation_log").fetchone()[0]
    make_findings(small_ring, 4)
    first = small_ring.connect(autocommit=False)
    try:
        assert first.execute("SELECT ext_memcheck.flush_violations()").fetchone()[0] == 4
        result: Dict[str, int] = {}
        started = threading.Event()

        def second() -> None:
            with small_ring.connect() as conn:  # blocks on the first flusher's unique entries
                result["pid"] = conn.info.backend_pid
                started.set()
                result["n"] = conn.execute("SELECT ext_memcheck.flush_violations()").fetchone()[0]

        t = threading.Thread(target=second)
        t.start()
        with small_ring.connect() as watcher:
            wait_until(started.is_set, "the second flusher's connection")
            # the second flush waits for the first: the server says the first flusher's backend blocks it
            wait_until(lambda: first.info.backend_pid in watcher.execute(
                "SELECT pg_blocking_pids(%s)", (result["pid"],)).fetchone()[0], "the second flush to wait")
        assert "n" not in result
        first.rollback()  # the first loses: the second must insert everything
        t.join()
        assert result["n"] == 4
    finally:
        first.close()
    with small_ring.connect() as admin:
        assert admin.execute("SELECT count(*) FROM ext_memcheck.violation_log").fetchone()[0] == logged + 4
        assert status(admin)["pending"] == 0


def test_privileges(buggy: Cluster) -> None:
    with buggy.connect() as conn:
        conn.execute("DROP ROLE IF EXISTS mc_plain; CREATE ROLE mc_plain LOGIN")
        conn.execute("DROP ROLE IF EXISTS mc_monitor; CREATE ROLE mc_monitor LOGIN IN ROLE pg_read_all_stats")
        conn.execute("DROP ROLE IF EXISTS mc_flusher; CREATE ROLE mc_flusher LOGIN")
        conn.execute("GRANT USAGE ON SCHEMA ext_memcheck TO mc_flusher")
        conn.execute("GRANT EXECUTE ON FUNCTION ext_memcheck.flush_violations() TO mc_flusher")
    denied = ["SELECT * FROM ext_memcheck.violation_log", "SELECT ext_memcheck.flush_violations()",
              "SELECT ext_memcheck.run_scenario('growth_benchmark', 1, 'SELECT 1')",
              "CALL ext_memcheck.scenario('growth_benchmark', 1, 'SELECT 1')",
              "SELECT * FROM ext_memcheck.status()", "SELECT * FROM ext_memcheck.pending_violations()"]
    for sql in denied:
        with buggy.connect(user="mc_plain") as conn:
            with pytest.raises(psycopg.errors.InsufficientPrivilege, match="permission denied for"):
                conn.execute(sql)
    with buggy.connect(user="mc_monitor") as conn:
        conn.execute("SELECT count(*) FROM ext_memcheck.violation_log")
        conn.execute("SELECT * FROM ext_memcheck.status()")
        conn.execute("SELECT * FROM ext_memcheck.coverage()")
        conn.execute("SELECT ext_memcheck.begin('')")
        conn.execute('SELECT * FROM ext_memcheck."end"()')
    for sql in denied[1:4]:
        with buggy.connect(user="mc_monitor") as conn:
            with pytest.raises(psycopg.errors.InsufficientPrivilege, match="permission denied for"):
                conn.execute(sql)
    # SECURITY DEFINER: USAGE on the schema and EXECUTE on flush_violations() are enough
    make_findings(buggy, 1)  # published to the ring by its end()
    with buggy.connect() as conn:
        assert conn.execute("SELECT pending FROM ext_memcheck.status()").fetchone()[0] > 0
        logged = conn.execute("SELECT count(*) FROM ext_memcheck.violation_log").fetchone()[0]
    with buggy.connect(user="mc_flusher") as conn:
        flushed = conn.execute("SELECT ext_memcheck.flush_violations()").fetchone()[0]
        with pytest.raises(psycopg.errors.InsufficientPrivilege, match="permission denied for"):
            conn.execute("SELECT * FROM ext_memcheck.violation_log")
    with buggy.connect() as conn:
        assert flushed > 0
        assert conn.execute("SELECT count(*) FROM ext_memcheck.violation_log").fetchone()[0] == logged + flushed


# --- modes, thresholds, windows ---------------------------------------------------------------------------

@pytest.mark.parametrize("mode,phases", [("planner", {"planner"}), ("executor", {"executor"}),
                                         ("all", {"planner", "executor"}), ("off", set()), ("none", set())])
def test_modes(buggy: Cluster, mode: str, phases: set) -> None:
    found = window(buggy, ["SELECT count(*) FROM companies"], bugs="planner_ctx_leak,top_ctx_alloc", mode=mode,
                   repeat=3)
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


def test_severity_thresholds(buggy: Cluster) -> None:
    """Repeating growth: INFO from min_leak_bytes, WARNING above warning_bytes, ERROR above error_bytes."""
    def severity(**settings: int) -> Optional[str]:
        found = only(window(buggy, ["SELECT count(*) FROM companies"], bugs="top_ctx_alloc", repeat=10,
                            settings={f"pg_ext_memcheck.{k}": v for k, v in settings.items()}),
                     check_type="context_leak", context_name="TopMemoryContext")
        assert len(found) <= 1
        return found[0]["severity"] if found else None

    grown = 10 * 8208  # what ten statements leave behind
    assert severity() == "WARNING"  # defaults: 8 kB / 64 kB / 1 MB
    assert severity(min_leak_bytes=grown + 100) is None
    assert severity(warning_bytes=grown + 100) == "INFO"
    assert severity(warning_bytes=1, error_bytes=grown - 100) == "ERROR"
    assert severity(warning_bytes=1, error_bytes=grown + 100) == "WARNING"


def test_begin_pattern_and_allowlist(buggy: Cluster) -> None:
    found = window(buggy, ["SELECT count(*) FROM companies"], bugs="planner_ctx_leak,top_ctx_alloc",
                   pattern="Buggy%", repeat=3)
    assert found and {r["context_name"] for r in found} == {"BuggyPlannerLeakCtx"}
    found = window(buggy, ["SELECT count(*) FROM companies"], bugs="planner_ctx_leak,top_ctx_alloc",
                   options={"allowed_contexts": ["TopMemoryContext"]}, repeat=3)
    assert only(found, check_type="wrong_ctx_alloc") == []
    assert only(found, check_type="context_leak", context_name="TopMemoryContext")


def test_rejected_begin_keeps_the_open_window(buggy: Cluster) -> None:
    with session(buggy, "top_ctx_alloc") as conn:
        conn.execute("SELECT ext_memcheck.begin('', '{\"allowed_contexts\": [\"TopMemoryContext\"]}')")
        with pytest.raises(psycopg.Error, match="allowed_contexts"):
            conn.execute("SELECT ext_memcheck.begin('', '{\"allowed_contexts\": [1]}')")
        for _ in range(3):
            conn.execute("SELECT count(*) FROM companies", prepare=False)
        found = rows(conn.execute('SELECT * FROM ext_memcheck."end"()'))
    assert only(found, check_type="wrong_ctx_alloc") == []
    assert only(found, check_type="context_leak", context_name="TopMemoryContext")


def test_end_without_begin_and_window_is_per_backend(buggy: Cluster) -> None:
    with buggy.connect() as conn:
        with pytest.raises(psycopg.Error, match="without ext_memcheck.begin"):
            conn.execute('SELECT * FROM ext_memcheck."end"()')
    with buggy.connect() as watcher, session(buggy, "top_ctx_alloc") as worker:
        watcher.execute("SELECT ext_memcheck.begin('')")
        for _ in range(3):
            worker.execute("SELECT count(*) FROM companies", prepare=False)
        assert rows(watcher.execute('SELECT * FROM ext_memcheck."end"()')) == []


@pytest.mark.parametrize("sql,message", [
    ("SELECT ext_memcheck.run_scenario('no_such', 10, 'SELECT 1')", "scenario_name"),
    ("SELECT ext_memcheck.run_scenario(NULL, 10, 'SELECT 1')", "scenario_name"),
    ("SELECT ext_memcheck.run_scenario('growth_benchmark', -5, 'SELECT 1')", "iterations"),
    ("SELECT ext_memcheck.run_scenario('growth_benchmark', 0, 'SELECT 1')", "iterations"),
    ("SELECT ext_memcheck.run_scenario('growth_benchmark', 5, '  ')", "workload"),
    ("SELECT ext_memcheck.run_scenario('growth_benchmark', 5, 'SELECT 1', '{\"transaction\": \"each\"}')",
     "cannot commit"),
    ("SELECT ext_memcheck.run_scenario('growth_benchmark', 5, 'SELECT 1', '{\"transaction\": \"x\"}')",
     "transaction"),
    ("SELECT ext_memcheck.run_scenario('growth_benchmark', 5, 'BEGIN')", "cannot run inside a scenario"),
    ("SELECT ext_memcheck.run_scenario('growth_benchmark', 5, 'SAVEPOINT s')", "cannot run inside a scenario"),
    ("SELECT ext_memcheck.run_scenario('growth_benchmark', 5, 'COPY companies FROM STDIN')",
     "cannot run inside a scenario"),
    ("SELECT ext_memcheck.run_scenario('tx_abort_loop', 5, 'COMMIT')", "cannot run inside a scenario"),
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


# --- scenarios --------------------------------------------------------------------------------------------

def test_tx_abort_loop(buggy: Cluster) -> None:
    with session(buggy, "") as conn:
        with pytest.raises(psycopg.Error, match="every iteration of the workload failed"):
            conn.execute("SELECT ext_memcheck.run_scenario('tx_abort_loop', 10, 'SELECT 1/0')")
    with session(buggy, "") as conn:
        result = conn.execute("SELECT ext_memcheck.run_scenario('tx_abort_loop', 10,"
                              " 'SELECT 1/(g % 2) FROM generate_series(1, 1) g')").fetchone()[0]
        assert result["errors"] == 0 and "first_error" not in result
        # some iterations fail: counted, and the first error named with its SQLSTATE
        result = conn.execute("SELECT ext_memcheck.run_scenario('tx_abort_loop', 10,"
                              " 'SELECT 1/(nextval(''s_abort'') % 2)::int')").fetchone()[0]
        assert result["errors"] == 5 and result["first_sqlstate"] == "22012"
        assert result["first_error"] == "division by zero"
    with session(buggy, "top_ctx_alloc", mode="executor") as conn:
        conn.execute("SELECT ext_memcheck.begin('')")
        result = conn.execute("SELECT ext_memcheck.run_scenario('tx_abort_loop', 200,"
                              " 'SELECT count(*) FROM companies')").fetchone()[0]
        found = rows(conn.execute('SELECT * FROM ext_memcheck."end"()'))
    # TopMemoryContext is not rolled back with the subtransaction: the leak survives every abort
    assert result["errors"] == 0 and result["verdict"] == "leak"
    top = only(found, check_type="context_leak", context_name="TopMemoryContext")
    assert len(top) == 1 and 8000 < top[0]["bytes_per_iteration"] < 8600


def test_scenario_does_not_swallow_cancels(buggy: Cluster) -> None:
    with buggy.connect() as conn:
        conn.execute("SET statement_timeout = '300ms'")
        with pytest.raises(psycopg.errors.QueryCanceled, match="canceling statement due to statement timeout"):
            conn.execute("SELECT ext_memcheck.run_scenario('tx_abort_loop', 1000, 'SELECT pg_sleep(0.05)')")


def test_scenario_procedure_commits_each_iteration(buggy: Cluster) -> None:
    with session(buggy, "") as conn:
        result = conn.execute("CALL ext_memcheck.scenario('growth_benchmark', 5, 'INSERT INTO t_sub VALUES (1)')"
                              ).fetchone()[0]
        assert result["transaction"] == "each" and result["iterations"] == 5
        conn.execute("BEGIN")
        result = conn.execute("CALL ext_memcheck.scenario('growth_benchmark', 5, 'SELECT 1')").fetchone()[0]
        conn.execute("COMMIT")
        assert result["transaction"] == "one" and "transaction block" in result["transaction_note"]


# --- errors inside measured statements ----------------------------------------------------------------------

def test_failed_statement_leaves_nothing_stale(buggy: Cluster) -> None:
    found = window(buggy, ["SELECT 1/0", "SELECT sum(two_step(g) / (g - 250)) FROM generate_series(1, 500) g",
                           "SELECT count(*) FROM companies"],
                   bugs="top_ctx_alloc", mode="executor", expect_errors=True, repeat=4)
    top = only(found, check_type="context_leak", context_name="TopMemoryContext")
    # the leak is measured in the statements that ran; the failed ones leave no stale segment behind
    assert len(top) == 1 and top[0]["source_lib"] == LIB
    assert all(r["source_lib"] == LIB for r in found)


# --- resource leaks -----------------------------------------------------------------------------------------

@pytest.mark.parametrize("bug,resource", [("dsm_leak", "dynamic shared memory segment"),
                                          ("relcache_leak", "relcache reference")])
def test_resource_leaks(buggy: Cluster, bug: str, resource: str) -> None:
    found = window(buggy, ["SELECT count(*) FROM companies"], bugs=bug, repeat=3)
    hits = only(found, check_type="resource_leak", context_name=resource)
    # three statements, and begin()'s own statement that ends inside the window
    assert len(hits) == 1 and hits[0]["source_lib"] == LIB and 3 <= hits[0]["occurrences"] <= 4


# --- a library that insists on being first ------------------------------------------------------------------

def test_library_that_insists_on_being_first(installed_pg_config: str,
                                             tmp_path_factory: pytest.TempPathFactory) -> None:
    refused = Cluster(installed_pg_config, base_dir=tmp_path_factory.mktemp("first"),
                      preload=["pg_ext_memcheck", "buggy_pg_ext"],
                      settings={"buggy_pg_ext.require_first": "on"})
    refused.init()
    try:
        with pytest.raises(ClusterError, match="must be loaded first"):  # the log's tail, in the error
            refused.start(timeout=20)
        assert "must be loaded first" in refused.read_log()
    finally:
        try:
            refused.stop(mode="immediate")
        except ClusterError:  # it never started
            pass
        refused.cleanup()
    cluster = start_cluster(installed_pg_config, tmp_path_factory, ["buggy_pg_ext", "pg_ext_memcheck"],
                            settings={"buggy_pg_ext.require_first": "on"})
    try:
        found = window(cluster, ["SELECT count(*) FROM companies"], bugs="top_ctx_alloc", repeat=12)
        top = only(found, check_type="context_leak", context_name="TopMemoryContext")
        assert len(top) == 1 and top[0]["severity"] == "WARNING" and top[0]["source_lib"] == LIB
    finally:
        cluster.stop()
        cluster.cleanup()


# --- the extension's upgrade path ---------------------------------------------------------------------------

def test_upgrade_from_1_0(plain: Cluster) -> None:
    with plain.connect() as conn:
        conn.execute("CREATE DATABASE upgrade_test")
    try:
        with plain.connect(dbname="upgrade_test") as conn:
            conn.execute("CREATE EXTENSION pg_ext_memcheck VERSION '1.0'")
            conn.execute("ALTER EXTENSION pg_ext_memcheck UPDATE TO '1.1'")
            version = conn.execute("SELECT extversion FROM pg_extension WHERE extname = 'pg_ext_memcheck'"
                                   ).fetchone()[0]
            assert version == "1.1"
            conn.execute("SELECT ext_memcheck.begin('')")
            assert rows(conn.execute('SELECT * FROM ext_memcheck."end"()')) == []
            # nothing foreign ran: the ring holds nothing, and the upgraded flush says so
            assert conn.execute("SELECT ext_memcheck.flush_violations()").fetchone()[0] == 0
            cols = {r[0] for r in conn.execute("SELECT attname FROM pg_attribute WHERE attrelid ="
                                               " 'ext_memcheck.violation_log'::regclass AND attnum > 0")}
            assert {"lifetime", "verdict", "rate_bytes", "sites", "finding_id"} <= cols
    finally:
        with plain.connect() as conn:
            conn.execute("DROP DATABASE upgrade_test")
