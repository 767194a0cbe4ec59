"""Golden files of every renderer (terminal, job summary, PR comment, JUnit, SARIF, JSON summary) for several of
the example's bug sets: a two-major matrix and others from hand-written schema-2 legs (tests/fixtures/example_legs.py),
and one leg captured from a real comparison run (tests/fixtures/legs/compare_pg15: what the C library and the runner
really write, sites and all).

Regenerate with PG_EXT_MEMCHECK_UPDATE_GOLDEN=1 and review the diff.
"""

from __future__ import annotations

import io
import json
import os
import re
import sys
from pathlib import Path
from typing import Callable, Dict, Tuple

import pytest
from lxml import etree

from reporter import jsonreport, sarif
from reporter.junit import render_junit
from reporter.markdown import COMMENT, SUMMARY, Context, render
from reporter.merge import Merged, attach_comparison, leg_bases, load_legs
from reporter.terminal import Style, render_terminal, style_for
from reporter.vocab import strictest_fail_on

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures"
LEGS = FIXTURES / "legs"
GOLDEN = FIXTURES / "golden"
XSD = etree.XMLSchema(etree.parse(str(FIXTURES / "junit" / "junit-10.xsd")))
sys.path.insert(0, str(FIXTURES))
from example_legs import SHA, WORKSPACE, bug_line  # noqa: E402

TOP, NESTED, PLANNER = (bug_line(b) for b in ("top_ctx_alloc", "nested_leak", "planner_ctx_leak"))

RUN_URL = "https://github.com/acme/buggy_pg_ext/actions/runs/9001"
REPO = "https://github.com/acme/buggy_pg_ext"
BUG_SETS: Dict[str, Tuple[str, ...]] = {
    "example_matrix": ("example_pg15", "example_pg18"),  # planner_ctx_leak, top_ctx_alloc, nested_leak
    "topctx": ("topctx_pg18",),  # top_ctx_alloc alone
    "resources": ("resources_pg16",),  # dsm_leak, relcache_leak, a one-time cache
    # a real comparison run, the extension in ext/: one new finding (nested_leak), two unchanged (fail-on warning)
    "compare": ("compare_pg15",),
}


def load(monkeypatch: pytest.MonkeyPatch, names: Tuple[str, ...]) -> Merged:
    monkeypatch.chdir(LEGS)  # relative leg paths keep the golden files machine-independent
    merged = load_legs([Path(n) for n in names])
    baseline, label = leg_bases(merged)  # the legs' base/ runs, when they have one
    attach_comparison(merged, baseline, None, label)
    return merged


def fail_on(m: Merged) -> str:
    return strictest_fail_on(r["fail_on"] for r in m.present)


def context(m: Merged) -> Context:
    return Context(fail_on=fail_on(m), run_url=RUN_URL, head_sha=SHA, workspace=WORKSPACE)


RENDERERS: Dict[str, Callable[[Merged], str]] = {
    "terminal.txt": lambda m: render_terminal(m, style=Style(100, False), root=WORKSPACE),
    "summary.md": lambda m: render(m, context(m), SUMMARY),
    "comment.md": lambda m: render(m, context(m), COMMENT),
    "junit.xml": lambda m: render_junit(m, fail_on(m), WORKSPACE),
    "report.sarif": lambda m: sarif.render(m, fail_on(m), WORKSPACE),
    "summary.json": lambda m: jsonreport.render(m, m.conclude(fail_on(m)), WORKSPACE),
}


def check_golden(path: Path, text: str) -> None:
    if os.environ.get("PG_EXT_MEMCHECK_UPDATE_GOLDEN") == "1":
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text, encoding="utf-8")
    assert path.exists(), f"no golden file {path}: generate with PG_EXT_MEMCHECK_UPDATE_GOLDEN=1, review it"
    assert text == path.read_text(encoding="utf-8")


