"""`run` against a hostile or careless memcheck.yml, on real clusters (issue 11, items 5, 6, 7, 9, 10, 12, 13, 14):
deadlines enforced from outside the session, scenarios that measured nothing, the planner measured on every
iteration, a dropped extension, settings PostgreSQL ignored, interrupted runs, stale and unwritable output."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any, Dict, Iterator, List

import psycopg
import pytest
import yaml

from reporter import cleanup, results
from reporter.runner import Admin
from reporter.watchdog import ABANDON, CANCEL, TERMINATE, Watchdog
from tests.waiting import run_conninfo, wait_until

pytestmark = pytest.mark.integration

REPO = Path(__file__).resolve().parents[2]
FIXTURE = REPO / "tests" / "fixtures" / "legs" / "clean_pg15" / "results.json"
CLI = [sys.executable, "-c", "import sys; from reporter.cli import main; sys.exit(main())"]


def write_config(directory: Path, doc: Dict[str, Any]) -> Path:
    directory.mkdir(parents=True, exist_ok=True)
    path = directory / "memcheck.yml"
    path.write_text(yaml.safe_dump(doc, sort_keys=False))
    return path


def run_cli(config: Path, pg_config: str, output: Path, **kw: Any) -> subprocess.CompletedProcess:
    cmd = [*CLI, "run", "--config", str(config), "--pg-config", pg_config, "--output", str(output)]
    return subprocess.run(cmd, capture_output=True, text=True, timeout=600, **kw)


def workload(doc: Dict[str, Any], name: str) -> Dict[str, Any]:
    (found,) = [w for w in doc["workloads"] if w["name"] == name]
    return found


# ---- one run with many ways for a workload to go wrong ------------------------------------------------

CATCH_CANCEL = """DO $$
BEGIN
  LOOP
    BEGIN
      PERFORM pg_sleep(30);
    EXCEPTION WHEN query_canceled THEN
      RAISE NOTICE 'cancel caught, going on';
    END;
  END LOOP;
