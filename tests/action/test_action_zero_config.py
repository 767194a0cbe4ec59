"""The action's default on a real extension tree: no config, no extension-path, the workspace is the extension
(tests/fixtures/trees/tidy_ext: a dual Makefile, a --temp-config preloading pg_stat_statements, a role switch, an
isolation spec and TAP tests). validate-inputs, `build --extension` and `run --extension` make it work unaided."""

from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path

import pytest
from harness import REPO_ROOT, ActionRunner, default_pg_config, make_base_dir, pg_major

from reporter import regress

PG_CONFIG = default_pg_config()
MAJOR = pg_major(PG_CONFIG)


def test_the_default_runs_every_convention_of_a_clean_tree(action_copy: Path) -> None:
    lib = subprocess.run([PG_CONFIG, "--pkglibdir"], capture_output=True, text=True, check=True).stdout.strip()
    share = subprocess.run([PG_CONFIG, "--sharedir"], capture_output=True, text=True, check=True).stdout.strip()
    contrib = Path(share, "extension", "pg_stat_statements.control")
    if not regress.isolation_program(lib).is_file() or not contrib.is_file():
        pytest.skip(f"{PG_CONFIG} lacks pg_isolation_regress or pg_stat_statements")
    base = make_base_dir()
    try:
        ws = base / "workspace"
        shutil.copytree(REPO_ROOT / "tests" / "fixtures" / "trees" / "tidy_ext", ws)
        result = ActionRunner(
            base_dir=base / "job", workspace=ws, action_path=action_copy, run_id="2020", event_name="push",
            artifacts_dir=base / "artifacts",
            inputs={"postgres-version": MAJOR, "install-method": "none", "pg-config": PG_CONFIG, "mode": "run"},
        ).run()
        assert result.outcome == "success", result.log[-5000:]
        plan = result.step("validate").outputs
        assert plan["config"] == "" and plan["extension"] == str(ws.resolve())
        assert "USE_PGXS=1" in result.log
        out = result.outputs
        assert (out["conclusion"], out["findings"], out["max-severity"]) == ("success", "0", "none")
        doc = json.loads((Path(plan["results-dir"]) / "results.json").read_text())
        assert [(w["name"], w["status"]) for w in doc["workloads"]] == [
            ("tidy", "passed"), ("roles", "passed"), ("counter", "passed")]
        assert doc["notes"] == [regress.TAP_NOTE]
        assert f"note: {regress.TAP_NOTE}" in result.log
    finally:
        shutil.rmtree(base, ignore_errors=True)
