"""Markdown report (PR comment and job summary variants) from merged results, within a size budget.

Layout: the conclusion; when a base revision was compared, what this change made worse (new and worse findings,
workloads it broke, what it fixed) right under it; one row of counts per PostgreSQL version; ONE table of findings
across the whole matrix (with a base: new and worse first; then failing findings first, worst first, with a column
of majors), the failed workloads, the details of each finding (allocation sites, lifetime, evidence rows worst
first, what to do), then what passed.

Every string that came from the database, a results file or the environment is escaped here, in the view model,
before it reaches a template: templates only lay out already-safe text. Items (failed workloads, then findings worst
first) are dropped from the bottom until the rendered text fits the variant's budget; an explicit "N more" line
says so.
"""

from __future__ import annotations

import html
import re
from dataclasses import dataclass, field
from functools import lru_cache
from typing import Any, Callable, Dict, List, Optional, Sequence, Tuple
from urllib.parse import quote

import jinja2

from reporter import describe
from reporter.compare import NEW, WORSE, Comparison
from reporter.findings import Evidence, Finding
from reporter.merge import Merged
from reporter.perf import bulk
from reporter.summary import FAILS, judge, workload_counts
from reporter.text import ELLIPSIS, format_bytes, format_rate, humanise, plural, strip_controls
from reporter.vocab import BROKEN_STATUSES, SEVERITIES

COMMENT_BUDGET_CHARS = 60_000  # GitHub refuses comment bodies over 65,536 characters
SUMMARY_BUDGET_BYTES = 900 * 1024  # a step summary over 1 MiB is silently dropped

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
    text = strip_controls(text)
    if len(text) > limit:
        text = text[: limit - 1] + ELLIPSIS
    return _REF.sub(lambda m: m.group(0) + _ZWJ, text)


def md_inline(value: Any, limit: int = 200) -> str:
    """Untrusted text -> one safe Markdown line (table cells, headings, list items)."""
    if value is None or value == "":
        return "-"
    text = html.escape(_neutralize(str(value), limit), quote=True).translate(_MD_ENTITIES)
    return text.replace("\t", " ").replace("\n", "<br>")


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
    details_limit: Optional[int]  # findings with a details block (the table may list more); None: all listed
    evidence_limit: int  # evidence rows per finding
    text_limit: int  # error messages, details
    log_limit: int  # crash log excerpts
    more_hint: str


COMMENT = Variant(
    "comment", COMMENT_BUDGET_CHARS, len, 15, 6, 300, 1500,
    "see the job summary of this run, or results.json in the run's artifacts",
)
SUMMARY = Variant(
    "summary", SUMMARY_BUDGET_BYTES, lambda s: len(s.encode("utf-8")), 300, 40, 2000, 6000,
    "see results.json and the JUnit file in the run's artifacts",
)


@dataclass
class Context:
    """Facts from the environment that the report links to; all optional, none from 'now'."""

    fail_on: str = "error"
    run_url: Optional[str] = None
    head_sha: Optional[str] = None
    notices: List[str] = field(default_factory=list)
    workspace: Optional[str] = None  # the repository checkout: site files inside it are shown relative to it


# ---- items and the budget ----------------------------------------------------------------------------

Item = Tuple[str, Any]  # ("broken", (leg index, workload index)) or ("finding", Finding)


def _items(merged: Merged) -> List[Item]:
    """Everything that can be listed, most important first: failed workloads, then findings worst first (with
    a base: what this change made new or worse first)."""
    broken: List[Item] = []
    for li, leg in enumerate(merged.legs):
        if leg.results is None:
            continue
        for wi, w in enumerate(leg.results["workloads"]):
            if w["status"] in BROKEN_STATUSES:
                broken.append(("broken", (li, wi)))
    found = [f for f in merged.findings if not f.key[0]]
    c = merged.comparison
    if c is not None:
        rank = {NEW: 0, WORSE: 1}
        found.sort(key=lambda f: rank.get(c.class_of(f), 2))  # stable: worst first within each class
    return broken + [("finding", f) for f in found]


# ---- view model ----------------------------------------------------------------------------------------

