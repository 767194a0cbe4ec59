"""action.yml end to end on a pull request that adds a leak: the workspace is a git repository (the example,
two commits: the base without the bug, the head with it), the event names the base commit, and the action
compares with it by default (compare input empty). Then the new inputs: comment: changes (a second run with the
same findings leaves the comment alone), annotations and job-summary off, compare none; and cassert with a
source build taken from the actions/cache store.

PostgreSQL: the first of PG_EXT_MEMCHECK_PG_CONFIGS (install-method none); the assertion-enabled build:
PG_EXT_MEMCHECK_CASSERT_PG_CONFIG (.ci/setup.sh builds and exports it).
"""

from __future__ import annotations

import html
import json
import os
import re
import shutil
from pathlib import Path
from typing import Dict, Iterator

import pytest
from fakegithub import FakeGitHub, FakeState
from harness import REPO_ROOT, ActionResult, ActionRunner, default_pg_config, make_base_dir, pg_major

from reporter import install
from reporter.pgconfig import PgConfig

# the same memcheck.yml and commits as the CLI's comparison tests
from tests.integration.test_compare import CONFIG, git, set_default_bugs
from tests.pginstall_copy import copy_installation

PG_CONFIG = default_pg_config()
MAJOR = pg_major(PG_CONFIG)
BUG = "nested_leak" if int(MAJOR) < 18 else "func_row_leak"  # 18 frees a SQL function's memory per row
TOKEN = "ghs_compare_token"
PR = 42


class Job:
    def __init__(self, base: Path, action: Path, ws: Path, base_sha: str, head_sha: str) -> None:
        self.base, self.action, self.ws, self.base_sha, self.head_sha = base, action, ws, base_sha, head_sha
        self.state = FakeState(repository="octo/ext", token=TOKEN, prs=set())
        self.state.add_pull(PR, head_sha)
        self.cache = base / "actions-cache"  # one actions/cache store for every job of this "repository"

    def run(self, name: str, server: FakeGitHub, run_id: str, **inputs: str) -> ActionResult:
        event = {"number": PR, "pull_request": {"number": PR, "head": {"sha": self.head_sha},
                                                "base": {"sha": self.base_sha, "ref": "main"}}}
        return ActionRunner(
            base_dir=self.base / name, workspace=self.ws, action_path=self.action, run_id=run_id,
            event_name="pull_request", event=event, token=TOKEN, env={"GITHUB_API_URL": server.url},
            artifacts_dir=self.base / "artifacts", cache_dir=self.cache,
            inputs={"install-method": "none", "pg-config": PG_CONFIG, "postgres-version": MAJOR, **inputs},
        ).run()


@pytest.fixture(scope="module")
def job(action_copy: Path) -> Iterator[Job]:
    base = make_base_dir()
    action = action_copy
    ws = base / "workspace"
    shutil.copytree(REPO_ROOT / "examples" / "buggy_pg_ext", ws,
                    ignore=shutil.ignore_patterns("*.o", "*.so", "*.bc", "results", "memcheck.yml"))
    (ws / "memcheck.yml").write_text(CONFIG)
    git(ws, "init", "-q", "-b", "main")
    set_default_bugs(ws, "")
    git(ws, "add", "-A")
    git(ws, "commit", "-q", "-m", "base: no bug")
    base_sha = git(ws, "rev-parse", "HEAD")
    set_default_bugs(ws, BUG)
    git(ws, "commit", "-q", "-am", f"head: {BUG}")
    yield Job(base, action, ws, base_sha, git(ws, "rev-parse", "HEAD"))
    shutil.rmtree(base, ignore_errors=True)


@pytest.fixture(scope="module")
def first(job: Job) -> Iterator[Dict[str, object]]:
    """The pull request's run (mode all, comment: changes), and a second run with the same findings."""
    with FakeGitHub(job.state) as server:
        r1 = job.run("job-1", server, "501", comment="changes")
        bodies_after_first = list(job.state.all_bodies(PR))
        writes_before = len([q for q in job.state.requests if q.method != "GET"])
        r2 = job.run("job-2", server, "502", comment="changes")
        writes_after = len([q for q in job.state.requests if q.method != "GET"])
    yield {"r1": r1, "r2": r2, "bodies": bodies_after_first, "writes": (writes_before, writes_after)}


