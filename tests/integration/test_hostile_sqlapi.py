"""The SQL API against hostile calls, on real clusters of every major (issue 21, items 1, 3 and 5).

1. register_shmem_probe() with a size below a live structure's own (PostgreSQL's buffer descriptors) is refused:
   guard bytes are never written into memory someone owns, and the next CHECKPOINT runs.
3. context_reset_storm against a workload that crashes in every worker is an ERROR finding, never a pass.
5. begin() called again inside an open window (a workload restarting the runner's window) is a finding saying
   the window was reset.
"""

from __future__ import annotations

from typing import Iterator

import psycopg
import pytest

from reporter.cluster import Cluster
from tests.integration.test_hooklib import LIB, only, rows, session, start_cluster

pytestmark = [pytest.mark.integration, pytest.mark.all_majors]


@pytest.fixture(scope="module")
def buggy(installed_pg_config: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Cluster]:
    cluster = start_cluster(installed_pg_config, tmp_path_factory, ["pg_ext_memcheck", "buggy_pg_ext"])
    yield cluster
    cluster.stop()
    cluster.cleanup()


def test_no_guard_over_a_live_structure(buggy: Cluster) -> None:
    with buggy.connect() as conn:
        size, allocated = conn.execute("SELECT size, allocated_size FROM pg_shmem_allocations"
                                       " WHERE name = 'Buffer Descriptors'").fetchone()
        with pytest.raises(psycopg.errors.InvalidParameterValue,
                           match=f'allocated_size 0 is below the {size} bytes shared memory "Buffer Descriptors"'):
            conn.execute("SELECT ext_memcheck.register_shmem_probe('Buffer Descriptors', 0)")
        with pytest.raises(psycopg.errors.InvalidParameterValue, match="below the"):
            conn.execute("SELECT ext_memcheck.register_shmem_probe('Buffer Descriptors', %s)", [size - 1])
        guarded = rows(conn.execute("SELECT guard_bytes, overruns FROM ext_memcheck.shmem_guards()"
                                    " WHERE name = 'Buffer Descriptors'"))
        # only the slack behind the structure is guarded, and it is intact
        assert guarded == [{"guard_bytes": allocated - size, "overruns": 0}]
        for _ in range(3):
            conn.execute("CHECKPOINT")  # walks every buffer descriptor
        conn.execute("CREATE TABLE IF NOT EXISTS shmem_probe_t AS SELECT g FROM generate_series(1, 1000) g")
        assert conn.execute("SELECT count(*) FROM shmem_probe_t").fetchone()[0] == 1000
        # its own size, or more, is what the original's call form means: accepted
        text = conn.execute("SELECT ext_memcheck.register_shmem_probe('Buffer Descriptors', %s)", [size]).fetchone()[0]
        assert f"{allocated - size} guard bytes from offset {size}" in text
    assert "terminated by signal" not in buggy.read_log()


def test_a_storm_whose_every_worker_crashes_is_an_error(buggy: Cluster) -> None:
    # the workload switches the crash on in its first run: from the second on, every worker's ExecutorStart
    # dereferences NULL, the plain ones' as well as the storm's
    workload = "SELECT set_config('buggy_pg_ext.bugs', 'crash', false)"
    with session(buggy, "") as conn:
        conn.execute("SELECT ext_memcheck.begin('')")
        result = conn.execute("SELECT ext_memcheck.run_scenario('context_reset_storm', 5, %s)", [workload],
                              prepare=False).fetchone()[0]
        found = rows(conn.execute('SELECT * FROM ext_memcheck."end"()'))
    storm = result["storm"]
    assert {storm[w]["status"] for w in ("plain_a", "plain_b", "storm")} == {"crashed"}, storm
    crashes = only(found, check_type="use_after_reset", context_name="crash")
    assert len(crashes) == 1, found
    crash = crashes[0]
    assert crash["severity"] == "ERROR" and crash["source_lib"] == LIB and crash["occurrences"] == 3
    assert "3 of 3 workers running the workload crashed" in crash["detail"]
    assert "SIGSEGV" in crash["detail"] and "without any poisoning" in crash["detail"]
    assert "terminated by signal" not in buggy.read_log()  # caught in the workers: no restart


def test_begin_inside_an_open_window_is_a_finding(buggy: Cluster) -> None:
    with session(buggy, "top_ctx_alloc", mode="executor") as conn:
        conn.execute("SELECT ext_memcheck.begin('')")
        for _ in range(3):
            conn.execute("SELECT 1", prepare=False)
        conn.execute("SELECT ext_memcheck.begin('')")  # what a workload does to hide what grew so far
        conn.execute("SELECT 1", prepare=False)
        conn.execute("SELECT ext_memcheck.begin('')")
        found = rows(conn.execute('SELECT * FROM ext_memcheck."end"()'))
        # a window opened after end() is a fresh one, not a reset
        conn.execute("SELECT ext_memcheck.begin('')")
        fresh = rows(conn.execute('SELECT * FROM ext_memcheck."end"()'))
    resets = only(found, check_type="settings_changed", context_name="ext_memcheck.begin()")
    assert len(resets) == 1, found
    assert resets[0]["severity"] == "ERROR" and resets[0]["occurrences"] == 2
    assert "the window was reset" in resets[0]["detail"] and "(2 times)" in resets[0]["detail"]
    assert only(fresh, check_type="settings_changed") == []
