"""Findings: the violations of every leg grouped into one record per bug. Pure functions over results dicts.

A violation row is one observation (a statement, a scenario, a workload); a finding is the bug behind the rows.

**Key.** One finding per (suppressed or not, check type, context path with numbers and addresses normalised,
source library, top allocation site when known), across the workloads and PostgreSQL majors of all legs. A site is
keyed by function, file name and line once resolved (so two majors' builds of one source agree), else by
library + offset.

**Folding.** Within one workload of one leg, among rows of the same library and suppression state whose origin is
compatible (same phase and entry point when both are known; a shared allocation site when both carry sites):

1. *restates*: a `wrong_ctx_alloc` or a `ctx_bloat` on the same (normalised) context as a `context_leak` is the
   same allocation seen by two checks (a `ctx_bloat` sees it at a scenario's checkpoints): it joins the leak's
   finding.
2. *parent*: a `context_leak` whose context is the direct parent of other `context_leak`s' contexts, and whose
   growth per observation (its rate's bytes, else its delta) exceeds theirs by less than `min_leak_bytes` (the
   smallest growth worth reporting), grew because its leaked children did: it joins the largest child's finding
   (and so does a restatement folded into it). A scenario's rows ("phase" `scenario`) are compatible with any
   phase: they measure the whole workload repeated.

Folded rows stay evidence of their finding (and count towards its worst severity); they are never listed beside it.
Rows that share a `finding_id` in one workload are updates of one observation: only the last counts.
"""

from __future__ import annotations

import re
from functools import cached_property, lru_cache
from typing import Any, Dict, Iterable, List, NamedTuple, Optional, Sequence, Tuple

from reporter.perf import bulk
from reporter.results import current_violations
from reporter.vocab import CONTEXT_GROWTH_CHECKS, LIFETIME_RANK, PHASE_SCENARIO, SEVERITY_RANK, reaches

FOLD_RESTATES = "restates"
# checks whose row on a leaking context restates that context_leak
RESTATING_CHECKS = ("wrong_ctx_alloc", "ctx_bloat")
FOLD_PARENT = "parent"
MAX_SITES = 4

SiteKey = Tuple[str, ...]
FindingKey = Tuple[bool, str, str, str, Optional[SiteKey]]  # suppressed?, check, where, library, site

_ADDRESS = re.compile(r"0x[0-9A-Fa-f]+")
_NUMBER = re.compile(r"(?<![A-Za-z_0-9])[0-9]+")


@lru_cache(maxsize=1 << 17)
def normalize(text: str) -> str:
    """'TopMemoryContext/relation 16384/0x55d4c3a2b1c0' -> 'TopMemoryContext/relation N/<addr>'.

    Digits that are part of a word ('pg15', 'ctx_2') stay: they are names, not counters."""
    if "0x" in text:
        text = _ADDRESS.sub("<addr>", text)
    return _NUMBER.sub("N", text)


def where_of(v: Dict[str, Any]) -> str:
    """What the finding is about: the normalised context path, else the context, else the detail (a resource)."""
    text = v.get("context_path") or v.get("context")
    if text:
        return normalize(text)
    return normalize((v.get("detail") or "")[:120])


def top_site(v: Dict[str, Any]) -> Optional[Dict[str, Any]]:
    sites = v.get("sites")
    if not sites:
        return None
    if len(sites) == 1:
        return sites[0]
    return max(sites, key=lambda s: s.get("bytes") or 0)


def site_key(site: Optional[Dict[str, Any]]) -> Optional[SiteKey]:
    if site is None:
        return None
    function, line = site.get("function"), site.get("line")
    if function and line:
        file = site.get("file") or ""
        return ("src", function, file[file.rfind("/") + 1:], str(line))
    return ("addr", site.get("lib") or "", (site.get("offset") or "").lower())


