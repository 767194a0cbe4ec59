"""Load one or more results directories (matrix legs) and merge them into one ordered report.

A DIR argument is either a leg (it holds results.json), a results.json file, or a folder of legs (the layout
actions/download-artifact produces: one subfolder per artifact). A leg folder without results.json is a
*missing* leg: reported as such, not fatal. A leg that cannot be read, or a second leg for a major already
present, is *rejected*: reported as missing with its reason, so that the other legs are still reported and
published; the command then exits 2 naming it (merge.rejected).
"""

from __future__ import annotations

import os
import stat
from dataclasses import dataclass, field
from pathlib import Path
from typing import Dict, List, Optional, Sequence, Tuple

from reporter import baseinfo, files, findings, summary
from reporter.compare import Comparison, compare
from reporter.results import Results, ResultsError, load

RESULTS_FILE = "results.json"
# A leg's base run (check --compare, run --base) lives in this subdirectory of the leg: base/results.json, and
# base/base.json saying which revision it was and whether it ran.
BASE_DIR = "base"


class MergeError(Exception):
    """Input the report cannot be built from; the message names the offending path(s)."""


@dataclass
class Leg:
    source: Path  # the directory (or file) the leg came from
    results: Results | None  # None: the leg produced no results.json, or was rejected
    problem: str | None = None  # why it was rejected (unreadable, a duplicate major)

    @property
    def major(self) -> int | None:
        return None if self.results is None else int(self.results["postgresql"]["major"])

    @property
    def version(self) -> str | None:
        return None if self.results is None else str(self.results["postgresql"]["version"])


@dataclass
class Merged:
    legs: List[Leg]  # present legs newest major first, then missing legs by path
    notices: List[str] = field(default_factory=list)  # one line each, for stderr and the report
    comparison: Optional[Comparison] = None  # with the base run, when there was one
    scope: str = "all"  # fail-on-scope: "new" judges only comparison.in_scope (see summary.Scope)
    base_sha: Optional[str] = None  # of a baseline: the one base commit its legs ran, when they agree
    _findings: Optional[List[findings.Finding]] = field(default=None, init=False, repr=False)
    _by_major: Optional[Dict[int, summary.Counts]] = field(default=None, init=False, repr=False)
    _scope: Optional[Tuple[Comparison, summary.Scope]] = field(default=None, init=False, repr=False)

    @property
    def findings(self) -> List[findings.Finding]:
        """Every finding across the present legs, worst first (computed once)."""
        if self._findings is None:
            self._findings = findings.build(self.present)
        return self._findings

    @property
    def counts_by_major(self) -> Dict[int, summary.Counts]:
        """Each present leg's counts, its findings judged on its own major (computed once)."""
        if self._by_major is None:
            self._by_major = summary.count_by_major(self.present, self.findings)
        return self._by_major

    @property
    def judged_scope(self) -> Optional[summary.Scope]:
        """What fail-on judges when only the change's own findings count; None: everything."""
        if self.comparison is None or self.scope != "new":
            return None
        made = self._scope
        if made is None or made[0] is not self.comparison:
            made = self._scope = (self.comparison, summary.Scope(self.comparison.in_scope,
                                                                 self.comparison.broken_new))
        return made[1]

    def gate(self, f: findings.Finding, fail_on: str, major: Optional[int] = None) -> str:
        """summary.gate with this report's scope: the one answer every output gives about `f`."""
        return summary.gate(f, fail_on, self.judged_scope, major)

    def broken_fails(self, major: int, workload: str, fail_on: str) -> bool:
        return summary.broken_fails(major, workload, fail_on, self.judged_scope)

    def conclude(self, fail_on: str) -> summary.Conclusion:
        """summary.conclude over every leg (missing ones included), from the cached counts."""
        total = summary.total_counts(self.counts_by_major, self.findings)
        incomplete = [summary.incomplete_note(res) for res in self.present if res.get("complete") is False]
        return summary.judge(total, len(self.missing), fail_on, incomplete, self.judged_scope)

    @property
    def source_root(self) -> Optional[str]:
        """Where the legs' repository was checked out, as their runs recorded it (the first that did)."""
        return next((res["source_root"] for res in self.present if res.get("source_root")), None)

    @property
    def present(self) -> List[Results]:
        return [leg.results for leg in self.legs if leg.results is not None]

    @property
    def missing(self) -> List[Leg]:
        return [leg for leg in self.legs if leg.results is None]

    @property
    def rejected(self) -> List[Leg]:
        return [leg for leg in self.legs if leg.problem is not None]


