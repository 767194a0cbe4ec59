"""What a change made worse: this run's findings against a base run's, finding by finding. Pure functions.

Findings are matched on each PostgreSQL major both sides ran, by finding key (reporter/findings.py), in three
passes so that an edit elsewhere in a file does not turn an old bug into a "new" one: the exact key, then the key
with the allocation site's line left out (lines above it moved), then the key without the site (the site was
not resolved, and its address moved). Each base finding is matched at most once per major.

Classes (vocab.COMPARISON_CLASSES):
- new: on some compared major it has no match in the base;
- worse: matched everywhere, but on some major its severity is higher, or its rate (same unit) is up by more
  than NOISE_MARGIN;
- unchanged: matched, and not worse;
- fixed: a base finding with no match in this run on some compared major;
- not compared: seen only on majors the base did not run (counted as in scope: it cannot be shown to be old).

NOISE_MARGIN: the same build run three times on PostgreSQL 15 and 18 (the buggy example with ten bugs switched
on, five workloads, and its regression suite) gave identical rates, to the byte, on every one of 89 violation
rows and 21 findings (docs/compare.md); rates count the bytes of the extension's own allocations, not timings.
The 5% margin leaves room for what three runs cannot show: a rate averaged over calls moves a little when a
one-time allocation (a cache) is spread over a different number of calls.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Dict, List, Optional, Sequence, Set, Tuple

from reporter import findings as fnd
from reporter.findings import Finding, FindingKey
from reporter.text import format_rate
from reporter.vocab import BROKEN_STATUSES, COMPARISON_CLASSES, SEVERITY_RANK

NOISE_MARGIN = 0.05

NEW, WORSE, UNCHANGED, FIXED, NOT_COMPARED = COMPARISON_CLASSES


@dataclass
class Comparison:
    new: List[Finding]
    worse: List[Finding]
    unchanged: List[Finding]
    fixed: List[Finding]  # the base's findings
    unstable: bool  # the base is an earlier attempt of the same run: 'fixed' findings vanished on retry
    compared_majors: List[int]
    not_compared: List[Finding] = field(default_factory=list)
    why_worse: Dict[FindingKey, str] = field(default_factory=dict)  # "rate 2.0 KiB/call -> 4.1 KiB/call"
    # (major, workload) broken now and not in the base (or on a major the base did not run)
    broken_new: Set[Tuple[int, str]] = field(default_factory=set)
    label: Optional[str] = None  # what the base is ("main at 0123abcd"), for the report
    base_sha: Optional[str] = None  # the base commit, when one revision was compared with (links to its lines)
    margin: float = NOISE_MARGIN

    @property
    def in_scope(self) -> List[Finding]:
        """What fail-on-scope `new` judges: new, worse, and findings no base could be compared with."""
        return self.new + self.worse + self.not_compared

    def class_of(self, f: Finding) -> str:
        for cls, group in ((NEW, self.new), (WORSE, self.worse), (NOT_COMPARED, self.not_compared)):
            if any(g is f for g in group):
                return cls
        return UNCHANGED

    @property
    def changed(self) -> bool:
        return bool(self.new or self.worse or self.fixed or self.broken_new)


def _loose(key: FindingKey, level: int) -> Tuple[Any, ...]:
    """The key with less of its site: 0 exact, 1 without the line, 2 without the site."""
    if level == 0:
        return key
    site = key[4]
    if level == 1 and site is not None and site[0] == "src":
        return (*key[:4], site[:3])
    return (*key[:4], None) if level == 2 else (*key[:4], site)


def _match(now: Sequence[Finding], base: Sequence[Finding]) -> Dict[int, Finding]:
    """id(now finding) -> its base finding, on one major."""
    matched: Dict[int, Finding] = {}
    taken: Set[int] = set()
    for level in (0, 1, 2):
        index: Dict[Tuple[Any, ...], List[Finding]] = {}
        for b in base:
            if id(b) not in taken:
                index.setdefault(_loose(b.key, level), []).append(b)
        for f in now:
            if id(f) in matched:
                continue
            candidates = index.get(_loose(f.key, level))
            if candidates:
                b = candidates.pop(0)
                matched[id(f)] = b
                taken.add(id(b))
    return matched


def rate_on(f: Finding, major: int) -> Optional[Dict[str, Any]]:
    """The finding's rate on one major: the worst primary row there that has one."""
    rows = [e.row for e in f.primary if e.major == major and e.row.get("rate")]
    if not rows:
        return None
    return max(rows, key=lambda v: (SEVERITY_RANK[v["severity"]], fnd.magnitude(v)))["rate"]