def magnitude(v: Dict[str, Any]) -> float:
    """Bytes a row stands for: its rate times what the rate counts, else its delta."""
    rate = v.get("rate")
    if rate:
        unit = rate.get("unit")
        # the C side counts the units of every rate in "calls" (calls, statements, subtransactions ...)
        times = (v.get("rows") if unit == "row" else v.get("calls")) or v.get("occurrences") or v.get("iterations") or 1
        return float(rate["bytes"]) * max(1, int(times))
    per = v.get("bytes_per_iteration")
    if per is not None:
        return float(per) * max(1, int(v.get("iterations") or 1))
    return abs(float(v.get("used_delta") or 0))


# ---- folding -------------------------------------------------------------------------------------------


# A scenario's rows are measured over repetitions of the whole workload: "scenario" is not a phase of the code.
_ANY_PHASE = (None, PHASE_SCENARIO)


def _compatible(a: Dict[str, Any], b: Dict[str, Any]) -> bool:
    """Could a and b be the same allocations? Known phases and entries must agree; known sites must overlap."""
    x, y = a.get("phase"), b.get("phase")
    if x not in _ANY_PHASE and y not in _ANY_PHASE and x != y:
        return False
    x, y = a.get("entry"), b.get("entry")
    if x is not None and y is not None and x != y:
        return False
    sa, sb = a.get("sites"), b.get("sites")
    if sa and sb:
        keys_b = {site_key(s) for s in sb}
        return any(site_key(s) in keys_b for s in sa)
    return True


def _per_unit(v: Dict[str, Any]) -> Optional[float]:
    """What one observation grew by: the rate's bytes (per call, row, iteration...), else the delta."""
    rate = v.get("rate")
    return rate["bytes"] if rate else v.get("used_delta")


def _explained(parent: Dict[str, Any], children: Sequence[Dict[str, Any]], min_leak: int) -> bool:
    """The parent grew by no more than its leaked children (within what would not be reported anyway)."""
    grew = _per_unit(parent)
    if grew is None:
        return True
    return grew - sum(_per_unit(c) or 0 for c in children) < max(1, min_leak)


Signature = Tuple[str, str, bool]  # where, library, suppressed: rows that may fold into each other share it


def fold(rows: Sequence[Dict[str, Any]], min_leak: int,
         wheres: Optional[Sequence[str]] = None) -> Tuple[List[int], List[Optional[str]]]:
    """For each row, the index of the row whose finding it belongs to (itself when primary) and why.

    `wheres`: where_of() of each row, when the caller has it already."""
    n = len(rows)
    target = list(range(n))
    reason: List[Optional[str]] = [None] * n
    growth = [i for i, v in enumerate(rows) if v["check_type"] in CONTEXT_GROWTH_CHECKS and v.get("context_path")]
    if len(growth) < 2:
        return target, reason
    if wheres is None:
        wheres = [where_of(v) for v in rows]
    # Only a wrong_ctx_alloc or ctx_bloat can restate, and only a row whose path is the parent of another's can be
    # a parent: most workloads have neither, and a report of 100,000 rows must not pay for them.
    paths = {wheres[i] for i in growth}
    parents = {path[:path.rfind("/")] for path in paths if path.rfind("/") > 0} & paths
    if not parents and not any(rows[i]["check_type"] in RESTATING_CHECKS for i in growth):
        return target, reason
    sig = {i: (wheres[i], rows[i].get("source_lib") or "", bool(rows[i].get("suppressed_by"))) for i in growth}
    _fold_restatements(rows, growth, sig, target, reason)
    leak_rows = [i for i in growth if target[i] == i and rows[i]["check_type"] == "context_leak"]
    if any(sig[i][0] in parents for i in leak_rows):
        _fold_parents(rows, leak_rows, sig, min_leak, target, reason)
    return _settle(target), reason


def _fold_restatements(rows: Sequence[Dict[str, Any]], growth: Sequence[int], sig: Dict[int, Signature],
                       target: List[int], reason: List[Optional[str]]) -> None:
    """1. a wrong_ctx_alloc or ctx_bloat restating a context_leak of the same context joins its largest one."""
    leaks: Dict[Signature, List[int]] = {}
    for i in growth:
        if rows[i]["check_type"] == "context_leak":
            leaks.setdefault(sig[i], []).append(i)
    if not leaks:
        return
    for i in growth:
        if rows[i]["check_type"] in RESTATING_CHECKS:
            cands = [j for j in leaks.get(sig[i], ()) if _compatible(rows[i], rows[j])]
            if cands:
                target[i] = max(cands, key=lambda j: magnitude(rows[j]))
                reason[i] = FOLD_RESTATES


