"""Resolve allocation sites ({lib, offset}) to function, file and line with binutils' addr2line.

The C library records return addresses as library + offset (`dladdr`). Here, in the run leg where the built
library still exists (pkglibdir from pg_config, recorded in results.json), each offset is looked up in the
library's DWARF; reporter/build.py compiles extensions with `-g` and maps the temporary build copy's paths back to
the extension's source directory, so the file names point at the user's sources. A return address points after the
call instruction, so 1 is subtracted before the lookup (the call's own line is wanted, not the next one's).

Resolution is best effort: no addr2line, no library, no debug information leave the site unresolved.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
from pathlib import Path
from typing import Any, Dict, Iterable, List, Optional, Sequence, Tuple

ADDR2LINE = "addr2line"
_TIMEOUT_S = 60
_LINE = re.compile(r"^(?P<file>.*):(?P<line>\d+)(?: \(discriminator \d+\))?$")


def lookup_address(offset: str) -> str:
    """The address to ask about for a return address: one byte back, inside the call instruction."""
    value = int(offset, 16)
    return hex(value - 1 if value > 0 else 0)


def parse_addr2line(output: str, count: int) -> List[Tuple[Optional[str], Optional[str], Optional[int]]]:
    """`addr2line -f` prints two lines per address: the function, then FILE:LINE ('??' when unknown)."""
    lines = output.splitlines()
    out: List[Tuple[Optional[str], Optional[str], Optional[int]]] = []
    for n in range(count):
        func = lines[2 * n].strip() if 2 * n < len(lines) else "??"
        where = lines[2 * n + 1].strip() if 2 * n + 1 < len(lines) else "??:0"
        m = _LINE.match(where)
        file = m.group("file") if m and m.group("file") not in ("??", "") else None
        line = int(m.group("line")) if m and file and int(m.group("line")) > 0 else None
        out.append((None if func in ("??", "") else func[:500], file[:4096] if file else None, line))
    return out


def resolve(library: Path, offsets: Sequence[str],
            tool: Optional[str] = None) -> Dict[str, Tuple[Optional[str], Optional[str], Optional[int]]]:
    """offset -> (function, file, line) for return addresses in one library; {} when it cannot be done."""
    exe = tool or shutil.which(ADDR2LINE)
    if not exe or not offsets or not Path(library).is_file():
        return {}
    unique = list(dict.fromkeys(offsets))
    try:
        proc = subprocess.run([exe, "-f", "-C", "-e", str(library), *(lookup_address(o) for o in unique)],
                              capture_output=True, text=True, timeout=_TIMEOUT_S, check=False)
    except (OSError, subprocess.SubprocessError, ValueError):
        return {}
    if proc.returncode != 0:
        return {}
    return dict(zip(unique, parse_addr2line(proc.stdout, len(unique))))


def library_path(lib: str, pkglibdir: Optional[str]) -> Optional[Path]:
    """Where a site's library lives: an absolute path as recorded, else pkglibdir/lib (a bare file name only)."""
    if os.path.isabs(lib):
        return Path(lib)
    if pkglibdir and "/" not in lib and lib not in ("", ".", ".."):
        return Path(pkglibdir) / lib
    return None


def _all_sites(doc: Dict[str, Any]) -> Iterable[Dict[str, Any]]:
    for w in doc["workloads"]:
        for v in w["violations"]:
            yield from v.get("sites") or ()


def resolve_results(doc: Dict[str, Any], tool: Optional[str] = None) -> int:
    """Add function/file/line to every site of a results dict that addr2line can resolve; returns how many."""
    pkglibdir = doc["postgresql"].get("pkglibdir")
    wanted: Dict[str, List[str]] = {}
    for site in _all_sites(doc):
        if site.get("function") is None and site.get("lib") and site.get("offset"):
            wanted.setdefault(site["lib"], []).append(site["offset"])
    found: Dict[Tuple[str, str], Tuple[Optional[str], Optional[str], Optional[int]]] = {}
    for lib, offsets in wanted.items():
        path = library_path(lib, pkglibdir)
        if path is not None:
            for offset, loc in resolve(path, offsets, tool).items():
                found[(lib, offset)] = loc
    resolved = 0
    for site in _all_sites(doc):
        loc = found.get((site.get("lib"), site.get("offset")))
        if loc and any(x is not None for x in loc):
            site["function"], site["file"], site["line"] = loc
            resolved += 1
    return resolved
