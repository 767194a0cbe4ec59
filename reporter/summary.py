"""Pure aggregation over results dicts and their findings: counts and the conclusion (reporter/compare.py has
the comparison with a base run; with fail-on-scope `new` the conclusion judges only what it says is new).

Counts by severity count findings (reporter/findings.py), not rows; `violations` counts the rows behind them.
Suppressed violations (``suppressed_by`` set) are counted apart and never count against fail-on.
Nothing here reads files, talks to PostgreSQL or formats output.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from typing import Any, Dict, Iterable, List, Optional, Sequence, Set, Tuple

from reporter import findings as fnd
from reporter.findings import Finding
from reporter.results import current_violations
from reporter.vocab import BROKEN_STATUSES, GATES, SEVERITIES, SEVERITY_RANK, reaches

SUCCESS = "success"
FAILURE = "failure"


def is_active(violation: Dict[str, Any]) -> bool:
    """A violation counts unless a suppression matched it."""
    return not violation.get("suppressed_by")


def worst_of(severities: Iterable[Optional[str]]) -> Optional[str]:
    best: Optional[str] = None
    for sev in severities:
        if sev is not None and (best is None or SEVERITY_RANK[sev] > SEVERITY_RANK[best]):
            best = sev
    return best


@dataclass
class Counts:
    """Counts of one leg or of everything."""

    by_severity: Dict[str, int] = field(default_factory=lambda: {s: 0 for s in SEVERITIES})  # findings
    violations: int = 0  # unsuppressed rows behind them
    suppressed: int = 0  # suppressed rows
    dropped: int = 0  # lost in the ring buffer: the report must say the counts are a lower bound
    workloads: int = 0
    broken: int = 0  # workloads that errored, timed out, crashed or failed their regression test

    @property
    def findings(self) -> int:
        return sum(self.by_severity.values())

    @property
    def worst(self) -> Optional[str]:
        return worst_of(s for s in SEVERITIES if self.by_severity[s])

    def add_rows(self, results: Dict[str, Any]) -> None:
        dropped = 0
        for w in results["workloads"]:
            self.workloads += 1
            self.broken += w["status"] in BROKEN_STATUSES
            dropped += int(w.get("dropped") or 0)
            listed_suppressed = 0
            for v in current_violations(w):
                if is_active(v):
                    self.violations += 1
                else:
                    listed_suppressed += 1
            # The runner may already have removed suppressed entries and only counted them in `suppressed`.
            self.suppressed += max(listed_suppressed, int(w.get("suppressed") or 0))
        self.dropped += max(dropped, int((results.get("ring") or {}).get("dropped") or 0))


def count(legs: Sequence[Dict[str, Any]], found: Sequence[Finding], major: Optional[int] = None) -> Counts:
    """Counts over `legs`; with `major`, the findings are judged by what they showed on that major only."""
    c = Counts()
    for res in legs:
        c.add_rows(res)
    for f in found:
        if f.key[0]:
            continue
        sev = f.severity if major is None else f.severity_on(major)
        if sev is not None:
            c.by_severity[sev] += 1
    return c


def count_by_major(legs: Sequence[Dict[str, Any]], found: Sequence[Finding]) -> Dict[int, Counts]:
    """count(...) of every leg on its own major, in one pass over the findings."""
    out: Dict[int, Counts] = {}
    for res in legs:
        c = out[int(res["postgresql"]["major"])] = Counts()
        c.add_rows(res)
    for f in found:
        if f.key[0]:
            continue
        for major, sev in f.severities_by_major().items():
            if major in out:
                out[major].by_severity[sev] += 1
    return out


def workload_counts(workload: Dict[str, Any]) -> Tuple[int, int]:
    """(unsuppressed rows, suppressed rows) of one workload."""
    rows = current_violations(workload)
    active = sum(1 for v in rows if is_active(v))
    return active, max(len(rows) - active, int(workload.get("suppressed") or 0))


def total_counts(by_major: Dict[int, Counts], found: Sequence[Finding]) -> Counts:
    """The counts of the whole matrix from count_by_major's, without reading the rows again."""
    c = Counts()
    for m in by_major.values():
        c.violations += m.violations
        c.suppressed += m.suppressed
        c.dropped += m.dropped
        c.workloads += m.workloads
        c.broken += m.broken
    for f in found:
        if not f.key[0]:
            c.by_severity[f.severity] += 1
    return c


@dataclass
class Conclusion:
    conclusion: str  # SUCCESS or FAILURE
    reasons: List[str]  # plain-text, one per cause; empty on success
    counts: Counts
    fail_on: str

    @property
    def failed(self) -> bool:
        return self.conclusion == FAILURE