_STATUS_ICON = {"passed": "✅", "violations": "⚠️", "error": "💥", "timeout": "⏱️", "crashed": "💥", "failed": "❌"}
_SEVERITY_ICON = {"ERROR": "🟥", "WARNING": "🟧", "INFO": "🟦"}
_CLASS_ICON = {NEW: "🆕", WORSE: "📈"}
SITE_FILE_CHARS = 40  # a table cell's file:line: longer paths lose directories from the left, never the file:line


def _repo_url(run_url: Optional[str]) -> Optional[str]:
    return run_url.split("/actions/runs/")[0] if run_url else None


def _short_file(path: str, limit: int = SITE_FILE_CHARS) -> str:
    """'src/backend/deep/dir/file.c' -> '…/dir/file.c': directories go first; the file name always stays."""
    parts = path.split("/")
    while len("/".join(parts)) > limit and len(parts) > 1:
        parts = parts[1:]
    text = "/".join(parts)
    return text if text == path else ELLIPSIS + "/" + text


def _site_md(site: Optional[Dict[str, Any]], ctx: Context, repo_url: Optional[str], sha: Optional[str],
             short: bool = False) -> str:
    """`function() at file.c:line`, linked to that line at the head commit when the file is in the repository.
    `short`: the file's directories cut from the left to fit a table cell."""
    if not site:
        return "-"
    rel = describe.repo_path(site.get("file"), ctx.workspace)
    if short and rel and site.get("line"):
        func = site.get("function")
        loc = f"{_short_file(rel)}:{int(site['line'])}"
        text = md_inline(f"{func}() at {loc}" if func else loc, 120)
    else:
        text = md_inline(describe.site_text(site, ctx.workspace), 120)
    if rel and site.get("line") and repo_url and sha:
        return f"[{text}]({repo_url}/blob/{sha}/{quote(rel)}#L{int(site['line'])})"
    return text


def _names(names: Sequence[str], shown: int = 3) -> str:
    head = ", ".join(md_inline(n, 60) for n in names[:shown])
    return head + (f" (+{len(names) - shown})" if len(names) > shown else "")


def _mark(merged: Merged, f: Finding, fail_on: str) -> str:
    """❌ only for what fails the job (Merged.gate); else the severity's colour."""
    return "❌" if merged.gate(f, fail_on) == FAILS else _SEVERITY_ICON[f.severity]


def _finding_row(merged: Merged, f: Finding, ctx: Context, cls: Optional[str], site: str) -> Dict[str, str]:
    icon = _CLASS_ICON.get(cls or "")
    return {
        "severity": f"{_mark(merged, f, ctx.fail_on)} {f.severity}",
        # a reference link (defined once at the end): the URL is not repeated in every row of the table
        "what": (f"{icon} " if icon else "") + f"[{f.check_type}] in {md_inline(f.context, 40)}",
        "rate": md_inline(describe.amount(f), 40).replace(" ", "&nbsp;"),  # "2.0 KiB/call" on one line
        "where": site,
        "majors": describe.majors_text(f.majors),
    }


def _evidence_line(e: Evidence) -> str:
    v = e.row
    note = describe.FOLD_TEXT.get(e.folded or "", "")
    counted = [plural(int(v[k]), k[:-1] if k != "calls" else "call") for k in ("calls", "rows", "occurrences")
               if v.get(k)]
    parts = [f"PostgreSQL {md_inline(e.version, 30)} · {md_inline(e.workload, 60)}: {v['severity']} "
             f"{v['check_type']} in {md_inline(v.get('context_path') or v.get('context'), 160)}",
             f"grew {format_bytes(v.get('used_delta'))}"]
    if v.get("rate"):
        parts.append(md_inline(format_rate(v.get("rate")), 40))
    if counted:
        parts.append(md_inline(", ".join(counted), 80))
    if v.get("phase"):
        parts.append(f"phase {md_inline(v.get('phase'), 20)}")
    return ", ".join(parts) + (f" ({md_inline(note, 80)})" if note else "")


