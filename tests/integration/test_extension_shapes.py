"""Issue 19, items 2-5, 7 and 8: idiomatic code gives nothing at WARNING or above, real bugs are found with the
right library, lifetime and rate, in every load order.

Each shape is a small C library of tests/extensions/ (its header names the published extension it models); all of
them are preloaded together (before or after pg_ext_memcheck), or, in the third order, the one under test is
loaded by CREATE EXTENSION in the measuring session. Every library does nothing until its setting switches a
shape on, so the others in the chain stay idle. A bug's truth (the bytes it kept per unit) comes from the library
itself (GetMemoryChunkSpace of what it kept), and the reported rate must be within 10% of it.

Clean (zero WARNING/ERROR):
  2  error_paths_build(25) and a minibloom build: a 25 MB work area in their own context, then a memory-limit
     ERROR, repeated, and inside PL/pgSQL EXCEPTION blocks
  3  reparent_ctx: an ExecutorStart context moved under es_query_cxt; SPI_keepplan's plan context moved by
     PostgreSQL under CacheMemoryContext and freed
  4  matsrf: a materialize-mode SRF once per statement, 100 statements
  5  minibloom: CREATE INDEX (a per-tuple callback resetting its temporary context), aminsert, index scans
Bugs (found):
  2' error_paths_top_leak / error_paths_malloc_leak: kept before the ERROR, lifetime backend, per call
  5' minibloom.insert_leak: aminsert keeps 512 B per call in the index's relcache memory, lifetime backend
  7  subxact_keep: list_copy() at SUBXACT_EVENT_COMMIT_SUB keeps each subtransaction's CurTransactionContext
     until commit: lifetime transaction, per row (= per subtransaction)
  8  rate_units: ExecutorStart (or the planner) and ExecutorEnd each keep memory: per statement at its true size;
     the same through EXECUTE in a PL/pgSQL loop: per execution; with a cache filled once besides the leak, the
     rate is still the leak's (the warm-up left out)
"""

from __future__ import annotations

from typing import Iterator, List, Tuple

import psycopg
import pytest

from reporter.cluster import Cluster
from tests.integration.extlib import (
    ORDER_NAMES,
    Row,
    begin,
    brief,
    end,
    fails,
    load_orders,
    only,
    run,
    session,
    severe,
    start_cluster,
    stop_cluster,
    within,
)

pytestmark = [pytest.mark.integration, pytest.mark.all_majors]

LIBRARIES = ["error_paths", "reparent_ctx", "matsrf", "minibloom", "subxact_keep", "rate_units"]

SETUP_SQL = [
    "CREATE EXTENSION IF NOT EXISTS pg_ext_memcheck",
    "CREATE TABLE IF NOT EXISTS shapes_t AS SELECT g AS id, 'row ' || g AS name FROM generate_series(1, 100) g",
    "CREATE OR REPLACE FUNCTION two_step(int) RETURNS int LANGUAGE sql AS $$ SELECT 1; SELECT $1 + 1 $$",
]
STATEMENT = "SELECT count(*) FROM shapes_t"
NESTED = "SELECT sum(two_step(g)) FROM generate_series(1, 200) g"


@pytest.fixture(scope="module", params=ORDER_NAMES, ids=lambda o: f"order-{o}")
def ordered(request: pytest.FixtureRequest, installed_test_extensions: str,
            tmp_path_factory: pytest.TempPathFactory) -> Iterator[Tuple[Cluster, bool]]:
    preload, load_in_session = load_orders(LIBRARIES)[request.param]
    setup = SETUP_SQL if load_in_session else [*SETUP_SQL, *(f"CREATE EXTENSION IF NOT EXISTS {lib}"
                                                             for lib in LIBRARIES)]
    cluster = start_cluster(installed_test_extensions, tmp_path_factory, preload, {"autovacuum": "off"}, setup)
    yield cluster, load_in_session
    stop_cluster(cluster)


