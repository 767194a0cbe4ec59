"""Markdown report (PR comment and job summary variants) from merged results, within a size budget.

Every string that came from the database or the user is escaped here, in the view model, before it reaches a
template: templates only lay out already-safe text. Items (broken workloads first, then violations worst
first) are dropped from the bottom until the rendered text fits the variant's budget; an explicit "N more"
line says so.
"""

from __future__ import annotations

import html
import re
from dataclasses import dataclass, field
from functools import lru_cache
from typing import Any, Callable, Dict, List, Optional, Sequence, Set, Tuple

import jinja2

from reporter.merge import Merged
from reporter.summary import (
    BROKEN_STATUSES,
    SEVERITY_RANK,
    Comparison,
    ViolationKey,
    conclude,
    is_active,
    magnitude,
    results_counts,
    sort_violations,
    violation_key,
    workload_counts,
)
from reporter.terminal import format_bytes, format_rate, sparkline

COMMENT_BUDGET_CHARS = 60_000  # GitHub refuses comment bodies over 65,536 characters
SUMMARY_BUDGET_BYTES = 900 * 1024  # a step summary over 1 MiB is silently dropped

_CONTROL = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f-\x9f\u202a-\u202e\u2066-\u2069]")
# Characters that Markdown (tables, emphasis, code, links, headings) would interpret, as numeric entities.
_MD_ENTITIES = str.maketrans({
    "|": "&#124;", "`": "&#96;", "*": "&#42;", "_": "&#95;", "[": "&#91;", "]": "&#93;", "\\": "&#92;",
    "~": "&#126;", "!": "&#33;", "$": "&#36;", "{": "&#123;", "}": "&#125;",
})
_ZWJ = "\u200d"
# Only a plain Actions run URL is linked; anything else (odd env values) is left out rather than escaped.
_RUN_URL = re.compile(r"https?://[A-Za-z0-9.:-]+(/[A-Za-z0-9._-]+){2}/actions/runs/\d+")
_REF = re.compile(r"#(?=\d)|@")  # @user / @org/team mentions and #123 cross-references


def _neutralize(text: str, limit: int) -> str:
    text = _CONTROL.sub("", text.replace("\r\n", "\n").replace("\r", "\n"))
    if len(text) > limit:
        text = text[: limit - 1] + "…"
    return _REF.sub(lambda m: m.group(0) + _ZWJ, text)


def md_inline(value: Any, limit: int = 200) -> str:
    """Untrusted text -> one safe Markdown line (table cells, headings, list items)."""
    if value is None or value == "":
        return "-"
    text = html.escape(_neutralize(str(value), limit), quote=True).translate(_MD_ENTITIES)
    return text.replace("\n", "<br>")


def md_pre(value: Any, limit: int = 2000) -> str:
    """Untrusted multi-line text -> content for a <pre> block (no Markdown is parsed inside).

    Backticks become entities too: a renderer that ends the HTML block early must not meet a fence.
    """
    return html.escape(_neutralize(str(value), limit), quote=True).replace("`", "&#96;")


@dataclass(frozen=True)
class Variant:
    name: str
    budget: int
    measure: Callable[[str], int]
    rows_per_workload: int | None  # None: only the budget limits rows
    text_limit: int  # error messages, details
    log_limit: int  # crash log excerpts
    more_hint: str


COMMENT = Variant(
    "comment", COMMENT_BUDGET_CHARS, len, 10, 300, 1500,
    "see the job summary of this run, or results.json in the run's artifacts",
)
SUMMARY = Variant(
    "summary", SUMMARY_BUDGET_BYTES, lambda s: len(s.encode("utf-8")), None, 2000, 6000,
    "see results.json and the JUnit file in the run's artifacts",
)


@dataclass
class Context:
    """Facts from the environment that the report links to; all optional, none from 'now'."""

    fail_on: str = "error"
    run_url: str | None = None
    head_sha: str | None = None
    comparison: Comparison | None = None
    notices: List[str] = field(default_factory=list)


# ---- items and the budget ----------------------------------------------------------------------------

Item = Tuple[int, int, Optional[Dict[str, Any]]]  # (leg index, workload index, violation or None=broken)


def _items(merged: Merged) -> List[Item]:
    """Everything that can be listed, most important first: broken workloads, then violations worst first."""
    broken: List[Item] = []
    flat: List[Tuple[Tuple[int, int, float, int, int], Item]] = []
    for li, leg in enumerate(merged.legs):
        if leg.results is None:
            continue
        for wi, w in enumerate(leg.results["workloads"]):
            if w["status"] in BROKEN_STATUSES:
                broken.append((li, wi, None))
            ordered = sort_violations([v for v in w["violations"] if is_active(v)])
            for rank, v in enumerate(ordered):
                # Within a severity, every workload's worst comes before anyone's second worst.
                flat.append(((-SEVERITY_RANK[v["severity"]], rank, -magnitude(v), li, wi), (li, wi, v)))
    flat.sort(key=lambda pair: pair[0])
    return broken + [item for _, item in flat]


