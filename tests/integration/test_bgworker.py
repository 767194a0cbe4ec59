"""Issue 19, item 6: a background worker the library registers is a way into the library, and measured.

tests/extensions/job_worker registers one worker per variant (statically when preloaded, dynamically through
job_worker_launch() when loaded by CREATE EXTENSION). Each waits on its latch and runs one job per wake-up, a job
being a shm_mq in a DSM segment handed over by job_worker_run() in the test's session. The cluster measures every
process (memcheck_mode = all in postgresql.conf). The worker's findings are what it published when it exited
(pg_terminate_backend), read back with flush_violations() and violation_log.

- leaky: 1,000 jobs each leave a shm_mq_handle (144 B with its header, 136 B from 16) in TopMemoryContext: found,
  WARNING or ERROR, against job_worker.so, lifetime backend, at the bytes kept per job (per loop: one job each);
- clean: the same jobs in a context reset after each: nothing at WARNING or above;
- dsm_churn: 1,500 DSM segments mapped over the worker's life, never more than 5 at once, and 300 by the session
  that hands out the jobs, one at a time: no coverage_gap on either side;
- coverage() lists the background workers and what is measured in them;
- `pg-ext-memcheck run` collects what the worker found, not only the workload session's end() rows.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path
from typing import Dict, Iterator, List, Tuple

import psycopg
import pytest
import yaml

from reporter import results
from reporter.cluster import Cluster
from reporter.pgconfig import PgConfig
from tests.integration.extlib import (
    ORDER_NAMES,
    Row,
    begin,
    brief,
    end,
    flush_and_read,
    load_orders,
    only,
    rows,
    session,
    severe,
    start_cluster,
    stop_cluster,
    within,
)

pytestmark = [pytest.mark.integration, pytest.mark.all_majors]

WORKER = "job_worker"
WORKER_LIB = "job_worker.so"
WORKER_DIR = Path(__file__).resolve().parents[1] / "extensions" / WORKER
CLI = [sys.executable, "-c", "import sys; from reporter.cli import main; sys.exit(main())"]
SETTINGS = {"pg_ext_memcheck.memcheck_mode": "all", "max_worker_processes": 16, "autovacuum": "off"}
# a job waits for the worker's answer: a worker that never answers fails the test instead of hanging it
SAFETY = {"statement_timeout": "60s"}


@pytest.fixture(scope="module", params=ORDER_NAMES, ids=lambda o: f"order-{o}")
def ordered(request: pytest.FixtureRequest, installed_test_extensions: str,
            tmp_path_factory: pytest.TempPathFactory) -> Iterator[Tuple[Cluster, bool]]:
    preload, load_in_session = load_orders([WORKER])[request.param]
    setup = ["CREATE EXTENSION IF NOT EXISTS pg_ext_memcheck"]
    if not load_in_session:
        setup.append(f"CREATE EXTENSION IF NOT EXISTS {WORKER}")
    cluster = start_cluster(installed_test_extensions, tmp_path_factory, preload, SETTINGS, setup)
    yield cluster, load_in_session
    stop_cluster(cluster)


def worker_pid(conn: psycopg.Connection, variant: str, load_in_session: bool) -> int:
    """The variant's worker: launched now when the library is not preloaded, else the one registered at start."""
    if load_in_session:
        conn.execute("SELECT job_worker_launch(%s)", [variant])
    conn.execute("SELECT job_worker_run(%s, 0)", [variant])  # returns once the worker is ready
    pid = conn.execute("SELECT pid FROM job_worker_status(%s)", [variant]).fetchone()[0]
    assert pid > 0
    return pid


def stop_worker(conn: psycopg.Connection, pid: int) -> None:
    """Terminate the worker and wait until it is gone (it publishes its findings as it exits)."""
    assert conn.execute("SELECT pg_terminate_backend(%s)", [pid]).fetchone()[0]
    for _ in range(400):
        if conn.execute("SELECT count(*) FROM pg_stat_activity WHERE pid = %s", [pid]).fetchone()[0] == 0:
            return
        conn.execute("SELECT pg_sleep(0.05)")
    raise AssertionError(f"worker {pid} did not exit")


def run_worker(cluster: Cluster, load_in_session: bool, variant: str, jobs: int
               ) -> Tuple[Dict, List[Row], List[Row]]:
    """`jobs` jobs for the variant's worker, handed out inside a window of the session (the client side maps one
    DSM segment per job); the worker's status before it stopped, its findings, and the session's."""
    with session(cluster, [WORKER], load_in_session, settings=SAFETY) as conn:
        pid = worker_pid(conn, variant, load_in_session)
        begin(conn)
        assert conn.execute("SELECT job_worker_run(%s, %s)", [variant, jobs]).fetchone()[0] == jobs
        session_found = end(conn)
        status = rows(conn.execute("SELECT * FROM job_worker_status(%s)", [variant]))[0]
        stop_worker(conn, pid)
        found = flush_and_read(conn, pid)
    return status, found, session_found


