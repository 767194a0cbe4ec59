"""The private copies a parallel test run gives each worker (tests/pginstall_copy.py): a copy of the first
PostgreSQL is a working installation of its own, and what is installed into it never reaches the original."""

from __future__ import annotations

import os
import shutil
import stat
import tempfile
from pathlib import Path
from typing import Iterator

import pytest

from reporter.build import build_all
from reporter.cluster import Cluster
from reporter.pgconfig import PgConfig
from tests.pginstall_copy import CopyError, copy_installation, install_roots

pytestmark = pytest.mark.integration

EXAMPLE_DIR = Path(__file__).resolve().parents[2] / "examples" / "buggy_pg_ext"


@pytest.fixture
def dest() -> Iterator[Path]:
    """A directory the server user can enter (pytest's tmp_path is closed to other users)."""
    base = Path(tempfile.mkdtemp(prefix="pg-ext-memcheck-copy-test-"))
    os.chmod(base, 0o755)
    yield base / "copy"
    shutil.rmtree(base, ignore_errors=True)


def test_a_copy_is_an_installation_of_its_own(pg_config: str, dest: Path) -> None:
    original = PgConfig.from_path(pg_config)
    copy = PgConfig.from_path(copy_installation(original.path, dest))
    assert copy.version == original.version
    for field in ("bindir", "pkglibdir", "sharedir", "includedir_server"):
        mine = Path(getattr(copy, field))
        assert mine.is_relative_to(dest) and mine.is_dir(), (field, mine)
        assert mine.relative_to(dest) == Path(getattr(original, field)).resolve().relative_to("/")
    assert stat.S_IMODE(dest.stat().st_mode) & 0o055 == 0o055  # the server user can enter it

    build_all(copy.path, [EXAMPLE_DIR], log=lambda _msg: None)
    probe = Path(copy.pkglibdir, "pg_ext_memcheck_copy_probe.so")
    probe.write_bytes(b"")
    assert not Path(original.pkglibdir, probe.name).exists()

    cluster = Cluster(copy.path, preload=["pg_ext_memcheck"])
    cluster.init()
    cluster.start()
    try:
        with cluster.connect() as conn:
            assert conn.execute("SHOW server_version").fetchone()[0].split()[0] == original.version
            lib = conn.execute("SELECT setting FROM pg_config WHERE name = 'PKGLIBDIR'").fetchone()[0]
            assert Path(lib).resolve() == Path(copy.pkglibdir).resolve()  # the server runs from the copy
    finally:
        cluster.stop()
        cluster.cleanup()


def test_roots_nest_nothing_twice(pg_config: str) -> None:
    roots = install_roots(pg_config)
    for a in roots:
        assert not any(b != a and b in a.parents for b in roots), roots


def test_a_wrapper_pg_config_is_refused(pg_config: str, tmp_path: Path) -> None:
    wrapper = tmp_path / "pg_config"
    wrapper.write_text(f'#!/bin/sh\nexec {pg_config} "$@"\n')
    wrapper.chmod(0o755)
    with pytest.raises(CopyError, match="not in the bindir it reports"):
        install_roots(str(wrapper))