def _details(n: int, f: Finding, variant: Variant, ctx: Context, site: str,
             repo_url: Optional[str], sha: Optional[str]) -> Dict[str, Any]:
    others = [_site_md(s, ctx, repo_url, sha) + f" ({format_bytes(s['bytes'])} in "
              f"{plural(s['count'], 'allocation')})" for s in f.sites[1:]]
    top = f.site
    return {
        "n": str(n), "summary": md_inline(f"{f.severity} {f.check_type} in {f.context}: {describe.amount(f)}", 200),
        "path": md_inline(f.where, 300), "lib": md_inline(f.source_lib, 80),
        "site": site + f" ({format_bytes(top['bytes'])} in {plural(top['count'], 'allocation')})" if top
        else "not recorded",
        "other_sites": others,
        "entry": md_inline(f.entry, 100) if f.entry else None, "phase": md_inline(f.phase, 20),
        "lifetime": md_inline(describe.lifetime_text(f), 80),
        "seen": md_inline(describe.seen_text(f), 200),
        "workloads": _names(f.workloads, 10),
        "bytes": format_bytes(f.bytes),
        "chart": growth_chart(f),
        "detail": md_inline(humanise(f.detail), variant.text_limit),
        "check": f.check_type,
        "evidence": [_evidence_line(e) for e in f.evidence_worst_first()[: variant.evidence_limit]],
        "evidence_more": max(0, len(f.evidence) - variant.evidence_limit),
    }


CHART_POINTS = 24  # the x axis of a growth chart: more checkpoints are thinned out


def growth_chart(f: Finding) -> Optional[str]:
    """A Mermaid xychart-beta line chart of the memory the finding's context held at each checkpoint of a
    scenario, in KiB; the title says whether it is a leak (grows at every checkpoint) or a cache (grew once,
    then flat), and so does the line's shape. None without samples."""
    samples = f.samples
    if not samples or len(samples) < 2:
        return None
    points = list(samples)
    if len(points) > CHART_POINTS:
        step = (len(points) - 1) / (CHART_POINTS - 1)
        points = [points[round(i * step)] for i in range(CHART_POINTS)]
    kib = [round(p / 1024, 1) for p in points]
    top = max(kib) or 1.0
    grew = points[-1] - points[0]
    if f.verdict == "cache":
        title = f"cache: grew once ({format_bytes(grew)}), then flat"
    elif f.verdict == "leak" or grew > 0:
        rate = describe.amount(f)
        title = f"leak: grows at every checkpoint ({format_bytes(grew)} in all, {rate})"
    else:
        title = "no growth"
    return "\n".join([
        "xychart-beta",
        f'    title "{_chart_text(title)}"',
        f'    x-axis "checkpoint (of {len(samples)})" [{", ".join(str(i) for i in range(1, len(kib) + 1))}]',
        f'    y-axis "KiB held" 0 --> {_chart_number(top * 1.1)}',
        f"    line [{', '.join(_chart_number(k) for k in kib)}]",
    ])


def _chart_text(text: str) -> str:
    """Text inside a Mermaid string: no quotes, no line breaks, nothing a code fence could end on."""
    return re.sub(r'["`\n\r]', "'", strip_controls(text))[:120]


def _chart_number(x: float) -> str:
    return f"{x:.1f}".rstrip("0").rstrip(".") if x != int(x) else str(int(x))


def _broken(merged: Merged, li: int, wi: int, variant: Variant, ctx: Context) -> Dict[str, Any]:
    res = merged.legs[li].results
    assert res is not None
    w = res["workloads"][wi]
    err = w.get("error") or None
    return {
        "title": f"PostgreSQL {md_inline(res['postgresql']['version'], 30)} · {md_inline(w['name'], 120)}",
        "icon": _STATUS_ICON[w["status"]], "status": w["status"],
        "fails": merged.broken_fails(int(res["postgresql"]["major"]), w["name"], ctx.fail_on),
        "iterations": w["iterations"], "duration": f"{w['duration_s']:.2f}",
        "error": md_inline(humanise(err["message"]), variant.text_limit) if err else None,
        "sqlstate": md_inline(err.get("sqlstate"), 10) if err and err.get("sqlstate") else None,
        "log": md_pre(w["log_excerpt"], variant.log_limit) if w.get("log_excerpt") else None,
        "diff": md_pre(w["diff"], variant.log_limit) if w.get("diff") else None,
    }


