"""What an extension's PGXS Makefile says: its variables (EXTENSION, MODULES, REGRESS...) as make sees them.

The Makefile is read by make itself, with PG_CONFIG pinned (it includes PGXS, which needs pg_config), so
conditionals, `+=` and includes are honoured exactly as `make installcheck` will see them. Nothing is built:
a goal defined on make's command line prints the variables and does nothing else.
"""

from __future__ import annotations

import subprocess
from pathlib import Path
from typing import Dict, List, Sequence

_PREFIX = "PGMC-VAR "
_GOAL = "pgmc-print-vars"


class PgxsError(Exception):
    """The Makefile could not be read by make; the message has make's own words."""


def makefile_vars(directory: Path, pg_config: str, names: Sequence[str], make_args: Sequence[str] = (),
                  timeout: float = 120) -> Dict[str, str]:
    """The values of `names` in directory's Makefile (empty string when unset)."""
    directory = Path(directory)
    recipe = " ".join(f"$(info {_PREFIX}{name}=$({name}))" for name in names)
    cmd = ["make", "--no-print-directory", "-C", str(directory), f"PG_CONFIG={pg_config}", *make_args,
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