def test_coverage_lists_the_background_workers(ordered: Tuple[Cluster, bool]) -> None:
    """coverage() names the library's background workers (bgw_name "job_worker <variant>") and says they are
    measured. (First in the module: the tests after it stop the workers registered at start.)"""
    cluster, load_in_session = ordered
    with session(cluster, [WORKER], load_in_session, settings=SAFETY) as conn:
        worker_pid(conn, "clean", load_in_session)
        coverage = rows(conn.execute("SELECT * FROM ext_memcheck.coverage()"))
    workers = [r for r in coverage if "worker" in r["kind"] and "job_worker clean" in f"{r['name']} {r['detail']}"]
    assert workers and all(r["measured"] for r in workers), coverage


def test_worker_leak_is_found(ordered: Tuple[Cluster, bool]) -> None:
    cluster, load_in_session = ordered
    status, found, _ = run_worker(cluster, load_in_session, "leaky", 1000)
    # what a job keeps: the handle's footprint (144 B, 136 B from 16), which is all TopMemoryContext grows by
    truth = status["kept_bytes"] / status["jobs"]
    assert status["jobs"] == 1000 and 100 < truth < 200, status
    assert abs(status["top_growth"] / (status["jobs"] - 1) - truth) < 1, status
    # (its wrong_ctx_alloc twin on the same context may come with it)
    hits = [r for r in severe(found) if r["source_lib"] == WORKER_LIB and r["lifetime"] == "backend"
            and r["check_type"] == "context_leak"]
    assert len(hits) == 1, f"expected one backend-lifetime context_leak at WARNING or ERROR against {WORKER_LIB}: " \
                           f"{brief(found)}"
    hit = hits[0]
    assert hit["context_name"] == "TopMemoryContext" and hit["verdict"] == "leak", brief(hits)
    assert hit["rate_unit"] in ("job", "loop", "iteration") and within(hit["rate_bytes"], truth), \
        f"truth {truth} B: {brief(hits)}"


def test_clean_worker_gives_nothing(ordered: Tuple[Cluster, bool]) -> None:
    cluster, load_in_session = ordered
    status, found, session_found = run_worker(cluster, load_in_session, "clean", 1000)
    assert status["jobs"] == 1000 and status["kept_bytes"] == 0, status
    assert severe(found) == [], brief(severe(found))
    assert severe(session_found) == [], brief(severe(session_found))  # the client side is clean too


def test_many_dsm_segments_over_a_worker_life_are_no_coverage_gap(ordered: Tuple[Cluster, bool]) -> None:
    cluster, load_in_session = ordered
    """The worker maps 1,500 segments over its life, at most 5 at once; the session handing out the 300 jobs maps
    300, one at a time: no coverage_gap on either side, nothing else either."""
    status, found, session_found = run_worker(cluster, load_in_session, "dsm_churn", 300)
    assert status["segments"] == 1500 and status["max_mapped"] == 5, status
    assert only(found, check_type="coverage_gap") == [], brief(found)
    assert severe(found) == [], brief(severe(found))
    assert only(session_found, check_type="coverage_gap") == [], brief(session_found)
    assert severe(session_found) == [], brief(severe(session_found))


# --- `run` collects what every process of the cluster found -------------------------------------------------

def test_run_collects_the_worker_findings(installed_test_extensions: str, tmp_path: Path) -> None:
    """`pg-ext-memcheck run` with job_worker preloaded and a workload that hands its leaky worker 1,000 jobs:
    the results carry the worker's leak (it is not the session's), with the library, lifetime and rate per job.
    The truth is a shm_mq_handle's chunk: 96 bytes rounded to 128, plus the chunk header (16 bytes up to 15,
    8 from 16)."""
    doc = {
        "extension": {"path": str(WORKER_DIR), "name": WORKER, "preload": True},
        "setup": f"CREATE EXTENSION IF NOT EXISTS {WORKER};",
        "workloads": [{"name": "jobs", "sql": "SELECT job_worker_run('leaky', 1000)", "mode": "all"}],
    }
    config = tmp_path / "memcheck.yml"
    config.write_text(yaml.safe_dump(doc, sort_keys=False))
    out = tmp_path / "out"
    proc = subprocess.run([*CLI, "run", "--config", str(config), "--pg-config", installed_test_extensions,
                           "--output", str(out)], capture_output=True, text=True, timeout=900)
    assert proc.returncode == 0, proc.stderr
    doc = results.load(out)
    (jobs,) = [w for w in doc["workloads"] if w["name"] == "jobs"]
    assert jobs["status"] != "error", jobs
    truth = 128 + (16 if PgConfig.from_path(installed_test_extensions).major < 16 else 8)
    hits = [v for v in jobs["violations"] if v["source_lib"] == WORKER_LIB and v["lifetime"] == "backend"
            and v["check_type"] == "context_leak" and v["severity"] in ("WARNING", "ERROR")]
    assert len(hits) == 1, jobs["violations"]
    assert hits[0]["rate"]["unit"] in ("job", "loop", "iteration"), hits
    assert within(hits[0]["rate"]["bytes"], truth), (truth, hits)
