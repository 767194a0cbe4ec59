"""Issue 19, item 1: never break a co-loaded library.

tests/extensions/hook_peer is a second library in every hook pg_ext_memcheck joins: its fmgr_hook keeps a pointer
in *private as sepgsql does, its other hooks chain through prev_ pointers as pg_stat_statements does and count
their calls. With another library's executor hooks listed first (pg_stat_statements where the installation has it,
else the example), in every load order and in modes all and off:
- the per-row SQL function with SET search_path runs without a crash, the peer allocates its fmgr state once per
  fmgr cache (once per statement here) and never finds it gone, and nothing is reported against the peer;
- every hook counter of the peer, for a fixed workload, is what it is without pg_ext_memcheck.
"""

from __future__ import annotations

from pathlib import Path
from typing import Dict, Iterator, List, Tuple

import psycopg
import pytest

from reporter.build import read_pg_config
from reporter.cluster import Cluster
from tests.integration.extlib import (
    ORDER_NAMES,
    Row,
    begin,
    brief,
    crash_is_a_failure,
    end,
    load_orders,
    session,
    severe,
    start_cluster,
    stop_cluster,
)

pytestmark = [pytest.mark.integration, pytest.mark.all_majors]

PEER = "hook_peer"
PEER_LIB = "hook_peer.so"

SETUP_SQL = [
    "CREATE EXTENSION IF NOT EXISTS pg_ext_memcheck",
    "CREATE TABLE IF NOT EXISTS peer_t AS SELECT g AS id, g % 10 AS grp FROM generate_series(1, 1000) g",
    "ANALYZE peer_t",
    # the shape: a SQL function with a SET clause goes through fmgr_security_definer, so every fmgr_hook
    # in the chain sees each of its calls
    "CREATE OR REPLACE FUNCTION peer_row_fn(int) RETURNS int LANGUAGE sql"
    " SET search_path = public, pg_catalog AS 'SELECT $1 + 1'",
    "CREATE OR REPLACE FUNCTION peer_div(int) RETURNS int LANGUAGE sql"
    " SET search_path = public, pg_catalog AS 'SELECT 10 / $1'",
]

PER_ROW = "SELECT sum(peer_row_fn(g)) FROM generate_series(1, 200) g"
PER_ROW_RESULT = sum(g + 1 for g in range(1, 201))

# A fixed workload that reaches every hook of the peer at least once.
WORKLOAD = [
    PER_ROW,
    "SELECT sum(peer_c_add(id)) FROM peer_t WHERE grp = 3",
    "SELECT count(*) FROM peer_t a JOIN peer_t b USING (id) WHERE a.grp < 2",
    "CREATE TABLE peer_tmp (x int)",
    "INSERT INTO peer_tmp SELECT g FROM generate_series(1, 10) g",
    "UPDATE peer_tmp SET x = x + 1 WHERE x < 5",
    "ALTER TABLE peer_tmp RENAME TO peer_tmp2",
    "DROP TABLE peer_tmp2",
    "SET work_mem = '8MB'",
    "RESET work_mem",
    "DO $$BEGIN RAISE WARNING 'hook_peer probe %', 1; END$$",
    "DO $$BEGIN PERFORM peer_div(0); EXCEPTION WHEN division_by_zero THEN NULL; END$$",
    "PREPARE peer_p(int) AS SELECT peer_row_fn($1)",
    "EXECUTE peer_p(1)",
    "DEALLOCATE peer_p",
]

HOOKS = ["planner", "post_parse_analyze", "ExecutorStart", "ExecutorRun", "ExecutorFinish", "ExecutorEnd",
         "ExecutorCheckPerms", "ProcessUtility", "object_access", "object_access_str", "emit_log",
         "get_relation_info", "set_rel_pathlist", "needs_fmgr_hook", "fmgr_start", "fmgr_end", "fmgr_abort",
         "fmgr_state_allocs", "fmgr_state_lost", "fmgr_state_corrupt",
         *(f"object_access:{t}" for t in ("post_create", "drop", "post_alter", "namespace_search",
                                          "function_execute"))]
NEVER = {"fmgr_state_lost", "fmgr_state_corrupt"}  # must stay 0: the peer's state was there when it looked
# (a temporary table would make the first session of a cluster create pg_temp_N: other object_access counts)


def other_library(pg_config: str) -> Tuple[str, Dict[str, object]]:
    """Another library's executor hooks, listed first: pg_stat_statements, else auto_explain, else the example
    with its bugs off (the PostgreSQL 16 wheel ships neither contrib module)."""
    pkglib = Path(read_pg_config(pg_config).pkglibdir)
    for name in ("pg_stat_statements", "auto_explain"):
        if (pkglib / f"{name}.so").is_file():
            return name, {}
    return "buggy_pg_ext", {"buggy_pg_ext.bugs": ""}


def peer_cluster(pg_config: str, tmp_path_factory: pytest.TempPathFactory, order: str,
                 with_memcheck: bool = True) -> Tuple[Cluster, bool]:
    other, settings = other_library(pg_config)
    preload, load_in_session = load_orders([PEER], [other])[order]
    if not with_memcheck:
        preload = [lib for lib in preload if lib != "pg_ext_memcheck"]
    setup = SETUP_SQL if with_memcheck else SETUP_SQL[1:]
    if not load_in_session:
        setup = [*setup, f"CREATE EXTENSION IF NOT EXISTS {PEER}"]
    cluster = start_cluster(pg_config, tmp_path_factory, preload, {**settings, "autovacuum": "off"}, setup)
    return cluster, load_in_session


