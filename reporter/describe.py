"""Plain-text descriptions of findings, shared by every renderer (each escapes them for its own format).

Untrusted parts (context names, function and file names from debug information, workload names) are cleaned
here with text.clean; Markdown and XML escaping stay in their renderers.
"""

from __future__ import annotations

import posixpath
from functools import lru_cache
from typing import Any, Dict, Optional, Sequence

from reporter.findings import FOLD_PARENT, FOLD_RESTATES, Finding
from reporter.text import cap, clean, format_bytes, format_rate, plural

# Each check type's "what to do" paragraph in the README (a test checks every anchor exists).
DOCS_URL = "https://github.com/pg-ext-memcheck/pg-ext-memcheck/blob/main/README.md"

LIFETIME_TEXT = {"statement": "statement end", "transaction": "transaction end", "backend": "backend exit"}
FOLD_TEXT = {FOLD_RESTATES: "restates the context_leak of the same context",
             FOLD_PARENT: "parent context: grew because its child did"}


def advice_anchor(check_type: str) -> str:
    """GitHub's anchor for the README heading `#### check_type` (what to do about it)."""
    return check_type


def advice_url(check_type: str) -> str:
    return f"{DOCS_URL}#{advice_anchor(check_type)}"


@lru_cache(maxsize=4096)
def repo_path(file: Optional[str], root: Optional[str]) -> Optional[str]:
    """`file` relative to `root` (the repository checkout) when it lies inside it, else None."""
    if not file or not root or not posixpath.isabs(file):
        return None
    rel = posixpath.relpath(posixpath.normpath(file), posixpath.normpath(root))
    return None if rel == "." or rel.startswith("../") or rel == ".." else rel


def site_file(site: Dict[str, Any], root: Optional[str]) -> Optional[str]:
    """How to show a site's file: relative to the repository when inside it, else as recorded."""
    file = site.get("file")
    return repo_path(file, root) or file


def site_text(site: Optional[Dict[str, Any]], root: Optional[str] = None, limit: int = 120) -> str:
    """'buggy_planner() at buggy_pg_ext.c:165', or 'buggy_pg_ext.so+0x1a2b' when unresolved; '-' without one."""
    if not site:
        return "-"
    where = site_file(site, root)
    func = site.get("function")
    if where and site.get("line"):
        loc = f"{where}:{site['line']}"
        return clean(f"{func}() at {loc}" if func else loc, limit)
    if func:
        return clean(f"{func}() in {site.get('lib')}", limit)
    return clean(f"{site.get('lib')}+{site.get('offset')}", limit)


def repo_site(f: Finding, root: Optional[str]) -> Optional[Dict[str, Any]]:
    """The first (most bytes) site of the finding whose file is inside the repository, with a line."""
    for site in f.sites:
        if site.get("line") and repo_path(site.get("file"), root):
            return site
    return None


def amount(f: Finding, row: Optional[Dict[str, Any]] = None) -> str:
    """The rate when there is one (its unit named), else the largest growth seen; of one row when given."""
    if row is not None:
        return format_rate(row["rate"]) if row.get("rate") else format_bytes(row.get("used_delta"))
    if f.rate:
        return format_rate(f.rate)
    return format_bytes(f.bytes)


def lifetime_text(f: Finding) -> str:
    parts = []
    if f.lifetime:
        parts.append(f"until {LIFETIME_TEXT.get(f.lifetime, f.lifetime)}")
    if f.verdict == "cache":
        parts.append("one-time (cache)")
    elif f.verdict == "leak":
        parts.append("repeats (leak)")
    return ", ".join(parts) or "-"


def majors_text(majors: Sequence[int]) -> str:
    return ", ".join(str(m) for m in majors)


def seen_text(f: Finding) -> str:
    """'20 times in 4 workloads on PostgreSQL 18, 15'."""
    return (f"{plural(f.occurrences, 'time')} in {plural(len(f.workloads), 'workload')} "
            f"on PostgreSQL {majors_text(f.majors)}")


def headline(f: Finding, root: Optional[str] = None, limit: int = 300, severity: Optional[str] = None,
             row: Optional[Dict[str, Any]] = None) -> str:
    """One line naming the finding: severity, check, context, amount, site. `severity` and `row` (whose rate
    is shown) describe the finding in one workload instead of across the report."""
    text = f"{severity or f.severity} {f.check_type} in {clean(f.where, 160)}: {amount(f, row)}"
    if f.site:
        text += f", allocated by {site_text(f.site, root)}"
    return cap(text, limit)  # the parts are clean already


def short_path(f: Finding, limit: int = 60) -> str:
    """The finding's context path for a table cell: below TopMemoryContext, cut from the left ('…/') when long;
    a resource's description as it is."""
    if not f.representative.get("context_path"):
        return f.where
    parts = f.where.split("/")
    if len(parts) > 1 and parts[0] == "TopMemoryContext":
        parts = parts[1:]
    text = "/".join(parts)
    while len(text) > limit and len(parts) > 1:
        parts = parts[1:]
        text = "…/" + "/".join(parts)
    return text
