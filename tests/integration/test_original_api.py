"""The original tool's checks, scenarios and SQL API on real clusters (issue 14).

shmem_overrun (guard bytes behind shared-memory allocations), dsm_leak (DSM segments followed through the GOT),
use_after_reset (context_reset_storm in background workers), concurrent_backends (crashes, deadlocks, lock
timeouts, per-backend findings), wrong_context_probe, ctx_bloat from growth_benchmark with bloat_min_bytes,
clear_violations, the DSM tracking table, the shmem registry, and the original's documented call forms verbatim.
Each new bug of the example is found; with the bugs off, and on a cluster without any third-party library,
nothing is found at WARNING or above.
"""

from __future__ import annotations

import os
import signal
import threading
from typing import Any, Dict, Iterator, List, Optional, Tuple

import psycopg
import pytest

from reporter.cluster import Cluster
from tests.integration.test_hooklib import LIB, LOAD_ORDERS, only, rows, session, severe, start_cluster, window
from tests.lockstep import DEADLOCK, LOCK_HOLDER
from tests.waiting import wait_until

pytestmark = [pytest.mark.integration, pytest.mark.all_majors]

Row = Dict[str, Any]
PRELOADED = ("first", "after")  # shared memory exists only when the example is preloaded


@pytest.fixture(scope="module", params=sorted(LOAD_ORDERS), ids=lambda o: f"order-{o}")
def any_order(request: pytest.FixtureRequest, installed_pg_config: str,
              tmp_path_factory: pytest.TempPathFactory) -> Iterator[Tuple[Cluster, bool, str]]:
    preload, load_in_session = LOAD_ORDERS[request.param]
    cluster = start_cluster(installed_pg_config, tmp_path_factory, preload)
    yield cluster, load_in_session, request.param
    cluster.stop()
    cluster.cleanup()


@pytest.fixture(scope="module")
def buggy(installed_pg_config: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Cluster]:
    cluster = start_cluster(installed_pg_config, tmp_path_factory, ["pg_ext_memcheck", "buggy_pg_ext"])
    with cluster.connect() as conn:
        conn.execute("CREATE TABLE IF NOT EXISTS d (id int PRIMARY KEY, v int);"
                     " INSERT INTO d VALUES (1, 0), (2, 0) ON CONFLICT DO NOTHING;"
                     " CREATE SEQUENCE IF NOT EXISTS side; CREATE SEQUENCE IF NOT EXISTS calls")
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


def scenario(conn: psycopg.Connection, sql: str, *params: object) -> Dict[str, Any]:
    result = conn.execute(sql, list(params), prepare=False).fetchone()
    assert result is not None
    return result[0]


def windowed(cluster: Cluster, bugs: Optional[str], sql: str, *params: object,
             load_in_session: bool = False) -> Tuple[Dict[str, Any], List[Row]]:
    """begin(), one scenario call, end(): the scenario's result and the window's findings."""
    with session(cluster, bugs, load_in_session) as conn:
        conn.execute("SELECT ext_memcheck.begin('')")
        result = scenario(conn, sql, *params)
        return result, rows(conn.execute('SELECT * FROM ext_memcheck."end"()'))


def start_time(cluster: Cluster) -> Any:
    with cluster.connect() as conn:
        return conn.execute("SELECT pg_postmaster_start_time()").fetchone()[0]


# --- shmem_overrun ------------------------------------------------------------------------------------------

@pytest.mark.parametrize("order", PRELOADED)
def test_shmem_overrun_found_with_its_owner(installed_pg_config: str, tmp_path_factory: pytest.TempPathFactory,
                                            order: str) -> None:
    cluster = start_cluster(installed_pg_config, tmp_path_factory, LOAD_ORDERS[order][0])
    try:
        with cluster.connect() as conn:
            guard = rows(conn.execute("SELECT * FROM ext_memcheck.shmem_guards() WHERE name = 'buggy_pg_ext state'"))
        # 28 bytes of slack behind the 100 requested, and a guard block of a cache line behind that
        assert len(guard) == 1 and guard[0]["owner"] == LIB and guard[0]["guarded"]
        assert guard[0]["size"] == 100 and guard[0]["allocated_size"] == 128 and guard[0]["guard_bytes"] == 28 + 128
        found = window(cluster, ["SELECT count(*) FROM companies"], bugs="shmem_overrun", repeat=3)
        hits = only(found, check_type="shmem_overrun")
        assert len(hits) == 1, found
        hit = hits[0]
        assert hit["severity"] == "ERROR" and hit["source_lib"] == LIB
        assert hit["context_name"] == "buggy_pg_ext state" and hit["context_path"] == "shared memory/buggy_pg_ext state"
        assert "owner buggy_pg_ext.so" in hit["detail"] and "1 byte past its end" in hit["detail"]
        assert severe(found) == hits, found
        found = window(cluster, ["SELECT count(*) FROM companies"], bugs="", repeat=3)
        assert only(found, check_type="shmem_overrun") == []
    finally:
        cluster.stop()
        cluster.cleanup()