def test_the_base_commit_of_the_pull_request_is_compared_by_default(job: Job, first: Dict[str, object]) -> None:
    r = first["r1"]
    assert isinstance(r, ActionResult)
    assert r.step("validate").outputs["compare"] == job.base_sha, r.log[-3000:]
    assert r.step("base").outcome == "success"
    results = Path(r.step("validate").outputs["results-dir"])
    info = json.loads((results / "base" / "base.json").read_text())
    assert info["status"] == "ran" and info["sha"] == job.base_sha
    assert (results / "base" / "results.json").is_file()
    assert git(job.ws, "worktree", "list", "--porcelain").count("worktree ") == 1  # the temporary one is gone


def test_outputs_and_failure_name_the_new_finding_only(job: Job, first: Dict[str, object]) -> None:
    r = first["r1"]
    assert isinstance(r, ActionResult)
    out = r.outputs
    assert (out["new-findings"], out["worse-findings"], out["fixed-findings"]) == ("1", "0", "0")
    assert out["compared-with"] == job.base_sha[:12]
    assert out["conclusion"] == "failure" and r.outcome == "failure"
    assert any(e.startswith("1 new or worse finding(s) at or above warning") for e in r.errors()), r.errors()
    titles = [a.title or "" for a in r.annotations]
    assert any(t.startswith("pg-ext-memcheck: new ") and "context_leak" in t for t in titles), titles
    # inside GitHub every annotation has a file: the finding's line, else the workflow file (GITHUB_WORKFLOW_REF)
    assert all(a.file for a in r.annotations), [(a.level, a.title, a.file) for a in r.annotations]
    assert [a.file for a in r.annotations if a.level == "error" and a.title == "pg-ext-memcheck"] == [
        ".github/workflows/memcheck.yml"]


def test_summary_and_comment_lead_with_what_the_change_made_worse(first: Dict[str, object]) -> None:
    r = first["r1"]
    assert isinstance(r, ActionResult)
    summary = html.unescape(r.summary)
    assert summary.startswith("## ❌ pg-ext-memcheck: this change adds 1 finding")
    assert "### What this change did\n\nCompared with" in summary
    assert summary.index("- 🆕 new: ❌ ERROR [context_leak]") < summary.index("| severity | what |")
    assert summary.count("| ❌ ") == 1  # the one new finding is what fails
    bodies = first["bodies"]
    assert isinstance(bodies, list) and len(bodies) == 1
    assert re.match(r"<!-- pg-ext-memcheck:memcheck run=501 attempt=1 digest=[0-9a-f]{16} -->\n## ❌ pg-ext-memcheck: "
                    r"this change adds 1 finding", bodies[0])


def test_comment_changes_leaves_an_unchanged_report_alone(job: Job, first: Dict[str, object]) -> None:
    r2 = first["r2"]
    assert isinstance(r2, ActionResult)
    assert r2.outputs["new-findings"] == "1"
    before, after = first["writes"]  # type: ignore[misc]
    assert after == before, "the second run with the same findings wrote to the pull request"
    assert job.state.all_bodies(PR) == first["bodies"]
    assert "PR comment unchanged" in r2.step("report").log
    assert r2.step("venv-cache").outputs["cache-hit"] == "true"  # the first job saved the reporter's venv
    assert "the reporter's venv from the cache" in r2.step("venv").log