def _count_text(counts: Any) -> str:
    by = ", ".join(f"{counts.by_severity[s]} {s}" for s in reversed(SEVERITIES) if counts.by_severity[s])
    text = plural(counts.findings, "finding") + (f" ({by})" if by else "")
    text += f" from {plural(counts.violations, 'violation row')} in {plural(counts.workloads, 'workload')}"
    if counts.broken:
        text += f", {counts.broken} broken"
    if counts.suppressed:
        text += f", {counts.suppressed} suppressed"
    return text


def _legs_view(merged: Merged, ctx: Context,
               by_major: Dict[int, Any]) -> Tuple[List[Dict[str, Any]], List[Dict[str, Any]]]:
    """One line of counts per leg and, per leg, what passed and what the ring dropped."""
    table, legs = [], []
    for leg in merged.legs:
        if leg.results is None:
            table.append({"label": f"{md_inline(leg.source.name, 80)}", "missing": True})
            legs.append({"title": md_inline(leg.source.name, 80), "missing": True,
                         "source": md_inline(str(leg.source), 200),
                         "problem": md_inline(leg.problem, 500) if leg.problem else None})
            continue
        res = leg.results
        major = int(res["postgresql"]["major"])
        counts = by_major[major]
        verdict = judge(counts, 0, ctx.fail_on, scope=merged.judged_scope, major=major)
        table.append({"label": md_inline(res["postgresql"]["version"], 30), "missing": False,
                      "text": _count_text(counts), "icon": "❌" if verdict.failed else "✅"})
        passed = []
        for w in res["workloads"]:
            active, suppressed = workload_counts(w)
            if w["status"] not in BROKEN_STATUSES and not active:
                # Passed, possibly with every finding suppressed: say so instead of hiding it.
                passed.append(md_inline(w["name"], 80) + (f" ({suppressed} suppressed)" if suppressed else ""))
        legs.append({"title": md_inline(res["postgresql"]["version"], 30), "missing": False,
                     "passed": passed[:50], "passed_more": max(0, len(passed) - 50), "dropped": counts.dropped})
    return table, legs


def _view(merged: Merged, ctx: Context, variant: Variant, keep: int, items: Sequence[Item],
          fixed: Dict[str, Any], memo: Dict[int, Any]) -> Dict[str, Any]:
    """The view with the first `keep` items; `memo` keeps each item's rendering across attempts."""
    comparison = merged.comparison
    repo_url, sha = _repo_url(fixed["run_url"]), fixed["sha"]
    rows, details, broken = [], [], []
    n = 0
    for index in range(min(keep, len(items))):
        kind, item = items[index]
        if kind == "broken":
            if index not in memo:
                memo[index] = _broken(merged, item[0], item[1], variant, ctx)
            broken.append(memo[index])
            continue
        n += 1
        if index not in memo:
            want = variant.details_limit is None or n <= variant.details_limit
            cls = comparison.class_of(item) if comparison else None
            memo[index] = (_finding_row(merged, item, ctx, cls, _site_md(item.site, ctx, repo_url, sha, short=True)),
                           _details(n, item, variant, ctx, _site_md(item.site, ctx, repo_url, sha), repo_url, sha)
                           if want else None)
        row, detail = memo[index]
        rows.append(row)
        if detail is not None:
            details.append(detail)
    checks = dict.fromkeys(items[i][1].check_type for i in range(min(keep, len(items))) if items[i][0] == "finding")
    if comparison is not None:
        checks.update(dict.fromkeys(f.check_type for f in comparison.new + comparison.worse + comparison.fixed))
    return fixed | {
        "links": [{"label": c, "url": describe.advice_url(c)} for c in checks],
        "findings": rows, "details": details, "broken": broken,
        "details_more": len(rows) - len(details),
        "omitted": fixed["total_findings"] - len(rows),
        "omitted_broken": fixed["total_broken"] - len(broken),
    }


