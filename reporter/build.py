"""Build and install the hook library and user extensions with PGXS against exactly one pg_config."""

from __future__ import annotations

import os
import re
import shlex
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Callable, List, Sequence

from reporter import buildcache, exttree, pgxs
from reporter.pgconfig import PgConfig, PgConfigError

# The hook library's sources (cext/ and its sibling sql/) and the bundled example: beside the reporter package in
# a checkout of the repository (and an editable install of it); in an installed wheel, the copy setup.py packs
# into the package as package data (reporter/bundled/), so that `build` and `check` work from any directory.
PACKAGE_DIR = Path(__file__).resolve().parent
BUNDLED_DIR = PACKAGE_DIR / "bundled"
REPO_ROOT = PACKAGE_DIR.parent
SOURCE_ROOT = BUNDLED_DIR if (BUNDLED_DIR / "cext" / "Makefile").is_file() else REPO_ROOT
CEXT_DIR = SOURCE_ROOT / "cext"
EXAMPLE_DIR = SOURCE_ROOT / "examples" / "buggy_pg_ext"


class BuildError(Exception):
    """A build, install or version check that failed; the message says which and why."""


def read_pg_config(pg_config: str) -> PgConfig:
    """The facts of one pg_config, with its failures turned into BuildError for the commands."""
    try:
        return PgConfig.from_path(pg_config)
    except PgConfigError as exc:
        raise BuildError(str(exc)) from exc


def major_from_path(pg_config: str) -> int | None:
    """The major a Debian/PGDG-style path promises (/usr/lib/postgresql/15/bin/pg_config), if any."""
    match = re.search(r"/postgresql/(\d+)/bin/pg_config$", str(pg_config))
    return int(match.group(1)) if match else None


def check_major(info: PgConfig, expect_major: int | None) -> None:
    """Fail when the pg_config is not the major that was asked for (explicitly or by its path)."""
    if expect_major is not None and info.major != expect_major:
        raise BuildError(
            f"{info.path} is PostgreSQL {info.version} (major {info.major}), but major {expect_major} was requested"
        )
    promised = major_from_path(info.path)
    if promised is not None and promised != info.major:
        raise BuildError(f"{info.path} lives under postgresql/{promised} but reports PostgreSQL {info.version}")


# Build products that must not travel into the private build copy (they may belong to another major).
_ARTIFACTS = ("*.o", "*.so", "*.bc", "*.dylib", "*.a", ".deps", ".git", "results", "tmp_check")


def debug_make_args(make_args: Sequence[str], build_root: Path, source_root: Path) -> List[str]:
    """make_args plus COPT with `-g` and a prefix map from the build copy back to the sources.

    COPT is PGXS's variable for extra compiler flags: it is appended to CFLAGS, so the extension's own
    PG_CFLAGS (often `-Wall -Werror`) stay in force. A COPT the user passes keeps its flags; ours are added.
    The map makes the debug information name `source_root/...` files, so sites resolve to the user's sources.
    """
    ours = f"-g {shlex.quote(f'-fdebug-prefix-map={build_root}={source_root}')}"
    out: List[str] = []
    merged = False
    for arg in make_args:
        if arg.startswith("COPT=") and not merged:
            out.append(f"{arg} {ours}")
            merged = True
        else:
            out.append(arg)
    return out if merged else [*out, f"COPT={ours}"]


def make_install(
    directory: Path,
    info: PgConfig,
    make_args: Sequence[str] = (),
    log: Callable[[str], None] = lambda _msg: None,
    siblings: Sequence[str] = (),
    source_root: Path | None = None,
    keep: bool = False,
    jobs: int = 1,
) -> None:
    """Build and install one PGXS tree with PG_CONFIG pinned to `info.path`.

    The build runs in a private copy of the tree (plus `siblings`, directories next to it that its Makefile
    reaches with ../): object files left in the tree by a build against another major would otherwise be
    considered up to date and linked into this one, and two builds (or a developer's) could not share it.
    It compiles with debug information (see debug_make_args) so allocation sites resolve to source lines;
    `source_root` (default: the tree's parent) is where the debug information says the sources are: a base
    revision checked out elsewhere names the files of the working tree, so that its sites read like HEAD's.
    With `keep`, the finished build is kept (reporter/buildcache.py) and the next build of the same sources
    against the same PostgreSQL installs from it instead of compiling again. `jobs`: make's -j (the user's
    extension is built as its authors build it, one job; the hook library in parallel).
    """
    directory = Path(directory).resolve()
    instead = exttree.found_instead(directory)
    if instead is not None:
        raise BuildError(exttree.not_an_extension(instead))
    source_root = source_root or directory.parent
    trees = [directory, *(directory.parent / s for s in siblings)]
    cache_key = None
    if keep and buildcache.enabled():
        cache_key = buildcache.key(trees, info, make_args, source_root, ignore=_ARTIFACTS)
    with tempfile.TemporaryDirectory(prefix="pgmc-build-") as tmp:
        build_dir = Path(tmp) / directory.name
        args = debug_make_args(make_args, Path(tmp).resolve(), source_root)
        base = ["make", "-C", str(build_dir), f"PG_CONFIG={info.path}", *args]
        kept = cache_key is not None and buildcache.fetch(cache_key, Path(tmp)) and _up_to_date(base)
        if kept:
            log(f"# {directory.name}: built before with the same sources and PostgreSQL, installing that build")
        else:
            _copy_sources(directory, siblings, Path(tmp))
            _make(base + ([f"-j{jobs}"] if jobs > 1 else []), directory, "build", info, log)
            if cache_key is not None:
                buildcache.store(cache_key, Path(tmp))
        _make(base + ["install"], directory, "install", info, log)


