"""Markdown report: golden files, escaping of untrusted text, sparklines and size budgets."""

from __future__ import annotations

import copy
import json
import os
import re
from pathlib import Path
from typing import Any, Dict, List

import pytest

from reporter.markdown import COMMENT, SUMMARY, Context, Variant, md_inline, md_pre, render
from reporter.merge import Leg, Merged, attach_comparison, load_baseline, load_legs
from reporter.results import validate
from reporter.text import sparkline

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures"
LEGS = FIXTURES / "legs"
GOLDEN = FIXTURES / "golden"
SHA = "0123456789abcdef0123456789abcdef01234567"
RUN_URL = "https://github.com/acme/buggy_pg_ext/actions/runs/9001"


def load(monkeypatch: pytest.MonkeyPatch, *names: str) -> Merged:
    monkeypatch.chdir(LEGS)  # relative leg paths keep the golden files machine-independent
    return load_legs([Path(n) for n in names])


def synthetic(n: int, major: int = 15, workloads: int = 1) -> Dict[str, Any]:
    doc = json.loads((LEGS / "clean_pg15" / "results.json").read_text())
    doc["postgresql"] = {"version": f"{major}.1", "major": major, "pg_config": "/x/pg_config"}
    source = json.loads((LEGS / "violations_pg15" / "results.json").read_text())
    template = source["workloads"][1]["violations"][0]
    sev = ("ERROR", "WARNING", "INFO")
    doc["workloads"] = []
    for w in range(workloads):
        vs = []
        for i in range(n // workloads):
            v = copy.deepcopy(template)
            v["severity"] = sev[(i * 7 + w) % 3]
            v["context"] = f"LeakCtx_{w}_{i}"
            v["context_path"] = f"TopMemoryContext/LeakCtx_{w}_{i}"
            v["used_delta"] = 10_000 + (i * 37) % 5000
            v["detail"] = f"leak number {i} | with `ticks` and @someone"
            vs.append(v)
        doc["workloads"].append({
            "name": f"workload_{w}", "kind": "scenario", "status": "violations", "iterations": 100,
            "duration_s": 1.0, "mode": "all", "error": None, "log_excerpt": None, "dropped": 0,
            "suppressed": 0, "scenario": None, "violations": vs,
        })
    return doc


def check_golden(name: str, text: str) -> None:
    path = GOLDEN / name
    if os.environ.get("PG_EXT_MEMCHECK_UPDATE_GOLDEN") == "1":
        path.write_text(text, encoding="utf-8")
    assert path.exists(), f"no golden file {path}: generate with PG_EXT_MEMCHECK_UPDATE_GOLDEN=1, review it"
    assert text == path.read_text(encoding="utf-8")


# ---- golden files --------------------------------------------------------------------------------------


def test_golden_clean(monkeypatch: pytest.MonkeyPatch) -> None:
    merged = load(monkeypatch, "clean_pg15", "clean_pg18")
    text = render(merged, Context(run_url=RUN_URL, head_sha=SHA), COMMENT)
    assert "all clear" in text
    check_golden("clean.md", text)


def test_golden_violations(monkeypatch: pytest.MonkeyPatch) -> None:
    merged = load(monkeypatch, "violations_pg15", "violations_pg18")
    baseline = load_baseline([Path("baseline")])
    attach_comparison(merged, baseline, None, "main (0123456789ab)")
    ctx = Context(run_url=RUN_URL, head_sha=SHA)
    check_golden("violations.md", render(merged, ctx, COMMENT))


def test_golden_errors(monkeypatch: pytest.MonkeyPatch) -> None:
    merged = load(monkeypatch, "errors_pg16")
    check_golden("errors.md", render(merged, Context(), SUMMARY))


def test_golden_crash_and_missing_leg(monkeypatch: pytest.MonkeyPatch) -> None:
    merged = load(monkeypatch, "crash_pg17", "missing_leg")
    check_golden("crash.md", render(merged, Context(notices=merged.notices), COMMENT))


def test_golden_truncated() -> None:
    merged = Merged([Leg(Path("synthetic"), synthetic(300, workloads=3))])
    small = Variant("comment", 6_000, len, 3, 4, 300, 1500, "see the job summary of this run")
    text = render(merged, Context(), small)
    assert len(text) <= 6_000
    check_golden("truncated.md", text)


def test_golden_escaping(monkeypatch: pytest.MonkeyPatch) -> None:
    merged = load(monkeypatch, "evil_pg14")
    check_golden("escaping.md", render(merged, Context(), SUMMARY))


def test_render_is_deterministic(monkeypatch: pytest.MonkeyPatch) -> None:
    a = render(load(monkeypatch, "violations_pg15", "errors_pg16"), Context(), SUMMARY)
    b = render(load(monkeypatch, "errors_pg16", "violations_pg15"), Context(), SUMMARY)
    assert a == b  # leg order on the command line does not matter: newest major first


# ---- content -------------------------------------------------------------------------------------------


def test_headline_table_and_conclusion(monkeypatch: pytest.MonkeyPatch) -> None:
    text = render(load(monkeypatch, "violations_pg15", "violations_pg18"), Context(), SUMMARY)
    # per leg: findings by severity (judged on that major), rows, workloads, suppressed
    assert ("- ❌ PostgreSQL 18.1: 4 findings (2 ERROR, 1 WARNING, 1 INFO) from 4 violation rows in 4 workloads, "
            "1 suppressed\n") in text
    assert ("- ❌ PostgreSQL 15.18: 5 findings (2 ERROR, 2 WARNING, 1 INFO) from 5 violation rows in 4 workloads, "
            "1 suppressed\n") in text
    # the matrix: the same five bugs on both majors are five findings, not nine rows
    assert ("- In all: 5 findings (2 ERROR, 2 WARNING, 1 INFO) from 9 violation rows in 8 workloads, "
            "2 suppressed") in text
    assert "## ❌ pg-ext-memcheck: 5 findings (2 ERROR, 2 WARNING, 1 INFO)" in text
    assert "**Conclusion: failure**" in text
    assert "```mermaid\nxychart-beta\n" in text  # the sampled leak's growth, as a chart
    assert "<details>" in text


def test_one_table_across_the_matrix_with_majors(monkeypatch: pytest.MonkeyPatch) -> None:
    text = render(load(monkeypatch, "example_pg15", "example_pg18"), Context(), COMMENT)
    rows = finding_rows(text)
    assert len(rows) == 3  # one per switched-on bug, each on both majors
    assert all(cells(row)[4] == "18, 15" for row in rows)
    assert text.count("### Findings") == 1 and "### PostgreSQL" not in text


def test_failing_findings_come_first(monkeypatch: pytest.MonkeyPatch) -> None:
    merged = load(monkeypatch, "violations_pg15")
    text = render(merged, Context(fail_on="warning"), SUMMARY)
    sev = [cells(row)[0] for row in finding_rows(text)]
    assert sev == ["❌ ERROR", "❌ ERROR", "❌ WARNING", "❌ WARNING", "🟦 INFO"]
    text = render(merged, Context(fail_on="error"), SUMMARY)
    sev = [cells(row)[0] for row in finding_rows(text)]
    assert sev == ["❌ ERROR", "❌ ERROR", "🟧 WARNING", "🟧 WARNING", "🟦 INFO"]


def test_below_fail_on_is_success_but_listed(monkeypatch: pytest.MonkeyPatch) -> None:
    text = render(load(monkeypatch, "violations_pg15"), Context(fail_on="never"), SUMMARY)
    assert "passed with 5 findings below fail-on `never`" in text
    assert "BuggyPlannerLeakCtx" in text


def test_suppressed_are_counted_not_listed(monkeypatch: pytest.MonkeyPatch) -> None:
    text = render(load(monkeypatch, "violations_pg15"), Context(), SUMMARY)
    assert "<summary>1 suppressed finding (not counted)</summary>" in text
    table = text.split("### Findings")[1].split("\n\n")[1]
    assert "1.9 MiB" not in table  # the suppressed 2,000,000-byte row is not a finding of the table
    assert "known upstream bug" in text  # but its reason is shown


def test_untrusted_text_cannot_break_layout(monkeypatch: pytest.MonkeyPatch) -> None:
    text = render(load(monkeypatch, "evil_pg14"), Context(), SUMMARY)
    assert "<script" not in text and "<img" not in text and "<b>" not in text
    assert "</details><script>" not in text
    assert not re.search(r"@(octocat|acme|admin|someone|team)", text)  # mentions neutralized
    assert not re.search(r"(?<!&)#\d", text)  # issue cross-reference neutralized (entities are fine)
    assert "```" not in text  # no fence from the data
    rows = finding_rows(text)
    assert rows
    for line in rows:
        assert line.count("|") == 6, line  # exactly the 6 pipes of a 5-column row: data pipes are entities
    # An error message keeps its lines (as <br>) inside one quoted paragraph: nothing of it is markup.
    quoted = [line for line in text.splitlines() if line.startswith("> ") and "SQLSTATE" in line]
    assert len(quoted) == 1 and "<br>" in quoted[0] and "<pre>" not in text


def test_md_inline_and_pre() -> None:
    assert md_inline("a|b`c`\nd @x #12 <i>") == "a&#124;b&#96;c&#96;<br>d @\u200dx #\u200d12 &lt;i&gt;"
    assert md_inline(None) == "-"
    assert md_inline("x" * 500, 10) == "x" * 9 + "…"
    assert md_inline("\x1b[31mred\u202e") == "[31mred".replace("[", "&#91;")
    assert md_inline("a\u2066b\u200fc\ufeffd\u061ce") == "abcde"  # isolates, marks, BOM: all stripped
    assert md_pre("</pre>\n@team ```") == "&lt;/pre&gt;\n@\u200dteam &#96;&#96;&#96;"


def test_sparkline() -> None:
    assert sparkline([0, 1, 2, 3, 4, 5, 6, 7]) == "▁▂▃▄▅▆▇█"
    assert sparkline([5, 5, 5]) == "▁▁▁"
    assert sparkline(None) == "" and sparkline([1]) == ""
    assert len(sparkline(list(range(1000)))) == 24


# ---- budgets -------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def hundred_k() -> Merged:
    doc = synthetic(100_000, workloads=20)
    validate(synthetic(100, workloads=2))  # same shape, validated (all 100,000 would take half a minute)
    return Merged([Leg(Path("leg15"), doc)])


def finding_rows(text: str) -> List[str]:
    """The rows of the findings table (severity | what | rate | where | versions)."""
    return [line for line in text.splitlines() if re.match(r"\| (❌|🟥|🟧|🟦) [A-Z]+ \| ", line)]


def cells(row: str) -> List[str]:
    return [c.strip() for c in row.strip().strip("|").split(" | ")]


def test_comment_budget_with_100k_violations(hundred_k: Merged) -> None:
    # 100,000 distinct contexts: 100,000 findings, the worst case for the table
    text = render(hundred_k, Context(), COMMENT)
    assert len(text) < 60_000
    m = re.search(r"… (\d+) more findings not shown \(worst shown first\): see the job summary", text)
    assert m, text[-500:]
    rows = finding_rows(text)
    assert len(rows) + int(m.group(1)) == 100_000
    assert all(cells(row)[0].endswith(" ERROR") for row in rows)  # worst first: ERRORs fill the budget


def test_summary_budget_with_100k_violations(hundred_k: Merged) -> None:
    text = render(hundred_k, Context(), SUMMARY)
    size = len(text.encode("utf-8"))
    assert 800 * 1024 < size < 900 * 1024  # uses the budget, never exceeds it
    assert "more findings not shown" in text and "results.json" in text


def test_100k_repeats_of_one_bug_are_one_finding() -> None:
    doc = synthetic(100_000, workloads=20)
    for w in doc["workloads"]:
        for v in w["violations"]:
            v["context"], v["context_path"] = "LeakCtx", "TopMemoryContext/LeakCtx"
    text = render(Merged([Leg(Path("leg15"), doc)]), Context(), COMMENT)
    assert len(finding_rows(text)) == 1 and "more findings not shown" not in text
    assert "100,000 times in 20 workloads" in text


def test_pathological_long_fields_stay_bounded() -> None:
    doc = synthetic(50)
    for v in doc["workloads"][0]["violations"]:
        v["detail"] = "@x|" * 100_000
        v["context"] = "c" * 100_000
    doc["workloads"][0]["name"] = "n" * 10_000
    text = render(Merged([Leg(Path("x"), doc)]), Context(), COMMENT)
    assert len(text) < 60_000
    assert "@x" not in text


def test_many_matrix_legs_and_workloads_fit() -> None:
    legs: List[Leg] = []
    for major in range(10, 40):
        doc = synthetic(2_000, major=major, workloads=50)
        legs.append(Leg(Path(f"pg{major}"), doc))
    text = render(Merged(legs), Context(), COMMENT)
    assert len(text) < 60_000
    assert text.count("- ❌ PostgreSQL ") == 30  # every leg keeps its line
    assert cells(finding_rows(text)[0])[4] == ", ".join(str(m) for m in range(39, 9, -1))


def test_fully_suppressed_workload_and_ring_drops_are_visible() -> None:
    doc = json.loads((LEGS / "violations_pg15" / "results.json").read_text())
    doc["workloads"] = [w for w in doc["workloads"] if w["name"] == "tx_abort"]
    doc["workloads"][0]["violations"] = [v for v in doc["workloads"][0]["violations"] if v["suppressed_by"]]
    doc["ring"]["dropped"] = 17
    text = render(Merged([Leg(Path("x"), doc)]), Context(), SUMMARY)
    assert "tx&#95;abort (1 suppressed)" in text
    assert "17 violations dropped by the ring buffer: counts are a lower bound" in text
    assert "all clear" not in text and "passed, but 17 violations were dropped unseen" in text
    doc["ring"]["dropped"] = 0
    assert "all clear" in render(Merged([Leg(Path("x"), doc)]), Context(), SUMMARY)


def test_many_crashed_workloads_fit_and_are_counted() -> None:
    doc = json.loads((LEGS / "crash_pg17" / "results.json").read_text())
    crashed = doc["workloads"][0]
    doc["workloads"] = [dict(crashed, name=f"crash_{i}", log_excerpt="LOG: boom @team |" * 400)
                        for i in range(3000)]
    text = render(Merged([Leg(Path("x"), doc)]), Context(), COMMENT)
    assert len(text) < 60_000
    shown = text.count(": crashed\n")
    m = re.search(r"… (\d+) more failed workloads \(error, timeout, crash or failed regression test\) not shown", text)
    assert m and shown + int(m.group(1)) == 3000
