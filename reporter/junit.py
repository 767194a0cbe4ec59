"""JUnit XML from merged results: one testsuite per PostgreSQL major holding one testcase per workload and one
testcase per finding seen on that major.

The testcases say what every other output says (Merged.gate): a finding's testcase fails only when the finding
fails the job (its severity on that major reaches fail-on and, with a base compared under fail-on-scope `new`,
the change introduced it or made it worse); a finding that is judged but below fail-on, or unchanged from the
base, is a passing testcase whose output says so; a suppressed one is skipped with its reason. A finding's
testcase carries the `file` and `line` of its allocating line when that is a file of the repository (else of the
workload's definition), so tools that annotate from JUnit (mikepenz/action-junit-report,
EnricoMi/publish-unit-test-result-action) point at the bug. A workload's testcase is an error when the workload
errored, timed out, crashed or failed its regression test and that fails the job; a broken workload that does not
(fail-on never, or broken on the base too) is skipped with its status. Suite names carry the major, not the minor,
so they stay the same across minor releases.
"""

from __future__ import annotations

import re
from typing import Any, Dict, List, Optional, Sequence

from reporter import describe
from reporter.compare import NEW, WORSE
from reporter.findings import Evidence, Finding, by_workload, worst_evidence
from reporter.junitxml import TestCase, TestSuite, to_xml_report_string
from reporter.merge import Merged
from reporter.perf import bulk
from reporter.summary import BELOW, FAILS, NOT_JUDGED, SUPPRESSED
from reporter.text import cap, clean, clean_block, format_bytes, format_rate, humanise
from reporter.vocab import BROKEN_STATUSES

MESSAGE_LIMIT = 500  # the failure message is one line
BODY_LIMIT = 64 * 1024  # failure, error and output bodies
EVIDENCE_LISTED = 20  # evidence rows per finding body
FINDINGS_NAMED = 50  # findings named in a workload's output
# Characters XML 1.0 cannot carry at all (not even as references): database text may hold any of them.
_NOT_XML = re.compile("[^\x09\x0a\x0d\x20-\ud7ff\ue000-\ufffd\U00010000-\U0010ffff]")


def _x(text: Optional[str]) -> Optional[str]:
    if text is None:
        return None
    # Printable text (but for line breaks and tabs) holds no control, surrogate or non-character: valid XML.
    if text.replace("\n", "").replace("\t", "").replace("\r", "").isprintable():  # decided in C
        return text
    return _NOT_XML.sub("\ufffd", text)


def _row_line(e: Evidence) -> str:
    v = e.row
    note = f" [{describe.FOLD_TEXT[e.folded]}]" if e.folded else ""
    return (f"    {clean(e.workload, 80)}: {v['severity']} {v['check_type']} in "
            f"{clean(v.get('context_path') or v.get('context'), 200)}: {format_bytes(v.get('used_delta'))}, "
            f"{format_rate(v.get('rate'))}, phase {clean(v.get('phase'), 30)}: "
            f"{clean(humanise(v.get('detail') or ''), 300)}{note}")


def case_name(f: Finding) -> str:
    """A finding's testcase name: stable across runs and commits (no line number, no counts), so that tools
    comparing runs by name follow it."""
    name = f"{f.check_type} in {clean(f.where, 200)}"
    if f.site and f.site.get("function"):
        name += f" by {clean(f.site['function'], 80)}()"
    elif f.source_lib:
        name += f" ({clean(f.source_lib, 80)})"
    return name


def _why(gate: str, cls: Optional[str], fail_on: str, sev: str) -> str:
    if gate == FAILS:
        return f"fails: {sev} reaches fail-on {fail_on}" + (f" ({cls} in this change)" if cls in (NEW, WORSE)
                                                              else "")
    if gate == BELOW:
        return f"passes: {sev} is below fail-on {fail_on}" + (f" ({cls} in this change)" if cls in (NEW, WORSE)
                                                                else "")
    if gate == NOT_JUDGED:
        return (f"passes: unchanged from the base revision ({sev}); fail-on-scope new judges only what this "
                "change introduced or made worse")
    return "suppressed"


def _finding_body(f: Finding, evidence: Sequence[Evidence], sev: str, root: Optional[str], why: str) -> str:
    head = describe.headline(f, root, 400, sev, worst_evidence([e for e in evidence if e.folded is None]
                                                               or evidence).row)
    lines = [head, f"  {why}"]
    if f.lifetime or f.verdict:
        lines.append(f"  lives: {describe.lifetime_text(f)}")
    for site in f.sites[1:]:
        lines.append(f"  also allocated by {describe.site_text(site, root)} ({format_bytes(site.get('bytes'))})")
    if f.entry:
        lines.append(f"  entered from {clean(f.entry, 100)}")
    lines.append(f"  seen {describe.seen_text(f)}")
    ordered = sorted(evidence, key=lambda e: (e.folded is not None, -e.magnitude))
    lines.extend(_row_line(e) for e in ordered[:EVIDENCE_LISTED])
    if len(ordered) > EVIDENCE_LISTED:
        lines.append(f"    ... {len(ordered) - EVIDENCE_LISTED} more rows in results.json")
    lines.append(f"What to do: {describe.advice_url(f.check_type)}")
    return cap("\n".join(lines), BODY_LIMIT)