def _fold_parents(rows: Sequence[Dict[str, Any]], leak_rows: Sequence[int], sig: Dict[int, Signature],
                  min_leak: int, target: List[int], reason: List[Optional[str]]) -> None:
    """2. the direct parent of a leaked child that grew because the child did (both context_leak; the C library
    reports "the child and its parent") joins the largest child: deepest first, so a chain folds downwards."""
    below: Dict[Signature, List[int]] = {}
    seen: Dict[Tuple[Any, ...], List[int]] = {}  # repeats of one parent row share their candidates
    for i in sorted(leak_rows, key=lambda i: -sig[i][0].count("/")):
        v = rows[i]
        memo = (sig[i], v.get("phase"), v.get("entry"), tuple(site_key(x) for x in v.get("sites") or ()))
        cands = seen.get(memo)
        if cands is None:
            cands = seen[memo] = [j for j in below.get(sig[i], ()) if _compatible(v, rows[j])]
        if cands and _explained(rows[i], [rows[j] for j in cands], min_leak):
            target[i] = max(cands, key=lambda j: magnitude(rows[j]))
            reason[i] = FOLD_PARENT
            continue
        path, lib, suppressed = sig[i]
        cut = path.rfind("/")
        if cut > 0:
            below.setdefault((path[:cut], lib, suppressed), []).append(i)


def _settle(target: List[int]) -> List[int]:
    """A restatement of a leak that itself folded into its child: follow to the end of the chain."""
    for i, t in enumerate(target):
        while target[t] != t:
            t = target[t]
        target[i] = t
    return target


# ---- findings ------------------------------------------------------------------------------------------


class Evidence(NamedTuple):
    major: int
    version: str
    workload: str
    row: Dict[str, Any]
    folded: Optional[str]  # None for a primary row; FOLD_RESTATES or FOLD_PARENT for a secondary one
    magnitude: float  # magnitude(row), computed once: every ordering of the evidence asks for it


def worst_evidence(evidence: Iterable[Evidence]) -> Evidence:
    """The most serious row, then the biggest."""
    return max(evidence, key=lambda e: (SEVERITY_RANK[e.row["severity"]], e.magnitude))


def _worst(rows: Iterable[Dict[str, Any]]) -> Dict[str, Any]:
    return max(rows, key=lambda v: (SEVERITY_RANK[v["severity"]], magnitude(v)))