def conclude(legs: Sequence[Optional[Dict[str, Any]]], fail_on: str,
             found: Optional[Sequence[Finding]] = None) -> Conclusion:
    """Judge the whole report. A None leg is a matrix leg whose results are missing.

    Fails when the worst unsuppressed finding reaches fail_on, when a workload errored/timed out/crashed
    (unless fail_on is never), when a leg is missing (unless never), and always when no workload ran.
    """
    present = [leg for leg in legs if leg is not None]
    if found is None:
        found = fnd.build(present)
    incomplete = [incomplete_note(leg) for leg in present if leg.get("complete") is False]
    return judge(count(present, found), len(legs) - len(present), fail_on, incomplete)


@dataclass(frozen=True)
class Scope:
    """fail-on-scope `new` after a comparison with a base run: only these findings and broken workloads are
    judged (everything is still counted and shown)."""

    findings: Sequence[Finding]  # new, worse, or not comparable
    broken: Set[Tuple[int, str]]  # (major, workload) broken here and not in the base
    ids: Set[int] = field(default_factory=set, compare=False)  # id() of each finding, filled in below

    def __post_init__(self) -> None:
        self.ids.update(id(f) for f in self.findings)

    def holds(self, f: Finding) -> bool:
        return id(f) in self.ids

    def counts(self, total: Counts, major: Optional[int] = None) -> Counts:
        """`total` with the severities and broken workloads of what is in scope (on one major if given)."""
        c = replace(total, by_severity={s: 0 for s in SEVERITIES})
        for f in self.findings:
            sev = f.severity if major is None else f.severity_on(major)
            if sev is not None and not f.key[0]:
                c.by_severity[sev] += 1
        c.broken = sum(1 for m, _ in self.broken if major is None or m == major)
        return c


# What the gate says about one finding; every renderer (JUnit, annotations, Markdown, SARIF, JSON, terminal) asks
# `gate()` and shows the same answer.
FAILS, BELOW, NOT_JUDGED, SUPPRESSED = GATES


def gate(f: Finding, fail_on: str, scope: Optional[Scope] = None, major: Optional[int] = None) -> str:
    """How fail-on (and, with a base, fail-on-scope) judges `f`, across the report or on one major."""
    if f.key[0]:
        return SUPPRESSED
    if scope is not None and not scope.holds(f):
        return NOT_JUDGED
    sev = f.severity if major is None else f.severity_on(major)
    return FAILS if reaches(sev, fail_on) else BELOW


def broken_fails(major: int, workload: str, fail_on: str, scope: Optional[Scope] = None) -> bool:
    """Whether a broken workload (error, timeout, crash, failed test) fails the job: unless fail-on is never,
    and with fail-on-scope new only when it did not break on the base too."""
    return fail_on != "never" and (scope is None or (major, workload) in scope.broken)


def judge(total: Counts, missing: int, fail_on: str, incomplete: Sequence[str] = (),
          scope: Optional[Scope] = None, major: Optional[int] = None) -> Conclusion:
    """The conclusion from counts (see conclude); also used for one leg's counts on its own major.
    `incomplete`: one note per run that did not finish. With `scope`, fail-on judges only what it holds
    (on `major` when given); the conclusion's counts stay `total`."""
    reasons: List[str] = []
    judged = scope.counts(total, major) if scope is not None else total
    what = "new or worse finding(s)" if scope is not None else "finding(s)"
    worst = judged.worst
    if reaches(worst, fail_on):
        n = sum(judged.by_severity[s] for s in SEVERITIES if reaches(s, fail_on))
        reasons.append(f"{n} {what} at or above {fail_on}; worst is {worst}")
    if fail_on != "never" and judged.broken:
        since = " (and not in the base)" if scope is not None else ""
        reasons.append(f"{judged.broken} workload(s) errored, timed out, crashed or failed their regression "
                       f"test{since}")
    if fail_on != "never" and missing:
        reasons.append(f"{missing} matrix leg(s) produced no results")
    if fail_on != "never":
        reasons.extend(incomplete)
    if total.workloads == 0:
        reasons.append("no workload ran")
    return Conclusion(FAILURE if reasons else SUCCESS, reasons, total, fail_on)


def incomplete_note(results: Dict[str, Any]) -> str:
    """One line for a run that did not finish (results.json saved mid-run or on SIGINT/SIGTERM)."""
    how = f"interrupted by {results['interrupted']}" if results.get("interrupted") else "did not finish"
    return (f"the run on PostgreSQL {results['postgresql']['version']} {how}: only {len(results['workloads'])} "
            "workload(s) have results")
