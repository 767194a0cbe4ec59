"""Resolve allocation sites ({lib, offset}) to function, file and line with binutils' addr2line.

The C library records return addresses as library + offset (`dladdr`). Here, in the run leg where the built
library still exists (pkglibdir from pg_config, recorded in results.json), each offset is looked up in the
library's DWARF; reporter/build.py compiles extensions with `-g` and maps the temporary build copy's paths back to
the extension's source directory, so the file names point at the user's sources. A return address points after the
call instruction, so 1 is subtracted before the lookup (the call's own line is wanted, not the next one's).

When the call was inlined (an allocation made by a macro or a static inline function of a PostgreSQL header, such
as lib/simplehash.h's), addr2line -i gives the whole inline chain, innermost first: the site is the first frame of
that chain that is not in a system or PostgreSQL header, that is the extension's own function and line.

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
_ADDRESS = re.compile(r"^0x[0-9a-fA-F]+$")
# Headers a site never points into when the extension's own code is in the inline chain.
SYSTEM_INCLUDE_DIRS: Tuple[str, ...] = ("/usr/include/", "/usr/local/include/")

Frame = Tuple[Optional[str], Optional[str], Optional[int]]


def lookup_address(offset: str) -> str:
    """The address to ask about for a return address: one byte back, inside the call instruction."""
    value = int(offset, 16)
    return hex(value - 1 if value > 0 else 0)


def parse_addr2line(output: str, count: int) -> List[Frame]:
    """`addr2line -f` prints two lines per address: the function, then FILE:LINE ('??' when unknown)."""
    lines = output.splitlines()
    out: List[Frame] = []
    for n in range(count):
        func = lines[2 * n].strip() if 2 * n < len(lines) else "??"
        where = lines[2 * n + 1].strip() if 2 * n + 1 < len(lines) else "??:0"
        m = _LINE.match(where)
        file = m.group("file") if m and m.group("file") not in ("??", "") else None
        line = int(m.group("line")) if m and file and int(m.group("line")) > 0 else None
        out.append((None if func in ("??", "") else func[:500], file[:4096] if file else None, line))
    return out


def parse_inline_chains(output: str) -> List[List[Frame]]:
    """`addr2line -a -f -i` prints, per address, the address line, then a function line and a FILE:LINE line for
    every frame of the inline chain, innermost first. One list of frames per address."""
    chains: List[List[Frame]] = []
    lines = output.splitlines()
    n = 0
    while n < len(lines):
        if not _ADDRESS.match(lines[n].strip()):
            n += 1
            continue
        n += 1
        body: List[str] = []
        while n < len(lines) and not _ADDRESS.match(lines[n].strip()):
            body.append(lines[n])
            n += 1
        chains.append(parse_addr2line("\n".join(body), max(1, len(body) // 2)))
    return chains


def in_headers(file: Optional[str], header_dirs: Sequence[str]) -> bool:
    """Is file in a system or PostgreSQL header directory (not the extension's own code)?"""
    if not file:
        return False
    return any(file.startswith(d.rstrip("/") + "/") for d in (*SYSTEM_INCLUDE_DIRS, *header_dirs) if d)


def pick_frame(chain: Sequence[Frame], header_dirs: Sequence[str] = ()) -> Frame:
    """The site a user wants from an inline chain: the first frame in the extension's own code."""
    for frame in chain:
        if frame[1] and not in_headers(frame[1], header_dirs):
            return frame
    return chain[0] if chain else (None, None, None)


def resolve(library: Path, offsets: Sequence[str], tool: Optional[str] = None,
            header_dirs: Sequence[str] = ()) -> Dict[str, Frame]:
    """offset -> (function, file, line) for return addresses in one library; {} when it cannot be done.
    header_dirs: PostgreSQL's include directories, never the answer when the extension's code inlined them."""
    exe = tool or shutil.which(ADDR2LINE)
    if not exe or not offsets or not Path(library).is_file():
        return {}
    unique = list(dict.fromkeys(offsets))
    try:
        proc = subprocess.run([exe, "-a", "-f", "-i", "-C", "-e", str(library),
                               *(lookup_address(o) for o in unique)],
                              capture_output=True, text=True, timeout=_TIMEOUT_S, check=False)
    except (OSError, subprocess.SubprocessError, ValueError):
        return {}
    if proc.returncode != 0:
        return {}
    chains = parse_inline_chains(proc.stdout)
    if len(chains) != len(unique):
        return {}
    return {offset: pick_frame(chain, header_dirs) for offset, chain in zip(unique, chains)}


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
    header_dirs = [d for d in (doc["postgresql"].get("includedir_server"),) if d]
    wanted: Dict[str, List[str]] = {}
    for site in _all_sites(doc):
        if site.get("function") is None and site.get("lib") and site.get("offset"):
            wanted.setdefault(site["lib"], []).append(site["offset"])
    found: Dict[Tuple[str, str], Frame] = {}
    for lib, offsets in wanted.items():
        path = library_path(lib, pkglibdir)
        if path is not None:
            for offset, loc in resolve(path, offsets, tool, header_dirs).items():
                found[(lib, offset)] = loc
    resolved = 0
    for site in _all_sites(doc):
        loc = found.get((site.get("lib"), site.get("offset")))
        if loc and any(x is not None for x in loc):
            site["function"], site["file"], site["line"] = loc
            resolved += 1
    return resolved
