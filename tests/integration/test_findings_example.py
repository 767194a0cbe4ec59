"""The bundled example on a real cluster, reported as findings: one per switched-on bug that leaks on that major,
on every major (tests/integration/test_hooklib.py's piles_up_on says which bugs leak where)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path
from typing import Dict, Set, Tuple

import pytest
import yaml

from reporter import results
from reporter.merge import Leg, Merged
from reporter.pgconfig import PgConfig
from tests.integration.test_hooklib import piles_up_on

pytestmark = [pytest.mark.integration, pytest.mark.all_majors]

EXAMPLE = Path(__file__).resolve().parents[2] / "examples" / "buggy_pg_ext"
CLI = [sys.executable, "-c", "import sys; from reporter.cli import main; sys.exit(main())"]
# What each bug leaves, as the C library reports it today (allocation sites will name the line once it records
# them; tests/unit/test_findings.py checks that part on hand-written legs).
BUG_CONTEXTS: Dict[str, Tuple[str, ...]] = {
    "top_ctx_alloc": ("TopMemoryContext",),
    "planner_ctx_leak": ("TopMemoryContext/MessageContext/BuggyPlannerLeakCtx",),
    "nested_leak": ("SQL function",),  # the SQL function's context (up to 17: from 18 it is freed per row)
}


def run_example(pg_config: str, out: Path, bugs: str) -> Merged:
    doc = yaml.safe_load((EXAMPLE / "memcheck.yml").read_text())
    doc["extension"]["path"] = str(EXAMPLE)
    doc["settings"]["buggy_pg_ext.bugs"] = bugs
    out.mkdir(parents=True)
    (out / "memcheck.yml").write_text(yaml.safe_dump(doc, sort_keys=False))
    proc = subprocess.run([*CLI, "run", "--config", str(out / "memcheck.yml"), "--pg-config", pg_config,
                           "--output", str(out / "results")], capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr
    res = results.load(out / "results")
    assert res["schema_version"] == 2 and res["postgresql"]["pkglibdir"]
    return Merged([Leg(out, res)])


def bug_of(where: str) -> str:
    for bug, contexts in BUG_CONTEXTS.items():
        if any(where == c or where.endswith("/" + c) for c in contexts):
            return bug
    return f"unexpected: {where}"


@pytest.mark.parametrize("bugs", ["planner_ctx_leak,top_ctx_alloc,nested_leak", "top_ctx_alloc", "nested_leak"])
def test_one_finding_per_switched_on_bug(installed_pg_config: str, tmp_path: Path, bugs: str) -> None:
    major = PgConfig.from_path(installed_pg_config).major
    merged = run_example(installed_pg_config, tmp_path / "run", bugs)
    serious = [f for f in merged.findings if f.severity in ("WARNING", "ERROR")]
    found: Set[str] = {bug_of(f.where) for f in serious}
    leaking = {bug for bug in bugs.split(",") if piles_up_on(major, bug)}
    assert found == leaking, [(f.check_type, f.where, f.severity) for f in merged.findings]
    assert len(serious) == len(found)  # exactly one per bug, not one per row
    if "," in bugs:  # the rows that used to be listed one by one
        assert sum(len(w["violations"]) for w in merged.present[0]["workloads"]) > 3 * len(merged.findings)
    nested = [f for f in serious if bug_of(f.where) == "nested_leak"]
    for f in nested:
        # bytes per statement run (each of the SQL function's inner statements), not "per iteration"
        assert f.rate is not None and f.rate["unit"] == "statement"
        assert 2048 <= f.rate["bytes"] <= 2048 * 1.10
