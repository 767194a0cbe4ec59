"""Kept builds (reporter/buildcache.py) on a real PostgreSQL: the same sources are compiled once, any change to a
source, to the make arguments or to the kept tree itself builds again, and what is installed is always the build
of the current sources. A one-file PGXS extension stands in for the hook library (make_install(keep=True))."""

from __future__ import annotations

import hashlib
import os
from pathlib import Path
from typing import List

import pytest

from reporter import buildcache
from reporter.build import make_install
from reporter.pgconfig import PgConfig

pytestmark = pytest.mark.integration

SOURCE = """#include "postgres.h"
#include "fmgr.h"
PG_MODULE_MAGIC;
PG_FUNCTION_INFO_V1(kept_answer);
Datum kept_answer(PG_FUNCTION_ARGS) { PG_RETURN_INT32(%d); }
"""
MAKEFILE = """MODULE_big = kept_build_probe
OBJS = kept.o
PG_CONFIG ?= pg_config
PGXS := $(shell $(PG_CONFIG) --pgxs)
include $(PGXS)
"""


@pytest.fixture
def tree(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv("PG_EXT_MEMCHECK_CACHE", str(tmp_path / "cache"))
    monkeypatch.delenv("PG_EXT_MEMCHECK_BUILD_CACHE", raising=False)
    src = tmp_path / "probe"
    src.mkdir()
    (src / "Makefile").write_text(MAKEFILE)
    (src / "kept.c").write_text(SOURCE % 1)
    return src


def build(tree: Path, info: PgConfig, *make_args: str) -> List[str]:
    lines: List[str] = []
    make_install(tree, info, list(make_args), log=lines.append, keep=True, jobs=2)
    return lines


def compiled(lines: List[str]) -> bool:
    return any(line.startswith("$ make") and not line.split("#")[0].rstrip().endswith(" install") for line in lines)


def installed(info: PgConfig) -> str:
    return hashlib.sha256(Path(info.pkglibdir, "kept_build_probe.so").read_bytes()).hexdigest()


def test_the_same_sources_are_compiled_once(tree: Path, installed_pg_config: str) -> None:
    info = PgConfig.from_path(installed_pg_config)
    first = build(tree, info)
    assert compiled(first), first
    so = installed(info)
    second = build(tree, info)
    assert not compiled(second), second
    assert any("built before with the same sources and PostgreSQL" in line for line in second)
    assert installed(info) == so
    assert len(list(buildcache.root().iterdir())) == 1


def test_a_changed_source_or_make_argument_is_built_again(tree: Path, installed_pg_config: str) -> None:
    info = PgConfig.from_path(installed_pg_config)
    build(tree, info)
    before = installed(info)
    (tree / "kept.c").write_text(SOURCE % 2)
    assert compiled(build(tree, info))
    assert installed(info) != before
    assert compiled(build(tree, info, "PG_CPPFLAGS=-DKEPT_PROBE"))
    assert len(list(buildcache.root().iterdir())) == 3


def test_a_kept_tree_make_finds_stale_is_built_again(tree: Path, installed_pg_config: str) -> None:
    info = PgConfig.from_path(installed_pg_config)
    build(tree, info)
    so = installed(info)
    (entry,) = buildcache.root().iterdir()
    kept_source = entry / "probe" / "kept.c"
    os.utime(kept_source, ns=(kept_source.stat().st_mtime_ns + 10**10,) * 2)  # newer than its object
    again = build(tree, info)
    assert compiled(again), again
    assert installed(info) == so  # the same sources, so the same library


def test_off_keeps_nothing(tree: Path, installed_pg_config: str, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PG_EXT_MEMCHECK_BUILD_CACHE", "off")
    info = PgConfig.from_path(installed_pg_config)
    assert compiled(build(tree, info))
    assert compiled(build(tree, info))
    assert not buildcache.root().exists()


def test_least_recently_used_entries_go(tree: Path, installed_pg_config: str,
                                        monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(buildcache, "KEEP", 2)
    info = PgConfig.from_path(installed_pg_config)
    for n in range(3):
        (tree / "kept.c").write_text(SOURCE % n)
        build(tree, info)
    assert len(list(buildcache.root().iterdir())) == 2
    assert compiled(build(tree, info)) is False  # the newest (n = 2) is still kept
    (tree / "kept.c").write_text(SOURCE % 0)
    assert compiled(build(tree, info))  # the oldest went