def test_shmem_sentinel_probe_names_overruns_and_unguarded(buggy: Cluster) -> None:
    result, found = windowed(buggy, "shmem_overrun", "SELECT ext_memcheck.run_scenario('shmem_sentinel_probe', 3,"
                                                     " 'SELECT count(*) FROM companies')")
    guards = result["guards"]
    assert guards["checks"] == 3 and guards["overruns_found"] >= 1
    assert [o["name"] for o in guards["overrun"]] == ["buggy_pg_ext state"]
    assert guards["overrun"][0]["owner"] == LIB and guards["overrun"][0]["bytes_past_end"] == 1
    # PostgreSQL's buffer pool is a multiple of the cache line: no room for a guard, and said so
    assert "Buffer Blocks" in guards["unguarded"] and guards["guarded"] > 10
    assert [f["check"] for f in result["findings"] if f["check"] == "shmem_overrun"] == ["shmem_overrun"]
    assert only(found, check_type="shmem_overrun", context_name="buggy_pg_ext state")
    with buggy.connect() as conn:
        cov = rows(conn.execute("SELECT * FROM ext_memcheck.coverage() WHERE kind = 'shared memory'"))
    ours = [r for r in cov if r["name"] == "buggy_pg_ext state"]
    assert len(ours) == 1 and ours[0]["measured"] and LIB in ours[0]["detail"]
    assert any(r["name"] == "Buffer Blocks" and not r["measured"] and "no room" in r["detail"] for r in cov)


def test_shmem_registry_probe_and_reset(buggy: Cluster) -> None:
    with session(buggy, "") as conn:
        conn.execute("SELECT ext_memcheck.clear_shmem_registry()")
        assert conn.execute("SELECT ext_memcheck.probe_check('buggy_pg_ext state')").fetchone()[0] is True
        conn.execute("SELECT set_config('buggy_pg_ext.bugs', 'shmem_overrun', false)")
        conn.execute("SELECT count(*) FROM companies")
        conn.execute("SELECT set_config('buggy_pg_ext.bugs', '', false)")
        assert conn.execute("SELECT ext_memcheck.probe_check('buggy_pg_ext state')").fetchone()[0] is False
        overruns = conn.execute("SELECT overruns FROM ext_memcheck.shmem_guards()"
                                " WHERE name = 'buggy_pg_ext state'").fetchone()[0]
        assert overruns >= 1
        conn.execute("SELECT ext_memcheck.clear_shmem_registry()")
        after = rows(conn.execute("SELECT overruns, detected_at FROM ext_memcheck.shmem_guards()"
                                  " WHERE name = 'buggy_pg_ext state'"))
        assert after == [{"overruns": 0, "detected_at": None}]
        assert conn.execute("SELECT ext_memcheck.probe_check('buggy_pg_ext state')").fetchone()[0] is True
        text = conn.execute("SELECT ext_memcheck.register_shmem_probe(seg_name := 'buggy_pg_ext state',"
                            " allocated_size := 100)").fetchone()[0]
        assert "buggy_pg_ext state" in text and LIB in text and "156 guard bytes from offset 100" in text
        with pytest.raises(psycopg.errors.UndefinedObject, match="no_such_segment"):
            conn.execute("SELECT ext_memcheck.register_shmem_probe('no_such_segment', 10)")
        conn.execute("SELECT ext_memcheck.clear_shmem_registry()")


# --- dsm_leak ---------------------------------------------------------------------------------------------

def test_pinned_dsm_mappings_are_dsm_leaks(any_order: Tuple[Cluster, bool, str]) -> None:
    cluster, load_in_session, _ = any_order
    with session(cluster, "dsm_pin_leak", load_in_session) as conn:
        pid = conn.info.backend_pid
        conn.execute("SELECT ext_memcheck.begin('')")
        for _ in range(3):
            conn.execute("SELECT count(*) FROM companies", prepare=False)
        found = rows(conn.execute('SELECT * FROM ext_memcheck."end"()'))
        tracked = rows(conn.execute("SELECT * FROM ext_memcheck.dsm_tracking() WHERE backend_pid = %s", [pid]))
    hits = only(found, check_type="dsm_leak")
    assert len(hits) == 1, found
    hit = hits[0]
    # three statements, and begin()'s own that ended inside the window
    assert hit["severity"] == "ERROR" and hit["lifetime"] == "backend" and hit["verdict"] == "leak"
    assert hit["source_lib"] == LIB and 3 <= hit["occurrences"] <= 4 and hit["used_delta"] == 8192 * hit["occurrences"]
    assert "pinned" in hit["detail"] and hit["entry"] == "ExecutorEnd"
    assert hit["sites"] and hit["sites"][0]["lib"] == LIB and int(hit["sites"][0]["offset"], 16) > 0
    assert severe(found) == hits, found
    assert len(tracked) >= 3 and all(t["pinned"] and not t["detached"] and t["source_lib"] == LIB
                                     and t["origin"] == "auto" and t["size_bytes"] == 8192 for t in tracked)


def test_unpinned_segment_is_released_at_commit_not_a_dsm_leak(buggy: Cluster) -> None:
    found = window(buggy, ["SELECT count(*) FROM companies"], bugs="dsm_leak", repeat=3)
    assert only(found, check_type="dsm_leak") == []
    assert only(found, check_type="resource_leak", context_name="dynamic shared memory segment")


