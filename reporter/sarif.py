"""SARIF 2.1.0 (`report --sarif FILE`) for GitHub code scanning (github/codeql-action/upload-sarif) and other
SARIF viewers: one result per finding (suppressed ones carry their suppression), one rule per check type.

A result's ruleId is the check type; its level comes from the one verdict every output gives (Merged.gate):
`error` for what fails the job, `warning` for a judged finding below fail-on (`note` if it is INFO), `note` for
one fail-on-scope `new` does not judge (unchanged from the base) and for a suppressed one. Its location is the
allocating line when that is a file of the repository (URIs relative to the repository root, which is how code
scanning resolves them), else the definition of a workload it was seen in; the finding's other top allocation
sites are related locations. With a base, `baselineState` says new, updated (worse) or unchanged. Rules carry
help text and the README's paragraph as helpUri. Pure: the command writes the text; tests validate it against
the official SARIF 2.1.0 schema.
"""

from __future__ import annotations

import json
from typing import Any, Dict, List, Optional

from reporter import __version__, describe
from reporter.compare import NEW, UNCHANGED, WORSE
from reporter.findings import Finding
from reporter.merge import Merged
from reporter.summary import BELOW, FAILS, NOT_JUDGED, SUPPRESSED
from reporter.vocab import CHECK_TYPES

SCHEMA_URI = "https://json.schemastore.org/sarif-2.1.0.json"
VERSION = "2.1.0"
FINGERPRINT = "pgExtMemcheck/v1"
_BASELINE = {NEW: "new", WORSE: "updated", UNCHANGED: "unchanged"}


def level(gate: str, severity: str) -> str:
    if gate == FAILS:
        return "error"
    if gate == BELOW and severity != "INFO":
        return "warning"
    return "note"


def rule(check: str) -> Dict[str, Any]:
    what, todo = describe.CHECK_HELP[check]
    url = describe.advice_url(check)
    return {
        "id": check,
        "name": "".join(part.capitalize() for part in check.split("_")),
        "shortDescription": {"text": f"{what}."},
        "fullDescription": {"text": f"{what}. What to do: {todo}."},
        "help": {"text": f"{what}. What to do: {todo}. The full explanation: {url}",
                 "markdown": f"{what}.\n\n**What to do:** {todo}.\n\n[The full explanation]({url})"},
        "helpUri": url,
        "defaultConfiguration": {"level": "warning"},
        "properties": {"tags": ["memory", "postgresql", "extension"]},
    }


def _physical(path: str, line: Optional[int]) -> Dict[str, Any]:
    loc: Dict[str, Any] = {"artifactLocation": {"uri": path}}
    if line:
        loc["region"] = {"startLine": int(line)}
    return loc


def result(merged: Merged, f: Finding, fail_on: str, root: Optional[str], rule_index: int) -> Dict[str, Any]:
    gate = merged.gate(f, fail_on)
    c = merged.comparison
    cls = c.class_of(f) if c is not None and gate != SUPPRESSED else None
    text = describe.headline(f, root, 1000)
    text += f". Lives {describe.lifetime_text(f)}; seen {describe.seen_text(f)}"
    if gate == FAILS:
        text += f". Fails the job (fail-on {fail_on})"
    elif gate == BELOW:
        text += f". Below fail-on {fail_on}"
    elif gate == NOT_JUDGED:
        text += ". Unchanged from the base revision, not failing (fail-on-scope new)"
    out: Dict[str, Any] = {
        "ruleId": f.check_type,
        "ruleIndex": rule_index,
        "level": level(gate, f.severity),
        "message": {"text": text + "."},
        "partialFingerprints": {FINGERPRINT: describe.fingerprint(f)},
        "properties": {"severity": f.severity, "gate": gate, "context": f.where, "library": f.source_lib,
                       "rate": describe.amount(f), "lifetime": f.lifetime, "verdict": f.verdict,
                       "postgresql": list(f.majors), "workloads": list(f.workloads)},
    }
    where = describe.location(f, root, merged.present)
    if where is not None:
        physical = _physical(where[0], where[1])
        out["locations"] = [{"physicalLocation": physical}]
        if where[2] == "workload":
            out["locations"][0]["message"] = {"text": "no allocation site in the repository: the workload's "
                                                      "definition"}
    related: List[Dict[str, Any]] = []
    top = describe.repo_site(f, root)
    for site in f.sites:
        rel = describe.repo_path(site.get("file"), root)
        if site is top or rel is None or not site.get("line"):
            continue
        related.append({"id": len(related) + 1, "physicalLocation": _physical(rel, site["line"]),
                        "message": {"text": f"also allocated here: {describe.site_text(site, root)}"}})
    if related:
        out["relatedLocations"] = related
    if cls in _BASELINE:
        out["baselineState"] = _BASELINE[cls]
    if gate == SUPPRESSED:
        out["suppressions"] = [{"kind": "external", "justification": str(f.suppressed_by)}]
    return out


def build(merged: Merged, fail_on: str, root: Optional[str]) -> Dict[str, Any]:
    checks = [c for c in CHECK_TYPES if any(f.check_type == c for f in merged.findings)]
    index = {c: n for n, c in enumerate(checks)}
    run: Dict[str, Any] = {
        "tool": {"driver": {"name": "pg-ext-memcheck", "version": __version__, "semanticVersion": __version__,
                            "informationUri": describe.DOCS_URL, "rules": [rule(c) for c in checks]}},
        "results": [result(merged, f, fail_on, root, index[f.check_type]) for f in merged.findings],
        "properties": {"fail_on": fail_on, "fail_on_scope": merged.scope,
                       "postgresql": [str(res["postgresql"]["version"]) for res in merged.present]},
    }
    if merged.comparison is not None and merged.comparison.label:
        run["properties"]["compared_with"] = merged.comparison.label
    return {"$schema": SCHEMA_URI, "version": VERSION, "runs": [run]}


def render(merged: Merged, fail_on: str, root: Optional[str]) -> str:
    return json.dumps(build(merged, fail_on, root), indent=2, ensure_ascii=False) + "\n"
