"""Shared fixtures: which PostgreSQL versions to test, building against each once, private clusters.

PG_EXT_MEMCHECK_PG_CONFIGS: colon-separated pg_config paths (CI sets 15, 13, 16, 17 and 18, in that order).
Without it: /usr/lib/postgresql/15/bin/pg_config plus the paths listed (one per line) in /tmp/pg_configs.txt.

The version matrix: tests marked `all_majors` (the hook library's suite) run once per pg_config, with the ids
pg13, pg15, ...; every other test that needs a PostgreSQL runs on the first pg_config only, which keeps a run over
five majors short. PG_EXT_MEMCHECK_FULL_MATRIX=1 runs those on every pg_config too.

In parallel (scripts/test runs `pytest -n N --dist loadgroup`), tests install builds into the PostgreSQL they use,
so no two processes may share one: each worker gets a private copy of the first pg_config (made by the controller
before any test runs, tests/pginstall_copy.py), every other major runs all its tests in one worker, and so do the
tests of the assertion-enabled build (parallel_group). A module's tests stay together, so its module-scoped
fixtures (clusters, runs shared by its tests) are set up once.
"""

from __future__ import annotations

import os
import re
import shutil
import sys
import tempfile
from pathlib import Path
from typing import Any, Callable, Dict, Iterator, List

import pytest

from reporter.build import build_all, make_install, read_pg_config
from reporter.cluster import Cluster
from reporter.pgconfig import PgConfig, PgConfigError
from tests.parallel import parallel_group
from tests.pginstall_copy import copied_pg_config, copy_installation

REPO_ROOT = Path(__file__).resolve().parent.parent
EXAMPLE_DIR = REPO_ROOT / "examples" / "buggy_pg_ext"
# Small C libraries, each the shape of a published extension (issue 19): tests/extensions/<name>/ (PGXS)
TEST_EXTENSIONS_DIR = REPO_ROOT / "tests" / "extensions"
DEFAULT_PG_CONFIG = "/usr/lib/postgresql/15/bin/pg_config"
EXTRA_PG_CONFIGS_FILE = Path("/tmp/pg_configs.txt")


def pg_config_paths() -> List[str]:
    env = os.environ.get("PG_EXT_MEMCHECK_PG_CONFIGS")
    if env:
        paths = [p for p in env.split(":") if p.strip()]
    else:
        paths = [DEFAULT_PG_CONFIG]
        if EXTRA_PG_CONFIGS_FILE.is_file():
            paths += [line.strip() for line in EXTRA_PG_CONFIGS_FILE.read_text().splitlines() if line.strip()]
    unique: List[str] = []
    for path in paths:
        if path not in unique:
            unique.append(path)
    return unique


def pg_config_id(path: str) -> str:
    """'pg15' for a pg_config that reports PostgreSQL 15.x; for one that cannot be run, the major its path
    suggests (/opt/pg/18/bin/pg_config), else the path itself (its tests then fail with the reason)."""
    try:
        return f"pg{PgConfig.from_path(path).major}"
    except PgConfigError:
        numbers = re.findall(r"(?<![0-9.])(\d{2})(?![0-9])", path)
        return f"pg{numbers[-1]}" if numbers else path


WORKER = os.environ.get("PYTEST_XDIST_WORKER", "")  # gw0, gw1, ... in a parallel run's workers
COPIES_ENV = "PG_EXT_MEMCHECK_TEST_PG_COPIES"  # where the controller put each worker's copy


def private_first_pg_config(paths: List[str]) -> List[str]:
    """In a worker of a parallel run: `paths` with the first replaced by this worker's copy of it, also in the
    environment (the action tests and the CLIs the tests start read PG_EXT_MEMCHECK_PG_CONFIGS)."""
    copies = os.environ.get(COPIES_ENV, "")
    if not (WORKER and copies and paths):
        return paths
    dest = Path(copies) / WORKER
    if Path(paths[0]).is_relative_to(dest):  # this module imported a second time (as tests.conftest)
        return paths
    mine = copied_pg_config(paths[0], dest) if dest.is_dir() else copy_installation(paths[0], dest)
    paths = [mine, *paths[1:]]
    os.environ["PG_EXT_MEMCHECK_PG_CONFIGS"] = ":".join(paths)
    return paths


PG_CONFIGS = private_first_pg_config(pg_config_paths())
PG_CONFIG_IDS = [pg_config_id(p) for p in PG_CONFIGS]
FULL_MATRIX = os.environ.get("PG_EXT_MEMCHECK_FULL_MATRIX", "") not in ("", "0")


_COPIES = pytest.StashKey[Path]()


def _parallel_workers(config: pytest.Config) -> int:
    if getattr(config.option, "dist", "no") == "no":
        return 0
    return len(getattr(config.option, "tx", None) or [])