def worse_reason(now: Finding, base: Finding, major: int, margin: float = NOISE_MARGIN) -> Optional[str]:
    """Why `now` is worse than `base` on `major`, or None."""
    s_now, s_base = now.severity_on(major), base.severity_on(major)
    if s_now and s_base and SEVERITY_RANK[s_now] > SEVERITY_RANK[s_base]:
        return f"{s_base} -> {s_now} on PostgreSQL {major}"
    r_now, r_base = rate_on(now, major), rate_on(base, major)
    if r_now and r_base and r_now.get("unit") == r_base.get("unit") and float(r_base["bytes"]) > 0:
        if float(r_now["bytes"]) > float(r_base["bytes"]) * (1 + margin):
            return f"rate {format_rate(r_base)} -> {format_rate(r_now)} on PostgreSQL {major}"
    return None


def _broken(legs: Sequence[Dict[str, Any]]) -> Set[Tuple[int, str]]:
    return {(int(res["postgresql"]["major"]), w["name"]) for res in legs for w in res["workloads"]
            if w["status"] in BROKEN_STATUSES}


def _same_run(cur: Dict[str, Any], base: Dict[str, Any]) -> bool:
    a, b = cur.get("github") or {}, base.get("github") or {}
    return bool(a.get("run_id")) and a.get("run_id") == b.get("run_id") and a.get("run_attempt") != b.get(
        "run_attempt"
    )


def compare(current: Sequence[Dict[str, Any]], baseline: Sequence[Dict[str, Any]],
            now: Optional[Sequence[Finding]] = None, margin: float = NOISE_MARGIN,
            label: Optional[str] = None) -> Comparison:
    """Classify this run's unsuppressed findings against the base's, on the majors both ran."""
    base_by_major = {int(b["postgresql"]["major"]): b for b in baseline}
    majors = sorted(int(c["postgresql"]["major"]) for c in current if int(c["postgresql"]["major"]) in base_by_major)
    unstable = any(_same_run(c, base_by_major[int(c["postgresql"]["major"])]) for c in current
                   if int(c["postgresql"]["major"]) in base_by_major)
    now_all = fnd.active(fnd.build(current) if now is None else now)
    before_all = fnd.active(fnd.build([base_by_major[m] for m in majors]))
    matches: Dict[int, Dict[int, Finding]] = {}
    base_matched: Dict[int, Set[int]] = {}
    for m in majors:
        matches[m] = _match([f for f in now_all if m in f.majors], [b for b in before_all if m in b.majors])
        base_matched[m] = {id(b) for b in matches[m].values()}
    out = Comparison([], [], [], [], unstable, majors, label=label, margin=margin)
    for f in now_all:
        on = [m for m in f.majors if m in matches]
        if not on:
            out.not_compared.append(f)
            continue
        if any(id(f) not in matches[m] for m in on):
            out.new.append(f)
            continue
        why = next((r for m in on if (r := worse_reason(f, matches[m][id(f)], m, margin))), None)
        if why:
            out.worse.append(f)
            out.why_worse[f.key] = why
        else:
            out.unchanged.append(f)
    out.fixed = [b for b in before_all if any(id(b) not in base_matched[m] for m in b.majors if m in base_matched)]
    base_broken = _broken([base_by_major[m] for m in majors])
    out.broken_new = {w for w in _broken(current) if w[0] not in base_by_major or w not in base_broken}
    return out