def _finding_case(merged: Merged, f: Finding, evidence: List[Evidence], major: int, classname: str, fail_on: str,
                  root: Optional[str], legs: Sequence[Dict[str, Any]]) -> TestCase:
    gate = merged.gate(f, fail_on, major)
    sev = f.severity_on(major) or f.severity
    cls = merged.comparison.class_of(f) if merged.comparison else None
    where = describe.location(f, root, legs)
    body = _finding_body(f, evidence, sev, root, _why(gate, cls, fail_on, sev))
    case = TestCase(_x(case_name(f)) or "", classname=classname, status=gate,
                    file=_x(where[0]) if where else None, line=where[1] if where else None)
    if gate == FAILS:
        message = describe.headline(f, root, MESSAGE_LIMIT, sev,
                                    worst_evidence([e for e in evidence if e.folded is None] or evidence).row)
        case.add_failure_info(message=_x(cap(message, MESSAGE_LIMIT)), output=_x(body),
                              failure_type=f"memcheck.{sev}")
    elif gate == SUPPRESSED:
        case.add_skipped_info(message=_x(clean(f"suppressed: {f.suppressed_by}", MESSAGE_LIMIT)), output=_x(body))
    else:
        case.stdout = _x(body)
    return case


def _workload_case(merged: Merged, w: Dict[str, Any], major: int, classname: str, fail_on: str,
                   found: Sequence[Finding]) -> TestCase:
    case = TestCase(_x(clean(w["name"], 300)) or "", classname=classname, elapsed_sec=float(w["duration_s"]),
                    status=w["status"])
    named = [f"{f.severity} {case_name(f)}" for f in found[:FINDINGS_NAMED]]
    if len(found) > FINDINGS_NAMED:
        named.append(f"... {len(found) - FINDINGS_NAMED} more")
    if named:
        case.stdout = _x(cap("Findings seen in this workload (each is a testcase of its own):\n" + "\n".join(named),
                             BODY_LIMIT))
    if w["status"] in BROKEN_STATUSES:
        err = w.get("error") or {}
        message = f"{w['status']}: {clean(err.get('message'), 300)}" if err else w["status"]
        if err.get("sqlstate"):
            message += f" (SQLSTATE {clean(err['sqlstate'], 10)})"
        output = cap("\n".join(clean_block(x, BODY_LIMIT // 2)
                               for x in (err.get("message"), w.get("diff"), w.get("log_excerpt")) if x), BODY_LIMIT)
        if merged.broken_fails(major, w["name"], fail_on):
            case.add_error_info(message=_x(message), output=_x(output) or None, error_type=w["status"])
        else:
            why = "fail-on is never" if fail_on == "never" else "it broke on the base revision too"
            case.add_skipped_info(message=_x(cap(f"{message}; not failing: {why}", MESSAGE_LIMIT)),
                                  output=_x(output) or None)
    return case


def build_suites(merged: Merged, fail_on: str, root: Optional[str] = None) -> List[TestSuite]:
    slices = by_workload(merged.findings)
    legs = merged.present
    suites: List[TestSuite] = []
    for leg in merged.legs:
        res = leg.results
        if res is None:
            case = TestCase("results", classname=f"pg-ext-memcheck.missing.{clean(leg.source.name, 100)}")
            case.add_error_info(message=_x(clean(leg.problem or f"no results.json in {leg.source}", 400)),
                                error_type="rejected" if leg.problem else "missing")
            suites.append(TestSuite(_x(f"pg-ext-memcheck missing leg {clean(str(leg.source), 300)}") or "", [case]))
            continue
        pg = res["postgresql"]
        major = int(pg["major"])
        classname = f"pg-ext-memcheck.pg{major}"
        cases = [_workload_case(merged, w, major, classname, fail_on,
                                [f for f, _ in slices.get((major, w["name"]), [])]) for w in res["workloads"]]
        evidence: Dict[int, List[Evidence]] = {}
        order: List[Finding] = []
        for f in merged.findings:
            mine = [e for e in f.evidence if e.major == major]
            if mine:
                evidence[id(f)] = mine
                order.append(f)
        names: Dict[str, int] = {}
        for f in order:
            case = _finding_case(merged, f, evidence[id(f)], major, f"{classname}.findings", fail_on, root, legs)
            seen = names[case.name] = names.get(case.name, 0) + 1
            if seen > 1:  # two findings that differ only in what the name leaves out (the line, the library)
                case.name = f"{case.name} #{seen}"
            cases.append(case)
        properties = {
            "tool.name": res["tool"]["name"], "tool.version": clean(res["tool"]["version"], 60),
            "postgresql.version": clean(pg["version"], 60), "postgresql.major": str(major),
            "fail_on": fail_on, "fail_on_scope": merged.scope, "config.digest": res["config"]["digest"],
            "ring.dropped": str(res["ring"]["dropped"]),
        }
        if merged.comparison is not None and merged.comparison.label:
            properties["compared_with"] = clean(merged.comparison.label, 200)
        suites.append(TestSuite(
            f"pg-ext-memcheck PostgreSQL {major}", cases, id=str(major), package=classname,
            properties={k: _x(v) or "" for k, v in properties.items()}, timestamp=res["started_at"],
        ))
    return suites


@bulk
def render_junit(merged: Merged, fail_on: str, root: Optional[str] = None) -> str:
    return to_xml_report_string(build_suites(merged, fail_on, root), prettyprint=True, encoding="utf-8")
