"""Which violation rows a workload keeps: its context pattern (SQL LIKE, as begin() matches it) and its allowed
contexts. Pure; the runner and the regression-suite reader both apply it."""

from __future__ import annotations

import re
from typing import Any, Dict

from reporter.config import Workload


def like_to_regex(pattern: str) -> re.Pattern:
    """SQL LIKE (% and _, backslash escapes) as a Python regex, so filtering matches what begin() does."""
    out, i = [], 0
    while i < len(pattern):
        ch = pattern[i]
        if ch == "\\" and i + 1 < len(pattern):
            out.append(re.escape(pattern[i + 1]))
            i += 2
            continue
        out.append(".*" if ch == "%" else "." if ch == "_" else re.escape(ch))
        i += 1
    return re.compile("".join(out), re.DOTALL)


def keep_violation(row: Dict[str, Any], wl: Workload) -> bool:
    """The workload's context pattern and allowlist: an allowed context may be allocated in
    (wrong_ctx_alloc is dropped there) but still may not grow without bound (context_leak stays)."""
    name = row.get("context_name") or row.get("context") or ""
    if wl.context_pattern and not like_to_regex(wl.context_pattern).fullmatch(name):
        return False
    return not (row.get("check_type") == "wrong_ctx_alloc" and name in wl.allowed_contexts)
