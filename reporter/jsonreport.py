"""The JSON summary (`report --json FILE`, `check --json FILE`): the verdict, the counts and every finding with
its classification, for other tools. Versioned (`schema_version`) and checked against
reporter/schemas/summary.schema.json, as results.json is against its schema; docs/interfaces.md describes it.

Every finding says what every other output says about it (`gate`, from Merged.gate) and how it compares with
the base (`classification`, null without a base). Pure: the command writes the text.
"""

from __future__ import annotations

import json
from typing import Any, Dict, List, Optional

from reporter import __version__, describe
from reporter.compare import FIXED
from reporter.findings import Finding
from reporter.merge import Merged
from reporter.summary import Conclusion, judge

SCHEMA_VERSION = 1


def _site(site: Optional[Dict[str, Any]], root: Optional[str]) -> Optional[Dict[str, Any]]:
    if not site:
        return None
    return {"function": site.get("function"), "file": describe.site_file(site, root),
            "in_repository": describe.repo_path(site.get("file"), root) is not None,
            "line": site.get("line"), "library": site.get("lib"), "offset": site.get("offset"),
            "bytes": site.get("bytes"), "count": site.get("count")}


def finding(merged: Merged, f: Finding, fail_on: str, root: Optional[str], classification: Optional[str],
            gate: Optional[str]) -> Dict[str, Any]:
    c = merged.comparison
    where = describe.location(f, root, merged.present) if classification != FIXED else None
    return {
        "id": describe.fingerprint(f),
        "check_type": f.check_type,
        "severity": f.severity,
        "severity_by_major": {str(m): s for m, s in sorted(f.severities_by_major().items(), reverse=True)},
        "gate": gate,
        "classification": classification,
        "why_worse": c.why_worse.get(f.key) if c is not None else None,
        "context": f.context,
        "context_path": f.where,
        "library": f.source_lib,
        "rate": dict(f.rate) if f.rate else None,
        "bytes": f.bytes,
        "lifetime": f.lifetime,
        "verdict": f.verdict,
        "majors": list(f.majors),
        "workloads": list(f.workloads),
        "occurrences": f.occurrences,
        "site": _site(f.site, root),
        "sites": [_site(s, root) for s in f.sites],
        "location": {"path": where[0], "line": where[1], "kind": where[2]} if where else None,
        "entry": f.entry,
        "suppressed_by": f.suppressed_by,
        "advice": describe.advice_url(f.check_type),
        "headline": describe.headline(f, root),
    }


def build(merged: Merged, verdict: Conclusion, root: Optional[str]) -> Dict[str, Any]:
    fail_on = verdict.fail_on
    c = merged.comparison
    counts = verdict.counts
    legs: List[Dict[str, Any]] = []
    for leg in merged.legs:
        if leg.results is None:
            legs.append({"source": str(leg.source), "missing": True, "problem": leg.problem, "version": None,
                         "major": None, "conclusion": None, "findings": None})
            continue
        major = int(leg.results["postgresql"]["major"])
        own = judge(merged.counts_by_major[major], 0, fail_on, scope=merged.judged_scope, major=major)
        legs.append({"source": str(leg.source), "missing": False, "problem": None,
                     "version": str(leg.results["postgresql"]["version"]), "major": major,
                     "conclusion": own.conclusion, "findings": own.counts.findings})
    doc: Dict[str, Any] = {
        "schema_version": SCHEMA_VERSION,
        "tool": {"name": "pg-ext-memcheck", "version": __version__},
        "verdict": {"conclusion": verdict.conclusion, "failed": verdict.failed, "fail_on": fail_on,
                    "fail_on_scope": merged.scope, "reasons": list(verdict.reasons)},
        "counts": {
            "findings": counts.findings, "by_severity": dict(counts.by_severity), "violations": counts.violations,
            "suppressed": counts.suppressed, "dropped": counts.dropped, "workloads": counts.workloads,
            "broken": counts.broken, "missing_legs": len(merged.missing),
            "failing": sum(1 for f in merged.findings if merged.gate(f, fail_on) == "fails"),
        },
        "comparison": None if c is None else {
            "base": c.label, "base_sha": c.base_sha, "majors": list(c.compared_majors), "unstable": c.unstable,
            "new": len(c.new), "worse": len(c.worse), "unchanged": len(c.unchanged), "fixed": len(c.fixed),
            "not_compared": len(c.not_compared),
            "broken": [{"major": m, "workload": w} for m, w in sorted(c.broken_new)],
        },
        "postgresql": legs,
        "findings": [finding(merged, f, fail_on, root, c.class_of(f) if c and not f.key[0] else None,
                             merged.gate(f, fail_on)) for f in merged.findings],
        "fixed": [finding(merged, f, fail_on, root, FIXED, None) for f in (c.fixed if c else [])],
    }
    return doc


def render(merged: Merged, verdict: Conclusion, root: Optional[str]) -> str:
    return json.dumps(build(merged, verdict, root), indent=2, ensure_ascii=False) + "\n"
