"""Golden files of every renderer (terminal, job summary, PR comment, JUnit) for several of the example's bug sets,
including a two-major matrix, from hand-written schema-2 legs (tests/fixtures/example_legs.py).

Regenerate with PG_EXT_MEMCHECK_UPDATE_GOLDEN=1 and review the diff.
"""

from __future__ import annotations

import io
import os
import re
import sys
from pathlib import Path
from typing import Callable, Dict, Tuple

import pytest
from lxml import etree

from reporter.junit import render_junit
from reporter.markdown import COMMENT, SUMMARY, Context, render
from reporter.merge import Merged, load_legs
from reporter.terminal import Style, render_terminal, style_for

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
}


def load(monkeypatch: pytest.MonkeyPatch, names: Tuple[str, ...]) -> Merged:
    monkeypatch.chdir(LEGS)  # relative leg paths keep the golden files machine-independent
    return load_legs([Path(n) for n in names])


def context() -> Context:
    return Context(run_url=RUN_URL, head_sha=SHA, workspace=WORKSPACE)


RENDERERS: Dict[str, Callable[[Merged], str]] = {
    "terminal.txt": lambda m: render_terminal(m, style=Style(100, False), root=WORKSPACE),
    "summary.md": lambda m: render(m, context(), SUMMARY),
    "comment.md": lambda m: render(m, context(), COMMENT),
    "junit.xml": lambda m: render_junit(m, "error", WORKSPACE),
}


def check_golden(path: Path, text: str) -> None:
    if os.environ.get("PG_EXT_MEMCHECK_UPDATE_GOLDEN") == "1":
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text, encoding="utf-8")
    assert path.exists(), f"no golden file {path}: generate with PG_EXT_MEMCHECK_UPDATE_GOLDEN=1, review it"
    assert text == path.read_text(encoding="utf-8")


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
    comment = render(merged, context(), COMMENT)
    assert comment.startswith("## ❌ pg-ext-memcheck: 3 findings (3 ERROR)\n")
    rows = [line.split(" | ") for line in comment.splitlines() if re.match(r"\| \d+ \| ", line)]
    assert [(r[4], r[6], r[7]) for r in rows] == [
        ("8.0 KiB/call", f"[buggy&#95;ExecutorStart() at buggy&#95;pg&#95;ext.c:{TOP}]({REPO}/blob/{SHA}/"
                         f"buggy_pg_ext.c#L{TOP})", "18, 15"),
        ("2.0 KiB/call", f"[buggy&#95;ExecutorEnd() at buggy&#95;pg&#95;ext.c:{NESTED}]({REPO}/blob/{SHA}/"
                         f"buggy_pg_ext.c#L{NESTED})", "18, 15"),
        ("8.2 KiB/iteration", f"[buggy&#95;planner() at buggy&#95;pg&#95;ext.c:{PLANNER}]({REPO}/blob/{SHA}/"
                              f"buggy_pg_ext.c#L{PLANNER})", "18, 15"),
    ]
    terminal = render_terminal(merged, style=Style(100, False), root=WORKSPACE)
    assert terminal.count("allocated by ") == 3 and f"buggy_pg_ext.c:{TOP}" in terminal


def test_junit_names_the_worst_finding_and_its_line(monkeypatch: pytest.MonkeyPatch) -> None:
    root = etree.fromstring(render_junit(load(monkeypatch, BUG_SETS["example_matrix"]), "error",
                                         WORKSPACE).encode("utf-8"))
    assert [s.get("name") for s in root.iter("testsuite")] == ["pg-ext-memcheck PostgreSQL 18",
                                                              "pg-ext-memcheck PostgreSQL 15"]
    case = root.find("testsuite/testcase[@name='per_row_function']")
    assert case is not None and case.get("file") == "buggy_pg_ext.c" and case.get("line") == str(TOP)
    failure = case.find("failure")
    assert failure.get("message") == ("ERROR context_leak in TopMemoryContext: 8.0 KiB/call, allocated by "
                                      f"buggy_ExecutorStart() at buggy_pg_ext.c:{TOP} (+1 more at or above error)")
    heads = [line for line in failure.text.splitlines() if not line.startswith((" ", "What to do"))]
    assert [h.split(":")[0] for h in heads] == [  # the body lists every failing finding, then its rows
        "ERROR context_leak in TopMemoryContext",
        "ERROR context_leak in TopMemoryContext/PortalContext/ExecutorState/SQL function"]
    abort = root.find("testsuite/testcase[@name='abort_loop']")
    assert abort.findtext("system-out").startswith("WARNING context_leak in TopMemoryContext: 8.0 KiB/iteration")
    # the planner's leak is INFO in this workload (3 plans): listed, below fail-on, in the output
    assert "INFO context_leak in TopMemoryContext/MessageContext/BuggyPlannerLeakCtx" in case.findtext("system-out")


# ---- terminal: colour and width ----------------------------------------------------------------------------


class FakeTTY(io.StringIO):
    def isatty(self) -> bool:
        return True


@pytest.mark.parametrize("stream,env,color", [
    (FakeTTY(), {}, True), (FakeTTY(), {"NO_COLOR": "1"}, False), (io.StringIO(), {}, False),
    (FakeTTY(), {"TERM": "dumb"}, False),
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
