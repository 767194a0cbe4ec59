"""Plain-text report for a terminal (`check`, and `report`'s log): findings worst first, then the workloads.

Colour on a terminal that wants it (a TTY, not TERM=dumb), or wherever FORCE_COLOR or CLICOLOR_FORCE asks for it
(GitHub Actions' logs show colours), never with NO_COLOR; every line is fitted to the terminal's width, and a line
that names a file:line keeps it whole while the context path or the function name gives way. Text from the
database or a results file is cleaned (text.clean) before it is printed.
"""

from __future__ import annotations

import shutil
from dataclasses import dataclass
from typing import IO, Any, Dict, List, Mapping, Optional, Sequence, Tuple

from reporter import describe
from reporter.compare import NEW, WORSE, Comparison
from reporter.findings import Finding
from reporter.merge import Merged
from reporter.perf import bulk
from reporter.summary import workload_counts
from reporter.text import clean, display_width, fit, fit_left, plural
from reporter.vocab import BROKEN_STATUSES, SEVERITIES, strictest_fail_on

MAX_FINDINGS = 30
MIN_WIDTH = 40
MIN_SQUEEZE = 12  # columns a cut context path or function name must keep to be worth showing
DEFAULT_WIDTH = 120

_SGR = {
    "ERROR": "1;31", "WARNING": "33", "INFO": "36", "fail": "1;31", "pass": "1;32", "dim": "2", "bold": "1",
}


@dataclass(frozen=True)
class Style:
    width: int = DEFAULT_WIDTH
    color: bool = False


def _forced(environ: Mapping[str, str]) -> bool:
    """FORCE_COLOR (https://force-color.org) or CLICOLOR_FORCE set to anything but '' or '0': colour even without
    a terminal, as in GitHub Actions' logs, which show ANSI colours."""
    return any(environ.get(name, "") not in ("", "0") for name in ("FORCE_COLOR", "CLICOLOR_FORCE"))


def style_for(stream: IO[str], environ: Mapping[str, str]) -> Style:
    """Colour on a TTY, or anywhere with FORCE_COLOR or CLICOLOR_FORCE; never with NO_COLOR set
    (https://no-color.org), and on a TTY not with TERM=dumb. The width: COLUMNS (it wins, as everywhere), else
    the terminal's, else DEFAULT_WIDTH."""
    tty = bool(getattr(stream, "isatty", lambda: False)())
    if environ.get("NO_COLOR"):
        color = False
    else:
        color = _forced(environ) or (tty and environ.get("TERM") != "dumb")
    columns = DEFAULT_WIDTH
    if environ.get("COLUMNS", "").isdigit():
        columns = int(environ["COLUMNS"])
    elif tty:
        columns = shutil.get_terminal_size((DEFAULT_WIDTH, 24)).columns
    return Style(max(MIN_WIDTH, columns), color)


Segment = Tuple[str, Optional[str]]  # (clean text, role for colour)


class _Lines:
    def __init__(self, style: Style) -> None:
        self.style = style
        self.out: List[str] = []

    def add_fitted(self, head: Sequence[Segment], squeeze: Segment, tail: Segment) -> None:
        """head, then `squeeze` cut from the left to what the width leaves, then `tail` whole: a line whose tail
        is a file:line keeps it, and its context path or function gives way (left out when fewer than
        MIN_SQUEEZE columns are left, and then the head is cut too)."""
        width = self.style.width
        fixed = sum(display_width(t) for t, _ in head) + display_width(tail[0])
        segments: List[Segment] = list(head)
        if width - fixed >= MIN_SQUEEZE:
            segments.append((fit_left(squeeze[0], width - fixed), squeeze[1]))
        elif fixed > width:
            text = fit("".join(t for t, _ in head), max(1, width - display_width(tail[0])))
            segments = [(text, head[0][1] if head else None)]
        segments.append(tail)
        parts: List[str] = []
        for text, role in segments:
            if self.style.color and role and text:
                text = f"\x1b[{_SGR[role]}m{text}\x1b[0m"
            parts.append(text)
        self.out.append("".join(parts).rstrip())

    def add(self, *segments: Segment, whole: bool = False) -> None:
        """One line, cut to the width unless `whole` (a URL cut short is useless)."""
        room = 1 << 30 if whole else self.style.width
        parts: List[str] = []
        for text, role in segments:
            if room <= 0:
                break
            piece = fit(text, room)
            room -= display_width(piece)
            if self.style.color and role and piece:
                piece = f"\x1b[{_SGR[role]}m{piece}\x1b[0m"
            parts.append(piece)
        self.out.append("".join(parts).rstrip())


