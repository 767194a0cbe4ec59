"""action.yml in one job (mode all) with install-method debian: PostgreSQL from the distribution's packages
(already installed here, so nothing is downloaded), fail-on never, a push event (no pull request)."""

from __future__ import annotations

import html
import shutil
import subprocess
from pathlib import Path

from harness import REPO_ROOT, ActionRunner, make_base_dir

# install-method debian installs the distribution's own PostgreSQL; postgresql-common names it
MAJOR = subprocess.run(["/usr/share/postgresql-common/supported-versions"], capture_output=True, text=True,
                       check=True).stdout.split()[-1]


def test_mode_all_debian_fail_on_never_passes_and_reports(action_copy: Path) -> None:
    base = make_base_dir()
    try:
        action = action_copy
        ws = base / "workspace"
        ignore = shutil.ignore_patterns("*.o", "*.so", "*.bc", "results", "__pycache__")
        shutil.copytree(REPO_ROOT / "examples" / "buggy_pg_ext", ws / "examples" / "buggy_pg_ext", ignore=ignore)
        r = ActionRunner(
            base_dir=base / "job", workspace=ws, action_path=action, event_name="push", job="single",
            inputs={
                "postgres-version": MAJOR, "install-method": "debian", "mode": "all", "fail-on": "never",
                "config": "examples/buggy_pg_ext/memcheck.yml", "extension-path": "examples/buggy_pg_ext",
                "python-version": "",
            },
        ).run()
        assert r.outcome == "success", r.log[-5000:]
        assert r.step("python").outcome == "skipped"  # python-version '' skips setup-python
        assert f"/usr/lib/postgresql/{MAJOR}/bin/pg_config" == r.step("postgres").outputs["pg-config"]
        assert r.outputs["conclusion"] == "success"
        assert r.outputs["max-severity"] == "ERROR"  # found, but fail-on never
        assert int(r.outputs["errors"]) >= 1
        assert r.outputs["comment-url"] == ""
        assert "no pull request number (not a pull_request event)" in r.step("report").log
        assert "wrong_ctx_alloc" in html.unescape(r.summary)
        assert (r.artifacts_dir / "run-1000" / f"pg-ext-memcheck-single-pg{MAJOR}" / "results.json").is_file()
        assert Path(r.outputs["junit-path"]).is_file()
        assert not r.errors()  # only warnings: nothing reaches fail-on never
    finally:
        shutil.rmtree(base, ignore_errors=True)
