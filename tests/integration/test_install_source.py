"""`pg-ext-memcheck install-postgres` for real: the cached source build, and the failures it promises.

The first test builds PostgreSQL 13 from the Debian source archive unless the cache already has it (CI's
.ci/run builds it before the tests, so there it is a cache hit). Uses the default cache dir (or
$PG_EXT_MEMCHECK_CACHE), like the users of the command.
"""

from __future__ import annotations

import os
import stat
import subprocess
import sys
from pathlib import Path
from typing import List

import pytest

from reporter import install
from reporter.pgconfig import PgConfig

pytestmark = pytest.mark.integration

REPO_ROOT = Path(__file__).resolve().parents[2]


def cli(args: List[str], timeout: float = 1200) -> subprocess.CompletedProcess:
    return subprocess.run(
        # As the console script does it: `python -m reporter.cli` would make a second, distinct UsageError.
        [sys.executable, "-c", "import sys; from reporter.cli import main; sys.exit(main())",
         "install-postgres", *args],
        cwd=REPO_ROOT, capture_output=True, text=True, timeout=timeout, stdin=subprocess.DEVNULL, check=False,
    )


def other_users_can_run(path: Path) -> bool:
    for parent in path.parents:
        if not os.stat(parent).st_mode & stat.S_IXOTH:
            return False
    return bool(os.stat(path).st_mode & stat.S_IXOTH)


def test_source_build_is_cached_and_reused() -> None:
    first = cli(["13", "--method", "source"])
    assert first.returncode == 0, first.stderr[-3000:]
    pg_config = first.stdout.splitlines()[-1]
    cfg = PgConfig.from_path(pg_config)
    assert cfg.major == 13
    assert Path(pg_config).is_relative_to(install.cache_dir() / "postgresql" / "13")
    assert other_users_can_run(Path(cfg.bindir) / "postgres")
    assert (Path(cfg.pkglibdir) / "pg_stat_statements.so").is_file()
    assert (Path(cfg.includedir_server) / "postgres.h").is_file()  # PGXS builds need the server headers

    prefix = install.source_prefix(install.cache_dir(), 13)
    untouched = {p: p.stat().st_mtime_ns for p in (prefix / install.STAMP, Path(pg_config), Path(cfg.bindir))}
    second = cli(["13", "--method", "source"])
    assert second.returncode == 0, second.stderr
    assert second.stdout.splitlines()[-1] == pg_config
    assert "configure" not in second.stderr and "downloaded" not in second.stderr
    # reused, not rebuilt: the stamp, pg_config and the installed programs are the first install's
    assert {p: p.stat().st_mtime_ns for p in untouched} == untouched


@pytest.mark.parametrize("version", ["99", "17"])
def test_version_not_in_the_archive(version: str) -> None:
    result = cli([version, "--method", "source"], timeout=600)
    assert result.returncode == 2, result.stderr
    assert result.stdout == ""
    assert f"PostgreSQL {version} cannot be had" in result.stderr
    assert "trixie" in result.stderr and "sid" in result.stderr  # the suites it tried
    assert "--method pgdg" in result.stderr


def test_too_old_version_is_a_usage_error() -> None:
    result = cli(["9", "--method", "source"], timeout=60)
    assert result.returncode == 2
    assert "not supported" in result.stderr and "13 or newer" in result.stderr


def test_debian_method_without_package() -> None:
    result = cli(["17", "--method", "debian"], timeout=120)
    assert result.returncode == 2
    assert "apt has no package postgresql-17" in result.stderr
    assert "--method source" in result.stderr


def test_debian_method_with_installed_package() -> None:
    result = cli(["15", "--method", "debian"], timeout=600)
    assert result.returncode == 0, result.stderr
    assert result.stdout.splitlines()[-1] == "/usr/lib/postgresql/15/bin/pg_config"


def test_pgdg_fails_here_with_its_reason() -> None:
    host = install.pgdg_host(Path(install.PGDG_SCRIPT).read_text())
    assert host, f"could not read the PGDG host from {install.PGDG_SCRIPT}"
    if install.proxy_configured() or install.reachable(host):
        # Running the script would really add PGDG to this machine's apt sources and install 18.
        pytest.skip(f"{host} may be reachable from here; this test covers machines without PGDG access")
    result = cli(["18", "--method", "pgdg"], timeout=60)
    assert result.returncode == 2
    assert "not reachable" in result.stderr
    assert "--method debian" in result.stderr and "--method source" in result.stderr
    assert not Path("/etc/apt/sources.list.d/pgdg.sources").exists()
