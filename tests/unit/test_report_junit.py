"""JUnit XML: validated against a JUnit XSD and read back with an independent parser."""

from __future__ import annotations

import copy
import json
import xml.etree.ElementTree as ET
from pathlib import Path
from typing import Dict

import pytest
from lxml import etree

from reporter.junit import render_junit
from reporter.merge import Leg, Merged, load_legs

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures"
LEGS = FIXTURES / "legs"
XSD = etree.XMLSchema(etree.parse(str(FIXTURES / "junit" / "junit-10.xsd")))


def render_valid(merged: Merged, fail_on: str = "error") -> ET.Element:
    text = render_junit(merged, fail_on)
    doc = etree.fromstring(text.encode("utf-8"))
    assert XSD.validate(doc), XSD.error_log
    return ET.fromstring(text.encode("utf-8"))


def cases(root: ET.Element) -> Dict[str, ET.Element]:
    return {f"{s.get('id')}/{c.get('name')}": c for s in root.iter("testsuite") for c in s.iter("testcase")}


def test_xsd_rejects_a_broken_report() -> None:
    # The schema must be able to fail: a testcase without a name is not JUnit.
    bad = etree.fromstring(b'<testsuites><testsuite name="x" tests="1"><testcase/></testsuite></testsuites>')
    assert not XSD.validate(bad)


def finding_cases(root: ET.Element, major: str) -> Dict[str, ET.Element]:
    suite = next(s for s in root.iter("testsuite") if s.get("id") == major)
    return {c.get("name") or "": c for c in suite.iter("testcase") if (c.get("classname") or "").endswith(".findings")}


def test_suite_per_version_case_per_workload_and_finding(monkeypatch: pytest.MonkeyPatch) -> None:
    root = render_valid(load_legs([LEGS / "violations_pg15", LEGS / "errors_pg16", LEGS / "crash_pg17"]))
    suites = root.findall("testsuite")
    # the major, not the minor: suite names stay the same across minor releases
    assert [s.get("name") for s in suites] == [
        "pg-ext-memcheck PostgreSQL 17", "pg-ext-memcheck PostgreSQL 16", "pg-ext-memcheck PostgreSQL 15",
    ]
    props = {p.get("name"): p.get("value") for p in suites[2].iter("property")}
    assert props["tool.version"] == "0.1.0" and props["postgresql.version"] == "15.18"
    assert props["postgresql.major"] == "15" and props["fail_on_scope"] == "all"
    # 9 workloads and the 6 findings of PostgreSQL 15 (5 and a suppressed one); 2 ERROR findings fail
    assert root.get("tests") == "15" and root.get("failures") == "2" and root.get("errors") == "3"
    assert suites[2].get("skipped") == "1"  # the suppressed finding


def test_failures_errors_and_output() -> None:
    root = render_valid(load_legs([LEGS / "violations_pg15", LEGS / "errors_pg16", LEGS / "crash_pg17"]))
    c = cases(root)
    growth = c["15/growth_benchmark"]
    assert growth.find("failure") is None  # a workload fails through its findings' testcases, not twice
    assert "BuggyPlannerLeakCtx" in growth.findtext("system-out", "")  # it names them
    found = finding_cases(root, "15")
    failing = {name: case for name, case in found.items() if case.find("failure") is not None}
    planner = failing["context_leak in TopMemoryContext/BuggyPlannerLeakCtx (buggy_pg_ext.so)"]
    # one line naming the finding: check, context, rate with its unit
    assert planner.find("failure").get("message") == (  # type: ignore[union-attr]
        "ERROR context_leak in TopMemoryContext/BuggyPlannerLeakCtx: 2.0 KiB/iteration")
    assert planner.get("status") == "fails"
    below = [case for case in found.values() if case.get("status") == "below"]
    assert below and all(case.find("failure") is None and "passes: " in case.findtext("system-out", "")
                         for case in below)  # WARNING and INFO below fail-on: passing, with their text
    skipped = [case for case in found.values() if case.find("skipped") is not None]
    assert len(skipped) == 1 and "known upstream bug" in skipped[0].find("skipped").get("message", "")  # type: ignore
    assert c["15/clean_workload"].find("failure") is None and c["15/clean_workload"].find("error") is None
    bad = c["16/bad_sql"].find("error")
    assert bad is not None and bad.get("type") == "error" and "42P01" in bad.get("message", "")
    assert c["16/slow"].find("error").get("type") == "timeout"  # type: ignore[union-attr]
    crash = c["17/crashes_backend"].find("error")
    assert crash is not None and "signal 11" in (crash.text or "")


@pytest.mark.parametrize("fail_on,failures", [("never", 0), ("error", 2), ("warning", 4), ("info", 5)])
def test_fail_on_decides_failures(fail_on: str, failures: int) -> None:
    """One failing testcase per finding that reaches fail-on, as the conclusion counts them."""
    root = render_valid(load_legs([LEGS / "violations_pg15"]), fail_on)
    assert int(root.get("failures", "-1")) == failures


def test_fail_on_never_fails_no_broken_workload() -> None:
    root = render_valid(load_legs([LEGS / "errors_pg16"]), "never")
    assert root.get("errors") == "0" and int(root.get("skipped", "0") or 0) == 0
    bad = cases(root)["16/bad_sql"].find("skipped")
    assert bad is not None and "not failing: fail-on is never" in bad.get("message", "")


def test_missing_leg_is_an_error_suite() -> None:
    root = render_valid(load_legs([LEGS / "clean_pg15", LEGS / "missing_leg"]))
    missing = [s for s in root.findall("testsuite") if "missing" in (s.get("name") or "")]
    assert len(missing) == 1 and missing[0].find("testcase/error") is not None


def test_hostile_text_stays_well_formed() -> None:
    doc = json.loads((LEGS / "evil_pg14" / "results.json").read_text())
    doc = copy.deepcopy(doc)
    doc["workloads"][0]["violations"][0]["detail"] = "ctl \x00\x01\x1b[31m ]]> <![CDATA[ & \ud800"
    doc["workloads"][1]["error"]["message"] = "bad \x07 bell\n]]>"
    root = render_valid(Merged([Leg(Path("evil"), doc)]))
    c = cases(root)
    assert "wrong_ctx_alloc in TopMemoryContext/Ctx|with`pipes`" in (
        c["14/pipe|name `tick` @octocat <b>x</b>"].findtext("system-out") or "")
    bodies = [f.text or "" for f in root.iter("failure")]
    assert bodies and any("ctl" in b and "\ufffd" in b for b in bodies)  # the hostile detail, made valid XML