def pytest_configure(config: pytest.Config) -> None:
    """The controller of a parallel run copies the first PostgreSQL once per worker, before any worker starts
    (a test may install into the original meanwhile: the action's install-method debian)."""
    workers = _parallel_workers(config)
    if WORKER or not workers or not PG_CONFIGS:
        return
    root = Path(tempfile.mkdtemp(prefix="pg-ext-memcheck-test-pg-"))
    os.chmod(root, 0o755)  # the test servers run as an unprivileged user
    config.stash[_COPIES] = root
    for n in range(workers):
        copy_installation(PG_CONFIGS[0], root / f"gw{n}")
    os.environ[COPIES_ENV] = str(root)


def pytest_unconfigure(config: pytest.Config) -> None:
    root = config.stash.get(_COPIES, None)
    if root is not None:
        shutil.rmtree(root, ignore_errors=True)


def pytest_terminal_summary(terminalreporter: Any) -> None:
    """Inside GitHub Actions every skipped test is also a ::notice line with its reason, so that a test this
    environment does not run is said in the run's log and annotations, not only in pytest's summary."""
    if os.environ.get("GITHUB_ACTIONS") != "true":
        return
    for report in terminalreporter.stats.get("skipped", []):
        longrepr = report.longrepr
        reason = longrepr[2] if isinstance(longrepr, tuple) and len(longrepr) == 3 else str(longrepr)
        text = f"{report.nodeid}: {reason}".replace("%", "%25").replace("\r", "%0D").replace("\n", "%0A")
        terminalreporter.write_line(f"::notice title=skipped test::{text}")


@pytest.hookimpl(optionalhook=True)
def pytest_xdist_make_scheduler(config: pytest.Config, log: object) -> object:
    """--dist loadgroup with the groups of parallel_group (xdist's own reads xdist_group marks)."""
    if getattr(config.option, "dist", "") != "loadgroup":
        return None
    from xdist.scheduler import LoadScopeScheduling

    class PostgresGroups(LoadScopeScheduling):
        def _split_scope(self, nodeid: str) -> str:
            return parallel_group(nodeid, PG_CONFIG_IDS)

    return PostgresGroups(config, log)


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    """Parametrise every test that needs a PostgreSQL (directly or through a fixture) by pg_config: all of them
    for `all_majors` tests (or with PG_EXT_MEMCHECK_FULL_MATRIX=1), else the first."""
    if "pg_config" not in metafunc.fixturenames:
        return
    every = FULL_MATRIX or metafunc.definition.get_closest_marker("all_majors") is not None
    count = len(PG_CONFIGS) if every else 1
    metafunc.parametrize("pg_config", PG_CONFIGS[:count], ids=PG_CONFIG_IDS[:count], indirect=True,
                         scope="session")


@pytest.fixture(scope="session")
def pg_config(request: pytest.FixtureRequest) -> str:
    return request.param


_installed: Dict[str, str] = {}


@pytest.fixture(scope="session")
def installed_pg_config(pg_config: str) -> str:
    """Build and install cext/ and examples/buggy_pg_ext against this pg_config, once per version."""
    if pg_config not in _installed:
        build_all(pg_config, [EXAMPLE_DIR], log=lambda msg: print(msg, file=sys.stderr))
        _installed[pg_config] = pg_config
    return _installed[pg_config]


_test_extensions: Dict[str, str] = {}


@pytest.fixture(scope="session")
def installed_test_extensions(installed_pg_config: str) -> str:
    """Build and install every library of tests/extensions/ against this pg_config (after cext/ and the
    example), once per version; returns the pg_config."""
    if installed_pg_config not in _test_extensions:
        info = read_pg_config(installed_pg_config)
        for ext in sorted(d for d in TEST_EXTENSIONS_DIR.iterdir() if (d / "Makefile").is_file()):
            make_install(ext, info, log=lambda msg: print(msg, file=sys.stderr))
        _test_extensions[installed_pg_config] = installed_pg_config
    return _test_extensions[installed_pg_config]


@pytest.fixture
def cluster_factory(installed_pg_config: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Callable]:
    """cluster_factory(preload=[...], settings={...}) -> a started Cluster, stopped at teardown."""
    clusters: List[Cluster] = []

    def make(**kw: object) -> Cluster:
        kw.setdefault("base_dir", tmp_path_factory.mktemp("cluster"))
        cluster = Cluster(installed_pg_config, **kw)  # type: ignore[arg-type]
        clusters.append(cluster)
        cluster.init()
        cluster.start()
        return cluster

    yield make
    for cluster in clusters:
        try:
            cluster.stop()
        finally:
            cluster.cleanup()
