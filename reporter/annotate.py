"""GitHub annotations from a merged report: missing legs, broken workloads, then findings worst first.

A finding whose allocation site resolves to a file inside the repository (the workspace) is annotated on that file
and line, so it shows on the pull request's diff; the others are annotated without a file. The kind is `error`
when the finding reaches fail-on, else `warning`. Pure: ghoutputs formats and caps the lines.
"""

from __future__ import annotations

from typing import Iterator, Optional, Sequence

from reporter import describe
from reporter.compare import NEW, WORSE
from reporter.findings import Finding
from reporter.ghoutputs import Annotation
from reporter.merge import Merged
from reporter.text import clean
from reporter.vocab import BROKEN_STATUSES

TOOL = "pg-ext-memcheck"


def finding_annotation(f: Finding, fail_on: str, root: Optional[str], cls: Optional[str] = None,
                       judged: bool = True) -> Annotation:
    """`cls`: how it compares with the base (new, worse...); `judged`: whether fail-on applies to it (with
    fail-on-scope new an unchanged finding is only a warning)."""
    site = describe.repo_site(f, root)
    title = clean(f"{TOOL}: {cls + ' ' if cls in (NEW, WORSE) else ''}{f.severity} {f.check_type} in {f.context}",
                  200)
    lines = [clean(f"{f.severity} {f.check_type} in {f.where} ({f.source_lib or 'no library named'}): "
                   f"{describe.amount(f)}, {describe.lifetime_text(f)}; seen {describe.seen_text(f)}.", 600)]
    if f.site:
        lines.append(f"Allocated by {describe.site_text(f.site, root)}"
                     + (f", entered from {clean(f.entry, 80)}" if f.entry else "") + ".")
    lines.append(f"What to do: {describe.advice_url(f.check_type)}")
    return Annotation(
        "error" if judged and f.reaches(fail_on) else "warning", "\n".join(lines), title,
        describe.repo_path(site.get("file"), root) if site else None, site.get("line") if site else None,
    )


def build(merged: Merged, found: Sequence[Finding], fail_on: str, root: Optional[str]) -> Iterator[Annotation]:
    for leg in merged.missing:
        yield Annotation("error", clean(leg.problem or f"no results from {leg.source}", 300), TOOL)
    scope = merged.judged_scope
    c = merged.comparison
    for res in merged.present:
        version = clean(res["postgresql"]["version"], 30)
        major = int(res["postgresql"]["major"])
        for w in res["workloads"]:
            if w["status"] in BROKEN_STATUSES:
                msg = (w.get("error") or {}).get("message") or w["status"]
                kind = "error" if scope is None or (major, w["name"]) in scope.broken else "warning"
                yield Annotation(kind, clean(msg, 300),
                                 clean(f"{TOOL}: PostgreSQL {version}: {w['name']} {w['status']}", 200))
    in_scope = {id(f) for f in scope.findings} if scope is not None else None
    ordered = [f for f in found if not f.suppressed_by]
    if c is not None:  # what this change made new or worse first: the annotation cap keeps those
        rank = {NEW: 0, WORSE: 1}
        ordered.sort(key=lambda f: rank.get(c.class_of(f), 2))
    for f in ordered:
        yield finding_annotation(f, fail_on, root, c.class_of(f) if c else None,
                                 in_scope is None or id(f) in in_scope)