END
$$"""


def hostile_doc() -> Dict[str, Any]:
    return {
        "extension": {"name": "buggy_pg_ext"},
        "settings": {"buggy_pg_ext.bugs": "planner_ctx_leak", "work_mem": "4MB"},
        "setup": "CREATE TABLE t AS SELECT g FROM generate_series(1, 10) g",
        "workloads": [
            # item 7: one leaked planner context per planning, so one violation per iteration
            {"name": "planner_simple", "sql": "SELECT count(*) FROM t", "iterations": 10, "mode": "planner"},
            {"name": "planner_extended", "sql": "SELECT count(*) FROM t", "iterations": 10, "mode": "planner",
             "protocol": "extended"},
            {"name": "planner_prepared", "sql": "SELECT count(*) FROM t", "iterations": 10, "mode": "planner",
             "protocol": "prepared"},
            # item 5: the session switches its own statement_timeout off, or catches the cancel
            {"name": "no_statement_timeout", "sql": "SET statement_timeout = 0; SELECT pg_sleep(12)",
             "timeout": "2s", "mode": "off"},
            {"name": "catches_cancel", "sql": CATCH_CANCEL, "timeout": "1s", "mode": "off"},
            # item 6: every iteration fails inside run_scenario
            {"name": "abort_syntax", "scenario": "tx_abort_loop", "sql": "SELEC 1", "iterations": 10},
            {"name": "abort_missing", "scenario": "tx_abort_loop", "sql": "SELECT * FROM no_such_table",
             "iterations": 10},
            # item 9: the workload drops the hook library's extension; the next one must still be measured
            {"name": "dropper", "sql": "DROP EXTENSION pg_ext_memcheck", "mode": "off"},
            {"name": "after_drop", "sql": "SET buggy_pg_ext.bugs = 'top_ctx_alloc'; SELECT 1", "iterations": 3,
             "mode": "executor"},
        ],
    }


@pytest.fixture(scope="module")
def hostile(installed_pg_config: str, tmp_path_factory: pytest.TempPathFactory) -> Dict[str, Any]:
    base = tmp_path_factory.mktemp("hostile")
    proc = run_cli(write_config(base, hostile_doc()), installed_pg_config, base / "out")
    assert proc.returncode == 0, proc.stderr
    doc = results.load(base / "out")
    doc["_stderr"] = proc.stderr
    return doc


def planner_leaks(w: Dict[str, Any]) -> int:
    """How many times the planner's leaked context was seen: one finding, seen once per planning (only the
    workload's plannings: the runner's own statements after it are planned before its window opens)."""
    found = [v for v in w["violations"] if v["context"] == "BuggyPlannerLeakCtx" and v["phase"] == "planner"]
    assert len(found) == 1, found
    return int(found[0]["occurrences"])


def test_planner_bug_measured_on_every_iteration(hostile: Dict[str, Any]) -> None:
    # Before: psycopg prepared the statement after 5 executions and the cached plan skipped the planner.
    assert planner_leaks(workload(hostile, "planner_simple")) == 10
    assert planner_leaks(workload(hostile, "planner_extended")) == 10


def test_prepared_protocol_measures_the_prepared_path(hostile: Dict[str, Any]) -> None:
    # A prepared statement without parameters is planned once, its generic plan reused: that is the path.
    assert planner_leaks(workload(hostile, "planner_prepared")) == 1


def test_timeout_enforced_when_the_session_disables_statement_timeout(hostile: Dict[str, Any]) -> None:
    w = workload(hostile, "no_statement_timeout")
    assert w["status"] == "timeout", w
    assert w["error"]["sqlstate"] == "57014"  # cancelled: pg_sleep(12) did not run to its end
    assert w["error"]["message"] == "workload exceeded its timeout of 2s; it was cancelled"


def test_timeout_enforced_when_the_session_catches_the_cancel(hostile: Dict[str, Any]) -> None:
    w = workload(hostile, "catches_cancel")
    assert w["status"] == "timeout", w
    assert w["duration_s"] >= 5, w["duration_s"]  # the 5 s grace was given, then pg_terminate_backend
    assert w["error"]["sqlstate"] == "57P01"
    assert "ignored the cancel and was terminated 5s later" in w["error"]["message"]
    assert "terminating it" in hostile["_stderr"]


def test_scenario_whose_every_iteration_failed_is_an_error(hostile: Dict[str, Any]) -> None:
    # the scenario raises its first iteration's error, with that error's SQLSTATE
    for name, sqlstate in (("abort_syntax", "42601"), ("abort_missing", "42P01")):
        w = workload(hostile, name)
        assert w["status"] == "error", w
        assert w["error"]["sqlstate"] == sqlstate
        assert w["error"]["message"].startswith("every iteration of the workload failed (10 of 10): "), w["error"]


def test_dropped_extension_is_restored_and_named(hostile: Dict[str, Any]) -> None:
    dropper = workload(hostile, "dropper")
    assert dropper["status"] == "error"
    assert dropper["error"]["message"].startswith("workload 'dropper' dropped the pg_ext_memcheck extension")
    after = workload(hostile, "after_drop")
    assert after["status"] == "violations", after
    assert any(v["check_type"] == "wrong_ctx_alloc" and v["context"] == "TopMemoryContext"
               for v in after["violations"])
    assert hostile["complete"] is True and hostile["interrupted"] is None


# ---- item 10: settings PostgreSQL did not take ----------------------------------------------------------


def test_settings_postgresql_ignored_are_errors(installed_pg_config: str, tmp_path: Path) -> None:
    doc = {
        "extension": {"name": "buggy_pg_ext"},
        "settings": {"work_mem": "4MB", "pg_ext_memcheck.ring_capacity": 0, "buggy_pg_ext.nosuch": "on"},
        "workloads": [{"name": "a", "sql": "SELECT 1"}],
    }
    cfg = write_config(tmp_path, doc)
    proc = run_cli(cfg, installed_pg_config, tmp_path / "out")
    assert proc.returncode == 2, proc.stderr
    assert "Traceback" not in proc.stderr
    assert (f"{cfg}:5: settings.pg_ext_memcheck.ring_capacity: PostgreSQL did not apply '0'; it runs with 4096; "
            "allowed: 16 .. 1048576 (server log: 0 is outside the valid range") in proc.stderr
    assert f"{cfg}:6: settings.buggy_pg_ext.nosuch: PostgreSQL has no parameter 'buggy_pg_ext.nosuch'" in proc.stderr
    assert "settings.work_mem" not in proc.stderr
    assert not (tmp_path / "out" / "results.json").exists()
    assert (tmp_path / "out" / "server.log").is_file()  # the server's own words stay available


# ---- item 12: SIGINT and SIGTERM keep the results and stop the cluster ------------------------------------


@pytest.fixture
def shared_tmp() -> Iterator[Path]:
    """A TMPDIR the unprivileged server user can use, so the test can see what the run leaves behind."""
    base = Path(tempfile.mkdtemp(prefix="pgmc-test-"))
    os.chmod(base, 0o755)
    tmp = base / "tmp"
    tmp.mkdir()
    os.chmod(tmp, 0o1777)
    yield tmp
    cleanup.stop_leftovers(tmp)  # a failed test must not leave a server running
    shutil.rmtree(base, ignore_errors=True)


def processes_under(directory: Path) -> List[int]:
    """PIDs whose working directory is inside `directory` (a postmaster's is its data directory)."""
    found = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                if os.readlink(entry / "cwd").startswith(str(directory)):
                    found.append(int(entry.name))
            except OSError:
                continue
    return found


@pytest.mark.parametrize(("sig", "status"), [(signal.SIGTERM, 143), (signal.SIGINT, 130)])
def test_interrupted_run_keeps_results_and_stops_the_cluster(
    installed_pg_config: str, tmp_path: Path, shared_tmp: Path, sig: signal.Signals, status: int
) -> None:
    doc = {"workloads": [
        {"name": "quick", "sql": "SELECT 1"},
        {"name": "long", "sql": "SELECT pg_sleep(120)", "timeout": "5min"},
        {"name": "never", "sql": "SELECT 1"},
    ]}
    out = tmp_path / "out"
    cmd = [*CLI, "run", "--config", str(write_config(tmp_path, doc)), "--pg-config", installed_pg_config,
           "--output", str(out)]
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            env={**os.environ, "TMPDIR": str(shared_tmp)})
    try:
        # results.json appears once the first workload is done
        wait_until(lambda: (out / "results.json").exists(), "results.json after the first workload")
        partial = results.load(out)
        assert partial["complete"] is False and [w["name"] for w in partial["workloads"]] == ["quick"]
        with psycopg.connect(wait_until(lambda: run_conninfo(shared_tmp), "the run's server"),
                             autocommit=True) as conn:
            wait_until(lambda: conn.execute("SELECT count(*) FROM pg_stat_activity WHERE state = 'active' "
                                            "AND query = 'SELECT pg_sleep(120)'").fetchone()[0],
                       "the long workload running in the server")
        proc.send_signal(sig)  # while pg_sleep(120) runs
        _, err = proc.communicate(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == status, err
    assert "Traceback" not in err
    final = results.load(out)
    assert final["complete"] is False and final["interrupted"] == sig.name
    assert [w["name"] for w in final["workloads"]] == ["quick", "long"]
    assert workload(final, "quick")["status"] == "passed"
    long = workload(final, "long")
    assert long["status"] == "error" and long["error"]["message"] == f"interrupted by {sig.name} while running"
    assert (out / "server.log").is_file()
    assert processes_under(shared_tmp) == []  # the postmaster and its children are gone
    assert list(shared_tmp.iterdir()) == []  # and so are the cluster's directories


# ---- items 13 and 14: stale, invalid and unwritable output -------------------------------------------------


def test_a_failed_start_leaves_no_stale_results(tmp_path: Path, pg_config: str) -> None:
    out = tmp_path / "out"
    out.mkdir()
    shutil.copy(FIXTURE, out / "results.json")  # an earlier, successful run
    cfg = tmp_path / "memcheck.yml"
    cfg.write_text("workloads:\n  - name: a\n    sql: SELECT 1\n    timeout: .nan\n")
    proc = run_cli(cfg, pg_config, out)
    assert proc.returncode == 2 and "Traceback" not in proc.stderr, proc.stderr
    assert f"{cfg}:4: workloads[0].timeout: nan is out of range" in proc.stderr
    assert not (out / "results.json").exists()


def test_unwritable_output(tmp_path: Path, pg_config: str) -> None:
    cfg = tmp_path / "memcheck.yml"
    cfg.write_text("workloads:\n  - name: a\n    sql: SELECT 1\n")
    blocker = tmp_path / "file"
    blocker.write_text("not a directory")
    proc = run_cli(cfg, pg_config, blocker / "out")
    assert proc.returncode == 2 and "Traceback" not in proc.stderr, proc.stderr
    assert f"pg-ext-memcheck: error: --output {blocker / 'out'}: cannot write there: Not a directory" in proc.stderr


# ---- the watchdog's last resort: a backend that answers neither cancel nor terminate ------------------------


def test_watchdog_abandons_a_backend_that_ignores_every_signal(cluster_factory) -> None:  # noqa: ANN001
    cluster = cluster_factory(preload=[])
    admin = Admin(cluster)
    conn = cluster.connect()
    pid = conn.info.backend_pid
    os.kill(pid, signal.SIGSTOP)  # it cannot run its interrupt handlers now
    try:
        with pytest.raises(psycopg.OperationalError, match="server closed the connection|consuming input failed"):
            with Watchdog(admin.execute, conn, timeout_s=0.5, grace_s=0.5) as dog:
                conn.execute("SELECT 1")
        assert dog.fired == ABANDON  # the socket was shut: the blocked read ended without the backend
        assert "its connection was closed" in dog.describe()
    finally:
        os.kill(pid, signal.SIGCONT)
        conn.close()
    # The pending terminate ends the backend once it runs again; the server keeps serving.
    wait_until(lambda: admin.execute("SELECT count(*) FROM pg_stat_activity WHERE pid = %s", (pid,))[0][0] == 0,
               f"backend {pid} to end after SIGCONT")
    admin.close()


def test_watchdog_quiet_when_the_workload_finishes_in_time(cluster_factory) -> None:  # noqa: ANN001
    cluster = cluster_factory(preload=[])
    admin = Admin(cluster)
    with cluster.connect() as conn:
        with Watchdog(admin.execute, conn, timeout_s=30, grace_s=1) as dog:
            conn.execute("SELECT pg_sleep(0.2)")
        # Leaving the block stopped the watch: its thread has ended, and it ended before the deadline, for at
        # the deadline it would have cancelled the backend (fired) and this session would show it.
        assert dog._thread is not None and not dog._thread.is_alive()
        assert dog.fired is None and dog.fired not in (CANCEL, TERMINATE)
        assert conn.execute("SELECT 1").fetchone() == (1,)
    admin.close()


# A workload that waits until the test opens its gate (a row in the table `gate`).
GATE = ("DO $$ BEGIN WHILE NOT EXISTS (SELECT 1 FROM gate WHERE k = {k}) LOOP PERFORM pg_sleep(0.05); END LOOP; "
        "END $$")


def test_results_are_saved_after_every_workload(installed_pg_config: str, tmp_path: Path, shared_tmp: Path) -> None:
    """Watch results.json while the run goes on: it grows workload by workload, each version complete JSON.
    Each later workload waits at a gate the test opens only after it has seen the version before it."""
    doc = {"setup": "CREATE TABLE gate (k int)",
           "workloads": [{"name": "w0", "sql": "SELECT 1"},
                         *({"name": f"w{k}", "sql": GATE.format(k=k), "timeout": "10min"} for k in (1, 2, 3))]}
    out = tmp_path / "out"
    cmd = [*CLI, "run", "--config", str(write_config(tmp_path, doc)), "--pg-config", installed_pg_config,
           "--output", str(out)]
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            env={**os.environ, "TMPDIR": str(shared_tmp)})

    def version() -> Dict[str, Any] | None:
        try:
            return json.loads((out / "results.json").read_text())  # never half written: JSONDecodeError fails
        except FileNotFoundError:
            return None

    try:
        for k in (1, 2, 3, 4):
            seen = wait_until(lambda k=k: (v := version()) and len(v["workloads"]) >= k and v,
                              f"results.json with {k} workload(s)")
            assert [w["name"] for w in seen["workloads"]] == [f"w{i}" for i in range(k)]  # w{k} waits at its gate
            if k < 4:
                assert seen["complete"] is False
            if k < 4:
                with psycopg.connect(wait_until(lambda: run_conninfo(shared_tmp), "the run's server"),
                                     autocommit=True) as conn:
                    conn.execute("INSERT INTO gate VALUES (%s)", (k,))
        _, err = proc.communicate(timeout=300)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == 0, err
    assert results.load(out)["complete"] is True
