"""A private copy of a PostgreSQL installation, for one test process of a parallel run (pytest -n).

Tests install builds into the PostgreSQL they use (the hook library, the example, a base revision's build of
it with other defaults), and `install` replaces a file by unlinking it and creating a new one: two processes
installing into one PostgreSQL at once collide (the second create fails) or start a server on a half-written
library. So each worker of a parallel run gets its own copy of the installations that many tests share.

PostgreSQL finds its share, library and include directories relative to the directory its programs run from,
so a copy that keeps the layout of the original under a new root is a working installation: for Debian's
packages, <root>/usr/lib/postgresql/15, <root>/usr/share/postgresql/15 and <root>/usr/include/postgresql.
"""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path
from typing import List

from reporter.pgconfig import PgConfig, PgConfigError


class CopyError(RuntimeError):
    """An installation that cannot be copied (or whose copy does not describe itself)."""


def _pkgincludedir(pg_config: str) -> Path:
    """The one directory of an installation that PgConfig does not read: its headers' top directory."""
    proc = subprocess.run([pg_config, "--pkgincludedir"], capture_output=True, text=True, check=False)
    if proc.returncode != 0 or not proc.stdout.startswith("/"):
        raise CopyError(f"{pg_config} --pkgincludedir: exit {proc.returncode}: {proc.stdout}{proc.stderr}")
    return Path(proc.stdout.strip())


def install_roots(pg_config: str) -> List[Path]:
    """The directories that hold one installation: the parent of its bindir (a source build's prefix, Debian's
    /usr/lib/postgresql/N) and whichever of its library, share and include directories lie outside it."""
    try:
        info = PgConfig.from_path(pg_config)
    except PgConfigError as exc:
        raise CopyError(str(exc)) from exc
    bindir = Path(info.bindir)
    if Path(pg_config).resolve().parent != bindir.resolve():
        raise CopyError(f"{pg_config} is not in the bindir it reports ({bindir}): a wrapper, which this cannot copy")
    candidates = [bindir.parent, Path(info.pkglibdir), Path(info.sharedir), _pkgincludedir(pg_config),
                  Path(info.includedir_server)]
    roots: List[Path] = []
    for path in sorted({p.resolve() for p in candidates}, key=lambda p: len(p.parts)):
        if not any(path == r or r in path.parents for r in roots):
            roots.append(path)
    for root in roots:
        if len(root.parts) < 3:
            raise CopyError(f"{pg_config}: {root} is too wide to copy (its own directory is expected)")
    return roots


def copied_pg_config(pg_config: str, dest: Path) -> str:
    """Where copy_installation(pg_config, dest) puts the copy's pg_config."""
    return str(Path(dest) / Path(pg_config).resolve().relative_to("/"))


def copy_installation(pg_config: str, dest: Path) -> str:
    """Copy the installation of `pg_config` under `dest`, keeping its layout; return the copy's pg_config.

    Real copies, not hard links: a build tool that wrote into an installed file instead of replacing it would
    otherwise write into the original too. The copy must report its own directories, or this raises.
    """
    dest = Path(dest)
    for root in install_roots(pg_config):
        shutil.copytree(root, dest / root.relative_to("/"), symlinks=True)
    copied = copied_pg_config(pg_config, dest)
    bindir = PgConfig.from_path(copied).bindir
    if not Path(bindir).resolve().is_relative_to(dest.resolve()):
        raise CopyError(f"the copy of {pg_config} at {copied} reports the bindir {bindir}: it is not relocatable")
    for directory in [dest, *dest.rglob("*")]:
        if directory.is_dir() and not directory.is_symlink():
            os.chmod(directory, 0o755)  # the test servers run as an unprivileged user
    return copied
