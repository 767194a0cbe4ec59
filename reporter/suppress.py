"""Apply memcheck.yml suppressions to results: matched violations stay listed, marked `suppressed_by`."""

from __future__ import annotations

import datetime as dt
from fnmatch import fnmatchcase
from typing import Any, Dict, List, Sequence

from reporter.config import Suppression


def matches(sup: Suppression, violation: Dict[str, Any]) -> bool:
    """Every matcher the suppression sets must match; `pattern` is a glob on the context path or name."""
    if sup.check is not None and violation.get("check_type") != sup.check:
        return False
    if sup.library is not None and not fnmatchcase(violation.get("source_lib") or "", sup.library):
        return False
    if sup.pattern is not None:
        candidates = [violation.get("context_path") or "", violation.get("context") or ""]
        if not any(fnmatchcase(c, sup.pattern) for c in candidates if c):
            return False
    return True


def active(suppressions: Sequence[Suppression], today: dt.date) -> tuple[List[Suppression], List[str]]:
    """The suppressions still in force, and a note for each expired one (it no longer hides anything)."""
    keep: List[Suppression] = []
    notes: List[str] = []
    for sup in suppressions:
        if sup.expiry is not None and today > sup.expiry:
            notes.append(f"suppression '{sup.reason}' expired on {sup.expiry.isoformat()}; not applied")
        else:
            keep.append(sup)
    return keep, notes


def apply(results: Dict[str, Any], suppressions: Sequence[Suppression], today: dt.date | None = None) -> List[str]:
    """Mark matching violations, recount each workload's `suppressed`, and settle passed/violations.

    Returns notes (expired suppressions) for the caller to show; the results dict is changed in place.
    """
    in_force, notes = active(suppressions, today or dt.date.today())
    for workload in results["workloads"]:
        count = 0
        for violation in workload["violations"]:
            violation["suppressed_by"] = None
            for sup in in_force:
                if matches(sup, violation):
                    violation["suppressed_by"] = sup.reason
                    count += 1
                    break
        workload["suppressed"] = count
        # Every finding suppressed means passed; errors, timeouts and crashes stay what they are.
        if workload["status"] in ("passed", "violations"):
            unsuppressed = any(v["suppressed_by"] is None for v in workload["violations"])
            workload["status"] = "violations" if unsuppressed else "passed"
    return notes
