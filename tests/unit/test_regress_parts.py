"""The regression suite as workloads, without a cluster: configuration, pg_regress's diffs, results, the
launcher's command lines (tests/integration/test_regress.py runs it for real)."""

from __future__ import annotations

from pathlib import Path
from typing import Any, Dict, List

import pytest

from reporter import config, defaults, regress, regress_launch

DIFFS = """\
diff -U3 /w/ext/expected/companies.out /w/ext/results/companies.out
--- /w/ext/expected/companies.out\t2026-01-01 00:00:00
+++ /w/ext/results/companies.out\t2026-01-01 00:00:01
@@ -7,7 +7,7 @@
- company 4242
+ company 42
diff -U3 /w/ext/expected/per_row_1.out /w/ext/results/per_row.out
--- /w/ext/expected/per_row_1.out
+++ /w/ext/results/per_row.out
@@ -1 +1 @@
-a
+b
"""


def load(tmp_path: Path, text: str) -> config.Config:
    (tmp_path / "Makefile").write_text("# PGXS\n")
    path = tmp_path / "memcheck.yml"
    path.write_text(text)
    return config.load(path)


def errors(tmp_path: Path, text: str) -> List[str]:
    with pytest.raises(config.ConfigError) as exc:
        load(tmp_path, text)
    return exc.value.errors


def test_regress_entry_needs_nothing_but_itself(tmp_path: Path) -> None:
    cfg = load(tmp_path, "extension: {path: ., name: x}\nworkloads:\n  - regress: true\n")
    (wl,) = cfg.workloads
    assert (wl.kind, wl.name, wl.named, wl.iterations) == ("regress", "regress", False,
                                                           config.DEFAULT_REGRESS_ITERATIONS)
    named = load(tmp_path, "extension: {path: ., name: x}\nworkloads:\n  - {regress: true, name: suite, "
                           "iterations: 2, timeout: 10s}\n").workloads[0]
    assert (named.name, named.named, named.iterations, named.timeout_s) == ("suite", True, 2, 10.0)


@pytest.mark.parametrize("text, message", [
    ("workloads:\n  - regress: true\n", "workloads[0].regress: runs the extension's regression suite"),
    ("extension: {path: ., name: x}\nworkloads:\n  - {regress: true, scenario: growth_benchmark}\n",
     "workloads[0].scenario: not with regress"),
    ("extension: {path: ., name: x}\nworkloads:\n  - {regress: true, protocol: prepared}\n",
     "workloads[0].protocol: not with regress"),
    ("extension: {path: ., name: x}\nworkloads:\n  - regress: true\n  - {regress: true, name: again}\n",
     "workloads[1].regress: the regression suite is already run by workloads[0]"),
    ("extension: {path: ., name: x}\nworkloads:\n  - {regress: true, sql: SELECT 1}\n",
     "a workload needs exactly one of 'sql', 'file' or 'regress: true'"),
    ("extension: {path: ., name: x}\nworkloads:\n  - regress: false\n", "workloads[0].regress"),
    ("workloads:\n  - {sql: SELECT 1}\n", "workloads[0].name: missing required key 'name'"),
])
def test_regress_entry_mistakes(tmp_path: Path, text: str, message: str) -> None:
    assert any(message in e for e in errors(tmp_path, text)), errors(tmp_path, text)


def test_default_configuration_is_a_memcheck_yml(tmp_path: Path) -> None:
    text = defaults.document("my_ext", preload=True, create=None)
    cfg = config.load(tmp_path / defaults.DEFAULT_LABEL, text=text)
    assert cfg.extension is not None and cfg.extension.name == "my_ext" and cfg.extension.preload
    assert cfg.extension.path == tmp_path.resolve()
    assert [w.kind for w in cfg.workloads] == ["regress"]
    library_only = config.load(tmp_path / defaults.DEFAULT_LABEL, text=defaults.document("lib", False, False))
    assert library_only.extension is not None and library_only.extension.create is False


def test_no_makefile_no_default(tmp_path: Path) -> None:
    with pytest.raises(config.ConfigError) as exc:
        defaults.for_directory(tmp_path, "/nonexistent/pg_config")
    assert f"no memcheck.yml, and not a PGXS extension: {tmp_path.resolve()} is empty" in exc.value.errors[0]


