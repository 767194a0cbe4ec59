"""Plain-text descriptions of findings, shared by every renderer (each escapes them for its own format).

Untrusted parts (context names, function and file names from debug information, workload names) are cleaned
here with text.clean; Markdown and XML escaping stay in their renderers.
"""

from __future__ import annotations

import hashlib
import os
import posixpath
import re
from functools import lru_cache
from pathlib import Path
from typing import Any, Dict, Optional, Sequence, Tuple

from reporter.findings import FOLD_PARENT, FOLD_RESTATES, Finding
from reporter.text import cap, clean, format_bytes, format_rate, plural

# Each check type's "what to do" paragraph in the README (a test checks every anchor exists).
DOCS_URL = "https://github.com/pg-ext-memcheck/pg-ext-memcheck/blob/main/README.md"

LIFETIME_TEXT = {"statement": "statement end", "transaction": "transaction end", "backend": "backend exit"}
FOLD_TEXT = {FOLD_RESTATES: "restates the context_leak of the same context",
             FOLD_PARENT: "parent context: grew because its child did"}


# One line per check type: what it means and what to do (SARIF rules' help text, next to the README's anchor
# with the full paragraph; tests/unit/test_report_sarif.py holds it equal to vocab.CHECK_TYPES).
CHECK_HELP = {
    "context_leak": ("A memory context grew and did not come back",
                     "allocate in the shortest-lived context that works and delete every context you create, on "
                     "the error path too"),
    "wrong_ctx_alloc": ("Allocations landed in a backend-lifetime context (TopMemoryContext, CacheMemoryContext) "
                        "during a query",
                        "allocate in a query-lifetime context, or make a deliberate cache bounded and allow it"),
    "resource_leak": ("PostgreSQL warned at commit about a resource that was not released",
                      "release it on every path (dsm_detach, table_close, ReleaseCachedPlan, UnregisterSnapshot, "
                      "ReleaseBuffer)"),
    "malloc_leak": ("The backend's malloc heap grew with every call while no memory context grew",
                    "free what you malloc on every path, or palloc in a context of the right lifetime"),
    "settings_changed": ("The checker's own settings were changed while a workload ran",
                         "do not change pg_ext_memcheck.* settings in workloads or in the extension"),
    "coverage_gap": ("Something could not be measured", "follow the fix the finding names"),
    "memory_corruption": ("An assertion-enabled PostgreSQL found memory written past a chunk's end",
                          "find the write at or after the allocation site (a size one short, an index off by one)"),
    "shmem_overrun": ("Code wrote past the end of a shared-memory allocation",
                      "request and use the same size, with add_size and mul_size"),
    "dsm_leak": ("A DSM segment was still mapped at the end of its window",
                 "dsm_detach every segment on every path; pin a mapping only for a segment you keep"),
    "ctx_bloat": ("A context kept growing across growth_benchmark's checkpoints",
                  "as for context_leak; for superlinear growth, look for a structure copied as it grows"),
    "use_after_reset": ("A pointer into memory of a reset or deleted context was used",
                        "keep pointers only to memory that lives as long as the pointer"),
    "concurrency_error": ("Concurrent backends crashed, deadlocked or timed out on a lock",
                          "take locks in one global order, hold them briefly, protect shared state with its lock"),
}


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
    """How to show a site's file: relative to the repository when inside it, else its name alone (a build
    directory's or another machine's absolute path helps nobody and leaks where things were built)."""
    file = site.get("file")
    if not file:
        return None
    return repo_path(file, root) or posixpath.basename(file)


# memcheck.yml's `- name: NAME` line (quoted or not), for pointing at a workload's definition.
def _name_line(text: str, name: str) -> Optional[int]:
    pattern = re.compile(r"(?:^|[\s{,-])name:\s*['\"]?" + re.escape(name) + r"['\"]?\s*(?:[,}#]|$)")
    for n, line in enumerate(text.splitlines(), 1):
        if pattern.search(line):
            return n
    return None


# results.json's config path when the run had no memcheck.yml (reporter/defaults.py's label): the directory is
# the extension's, and its Makefile holds the REGRESS list.
_NO_CONFIG = "(no memcheck.yml"


def definition(results: Dict[str, Any], workload: str, root: Optional[str]) -> Optional[Tuple[str, Optional[int]]]:
    """Where a workload is defined in the repository (path relative to it, line when the file can be read):
    a regression test's sql/NAME.sql, else memcheck.yml's `name:` line, else the extension's Makefile."""
    config = str((results.get("config") or {}).get("path") or "")
    if not config or not root:
        return None
    directory = posixpath.dirname(config)
    no_file = posixpath.basename(config).startswith(_NO_CONFIG)
    kind = next((w.get("kind") for w in results["workloads"] if w["name"] == workload), None)
    candidates = []
    if kind == "regress":
        candidates.append(posixpath.join(directory, "sql", f"{workload}.sql"))
    candidates.append(posixpath.join(directory, "Makefile") if no_file else config)
    for path in candidates:
        rel = repo_path(path, root)
        if rel is None:
            continue
        if path == candidates[-1] or os.path.isfile(path):
            line = None
            if path == config and os.path.isfile(path):
                try:
                    line = _name_line(Path(path).read_text(encoding="utf-8", errors="replace"), workload)
                except OSError:
                    line = None
            return rel, line
    return None


def location(f: Finding, root: Optional[str],
             legs: Sequence[Dict[str, Any]] = ()) -> Optional[Tuple[str, Optional[int], str]]:
    """Where in the repository to point for `f`: (path, line, what) with what "site" (its allocating line) or
    "workload" (the definition of the workload it was seen in, when no site is in the repository)."""
    site = repo_site(f, root)
    if site is not None:
        return repo_path(site["file"], root) or "", int(site["line"]), "site"
    by_major = {int(res["postgresql"]["major"]): res for res in legs}
    for e in f.evidence:
        res = by_major.get(e.major)
        found = definition(res, e.workload, root) if res is not None else None
        if found:
            return found[0], found[1], "workload"
    return None


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


def fingerprint(f: Finding) -> str:
    """16 hex digits naming the bug across runs and commits: the finding's key without the allocating line
    (lines above it move), as comparison with a base matches it. SARIF's partialFingerprints and the JSON
    summary's `id`."""
    site = f.key[4]
    if site is not None and site[0] == "src":
        site = site[:3]
    text = "\x1f".join(str(x) for x in (f.key[0], f.key[1], f.key[2], f.key[3], site))
    return hashlib.sha256(text.encode("utf-8")).hexdigest()[:16]
