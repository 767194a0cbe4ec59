"""What a directory that should hold a PGXS extension holds, and what to do when it does not.

Pure filesystem (the standard library only: the action's input check imports it before anything is installed).
`check`, `run`, `build` and the action's input check all name what they found the same way: a directory that
does not exist (with the nearest name beside it), an empty one, a CMake, Meson or autoconf project, or files
with no Makefile; reporter/defaults.py adds the cases only make can tell (a Makefile that does not include PGXS).
"""

from __future__ import annotations

import difflib
from pathlib import Path
from typing import List, Optional

# The names GNU make reads, in its order.
MAKEFILE_NAMES = ("GNUmakefile", "makefile", "Makefile")
# What to do instead, said the same way by every command.
ADVICE = ("point at the extension's own directory (the one with its PGXS Makefile), or write a memcheck.yml: "
          "`extension: {path: DIR, name: NAME, make_args: [...]}` for sources make builds elsewhere, or "
          "`extension: {name: NAME}` with your workloads for an extension already installed in this PostgreSQL "
          "(see the README's memcheck.yml reference); `pg-ext-memcheck check --example` runs the bundled example")
# Build systems that are not PGXS, by the file that gives them away.
_OTHER_BUILDS = (
    ("CMakeLists.txt", "a CMake project (CMakeLists.txt)"),
    ("meson.build", "a Meson project (meson.build)"),
    ("configure.ac", "an autoconf project (configure.ac)"),
    ("configure.in", "an autoconf project (configure.in)"),
    ("configure", "an autoconf project (configure)"),
    ("Cargo.toml", "a Rust crate (Cargo.toml; pgrx extensions are built with cargo pgrx, not PGXS)"),
    ("setup.py", "a Python project (setup.py)"),
    ("pyproject.toml", "a Python project (pyproject.toml)"),
)
_LISTED = 6


def makefile(directory: Path) -> Optional[Path]:
    """The Makefile make would read in `directory` (GNUmakefile, makefile, then Makefile), if any."""
    for name in MAKEFILE_NAMES:
        path = Path(directory) / name
        if path.is_file():
            return path
    return None


def found_instead(directory: Path) -> Optional[str]:
    """None when `directory` has a Makefile (make decides whether it is PGXS); else what is there instead."""
    directory = Path(directory)
    if not directory.exists():
        return f"{directory}: no such directory{_nearest(directory)}"
    if not directory.is_dir():
        return f"{directory}: a file, not a directory"
    if makefile(directory) is not None:
        return None
    try:
        entries = sorted(p.name for p in directory.iterdir())
    except OSError as exc:
        return f"{directory}: cannot read it ({exc.strerror or exc})"
    if not entries:
        return f"{directory} is empty"
    for marker, what in _OTHER_BUILDS:
        if marker in entries:
            extra = " with no Makefile yet: its ./configure writes one" if "autoconf" in what else ""
            return f"{directory} is {what}{extra}, not a PGXS extension"
    shown = ", ".join(entries[:_LISTED]) + (f" and {len(entries) - _LISTED} more" if len(entries) > _LISTED else "")
    return f"{directory} has no Makefile (it holds {shown})"


def not_an_extension(found: str) -> str:
    """The whole message: what was found, then what to do."""
    return f"not a PGXS extension: {found}; {ADVICE}"


def _nearest(directory: Path) -> str:
    """' (did you mean ...?)' for a mistyped last component, when its parent exists."""
    parent = directory.parent
    try:
        names: List[str] = [p.name for p in parent.iterdir() if p.is_dir()]
    except OSError:
        return ""
    near = difflib.get_close_matches(directory.name, names, n=1, cutoff=0.6)
    return f" (did you mean {parent / near[0]}?)" if near else ""
