"""Zero configuration on real extension trees: each convention of published extensions (tests/fixtures/trees)
built and run end to end by `pg-ext-memcheck check` with no memcheck.yml, on a real server."""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any, Dict

import pytest
import yaml

from reporter import regress, results

pytestmark = pytest.mark.integration

REPO = Path(__file__).resolve().parents[2]
TREES = REPO / "tests" / "fixtures" / "trees"
EXAMPLE = REPO / "examples" / "buggy_pg_ext"
CLI = [sys.executable, "-c", "import sys; from reporter.cli import main; sys.exit(main())"]
BUILD_PRODUCTS = shutil.ignore_patterns("*.o", "*.so", "*.bc", "results", "regression.*", "output_iso",
                                        "memcheck-results")


def cli(*args: str, cwd: Path) -> subprocess.CompletedProcess:
    return subprocess.run([*CLI, *args], cwd=cwd, capture_output=True, text=True, timeout=900)


def tree(name: str, dest: Path) -> Path:
    """A copy of tests/fixtures/trees/NAME, as its author has it: no memcheck.yml."""
    out = dest / name
    shutil.copytree(TREES / name, out, ignore=BUILD_PRODUCTS)
    assert not (out / "memcheck.yml").exists()
    return out


def example_with(overlay: str, dest: Path, makefile_line: str) -> Path:
    """examples/buggy_pg_ext without its memcheck.yml, with a tree's files laid over it and one line added to
    its Makefile before PGXS is included (PGXS decides what installcheck runs when it is included)."""
    ext = dest / "buggy_pg_ext"
    shutil.copytree(EXAMPLE, ext, ignore=BUILD_PRODUCTS)
    (ext / "memcheck.yml").unlink()
    shutil.copytree(TREES / overlay, ext, dirs_exist_ok=True)
    makefile = ext / "Makefile"
    makefile.write_text(makefile.read_text().replace("include $(PGXS)", f"{makefile_line}\ninclude $(PGXS)"))
    return ext


def by_name(doc: Dict[str, Any]) -> Dict[str, Dict[str, Any]]:
    return {w["name"]: w for w in doc["workloads"]}


def pids(w: Dict[str, Any]) -> set:
    return {v["backend_pid"] for v in w["violations"]}


def has_contrib(pg_config: str, name: str) -> bool:
    share = subprocess.run([pg_config, "--sharedir"], capture_output=True, text=True, check=True).stdout.strip()
    return (Path(share) / "extension" / f"{name}.control").is_file()


def has_isolation(pg_config: str) -> bool:
    lib = subprocess.run([pg_config, "--pkglibdir"], capture_output=True, text=True, check=True).stdout.strip()
    return regress.isolation_program(lib).is_file()


def require(pg_config: str, contrib: bool = False, isolation: bool = False) -> None:
    """Debian's 15 (the first PostgreSQL, where these run) has both; the PyPI wheel of 16 has no contrib and a
    13 built from source no pg_isolation_regress (PG_EXT_MEMCHECK_FULL_MATRIX=1 runs these there too)."""
    if contrib and not has_contrib(pg_config, "pg_stat_statements"):
        pytest.skip(f"{pg_config} has no pg_stat_statements")
    if isolation and not has_isolation(pg_config):
        pytest.skip(f"{pg_config} has no pg_isolation_regress")


# ---- 1. dual Makefiles ---------------------------------------------------------------------------------


def test_dual_makefile_builds_and_runs_with_use_pgxs(installed_pg_config: str, tmp_path: Path) -> None:
    ext = tree("dual_ext", tmp_path)
    proc = cli("check", "--pg-config", installed_pg_config, cwd=ext)
    assert proc.returncode == 0, proc.stdout + proc.stderr[-3000:]
    assert re.search(r"\$ make -C \S+/dual_ext PG_CONFIG=\S+ USE_PGXS=1 ", proc.stderr)
    (w,) = results.load(ext / "memcheck-results")["workloads"]
    assert (w["name"], w["status"], w["diff"], w["iterations"]) == ("dual", "passed", None, 4)


def test_make_args_still_add_and_override(installed_pg_config: str, tmp_path: Path) -> None:
    """memcheck.yml's make_args come after USE_PGXS=1: `USE_PGXS=` takes the contrib branch again, which has
    no PostgreSQL source tree to include here (the failure the dual Makefile gave before)."""
    ext = tree("dual_ext", tmp_path)
    (ext / "memcheck.yml").write_text("extension: {path: ., name: dual_ext, make_args: ['USE_PGXS=']}\n"
                                      "workloads:\n  - regress: true\n")
    proc = cli("check", "--pg-config", installed_pg_config, "--output", str(tmp_path / "o"), cwd=ext)
    assert proc.returncode == 2, proc.stderr[-3000:]
    assert re.search(r"make build failed for \S+/dual_ext", proc.stderr)
    assert "/contrib/contrib-global.mk: No such file" in proc.stderr and "Traceback" not in proc.stderr