def test_a_golden_bug_set_comes_from_a_real_run() -> None:
    """Hand-written legs alone could drift from what a run writes: the compare set is a captured run's."""
    (leg,) = BUG_SETS["compare"]
    assert (LEGS / leg / "README.md").read_text(encoding="utf-8").startswith("A real comparison run")
    doc = json.loads((LEGS / leg / "results.json").read_text(encoding="utf-8"))
    rows = [v for w in doc["workloads"] for v in w["violations"]]
    assert rows and all(v["finding_id"] and v["sites"] for v in rows if v["check_type"] == "context_leak")


@pytest.mark.parametrize("bug_set", sorted(BUG_SETS))
@pytest.mark.parametrize("output", sorted(RENDERERS))
def test_golden(monkeypatch: pytest.MonkeyPatch, bug_set: str, output: str) -> None:
    text = RENDERERS[output](load(monkeypatch, BUG_SETS[bug_set]))
    if output == "junit.xml":
        assert XSD.validate(etree.fromstring(text.encode("utf-8"))), XSD.error_log
    check_golden(GOLDEN / bug_set / output, text)


# ---- what the golden files must show (so that regenerating them cannot hide a regression) ---------------


def test_example_matrix_shows_one_finding_per_bug(monkeypatch: pytest.MonkeyPatch) -> None:
    merged = load(monkeypatch, BUG_SETS["example_matrix"])
    comment = render(merged, context(merged), COMMENT)
    assert comment.startswith("## ❌ pg-ext-memcheck: 3 findings (3 ERROR)\n")
    rows = [[c.strip() for c in line.strip("|").split(" | ")] for line in comment.splitlines()
            if re.match(r"\| (❌|🟥|🟧|🟦) ", line)]
    assert [(r[2], r[3], r[4]) for r in rows] == [
        ("8.0&nbsp;KiB/call", f"[buggy&#95;ExecutorStart() at buggy&#95;pg&#95;ext.c:{TOP}]({REPO}/blob/{SHA}/"
                         f"buggy_pg_ext.c#L{TOP})", "18, 15"),
        ("2.0&nbsp;KiB/call", f"[buggy&#95;ExecutorEnd() at buggy&#95;pg&#95;ext.c:{NESTED}]({REPO}/blob/{SHA}/"
                         f"buggy_pg_ext.c#L{NESTED})", "18, 15"),
        ("8.2&nbsp;KiB/iteration", f"[buggy&#95;planner() at buggy&#95;pg&#95;ext.c:{PLANNER}]({REPO}/blob/{SHA}/"
                              f"buggy_pg_ext.c#L{PLANNER})", "18, 15"),
    ]
    assert all(len(r) == 5 for r in rows)  # five narrow columns
    terminal = render_terminal(merged, style=Style(100, False), root=WORKSPACE)
    assert terminal.count("allocated by ") == 3 and f"buggy_pg_ext.c:{TOP}" in terminal


def test_junit_names_each_finding_and_its_line(monkeypatch: pytest.MonkeyPatch) -> None:
    root = etree.fromstring(render_junit(load(monkeypatch, BUG_SETS["example_matrix"]), "error",
                                         WORKSPACE).encode("utf-8"))
    assert [s.get("name") for s in root.iter("testsuite")] == ["pg-ext-memcheck PostgreSQL 18",
                                                              "pg-ext-memcheck PostgreSQL 15"]
    suite = root.find("testsuite[@id='15']")
    found = {c.get("name"): c for c in suite.iter("testcase") if c.get("classname", "").endswith(".findings")}
    top = found["context_leak in TopMemoryContext by buggy_ExecutorStart()"]
    assert (top.get("file"), top.get("line")) == ("buggy_pg_ext.c", str(TOP))
    assert top.find("failure").get("message") == ("ERROR context_leak in TopMemoryContext: 8.0 KiB/call, allocated "
                                                  f"by buggy_ExecutorStart() at buggy_pg_ext.c:{TOP}")
    lines = {c.get("line") for c in found.values() if c.find("failure") is not None}
    assert lines == {str(TOP), str(NESTED), str(PLANNER)}  # each failing finding on its own line
    case = suite.find("testcase[@name='per_row_function']")
    assert case.find("failure") is None and case.get("file") is None
    assert "context_leak in TopMemoryContext by buggy_ExecutorStart()" in case.findtext("system-out")