def lib_findings(found: List[Row], lib: str, **match: object) -> List[Row]:
    """The findings at WARNING or above against `lib` (matching `match`)."""
    return only([r for r in severe(found) if r["source_lib"] == f"{lib}.so"], **match)


# --- 2: released on the error path --------------------------------------------------------------------------

LIMIT_SETTINGS = {"maintenance_work_mem": "16MB"}


def test_error_path_release_in_a_function(ordered: Tuple[Cluster, bool]) -> None:
    """A 25 MB work area grown in the function's own context, then a memory-limit ERROR: abort cleanup frees it.
    The same spread over rows (a per-statement accumulator context growing 2 MB per call)."""
    cluster, load_in_session = ordered
    with session(cluster, ["error_paths"], load_in_session, settings=LIMIT_SETTINGS) as conn:
        begin(conn)
        fails(conn, "SELECT error_paths_build(25)", "work area needs 25 MB", repeat=10)
        run(conn, ["DO $$BEGIN FOR i IN 1..5 LOOP BEGIN PERFORM error_paths_build(25);"
                   " EXCEPTION WHEN program_limit_exceeded THEN NULL; END; END LOOP; END$$"], repeat=3)
        assert conn.execute("SELECT error_paths_build(4)").fetchone()[0] == 4  # below the limit it works
        # spread over the rows of a statement: an accumulator context in fn_extra grows 2 MB per row
        fails(conn, "SELECT error_paths_accumulate(2) FROM generate_series(1, 100)", "work area needs", repeat=5)
        found = end(conn)
    assert severe(found) == [], brief(severe(found))


def test_error_path_release_in_an_index_build(ordered: Tuple[Cluster, bool]) -> None:
    """The same in an access method's ambuild (entered without a bracket): CREATE INDEX fails, repeatedly."""
    cluster, load_in_session = ordered
    with session(cluster, ["minibloom"], load_in_session,
                 settings={**LIMIT_SETTINGS, "minibloom.build_work_mb": 25}) as conn:
        conn.execute("DROP TABLE IF EXISTS mb_err")
        conn.execute("CREATE TABLE mb_err AS SELECT g AS k FROM generate_series(1, 100) g")
        begin(conn)
        fails(conn, "CREATE INDEX mb_err_idx ON mb_err USING minibloom (k)", "work area needs 25 MB", repeat=10)
        run(conn, ["DO $$BEGIN FOR i IN 1..5 LOOP BEGIN CREATE INDEX mb_err_idx ON mb_err USING minibloom (k);"
                   " EXCEPTION WHEN program_limit_exceeded THEN NULL; END; END LOOP; END$$"], repeat=3)
        found = end(conn)
    assert severe(found) == [], brief(severe(found))


# --- 2': kept on the error path -----------------------------------------------------------------------------

@pytest.mark.parametrize("function,check", [("error_paths_top_leak", "context_leak"),
                                            ("error_paths_malloc_leak", "malloc_leak")])
def test_error_path_leak_is_found(ordered: Tuple[Cluster, bool], function: str, check: str) -> None:
    """16,000 bytes kept (TopMemoryContext, or malloc) before each ERROR, 20 calls: a backend leak per call."""
    cluster, load_in_session = ordered
    calls = 20
    with session(cluster, ["error_paths"], load_in_session) as conn:
        before = conn.execute("SELECT error_paths_kept()").fetchone()[0]
        begin(conn)
        fails(conn, f"SELECT {function}()", "work area needs 16 MB", repeat=calls)
        found = end(conn)
        truth = (conn.execute("SELECT error_paths_kept()").fetchone()[0] - before) / calls
    hits = lib_findings(found, "error_paths", check_type=check)
    assert len(hits) == 1, f"expected one {check} at WARNING or ERROR against error_paths.so: {brief(found)}"
    hit = hits[0]
    assert hit["lifetime"] == "backend" and hit["verdict"] == "leak", brief(hits)
    assert hit["rate_unit"] == "call" and within(hit["rate_bytes"], truth), f"truth {truth} B: {brief(hits)}"