def _expand(arg: Path) -> List[Path]:
    """The leg sources one argument stands for: a regular file, or a directory. Anything else (a FIFO, which
    would block the read, a device, a symbolic-link loop) is refused with what it is."""
    try:
        mode = os.stat(arg).st_mode
    except OSError as exc:
        raise MergeError(f"{arg}: {files.os_reason(exc)}") from None
    if not (stat.S_ISREG(mode) or stat.S_ISDIR(mode)):
        raise MergeError(f"{arg}: not a results.json or a directory: {files.kind_of(mode)}")
    if stat.S_ISREG(mode) or os.path.lexists(arg / RESULTS_FILE):
        return [arg]  # a results.json that is not a regular file is rejected when loaded, with its reason
    subdirs = sorted(p for p in arg.iterdir() if p.is_dir() and not p.name.startswith(".") and p.name != BASE_DIR)
    if not subdirs:
        return [arg]  # an empty leg folder: missing leg
    return subdirs


def _load_leg(source: Path) -> Leg:
    target = source if source.is_file() else source / RESULTS_FILE
    if not os.path.lexists(target):
        return Leg(source, None)
    try:
        return Leg(source, load(target))
    except ResultsError as exc:
        return Leg(source, None, str(exc))


def load_legs(args: Sequence[Path]) -> Merged:
    legs: List[Leg] = []
    seen: Dict[Path, Path] = {}
    for arg in args:
        for source in _expand(Path(arg)):
            key = Path(os.path.realpath(source if source.is_file() else source / RESULTS_FILE))
            if key in seen:
                continue  # the same leg named twice (e.g. DIR and DIR/results.json) is not a duplicate major
            seen[key] = source
            legs.append(_load_leg(source))
    by_major: Dict[int, Leg] = {}
    for i, leg in enumerate(legs):
        if leg.major is None:
            continue
        other = by_major.get(leg.major)
        if other is not None:
            legs[i] = Leg(leg.source, None, f"{leg.source}: a second result for PostgreSQL {leg.major} (the "
                                            f"first is {other.source}); skipped: pass each matrix leg once")
            continue
        by_major[leg.major] = leg
    present = sorted((leg for leg in legs if leg.results is not None), key=lambda g: -(g.major or 0))
    missing = sorted((leg for leg in legs if leg.results is None), key=lambda g: str(g.source))
    notices = [leg.problem + "; reported as missing" if leg.problem else
               f"{leg.source}: no {RESULTS_FILE} (the leg produced no results); reported as missing"
               for leg in missing]
    return Merged(present + missing, notices)


def load_baseline(args: Sequence[Path]) -> Merged:
    """Previous results to compare against; missing baseline legs are only noted."""
    merged = load_legs(args)
    merged.notices = [f"baseline {n}" for n in merged.notices]
    return merged


def leg_bases(merged: Merged) -> Tuple[Merged, Optional[str]]:
    """The base runs the legs carry (LEG/base/results.json, made by `run --base`), and what revision they are
    ("main (0123456789ab)"); a leg whose base was skipped or left nothing adds a notice instead."""
    legs: List[Leg] = []
    notices: List[str] = []
    labels: List[str] = []
    shas: List[Optional[str]] = []
    for leg in merged.legs:
        if leg.results is None or not leg.source.is_dir():
            continue
        where = leg.source / BASE_DIR
        info = baseinfo.read(where)
        if info is None:
            continue
        version = leg.results["postgresql"]["version"]
        if info.status != baseinfo.RAN:
            notices.append(f"PostgreSQL {version}: not compared with the base {info.label}: {info.reason}")
            continue
        loaded = _load_leg(where)
        if loaded.results is None:
            notices.append(f"PostgreSQL {version}: the base {info.label} left no {RESULTS_FILE}; not compared")
            continue
        legs.append(loaded)
        labels.append(info.label)
        shas.append(info.sha)
    found = Merged(legs, notices)
    found.base_sha = shas[0] if shas and len(set(shas)) == 1 else None
    return found, ", ".join(dict.fromkeys(labels)) or None


def attach_comparison(merged: Merged, baseline: Optional[Merged], scope: Optional[str],
                      label: Optional[str] = None) -> None:
    """Compare merged with baseline (if it has any leg) and set the fail-on scope: `scope` when given, else
    "new" when there was something to compare with, else "all"."""
    if baseline is not None and baseline.present:
        merged.comparison = compare(merged.present, baseline.present, merged.findings, label=label)
        merged.comparison.base_sha = baseline.base_sha
    merged.scope = scope or ("new" if merged.comparison is not None else "all")
