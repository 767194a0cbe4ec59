"""`run` and `check` end to end on real clusters with the hook library and the buggy example preloaded."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path
from typing import Any, Dict, List, Tuple

import pytest
import yaml

from reporter import findings, results
from reporter.pgconfig import PgConfig

pytestmark = pytest.mark.integration

REPO = Path(__file__).resolve().parents[2]
EXAMPLE = REPO / "examples" / "buggy_pg_ext"
CLI = [sys.executable, "-c", "import sys; from reporter.cli import main; sys.exit(main())"]


def example_doc() -> Dict[str, Any]:
    doc = yaml.safe_load((EXAMPLE / "memcheck.yml").read_text())
    doc["extension"]["path"] = str(EXAMPLE)  # the copies live elsewhere
    return doc


def write_config(directory: Path, doc: Dict[str, Any]) -> Path:
    directory.mkdir(parents=True, exist_ok=True)
    path = directory / "memcheck.yml"
    path.write_text(yaml.safe_dump(doc, sort_keys=False))
    return path


def start_run(config: Path, pg_config: str, output: Path) -> subprocess.Popen:
    cmd = [*CLI, "run", "--config", str(config), "--pg-config", pg_config, "--output", str(output)]
    return subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def finish(proc: subprocess.Popen, output: Path) -> Tuple[subprocess.Popen, str, Dict[str, Any]]:
    _, err = proc.communicate(timeout=600)
    assert proc.returncode == 0, err
    doc = results.load(output)  # validates against reporter/schemas/results.schema.json
    return proc, err, doc


def workload(doc: Dict[str, Any], name: str) -> Dict[str, Any]:
    (found,) = [w for w in doc["workloads"] if w["name"] == name]
    return found


def kinds(w: Dict[str, Any]) -> List[Tuple[str, str, str]]:
    return [(v["check_type"], v["context"], v["severity"]) for v in w["violations"]]


# ---- the bundled example, bugs on -----------------------------------------------------------------


@pytest.fixture(scope="module")
def example_run(installed_pg_config: str, tmp_path_factory: pytest.TempPathFactory) -> Tuple[str, Dict]:
    out = tmp_path_factory.mktemp("example-out")
    _, err, doc = finish(start_run(EXAMPLE / "memcheck.yml", installed_pg_config, out), out)
    return err, doc


def test_example_results_are_complete(example_run: Tuple[str, Dict], installed_pg_config: str) -> None:
    err, doc = example_run
    assert [w["name"] for w in doc["workloads"]] == [
        "select_companies",
        "growth",
        "per_row_function",
        "abort_loop",
    ]
    assert all(w["status"] == "violations" for w in doc["workloads"])
    assert doc["postgresql"]["pg_config"] == installed_pg_config
    assert doc["fail_on"] == "error"
    assert doc["ring"] == {"capacity": 4096, "dropped": 0, "full": False}
    assert doc["config"]["digest"].startswith("sha256:")
    # progress on stderr: the workload and its iteration checkpoints
    assert "[1/4] select_companies: iteration 10/10" in err


def one(w: Dict[str, Any], check: str, context: str) -> Dict[str, Any]:
    found = [v for v in w["violations"] if v["check_type"] == check and v["context"] == context]
    assert len(found) == 1, kinds(w)
    return found[0]


def test_example_report_has_one_finding_per_bug(example_run: Tuple[str, Dict], installed_pg_config: str) -> None:
    """The findings the report leads with, from a real run: one per switched-on bug, each an ERROR leak at the
    bug's line (a restating wrong_ctx_alloc folded into its leak, never shown instead of it)."""
    shown = findings.build([example_run[1]])
    got = sorted((f.check_type, f.context, f.severity, f.lifetime) for f in shown if f.severity != "INFO")
    want = [("context_leak", "BuggyPlannerLeakCtx", "ERROR", "statement"),
            ("context_leak", "TopMemoryContext", "ERROR", "backend")]
    if PgConfig.from_path(installed_pg_config).major < 18:
        want.insert(1, ("context_leak", "SQL function", "ERROR", "statement"))
    assert got == want, [(f.check_type, f.context, f.severity, f.lifetime) for f in shown]


