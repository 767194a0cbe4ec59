"""GitHub annotations from a merged report: missing legs, broken workloads, then findings (with a base, what the
change made new or worse first).

The kind follows the one verdict every output gives (Merged.gate): `error` only for what fails the job, `warning`
for a finding that is judged but below fail-on, `notice` for one fail-on-scope `new` does not judge (on the base
too, unchanged), whose title names no severity. A finding is annotated on its allocating line when that is a file
of the repository, else on the definition of a workload it was seen in (memcheck.yml's `name:` line, a
regression test's sql file); `fallback` (the workflow file, inside GitHub Actions) takes what points nowhere, so
that every annotation has a file. Pure: ghoutputs formats and caps the lines.
"""

from __future__ import annotations

from typing import Any, Dict, Iterator, Optional, Sequence

from reporter import describe
from reporter.compare import NEW, WORSE
from reporter.findings import Finding
from reporter.ghoutputs import Annotation, workflow_file
from reporter.merge import Merged
from reporter.summary import BELOW, FAILS, NOT_JUDGED
from reporter.text import clean
from reporter.vocab import BROKEN_STATUSES

TOOL = "pg-ext-memcheck"
__all__ = ["build", "finding_annotation", "workflow_file"]  # workflow_file: the file of last resort
KIND = {FAILS: "error", BELOW: "warning", NOT_JUDGED: "notice"}


def finding_annotation(f: Finding, gate: str, fail_on: str, root: Optional[str], cls: Optional[str] = None,
                       legs: Sequence[Dict[str, Any]] = (), fallback: Optional[str] = None) -> Annotation:
    """`gate`: what fail-on (and fail-on-scope) says about it (summary.GATES); `cls`: how it compares with the
    base (new, worse...)."""
    what = f"{f.check_type} in {f.context}"
    if gate == NOT_JUDGED:
        title = f"{TOOL}: unchanged {what} (on the base too, not failing)"
    else:
        mark = f"{cls} " if cls in (NEW, WORSE) else ""
        below = f" (below fail-on {fail_on})" if gate == BELOW else ""
        title = f"{TOOL}: {mark}{f.severity} {what}{below}"
    lines = [clean(f"{f.severity} {f.check_type} in {f.where} ({f.source_lib or 'no library named'}): "
                   f"{describe.amount(f)}, {describe.lifetime_text(f)}; seen {describe.seen_text(f)}.", 600)]
    if gate == NOT_JUDGED:
        lines.insert(0, "Unchanged from the base revision: fail-on-scope new judges only what this change "
                        "introduced or made worse.")
    if f.site:
        lines.append(f"Allocated by {describe.site_text(f.site, root)}"
                     + (f", entered from {clean(f.entry, 80)}" if f.entry else "") + ".")
    where = describe.location(f, root, legs)
    if where is not None and where[2] == "workload":
        lines.append("No allocation site in the repository: annotated on the workload's definition.")
    lines.append(f"What to do: {describe.advice_url(f.check_type)}")
    file, line = (where[0], where[1]) if where else (fallback, None)
    return Annotation(KIND[gate], "\n".join(lines), clean(title, 200), file, line)


def build(merged: Merged, found: Sequence[Finding], fail_on: str, root: Optional[str],
          fallback: Optional[str] = None) -> Iterator[Annotation]:
    for leg in merged.missing:
        kind = "error" if fail_on != "never" else "warning"
        yield Annotation(kind, clean(leg.problem or f"no results from {leg.source}", 300), TOOL, fallback)
    c = merged.comparison
    for res in merged.present:
        version = clean(res["postgresql"]["version"], 30)
        major = int(res["postgresql"]["major"])
        for w in res["workloads"]:
            if w["status"] in BROKEN_STATUSES:
                msg = (w.get("error") or {}).get("message") or w["status"]
                kind = "error" if merged.broken_fails(major, w["name"], fail_on) else "warning"
                where = describe.definition(res, w["name"], root)
                yield Annotation(kind, clean(msg, 300),
                                 clean(f"{TOOL}: PostgreSQL {version}: {w['name']} {w['status']}", 200),
                                 where[0] if where else fallback, where[1] if where else None)
    ordered = [f for f in found if not f.suppressed_by]
    if c is not None:  # what this change made new or worse first: the annotation cap keeps those
        rank = {NEW: 0, WORSE: 1}
        ordered.sort(key=lambda f: rank.get(c.class_of(f), 2))
    legs = merged.present
    for f in ordered:
        yield finding_annotation(f, merged.gate(f, fail_on), fail_on, root, c.class_of(f) if c else None, legs,
                                 fallback)
