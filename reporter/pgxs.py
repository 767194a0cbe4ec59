"""What an extension's PGXS Makefile says: its variables (EXTENSION, MODULES, REGRESS...) as make sees them.

The Makefile is read by make itself, with PG_CONFIG pinned (it includes PGXS, which needs pg_config), so
conditionals, `+=` and includes are honoured exactly as `make installcheck` will see them. Nothing is built:
a goal defined on make's command line prints the variables and does nothing else.

Every make of an extension (reading it, building it, its tests) gets USE_PGXS=1 first: many extensions keep
contrib's build behind `ifdef USE_PGXS ... else include $(top_srcdir)/contrib/contrib-global.mk endif`, and
PGXN's tools and most CI build them that way. memcheck.yml's make_args come after it, so they add to it or
override it (make takes the last assignment of a variable on its command line; `USE_PGXS=` switches it off).
"""

from __future__ import annotations

import subprocess
from pathlib import Path
from typing import Dict, List, Sequence

USE_PGXS = "USE_PGXS=1"
_PREFIX = "PGMC-VAR "
_GOAL = "pgmc-print-vars"


class PgxsError(Exception):
    """The Makefile could not be read by make; the message has make's own words."""


def make_args(user_args: Sequence[str] = ()) -> List[str]:
    """The make arguments of an extension: USE_PGXS=1, then the user's (memcheck.yml's make_args)."""
    return [USE_PGXS, *user_args]


def makefile_vars(directory: Path, pg_config: str, names: Sequence[str], user_args: Sequence[str] = (),
                  timeout: float = 120) -> Dict[str, str]:
    """The values of `names` in directory's Makefile (empty string when unset), read with make_args(user_args)."""
    directory = Path(directory)
    recipe = " ".join(f"$(info {_PREFIX}{name}=$({name}))" for name in names)
    cmd = ["make", "--no-print-directory", "-C", str(directory), f"PG_CONFIG={pg_config}", *make_args(user_args),
           f"--eval={_GOAL}: ; @:{recipe}", _GOAL]
    try:
        proc = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout, stdin=subprocess.DEVNULL)
    except (OSError, subprocess.TimeoutExpired) as exc:
        raise PgxsError(f"{directory}/Makefile: could not run make: {exc}") from exc
    if proc.returncode != 0:
        tail = "\n".join((proc.stdout + proc.stderr).strip().splitlines()[-10:])
        raise PgxsError(f"{directory}/Makefile: make could not read it (exit {proc.returncode}):\n{tail}")
    found: Dict[str, str] = {name: "" for name in names}
    for line in proc.stdout.splitlines():
        if line.startswith(_PREFIX) and "=" in line:
            name, value = line[len(_PREFIX):].split("=", 1)
            if name in found:
                found[name] = value.strip()
    return found


def words(value: str) -> List[str]:
    return value.split()
