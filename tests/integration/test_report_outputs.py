"""A real comparison run read the way reviewers and their tools read it: the example as a git repository checked
out in a subdirectory of the workspace (actions/checkout's `path: src`), the extension in `src/ext`; the base
switches on two bugs (planner_ctx_leak, top_ctx_alloc: the C default), the head adds a third, so `check --compare`
finds one new finding and two unchanged. Then `report` writes every output of that run, and they agree: JUnit
has one failure, on the new bug's line; the only ::error annotation is on that line and the unchanged findings
are ::notice annotations whose titles name no severity; the comment marks only it ❌ and fits an 800 px window
(cmark-gfm and headless Chromium, tests/browser.py); the SARIF file validates against the official schema and
points at that line; the JSON summary classifies the three. Paths are relative to the repository, never to the
workspace or absolute.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
import xml.etree.ElementTree as ET
from pathlib import Path
from typing import Any, Dict, Iterator, List, Set

import jsonschema
import pytest
from browser import measure, overflow

from reporter.build import build_all
from reporter.pgconfig import PgConfig
from tests.integration.test_compare import CONFIG, EXAMPLE, git, set_default_bugs

pytestmark = pytest.mark.integration

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures"
REPO = Path(__file__).resolve().parents[2]
CLI = [sys.executable, "-c", "import sys; from reporter.cli import main; sys.exit(main())"]
BASE_BUGS = "planner_ctx_leak,top_ctx_alloc"
RUN_URL = "https://github.com/acme/buggy_pg_ext/actions/runs/4242"
_COMMAND = re.compile(r"^::(?P<kind>error|warning|notice)(?: (?P<props>[^:]*))?::(?P<data>.*)$")


def unescape(text: str) -> str:
    return text.replace("%3A", ":").replace("%2C", ",").replace("%0D", "\r").replace("%0A", "\n").replace("%25", "%")


class Run:
    workspace: Path
    out: Path
    files: Path
    head: str
    bug_line: int
    check: subprocess.CompletedProcess
    report: subprocess.CompletedProcess


@pytest.fixture(scope="module")
def run(installed_pg_config: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Run]:
    major = PgConfig.from_path(installed_pg_config).major
    new_bug = "nested_leak" if major < 18 else "func_row_leak"  # 18 frees a SQL function's memory per row
    r = Run()
    r.workspace = tmp_path_factory.mktemp("workspace")
    repo = r.workspace / "src"  # actions/checkout with path: src
    ext = repo / "ext"  # the extension in a subdirectory of its repository
    shutil.copytree(EXAMPLE, ext, ignore=shutil.ignore_patterns("*.o", "*.so", "*.bc", "results", "memcheck.yml"))
    (ext / "memcheck.yml").write_text(CONFIG)
    git(repo, "init", "-q", "-b", "main")
    set_default_bugs(ext, BASE_BUGS)
    git(repo, "add", "-A")
    git(repo, "commit", "-q", "-m", "base: two bugs")
    base = git(repo, "rev-parse", "HEAD")
    set_default_bugs(ext, f"{BASE_BUGS},{new_bug}")
    git(repo, "commit", "-q", "-am", f"head: adds {new_bug}")
    r.head = git(repo, "rev-parse", "HEAD")
    r.out = r.workspace / "results"
    r.files = r.workspace / "report"
    env = {**os.environ, "COLUMNS": "200"}
    env.pop("GITHUB_ACTIONS", None)
    r.check = subprocess.run([*CLI, "check", "--pg-config", installed_pg_config, "--output", str(r.out),
                              "--compare", base, "--json", str(r.files / "check.json")],
                             cwd=ext, capture_output=True, text=True, timeout=900, env=env)
    genv = {**env, "GITHUB_ACTIONS": "true", "GITHUB_WORKSPACE": str(r.workspace), "GITHUB_SHA": r.head,
            "GITHUB_SERVER_URL": "https://github.com", "GITHUB_REPOSITORY": "acme/buggy_pg_ext",
            "GITHUB_RUN_ID": "4242", "GITHUB_RUN_ATTEMPT": "1", "GITHUB_EVENT_NAME": "push",
            "GITHUB_WORKFLOW_REF": "acme/buggy_pg_ext/.github/workflows/memcheck.yml@refs/heads/main"}
    r.report = subprocess.run([*CLI, "report", str(r.out), "--junit", str(r.files / "junit.xml"),
                               "--markdown-comment", str(r.files / "comment.md"), "--sarif",
                               str(r.files / "memcheck.sarif"), "--json", str(r.files / "summary.json"),
                               "--annotations", "on"],
                              capture_output=True, text=True, timeout=300, env=genv, cwd=r.workspace)
    summary = json.loads((r.files / "summary.json").read_text())
    (new,) = [f for f in summary["findings"] if f["classification"] == "new"]
    r.bug_line = new["location"]["line"]
    yield r
    # The checks installed the repository's builds (other C defaults) into this PostgreSQL: put the example back.
    build_all(installed_pg_config, [EXAMPLE], log=lambda msg: print(msg, file=sys.stderr))


def test_the_run_finds_one_new_and_two_unchanged(run: Run) -> None:
    assert run.check.returncode == 1, run.check.stdout + run.check.stderr[-3000:]
    assert run.report.returncode == 1, run.report.stdout + run.report.stderr[-3000:]
    for name in ("check.json", "summary.json"):
        doc = json.loads((run.files / name).read_text())
        c = doc["comparison"]
        assert (c["new"], c["worse"], c["unchanged"], c["fixed"]) == (1, 0, 2, 0), name
        assert doc["counts"]["failing"] == 1 and doc["verdict"]["conclusion"] == "failure"
        schema = json.loads((REPO / "reporter" / "schemas" / "summary.schema.json").read_text())
        jsonschema.Draft202012Validator(schema).validate(doc)
    source = (run.workspace / "src" / "ext" / "buggy_pg_ext.c").read_text().splitlines()
    assert "palloc" in source[run.bug_line - 1] or "Alloc" in source[run.bug_line - 1], source[run.bug_line - 1]


def failing(run: Run) -> Dict[str, Set[str]]:
    """What each output says fails, as file:line."""
    out: Dict[str, Set[str]] = {}
    junit = ET.parse(run.files / "junit.xml").getroot()
    out["junit"] = {f"{c.get('file')}:{c.get('line')}" for c in junit.iter("testcase") if c.find("failure") is not None}
    errors = [_COMMAND.match(line) for line in run.report.stdout.splitlines() if line.startswith("::error ")]
    props = [dict(p.split("=", 1) for p in (m.group("props") or "").split(",")) for m in errors if m]
    out["annotations"] = {f"{unescape(p['file'])}:{p['line']}" for p in props if "line" in p}
    comment = (run.files / "comment.md").read_text()
    rows = [line for line in comment.splitlines() if line.startswith("| ❌ ")]
    out["comment"] = {f"{m.group(1)}:{m.group(2)}" for row in rows
                      for m in re.finditer(rf"/blob/{run.head}/([^)#]+)#L(\d+)\)", row)}
    sarif = json.loads((run.files / "memcheck.sarif").read_text())
    out["sarif"] = {"{}:{}".format(r["locations"][0]["physicalLocation"]["artifactLocation"]["uri"],
                                   r["locations"][0]["physicalLocation"]["region"]["startLine"])
                    for r in sarif["runs"][0]["results"] if r["level"] == "error"}
    return out


def test_junit_annotations_comment_and_sarif_agree_on_what_fails(run: Run) -> None:
    where = f"ext/buggy_pg_ext.c:{run.bug_line}"  # relative to the repository, not to the workspace (src/)
    assert failing(run) == {"junit": {where}, "annotations": {where}, "comment": {where}, "sarif": {where}}
    junit = ET.parse(run.files / "junit.xml").getroot()
    assert junit.get("failures") == "1" and junit.get("errors") == "0"
    passing = [c for c in junit.iter("testcase") if c.get("status") == "not judged"]
    assert len(passing) == 2 and all("unchanged from the base" in c.findtext("system-out", "") for c in passing)


def test_unchanged_findings_are_notices_and_every_annotation_has_a_file(run: Run) -> None:
    lines = [line for line in run.report.stdout.splitlines() if _COMMAND.match(line)]
    notices = [line for line in lines if line.startswith("::notice ") and "context_leak" in line]
    assert len(notices) == 2
    for line in notices:
        title = unescape(re.search(r"title=(.*?)::", line).group(1))  # type: ignore[union-attr]
        assert title.startswith("pg-ext-memcheck: unchanged context_leak") and "ERROR" not in title
    commands = [_COMMAND.match(line) for line in lines]
    assert all(m and "file=" in (m.group("props") or "") for m in commands), lines  # inside GitHub: always a file


def test_the_comment_fits_800px(run: Run) -> None:
    comment = (run.files / "comment.md").read_text()
    assert comment.startswith("## ❌ pg-ext-memcheck: this change adds 1 finding")
    assert f"/blob/{run.head}/ext/buggy_pg_ext.c#L{run.bug_line})" in comment.split("### Findings")[0]
    result = measure(comment)
    assert result["window"] == 800 and result["tables"] == 1 and result["details"] == 3
    assert overflow(result) == []


def test_the_sarif_file_validates_and_points_at_the_new_bug(run: Run) -> None:
    doc = json.loads((run.files / "memcheck.sarif").read_text())
    schema = json.loads((FIXTURES / "sarif" / "sarif-schema-2.1.0.json").read_text())
    v = jsonschema.Draft4Validator(schema, format_checker=jsonschema.Draft4Validator.FORMAT_CHECKER)
    assert [e.message for e in v.iter_errors(doc)] == []
    (error,) = [r for r in doc["runs"][0]["results"] if r["level"] == "error"]
    assert error["baselineState"] == "new" and error["ruleId"] == "context_leak"
    assert error["locations"][0]["physicalLocation"] == {
        "artifactLocation": {"uri": "ext/buggy_pg_ext.c"}, "region": {"startLine": run.bug_line}}


def test_no_absolute_source_path_in_any_output(run: Run) -> None:
    """Source files are named relative to the repository: the checkout's absolute path (where the build ran) is
    in none of the outputs (the JSON summaries name the results directories they read, as given)."""
    texts: List[Any] = [run.report.stdout] + [p.read_text() for p in run.files.iterdir()]
    for text in texts:
        assert str(run.workspace / "src") not in text