def _fixed_view(merged: Merged, ctx: Context, variant: Variant, items: Sequence[Item]) -> Dict[str, Any]:
    """The parts of the view that do not depend on how many items fit."""
    found = merged.findings
    verdict = merged.conclude(ctx.fail_on)
    total = verdict.counts
    table, legs = _legs_view(merged, ctx, merged.counts_by_major)
    n_broken = sum(1 for kind, _ in items if kind == "broken")
    suppressed = [f for f in found if f.key[0]]
    run_url = ctx.run_url if ctx.run_url and _RUN_URL.fullmatch(ctx.run_url) else None
    sha = _full_sha(ctx.head_sha)
    return {
        "total_findings": len(items) - n_broken, "total_broken": n_broken,
        "variant": variant.name,
        "failed": verdict.failed,
        # Dropped ring entries are findings of unknown severity: never call that "all clear".
        "all_clear": not verdict.failed and total.findings == 0 and total.dropped == 0,
        "dropped": total.dropped,
        "reasons": [md_inline(humanise(r), 300) for r in verdict.reasons],
        "fail_on": verdict.fail_on,
        "scope": merged.scope if merged.comparison is not None else None,
        "active": total.findings,
        "headline": _change_headline(merged.comparison, verdict.failed) or _headline(total, len(merged.missing)),
        "change_headline": _change_headline(merged.comparison, verdict.failed),
        "table": table,
        "total": _count_text(total),
        "legs": legs,
        "more_hint": variant.more_hint,
        "run_url": run_url,
        "sha": sha,
        "head_sha": (sha or "")[:12] or None,
        "versions": ", ".join(md_inline(leg.version, 30) for leg in merged.legs if leg.results is not None),
        "comparison": _comparison_view(merged, ctx, _repo_url(run_url), sha) if merged.comparison else None,
        "notices": [md_inline(humanise(n), 300) for n in ctx.notices],
        "suppressed": [{"text": md_inline(describe.headline(f, ctx.workspace), 200),
                        "reason": md_inline(f.suppressed_by, 200)} for f in suppressed[:20]],
        "suppressed_more": max(0, len(suppressed) - 20),
    }


def _headline(total: Any, missing: int) -> str:
    by = ", ".join(f"{total.by_severity[s]} {s}" for s in reversed(SEVERITIES) if total.by_severity[s])
    parts = []
    if total.findings:
        parts.append(plural(total.findings, "finding") + f" ({by})")
    if total.broken:
        parts.append(plural(total.broken, "failed workload"))
    if missing:
        parts.append(plural(missing, "missing leg"))
    return ", ".join(parts) or "failed"


def _change_headline(c: Optional[Comparison], failed: bool) -> Optional[str]:
    """With a base: the headline says what this change did ("this change adds 1 finding (1 ERROR)")."""
    if c is None:
        return None
    parts = []
    if c.new:
        by = _by_severity(c.new)
        parts.append(f"adds {plural(len(c.new), 'finding')} ({by})")
    if c.worse:
        parts.append(f"makes {plural(len(c.worse), 'finding')} worse")
    if c.broken_new:
        parts.append(f"breaks {plural(len(c.broken_new), 'workload')}")
    if parts:
        return "this change " + ", ".join(parts)
    if failed:
        return None  # it fails on existing findings (fail-on-scope all): say what fails, as without a base
    existing = len(c.unchanged) + len(c.not_compared)
    notes = [f"{plural(existing, 'existing finding')}" if existing else "",
             f"{plural(len(c.fixed), 'finding')} fixed" if c.fixed else ""]
    notes = [n for n in notes if n]
    return "nothing new in this change" + (f" ({', '.join(notes)})" if notes else "")


def _by_severity(found: Sequence[Finding]) -> str:
    return ", ".join(f"{n} {s}" for s in reversed(SEVERITIES) if (n := sum(1 for f in found if f.severity == s)))


def _full_sha(sha: Optional[str]) -> Optional[str]:
    return sha if sha and re.fullmatch(r"[0-9a-f]{40}", sha) else None