def _finding(lines: _Lines, n: int, f: Finding, root: Optional[str], cls: Optional[str] = None) -> None:
    indent = " " * 12
    lives = describe.lifetime_text(f)
    mark = {NEW: "NEW ", WORSE: "WORSE "}.get(cls or "", "")
    lines.add((f"{n:>3} ", None), (mark, "fail"), (f"{f.severity:<8}", f.severity), (f"{f.check_type:<16} ", "bold"),
              (clean(f.context, 50) + "  ", None), (describe.amount(f), None),
              ("" if lives == "-" else f"  {lives}", "dim"))
    lines.add_fitted([(indent, None)], (clean(f.where, 300), "dim"), (f" ({clean(f.source_lib, 60)})", "dim"))
    if f.site:
        entry = f"; entered from {clean(f.entry, 60)}" if f.entry else ""
        _site_line(lines, indent, f.site, root, entry)
    names = ", ".join(clean(w, 40) for w in f.workloads[:3]) + (
        f", +{len(f.workloads) - 3}" if len(f.workloads) > 3 else "")
    lines.add((indent + f"seen {describe.seen_text(f)}: {names}", "dim"))


def _site_line(lines: _Lines, indent: str, site: Dict[str, Any], root: Optional[str], after: str = "") -> None:
    """'allocated by function() at file.c:line': on a narrow terminal what follows goes first, then the
    function gives way, never the file:line."""
    where = describe.site_file(site, root)
    if not (where and site.get("line")):
        lines.add((indent + "allocated by " + describe.site_text(site, root, 200) + after, None))
        return
    loc = clean(f"{where}:{site['line']}", 200)
    func = f"allocated by {clean(site.get('function'), 120)}()" if site.get("function") else "allocated"
    if display_width(indent + func + " at " + loc + after) <= lines.style.width:
        lines.add((indent + func + " at " + loc + after, None))
    else:
        lines.add_fitted([(indent, None)], (func, None), (" at " + loc, None))


def _change_line(lines: _Lines, mark: Segment, f: Finding, root: Optional[str], why: str = "") -> None:
    """One line of what the change did: the context path gives way on a narrow terminal, the file:line not."""
    head = [mark, (f"{f.severity} {f.check_type} ", None)]
    squeeze = f"in {clean(f.where, 300)}: {describe.amount(f)}{why}"
    where = describe.site_file(f.site, root) if f.site else None
    if where and f.site and f.site.get("line"):
        lines.add_fitted(head, (squeeze, None), (f" at {clean(where, 200)}:{f.site['line']}", None))
    else:
        lines.add(*head, (squeeze, None))


def _workloads(lines: _Lines, merged: Merged) -> None:
    lines.add(("Workloads:", "bold"))
    by_place = {}
    for f in merged.findings:
        if f.suppressed_by:
            continue
        for where in {(e.major, e.workload) for e in f.evidence}:
            by_place[where] = by_place.get(where, 0) + 1
    for leg in merged.legs:
        if leg.results is None:
            lines.add(("  MISSING    ", "fail"), (clean(str(leg.source), 200) + ": no results.json", None))
            continue
        res = leg.results
        major = int(res["postgresql"]["major"])
        lines.add((f"  PostgreSQL {clean(res['postgresql']['version'], 30)}", "bold"))
        for w in res["workloads"]:
            status = w["status"]
            role = "fail" if status in BROKEN_STATUSES else "WARNING" if status == "violations" else "pass"
            found = by_place.get((major, w["name"]), 0)
            _, suppressed = workload_counts(w)
            extra = "  " + plural(found, "finding") if found else ""
            extra += f"  ({suppressed} suppressed)" if suppressed else ""
            lines.add((f"    {status.upper():<11}", role), (clean(w["name"], 60), None), (extra, "dim"))
            if w.get("error"):
                sqlstate = w["error"].get("sqlstate")
                suffix = f" (SQLSTATE {clean(sqlstate, 10)})" if sqlstate else ""
                lines.add((f"{'':16}error: {clean(w['error']['message'], 300)}{suffix}", None))
            for note in w.get("notes") or []:
                lines.add((f"{'':16}note: {clean(note, 300)}", "dim"))
            if w.get("diff"):
                changed = [ln for ln in str(w["diff"]).splitlines() if ln[:1] in "+-" and ln[:3] not in ("+++", "---")]
                for diff_line in changed[:8]:
                    lines.add((f"{'':16}diff: {clean(diff_line, 300)}", "dim"))
            if w.get("log_excerpt"):
                for log_line in str(w["log_excerpt"]).splitlines()[:5]:
                    lines.add((f"{'':16}log: {clean(log_line, 300)}", "dim"))