def _copy_sources(directory: Path, siblings: Sequence[str], dest: Path) -> None:
    for stale in dest.iterdir():  # what a kept build found out of date left
        if stale.is_dir() and not stale.is_symlink():
            shutil.rmtree(stale)
        else:
            stale.unlink()
    ignore = shutil.ignore_patterns(*_ARTIFACTS)
    shutil.copytree(directory, dest / directory.name, symlinks=True, ignore=ignore)
    for sibling in siblings:
        shutil.copytree(directory.parent / sibling, dest / sibling, symlinks=True, ignore=ignore)


def _up_to_date(make: List[str]) -> bool:
    """`make -q`: would nothing be compiled? (A kept build whose files make finds stale is built again.)"""
    return subprocess.run([*make, "-q", "all"], capture_output=True).returncode == 0


def _make(cmd: List[str], directory: Path, what: str, info: PgConfig, log: Callable[[str], None]) -> None:
    if what == "install" and _needs_sudo(info):
        # GitHub runners: the runner user may not write to the packaged PostgreSQL's directories,
        # but has password-less sudo (-n: fail rather than prompt).
        cmd = ["sudo", "-n", *cmd]
    log(f"$ {' '.join(cmd)}   # copy of {directory}")
    proc = subprocess.run(cmd, capture_output=True, text=True)
    if proc.returncode != 0:
        tail = "\n".join((proc.stdout + proc.stderr).splitlines()[-30:])
        raise BuildError(f"make {what} failed for {directory} (exit {proc.returncode}):\n{tail}")


def _needs_sudo(info: PgConfig) -> bool:
    if os.geteuid() == 0 or shutil.which("sudo") is None:
        return False
    return not all(os.access(d, os.W_OK) for d in (info.pkglibdir, info.sharedir))


def install_hook_library(info: PgConfig, log: Callable[[str], None] = lambda _msg: None) -> None:
    """cext/ needs ../sql for its control file and scripts."""
    make_install(CEXT_DIR, info, log=log, siblings=("sql",), keep=True, jobs=os.cpu_count() or 1)


def install_extension(directory: Path, info: PgConfig, make_args: Sequence[str] = (),
                      log: Callable[[str], None] = lambda _msg: None, source_root: Path | None = None) -> None:
    """The user's extension, built and installed as make_install does, with USE_PGXS=1 before its make_args
    (reporter/pgxs.py: a dual Makefile builds against PGXS, not contrib's tree)."""
    make_install(directory, info, pgxs.make_args(make_args), log=log, source_root=source_root)


def build_all(
    pg_config: str | PgConfig,
    extensions: Sequence[Path] = (),
    expect_major: int | None = None,
    make_args: Sequence[str] = (),
    log: Callable[[str], None] = lambda msg: print(msg, file=sys.stderr),
) -> PgConfig:
    """Build and install the hook library, then each extension, against `pg_config` (its path, or its facts
    already read); return its facts. `build` does this; `run` and `check` add their own steps between."""
    info = pg_config if isinstance(pg_config, PgConfig) else read_pg_config(pg_config)
    check_major(info, expect_major)
    log(f"building against PostgreSQL {info.version} ({info.path})")
    install_hook_library(info, log=log)
    ext_dirs: List[Path] = [Path(e) for e in extensions]
    for ext in ext_dirs:
        install_extension(ext, info, make_args, log=log)
    return info
