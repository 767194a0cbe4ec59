"""The regression suite as workloads, without a cluster: configuration, pg_regress's diffs, results, the
launcher's command lines (tests/integration/test_regress.py runs it for real)."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any, Dict, List

import pytest

from reporter import config, defaults, pgconf, regress, regress_launch

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
    with pytest.raises(config.ConfigError, match=re.escape(str(tmp_path / "memcheck.yml"))) as exc:
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
    with pytest.raises(config.ConfigError,
                       match=re.escape(f"no memcheck.yml, and not a PGXS extension: {tmp_path.resolve()} is empty")):
        defaults.for_directory(tmp_path, "/nonexistent/pg_config")


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
    assert ok["regress"] == {"passes": 4, "repeat_errors": 2, "notes": [], "runner": "pg_regress"}
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


def test_environment_carries_no_measuring_settings(tmp_path: Path) -> None:
    """The measuring settings live in the cluster's configuration (the runner's ALTER SYSTEM): in PGOPTIONS a
    role that is not a superuser would have its connection refused (`\\connect - u`)."""
    wl = suite(tmp_path).workload
    env = regress.suite_env({"PGDATABASE": "x", "PGHOSTADDR": "1.2.3.4", "EXTRA_REGRESS_OPTS": "--x",
                             "PGOPTIONS": "-c work_mem=4MB"}, wl, "/s", 5432, "postgres", tmp_path / "r",
                            tmp_path / "launch", tmp_path / "log", tmp_path / "progress")
    assert "PGDATABASE" not in env and "PGHOSTADDR" not in env
    assert env["PGOPTIONS"] == "-c work_mem=4MB"  # the user's own, untouched
    assert env["EXTRA_REGRESS_OPTS"] == f"--x --launcher={tmp_path / 'launch'} --max-concurrent-tests=1"
    assert (env["PGHOST"], env["PGPORT"], env[regress.ENV_ITERATIONS]) == ("/s", "5432", "4")
    assert env[regress.ENV_PROGRESS] == str(tmp_path / "progress")


def test_isolation_specs_are_workloads_named_by_their_spec(tmp_path: Path) -> None:
    wl = suite(tmp_path).workload
    s = regress.Suite(wl, tmp_path, ["setup", "t"], ["locks", "t"])
    assert s.runs() == [("pg_regress", ["setup", "t"]), ("pg_isolation_regress", ["locks", "t"])]
    assert s.name_of("locks", regress.PG_ISOLATION_REGRESS) == "locks"
    assert s.name_of("t", regress.PG_ISOLATION_REGRESS) == "isolation/t"  # a test file of the same name
    spec = regress.workload_result(s, "t", record(), "diff", "", regress.PG_ISOLATION_REGRESS)
    assert spec["name"] == "isolation/t" and spec["regress"]["runner"] == "pg_isolation_regress"
    assert spec["status"] == "failed" and "differs from expected/t.out" in spec["error"]["message"]
    missing = regress.workload_result(s, "locks", None, None, "no program", regress.PG_ISOLATION_REGRESS)
    assert missing["error"]["message"] == "pg_isolation_regress did not run this test: no program"
    assert regress.Suite(wl, tmp_path, [], ["locks"]).runs() == [("pg_isolation_regress", ["locks"])]


def test_outputdir_follows_the_last_option(tmp_path: Path) -> None:
    wl = suite(tmp_path).workload
    s = regress.Suite(wl, tmp_path, ["t"], ["i"], ("--outputdir=a", "--inputdir", "x", "--outputdir", "b"))
    assert s.outputdir(regress.PG_REGRESS) == "b"
    assert s.outputdir(regress.PG_ISOLATION_REGRESS) == "output_iso"  # PGXS's default for specs
    assert regress.Suite(wl, tmp_path, ["t"]).outputdir(regress.PG_REGRESS) == "."


def test_progress_events_say_which_pass_and_why() -> None:
    start = regress.describe_event({"event": "start", "test": "t", "passes": 4})
    assert start == "pass 1/4 (as pg_regress runs it, output compared with expected/)"
    repeat = regress.describe_event({"event": "repeat", "test": "t", "first": 2, "passes": 4})
    assert repeat == "passes 2-4/4 (in one session, on a copy of the test's database, to tell a leak from a cache)"
    spec = regress.describe_event({"event": "repeat", "first": 2, "passes": 2}, regress.PG_ISOLATION_REGRESS)
    assert spec.startswith("pass 2/2 (isolationtester again")
    done = regress.describe_event({"event": "done", "status": "passed", "violations": 0, "duration_s": 1.5})
    assert done == "passed, 0 violation row(s), 1.5s"
    assert regress.describe_event({"event": "other"}) is None


def test_ticker_numbers_tests_across_the_suite(tmp_path: Path) -> None:
    wl = suite(tmp_path).workload
    s = regress.Suite(wl, tmp_path, ["a", "b"], ["c"])
    lines: List[str] = []
    progress = tmp_path / "p.jsonl"
    ticker = regress._Ticker(progress, s, regress.PG_ISOLATION_REGRESS, 2, 3, lines.append)
    ticker.tick()  # no file yet: nothing
    progress.write_text('{"event": "start", "test": "c", "passes": 2}\n{"event": "done", "test": "c", "sta')
    ticker.tick()
    assert lines == ["regress [3/3] c: pass 1/2 (as pg_isolation_regress runs it, output compared with expected/)"]
    with open(progress, "a") as fh:
        fh.write('tus": "passed", "violations": 1, "duration_s": 2}\n')
    ticker.tick()
    assert lines[1] == "regress [3/3] c: passed, 1 violation row(s), 2s"


def test_launcher_command_lines() -> None:
    assert regress_launch.test_of({"PGAPPNAME": "pg_regress/companies"}) == ("companies", "pg_regress")
    assert regress_launch.test_of({"PGAPPNAME": "pg_regress"}) is None  # pg_regress's own commands
    assert regress_launch.test_of({"PGAPPNAME": "isolation/locks"}) == ("locks", "pg_isolation_regress")
    assert regress_launch.database_of(["dbname=isolation_regression"]) == "isolation_regression"
    assert regress_launch.isolation_repeat_command("/bin/isolationtester", ["dbname=isolation_regression"]) == [
        "/bin/isolationtester", f"dbname={regress_launch.COPY_DB}"]
    args = ["-X", "-a", "-q", "-d", "contrib_regression", "-v", "HIDE_TABLEAM=on"]
    assert regress_launch.database_of(args) == "contrib_regression"
    cmd = regress_launch.repeat_command("/bin/psql", args, "/w/sql/t.sql", 3)
    assert cmd == ["/bin/psql", "-X", "-q", "-v", "HIDE_TABLEAM=on", "-d", regress_launch.COPY_DB,
                   "-f", "/w/sql/t.sql", "-f", "/w/sql/t.sql", "-f", "/w/sql/t.sql"]


# ---- REGRESS_OPTS' --temp-config files ---------------------------------------------------------------


def test_temp_config_is_read_as_the_server_reads_it(tmp_path: Path) -> None:
    conf = tmp_path / "test.conf"
    conf.write_text("# a test configuration\n"
                    "shared_preload_libraries = 'pg_stat_statements, \"other\"'\n"
                    "work_mem 3MB   # no '=' is allowed\n"
                    "Search_Path = '\"$user\", public'\n"
                    "application_name = 'it''s \\\\ok'\n"
                    "port = 5999\n"
                    "include 'more.conf'\n"
                    "work_mem = '4MB'\n")
    got = pgconf.read([conf])
    assert got.preload == ("pg_stat_statements", "other")
    assert got.settings == {"search_path": '"$user", public', "application_name": "it's \\ok", "work_mem": "4MB"}
    assert [n.split(": ", 1)[0] for n in got.notes] == [f"{conf}:6", f"{conf}:7"]
    assert "port left out: the private cluster's connection settings are fixed" in got.notes[0]


@pytest.mark.parametrize("line, message", [
    ("= 1", "not a setting line"),
    ("work_mem =", "a setting without a value"),
    ("a = 'open", "unterminated quoted value"),
    ("a = 1 2", "a: unexpected text after the value"),
])
def test_temp_config_mistakes_name_the_line(tmp_path: Path, line: str, message: str) -> None:
    conf = tmp_path / "bad.conf"
    conf.write_text(f"# first\n{line}\n")
    with pytest.raises(config.ConfigError, match=message) as exc:
        pgconf.read([conf])
    assert exc.value.errors[0].startswith(f"{conf}:2: ")


def test_temp_config_paths_start_at_the_makefile(tmp_path: Path) -> None:
    (tmp_path / "t.conf").write_text("")
    (tmp_path / "sub").mkdir()
    (tmp_path / "sub" / "u.conf").write_text("")
    opts = ["--temp-config=t.conf", "--load-extension=x", "--temp-config", "sub/u.conf",
            # a dual Makefile names it through contrib's tree, which PGXS has not: the file of that name here
            "--temp-config", "/usr/lib/postgresql/15/lib/pgxs/contrib/x/t.conf"]
    assert pgconf.temp_config_paths(opts, tmp_path, "M") == [tmp_path / "t.conf", tmp_path / "sub" / "u.conf",
                                                              tmp_path / "t.conf"]
    with pytest.raises(config.ConfigError, match=r"M: --temp-config nope.conf: no such file \(relative paths"):
        pgconf.temp_config_paths(["--temp-config=nope.conf"], tmp_path, "M")
