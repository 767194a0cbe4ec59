"""`run` against workloads that attack the runner itself, on real clusters (issue 21, items 2, 3, 5, 6, 10, 11, 12
and 16): nothing crashes the run, nothing turns a finding into an all-clear, no workload is lost.

2. A workload that replaces ext_memcheck."end"() is an error; its findings are read through the restored
   function, and the next workloads are measured as before. A setup that does it runs nothing.
3. context_reset_storm against a workload that crashes in every worker is an ERROR finding.
5. A workload that calls ext_memcheck.begin('') itself has a finding saying its window was reset.
6. ALTER SYSTEM on one of the hook library's settings, and a reload, is reported in every later window.
10. kill -9 of the postmaster: the workload is a crash, the server is started again for the others, results.json
    is complete.
11. Core settings PostgreSQL refuses: exit 2, file:line:key and the server's own words, before any workload.
12. An extension that crashes every backend: "every connection crashed", with the crash from the server log.
16. SET ROLE / SET SESSION AUTHORIZATION in a workload: said in a note, its findings kept.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path
from typing import Any, Dict, List

import pytest
import yaml

from reporter import results

pytestmark = pytest.mark.integration

CLI = [sys.executable, "-c", "import sys; from reporter.cli import main; sys.exit(main())"]

END_COLUMNS = """ts timestamptz, backend_pid int, check_type text, severity text, detail text,
    source_lib text, context_name text, context_path text, depth int,
    used_delta bigint, allocated_delta bigint, bytes_per_iteration float8, phase text,
    query text, lifetime text, verdict text, rate_bytes float8, rate_unit text,
    calls bigint, occurrences bigint, entry text, sites jsonb, finding_id int"""
# The probe of item 2: end() replaced by a function of the same shape that returns nothing.
FAKE_END = f"""CREATE OR REPLACE FUNCTION ext_memcheck."end"()
RETURNS TABLE ({END_COLUMNS})
LANGUAGE sql AS $$ SELECT NULL::timestamptz, 0, NULL, NULL, NULL, NULL, NULL, NULL, 0, 0::bigint, 0::bigint,
    0::float8, NULL, NULL, NULL, NULL, 0::float8, NULL, 0::bigint, 0::bigint, NULL, NULL::jsonb, 0 WHERE false $$"""


def write_config(directory: Path, doc: Dict[str, Any]) -> Path:
    directory.mkdir(parents=True, exist_ok=True)
    path = directory / "memcheck.yml"
    path.write_text(yaml.safe_dump(doc, sort_keys=False))
    return path


def run_cli(config: Path, pg_config: str, output: Path) -> subprocess.CompletedProcess:
    cmd = [*CLI, "run", "--config", str(config), "--pg-config", pg_config, "--output", str(output)]
    return subprocess.run(cmd, capture_output=True, text=True, timeout=600)


def workload(doc: Dict[str, Any], name: str) -> Dict[str, Any]:
    (found,) = [w for w in doc["workloads"] if w["name"] == name]
    return found


def checks(w: Dict[str, Any], check_type: str) -> List[Dict[str, Any]]:
    return [v for v in w["violations"] if v["check_type"] == check_type]


def leaked(w: Dict[str, Any]) -> bool:
    """ExecutorStart's 8 kB per statement in TopMemoryContext (buggy_pg_ext's top_ctx_alloc) was found."""
    return any(v["check_type"] == "wrong_ctx_alloc" and v["context"] == "TopMemoryContext" for v in w["violations"])


# ---- one run, many attacks ----------------------------------------------------------------------------------


def hostile_doc() -> Dict[str, Any]:
    return {
        "extension": {"name": "buggy_pg_ext"},
        "settings": {"buggy_pg_ext.bugs": "top_ctx_alloc"},
        "setup": "CREATE ROLE not_a_superuser",
        "workloads": [
            # item 2: leaks, then replaces end() with one that returns nothing
            {"name": "tamper", "sql": f"SELECT 1; {FAKE_END}", "iterations": 5, "mode": "executor"},
            {"name": "after_tamper", "sql": "SELECT 1", "iterations": 5, "mode": "executor"},
            # item 5: restarts the runner's window on every iteration
            {"name": "rebegin", "sql": "SELECT 1; SELECT ext_memcheck.begin('')", "iterations": 20,
             "mode": "executor"},
            # item 16
            {"name": "set_role", "sql": "SELECT 1; SET ROLE not_a_superuser", "iterations": 5, "mode": "executor"},
            {"name": "set_session_authorization", "sql": "SELECT 1; SET SESSION AUTHORIZATION not_a_superuser",
             "iterations": 5, "mode": "executor"},
            # item 3: from its second run on, every worker's ExecutorStart crashes
            {"name": "storm_crash", "scenario": "context_reset_storm", "iterations": 5,
             "sql": "SELECT set_config('buggy_pg_ext.bugs', 'crash', false)"},
            # item 6: ctx_bloat silenced for the rest of the run, unless it is said
            {"name": "alter_system", "sql": "ALTER SYSTEM SET pg_ext_memcheck.bloat_min_bytes = 1000000000"},
            {"name": "reload", "sql": "SELECT pg_reload_conf()"},
            {"name": "later", "scenario": "growth_benchmark", "iterations": 100, "sql": "SELECT 1"},
            {"name": "much_later", "sql": "SELECT 1", "iterations": 3, "mode": "executor"},
        ],
    }


@pytest.fixture(scope="module")
def hostile(installed_pg_config: str, tmp_path_factory: pytest.TempPathFactory) -> Dict[str, Any]:
    base = tmp_path_factory.mktemp("hostile2")
    proc = run_cli(write_config(base, hostile_doc()), installed_pg_config, base / "out")
    assert proc.returncode == 0, proc.stderr
    assert "Traceback" not in proc.stderr and "internal error" not in proc.stderr
    doc = results.load(base / "out")
    doc["_stderr"] = proc.stderr
    return doc


def test_replaced_end_is_an_error_and_its_findings_are_kept(hostile: Dict[str, Any]) -> None:
    w = workload(hostile, "tamper")
    assert w["status"] == "error"
    message = w["error"]["message"]
    assert "changed pg_ext_memcheck's SQL API (replaced function ext_memcheck.\"end\"())" in message
    assert "read through the restored functions" in message
    assert leaked(w), w["violations"]  # what the fake end() would have hidden
    after = workload(hostile, "after_tamper")  # the replacement did not last
    assert after["status"] == "violations" and after["error"] is None and leaked(after)


def test_setup_that_replaces_end_runs_nothing(installed_pg_config: str, tmp_path: Path) -> None:
    doc = {"extension": {"name": "buggy_pg_ext"}, "setup": [FAKE_END],
           "workloads": [{"name": "a", "sql": "SELECT 1"}, {"name": "b", "sql": "SELECT 1"}]}
    proc = run_cli(write_config(tmp_path, doc), installed_pg_config, tmp_path / "out")
    assert proc.returncode == 0 and "Traceback" not in proc.stderr, proc.stderr
    found = results.load(tmp_path / "out")
    assert [w["status"] for w in found["workloads"]] == ["error", "error"]
    for w in found["workloads"]:
        assert w["error"]["message"] == (
            "setup failed: CREATE EXTENSION buggy_pg_ext or the setup SQL changed pg_ext_memcheck's SQL API (replaced "
            "function ext_memcheck.\"end\"()): the runner reads every finding through it, so no workload was run")


def test_a_reset_window_is_a_finding(hostile: Dict[str, Any]) -> None:
    w = workload(hostile, "rebegin")
    (reset,) = [v for v in checks(w, "settings_changed") if v["context"] == "ext_memcheck.begin()"]
    assert reset["severity"] == "ERROR" and "the window was reset" in reset["detail"]
    assert w["status"] == "violations"


def test_changed_role_is_said_and_its_findings_kept(hostile: Dict[str, Any]) -> None:
    for name, how in (("set_role", "SET ROLE"), ("set_session_authorization",
                                                 "SET SESSION AUTHORIZATION not_a_superuser")):
        w = workload(hostile, name)
        assert w["status"] == "violations" and w["error"] is None, w
        assert leaked(w), w["violations"]
        (note,) = w["notes"]
        assert how in note and "findings, which are kept" in note
        assert f"{name}: the workload changed its" in hostile["_stderr"]
    assert "permission denied" not in hostile["_stderr"]


def test_a_crashing_storm_is_an_error(hostile: Dict[str, Any]) -> None:
    w = workload(hostile, "storm_crash")
    (crash,) = checks(w, "use_after_reset")
    assert crash["severity"] == "ERROR" and crash["context"] == "crash" and crash["source_lib"] == "buggy_pg_ext.so"
    assert "3 of 3 workers running the workload crashed" in crash["detail"] and "SIGSEGV" in crash["detail"]
    assert w["status"] == "violations"


def test_alter_system_is_reported_in_every_later_window(hostile: Dict[str, Any]) -> None:
    names = [w["name"] for w in hostile["workloads"]]
    before = names[:names.index("alter_system")]
    for name in before:
        assert not [v for v in checks(workload(hostile, name), "settings_changed")
                    if "bloat_min_bytes" in v["detail"]], name
    # (the reloading workload's own session may see the new value only after its window: not asserted)
    for name in ("later", "much_later"):
        said = [v for v in checks(workload(hostile, name), "settings_changed")
                if "pg_ext_memcheck.bloat_min_bytes = 1000000000 (the run started with 16384; ALTER SYSTEM put it "
                   "in postgresql.auto.conf)" in v["detail"]]
        assert len(said) == 1 and said[0]["severity"] == "ERROR", (name, workload(hostile, name)["violations"])


# ---- the server itself goes away ------------------------------------------------------------------------------


def test_killed_postmaster_is_a_crash_and_the_run_goes_on(installed_pg_config: str, tmp_path: Path) -> None:
    doc = {"workloads": [
        {"name": "first", "sql": "SELECT 1"},
        # a backend's working directory is the data directory
        {"name": "killer", "sql": "COPY (SELECT 1) TO PROGRAM 'kill -9 $(head -1 postmaster.pid)'"},
        {"name": "after", "sql": "SELECT 1", "iterations": 3},
    ]}
    proc = run_cli(write_config(tmp_path, doc), installed_pg_config, tmp_path / "out")
    assert proc.returncode == 0, proc.stderr
    assert "internal error" not in proc.stderr and "Traceback" not in proc.stderr
    assert "not accepting connections after" not in proc.stderr  # no waiting for a recovery that never comes
    found = results.load(tmp_path / "out")
    assert found["complete"] is True
    assert [(w["name"], w["status"]) for w in found["workloads"]] == [
        ("first", "passed"), ("killer", "crashed"), ("after", "passed")]
    killer = workload(found, "killer")
    assert killer["error"]["message"].startswith("the PostgreSQL server stopped while this workload ran: its "
                                                 "postmaster (pid ")
    assert "unexpected postmaster exit" in killer["log_excerpt"]
    assert "starting the server again" in proc.stderr


def test_backends_that_all_crash_are_said_so(installed_pg_config: str, tmp_path: Path) -> None:
    doc = {"extension": {"name": "buggy_pg_ext"}, "settings": {"buggy_pg_ext.bugs": "crash"},
           "workloads": [{"name": "a", "sql": "SELECT 1"}, {"name": "b", "sql": "SELECT 1"}]}
    proc = run_cli(write_config(tmp_path, doc), installed_pg_config, tmp_path / "out")
    assert proc.returncode == 0 and "Traceback" not in proc.stderr, proc.stderr
    found = results.load(tmp_path / "out")
    for w in found["workloads"]:
        assert w["status"] == "error"
        message = w["error"]["message"]
        assert message.startswith("the server started, but every connection crashed: the first query of each new "
                                  "session (SELECT 1) killed its backend, each of the 3+ times it was tried; the "
                                  "server log says: server process (PID ")
        assert "terminated by signal 11" in message and "did not start" not in message
        assert "Failed process was running: SELECT 1" in w["log_excerpt"]


def test_core_settings_postgresql_refuses_stop_the_run(installed_pg_config: str, tmp_path: Path) -> None:
    doc = {"settings": {"work_mem": "banana", "shared_buffers": "16MB", "no_such_core_setting": "on",
                        "max_connections": "many"},
           "workloads": [{"name": "a", "sql": "SELECT 1"}]}
    cfg = write_config(tmp_path, doc)
    proc = run_cli(cfg, installed_pg_config, tmp_path / "out")
    assert proc.returncode == 2, proc.stderr
    assert "Traceback" not in proc.stderr and "did not start" not in proc.stderr
    lines = [ln for ln in proc.stderr.splitlines() if "refuses it" in ln]
    assert lines == [
        f'{cfg}:2: settings.work_mem: PostgreSQL {pg_version(installed_pg_config)} refuses it: invalid value for '
        'parameter "work_mem": "banana"',
        f'{cfg}:4: settings.no_such_core_setting: PostgreSQL {pg_version(installed_pg_config)} refuses it: '
        'unrecognized configuration parameter "no_such_core_setting"',
        f'{cfg}:5: settings.max_connections: PostgreSQL {pg_version(installed_pg_config)} refuses it: invalid '
        'value for parameter "max_connections": "many"',
    ], proc.stderr
    assert not (tmp_path / "out" / "results.json").exists()


def pg_version(pg_config: str) -> str:
    from reporter.pgconfig import PgConfig

    return PgConfig.from_path(pg_config).version


def test_a_regression_test_that_replaces_end_is_an_error(installed_pg_config: str, tmp_path: Path) -> None:
    """The same attack from a test file of the extension's own suite (`make installcheck` as the workload):
    which file did it is not known, so every test of the suite is an error, and the API is restored."""
    from tests.integration.test_regress import example_without_config

    ext = example_without_config(tmp_path / "buggy_pg_ext")
    # the tests run in a database of their own: the runner reads findings in `postgres`, so the attack goes there
    (ext / "sql" / "tamper.sql").write_text("\\c postgres\n" + FAKE_END + ";\n")
    makefile = ext / "Makefile"
    makefile.write_text(makefile.read_text().replace("REGRESS = setup companies per_row",
                                                     "REGRESS = setup companies per_row tamper"))
    proc = subprocess.run([*CLI, "check", "--pg-config", installed_pg_config, "--output", str(tmp_path / "out")],
                          cwd=ext, capture_output=True, text=True, timeout=900)
    assert proc.returncode == 1, proc.stderr[-3000:]
    assert "Traceback" not in proc.stderr and "internal error" not in proc.stderr
    doc = results.load(tmp_path / "out")
    assert [w["name"] for w in doc["workloads"]] == ["setup", "companies", "per_row", "tamper"]
    for w in doc["workloads"]:
        assert w["status"] in ("error", "failed"), w  # tamper has no expected output: failed, and said why
        assert ("the regression suite changed pg_ext_memcheck's SQL API (replaced function ext_memcheck.\"end\"())"
                in w["error"]["message"]), w["error"]
