"""JUnit XML from merged results: one testsuite per PostgreSQL major, one testcase per workload.

Findings at or above fail-on make the testcase a failure whose message names the worst one in one line (check,
context, rate, site) and whose body lists them all; errors, timeouts and crashes make it an error; findings below
fail-on and suppressed ones go to the testcase's system-out so nothing is hidden. A testcase carries the `file` and
`line` of its worst finding's allocation site when that is a file of the repository. Suite names carry the major,
not the minor, so they stay the same across minor releases.
"""

from __future__ import annotations

import re
from typing import Any, Dict, List, Optional, Sequence, Tuple

from reporter.junitxml import TestCase, TestSuite, to_xml_report_string

from reporter import describe
from reporter.findings import Evidence, Finding, WorkloadSlice, by_workload, slice_severity, worst_evidence
from reporter.merge import Merged
from reporter.perf import bulk
from reporter.text import cap, clean, clean_block, format_bytes, format_rate
from reporter.vocab import BROKEN_STATUSES, SEVERITY_RANK, reaches

MAX_LISTED = 100  # findings listed per testcase body (about 40 kB: within BODY_LIMIT, never cut mid-finding)
MESSAGE_LIMIT = 500  # the failure message is one line
BODY_LIMIT = 64 * 1024  # failure, error and output bodies
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
    return (f"    {v['severity']} {v['check_type']} in {clean(v.get('context_path') or v.get('context'), 200)}: "
            f"{format_bytes(v.get('used_delta'))}, {format_rate(v.get('rate'))}, phase {clean(v.get('phase'), 30)}"
            f": {clean(v.get('detail'), 300)}{note}")


Judged = Tuple[Finding, List[Evidence], str]  # a finding's slice of one workload, and its severity there


def _slice_row(evidence: Sequence[Evidence]) -> Dict[str, Any]:
    """The worst row the finding had in this workload (a primary one if there is any)."""
    return worst_evidence([e for e in evidence if e.folded is None] or evidence).row


def _finding_lines(j: Judged, root: Optional[str]) -> List[str]:
    f, evidence, sev = j
    head = describe.headline(f, root, 400, sev, _slice_row(evidence))
    if f.lifetime or f.verdict:
        head += f"; {describe.lifetime_text(f)}"
    if f.suppressed_by:
        head += f" [suppressed: {clean(f.suppressed_by, 200)}]"
    lines = [head]
    if len(evidence) > 1 or evidence[0].folded:
        lines.extend(_row_line(e) for e in evidence[:20])
        if len(evidence) > 20:
            lines.append(f"    ... {len(evidence) - 20} more rows in results.json")
    else:  # a lone row: the head line says the rest
        lines.append(f"    {clean(evidence[0].row.get('detail'), 300)}")
    return lines


def _listing(judged: Sequence[Judged], root: Optional[str]) -> str:
    lines: List[str] = []
    for j in judged[:MAX_LISTED]:
        lines.extend(_finding_lines(j, root))
    if len(judged) > MAX_LISTED:
        lines.append(f"... {len(judged) - MAX_LISTED} more findings in results.json")
    if judged:
        lines.append("What to do: " + ", ".join(f"{c}: {describe.advice_url(c)}"
                                                for c in dict.fromkeys(j[0].check_type for j in judged)))
    return cap("\n".join(lines), BODY_LIMIT)


def _testcase(w: Dict[str, Any], classname: str, fail_on: str, slices: Sequence[WorkloadSlice],
              root: Optional[str]) -> TestCase:
    judged: List[Judged] = [(f, ev, slice_severity(ev)) for f, ev in slices]
    active = sorted((j for j in judged if not j[0].key[0]), key=lambda j: (-SEVERITY_RANK[j[2]], -j[0].magnitude))
    failing = [j for j in active if reaches(j[2], fail_on)]
    other = active[len(failing):] + [j for j in judged if j[0].key[0]]
    located = next((j[0] for j in active if j[0].representative.get("sites") and describe.repo_site(j[0], root)),
                   None)
    site = describe.repo_site(located, root) if located else None
    case = TestCase(
        _x(clean(w["name"], 300)), classname=classname, elapsed_sec=float(w["duration_s"]),
        stdout=_x(_listing(other, root)) or None, status=w["status"],
        file=_x(describe.repo_path(site["file"], root)) if site else None,
        line=int(site["line"]) if site else None,
    )
    if w["status"] in BROKEN_STATUSES:
        err = w.get("error") or {}
        message = f"{w['status']}: {clean(err.get('message'), 300)}" if err else w["status"]
        if err.get("sqlstate"):
            message += f" (SQLSTATE {clean(err['sqlstate'], 10)})"
        output = cap("\n".join(clean_block(x, BODY_LIMIT // 2)
                               for x in (err.get("message"), w.get("diff"), w.get("log_excerpt")) if x), BODY_LIMIT)
        case.add_error_info(message=_x(message), output=_x(output) or None, error_type=w["status"])
    if failing:
        f, evidence, sev = failing[0]
        message = describe.headline(f, root, MESSAGE_LIMIT, sev, _slice_row(evidence))
        if len(failing) > 1:
            message += f" (+{len(failing) - 1} more at or above {fail_on})"
        case.add_failure_info(message=_x(cap(message, MESSAGE_LIMIT)), output=_x(_listing(failing, root)),
                              failure_type=f"memcheck.{sev}")
    return case


def build_suites(merged: Merged, fail_on: str, root: Optional[str] = None) -> List[TestSuite]:
    slices = by_workload(merged.findings)
    suites: List[TestSuite] = []
    for leg in merged.legs:
        res = leg.results
        if res is None:
            case = TestCase("results", classname=f"pg-ext-memcheck.missing.{clean(leg.source.name, 100)}")
            case.add_error_info(message=_x(clean(leg.problem or f"no results.json in {leg.source}", 400)),
                                error_type="rejected" if leg.problem else "missing")
            suites.append(TestSuite(_x(f"pg-ext-memcheck missing leg {clean(str(leg.source), 300)}"), [case]))
            continue
        pg = res["postgresql"]
        major = int(pg["major"])
        classname = f"pg-ext-memcheck.pg{major}"
        properties = {
            "tool.name": res["tool"]["name"], "tool.version": clean(res["tool"]["version"], 60),
            "postgresql.version": clean(pg["version"], 60), "postgresql.major": str(major),
            "fail_on": fail_on, "config.digest": res["config"]["digest"],
            "ring.dropped": str(res["ring"]["dropped"]),
        }
        properties = {k: _x(v) or "" for k, v in properties.items()}
        suites.append(TestSuite(
            f"pg-ext-memcheck PostgreSQL {major}",
            [_testcase(w, classname, fail_on, slices.get((major, w["name"]), []), root) for w in res["workloads"]],
            id=str(major), package=classname, properties=properties,
            timestamp=res["started_at"],
        ))
    return suites


@bulk
def render_junit(merged: Merged, fail_on: str, root: Optional[str] = None) -> str:
    return to_xml_report_string(build_suites(merged, fail_on, root), prettyprint=True, encoding="utf-8")