class Finding:
    """One bug: its key, its evidence rows (primary rows first, in file order, then folded ones) and the facts
    derived from them. Derived facts are computed when first asked for: a report of 100,000 findings shows
    only a few hundred of them in full."""

    __slots__ = ("key", "evidence", "severity", "magnitude", "representative", "__dict__")

    def __init__(self, key: FindingKey, evidence: List[Evidence], severity: Optional[str] = None,
                 magnitude_: Optional[float] = None) -> None:
        self.key = key
        self.evidence = evidence
        if len(evidence) == 1:
            row = evidence[0].row
            self.representative = row
            self.severity = severity or row["severity"]
            self.magnitude = evidence[0].magnitude if magnitude_ is None else magnitude_
            return
        primary = [e for e in evidence if e.folded is None]
        self.representative = worst_evidence(primary).row
        self.severity = max((e.row["severity"] for e in evidence), key=SEVERITY_RANK.__getitem__)
        self.magnitude = max(e.magnitude for e in primary)

    def __repr__(self) -> str:
        return f"Finding({self.key!r}, {self.severity}, {len(self.evidence)} rows)"

    # -- identity
    @property
    def check_type(self) -> str:
        return self.key[1]

    @property
    def where(self) -> str:
        """Normalised context path (or resource)."""
        return self.key[2]

    @property
    def context(self) -> str:
        """The innermost context's name (normalised)."""
        return self.where.rsplit("/", 1)[-1] if self.representative.get("context_path") else self.where

    @property
    def source_lib(self) -> Optional[str]:
        return self.key[3] or None

    @property
    def suppressed_by(self) -> Optional[str]:
        return self.representative.get("suppressed_by")

    # -- facts over the evidence
    @property
    def primary(self) -> List[Evidence]:
        if len(self.evidence) == 1:
            return self.evidence  # a lone row is never a folded one
        return [e for e in self.evidence if e.folded is None]

    @property
    def folded(self) -> List[Evidence]:
        return [e for e in self.evidence if e.folded is not None]

    @cached_property
    def majors(self) -> Tuple[int, ...]:
        if len(self.evidence) == 1:
            return (self.evidence[0].major,)
        return tuple(sorted({e.major for e in self.evidence}, reverse=True))

    @cached_property
    def workloads(self) -> Tuple[str, ...]:
        """Workload names in order of appearance (one name for the same workload on several majors)."""
        return tuple(dict.fromkeys(e.workload for e in self.evidence))

    @cached_property
    def occurrences(self) -> int:
        """Times observed: each primary row stands for its `occurrences` (statements, iterations), else 1."""
        return sum(int(e.row.get("occurrences") or 1) for e in self.primary)

    @cached_property
    def bytes(self) -> Optional[int]:
        """The largest growth one observation showed."""
        deltas = [e.row["used_delta"] for e in self.primary if e.row.get("used_delta") is not None]
        return max(deltas) if deltas else None

    @property
    def rate(self) -> Optional[Dict[str, Any]]:
        """The worst primary row's rate; else the worst rate any evidence row has (a parent's growth per
        iteration when the child was seen only once per statement, for example)."""
        own = self.representative.get("rate")
        if own or len(self.evidence) == 1:
            return own
        rated = [e.row for e in self.evidence if e.row.get("rate")]
        return _worst(rated)["rate"] if rated else None

    @cached_property
    def lifetime(self) -> Optional[str]:
        """The longest lifetime any observation had."""
        lives = [e.row.get("lifetime") for e in self.primary if e.row.get("lifetime")]
        return max(lives, key=lambda s: LIFETIME_RANK[s]) if lives else None

    @cached_property
    def verdict(self) -> Optional[str]:
        verdicts = {e.row.get("verdict") for e in self.primary}
        return "leak" if "leak" in verdicts else "cache" if "cache" in verdicts else None

    @property
    def entry(self) -> Optional[str]:
        return self.representative.get("entry")

    @property
    def phase(self) -> Optional[str]:
        return self.representative.get("phase")

    @property
    def detail(self) -> str:
        return self.representative.get("detail") or ""

    @property
    def samples(self) -> Optional[List[int]]:
        return self.representative.get("samples")

    @cached_property
    def sites(self) -> List[Dict[str, Any]]:
        """Allocation sites of the primary rows, merged by site, most bytes first (at most MAX_SITES)."""
        primary = self.primary
        if len(primary) == 1:  # nothing to merge
            own = primary[0].row.get("sites") or []
            return sorted(own, key=lambda s: -(s.get("bytes") or 0))[:MAX_SITES]
        merged: Dict[SiteKey, Dict[str, Any]] = {}
        for e in primary:
            for s in e.row.get("sites") or ():
                k = site_key(s)
                assert k is not None
                if k in merged:
                    merged[k]["bytes"] += int(s.get("bytes") or 0)
                    merged[k]["count"] += int(s.get("count") or 0)
                else:
                    merged[k] = dict(s, bytes=int(s.get("bytes") or 0), count=int(s.get("count") or 0))
        return sorted(merged.values(), key=lambda s: -s["bytes"])[:MAX_SITES]

    @property
    def site(self) -> Optional[Dict[str, Any]]:
        """The top allocation site."""
        return self.sites[0] if self.sites else None

    def reaches(self, fail_on: str) -> bool:
        return not self.key[0] and reaches(self.severity, fail_on)

    def severities_by_major(self) -> Dict[int, str]:
        """The worst severity this finding had on each PostgreSQL major it was seen on."""
        if len(self.evidence) == 1:
            e = self.evidence[0]
            return {e.major: self.severity}
        out: Dict[int, str] = {}
        for e in self.evidence:
            sev = e.row["severity"]
            if e.major not in out or SEVERITY_RANK[sev] > SEVERITY_RANK[out[e.major]]:
                out[e.major] = sev
        return out

    def severity_on(self, major: int) -> Optional[str]:
        """The worst severity this finding had on one PostgreSQL major (None: not seen there)."""
        return self.severities_by_major().get(major)

    def sort_key(self) -> Tuple[Any, ...]:
        """Worst first: unsuppressed before suppressed, then severity, then growth that repeats before growth
        that happened once (a cache), then the longest lifetime (backend, transaction, statement), then the
        most bytes; ties keep the order of the input (legs newest major first, workloads, rows)."""
        life = self.representative.get("lifetime")
        return (self.key[0], -SEVERITY_RANK[self.severity], self.representative.get("verdict") == "cache",
                -(LIFETIME_RANK.get(life, 0) if life else 0), -self.magnitude)

    def evidence_worst_first(self) -> List[Evidence]:
        """The evidence rows for a reader: the finding's own rows before folded ones, each worst first."""
        return sorted(self.evidence, key=lambda e: (e.folded is not None, -SEVERITY_RANK[e.row["severity"]],
                                                    -e.magnitude))