# ---- 2. REGRESS_OPTS -----------------------------------------------------------------------------------


def test_temp_config_is_the_clusters_configuration(installed_pg_config: str, tmp_path: Path) -> None:
    """The suite's --temp-config preloads pg_stat_statements (next to pg_ext_memcheck): its first test passes;
    --load-extension, --encoding, --no-locale, --inputdir and --outputdir reach pg_regress."""
    require(installed_pg_config, contrib=True)
    ext = tree("opts_ext", tmp_path)
    proc = cli("check", "--pg-config", installed_pg_config, cwd=ext)
    assert proc.returncode == 0, proc.stdout + proc.stderr[-3000:]
    doc = results.load(ext / "memcheck-results")
    (w,) = doc["workloads"]
    # expected/first.out (under --inputdir=test) shows contrib_regression_first in SQL_ASCII, work_mem 3MB
    # and pg_stat_statements,pg_ext_memcheck preloaded; regression.diffs would be under --outputdir
    assert (w["name"], w["status"], w["diff"]) in (("first", "passed", None), ("first", "violations", None))
    assert not [v for v in w["violations"] if v["severity"] in ("WARNING", "ERROR")]
    note = f"{ext}/opts_ext.conf:6: port left out: the private cluster's connection settings are fixed"
    assert any(n.startswith(note) for n in doc["notes"]) and f"note: {note}" in proc.stdout
    assert "preload: pg_stat_statements,pg_ext_memcheck" in proc.stderr
    assert not (ext / "test" / "out").exists()  # pg_regress wrote into the private copy, not the tree


