"""Finished builds of the hook library, kept so that the same sources are compiled once per PostgreSQL.

`check --compare` builds the hook library for the head and again for the base revision, and a developer's
`check`, `build` and `run` loop recompiles its two dozen files each time, although nothing changed. A build tree
is kept under the cache directory (`hooklib/<key>`) once `make` succeeded in it, and later builds with the same
key install from a copy of it. The key covers every input of the compiler: each file of the sources (path and
content), the PostgreSQL (its pg_config's path, version, configure options, compiler and flags, and the stamp of
its server headers and PGXS makefile), the make arguments and where the debug information says the sources are.
A copy whose objects make does not consider up to date is not used (the caller builds as if nothing were kept).
`PG_EXT_MEMCHECK_BUILD_CACHE=off` turns this off.
"""

from __future__ import annotations

import fnmatch
import hashlib
import os
import shutil
import subprocess
import tempfile
import time
from pathlib import Path
from typing import Iterable, Sequence

from reporter.install import cache_dir
from reporter.pgconfig import PgConfig

KEEP = 32  # entries kept (a few MB each); the least recently used beyond that are removed when one is added


def enabled() -> bool:
    return os.environ.get("PG_EXT_MEMCHECK_BUILD_CACHE", "").lower() not in ("off", "0", "no", "false")


def root() -> Path:
    return cache_dir() / "hooklib"


def _source_files(tree: Path, ignore: Sequence[str]) -> Iterable[Path]:
    """The files of `tree` a build copies: none under a name matching an `ignore` pattern."""
    for path in sorted(tree.rglob("*")):
        parts = path.relative_to(tree).parts
        if path.is_file() and not any(fnmatch.fnmatch(part, pat) for part in parts for pat in ignore):
            yield path


def _installation(info: PgConfig) -> bytes:
    """What of the PostgreSQL installation reaches the compiler and the linker."""
    proc = subprocess.run([info.path, "--configure", "--cc", "--cflags", "--cflags_sl", "--ldflags", "--pgxs"],
                          capture_output=True, check=False, timeout=30)
    facts = [os.path.realpath(info.path), info.version, proc.stdout.decode(errors="replace"), str(proc.returncode)]
    pgxs = proc.stdout.decode(errors="replace").splitlines()[-1:] if proc.returncode == 0 else []
    for stamped in [os.path.join(info.includedir_server, "pg_config.h"), *pgxs]:
        try:
            st = os.stat(stamped)
            facts.append(f"{stamped} {st.st_size} {st.st_mtime_ns}")
        except OSError:
            facts.append(f"{stamped} missing")
    return "\n".join(facts).encode()


def key(trees: Sequence[Path], info: PgConfig, make_args: Sequence[str], source_root: Path,
        ignore: Sequence[str] = ()) -> str:
    """The key of a build of `trees` (without the files `ignore` names, which the build does not copy)."""
    digest = hashlib.sha256()
    for tree in trees:
        digest.update(f"tree {tree.name}\n".encode())
        for path in _source_files(tree, ignore):
            digest.update(f"file {path.relative_to(tree)} {path.stat().st_size}\n".encode())
            digest.update(path.read_bytes())
    digest.update(_installation(info))
    digest.update("\0".join(make_args).encode())
    digest.update(str(source_root).encode())
    return digest.hexdigest()[:32]


def fetch(key_: str, dest: Path) -> bool:
    """Copy the kept build tree `key_` into `dest` (keeping file times, so make sees it up to date)."""
    entry = root() / key_
    if not enabled() or not entry.is_dir():
        return False
    try:
        shutil.copytree(entry, dest, symlinks=True, dirs_exist_ok=True)
        os.utime(entry)  # recently used
    except OSError:
        return False
    return True


def store(key_: str, tree: Path) -> None:
    """Keep the build tree `tree` (after a successful make) as `key_`; a failure to keep it is not an error."""
    if not enabled():
        return
    base = root()
    try:
        base.mkdir(parents=True, exist_ok=True)
        staging = Path(tempfile.mkdtemp(prefix=".staging-", dir=base))
        shutil.copytree(tree, staging, symlinks=True, dirs_exist_ok=True)
        try:
            os.rename(staging, base / key_)  # atomic: a reader sees a whole tree or none
        except OSError:  # another process kept the same build first
            shutil.rmtree(staging, ignore_errors=True)
        _prune(base)
    except OSError:
        return


def _prune(base: Path) -> None:
    now = time.time()
    for staging in base.glob(".staging-*"):  # left by a process that died while keeping a build
        if now - staging.stat().st_mtime > 3600:
            shutil.rmtree(staging, ignore_errors=True)
    entries = sorted((p for p in base.iterdir() if p.is_dir() and not p.name.startswith(".")),
                     key=lambda p: p.stat().st_mtime, reverse=True)
    for old in entries[KEEP:]:
        shutil.rmtree(old, ignore_errors=True)