@pytest.fixture(scope="module", params=ORDER_NAMES, ids=lambda o: f"order-{o}")
def ordered(request: pytest.FixtureRequest, installed_test_extensions: str,
            tmp_path_factory: pytest.TempPathFactory) -> Iterator[Tuple[Cluster, bool]]:
    cluster, load_in_session = peer_cluster(installed_test_extensions, tmp_path_factory, request.param)
    yield cluster, load_in_session
    stop_cluster(cluster)


def peer_session(cluster: Cluster, load_in_session: bool, mode: str = "all", slot: str = "own",
                 with_memcheck: bool = True) -> psycopg.Connection:
    if with_memcheck:
        return session(cluster, [PEER], load_in_session, mode, {"hook_peer.fmgr_slot": slot})
    conn = cluster.connect()
    if load_in_session:
        conn.execute(f"DROP EXTENSION IF EXISTS {PEER} CASCADE")
        conn.execute(f"CREATE EXTENSION {PEER}")
    conn.execute("SELECT set_config('hook_peer.fmgr_slot', %s, false)", [slot])
    return conn


def counted(conn: psycopg.Connection, statements: List[str], window: bool) -> Tuple[Dict[str, int], List[Row]]:
    """The peer's counters for `statements` (reset just before them, read just after), and end()'s rows when
    they ran inside a window."""
    if window:
        begin(conn)
    # the session's first name lookup computes the search path (an object_access call): not part of the workload
    conn.execute("SELECT count(*) FROM peer_t")
    conn.execute("SELECT hook_peer_reset()")
    for sql in statements:
        conn.execute(sql, prepare=False)
    counters = conn.execute("SELECT hook_peer_counters()").fetchone()[0]
    return counters, end(conn) if window else []


# --- the crash: *private overwritten ---------------------------------------------------------------

@pytest.mark.parametrize("slot", ["own", "shared"])
@pytest.mark.parametrize("mode", ["all", "off"])
def test_fmgr_private_state_is_never_overwritten(ordered: Tuple[Cluster, bool], mode: str, slot: str) -> None:
    """Three statements, each calling the SET search_path function for 200 rows: no crash, the right result,
    one state allocation per statement (one fmgr cache each), never found missing or overwritten, no finding
    against the peer."""
    cluster, load_in_session = ordered
    with crash_is_a_failure(cluster):
        with peer_session(cluster, load_in_session, mode, slot) as conn:
            begin(conn)
            conn.execute("SELECT hook_peer_reset()")
            for _ in range(3):
                assert conn.execute(PER_ROW, prepare=False).fetchone()[0] == PER_ROW_RESULT
            counters = conn.execute("SELECT hook_peer_counters()").fetchone()[0]
            found = end(conn)
    fmgr = {k: counters[k] for k in counters if k.startswith("fmgr_")}
    assert fmgr == {"fmgr_start": 600, "fmgr_end": 600, "fmgr_abort": 0, "fmgr_state_allocs": 3,
                    "fmgr_state_lost": 0, "fmgr_state_corrupt": 0}, fmgr
    against_peer = [r for r in severe(found) if r["source_lib"] == PEER_LIB]
    assert against_peer == [], brief(against_peer)


# --- every hook: the peer sees exactly what it sees without pg_ext_memcheck ----------------------------------

@pytest.fixture(scope="module")
def baseline(installed_test_extensions: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Dict[str, Dict]]:
    """The peer's counters for WORKLOAD on clusters without pg_ext_memcheck: preloaded, and by CREATE EXTENSION."""
    out: Dict[str, Dict] = {}
    for order in ("after", "create_extension"):
        cluster, load_in_session = peer_cluster(installed_test_extensions, tmp_path_factory, order,
                                                with_memcheck=False)
        try:
            with peer_session(cluster, load_in_session, with_memcheck=False) as conn:
                out["create_extension" if load_in_session else "preloaded"] = counted(conn, WORKLOAD, False)[0]
        finally:
            stop_cluster(cluster)
    yield out


_measured: Dict[Tuple[str, str], Tuple[Dict[str, int], List[Row]]] = {}


def measured(cluster: Cluster, load_in_session: bool, mode: str) -> Tuple[Dict[str, int], List[Row]]:
    """WORKLOAD's counters with pg_ext_memcheck (inside a window in mode all), once per cluster and mode."""
    key = (str(cluster.data_dir), mode)
    if key not in _measured:
        with crash_is_a_failure(cluster):
            with peer_session(cluster, load_in_session, mode) as conn:
                _measured[key] = counted(conn, WORKLOAD, window=(mode == "all"))
    return _measured[key]


@pytest.mark.parametrize("hook", HOOKS)
@pytest.mark.parametrize("mode", ["all", "off"])
def test_peer_hook_counts_are_unchanged(ordered: Tuple[Cluster, bool], baseline: Dict[str, Dict], mode: str,
                                        hook: str) -> None:
    cluster, load_in_session = ordered
    expected = baseline["create_extension" if load_in_session else "preloaded"]
    if hook == "object_access_str" and cluster.info.major < 15:  # the hook exists from 15
        assert hook not in expected
        return
    if hook in NEVER:
        assert expected[hook] == 0
    else:
        assert expected[hook] > 0, f"the workload never reaches {hook}: {expected}"
    counters, _ = measured(cluster, load_in_session, mode)
    assert counters[hook] == expected[hook], (
        f"{hook}: {counters[hook]} with pg_ext_memcheck, {expected[hook]} without (all: {counters} vs {expected})")


def test_no_finding_against_the_peer(ordered: Tuple[Cluster, bool]) -> None:
    """The peer is clean: whatever the window saw of WORKLOAD, nothing at WARNING or above names it."""
    cluster, load_in_session = ordered
    _, found = measured(cluster, load_in_session, "all")
    against_peer = [r for r in severe(found) if r["source_lib"] == PEER_LIB]
    assert against_peer == [], brief(against_peer)

