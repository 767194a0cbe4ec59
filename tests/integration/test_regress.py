"""The extension's own regression suite as the default workload: `make installcheck` (PGXS REGRESS) on a real
cluster, each test file a workload measured in its own window, with no memcheck.yml at all."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any, Dict, List

import pytest

from reporter import results

pytestmark = pytest.mark.integration

REPO = Path(__file__).resolve().parents[2]
EXAMPLE = REPO / "examples" / "buggy_pg_ext"
CLI = [sys.executable, "-c", "import sys; from reporter.cli import main; sys.exit(main())"]
TESTS = ["setup", "companies", "per_row"]  # the example Makefile's REGRESS


def example_without_config(dest: Path) -> Path:
    """The example as an extension author has it: a PGXS Makefile with REGRESS, sql/, expected/, no memcheck.yml."""
    ignore = shutil.ignore_patterns("*.o", "*.so", "*.bc", "results", "regression.*", "memcheck.yml")
    shutil.copytree(EXAMPLE, dest, ignore=ignore)
    assert not (dest / "memcheck.yml").exists()
    return dest


def cli(*args: str, cwd: Path) -> subprocess.CompletedProcess:
    return subprocess.run([*CLI, *args], cwd=cwd, capture_output=True, text=True, timeout=900)


def by_name(doc: Dict[str, Any]) -> Dict[str, Dict[str, Any]]:
    return {w["name"]: w for w in doc["workloads"]}


def checks(w: Dict[str, Any]) -> List[tuple]:
    return [(v["check_type"], v["context_path"], v["verdict"]) for v in w["violations"]]


@pytest.fixture(scope="module")
def default_run(installed_pg_config: str, tmp_path_factory: pytest.TempPathFactory) -> Dict[str, Any]:
    """`check` in the example's directory with no memcheck.yml: builds it, runs its REGRESS suite."""
    base = tmp_path_factory.mktemp("regress-default")
    ext = example_without_config(base / "buggy_pg_ext")
    proc = cli("check", "--pg-config", installed_pg_config, "--output", str(base / "out"), cwd=ext)
    assert proc.returncode in (0, 1), proc.stderr[-3000:]
    return {"proc": proc, "doc": results.load(base / "out"), "ext": ext}


def test_each_test_file_is_a_workload(default_run: Dict[str, Any]) -> None:
    proc, doc = default_run["proc"], default_run["doc"]
    assert "no memcheck.yml here: running the extension's regression suite" in proc.stderr
    assert [w["name"] for w in doc["workloads"]] == TESTS
    for w in doc["workloads"]:
        assert w["kind"] == "regress"
        assert w["status"] == "violations", (w["name"], w["error"], w.get("diff"))
        assert w["diff"] is None  # the output matched expected/NAME.out
        assert w["iterations"] == 4  # once as pg_regress runs it, three repeats in a session of their own
        assert w["regress"]["passes"] == 4
    assert doc["config"]["path"].endswith("(no memcheck.yml: the extension's regression suite)")


def test_findings_belong_to_their_test_file(default_run: Dict[str, Any]) -> None:
    """The C default bugs (planner_ctx_leak, top_ctx_alloc) leak once per statement: every file shows them,
    each in its own workload, attributed to the example's library; the repeats make them leaks, not caches."""
    doc = default_run["doc"]
    for name, w in by_name(doc).items():
        found = checks(w)
        assert all(v["source_lib"] == "buggy_pg_ext.so" for v in w["violations"]), name
        assert ("wrong_ctx_alloc", "TopMemoryContext", "leak") in found, (name, found)
        assert any(c == "context_leak" and p.endswith("MessageContext/BuggyPlannerLeakCtx") for c, p, _ in found)
    # the test files' own repeats: the first file's CREATE statements fail when repeated, and are counted
    assert by_name(doc)["setup"]["regress"]["repeat_errors"] > 0
    assert by_name(doc)["companies"]["regress"]["repeat_errors"] == 0


def test_terminal_report_names_the_test_files(default_run: Dict[str, Any]) -> None:
    out = default_run["proc"].stdout
    for name in TESTS:
        assert f"VIOLATIONS {name}" in out
    # one finding per default bug (top_ctx_alloc's wrong_ctx_alloc folds into its leak), each with its line
    assert "2 findings (1 ERROR, 1 WARNING, 0 INFO)" in out
    assert "allocated by buggy_ExecutorStart() at " in out and "allocated by buggy_planner() at " in out


def test_a_failing_test_is_reported_with_its_diff_and_still_measured(installed_pg_config: str,
                                                                     tmp_path: Path) -> None:
    ext = example_without_config(tmp_path / "buggy_pg_ext")
    expected = ext / "expected" / "companies.out"
    expected.write_text(expected.read_text().replace(" company 42", " company 4242"))
    proc = cli("run", "--extension", str(ext), "--pg-config", installed_pg_config, "--output", str(tmp_path / "o"),
               cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr[-3000:]
    doc = results.load(tmp_path / "o")
    tests = by_name(doc)
    failed = tests["companies"]
    assert failed["status"] == "failed"
    assert "differs from expected/companies.out" in failed["error"]["message"]
    assert "- company 4242" in failed["diff"] and "+ company 42" in failed["diff"]
    assert failed["violations"], "a failing test's memory results are kept"
    assert tests["setup"]["status"] == tests["per_row"]["status"] == "violations"  # the others ran on
    report = cli("report", str(tmp_path / "o"), "--markdown", str(tmp_path / "r.md"), cwd=tmp_path)
    assert report.returncode == 1  # a failed test fails the job, like an errored workload
    md = (tmp_path / "r.md").read_text()
    assert "companies: failed" in md and "Differences from the expected output" in md


def test_no_regress_tests_is_a_clear_error(installed_pg_config: str, tmp_path: Path) -> None:
    ext = example_without_config(tmp_path / "buggy_pg_ext")
    makefile = ext / "Makefile"
    makefile.write_text("\n".join(ln for ln in makefile.read_text().splitlines() if not ln.startswith("REGRESS")))
    proc = cli("run", "--extension", str(ext), "--pg-config", installed_pg_config, "--output", str(tmp_path / "o"),
               cwd=tmp_path)
    assert proc.returncode == 2
    assert "lists no REGRESS tests" in proc.stderr and "Traceback" not in proc.stderr