def test_example_top_ctx_alloc_and_planner_leak(example_run: Tuple[str, Dict]) -> None:
    w = workload(example_run[1], "select_companies")
    assert w["iterations"] == 10 and w["mode"] == "all" and w["kind"] == "sql"
    # top_ctx_alloc: 8 kB in TopMemoryContext at every ExecutorStart: one finding, with its rate
    top = one(w, "context_leak", "TopMemoryContext")
    assert top["severity"] == "WARNING" and top["lifetime"] == "backend" and top["verdict"] == "leak"
    assert top["rate"]["unit"] == "statement" and top["rate"]["bytes"] == pytest.approx(8208, rel=0.05)
    assert one(w, "wrong_ctx_alloc", "TopMemoryContext")["severity"] == "WARNING"
    # planner_ctx_leak: a child of MessageContext left behind by every planning, freed at the next message
    planner = one(w, "context_leak", "BuggyPlannerLeakCtx")
    assert planner["severity"] == "INFO" and planner["lifetime"] == "statement"
    assert {v["source_lib"] for v in w["violations"]} == {"buggy_pg_ext.so"}
    for v in w["violations"]:
        assert v["backend_pid"] and v["ts"] and v["ts"].endswith("Z")
        assert v["context_path"].startswith("TopMemoryContext")
        assert v["sites"] and v["sites"][0]["lib"] == "buggy_pg_ext.so"


def test_example_growth_scenario_reports_rates(example_run: Tuple[str, Dict]) -> None:
    w = workload(example_run[1], "growth")
    assert w["kind"] == "scenario" and w["iterations"] == 200
    assert w["scenario"]["verdict"] == "leak" and w["scenario"]["transaction"] == "each"
    top = one(w, "context_leak", "TopMemoryContext")
    assert top["severity"] == "ERROR" and top["lifetime"] == "backend"
    assert top["bytes_per_iteration"] == pytest.approx(8208, rel=0.05)
    # the growth behind the sparkline: what the library held in TopMemoryContext at each checkpoint
    samples = top["samples"]
    assert len(samples) == 17 and samples[-1] - samples[0] == pytest.approx(200 * 8208, rel=0.05)
    # the CALL is one client message: every iteration's leaked planner context stays under MessageContext
    planner = one(w, "context_leak", "BuggyPlannerLeakCtx")
    assert planner["severity"] == "ERROR" and planner["lifetime"] == "statement"
    assert planner["calls"] == 200


def test_example_nested_leak_in_sql_function(example_run: Tuple[str, Dict], installed_pg_config: str) -> None:
    w = workload(example_run[1], "per_row_function")
    nested = [v for v in w["violations"] if v["check_type"] == "context_leak" and v["entry"] == "ExecutorEnd"]
    if PgConfig.from_path(installed_pg_config).major >= 18:
        # 18 runs a SQL function's queries in the caller's per-row memory: freed every row, no leak
        assert nested == [], kinds(w)
        return
    # nested_leak: 2 kB per nested ExecutorEnd in the SQL function's context, freed at statement end
    assert len(nested) == 1, kinds(w)
    assert nested[0]["context"] == "SQL function" and nested[0]["lifetime"] == "statement"
    assert nested[0]["severity"] == "ERROR" and nested[0]["source_lib"] == "buggy_pg_ext.so"
    assert nested[0]["rate"]["bytes"] == pytest.approx(2064, rel=0.1) and nested[0]["rate"]["unit"] == "statement"


def test_example_abort_loop(example_run: Tuple[str, Dict]) -> None:
    w = workload(example_run[1], "abort_loop")
    assert w["scenario"]["scenario"] == "tx_abort_loop"
    # rolled-back subtransactions do not free TopMemoryContext
    top = one(w, "context_leak", "TopMemoryContext")
    assert top["severity"] == "WARNING" and top["lifetime"] == "backend"


# ---- two runs at once: a clean run (bugs off) and one full of failures --------------------------------