# --- 3: reparented contexts ---------------------------------------------------------------------------------

def test_reparented_context_is_freed_with_the_query(ordered: Tuple[Cluster, bool]) -> None:
    """A context created in ExecutorStart and moved under es_query_cxt (at every nesting level), and plans that
    SPI_keepplan moves under CacheMemoryContext and SPI_freeplan deletes: nothing is kept."""
    cluster, load_in_session = ordered
    with session(cluster, ["reparent_ctx"], load_in_session, settings={"reparent_ctx.enabled": "on"}) as conn:
        begin(conn)
        run(conn, [STATEMENT, NESTED], repeat=30)
        for _ in range(5):
            assert conn.execute("SELECT sum(reparent_ctx_keepplan(g)) FROM generate_series(1, 100) g"
                                ).fetchone()[0] == sum(g + 1 for g in range(1, 101))
        found = end(conn)
    assert severe(found) == [], brief(severe(found))


# --- 4: materialize-mode SRF --------------------------------------------------------------------------------

@pytest.mark.parametrize("function", ["matsrf_rows", "matsrf_rows_in_query_memory"])
def test_materialize_srf_once_per_statement(ordered: Tuple[Cluster, bool], function: str) -> None:
    """One call per statement, 100 statements; its tuplestore (and, for the second, every row's values) live in
    the query's memory and are freed when the statement ends."""
    cluster, load_in_session = ordered
    with session(cluster, ["matsrf"], load_in_session) as conn:
        begin(conn)
        for _ in range(100):
            assert conn.execute(f"SELECT count(*) FROM {function}(1000)", prepare=False).fetchone()[0] == 1000
        found = end(conn)
    assert severe(found) == [], brief(severe(found))


# --- 5 and 5': an index access method -----------------------------------------------------------------------

MB_ROWS = "INSERT INTO {table} SELECT g % 500 FROM generate_series(1, 600) g"


def index_scans(conn: psycopg.Connection, table: str) -> None:
    """Index scans forced (no sequential scan, no other join than a nested loop: rescans per outer row)."""
    for name in ("enable_seqscan", "enable_bitmapscan", "enable_hashjoin", "enable_mergejoin"):
        conn.execute(f"SET {name} = off")
    plan = "\n".join(r[0] for r in conn.execute(f"EXPLAIN SELECT count(*) FROM {table} WHERE k = 42"))
    assert f"Index Scan using {table}_idx" in plan, plan
    expected = conn.execute(f"SELECT count(*) FILTER (WHERE k = 42) FROM (SELECT k + 0 AS k FROM {table}) s"
                            ).fetchone()[0]
    for _ in range(20):
        assert conn.execute(f"SELECT count(*) FROM {table} WHERE k = 42", prepare=False).fetchone()[0] == expected
    for _ in range(5):
        conn.execute(f"SELECT count(*) FROM generate_series(1, 50) g JOIN {table} ON {table}.k = g", prepare=False)
    for name in ("enable_seqscan", "enable_bitmapscan", "enable_hashjoin", "enable_mergejoin"):
        conn.execute(f"RESET {name}")


def test_index_access_method_is_clean(ordered: Tuple[Cluster, bool]) -> None:
    """CREATE INDEX (a per-tuple callback resetting its own temporary context, a build context created, filled
    and deleted), INSERTs (a context per aminsert call), index scans with rescans: nothing is kept."""
    cluster, load_in_session = ordered
    with session(cluster, ["minibloom"], load_in_session) as conn:
        conn.execute("DROP TABLE IF EXISTS mb_t")
        conn.execute("CREATE TABLE mb_t AS SELECT g % 500 AS k FROM generate_series(1, 5000) g")
        begin(conn)
        run(conn, ["CREATE INDEX mb_t_idx ON mb_t USING minibloom (k)", "DROP INDEX mb_t_idx"], repeat=4)
        conn.execute("CREATE INDEX mb_t_idx ON mb_t USING minibloom (k)")
        run(conn, [MB_ROWS.format(table="mb_t")], repeat=5)
        index_scans(conn, "mb_t")
        found = end(conn)
    assert severe(found) == [], brief(severe(found))