def _select(items: Sequence[Item], keep: int, per_workload: int | None) -> Set[int]:
    chosen: Set[int] = set()
    per: Dict[Tuple[int, int], int] = {}
    for n, (li, wi, v) in enumerate(items):
        if len(chosen) >= keep:
            break
        if v is not None and per_workload is not None:
            if per.get((li, wi), 0) >= per_workload:
                continue
            per[(li, wi)] = per.get((li, wi), 0) + 1
        chosen.add(n)
    return chosen


# ---- view model ----------------------------------------------------------------------------------------

_STATUS_ICON = {"passed": "✅", "violations": "⚠️", "error": "💥", "timeout": "⏱️", "crashed": "💥"}


def _counts_row(label: str, counts: Any, result: str) -> Dict[str, Any]:
    return {
        "label": label, "ERROR": counts.by_severity["ERROR"], "WARNING": counts.by_severity["WARNING"],
        "INFO": counts.by_severity["INFO"], "suppressed": counts.suppressed, "workloads": counts.workloads,
        "broken": counts.broken, "result": result,
    }


def _violation_row(v: Dict[str, Any], variant: Variant, new: bool) -> Dict[str, str]:
    return {
        "severity": v["severity"],
        "check": ("🆕 " if new else "") + v["check_type"],  # schema enum: safe as is
        "context": md_inline(v.get("context") or v.get("context_path"), 80),
        "path": md_inline(v.get("context_path"), 300),
        "bytes": format_bytes(v.get("used_delta")),
        "rate": format_rate(v.get("bytes_per_iteration")),
        "lib": md_inline(v.get("source_lib"), 60),
        "phase": md_inline(v.get("phase"), 20),
        "growth": sparkline(v.get("samples")) or "-",
        "detail": md_inline(v.get("detail"), variant.text_limit),
    }


def _view(
    merged: Merged, ctx: Context, variant: Variant, chosen: Set[int], items: Sequence[Item]
) -> Dict[str, Any]:
    verdict = conclude([leg.results for leg in merged.legs], ctx.fail_on)
    shown: Dict[Tuple[int, int], List[Dict[str, Any]]] = {}
    broken_shown: Set[Tuple[int, int]] = set()
    for n in sorted(chosen):
        li, wi, v = items[n]
        if v is None:
            broken_shown.add((li, wi))
        else:
            shown.setdefault((li, wi), []).append(v)
    new_keys: Set[ViolationKey] = set(ctx.comparison.new) if ctx.comparison else set()

    table, legs = [], []
    for li, leg in enumerate(merged.legs):
        if leg.results is None:
            table.append({"label": f"{md_inline(leg.source.name, 80)} (missing)", "missing": True})
            legs.append({"title": md_inline(leg.source.name, 80), "missing": True,
                         "source": md_inline(str(leg.source), 200), "workloads": [], "passed": [], "more": 0})
            continue
        res = leg.results
        major = int(res["postgresql"]["major"])
        leg_verdict = conclude([res], ctx.fail_on)
        table.append(_counts_row(f"{md_inline(res['postgresql']['version'], 30)}", leg_verdict.counts,
                                 "❌ failed" if leg_verdict.failed else "✅ passed") | {"missing": False})
        workloads, passed_names, leg_more = [], [], 0
        for wi, w in enumerate(res["workloads"]):
            wc = workload_counts(w)
            rows_v = shown.get((li, wi), [])
            hidden = wc.violations - len(rows_v)
            leg_more += hidden
            is_broken = w["status"] in BROKEN_STATUSES
            if not rows_v and not (is_broken and (li, wi) in broken_shown):
                if not wc.violations and not is_broken:
                    # Passed, possibly with every finding suppressed: say so instead of hiding it.
                    suffix = f" ({wc.suppressed} suppressed)" if wc.suppressed else ""
                    passed_names.append(md_inline(w["name"], 80) + suffix)
                continue
            err = w.get("error") or None
            workloads.append({
                "name": md_inline(w["name"], 120), "icon": _STATUS_ICON[w["status"]], "status": w["status"],
                "counts": ", ".join(f"{wc.by_severity[s]} {s}" for s in ("ERROR", "WARNING", "INFO")
                                    if wc.by_severity[s]),
                "suppressed": wc.suppressed, "dropped": wc.dropped,
                "iterations": w["iterations"], "duration": f"{w['duration_s']:.2f}",
                "error": md_pre(err["message"], variant.text_limit) if err else None,
                "sqlstate": md_inline(err.get("sqlstate"), 10) if err and err.get("sqlstate") else None,
                "log": md_pre(w["log_excerpt"], variant.log_limit) if w.get("log_excerpt") else None,
                "rows": [_violation_row(v, variant, violation_key(major, w["name"], v) in new_keys)
                         for v in rows_v],
                "more": hidden,
            })
        legs.append({"title": md_inline(res["postgresql"]["version"], 30), "missing": False,
                     "workloads": workloads, "passed": passed_names[:50],
                     "passed_more": max(0, len(passed_names) - 50), "more": leg_more,
                     "dropped": results_counts(res).dropped})

    total = verdict.counts
    active = total.violations
    omitted = sum(leg["more"] for leg in legs)
    omitted_broken = sum(1 for _, _, v in items if v is None) - len(broken_shown)
    return {
        "variant": variant.name,
        "failed": verdict.failed,
        # Dropped ring entries are findings of unknown severity: never call that "all clear".
        "all_clear": not verdict.failed and active == 0 and total.dropped == 0,
        "dropped": total.dropped,
        "reasons": [md_inline(r, 300) for r in verdict.reasons],
        "fail_on": verdict.fail_on,
        "active": active,
        "headline": _headline(active, total.broken, len(merged.missing)),
        "table": table,
        "total": _counts_row("**all**", total, "❌ **failure**" if verdict.failed else "✅ **success**"),
        "legs": legs,
        "omitted": omitted,
        "omitted_broken": omitted_broken,
        "more_hint": variant.more_hint,
        "run_url": ctx.run_url if ctx.run_url and _RUN_URL.fullmatch(ctx.run_url) else None,
        "head_sha": _short_sha(ctx.head_sha),
        "versions": ", ".join(md_inline(leg.version, 30) for leg in merged.legs if leg.results is not None),
        "comparison": _comparison_view(ctx.comparison) if ctx.comparison else None,
        "notices": [md_inline(n, 300) for n in ctx.notices],
    }


