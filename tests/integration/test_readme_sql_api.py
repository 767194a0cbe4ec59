"""The README's SQL API promises, tried on a real cluster (issue 11, item 15, README half): the grants it lists
for a flushing role are enough, none of them is superfluous, and the limits it states are the functions' own."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Callable, List

import psycopg
import pytest
from psycopg.types.json import Jsonb

from reporter.cluster import Cluster
from tests.waiting import wait_until

pytestmark = pytest.mark.integration

README = Path(__file__).resolve().parents[2] / "README.md"


def sql_api_section() -> str:
    text = README.read_text(encoding="utf-8")
    return text.split("\n## SQL API\n", 1)[1].split("\n## ", 1)[0]


def grant_statements() -> List[str]:
    blocks = [b for b in re.findall(r"```sql\n(.*?)```", sql_api_section(), re.DOTALL) if "TO flusher" in b]
    assert len(blocks) == 1, "the README shows one GRANT block for a flushing role"
    return [" ".join(stmt.split()) for stmt in blocks[0].split(";") if stmt.strip()]


@pytest.fixture
def cluster(cluster_factory: Callable[..., Cluster]) -> Cluster:
    c = cluster_factory(preload=["pg_ext_memcheck", "buggy_pg_ext"], settings={"buggy_pg_ext.bugs": "top_ctx_alloc"})
    with c.connect() as conn:
        conn.execute("CREATE EXTENSION pg_ext_memcheck")
    return c


def flush_as_flusher(cluster: Cluster, grants: List[str]) -> int:
    """Make violations pending, create the role with these grants, flush as that role; drop the role."""
    with cluster.connect() as conn:
        conn.execute("CREATE ROLE flusher LOGIN")
        for grant in grants:
            conn.execute(grant)
        conn.execute("SET pg_ext_memcheck.memcheck_mode = 'all'")
        conn.execute("SELECT 1")
    # The measured session's backend publishes its findings to the ring when it exits, after the client has
    # gone: wait until they are pending (a session with measuring off adds none).
    with cluster.connect() as conn:
        wait_until(lambda: conn.execute("SELECT pending FROM ext_memcheck.status()").fetchone()[0] > 0,
                   "the measured session's findings to be pending in the ring")
    try:
        with cluster.connect(user="flusher") as conn:
            return int(conn.execute("SELECT ext_memcheck.flush_violations()").fetchone()[0])
    finally:
        with cluster.connect() as conn:
            conn.execute("DROP OWNED BY flusher")
            conn.execute("DROP ROLE flusher")


def test_documented_grants_let_a_role_flush(cluster: Cluster) -> None:
    grants = grant_statements()
    assert flush_as_flusher(cluster, grants) >= 1  # the pending violations were moved into violation_log


def test_every_documented_grant_is_needed(cluster: Cluster) -> None:
    grants = grant_statements()
    assert len(grants) >= 2
    for left_out in grants:
        with pytest.raises(psycopg.errors.InsufficientPrivilege, match="permission denied for"):
            flush_as_flusher(cluster, [g for g in grants if g != left_out])


def test_flushing_needs_no_grant_on_the_internals() -> None:
    """flush_violations() is SECURITY DEFINER: the README must not ask for grants on what it uses inside."""
    section = sql_api_section()
    assert "`SECURITY DEFINER`" in section
    grants = " ".join(grant_statements())
    for internal in ("pending_violations", "_mark_flushed", "_publish", "violation_log"):
        assert internal not in grants


def test_documented_scenario_grants(cluster: Cluster) -> None:
    section = " ".join(sql_api_section().split())
    function = "ext_memcheck.run_scenario(text, integer, text, jsonb, text, text[], integer, integer)"
    procedure = "ext_memcheck.scenario(text, integer, text, jsonb, text, text[], integer, integer, jsonb)"
    assert f"`{function}`" in section and f"`{procedure}`" in section
    with cluster.connect() as conn:
        conn.execute("CREATE ROLE scenarist LOGIN")
        conn.execute("GRANT USAGE ON SCHEMA ext_memcheck TO scenarist")
        conn.execute(f"GRANT EXECUTE ON FUNCTION {function} TO scenarist")
        conn.execute(f"GRANT EXECUTE ON PROCEDURE {procedure} TO scenarist")
    try:
        with cluster.connect(user="scenarist") as conn:
            out = conn.execute("SELECT ext_memcheck.run_scenario('growth_benchmark', 5, 'SELECT 1')").fetchone()[0]
            assert out["iterations"] == 5
            conn.autocommit = True
            out = conn.execute("CALL ext_memcheck.scenario('growth_benchmark', 5, 'SELECT 1')").fetchone()[0]
            assert out["iterations"] == 5 and out["transaction"] == "each"
    finally:
        with cluster.connect() as conn:
            conn.execute("DROP OWNED BY scenarist")
            conn.execute("DROP ROLE scenarist")


def test_documented_limits_are_the_functions_own(cluster: Cluster) -> None:
    section = sql_api_section()
    assert "`pattern` is at most 256 bytes" in section and "at most 32 names" in section
    assert "1 to 10,000,000 `iterations`" in section
    with cluster.connect() as conn:
        conn.execute("SELECT ext_memcheck.begin(%s)", ("x" * 256,))
        with pytest.raises(psycopg.Error, match=r"pattern is too long \(257 bytes, at most 256\)"):
            conn.execute("SELECT ext_memcheck.begin(%s)", ("x" * 257,))
    with cluster.connect() as conn:
        conn.execute("SELECT ext_memcheck.begin('', %s)", (Jsonb({"allowed_contexts": [f"C{i}" for i in range(32)]}),))
        with pytest.raises(psycopg.Error, match='options key "allowed_contexts" has more than 32 entries'):
            conn.execute("SELECT ext_memcheck.begin('', %s)",
                         (Jsonb({"allowed_contexts": [f"C{i}" for i in range(33)]}),))
    with cluster.connect() as conn:
        with pytest.raises(psycopg.Error, match="between 1 and 10000000"):
            conn.execute("SELECT ext_memcheck.run_scenario('growth_benchmark', 10000001, 'SELECT 1')")