def test_index_access_method_leak_is_found(ordered: Tuple[Cluster, bool]) -> None:
    """aminsert keeps 512 B per call in the index's relcache memory: a backend leak, per call (one per row)."""
    cluster, load_in_session = ordered
    with session(cluster, ["minibloom"], load_in_session, settings={"minibloom.insert_leak": "on"}) as conn:
        conn.execute("DROP TABLE IF EXISTS mb_leak")
        conn.execute("CREATE TABLE mb_leak (k int)")
        conn.execute("CREATE INDEX mb_leak_idx ON mb_leak USING minibloom (k)")
        bytes0, calls0 = conn.execute("SELECT * FROM minibloom_kept()").fetchone()
        begin(conn)
        run(conn, [MB_ROWS.format(table="mb_leak")], repeat=5)
        found = end(conn)
        bytes1, calls1 = conn.execute("SELECT * FROM minibloom_kept()").fetchone()
    assert calls1 - calls0 == 3000
    truth = (bytes1 - bytes0) / (calls1 - calls0)
    hits = lib_findings(found, "minibloom", check_type="context_leak")
    assert len(hits) == 1, f"expected one context_leak at WARNING or ERROR against minibloom.so: {brief(found)}"
    hit = hits[0]
    assert hit["lifetime"] == "backend" and hit["verdict"] == "leak", brief(hits)
    assert hit["rate_unit"] in ("call", "row") and within(hit["rate_bytes"], truth), f"truth {truth} B: {brief(hits)}"


# --- 7: a subtransaction callback that keeps memory ---------------------------------------------------------

def test_subxact_callback_keeping_memory_is_found(ordered: Tuple[Cluster, bool]) -> None:
    """One PL/pgSQL EXCEPTION block per inserted row, 1,000 rows, twice: each subtransaction's 8 kB
    CurTransactionContext is kept until commit because of the callback's copy: WARNING or ERROR, lifetime
    transaction, per row (one subtransaction per row)."""
    cluster, load_in_session = ordered
    rows_per_run, runs = 1000, 2
    with session(cluster, ["subxact_keep"], load_in_session, settings={"subxact_keep.enabled": "on"}) as conn:
        conn.execute("DROP TABLE IF EXISTS sk_t")
        conn.execute("CREATE TABLE sk_t (id int PRIMARY KEY)")
        conn.execute("SELECT subxact_keep_stats()")  # zeroes them
        begin(conn)
        for n in range(runs):
            conn.execute(f"DO $$BEGIN FOR i IN {n * rows_per_run + 1}..{(n + 1) * rows_per_run} LOOP"
                         " BEGIN INSERT INTO sk_t VALUES (i); EXCEPTION WHEN unique_violation THEN NULL; END;"
                         " END LOOP; END$$")
        found = end(conn)
        subxacts, kept_contexts, kept_bytes = conn.execute("SELECT * FROM subxact_keep_stats()").fetchone()
    assert subxacts == kept_contexts == rows_per_run * runs  # every context was kept only because of the copy
    truth = kept_bytes / subxacts
    hits = [r for r in lib_findings(found, "subxact_keep") if r["check_type"] != "wrong_ctx_alloc"]
    assert len(hits) == 1, f"expected one finding at WARNING or ERROR against subxact_keep.so: {brief(found)}"
    hit = hits[0]
    assert hit["lifetime"] == "transaction", brief(hits)
    assert hit["rate_unit"] in ("row", "subtransaction") and within(hit["rate_bytes"], truth), \
        f"truth {truth} B: {brief(hits)}"


# --- 8: the rate a user means -------------------------------------------------------------------------------