def test_dsm_tracking_table(buggy: Cluster) -> None:
    with buggy.connect() as conn:
        conn.execute("SELECT ext_memcheck.clear_dsm_tracking()")
        assert conn.execute("SELECT count(*) FROM ext_memcheck.dsm_tracking()").fetchone()[0] == 0
    with session(buggy, "dsm_pin_leak", mode="off") as conn:
        pid = conn.info.backend_pid
        conn.execute("SELECT count(*) FROM companies")  # measuring off: created, not followed
        conn.execute("SELECT set_config('buggy_pg_ext.bugs', '', false)")
        handle = conn.execute("SELECT buggy_pg_ext_last_dsm_handle()").fetchone()[0]
        assert handle > 0
        text = conn.execute("SELECT ext_memcheck.track_dsm_handle(%s)", [handle]).fetchone()[0]
        assert str(handle) in text and "mapped in this backend" in text
        row = rows(conn.execute("SELECT * FROM ext_memcheck.dsm_tracking() WHERE segid = %s", [handle]))
        assert len(row) == 1 and row[0]["backend_pid"] == pid and row[0]["origin"] == "user"
        assert row[0]["size_bytes"] == 8192 and row[0]["detached"] is False
        with pytest.raises(psycopg.errors.UndefinedObject, match="no DSM segment"):
            conn.execute("SELECT ext_memcheck.track_dsm_handle(1234)")
        with pytest.raises(psycopg.errors.InvalidParameterValue, match="handle"):
            conn.execute("SELECT ext_memcheck.track_dsm_handle(-1)")
    # the pinned mapping went away with the backend, and its row says so
    with buggy.connect() as conn:
        wait_until(lambda: conn.execute("SELECT detached FROM ext_memcheck.dsm_tracking() WHERE segid = %s",
                                        [handle]).fetchone() == (True,), "the exited backend's row to say detached")
        conn.execute("SELECT ext_memcheck.clear_dsm_tracking()")
        assert conn.execute("SELECT count(*) FROM ext_memcheck.dsm_tracking()").fetchone()[0] == 0