def robustness_doc() -> Dict[str, Any]:
    doc = example_doc()
    doc["settings"] = {"buggy_pg_ext.bugs": "", "pg_ext_memcheck.ring_capacity": 16}
    doc["workloads"] = [
        {"name": "before", "sql": "SELECT count(*) FROM companies"},
        # bug `crash`: ExecutorStart dereferences NULL; the SET only lives in this workload's session
        {"name": "segfault", "sql": "SET buggy_pg_ext.bugs = 'crash'; SELECT count(*) FROM companies"},
        {"name": "after_crash", "sql": "SELECT count(*) FROM companies", "iterations": 3},
        {"name": "slow", "sql": "SELECT pg_sleep(20)", "timeout": "1s"},
        {"name": "sql_error", "sql": "SELECT no_such_column FROM companies"},
        # 30 iterations x 2 violations into a 16-entry ring: most are dropped, and counted
        {"name": "overflow", "sql": "SET buggy_pg_ext.bugs = 'top_ctx_alloc'; SELECT 1", "iterations": 30},
        {"name": "last", "scenario": "growth_benchmark", "sql": "SELECT 1", "iterations": 20},
    ]
    doc["suppressions"] = [
        {"check": "wrong_ctx_alloc", "reason": "expired on purpose", "expiry": "2020-01-01"},
        {"check": "context_leak", "pattern": "TopMemoryContext", "reason": "known cache"},
    ]
    return doc


def clean_doc() -> Dict[str, Any]:
    doc = example_doc()
    doc["settings"] = {"buggy_pg_ext.bugs": ""}
    return doc


@pytest.fixture(scope="module")
def parallel_runs(installed_pg_config: str, tmp_path_factory: pytest.TempPathFactory) -> Dict[str, Any]:
    base = tmp_path_factory.mktemp("parallel")
    clean_cfg = write_config(base / "clean", clean_doc())
    rough_cfg = write_config(base / "rough", robustness_doc())
    procs = {
        "clean": start_run(clean_cfg, installed_pg_config, base / "clean-out"),
        "rough": start_run(rough_cfg, installed_pg_config, base / "rough-out"),
    }
    return {name: (finish(proc, base / f"{name}-out"), base / f"{name}-out") for name, proc in procs.items()}


def test_parallel_runs_both_succeed(parallel_runs: Dict[str, Any]) -> None:
    for name, ((proc, _err, doc), out) in parallel_runs.items():
        assert proc.returncode == 0, name
        assert (out / "server.log").read_text().count("database system is ready to accept connections") >= 1
        assert len(doc["workloads"]) == (7 if name == "rough" else 4)


def test_clean_run_has_nothing_at_warning_or_above(parallel_runs: Dict[str, Any]) -> None:
    (_proc, _err, doc), _out = parallel_runs["clean"]
    assert [w["status"] for w in doc["workloads"]] != []
    for w in doc["workloads"]:
        assert w["status"] in ("passed", "violations"), w
        serious = [v for v in w["violations"] if v["severity"] in ("WARNING", "ERROR")]
        assert serious == [], (w["name"], serious)


def test_crash_is_recorded_and_the_next_workload_runs(parallel_runs: Dict[str, Any]) -> None:
    (_proc, err, doc), _out = parallel_runs["rough"]
    assert workload(doc, "before")["status"] == "passed"
    crashed = workload(doc, "segfault")
    assert crashed["status"] == "crashed", crashed
    assert "terminated by signal 11" in crashed["log_excerpt"]
    assert crashed["error"]["sqlstate"] is None
    after = workload(doc, "after_crash")
    assert after["status"] == "passed" and after["iterations"] == 3
    assert "waiting for the server to recover" in err


def test_timeout_and_sql_error(parallel_runs: Dict[str, Any]) -> None:
    (_proc, _err, doc), _out = parallel_runs["rough"]
    slow = workload(doc, "slow")
    assert slow["status"] == "timeout"
    assert slow["error"]["sqlstate"] == "57014"  # cancelled at its timeout: pg_sleep(20) did not run to its end
    failed = workload(doc, "sql_error")
    assert failed["status"] == "error"
    assert failed["error"]["sqlstate"] == "42703" and "no_such_column" in failed["error"]["message"]
    assert "no_such_column" in failed["log_excerpt"]


def test_dropped_violations_are_counted(parallel_runs: Dict[str, Any]) -> None:
    (_proc, _err, doc), _out = parallel_runs["rough"]
    overflow = workload(doc, "overflow")
    # findings come from the session itself, so a 16-entry ring loses none of them
    assert {(v["check_type"], v["severity"]) for v in overflow["violations"]} >= {("wrong_ctx_alloc", "WARNING")}
    assert doc["ring"]["capacity"] == 16
    assert doc["ring"]["dropped"] == sum(w["dropped"] for w in doc["workloads"])
    if doc["ring"]["dropped"] > 0:
        assert doc["ring"]["full"]
    assert workload(doc, "last")["status"] in ("passed", "violations")