def _headline(active: int, broken: int, missing: int) -> str:
    parts = [f"{n} {word}{'' if n == 1 else 's'}" for n, word in
             ((active, "violation"), (broken, "failed workload"), (missing, "missing leg")) if n]
    return ", ".join(parts) or "failed"


def _short_sha(sha: str | None) -> str | None:
    return sha[:12] if sha and re.fullmatch(r"[0-9a-f]{40}", sha) else None


def _key_text(key: ViolationKey) -> str:
    major, workload, check, where, lib, phase = key
    return (f"PostgreSQL {major} · {md_inline(workload, 60)} · {check} in {md_inline(where, 80)}"
            + (f" ({md_inline(lib, 40)})" if lib else ""))


def _comparison_view(c: Comparison) -> Dict[str, Any]:
    return {
        "majors": ", ".join(str(m) for m in c.compared_majors) or "none",
        "new": len(c.new), "fixed": len(c.fixed), "worse": len(c.worse), "unchanged": c.unchanged,
        "unstable": c.unstable,
        "new_list": [_key_text(k) for k in c.new[:10]],
        "fixed_list": [_key_text(k) for k in c.fixed[:10]],
    }


# ---- rendering -----------------------------------------------------------------------------------------


@lru_cache(maxsize=1)
def _env() -> jinja2.Environment:
    return jinja2.Environment(
        loader=jinja2.PackageLoader("reporter", "templates"),
        autoescape=False,  # Markdown, not HTML: the view model is escaped by md_inline / md_pre
        trim_blocks=True,
        lstrip_blocks=True,
        keep_trailing_newline=True,
        undefined=jinja2.StrictUndefined,
    )


def render(merged: Merged, ctx: Context, variant: Variant = SUMMARY) -> str:
    """Render the report, dropping the least important items until it fits variant.budget."""
    template = _env().get_template("report.md.j2")
    items = _items(merged)

    def attempt(keep: int) -> str:
        chosen = _select(items, keep, variant.rows_per_workload)
        return template.render(**_view(merged, ctx, variant, chosen, items))

    keep = len(items)
    if variant.rows_per_workload is not None:
        keep = len(_select(items, len(items), variant.rows_per_workload))
    probe = min(keep, 500)
    text = attempt(probe)
    size = variant.measure(text)
    if probe < keep and size <= variant.budget:
        # Extrapolate from the probe instead of rendering everything (100,000 rows cost seconds).
        base = variant.measure(attempt(0))
        per_item = max(1.0, (size - base) / max(1, probe))
        keep = max(probe, min(keep, int((variant.budget - base) / per_item * 0.95)))
        text = attempt(keep)
        size = variant.measure(text)
    if size <= variant.budget:
        return text
    base = variant.measure(attempt(0))
    while size > variant.budget and keep > 0:
        per_item = max(1.0, (size - base) / keep)
        keep = min(keep - 1, int((variant.budget - base) / per_item * 0.95))
        keep = max(keep, 0)
        text = attempt(keep)
        size = variant.measure(text)
    if size > variant.budget:  # even the skeleton is too big (pathological leg count): hard cut
        text = _hard_cut(text, variant)
    return text


def _hard_cut(text: str, variant: Variant) -> str:
    note = f"\n\n… report cut to fit the size limit; {variant.more_hint}.\n"
    limit = variant.budget - variant.measure(note) - 16
    while variant.measure(text) > limit:
        text = text[: max(0, len(text) - max(1, (variant.measure(text) - limit)))]
    return text + note
