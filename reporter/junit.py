"""JUnit XML from merged results: one testsuite per PostgreSQL version, one testcase per workload.

Violations at or above fail-on make the testcase a failure; errors, timeouts and crashes make it an error;
findings below fail-on and suppressed ones go to the testcase's system-out so nothing is hidden.
"""

from __future__ import annotations

import re
from typing import Any, Dict, List

from junit_xml import TestCase, TestSuite, to_xml_report_string

from reporter.merge import Merged
from reporter.summary import BROKEN_STATUSES, is_active, reaches, sort_violations, worst_of
from reporter.terminal import clean, format_bytes, format_rate

MAX_LISTED = 500  # violations listed per testcase; a CI test viewer does not need 100,000 lines
# Characters XML 1.0 cannot carry at all (not even as references): database text may hold any of them.
_NOT_XML = re.compile("[^\x09\x0a\x0d\x20-\ud7ff\ue000-\ufffd\U00010000-\U0010ffff]")


def _x(text: str | None) -> str | None:
    return None if text is None else _NOT_XML.sub("\ufffd", text)


def _line(v: Dict[str, Any]) -> str:
    where = v.get("context_path") or v.get("context") or "-"
    text = (f"{v['severity']} {v['check_type']} in {clean(where, 300)}: {format_bytes(v.get('used_delta'))}, "
            f"{format_rate(v.get('bytes_per_iteration'))}, library {clean(v.get('source_lib'), 100)}, "
            f"phase {clean(v.get('phase'), 30)}: {clean(v.get('detail'), 500)}")
    if v.get("suppressed_by"):
        text += f" [suppressed: {clean(v['suppressed_by'], 200)}]"
    return text


def _listing(violations: List[Dict[str, Any]]) -> str:
    lines = [_line(v) for v in violations[:MAX_LISTED]]
    if len(violations) > MAX_LISTED:
        lines.append(f"... {len(violations) - MAX_LISTED} more in results.json")
    return "\n".join(lines)


def _testcase(w: Dict[str, Any], classname: str, fail_on: str) -> TestCase:
    ordered = sort_violations(w["violations"])
    failing = [v for v in ordered if is_active(v) and reaches(v["severity"], fail_on)]
    failing_ids = {id(v) for v in failing}
    other = [v for v in ordered if id(v) not in failing_ids]
    case = TestCase(
        _x(clean(w["name"], 300)), classname=classname, elapsed_sec=float(w["duration_s"]),
        stdout=_x(_listing(other)) or None, status=w["status"],
    )
    if w["status"] in BROKEN_STATUSES:
        err = w.get("error") or {}
        message = f"{w['status']}: {clean(err.get('message'), 300)}" if err else w["status"]
        if err.get("sqlstate"):
            message += f" (SQLSTATE {err['sqlstate']})"
        # Raw (not one-lined) text in the element body: junit-xml strips characters XML cannot hold.
        output = "\n".join(x for x in (err.get("message"), w.get("log_excerpt")) if x) or None
        case.add_error_info(message=_x(message), output=_x(output), error_type=w["status"])
    if failing:
        worst = worst_of(v["severity"] for v in failing)
        case.add_failure_info(
            message=f"{len(failing)} violation(s) at or above {fail_on}; worst {worst}",
            output=_x(_listing(failing)), failure_type=f"memcheck.{worst}",
        )
    return case


def build_suites(merged: Merged, fail_on: str) -> List[TestSuite]:
    suites: List[TestSuite] = []
    for leg in merged.legs:
        res = leg.results
        if res is None:
            case = TestCase("results", classname=f"pg-ext-memcheck.missing.{clean(leg.source.name, 100)}")
            case.add_error_info(message=_x(f"no results.json in {leg.source}"), error_type="missing")
            suites.append(TestSuite(_x(f"pg-ext-memcheck missing leg {clean(str(leg.source), 300)}"), [case]))
            continue
        pg = res["postgresql"]
        classname = f"pg-ext-memcheck.pg{pg['major']}"
        properties = {
            "tool.name": res["tool"]["name"], "tool.version": res["tool"]["version"],
            "postgresql.version": pg["version"], "postgresql.major": str(pg["major"]),
            "fail_on": fail_on, "config.digest": res["config"]["digest"],
            "ring.dropped": str(res["ring"]["dropped"]),
        }
        properties = {k: _x(v) or "" for k, v in properties.items()}
        suites.append(TestSuite(
            _x(f"pg-ext-memcheck PostgreSQL {clean(pg['version'], 40)}"),
            [_testcase(w, classname, fail_on) for w in res["workloads"]],
            id=str(pg["major"]), package=classname, properties=properties,
            timestamp=res["started_at"],
        ))
    return suites


def render_junit(merged: Merged, fail_on: str) -> str:
    return to_xml_report_string(build_suites(merged, fail_on), prettyprint=True, encoding="utf-8")