@pytest.mark.parametrize("bugs,expect", [
    ("", dict(attaches=0, detaches=0, released_at_cleanup=0, still_mapped=0, pinned=0, balanced=True)),
    ("dsm_leak", dict(attaches=5, detaches=0, released_at_cleanup=5, still_mapped=0, pinned=0, balanced=False)),
    ("dsm_pin_leak", dict(attaches=5, detaches=0, released_at_cleanup=0, still_mapped=5, pinned=5, balanced=False)),
])
def test_dsm_lifecycle_check_balance(buggy: Cluster, bugs: str, expect: Dict[str, Any]) -> None:
    result, found = windowed(buggy, bugs, "CALL ext_memcheck.scenario('dsm_lifecycle_check', 5,"
                                          " 'SELECT count(*) FROM companies')")
    dsm = result["dsm"]
    assert {k: dsm[k] for k in expect} == expect, dsm
    assert dsm["attaches_per_iteration"] == [expect["attaches"] // 5] * 5
    assert dsm["left_mapped_per_iteration"] == [expect["still_mapped"] // 5] * 5
    leaks = only(found, check_type="dsm_leak")
    if expect["still_mapped"]:
        # end() counts every segment still mapped, begin()'s own statement's too
        assert len(leaks) == 1 and leaks[0]["severity"] == "ERROR" and 5 <= leaks[0]["occurrences"] <= 6
    else:
        assert leaks == []


# --- use_after_reset -------------------------------------------------------------------------------------------

def test_context_reset_storm_finds_use_after_reset(any_order: Tuple[Cluster, bool, str]) -> None:
    cluster, load_in_session, _ = any_order
    result, found = windowed(cluster, "use_after_reset",
                             "SELECT ext_memcheck.run_scenario('context_reset_storm', target => 'buggy_pg_ext_cached',"
                             " iterations => 20)", load_in_session=load_in_session)
    storm = result["storm"]
    # plain runs agree (42, from memory freed long ago but not reused); the poisoned one reads the pattern
    assert storm["failure"]["kind"] == "changed" and storm["failure"]["run"] == 2
    assert storm["failure"]["expected"] == "42" and storm["failure"]["got"] == str(-606348325)
    assert storm["comparable_runs"] == 20 and storm["quarantined_contexts"] >= 1
    hits = only(found, check_type="use_after_reset")
    assert len(hits) == 1, found
    hit = hits[0]
    assert hit["severity"] == "ERROR" and hit["source_lib"] == LIB and hit["context_name"] == "ExecutorState"
    assert hit["lifetime"] == "transaction" and "was poisoned when that context was deleted" in hit["detail"]
    assert hit["sites"] and hit["sites"][0]["lib"] == LIB and int(hit["sites"][0]["offset"], 16) > 0
    assert [r for r in severe(found) if r["check_type"] != "use_after_reset"] == []


def test_context_reset_storm_survives_a_crash(buggy: Cluster) -> None:
    before = start_time(buggy)
    result, found = windowed(buggy, "use_after_reset",
                             "SELECT ext_memcheck.run_scenario('context_reset_storm',"
                             " target => 'buggy_pg_ext_cached_label', iterations => 10, reset_frequency => 1)")
    storm = result["storm"]
    assert storm["storm"]["status"] == "crashed" and storm["storm"]["crash"]["signal"] in ("SIGSEGV", "SIGBUS")
    assert storm["failure"]["kind"] == "crash" and storm["failure"]["run"] == 2
    hits = only(found, check_type="use_after_reset")
    assert len(hits) == 1 and "crashed" in hits[0]["detail"] and hits[0]["context_name"] == "ExecutorState"
    # caught in the worker, which left cleanly: the server did not restart, and this session lives on
    assert start_time(buggy) == before
    assert "exited with exit code 1" in buggy.read_log()


def test_context_reset_storm_error_after_reset(buggy: Cluster) -> None:
    result, found = windowed(buggy, "use_after_reset", "SELECT ext_memcheck.run_scenario('context_reset_storm',"
                                                       " workload => 'SELECT 1 / CASE WHEN buggy_pg_ext_cached()"
                                                       " = 42 THEN 1 ELSE 0 END', iterations => 10)")
    failure = result["storm"]["failure"]
    assert failure["kind"] == "error" and failure["run"] == 2 and "division by zero" in failure["got"]
    hits = only(found, check_type="use_after_reset")
    assert len(hits) == 1 and "failed: \"division by zero\"" in hits[0]["detail"]


def test_context_reset_storm_clean_and_reset_frequency(buggy: Cluster) -> None:
    result, found = windowed(buggy, "", "SELECT ext_memcheck.run_scenario('context_reset_storm',"
                                        " target => 'public.buggy_pg_ext_cached', iterations => 30,"
                                        " reset_frequency => 5)")
    storm = result["storm"]
    assert storm["failure"] is None and storm["reset_frequency"] == 5 and storm["comparable_runs"] == 30
    assert storm["storm"]["status"] == "done" and storm["storm"]["runs"] == 30
    assert found == []


def test_worker_crash_the_server_could_not_survive_is_reported_on_the_next_call(buggy: Cluster) -> None:
    """A worker killed with SIGKILL restarts the server (and takes the caller with it); the breadcrumb in the
    data directory becomes a finding of the next window."""
    errors: List[BaseException] = []

    def run() -> None:
        try:
            with session(buggy, "") as conn:
                conn.execute("SELECT ext_memcheck.run_scenario('concurrent_backends', workers => 2, iterations => 1,"
                             " workload => 'SELECT pg_sleep(60)')")
        except BaseException as exc:  # noqa: BLE001 - the connection dies with the server's restart
            errors.append(exc)

    caller = threading.Thread(target=run)
    caller.start()
    with buggy.connect() as conn:
        pids: List[int] = wait_until(
            lambda: len(found := [r[0] for r in conn.execute("SELECT pid FROM pg_stat_activity WHERE backend_type = "
                                                             "'pg_ext_memcheck worker'")]) == 2 and found,
            "the two concurrent_backends workers")
    os.kill(pids[0], signal.SIGKILL)
    caller.join(timeout=60)
    assert not caller.is_alive() and errors and isinstance(errors[0], psycopg.OperationalError)
    buggy.wait_ready(60)
    assert "terminated by signal 9" in buggy.read_log()
    with session(buggy, "") as conn:
        conn.execute("SELECT ext_memcheck.begin('')")
        found = rows(conn.execute('SELECT * FROM ext_memcheck."end"()'))
    hits = only(found, check_type="concurrency_error", context_name="server restart")
    assert len(hits) == 1 and hits[0]["severity"] == "ERROR" and "pg_sleep(60)" in hits[0]["detail"], found
    with session(buggy, "") as conn:  # reported once
        conn.execute("SELECT ext_memcheck.begin('')")
        assert only(rows(conn.execute('SELECT * FROM ext_memcheck."end"()')), check_type="concurrency_error") == []


# --- concurrent_backends ------------------------------------------------------------------------------------

def test_concurrent_backends_reports_each_backends_findings(buggy: Cluster) -> None:
    # the original's call form: target, iterations, four workers by default
    result, found = windowed(buggy, "top_ctx_alloc",
                             "SELECT ext_memcheck.run_scenario('concurrent_backends', target => 'buggy_pg_ext_cached',"
                             " iterations => 50)")
    assert result["workers"] == 4 and len(result["backends"]) == 4
    assert all(b["status"] == "done" and b["runs"] == 50 and b["errors"] == 0 and b["measured"]
               for b in result["backends"])
    assert len({b["pid"] for b in result["backends"]}) == 4
    leaks = [r for r in only(found, check_type="context_leak", context_name="TopMemoryContext")
             if "concurrent_backends worker" in r["detail"]]
    assert len(leaks) == 1 and leaks[0]["severity"] in ("WARNING", "ERROR") and leaks[0]["source_lib"] == LIB
    assert only(found, check_type="concurrency_error") == []


def test_concurrent_backends_catch_a_crash(buggy: Cluster) -> None:
    before = start_time(buggy)
    result, found = windowed(buggy, "",
                             "SELECT ext_memcheck.run_scenario('concurrent_backends', workers => 2, iterations => 3,"
                             " workload => $$SELECT set_config('buggy_pg_ext.bugs', 'crash', false);"
                             " SELECT count(*) FROM companies$$)")
    assert [b["status"] for b in result["backends"]] == ["crashed", "crashed"]
    crash = result["backends"][0]["crash"]
    assert crash["signal"] == "SIGSEGV" and crash["lib"] == LIB and int(crash["offset"], 16) > 0
    hits = only(found, check_type="concurrency_error", context_name="crash")
    assert len(hits) == 1 and hits[0]["severity"] == "ERROR" and hits[0]["source_lib"] == LIB
    assert start_time(buggy) == before


def test_concurrent_backends_deadlocks_and_lock_timeouts(buggy: Cluster) -> None:
    result, found = windowed(buggy, "", "SELECT ext_memcheck.run_scenario('concurrent_backends', workers => 4,"
                                        " iterations => 4, workload => %s)", DEADLOCK)
    assert sum(b["deadlocks"] for b in result["backends"]) >= 1, result
    hits = only(found, check_type="concurrency_error", context_name="deadlock")
    assert len(hits) == 1 and hits[0]["severity"] == "WARNING"
    result, found = windowed(buggy, "", "SELECT ext_memcheck.run_scenario('concurrent_backends', workers => 3,"
                                        " iterations => 2, options => '{\"lock_timeout_ms\": 50}',"
                                        " workload => %s)", LOCK_HOLDER)
    assert result["lock_timeout_ms"] == 50 and sum(b["lock_timeouts"] for b in result["backends"]) >= 1
    hits = only(found, check_type="concurrency_error", context_name="lock timeout")
    assert len(hits) == 1 and hits[0]["severity"] == "WARNING"


def test_concurrent_backends_shared_overrun(buggy: Cluster) -> None:
    result, found = windowed(buggy, "", "SELECT ext_memcheck.run_scenario('concurrent_backends', workers => 3,"
                                        " iterations => 5, workload => $$SELECT set_config('buggy_pg_ext.bugs',"
                                        " 'shmem_overrun', false); SELECT count(*) FROM companies$$)")
    assert all(b["status"] == "done" for b in result["backends"])
    assert only(found, check_type="shmem_overrun", context_name="buggy_pg_ext state")


# --- wrong_context_probe ----------------------------------------------------------------------------------------

def test_wrong_context_probe_reports_every_allocation_with_its_site(any_order: Tuple[Cluster, bool, str]) -> None:
    cluster, load_in_session, _ = any_order
    workload = ("SELECT set_config('buggy_pg_ext.bugs', 'top_ctx_alloc,parse_cache_leak,one_time_cache', false);"
                " SELECT count(*) FROM companies")
    result, found = windowed(cluster, "", "SELECT ext_memcheck.run_scenario('wrong_context_probe', 10, %s)", workload,
                             load_in_session=load_in_session)
    assert result["watched"] == ["TopMemoryContext", "CacheMemoryContext"]
    def biggest(context: str) -> Dict[str, Any]:
        return max((a for a in result["allocations"] if a["context"] == context and a["lib"] == LIB),
                   key=lambda a: a["bytes"])

    top = biggest("TopMemoryContext")
    cache = biggest("TopMemoryContext/CacheMemoryContext")
    # the one-time cache's context, created under TopMemoryContext, is listed at its own site
    assert any(a["context"] == "TopMemoryContext" and a["iterations"] == 1 for a in result["allocations"])
    assert top["iterations"] >= 9 and top["bytes"] >= 9 * 8192 and int(top["offset"], 16) > 0
    assert cache["iterations"] >= 9 and cache["bytes"] >= 9 * 1024 and int(cache["offset"], 16) > 0
    probe = [r for r in only(found, check_type="wrong_ctx_alloc") if r["detail"].startswith("wrong_context_probe:")]
    by_ctx = {r["context_name"]: r for r in probe}
    assert by_ctx["TopMemoryContext"]["severity"] == "WARNING" and by_ctx["CacheMemoryContext"]["severity"] == "WARNING"
    assert all(r["sites"] and r["sites"][0]["lib"] == LIB for r in probe)


def test_wrong_context_probe_named_contexts_and_caches(buggy: Cluster) -> None:
    # the original's form: the contexts to watch in args
    result, found = windowed(buggy, "",
                             "SELECT ext_memcheck.run_scenario('wrong_context_probe', iterations => 5, workload =>"
                             " $$SELECT set_config('buggy_pg_ext.bugs', 'private_ctx_growth,one_time_cache', false);"
                             " SELECT count(*) FROM companies$$,"
                             " args => ARRAY['{\"pg_ext_memcheck.watch_contexts\": \"BuggyPrivateCtx\"}'])")
    assert result["watched"] == ["TopMemoryContext", "CacheMemoryContext", "BuggyPrivateCtx"]
    probe = {r["context_name"]: r for r in only(found, check_type="wrong_ctx_alloc")
             if r["detail"].startswith("wrong_context_probe:")}
    assert probe["BuggyPrivateCtx"]["severity"] == "WARNING" and probe["BuggyPrivateCtx"]["used_delta"] > 0
    # contexts created once under TopMemoryContext (the private context, the one-time cache): INFO only
    assert probe["TopMemoryContext"]["severity"] == "INFO" and probe["TopMemoryContext"]["verdict"] == "cache"
    result, _ = windowed(buggy, "", "SELECT ext_memcheck.run_scenario('wrong_context_probe', 2, 'SELECT 1',"
                                    " '{\"contexts\": [\"A\", \"B\"]}')")
    assert result["watched"] == ["TopMemoryContext", "CacheMemoryContext", "A", "B"]
    assert result["allocations"] == []


# --- ctx_bloat and bloat_min_bytes --------------------------------------------------------------------------------

def bloat(found: List[Row], context: str) -> List[Row]:
    return only(found, check_type="ctx_bloat", context_name=context)


def test_growth_benchmark_ctx_bloat_linear(buggy: Cluster) -> None:
    result, found = windowed(buggy, "top_ctx_alloc", "SELECT ext_memcheck.run_scenario(scenario_name :="
                                                     " 'growth_benchmark', iterations := 100, workload :="
                                                     " 'SELECT count(*) FROM companies')")
    assert result["ctx_bloat"]["checkpoints"] == [0, 1, 2, 4, 8, 16, 32, 64, 100]
    ctx = [c for c in result["ctx_bloat"]["contexts"] if c["path"] == "TopMemoryContext"]
    assert len(ctx) == 1 and ctx[0]["shape"] == "linear" and ctx[0]["reported"]
    samples = ctx[0]["samples"]
    unit = samples[1] - samples[0]  # 8 kB and the chunk header, which depends on the version
    assert 8192 < unit < 8192 + 64
    assert [b - a for a, b in zip(samples, samples[1:])] == [unit * n for n in (1, 1, 2, 4, 8, 16, 32, 36)]
    hits = bloat(found, "TopMemoryContext")
    assert len(hits) == 1 and hits[0]["severity"] == "WARNING" and hits[0]["verdict"] == "leak"
    assert hits[0]["lifetime"] == "backend" and hits[0]["rate_unit"] == "iteration" and hits[0]["rate_bytes"] == unit
    assert hits[0]["used_delta"] == 100 * unit and "linear" in hits[0]["detail"]


def test_growth_benchmark_ctx_bloat_superlinear_is_one_level_higher(buggy: Cluster) -> None:
    # iteration k calls the leaking function k times: growth per iteration grows with k
    workload = "SELECT sum(buggy_pg_ext_work(g)) FROM generate_series(1, nextval('calls')::int) g"
    with session(buggy, "func_top_leak") as conn:
        conn.execute("SELECT setval('calls', 1, false)")
        conn.execute("SELECT ext_memcheck.begin('')")
        result = scenario(conn, "SELECT ext_memcheck.run_scenario('growth_benchmark', 40, %s)", workload)
        found = rows(conn.execute('SELECT * FROM ext_memcheck."end"()'))
    ctx = [c for c in result["ctx_bloat"]["contexts"] if c["path"] == "TopMemoryContext"]
    assert ctx[0]["shape"] == "superlinear"
    hits = bloat(found, "TopMemoryContext")
    # 1 kB x 820 calls is above warning_bytes: WARNING, raised to ERROR for the superlinear shape
    assert len(hits) == 1 and hits[0]["severity"] == "ERROR" and "one level higher" in hits[0]["detail"]


def test_ctx_bloat_cache_and_bloat_min_bytes(buggy: Cluster) -> None:
    # switched on by the first iteration, the cache fills in the second and stays: a cache, INFO
    workload = "SELECT set_config('buggy_pg_ext.bugs', 'one_time_cache', false), count(*) FROM companies"
    result, found = windowed(buggy, "", "SELECT ext_memcheck.run_scenario('growth_benchmark', 20, %s)", workload)
    hits = bloat(found, "BuggyOneTimeCache")
    assert len(hits) == 1 and hits[0]["severity"] == "INFO" and hits[0]["verdict"] == "cache", found
    assert severe(found) == []
    # below bloat_min_bytes: no ctx_bloat, the rest unchanged
    _, found = windowed(buggy, "top_ctx_alloc", "SELECT ext_memcheck.run_scenario('growth_benchmark', 10,"
                                                " 'SELECT count(*) FROM companies')")
    assert bloat(found, "TopMemoryContext")
    with session(buggy, "top_ctx_alloc", settings={"pg_ext_memcheck.bloat_min_bytes": 10 * 8208 + 1}) as conn:
        conn.execute("SELECT ext_memcheck.begin('')")
        scenario(conn, "SELECT ext_memcheck.run_scenario('growth_benchmark', 10, 'SELECT count(*) FROM companies')")
        found = rows(conn.execute('SELECT * FROM ext_memcheck."end"()'))
    assert bloat(found, "TopMemoryContext") == []
    assert only(found, check_type="context_leak", context_name="TopMemoryContext")


def test_bloat_min_bytes_is_superuser_only_and_watched(buggy: Cluster) -> None:
    with buggy.connect() as conn:
        assert conn.execute("SHOW pg_ext_memcheck.bloat_min_bytes").fetchone()[0] == "16kB"
        conn.execute("SET pg_ext_memcheck.bloat_min_bytes = 65536")
        conn.execute("SET pg_ext_memcheck.bloat_min_bytes = 0")
        conn.execute("DROP ROLE IF EXISTS mc_plain; CREATE ROLE mc_plain LOGIN")
    with buggy.connect(user="mc_plain") as conn:
        with pytest.raises(psycopg.errors.InsufficientPrivilege,
                           match='permission denied to set parameter "pg_ext_memcheck.bloat_min_bytes"'):
            conn.execute("SET pg_ext_memcheck.bloat_min_bytes = 1000000000")
    found = window(buggy, ["SET pg_ext_memcheck.bloat_min_bytes = 1000000"], bugs="")
    changed = only(found, check_type="settings_changed", context_name="pg_ext_memcheck.bloat_min_bytes")
    assert changed and changed[0]["severity"] == "ERROR"


# --- clear_violations, scenarios, argument errors --------------------------------------------------------------

def test_clear_violations_empties_the_table(buggy: Cluster) -> None:
    found = window(buggy, ["SELECT count(*) FROM companies"], bugs="top_ctx_alloc", repeat=3)
    assert found
    with buggy.connect() as conn:
        conn.execute("SELECT ext_memcheck.flush_violations()")
        assert conn.execute("SELECT count(*) FROM ext_memcheck.violation_log").fetchone()[0] > 0
        conn.execute("SELECT ext_memcheck.clear_violations()")
        assert conn.execute("SELECT count(*) FROM ext_memcheck.violation_log").fetchone()[0] == 0


def test_scenarios_view(buggy: Cluster) -> None:
    with buggy.connect() as conn:
        listed = rows(conn.execute("SELECT * FROM ext_memcheck.scenarios"))
    assert {r["name"]: r["default_iterations"] for r in listed} == {
        "growth_benchmark": 100, "tx_abort_loop": 100, "shmem_sentinel_probe": 100, "wrong_context_probe": 100,
        "dsm_lifecycle_check": 20, "context_reset_storm": 50, "concurrent_backends": 50}
    assert all(r["description"] for r in listed)


@pytest.mark.parametrize("sql,message", [
    ("SELECT ext_memcheck.run_scenario('growth_benchmark', 5, 'SELECT 1', target => 'f')", "workload or target"),
    ("SELECT ext_memcheck.run_scenario('growth_benchmark', 5, workers => 2)", "workers applies to concurrent_backends"),
    ("SELECT ext_memcheck.run_scenario('growth_benchmark', 5, reset_frequency => 2)",
     "reset_frequency applies to context_reset_storm"),
    ("SELECT ext_memcheck.run_scenario('growth_benchmark', 5, options => '{\"contexts\": [\"X\"]}')",
     "wrong_context_probe only"),
    ("SELECT ext_memcheck.run_scenario('growth_benchmark', 5, options => '{\"bogus\": 1}')",
     "unknown options key \"bogus\""),
    ("SELECT ext_memcheck.run_scenario('wrong_context_probe', 5, args => ARRAY['[1]'])",
     r"args\[1\] must be a JSON object"),
    ("SELECT ext_memcheck.run_scenario('concurrent_backends', 5, workers => 0)", "workers must be between 1 and 64"),
    ("SELECT ext_memcheck.run_scenario('context_reset_storm', 5, reset_frequency => 0)", "reset_frequency must be"),
    ("SELECT ext_memcheck.run_scenario('concurrent_backends', 5, options => '{\"lock_timeout_ms\": \"x\"}')",
     "lock_timeout_ms\" must be a number"),
    ("SELECT ext_memcheck.run_scenario('context_reset_storm', 5, target => 'no_such_function')", "no_such_function"),
    ("SELECT ext_memcheck.run_scenario('no_such', 5)", "unknown scenario_name"),
    ("SELECT ext_memcheck.run_scenario('context_reset_storm', 5, 'SELECT 1/0')", "every run of the workload failed"),
    ("SELECT ext_memcheck.run_scenario('concurrent_backends', 5, 'SELECT 1/0', workers => 2)",
     "every run of the workload failed"),
])
def test_scenario_argument_errors(buggy: Cluster, sql: str, message: str) -> None:
    with buggy.connect() as conn:
        with pytest.raises(psycopg.Error, match=message):
            conn.execute(sql)


# --- the original's documented call forms, verbatim ---------------------------------------------------------------

ORIGINAL_FORMS = [
    "SELECT ext_memcheck.run_scenario(scenario_name := 'growth_benchmark', iterations := 200, workload := 'SELECT 1')",
    "SELECT ext_memcheck.run_scenario(scenario_name := 'tx_abort_loop', iterations := 50, workload := 'SELECT 1')",
    "SELECT ext_memcheck.run_scenario('growth_benchmark', 1000)",
    "SELECT ext_memcheck.run_scenario('tx_abort_loop', 100)",
    "SELECT ext_memcheck.run_scenario('context_reset_storm', target => 'public.buggy_pg_ext_cached',"
    " iterations => 200)",
    "SELECT ext_memcheck.run_scenario('concurrent_backends', target => 'public.buggy_pg_ext_cached', iterations => 50)",
    "SELECT ext_memcheck.run_scenario('shmem_sentinel_probe', target => 'public.buggy_pg_ext_cached')",
    "SELECT ext_memcheck.run_scenario('dsm_lifecycle_check', target => 'public.buggy_pg_ext_cached', iterations => 20)",
    "SELECT ext_memcheck.run_scenario(\n    'wrong_context_probe',\n    target => 'public.buggy_pg_ext_cached',\n"
    "    args   => ARRAY['{\"pg_ext_memcheck.watch_contexts\": \"MyLongLivedCtx\"}']\n)",
]


def test_original_call_forms_verbatim(buggy: Cluster) -> None:
    expected_iterations = [200, 50, 1000, 100, 200, 50, 100, 20, 100]
    with session(buggy, "") as conn:
        conn.execute("SELECT ext_memcheck.begin('')")
        for sql, iterations in zip(ORIGINAL_FORMS, expected_iterations):
            result = scenario(conn, sql)
            assert result["iterations"] == iterations and result["errors"] == 0, (sql, result)
        for sql in ["SELECT ext_memcheck.clear_violations();", "SELECT * FROM ext_memcheck.scenarios;",
                    "SELECT * FROM ext_memcheck.dsm_tracking();", "SELECT ext_memcheck.clear_dsm_tracking();",
                    "SELECT ext_memcheck.clear_shmem_registry();", "SET pg_ext_memcheck.bloat_min_bytes = 65536;",
                    "SET pg_ext_memcheck.bloat_min_bytes = 0;", "RESET pg_ext_memcheck.bloat_min_bytes"]:
            conn.execute(sql)
        found = rows(conn.execute('SELECT * FROM ext_memcheck."end"()'))
    assert [r for r in severe(found) if r["check_type"] != "settings_changed"] == [], found
    # the procedure takes the same arguments, the new scenarios too
    with session(buggy, "") as conn:
        result = scenario(conn, "CALL ext_memcheck.scenario('wrong_context_probe', 3, 'SELECT 1',"
                                " args => ARRAY['{\"contexts\": \"X\"}'])")
        assert result["transaction"] == "each" and result["watched"][-1] == "X"
        result = scenario(conn, "CALL ext_memcheck.scenario(scenario_name => 'context_reset_storm',"
                                " target => 'buggy_pg_ext_cached', iterations => 5)")
        assert result["storm"]["failure"] is None


# --- nothing without bugs -------------------------------------------------------------------------------------------

NEW_SCENARIOS = [
    "SELECT ext_memcheck.run_scenario('shmem_sentinel_probe', 20, 'SELECT count(*) FROM companies')",
    "SELECT ext_memcheck.run_scenario('wrong_context_probe', 20, 'SELECT count(*) FROM companies')",
    "CALL ext_memcheck.scenario('dsm_lifecycle_check', 10, 'SELECT count(*) FROM companies')",
    "SELECT ext_memcheck.run_scenario('context_reset_storm', 20, 'SELECT count(*) FROM companies')",
    "SELECT ext_memcheck.run_scenario('concurrent_backends', 10, 'SELECT count(*) FROM companies', workers => 3)",
    "SELECT ext_memcheck.run_scenario('growth_benchmark', 64, 'SELECT count(*) FROM companies')",
]
WITH_EXAMPLE = ["SELECT ext_memcheck.run_scenario('context_reset_storm', target => 'buggy_pg_ext_cached_label',"
                " iterations => 20)",
                "SELECT sum(buggy_pg_ext_work(g)) FROM generate_series(1, 100) g"]


def test_no_warning_without_bugs(any_order: Tuple[Cluster, bool, str]) -> None:
    cluster, load_in_session, _ = any_order
    found = window(cluster, NEW_SCENARIOS + WITH_EXAMPLE, bugs="", load_in_session=load_in_session)
    assert severe(found) == [], severe(found)


def test_no_finding_without_a_foreign_library(plain: Cluster) -> None:
    found = window(plain, NEW_SCENARIOS, bugs=None)
    assert found == [], found
    with plain.connect() as conn:
        guards = rows(conn.execute("SELECT count(*) AS n, sum(overruns) AS overruns FROM ext_memcheck.shmem_guards()"
                                   " WHERE guarded"))
    assert guards[0]["n"] > 10 and guards[0]["overruns"] == 0


# --- the upgrade script creates exactly what the 1.1 script does ------------------------------------------------------

OBJECTS = """
SELECT p.proname || '(' || pg_get_function_identity_arguments(p.oid) || ') ' || pg_get_function_result(p.oid)
       || ' ' || coalesce(pg_get_expr(p.proargdefaults, 0), '') || ' ' || p.prokind::text
       || p.provolatile::text || p.proisstrict::text || ' ' || coalesce(array_to_string(p.proacl, ','), '') AS obj
FROM pg_proc p WHERE p.pronamespace = 'ext_memcheck'::regnamespace
UNION ALL
SELECT c.relname || ' ' || c.relkind::text || ' ' || coalesce(array_to_string(c.relacl, ','), '')
FROM pg_class c WHERE c.relnamespace = 'ext_memcheck'::regnamespace
ORDER BY 1
"""


def test_upgrade_equals_fresh_install(plain: Cluster) -> None:
    with plain.connect() as conn:
        conn.execute("DROP DATABASE IF EXISTS fresh_11")
        conn.execute("DROP DATABASE IF EXISTS upgraded_11")
        conn.execute("CREATE DATABASE fresh_11")
        conn.execute("CREATE DATABASE upgraded_11")
    try:
        with plain.connect(dbname="fresh_11") as conn:
            conn.execute("CREATE EXTENSION pg_ext_memcheck")
            fresh = [r[0] for r in conn.execute(OBJECTS)]
        with plain.connect(dbname="upgraded_11") as conn:
            conn.execute("CREATE EXTENSION pg_ext_memcheck VERSION '1.0'")
            conn.execute("ALTER EXTENSION pg_ext_memcheck UPDATE TO '1.1'")
            upgraded = [r[0] for r in conn.execute(OBJECTS)]
        assert upgraded == fresh
        assert any(o.startswith("run_scenario(scenario_name text, iterations integer, workload text, options jsonb,"
                                " target text, args text[], reset_frequency integer, workers integer) jsonb")
                   for o in fresh)
    finally:
        with plain.connect() as conn:
            conn.execute("DROP DATABASE fresh_11")
            conn.execute("DROP DATABASE upgraded_11")


def test_results_are_json(buggy: Cluster) -> None:
    """Every scenario's result is one JSON object with the common keys (the runner reads them)."""
    with session(buggy, "") as conn:
        for sql in NEW_SCENARIOS[:2]:
            result = scenario(conn, sql)
            assert isinstance(result, dict)  # one JSON object (psycopg decoded the jsonb)
            assert {"scenario", "iterations", "errors", "transaction", "findings", "verdict"} <= set(result)
            assert isinstance(result["findings"], list) and isinstance(result["iterations"], int)
