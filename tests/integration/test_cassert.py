"""An assertion-enabled PostgreSQL (--enable-cassert, PG_EXT_MEMCHECK_CASSERT_PG_CONFIG: .ci/setup.sh builds and
caches it) turns the example's write_past_end bug (one byte written past a 17-byte palloc) into a
memory_corruption finding, from the server's own "detected write past chunk end" warning."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from reporter import results
from reporter.build import build_all

pytestmark = pytest.mark.integration

REPO = Path(__file__).resolve().parents[2]
EXAMPLE = REPO / "examples" / "buggy_pg_ext"
CLI = [sys.executable, "-c", "import sys; from reporter.cli import main; sys.exit(main())"]
CASSERT = os.environ.get("PG_EXT_MEMCHECK_CASSERT_PG_CONFIG", "")


# .ci/run (the CI entry) always sets it: .ci/setup.sh builds the assertion-enabled PostgreSQL and fails if it cannot.
@pytest.mark.skipif(not CASSERT,
                    reason="no assertion-enabled PostgreSQL: set PG_EXT_MEMCHECK_CASSERT_PG_CONFIG")
def test_write_past_end_is_memory_corruption(tmp_path: Path) -> None:
    configure = subprocess.run([CASSERT, "--configure"], capture_output=True, text=True, check=True).stdout
    assert "--enable-cassert" in configure
    build_all(CASSERT, [EXAMPLE], log=lambda msg: print(msg, file=sys.stderr))
    config = tmp_path / "memcheck.yml"
    config.write_text(f"extension: {{path: {EXAMPLE}, name: buggy_pg_ext}}\n"
                      "settings: {buggy_pg_ext.bugs: 'write_past_end'}\n"
                      "workloads:\n  - {name: clean_select, sql: SELECT 1, iterations: 3, mode: 'off'}\n"
                      "  - {name: select_one, sql: SELECT 1, iterations: 3}\n")
    proc = subprocess.run([*CLI, "check", "--config", str(config), "--pg-config", CASSERT, "--output",
                           str(tmp_path / "out")], capture_output=True, text=True, timeout=600,
                          env={**os.environ, "COLUMNS": "300"})
    assert proc.returncode == 1, proc.stdout + proc.stderr[-3000:]
    doc = results.load(tmp_path / "out")
    found = {w["name"]: [v for v in w["violations"] if v["check_type"] == "memory_corruption"]
             for w in doc["workloads"]}
    assert found["select_one"], doc["workloads"]
    (v,) = found["select_one"]
    assert v["severity"] == "ERROR" and "detected write past chunk end" in v["detail"]
    assert found["clean_select"] == []  # measuring off: the warnings are not turned into findings there
    assert "memory_corruption" in proc.stdout