@bulk
def build(legs: Sequence[Dict[str, Any]]) -> List[Finding]:
    """Every finding of the given results (matrix legs), worst first; suppressed ones last."""
    groups: Dict[FindingKey, List[Evidence]] = {}
    folded_groups: Dict[FindingKey, List[Evidence]] = {}
    for res in legs:
        major, version = int(res["postgresql"]["major"]), str(res["postgresql"]["version"])
        min_leak = int((res.get("thresholds") or {}).get("min_leak_bytes") or 0)
        for w in res["workloads"]:
            rows = current_violations(w)
            if not rows:
                continue
            name = w["name"]
            wheres = [where_of(v) for v in rows]
            target, reason = fold(rows, min_leak, wheres)
            folds = any(reason)
            keys: Dict[int, FindingKey] = {}
            for i, v in enumerate(rows):
                if folds and target[i] != i:
                    continue
                k = (bool(v.get("suppressed_by")), v["check_type"], wheres[i], v.get("source_lib") or "",
                     site_key(top_site(v)) if v.get("sites") else None)
                if folds:
                    keys[i] = k
                ev = Evidence(major, version, name, v, None, magnitude(v))
                group = groups.get(k)
                if group is None:
                    groups[k] = [ev]
                else:
                    group.append(ev)
            if folds:
                for i, v in enumerate(rows):
                    if target[i] != i:
                        k = keys[target[i]]
                        folded_groups.setdefault(k, []).append(Evidence(major, version, name, v, reason[i],
                                                                                  magnitude(v)))
    if folded_groups:
        findings = [Finding(k, ev + folded_groups.get(k, [])) for k, ev in groups.items()]
    else:
        findings = [Finding(k, ev) for k, ev in groups.items()]
    findings.sort(key=Finding.sort_key)
    return findings


def active(findings: Iterable[Finding]) -> List[Finding]:
    return [f for f in findings if not f.suppressed_by]


WorkloadSlice = Tuple[Finding, List[Evidence]]


@bulk
def by_workload(findings: Iterable[Finding]) -> Dict[Tuple[int, str], List[WorkloadSlice]]:
    """(major, workload) -> the findings seen there (in the order given) with that workload's evidence."""
    out: Dict[Tuple[int, str], List[WorkloadSlice]] = {}
    for f in findings:
        if len(f.evidence) == 1:
            e = f.evidence[0]
            where = (e.major, e.workload)
            if where in out:
                out[where].append((f, f.evidence))
            else:
                out[where] = [(f, f.evidence)]
            continue
        mine: Dict[Tuple[int, str], List[Evidence]] = {}
        for e in f.evidence:
            mine.setdefault((e.major, e.workload), []).append(e)
        for where, ev in mine.items():
            out.setdefault(where, []).append((f, ev))
    return out