# ---- terminal: colour and width ----------------------------------------------------------------------------


class FakeTTY(io.StringIO):
    def isatty(self) -> bool:
        return True


@pytest.mark.parametrize("stream,env,color", [
    (FakeTTY(), {}, True), (FakeTTY(), {"NO_COLOR": "1"}, False), (io.StringIO(), {}, False),
    (FakeTTY(), {"TERM": "dumb"}, False),
    # GitHub Actions' logs: no terminal, colour asked for
    (io.StringIO(), {"FORCE_COLOR": "1"}, True), (io.StringIO(), {"CLICOLOR_FORCE": "1"}, True),
    (io.StringIO(), {"FORCE_COLOR": "3", "TERM": "dumb"}, True),
    (io.StringIO(), {"FORCE_COLOR": "0"}, False), (io.StringIO(), {"FORCE_COLOR": ""}, False),
    (io.StringIO(), {"CLICOLOR_FORCE": "0"}, False),
    (io.StringIO(), {"FORCE_COLOR": "1", "NO_COLOR": "1"}, False),  # NO_COLOR as always: no colour
])
def test_colour_only_on_a_terminal_that_wants_it(stream: io.StringIO, env: Dict[str, str], color: bool) -> None:
    assert style_for(stream, env).color is color


def test_colour_marks_severities(monkeypatch: pytest.MonkeyPatch) -> None:
    text = render_terminal(load(monkeypatch, BUG_SETS["resources"]), style=Style(100, True), root=WORKSPACE)
    assert "\x1b[1;31mERROR   \x1b[0m" in text and "\x1b[36mINFO    \x1b[0m" in text
    assert "\x1b[1;31mFAILED: \x1b[0m" in text
    plain = render_terminal(load(monkeypatch, BUG_SETS["resources"]), style=Style(100, False), root=WORKSPACE)
    assert "\x1b" not in plain and re.sub(r"\x1b\[[0-9;]*m", "", text) == plain


@pytest.mark.parametrize("width", [40, 60, 100])
def test_lines_fit_the_width(monkeypatch: pytest.MonkeyPatch, width: int) -> None:
    text = render_terminal(load(monkeypatch, BUG_SETS["example_matrix"]), style=Style(width, False), root=WORKSPACE)
    long = [line for line in text.splitlines() if len(line) > width]
    assert all("https://" in line for line in long)  # only the README links stay whole
    assert bool(long) is (width < 90) and any(line.endswith("…") for line in text.splitlines())
    assert style_for(io.StringIO(), {"COLUMNS": "57"}).width == 57


@pytest.mark.parametrize("width", [40, 50, 60, 80])
def test_narrow_terminal_cuts_the_context_path_never_the_file_line(monkeypatch: pytest.MonkeyPatch,
                                                                   width: int) -> None:
    """The comparison's lines and each finding's site line keep `file:line` whole; the context path (or the
    function) is what gets cut."""
    merged = load(monkeypatch, ("compare_pg15",))
    root = merged.source_root
    text = render_terminal(merged, "warning", Style(width, False), root)
    lines = text.splitlines()
    (added,) = merged.comparison.new
    new = next(line for line in lines if line.startswith("  NEW "))
    assert new.endswith(f" at ext/buggy_pg_ext.c:{added.site['line']}") and len(new) <= width, new
    for line_no in (f.site["line"] for f in merged.findings):
        site = next(line for line in lines if line.endswith(f"ext/buggy_pg_ext.c:{line_no}")
                    and not line.startswith("  NEW"))
        assert len(site) <= width, site
    paths = [line for line in lines if "(buggy_pg_ext.so)" in line]
    assert all(len(line) <= width for line in paths)
    if width < 90:  # the long path is cut at its start, its innermost context kept
        assert any("…" in line and "SQL function (buggy_pg_ext.so)" in line for line in paths) or width < 50