def test_a_failing_test_under_outputdir_keeps_its_diff(installed_pg_config: str, tmp_path: Path) -> None:
    require(installed_pg_config, contrib=True)
    ext = tree("opts_ext", tmp_path)
    expected = ext / "test" / "expected" / "first.out"
    expected.write_text(expected.read_text().replace(" 3MB", " 4MB"))
    proc = cli("run", "--extension", str(ext), "--pg-config", installed_pg_config, "--output", str(tmp_path / "o"),
               cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr[-3000:]
    (w,) = results.load(tmp_path / "o")["workloads"]
    assert w["status"] == "failed" and "- 4MB" in w["diff"] and "+ 3MB" in w["diff"]
    assert "/test/out/results/first.out" in w["diff"]


# ---- 3. a test that connects as another role -------------------------------------------------------------


def test_role_switch_runs_unchanged_and_is_measured(installed_pg_config: str, tmp_path: Path) -> None:
    ext = example_with("role_switch", tmp_path, "REGRESS += switch")
    proc = cli("run", "--extension", str(ext), "--pg-config", installed_pg_config, "--output", str(tmp_path / "o"),
               cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr[-3000:]
    w = by_name(results.load(tmp_path / "o"))["switch"]
    # the whole file ran as expected/switch.out says: the other role's SELECT, the superuser-only refusal
    # (`SET pg_ext_memcheck.memcheck_mode` as that role), the superuser's cleanup after it
    assert w["diff"] is None and w["status"] == "violations", (w["error"], w["diff"])
    assert 'permission denied to set parameter "pg_ext_memcheck.memcheck_mode"' in (
        ext / "expected" / "switch.out").read_text()
    found = {(v["check_type"], v["context_path"]) for v in w["violations"]}
    assert ("context_leak", "TopMemoryContext") in found
    # the superuser's backends before and after the switch and the other role's, in the compared pass and the
    # repeats: every session's findings are recorded (pg_ext_memcheck.record_all_sessions in the private
    # cluster), none refused
    assert len(pids(w)) >= 3
    assert not [n for n in w["regress"]["notes"] if "neither a superuser nor a member of pg_monitor" in n]
    log = (tmp_path / "o" / "server.log").read_text()
    assert "FATAL:  permission denied to set parameter" not in log


def test_measuring_settings_leave_the_configuration_after_the_suite(installed_pg_config: str,
                                                                    tmp_path: Path) -> None:
    """The suite's settings are the cluster's configuration for the suite only: a workload after it finds the
    configured values (reset_val: what RESET would restore) back at the private cluster's own (the mode `all`
    in postgresql.conf, every process measured from its start; the threshold at its default), and nothing of
    the suite's left in postgresql.auto.conf."""
    ext = example_with("role_switch", tmp_path, "REGRESS += switch")
    check = ("DO $$ BEGIN IF (SELECT array_agg(reset_val ORDER BY name) FROM pg_settings WHERE name IN "
             "('pg_ext_memcheck.memcheck_mode', 'pg_ext_memcheck.min_leak_bytes')) <> '{all,8192}' "
             "OR EXISTS (SELECT FROM pg_file_settings WHERE name LIKE 'pg\\_ext\\_memcheck.%' "
             "AND sourcefile LIKE '%postgresql.auto.conf') "
             "THEN RAISE 'the suite left its settings behind'; END IF; END $$")
    (ext / "memcheck.yml").write_text(yaml.safe_dump({
        "extension": {"path": ".", "name": "buggy_pg_ext"}, "thresholds": {"min_leak_bytes": "4kB"},
        "workloads": [{"regress": True, "iterations": 2}, {"name": "after", "sql": check}]}))
    proc = cli("run", "--pg-config", installed_pg_config, "--output", str(tmp_path / "o"), cwd=ext)
    assert proc.returncode == 0, proc.stderr[-3000:]
    doc = by_name(results.load(tmp_path / "o"))
    assert doc["switch"]["iterations"] == 2 and doc["switch"]["status"] == "violations"
    assert doc["after"]["status"] in ("passed", "violations"), doc["after"]["error"]


# ---- 4. ISOLATION specs -------------------------------------------------------------------------------


def test_isolation_specs_are_measured_workloads(installed_pg_config: str, tmp_path: Path) -> None:
    require(installed_pg_config, isolation=True)
    ext = example_with("isolation", tmp_path, "ISOLATION = concurrent broken")
    (ext / "specs" / "broken.spec").write_text((ext / "specs" / "concurrent.spec").read_text())
    (ext / "expected" / "broken.out").write_text(
        (ext / "expected" / "concurrent.out").read_text().replace("\n10\n", "\n11\n"))
    proc = cli("check", "--pg-config", installed_pg_config, cwd=ext)
    assert proc.returncode == 1, proc.stderr[-3000:]
    doc = by_name(results.load(ext / "memcheck-results"))
    assert list(doc) == ["setup", "companies", "per_row", "concurrent", "broken"]
    spec = doc["concurrent"]
    assert spec["status"] == "violations" and spec["diff"] is None, (spec["error"], spec["diff"])
    assert spec["regress"]["runner"] == "pg_isolation_regress" and spec["iterations"] == 4
    # every session of its permutations is measured: control, s1 and s2 of each isolationtester run
    assert len(pids(spec)) >= 3
    assert ("context_leak", "TopMemoryContext") in {(v["check_type"], v["context_path"]) for v in spec["violations"]}
    broken = doc["broken"]
    assert broken["status"] == "failed" and "-11" in broken["diff"] and "+10" in broken["diff"]
    assert "/output_iso/results/broken.out" in broken["diff"]
    assert broken["violations"]  # a failing spec keeps its memory results
    assert "[4/5] concurrent: pass 1/4 (as pg_isolation_regress runs it" in proc.stderr
    assert "VIOLATIONS concurrent" in proc.stdout and "FAILED     broken" in proc.stdout


# ---- 5. not an extension ------------------------------------------------------------------------------


@pytest.mark.parametrize("files, found", [
    ({}, "{d} is empty"),
    ({"CMakeLists.txt": "project(x C)\n", "x.c": ""}, "{d} is a CMake project (CMakeLists.txt)"),
    ({"configure.ac": "AC_INIT([x], [1])\n", "Makefile.in": "all:\n"},
     "{d} is an autoconf project (configure.ac) with no Makefile yet"),
    ({"Makefile": "all:\n\t@echo hello\n"}, "{d}/Makefile does not include PGXS"),
])
def test_not_an_extension_is_refused_and_nothing_written(pg_config: str, tmp_path: Path, files: Dict[str, str],
                                                         found: str) -> None:
    d = tmp_path / "project"
    d.mkdir()
    for name, text in files.items():
        (d / name).write_text(text)
    before = sorted(p.name for p in d.iterdir())
    proc = cli("check", "--pg-config", pg_config, cwd=d)
    assert proc.returncode == 2, proc.stdout + proc.stderr
    assert found.format(d=d) in proc.stderr and "not a PGXS extension" in proc.stderr
    assert "extension: {path: DIR, name: NAME, make_args: [...]}" in proc.stderr
    assert "extension: {name: NAME}" in proc.stderr and "check --example" in proc.stderr
    assert "Traceback" not in proc.stderr and "buggy_pg_ext" not in proc.stdout + proc.stderr
    assert sorted(p.name for p in d.iterdir()) == before  # no memcheck-results/, nothing else


def test_a_typo_in_extension_names_the_nearest_directory(pg_config: str, tmp_path: Path) -> None:
    ext = tree("dual_ext", tmp_path)
    typo = str(tmp_path / "dual_etx")
    for command in (["check", "--extension", typo], ["run", "--extension", typo, "--output", str(tmp_path / "o")],
                    ["build", "--extension", typo]):
        proc = cli(*command, "--pg-config", pg_config, cwd=tmp_path)
        assert proc.returncode == 2, (command, proc.stderr)
        assert f"{typo}: no such directory (did you mean {ext}?)" in proc.stderr, proc.stderr
    assert sorted(p.name for p in tmp_path.iterdir()) == ["dual_ext", "o"]  # run's --output, asked for


# ---- 6. a multi-statement setup, end to end --------------------------------------------------------------


def test_setup_runs_statement_by_statement(installed_pg_config: str, tmp_path: Path) -> None:
    """VACUUM and CREATE DATABASE refuse to run inside the implicit transaction of a multi-statement query
    string: they run only when setup is split as psql splits it (dollar quotes, BEGIN ATOMIC, comments and
    a display meta-command included). iterations on the regress entry stays settable (2 passes here)."""
    ext = tree("dual_ext", tmp_path)
    setup = ("\\set ECHO none\n"
             "CREATE TABLE t (a int); INSERT INTO t SELECT generate_series(1, 10);  -- two statements\n"
             "VACUUM ANALYZE t;\n"
             "CREATE DATABASE setup_made_me;\n"
             "CREATE FUNCTION tenfold(int) RETURNS int LANGUAGE sql\n"
             "BEGIN ATOMIC SELECT $1 * 10; END;\n"
             "DO $$ BEGIN IF (SELECT count(*) FROM t) <> 10 THEN RAISE 'setup; failed'; END IF; END $$;\n")
    doc = {"extension": {"path": ".", "name": "dual_ext"}, "setup": setup,
           "workloads": [{"regress": True, "iterations": 2},
                         {"name": "uses_setup", "sql": "SELECT tenfold(a) FROM t", "iterations": 3}]}
    (ext / "memcheck.yml").write_text(yaml.safe_dump(doc, default_style=None, sort_keys=False))
    proc = cli("check", "--pg-config", installed_pg_config, cwd=ext)
    assert proc.returncode == 0, proc.stdout + proc.stderr[-3000:]
    out = by_name(results.load(ext / "memcheck-results"))
    assert out["uses_setup"]["status"] == "passed" and out["dual"]["status"] == "passed"
    assert out["dual"]["iterations"] == 2
    assert "[1/1] dual: pass 1/2 (as pg_regress runs it" in proc.stderr
    assert "pass 2/2 (in one session" in proc.stderr


# ---- all of them at once ------------------------------------------------------------------------------


def test_a_clean_tree_with_every_convention_passes(installed_pg_config: str, tmp_path: Path) -> None:
    """Dual Makefile, a --temp-config named through contrib's tree, a role switch, an isolation spec and TAP
    tests: exit 0, no finding at WARNING or above, the TAP tests named as not run, and progress that says which
    pass of which file runs, why files repeat and how long it all took."""
    require(installed_pg_config, contrib=True, isolation=True)
    ext = tree("tidy_ext", tmp_path)
    proc = cli("check", "--pg-config", installed_pg_config, cwd=ext)
    assert proc.returncode == 0, proc.stdout + proc.stderr[-3000:]
    doc = results.load(ext / "memcheck-results")
    assert [(w["name"], w["status"], w["iterations"]) for w in doc["workloads"]] == [
        ("tidy", "passed", 4), ("roles", "passed", 4), ("counter", "passed", 4)]
    assert not [v for w in doc["workloads"] for v in w["violations"] if v["severity"] in ("WARNING", "ERROR")]
    assert [w["regress"]["runner"] for w in doc["workloads"]] == ["pg_regress", "pg_regress", "pg_isolation_regress"]
    assert doc["notes"] == [regress.TAP_NOTE] and f"note: {regress.TAP_NOTE}" in proc.stdout
    assert "preload: pg_stat_statements,tidy_ext,pg_ext_memcheck" in proc.stderr
    err = proc.stderr
    assert "each test file runs 4 time(s): once as pg_regress runs it" in err
    for line in ("[1/3] tidy: pass 1/4", "[1/3] tidy: passes 2-4/4", "[2/3] roles: passed, 0 violation row(s)",
                 "[3/3] counter: passes 2-4/4 (isolationtester again"):
        assert line in err, line
    assert re.search(r"regress: 3 test file\(s\), 4 pass\(es\) each, in \d+\.\ds", err)
    assert re.search(r"finished in \d+\.\ds \(build \d+\.\ds, run \d+\.\ds\)", err)
    assert "PASSED: 0 findings" in proc.stdout
    assert sorted(p.name for p in ext.iterdir()) == sorted(
        [*(p.name for p in (TREES / "tidy_ext").iterdir()), "memcheck-results"])