def _change_bullet(merged: Merged, f: Finding, ctx: Context, repo_url: Optional[str], sha: Optional[str],
                   why: Optional[str] = None) -> str:
    """One bullet of what the change did: mark, severity, check, context, rate, versions, and the allocating
    `function() at file.c:line` linked to that line at `sha`."""
    rate = describe.amount(f)
    text = (f"{_mark(merged, f, ctx.fail_on)} {f.severity} [{f.check_type}] in {md_inline(f.context, 60)}"
            + (f", {md_inline(rate, 40)}" if rate and rate != "-" else "")
            + f" on PostgreSQL {describe.majors_text(f.majors)}")
    if f.site:
        text += f": {_site_md(f.site, ctx, repo_url, sha)}"
    if why:
        text += f" ({md_inline(why, 120)})"
    return text


def _comparison_view(merged: Merged, ctx: Context, repo_url: Optional[str], sha: Optional[str]) -> Dict[str, Any]:
    c = merged.comparison
    assert c is not None
    base_sha = _full_sha(c.base_sha)
    return {
        "label": md_inline(c.label, 120) if c.label else None,
        "majors": ", ".join(str(m) for m in c.compared_majors) or "none",
        "new": len(c.new), "fixed": len(c.fixed), "worse": len(c.worse), "unchanged": len(c.unchanged),
        "not_compared": len(c.not_compared), "broken": len(c.broken_new),
        "unstable": c.unstable,
        "new_list": [_change_bullet(merged, f, ctx, repo_url, sha) for f in c.new[:10]],
        "worse_list": [_change_bullet(merged, f, ctx, repo_url, sha, c.why_worse.get(f.key)) for f in c.worse[:10]],
        # what was fixed is on the base's lines: linked there when the base commit is known
        "fixed_list": [_change_bullet(merged, f, ctx, repo_url, base_sha)
                       for f in c.fixed[:10]],
        "broken_list": [f"{md_inline(name, 80)} on PostgreSQL {major}" for major, name in sorted(c.broken_new)[:10]],
        "more": max(0, len(c.new) - 10) + max(0, len(c.worse) - 10) + max(0, len(c.fixed) - 10),
        "margin": f"{c.margin:.0%}",
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


@bulk
def render(merged: Merged, ctx: Context, variant: Variant = SUMMARY) -> str:
    """Render the report, dropping the least important items until it fits variant.budget."""
    template = _env().get_template("report.md.j2")
    items = _items(merged)
    fixed = _fixed_view(merged, ctx, variant, items)
    memo: Dict[int, Any] = {}

    def attempt(keep: int) -> str:
        return template.render(**_view(merged, ctx, variant, keep, items, fixed, memo))

    n = len(items)
    texts: Dict[int, str] = {}

    def size(keep: int) -> int:
        texts[keep] = attempt(keep)
        return variant.measure(texts[keep])

    # Find the most items that fit by secant steps on the rendered size (rendering 100,000 findings to cut
    # them down would cost seconds); a few renders of the probable size instead.
    lo, lo_size = 0, size(0)
    if lo_size > variant.budget:  # even the skeleton is too big (pathological leg count): hard cut
        return _hard_cut(texts[0], variant)
    hi: Optional[int] = None
    guess = min(n, 300)
    for _ in range(12):
        if guess <= lo or (hi is not None and guess >= hi):
            break
        s = size(guess)
        if s <= variant.budget:
            prev, prev_size = lo, lo_size
            lo, lo_size = guess, s
            if lo == n:
                break
            per_item = max(1.0, (s - prev_size) / max(1, guess - prev))
            guess = lo + max(1, int((variant.budget * 0.98 - s) / per_item))
            if variant.budget - s < variant.budget * 0.03:
                break  # within 3% of the budget: good enough
        else:
            hi = guess
            per_item = max(1.0, (s - lo_size) / max(1, guess - lo))
            guess = lo + max(0, int((variant.budget * 0.98 - lo_size) / per_item))
        guess = min(guess, n if hi is None else hi - 1)
    return texts[lo]


def _hard_cut(text: str, variant: Variant) -> str:
    note = f"\n\n… report cut to fit the size limit; {variant.more_hint}.\n"
    limit = variant.budget - variant.measure(note) - 16
    while variant.measure(text) > limit:
        text = text[: max(0, len(text) - max(1, (variant.measure(text) - limit)))]
    return text + note


__all__ = ["COMMENT", "SUMMARY", "Context", "Variant", "md_inline", "md_pre", "render"]
