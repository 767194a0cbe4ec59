"""One verdict everywhere: on a real comparison run (tests/fixtures/legs/compare_pg15: one new finding, two
unchanged, fail-on warning) JUnit, annotations, the comment, SARIF and the JSON summary agree on what fails, with
fail-on-scope new, with all, and without a base; SARIF validates against the official 2.1.0 schema and the JSON
summary against its own; the growth chart tells a leak from a cache."""

from __future__ import annotations

import copy
import json
import re
import xml.etree.ElementTree as ET
from pathlib import Path
from typing import Any, Dict, List, Optional, Set

import jsonschema
import pytest

from reporter import annotate, describe, ghoutputs, jsonreport, sarif
from reporter.commands.report import repository_root
from reporter.findings import Evidence, Finding
from reporter.junit import render_junit
from reporter.markdown import COMMENT, Context, growth_chart, render
from reporter.merge import Merged, attach_comparison, leg_bases, load_legs
from reporter.text import humanise
from reporter.vocab import CHECK_TYPES

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures"
LEG = FIXTURES / "legs" / "compare_pg15"
SARIF_SCHEMA = json.loads((FIXTURES / "sarif" / "sarif-schema-2.1.0.json").read_text(encoding="utf-8"))
SUMMARY_SCHEMA = json.loads((Path(__file__).resolve().parents[2] / "reporter" / "schemas" /
                             "summary.schema.json").read_text(encoding="utf-8"))
ROOT = "/home/runner/work/buggy_pg_ext/buggy_pg_ext"
SHA = "89abcdef0123456789abcdef0123456789abcdef"
RUN_URL = "https://github.com/acme/buggy_pg_ext/actions/runs/9001"
NEW_LINE = 390  # buggy_ExecutorEnd's palloc: nested_leak, the bug the change adds


def merged(scope: Optional[str] = None, base: bool = True) -> Merged:
    m = load_legs([LEG])
    if base:
        baseline, label = leg_bases(m)
        attach_comparison(m, baseline, scope, label)
    else:
        attach_comparison(m, None, scope)
    return m


def sarif_errors(doc: Dict[str, Any]) -> List[str]:
    v = jsonschema.Draft4Validator(SARIF_SCHEMA, format_checker=jsonschema.Draft4Validator.FORMAT_CHECKER)
    return [e.message for e in v.iter_errors(doc)]


def failing_lines(m: Merged, fail_on: str = "warning") -> Dict[str, Set[int]]:
    """The allocating lines each output says fail the job."""
    junit = ET.fromstring(render_junit(m, fail_on, ROOT).encode("utf-8"))
    out: Dict[str, Set[int]] = {
        "junit": {int(c.get("line") or 0) for c in junit.iter("testcase") if c.find("failure") is not None},
    }
    notes = [a for a in annotate.build(m, m.findings, fail_on, ROOT) if a.title and "context_leak" in a.title]
    out["annotations"] = {int(a.line or 0) for a in notes if a.kind == "error"}
    comment = render(m, Context(fail_on=fail_on, run_url=RUN_URL, head_sha=SHA, workspace=ROOT), COMMENT)
    rows = [line for line in comment.splitlines() if line.startswith("| ❌ ")]
    out["comment"] = {int(x) for row in rows for x in re.findall(r"#L(\d+)\)", row)}
    doc = sarif.build(m, fail_on, ROOT)
    out["sarif"] = {r["locations"][0]["physicalLocation"]["region"]["startLine"] for r in doc["runs"][0]["results"]
                    if r["level"] == "error"}
    summary = jsonreport.build(m, m.conclude(fail_on), ROOT)
    out["json"] = {f["location"]["line"] for f in summary["findings"] if f["gate"] == "fails"}
    return out


@pytest.mark.parametrize("scope,base,expected", [
    (None, True, {NEW_LINE}),  # with a base, fail-on-scope new by default: the new finding alone
    ("all", True, {NEW_LINE, 316, 288}),  # every finding at or above warning
    (None, False, {NEW_LINE, 316, 288}),  # without a base, fail-on alone
])
def test_every_output_fails_the_same_findings(scope: Optional[str], base: bool, expected: Set[int]) -> None:
    m = merged(scope, base)
    lines = failing_lines(m)
    assert lines == {name: expected for name in lines}, lines
    assert m.conclude("warning").failed


def test_fail_on_never_fails_nothing_anywhere() -> None:
    assert failing_lines(merged(), "never") == {k: set() for k in ("junit", "annotations", "comment", "sarif",
                                                                   "json")}


