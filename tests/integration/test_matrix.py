"""The version matrix: each PostgreSQL under test is the major its test id names, and it runs the hook library."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Callable

import pytest

from reporter.pgconfig import PgConfig

pytestmark = [pytest.mark.integration, pytest.mark.all_majors]


def test_server_is_the_major_its_id_names(cluster_factory: Callable, pg_config: str,
                                          request: pytest.FixtureRequest) -> None:
    info = PgConfig.from_path(pg_config)
    assert request.node.callspec.id == f"pg{info.major}"
    cluster = cluster_factory(preload=["pg_ext_memcheck"])
    with cluster.connect() as conn:
        version_num = conn.execute("SELECT current_setting('server_version_num')::int").fetchone()[0]
        version = conn.execute("SHOW server_version").fetchone()[0]
        conn.execute("CREATE EXTENSION pg_ext_memcheck")
        extversion = conn.execute(
            "SELECT extversion FROM pg_extension WHERE extname = 'pg_ext_memcheck'").fetchone()[0]
    assert version_num // 10000 == info.major
    assert version.split()[0] == info.version  # the very build pg_config describes, e.g. 17.12
    control = (Path(__file__).resolve().parents[2] / "sql" / "pg_ext_memcheck.control").read_text()
    assert extversion == re.search(r"default_version = '([^']+)'", control).group(1)