def _comparison(lines: _Lines, c: Comparison, root: Optional[str]) -> None:
    """What this change did, first: new, worse, broken, fixed."""
    against = f" with {clean(c.label, 80)}" if c.label else ""
    majors = ", ".join(str(m) for m in c.compared_majors) or "none"
    lines.add((f"Compared{against} on PostgreSQL {majors}: ", "bold"),
              (f"{len(c.new)} new, {len(c.worse)} worse, {len(c.unchanged)} unchanged, {len(c.fixed)} fixed"
               + (f", {plural(len(c.broken_new), 'workload')} broken" if c.broken_new else ""), None))
    for f in c.new[:10]:
        _change_line(lines, ("  NEW    ", "fail"), f, root)
    for f in c.worse[:10]:
        _change_line(lines, ("  WORSE  ", "fail"), f, root, f" ({clean(c.why_worse.get(f.key), 100)})")
    for major, name in sorted(c.broken_new)[:10]:
        lines.add(("  BROKEN ", "fail"), (f"{clean(name, 80)} on PostgreSQL {major}", None))
    for f in c.fixed[:10]:
        _change_line(lines, ("  FIXED  ", "pass"), f, root)


@bulk
def render_terminal(merged: Merged, fail_on: Optional[str] = None, style: Style = Style(),
                    root: Optional[str] = None) -> str:
    """A readable report; fail_on defaults to the strictest one recorded in the results."""
    present: Sequence[Any] = merged.present
    fail_on = fail_on or strictest_fail_on(r["fail_on"] for r in present)
    lines = _Lines(style)
    tool = clean(present[0]["tool"]["version"], 30) if present else "-"
    versions = ", ".join(clean(r["postgresql"]["version"], 30) for r in present) or "-"
    lines.add((f"pg-ext-memcheck {tool} on PostgreSQL {versions} (fail-on: {fail_on})", "bold"))
    verdict = merged.conclude(fail_on)
    active = [f for f in merged.findings if not f.suppressed_by]
    c = merged.comparison
    if c is not None:
        rank = {NEW: 0, WORSE: 1}
        active.sort(key=lambda f: rank.get(c.class_of(f), 2))
        _comparison(lines, c, root)
    lines.add(("", None))
    for n, f in enumerate(active[:MAX_FINDINGS], 1):
        _finding(lines, n, f, root, c.class_of(f) if c else None)
    if len(active) > MAX_FINDINGS:
        lines.add((f"    … {len(active) - MAX_FINDINGS} more findings in results.json", "dim"))
    if active:
        lines.add(("", None))
        lines.add(("What to do:", "bold"))
        for check in dict.fromkeys(f.check_type for f in active):
            lines.add((f"  {check}: {describe.advice_url(check)}", None), whole=True)
        lines.add(("", None))
    _workloads(lines, merged)
    c = verdict.counts
    by = ", ".join(f"{c.by_severity[s]} {s}" for s in reversed(SEVERITIES))
    tail = (f"{plural(c.findings, 'finding')} ({by}) from {plural(c.violations, 'violation')}; "
            f"{c.suppressed} suppressed; {c.workloads} workloads, {c.broken} broken")
    if c.dropped:
        tail += f"; {c.dropped} dropped by the ring buffer (counts are a lower bound)"
    lines.add(("FAILED: " if verdict.failed else "PASSED: ", "fail" if verdict.failed else "pass"), (tail, None))
    for reason in verdict.reasons:
        lines.add((f"  - {reason}", None))
    return "\n".join(lines.out) + "\n"