def test_split_diffs_by_test() -> None:
    parts = regress.split_diffs(DIFFS)
    assert set(parts) == {"companies", "per_row"}  # the alternative expected file names the same test
    assert parts["companies"].startswith("diff -U3 /w/ext/expected/companies.out")
    assert "+ company 42" in parts["companies"] and "+b" not in parts["companies"]
    assert regress.split_diffs("") == {}
    long = regress.split_diffs("diff -U3 /e/expected/t.out /e/results/t.out\n" + "+x\n" * 20_000)["t"]
    assert len(long) <= regress.DIFF_LIMIT and long.endswith("more characters)")


def suite(tmp_path: Path, named: bool = False) -> regress.Suite:
    text = "extension: {path: ., name: x}\nworkloads:\n  - regress: true\n" if not named else (
        "extension: {path: ., name: x}\nworkloads:\n  - {regress: true, name: ours}\n")
    wl = load(tmp_path, text).workloads[0]
    return regress.Suite(wl, tmp_path, ["setup", "t"])


def record(**kw: Any) -> Dict[str, Any]:
    base = {"status": "passed", "passes": 4, "duration_s": 1.5, "dropped": 0, "repeat_errors": 2, "notes": [],
            "violations": [{"check_type": "context_leak", "context": "TopMemoryContext"}]}
    return {**base, **kw}


def test_workload_result_statuses(tmp_path: Path) -> None:
    s = suite(tmp_path)
    ok = regress.workload_result(s, "t", record(), None, "")
    assert (ok["name"], ok["kind"], ok["status"], ok["iterations"]) == ("t", "regress", "violations", 4)
    assert ok["regress"] == {"passes": 4, "repeat_errors": 2, "notes": []}
    clean = regress.workload_result(s, "t", record(violations=[]), None, "")
    assert clean["status"] == "passed"
    failed = regress.workload_result(s, "t", record(), "diff ...", "")
    assert failed["status"] == "failed" and "differs from expected/t.out" in failed["error"]["message"]
    assert failed["violations"]  # a failing test keeps its memory results
    crashed = regress.workload_result(s, "t", record(status="crashed", error="the server crashed"), "diff", "")
    assert crashed["status"] == "crashed" and crashed["error"]["message"] == "the server crashed"
    missing = regress.workload_result(s, "t", None, None, "make installcheck exited with status 2")
    assert missing["status"] == "error" and "pg_regress did not run this test" in missing["error"]["message"]
    assert regress.workload_result(suite(tmp_path, named=True), "t", record(), None, "")["name"] == "ours/t"


def test_pg_options_and_environment(tmp_path: Path) -> None:
    wl = suite(tmp_path).workload
    opts = regress.pg_options(wl, {"min_leak_bytes": 8192}, "-c work_mem=4MB")
    assert opts == "-c pg_ext_memcheck.memcheck_mode=all -c pg_ext_memcheck.min_leak_bytes=8192 -c work_mem=4MB"
    env = regress.suite_env({"PGDATABASE": "x", "PGHOSTADDR": "1.2.3.4", "EXTRA_REGRESS_OPTS": "--x"}, wl,
                            {}, "/s", 5432, "postgres", tmp_path / "r", tmp_path / "launch", tmp_path / "log")
    assert "PGDATABASE" not in env and "PGHOSTADDR" not in env
    assert env["EXTRA_REGRESS_OPTS"] == f"--x --launcher={tmp_path / 'launch'} --max-concurrent-tests=1"
    assert (env["PGHOST"], env["PGPORT"], env[regress.ENV_ITERATIONS]) == ("/s", "5432", "4")


def test_launcher_command_lines() -> None:
    assert regress_launch.test_name({"PGAPPNAME": "pg_regress/companies"}) == "companies"
    assert regress_launch.test_name({"PGAPPNAME": "pg_regress"}) is None  # pg_regress's own commands
    args = ["-X", "-a", "-q", "-d", "contrib_regression", "-v", "HIDE_TABLEAM=on"]
    assert regress_launch.database_of(args) == "contrib_regression"
    cmd = regress_launch.repeat_command("/bin/psql", args, "/w/sql/t.sql", 3)
    assert cmd == ["/bin/psql", "-X", "-q", "-v", "HIDE_TABLEAM=on", "-d", regress_launch.COPY_DB,
                   "-f", "/w/sql/t.sql", "-f", "/w/sql/t.sql", "-f", "/w/sql/t.sql"]