def test_compare_none_annotations_and_summary_off(job: Job) -> None:
    with FakeGitHub(job.state) as server:
        r = job.run("job-3", server, "503", mode="run", compare="none", annotations="off",
                    **{"job-summary": "off", "fail-on-scope": "all"})
    assert r.step("base").outcome == "skipped" and r.outputs["compared-with"] == ""
    assert r.step("report").summary == ""  # job-summary off
    assert not [a for a in r.annotations if (a.title or "").startswith("pg-ext-memcheck: ")
                and "context_leak" in (a.title or "")]  # no per-finding annotation
    assert r.outputs["conclusion"] == "failure"  # no base: every finding counts
    assert Path(r.outputs["markdown-path"]).is_file()  # the report is still written


CASSERT = os.environ.get("PG_EXT_MEMCHECK_CASSERT_PG_CONFIG", "")


# .ci/run (the CI entry) always sets it: .ci/setup.sh builds the assertion-enabled PostgreSQL and fails if it cannot.
@pytest.mark.skipif(not CASSERT,
                    reason="no assertion-enabled PostgreSQL: set PG_EXT_MEMCHECK_CASSERT_PG_CONFIG "
                           "(.ci/setup.sh builds one)")
def test_cassert_source_build_from_the_cache_finds_memory_corruption(action_copy: Path) -> None:
    """cassert: true with install-method source: the build comes from the cache directory (a completed install
    where the source route keeps it: a copy of the assertion-enabled build and its stamp), is saved to the
    actions/cache store by the first job and, gone from the disk, restored from that store by the second; the
    write past a chunk's end is a memory_corruption finding in both."""
    major = pg_major(CASSERT)
    base = make_base_dir()
    try:
        action = action_copy
        ws = base / "workspace"
        shutil.copytree(REPO_ROOT / "examples" / "buggy_pg_ext", ws,
                        ignore=shutil.ignore_patterns("*.o", "*.so", "*.bc", "results", "memcheck.yml"))
        (ws / "memcheck.yml").write_text(
            "extension: {path: ., name: buggy_pg_ext}\nsettings: {buggy_pg_ext.bugs: write_past_end}\n"
            "workloads:\n  - {name: select_one, sql: SELECT 1, iterations: 3}\n")
        cache = base / "pg-cache"
        prefix = install.source_prefix(cache, int(major), cassert=True)
        built = copy_installation(CASSERT, prefix / "build")
        info = PgConfig.from_path(built)
        (prefix / install.STAMP).write_text(json.dumps(
            {"major": int(major), "version": info.version, "pg_config": built, "cassert": True,
             "requires": [str(Path(info.bindir) / "postgres")]}))
        runs = []
        for n in (1, 2):
            if n == 2:
                shutil.rmtree(prefix)  # the second job's machine has no build: only the actions/cache store has it
            runs.append(ActionRunner(
                base_dir=base / f"job-{n}", workspace=ws, action_path=action, run_id=f"70{n}", event_name="push",
                cache_dir=base / "actions-cache", env={"PG_EXT_MEMCHECK_CACHE": str(cache)},
                inputs={"install-method": "source", "cassert": "true", "postgres-version": major, "mode": "run",
                        "fail-on": "error"},
            ).run())
        first, second = runs
        assert first.step("postgres").outputs["pg-config"] == built, first.log[-3000:]
        assert second.step("postgres").outputs["pg-config"] == built, second.log[-3000:]
        assert install.read_stamp(prefix, int(major)) == built  # restored whole: the stamp and the build
        assert first.step("postgres-cache").outputs["cache-hit"] == "false"
        assert first.step("Save the PostgreSQL build").outcome == "success"
        assert second.step("postgres-cache").outputs["cache-hit"] == "true"
        assert second.step("Save the PostgreSQL build").outcome == "skipped"
        for r in runs:
            results = Path(r.step("validate").outputs["results-dir"]) / "results.json"
            doc = json.loads(results.read_text())
            found = [v for w in doc["workloads"] for v in w["violations"] if v["check_type"] == "memory_corruption"]
            assert found and "detected write past chunk end" in found[0]["detail"], doc["workloads"]
            assert r.outputs["conclusion"] == "failure" and r.outputs["max-severity"] == "ERROR"
            assert "memory_corruption" in html.unescape(r.summary)
    finally:
        shutil.rmtree(base, ignore_errors=True)