def test_suppressions_applied_and_expired_ones_skipped(parallel_runs: Dict[str, Any]) -> None:
    (_proc, err, doc), _out = parallel_runs["rough"]
    overflow = workload(doc, "overflow")
    wrong = [v for v in overflow["violations"] if v["check_type"] == "wrong_ctx_alloc"]
    assert wrong and all(v["suppressed_by"] is None for v in wrong)  # its suppression expired
    leaks = [v for v in overflow["violations"] if v["check_type"] == "context_leak"]
    assert leaks and all(v["suppressed_by"] == "known cache" for v in leaks)
    assert overflow["suppressed"] == len(leaks)
    assert "suppression 'expired on purpose' expired on 2020-01-01; not applied" in err


# ---- check ------------------------------------------------------------------------------------------


def run_check(cwd: Path, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run([*CLI, "check", *args], cwd=cwd, capture_output=True, text=True, timeout=900)


def test_check_example_runs_the_example_and_fails(installed_pg_config: str, tmp_path: Path) -> None:
    """The bundled example runs when asked for by name (`--example`), from any directory; without it, a
    directory that is not an extension is refused (tests/integration/test_zero_config.py)."""
    proc = run_check(tmp_path, "--example", "--pg-config", installed_pg_config)
    assert proc.returncode == 1, proc.stderr
    assert "running the bundled example" in proc.stderr
    assert "iteration" in proc.stderr  # progress while it runs
    assert "3 ERROR" in proc.stdout
    for name in ("select_companies", "growth", "per_row_function", "abort_loop"):
        assert name in proc.stdout
    doc = results.load(tmp_path / "memcheck-results")
    assert doc["fail_on"] == "error"
    wrong = run_check(tmp_path, "--example", "--config", "x.yml")
    assert wrong.returncode == 2 and "not with --config or --extension" in wrong.stderr


def test_check_clean_config_passes(installed_pg_config: str, tmp_path: Path) -> None:
    write_config(tmp_path, clean_doc())
    proc = run_check(tmp_path, "--pg-config", installed_pg_config, "--output", str(tmp_path / "o"))
    assert proc.returncode == 0, proc.stdout + proc.stderr
    doc = results.load(tmp_path / "o")
    assert len(doc["workloads"]) == 4
    assert "results: " in proc.stdout


def test_server_that_cannot_start_still_gives_results(installed_pg_config: str, tmp_path: Path) -> None:
    doc = {"extension": {"name": "no_such_library_xyz"}, "workloads": [{"name": "a", "sql": "SELECT 1"}]}
    cfg = write_config(tmp_path, doc)
    _, _, out = finish(start_run(cfg, installed_pg_config, tmp_path / "o"), tmp_path / "o")
    (w,) = out["workloads"]
    assert w["status"] == "error"
    assert w["error"]["message"].startswith("the server did not start")
    assert "no_such_library_xyz" in w["log_excerpt"]
    assert "no_such_library_xyz" in (tmp_path / "o" / "server.log").read_text()


def test_build_command(installed_pg_config: str, tmp_path: Path) -> None:
    info = PgConfig.from_path(installed_pg_config)
    cmd = [*CLI, "build", "--pg-config", installed_pg_config, "--extension", str(EXAMPLE)]
    proc = subprocess.run([*cmd, "--expect-major", str(info.major)], capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr
    assert f"built and installed against PostgreSQL {info.version} (major {info.major}" in proc.stdout
    # PG_CONFIG is pinned on every make command line (build and install, hook library and extension); the hook
    # library built before against this PostgreSQL is installed from that build (reporter/buildcache.py).
    makes = [line for line in proc.stderr.splitlines() if "$ make" in line]
    kept = "cext: built before with the same sources and PostgreSQL" in proc.stderr
    assert len(makes) == (3 if kept else 4), proc.stderr
    assert all(f"PG_CONFIG={installed_pg_config}" in line for line in makes)
    assert (Path(info.pkglibdir) / "pg_ext_memcheck.so").is_file()
    assert (Path(info.pkglibdir) / "buggy_pg_ext.so").is_file()
    assert (Path(info.sharedir) / "extension" / "buggy_pg_ext.control").is_file()