def test_junit_one_failure_and_two_passing_findings_with_their_text() -> None:
    root = ET.fromstring(render_junit(merged(), "warning", ROOT).encode("utf-8"))
    assert root.get("failures") == "1" and root.get("errors") == "0"
    found = [c for c in root.iter("testcase") if c.get("classname", "").endswith(".findings")]
    assert len(found) == 3
    (failing,) = [c for c in found if c.find("failure") is not None]
    assert (failing.get("file"), failing.get("line")) == ("ext/buggy_pg_ext.c", str(NEW_LINE))
    for case in found:
        if case is not failing:
            assert case.get("status") == "not judged" and case.find("skipped") is None
            assert "passes: unchanged from the base revision" in case.findtext("system-out", "")


def test_unchanged_findings_are_notices_whose_title_names_no_severity() -> None:
    m = merged()
    lines = ghoutputs.annotations(annotate.build(m, m.findings, "warning", ROOT))
    kinds = [line.split(" ", 1)[0] for line in lines]
    assert kinds == ["::error", "::notice", "::notice"]
    for line in lines[1:]:
        raw = re.search(r"title=(.*?)::", line).group(1)  # type: ignore[union-attr]
        title = raw.replace("%3A", ":").replace("%2C", ",").replace("%25", "%")
        assert "ERROR" not in title and "WARNING" not in title and title.startswith("pg-ext-memcheck: unchanged")
    assert "file=ext/buggy_pg_ext.c,line=390" in lines[0]


def test_sarif_validates_and_points_at_the_new_bug() -> None:
    doc = sarif.build(merged(), "warning", ROOT)
    assert sarif_errors(doc) == []
    results = doc["runs"][0]["results"]
    (error,) = [r for r in results if r["level"] == "error"]
    assert error["ruleId"] == "context_leak" and error["baselineState"] == "new"
    assert error["locations"][0]["physicalLocation"] == {"artifactLocation": {"uri": "ext/buggy_pg_ext.c"},
                                                         "region": {"startLine": NEW_LINE}}
    assert sorted(r["level"] for r in results) == ["error", "note", "note"]
    (rule,) = doc["runs"][0]["tool"]["driver"]["rules"]
    assert rule["helpUri"].endswith("README.md#context_leak") and "What to do" in rule["help"]["text"]


def test_sarif_schema_can_fail() -> None:
    doc = sarif.build(merged(), "warning", ROOT)
    bad = copy.deepcopy(doc)
    bad["runs"][0]["results"][0]["level"] = "fatal"
    del bad["version"]
    assert len(sarif_errors(bad)) == 2


def test_every_check_type_has_a_rule_with_help() -> None:
    assert set(describe.CHECK_HELP) == set(CHECK_TYPES)
    for check in CHECK_TYPES:
        rule = sarif.rule(check)
        assert rule["id"] == check and rule["help"]["text"] and rule["helpUri"] == describe.advice_url(check)


def test_sarif_related_locations_and_suppressions() -> None:
    m = load_legs([FIXTURES / "legs" / "violations_pg15"])
    doc = sarif.build(m, "error", "/home/runner/work/buggy_pg_ext/buggy_pg_ext")
    assert sarif_errors(doc) == []
    suppressed = [r for r in doc["runs"][0]["results"] if "suppressions" in r]
    assert len(suppressed) == 1 and suppressed[0]["level"] == "note"
    assert suppressed[0]["suppressions"][0]["justification"] .startswith("known upstream bug")


@pytest.mark.parametrize("base", [True, False])
def test_json_summary_validates_with_classifications(base: bool) -> None:
    m = merged(None, base)
    doc = jsonreport.build(m, m.conclude("warning"), ROOT)
    jsonschema.Draft202012Validator(SUMMARY_SCHEMA).validate(doc)
    classes = sorted(str(f["classification"]) for f in doc["findings"])
    assert classes == (["new", "unchanged", "unchanged"] if base else ["None", "None", "None"])
    assert doc["counts"]["failing"] == (1 if base else 3) and doc["verdict"]["conclusion"] == "failure"
    bad = copy.deepcopy(doc)
    bad["findings"][0]["gate"] = "maybe"
    with pytest.raises(jsonschema.ValidationError, match="'maybe' is not one of"):
        jsonschema.Draft202012Validator(SUMMARY_SCHEMA).validate(bad)