@pytest.mark.parametrize("leak", ["executor", "planner"])
def test_two_hook_leak_is_reported_per_statement(ordered: Tuple[Cluster, bool], leak: str) -> None:
    """ExecutorStart (or the planner) and ExecutorEnd each keep a chunk: one rate per statement, at the sum."""
    cluster, load_in_session = ordered
    with session(cluster, ["rate_units"], load_in_session, settings={"rate_units.leak": leak}) as conn:
        truth = conn.execute("SELECT rate_units_bytes_per_statement()").fetchone()[0]
        begin(conn)
        run(conn, [STATEMENT], repeat=20)
        found = end(conn)
    hits = lib_findings(found, "rate_units", check_type="context_leak", context_name="TopMemoryContext")
    assert len(hits) == 1, f"expected one context_leak in TopMemoryContext against rate_units.so: {brief(found)}"
    hit = hits[0]
    assert hit["lifetime"] == "backend" and hit["verdict"] == "leak", brief(hits)
    assert hit["rate_unit"] == "statement" and within(hit["rate_bytes"], truth), f"truth {truth} B: {brief(hits)}"


def test_a_warm_up_is_left_out_of_the_rate(ordered: Tuple[Cluster, bool]) -> None:
    """The same per-statement leak, and a 200 kB cache filled once by the first statement of the window: the
    rate is the steady one (within 10% of the bytes a statement keeps, where the cache spread over 20 statements
    would add 10 kB to each), and the finding names the warm-up it left out."""
    cluster, load_in_session = ordered
    with session(cluster, ["rate_units"], load_in_session, settings={"rate_units.leak": "executor"}) as conn:
        truth = conn.execute("SELECT rate_units_bytes_per_statement()").fetchone()[0]
        begin(conn)
        conn.execute("SET rate_units.warmup_kb = 200")
        run(conn, [STATEMENT], repeat=20)
        found = end(conn)
    hits = lib_findings(found, "rate_units", check_type="context_leak", context_name="TopMemoryContext")
    assert len(hits) == 1, f"expected one context_leak in TopMemoryContext against rate_units.so: {brief(found)}"
    hit = hits[0]
    assert hit["lifetime"] == "backend" and hit["verdict"] == "leak", brief(hits)
    assert hit["rate_unit"] == "statement" and within(hit["rate_bytes"], truth), f"truth {truth} B: {brief(hits)}"
    assert hit["used_delta"] > 200 * 1024, brief(hits)  # the cache is still in the total kept
    assert "a warm-up, left out of the rate" in hit["detail"], brief(hits)


def test_inner_statement_leak_is_reported_per_execution(ordered: Tuple[Cluster, bool]) -> None:
    """The same leak reached through EXECUTE in a PL/pgSQL loop (100 inner executions per DO, 4 DOs): per
    execution, at the bytes one execution keeps."""
    cluster, load_in_session = ordered
    with session(cluster, ["rate_units"], load_in_session, settings={"rate_units.leak": "executor"}) as conn:
        truth = conn.execute("SELECT rate_units_bytes_per_statement()").fetchone()[0]
        begin(conn)
        run(conn, ["DO $$BEGIN FOR i IN 1..100 LOOP EXECUTE 'SELECT count(*) FROM shapes_t WHERE id = ' || i;"
                   " END LOOP; END$$"], repeat=4)
        found = end(conn)
    hits = lib_findings(found, "rate_units", check_type="context_leak", context_name="TopMemoryContext")
    assert len(hits) == 1, f"expected one context_leak in TopMemoryContext against rate_units.so: {brief(found)}"
    hit = hits[0]
    assert hit["lifetime"] == "backend" and hit["verdict"] == "leak", brief(hits)
    # the unit may be named for the inner statement run ("statement") or the execution: the rate says which
    assert hit["rate_unit"] in ("execution", "statement") and within(hit["rate_bytes"], truth), \
        f"truth {truth} B: {brief(hits)}"
