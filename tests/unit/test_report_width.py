"""The comment fits GitHub's comment column: rendered by cmark-gfm and laid out by a real headless Chromium at
an 800 px window (tests/browser.py), with every <details> open, nothing sticks out of the 780 px comment box and no
table has to scroll. The real comparison run's comment is measured the same way in
tests/integration/test_report_outputs.py."""

from __future__ import annotations

from pathlib import Path
from typing import Tuple

import pytest
from browser import measure, overflow

from reporter.markdown import COMMENT, SUMMARY, Context, render
from reporter.merge import attach_comparison, leg_bases, load_legs

LEGS = Path(__file__).resolve().parents[1] / "fixtures" / "legs"
WORKSPACE = "/home/runner/work/buggy_pg_ext/buggy_pg_ext"
CTX = Context(fail_on="warning", run_url="https://github.com/acme/buggy_pg_ext/actions/runs/9001",
              head_sha="0123456789abcdef0123456789abcdef01234567", workspace=WORKSPACE)


@pytest.mark.parametrize("legs", [
    ("compare_pg15",),  # a real comparison run: one new finding, two unchanged
    ("example_pg15", "example_pg18"),  # a matrix, growth charts
    ("violations_pg15", "violations_pg18"),  # suppressed findings, a cache
    ("errors_pg16", "crash_pg17", "missing_leg"),  # broken workloads, a missing leg
    ("evil_pg14",),  # hostile text
], ids=lambda legs: "+".join(legs))
def test_comment_fits_800px(monkeypatch: pytest.MonkeyPatch, legs: Tuple[str, ...]) -> None:
    monkeypatch.chdir(LEGS)
    merged = load_legs([Path(n) for n in legs])
    baseline, label = leg_bases(merged)
    attach_comparison(merged, baseline, None, label)
    result = measure(render(merged, CTX, COMMENT))
    assert result["window"] == 800 and result["box"] == 780
    assert result["tables"] == (1 if merged.findings else 0)  # one table at most
    assert overflow(result) == []


def test_the_summary_of_the_example_fits_too(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(LEGS)
    result = measure(render(load_legs([Path("example_pg15"), Path("example_pg18")]), CTX, SUMMARY))
    assert overflow(result) == [] and result["details"] >= 3


def test_the_measurement_can_fail() -> None:
    """A table as wide as the old nine-column one, with a long unbreakable cell, and a long word in a table:
    both reported."""
    wide = "| " + " | ".join(f"column {n}" for n in range(9)) + " |\n|" + "---|" * 9 + "\n| " + " | ".join(
        "TopMemoryContext/TopPortalContext/PortalContext" for _ in range(9)) + " |\n"
    problems = overflow(measure(wide))
    assert any("TABLE scrolls" in p for p in problems), problems
    assert overflow(measure("plain words " * 200)) == []  # running text wraps