def test_paths_are_relative_to_the_repository_root() -> None:
    m = merged()
    assert m.source_root == ROOT
    # the recorded git top level wins over the workspace (actions/checkout's path: or a subdirectory)
    assert repository_root(None, m, {"GITHUB_WORKSPACE": "/home/runner/work/x"}) == ROOT
    assert repository_root("src", m, {"GITHUB_WORKSPACE": "/w"}) == "/w/src"
    text = render(m, Context(fail_on="warning", run_url=RUN_URL, head_sha=SHA, workspace=ROOT), COMMENT)
    assert f"{RUN_URL.split('/actions')[0]}/blob/{SHA}/ext/buggy_pg_ext.c#L{NEW_LINE}" in text
    assert ROOT not in text  # no absolute path of the runner's machine


def test_annotations_inside_github_always_have_a_file() -> None:
    m = load_legs([FIXTURES / "legs" / "example_pg18", FIXTURES / "legs" / "crash_pg17",
                   FIXTURES / "legs" / "missing_leg"])
    env = {"GITHUB_WORKFLOW_REF": "acme/ext/.github/workflows/memcheck.yml@refs/pull/7/merge"}
    fallback = annotate.workflow_file(env)
    assert fallback == ".github/workflows/memcheck.yml"
    items = list(annotate.build(m, m.findings, "error", "/nowhere", fallback))
    assert items and all(a.file for a in items)
    assert annotate.workflow_file({}) is None


def test_annotation_without_a_repository_site_points_at_the_workload_definition(tmp_path: Path) -> None:
    doc = json.loads((FIXTURES / "legs" / "compare_pg15" / "results.json").read_text())
    (tmp_path / "ext").mkdir()
    config = tmp_path / "ext" / "memcheck.yml"
    config.write_text("workloads:\n  - name: per_row_function\n    sql: SELECT 1\n  - name: work\n    sql: x\n")
    doc["config"]["path"] = str(config)
    for w in doc["workloads"]:
        for v in w["violations"]:
            for site in v["sites"]:
                site["file"] = "/usr/include/postgresql/elsewhere.c"  # not in the repository
    from reporter.merge import Leg

    m = Merged([Leg(tmp_path, doc)])
    where = describe.location(m.findings[0], str(tmp_path), m.present)
    assert where == ("ext/memcheck.yml", 2, "workload")
    assert describe.site_text(m.findings[0].site, str(tmp_path)).endswith(" at elsewhere.c:316")


def _with_samples(samples: List[int], verdict: str) -> Finding:
    row = {"check_type": "ctx_bloat", "severity": "INFO", "context_path": "TopMemoryContext/C", "samples": samples,
           "verdict": verdict, "rate": {"bytes": 8192, "unit": "iteration"}, "used_delta": samples[-1],
           "sites": [], "source_lib": "x.so"}
    return Finding((False, "ctx_bloat", "TopMemoryContext/C", "x.so", None),
                   [Evidence(15, "15.1", "growth", row, None, 1.0)])


def test_growth_chart_tells_a_leak_from_a_cache() -> None:
    leak = growth_chart(_with_samples([8192 * i for i in range(1, 18)], "leak"))
    cache = growth_chart(_with_samples([0] + [65536] * 16, "cache"))
    assert leak and cache
    for chart in (leak, cache):
        lines = chart.splitlines()
        assert lines[0] == "xychart-beta" and lines[1].startswith('    title "')
        assert re.fullmatch(r'    x-axis "checkpoint \(of 17\)" \[[0-9, ]+\]', lines[2])
        assert re.fullmatch(r'    y-axis "KiB held" 0 --> [0-9.]+', lines[3])
    series = {name: [float(x) for x in re.search(r"line \[(.*)\]", c).group(1).split(", ")]  # type: ignore
              for name, c in (("leak", leak), ("cache", cache))}
    assert all(b > a for a, b in zip(series["leak"], series["leak"][1:]))  # rises at every checkpoint
    assert len(set(series["cache"][1:])) == 1 and series["cache"][1] > series["cache"][0]  # a step, then flat
    assert "leak: grows at every checkpoint" in leak and "cache: grew once (64.0 KiB), then flat" in cache
    assert growth_chart(_with_samples([1], "leak")) is None


def test_numbers_are_humanised_in_sentences() -> None:
    assert humanise("TopMemoryContext grew 8224416 bytes over 1000 executor starts") == (
        "TopMemoryContext grew 7.8 MiB over 1,000 executor starts")
    assert humanise("8.0 KiB per call, 4112208 per statement") == "8.0 KiB per call, 3.9 MiB per statement"
    assert humanise("512 bytes in relation 16384") == "512 bytes in relation 16384"
    comment = render(merged(), Context(fail_on="warning", workspace=ROOT), COMMENT)
    assert not re.search(r"\d{4,} bytes|\d{5,} per ", comment), re.findall(r".{30}\d{4,} bytes.{10}", comment)
