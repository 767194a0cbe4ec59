"""Pure aggregation over results dicts: counts by severity, worst severity, conclusion, baseline comparison.

Suppressed violations (``suppressed_by`` set) are counted apart and never count against fail-on.
Nothing here reads files, talks to PostgreSQL or formats output.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Dict, Iterable, Iterator, List, Sequence, Tuple

from reporter.results import SEVERITIES

FAIL_ON_LEVELS = ("never", "info", "warning", "error")
SEVERITY_RANK = {"INFO": 1, "WARNING": 2, "ERROR": 3}
FAIL_ON_RANK = {"never": None, "info": 1, "warning": 2, "error": 3}
# Statuses that mean the workload did not finish: JUnit errors, and a failure unless fail-on is never.
BROKEN_STATUSES = ("error", "timeout", "crashed")

SUCCESS = "success"
FAILURE = "failure"


def is_active(violation: Dict[str, Any]) -> bool:
    """A violation counts unless a suppression matched it."""
    return not violation.get("suppressed_by")


def reaches(severity: str | None, fail_on: str) -> bool:
    """True when a violation of this severity fails the run under fail_on."""
    threshold = FAIL_ON_RANK[fail_on]
    return severity is not None and threshold is not None and SEVERITY_RANK[severity] >= threshold


def worst_of(severities: Iterable[str | None]) -> str | None:
    best: str | None = None
    for sev in severities:
        if sev is not None and (best is None or SEVERITY_RANK[sev] > SEVERITY_RANK[best]):
            best = sev
    return best


@dataclass
class Counts:
    """Violation counts of one workload, one leg or everything."""

    by_severity: Dict[str, int] = field(default_factory=lambda: {s: 0 for s in SEVERITIES})
    suppressed: int = 0
    dropped: int = 0  # lost in the ring buffer: the report must say the counts are a lower bound
    workloads: int = 0
    broken: int = 0  # workloads that errored, timed out or crashed

    @property
    def violations(self) -> int:
        return sum(self.by_severity.values())

    @property
    def worst(self) -> str | None:
        return worst_of(s for s in SEVERITIES if self.by_severity[s])

    def add(self, other: Counts) -> None:
        for sev in SEVERITIES:
            self.by_severity[sev] += other.by_severity[sev]
        self.suppressed += other.suppressed
        self.dropped += other.dropped
        self.workloads += other.workloads
        self.broken += other.broken


def workload_counts(workload: Dict[str, Any]) -> Counts:
    counts = Counts(workloads=1, dropped=int(workload.get("dropped") or 0))
    if workload["status"] in BROKEN_STATUSES:
        counts.broken = 1
    # The runner may already have removed suppressed entries and only counted them in `suppressed`.
    listed_suppressed = 0
    for v in workload["violations"]:
        if is_active(v):
            counts.by_severity[v["severity"]] += 1
        else:
            listed_suppressed += 1
    counts.suppressed = max(listed_suppressed, int(workload.get("suppressed") or 0))
    return counts


def results_counts(results: Dict[str, Any]) -> Counts:
    total = Counts()
    for w in results["workloads"]:
        total.add(workload_counts(w))
    total.dropped = max(total.dropped, int(results.get("ring", {}).get("dropped") or 0))
    return total


def workload_failed(workload: Dict[str, Any], fail_on: str) -> bool:
    """A workload fails on an active violation at or above fail_on (errors/crashes are judged apart)."""
    return reaches(workload_counts(workload).worst, fail_on)


@dataclass
class Conclusion:
    conclusion: str  # SUCCESS or FAILURE
    reasons: List[str]  # plain-text, one per cause; empty on success
    counts: Counts
    fail_on: str

    @property
    def failed(self) -> bool:
        return self.conclusion == FAILURE


def conclude(legs: Sequence[Dict[str, Any] | None], fail_on: str) -> Conclusion:
    """Judge the whole report. A None leg is a matrix leg whose results are missing.

    Fails when the worst active violation reaches fail_on, when a workload errored/timed out/crashed
    (unless fail_on is never), when a leg is missing (unless never), and always when no workload ran.
    """
    total = Counts()
    missing = 0
    incomplete: List[str] = []
    for leg in legs:
        if leg is None:
            missing += 1
        else:
            total.add(results_counts(leg))
            if leg.get("complete") is False:
                incomplete.append(incomplete_note(leg))
    reasons: List[str] = []
    worst = total.worst
    if reaches(worst, fail_on):
        n = sum(total.by_severity[s] for s in SEVERITIES if reaches(s, fail_on))
        reasons.append(f"{n} violation(s) at or above {fail_on}; worst is {worst}")
    if fail_on != "never" and total.broken:
        reasons.append(f"{total.broken} workload(s) errored, timed out or crashed")
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


# ---- baseline comparison (what THIS change made worse) -------------------------------------------------

ViolationKey = Tuple[int, str, str, str, str, str]


def violation_key(major: int, workload: str, v: Dict[str, Any]) -> ViolationKey:
    """Identity of a finding across runs: severity and byte counts may move, the place may not."""
    where = v.get("context_path") or v.get("context") or ""
    return (major, workload, v["check_type"], where, v.get("source_lib") or "", v.get("phase") or "")


def active_keys(results: Dict[str, Any]) -> Dict[ViolationKey, Dict[str, Any]]:
    out: Dict[ViolationKey, Dict[str, Any]] = {}
    major = int(results["postgresql"]["major"])
    for w in results["workloads"]:
        for v in w["violations"]:
            if is_active(v):
                key = violation_key(major, w["name"], v)
                prev = out.get(key)
                if prev is None or SEVERITY_RANK[v["severity"]] > SEVERITY_RANK[prev["severity"]]:
                    out[key] = v
    return out


@dataclass
class Comparison:
    new: List[ViolationKey]
    fixed: List[ViolationKey]
    unchanged: int
    worse: List[ViolationKey]  # same place, higher severity than before
    unstable: bool  # the baseline is an earlier attempt of the same run: 'fixed' findings vanished on retry
    compared_majors: List[int]


def compare(current: Sequence[Dict[str, Any]], baseline: Sequence[Dict[str, Any]]) -> Comparison:
    """Compare per PostgreSQL major present on both sides."""
    base_by_major = {int(b["postgresql"]["major"]): b for b in baseline}
    new: List[ViolationKey] = []
    fixed: List[ViolationKey] = []
    worse: List[ViolationKey] = []
    unchanged = 0
    majors: List[int] = []
    unstable = False
    for cur in current:
        major = int(cur["postgresql"]["major"])
        base = base_by_major.get(major)
        if base is None:
            continue
        majors.append(major)
        if _same_run(cur, base):
            unstable = True
        now, before = active_keys(cur), active_keys(base)
        for key, v in now.items():
            if key not in before:
                new.append(key)
            else:
                unchanged += 1
                if SEVERITY_RANK[v["severity"]] > SEVERITY_RANK[before[key]["severity"]]:
                    worse.append(key)
        fixed.extend(k for k in before if k not in now)
    return Comparison(sorted(new), sorted(fixed), unchanged, sorted(worse), unstable, sorted(majors))


def _same_run(cur: Dict[str, Any], base: Dict[str, Any]) -> bool:
    a, b = cur.get("github") or {}, base.get("github") or {}
    return bool(a.get("run_id")) and a.get("run_id") == b.get("run_id") and a.get("run_attempt") != b.get(
        "run_attempt"
    )


def iter_active(results: Dict[str, Any]) -> Iterator[Tuple[Dict[str, Any], Dict[str, Any]]]:
    """(workload, violation) for every active violation, in file order."""
    for w in results["workloads"]:
        for v in w["violations"]:
            if is_active(v):
                yield w, v


def magnitude(v: Dict[str, Any]) -> float:
    """Bytes a finding stands for: the measured rate over its iterations, else the delta."""
    rate = v.get("bytes_per_iteration")
    if rate is not None:
        return float(rate) * max(1, int(v.get("iterations") or 1))
    return abs(float(v.get("used_delta") or 0))


def sort_violations(violations: Sequence[Dict[str, Any]]) -> List[Dict[str, Any]]:
    """Worst first: active before suppressed, then severity, then bytes; stable for equal keys."""
    return sorted(
        violations,
        key=lambda v: (0 if is_active(v) else 1, -SEVERITY_RANK[v["severity"]], -magnitude(v)),
    )
