"""Shared fixtures: which PostgreSQL versions to test, building against each once, private clusters.

PG_EXT_MEMCHECK_PG_CONFIGS: colon-separated pg_config paths (CI sets 15, 13, 16, 17 and 18, in that order).
Without it: /usr/lib/postgresql/15/bin/pg_config plus the paths listed (one per line) in /tmp/pg_configs.txt.

The version matrix: tests marked `all_majors` (the hook library's suite) run once per pg_config, with the ids
pg13, pg15, ...; every other test that needs a PostgreSQL runs on the first pg_config only, which keeps a run over
five majors short. PG_EXT_MEMCHECK_FULL_MATRIX=1 runs those on every pg_config too.
"""

from __future__ import annotations

import os
import re
import sys
from pathlib import Path
from typing import Callable, Dict, Iterator, List

import pytest

from reporter.build import build_all
from reporter.cluster import Cluster
from reporter.pgconfig import PgConfig, PgConfigError

REPO_ROOT = Path(__file__).resolve().parent.parent
EXAMPLE_DIR = REPO_ROOT / "examples" / "buggy_pg_ext"
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


PG_CONFIGS = pg_config_paths()
PG_CONFIG_IDS = [pg_config_id(p) for p in PG_CONFIGS]
FULL_MATRIX = os.environ.get("PG_EXT_MEMCHECK_FULL_MATRIX", "") not in ("", "0")


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
