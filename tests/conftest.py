"""Shared fixtures: which PostgreSQL versions to test, building against each once, private clusters.

PG_EXT_MEMCHECK_PG_CONFIGS: colon-separated pg_config paths (CI sets 13, 15 and 18). Without it:
/usr/lib/postgresql/15/bin/pg_config plus the paths listed (one per line) in /tmp/pg_configs.txt.
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
    """'pg15' from /usr/lib/postgresql/15/bin/pg_config or /opt/pg/18/bin/pg_config; else the path itself."""
    numbers = re.findall(r"(?<![0-9.])(\d{2})(?![0-9])", path)
    return f"pg{numbers[-1]}" if numbers else path


PG_CONFIGS = pg_config_paths()


@pytest.fixture(scope="session", params=PG_CONFIGS, ids=[pg_config_id(p) for p in PG_CONFIGS])
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
