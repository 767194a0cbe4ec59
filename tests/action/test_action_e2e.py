"""action.yml end to end on the buggy example: every run: step executed with bash by the harness, PostgreSQL
PostgreSQL from the local installation (install-method none; 15, or the first of PG_EXT_MEMCHECK_PG_CONFIGS), the real

One matrix leg (mode run) runs once for the module; a publish job (mode publish) then gathers its artifact
from the same workflow run, and a fork-safe workflow_run publisher downloads it from the triggering run and
posts the sticky comment to a local GitHub API (tests/fakegithub.py).
"""

from __future__ import annotations

import html
import json
import re
import shutil
import subprocess
from pathlib import Path
from typing import Iterator

import pytest
from fakegithub import FakeGitHub, FakeState
from harness import REPO_ROOT, ActionResult, ActionRunner, default_pg_config, make_base_dir, pg_major
from lxml import etree

PG_CONFIG = default_pg_config()
MAJOR = pg_major(PG_CONFIG)
CONFIG = "examples/buggy_pg_ext/memcheck.yml"
RUN_ID = "4242"
ARTIFACT = f"pg-ext-memcheck-memcheck-pg{MAJOR}"


class Leg:
    def __init__(self, base: Path, result: ActionResult, action: Path) -> None:
        self.base = base
        self.result = result
        self.action = action


@pytest.fixture(scope="module")
def leg(action_copy: Path) -> Iterator[Leg]:
    base = make_base_dir()
    action = action_copy
    ws = base / "workspace"
    ignore = shutil.ignore_patterns("*.o", "*.so", "*.bc", "results", "__pycache__")
    shutil.copytree(REPO_ROOT / "examples" / "buggy_pg_ext", ws / "examples" / "buggy_pg_ext", ignore=ignore)
    event = {"pull_request": {"number": 42, "head": {"sha": "a" * 40}}, "number": 42}
    result = ActionRunner(
        base_dir=base / "job-leg", workspace=ws, action_path=action, run_id=RUN_ID, event_name="pull_request",
        event=event, artifacts_dir=base / "artifacts",
        inputs={
            "postgres-version": MAJOR, "install-method": "none", "pg-config": PG_CONFIG, "config": CONFIG,
            "mode": "run", "fail-on": "error",
        },
    ).run()
    yield Leg(base, result, action)
    shutil.rmtree(base, ignore_errors=True)


def test_every_phase_ran(leg: Leg) -> None:
    r = leg.result
    outcomes = {s.id or s.name: s.outcome for s in r.steps}
    # An earlier run of this test process may have saved the reporter's venv (the runs share a cache store).
    kept_venv = r.step("venv-cache").outputs["cache-hit"] == "true"
    assert outcomes == {
        "python": "success",
        "validate": "success",
        "venv-key": "success",
        "venv-cache": "success",
        "venv": "success",
        "Save the reporter venv": "skipped" if kept_venv else "success",
        "postgres-cache": "skipped",  # not a source build
        "postgres": "success",
        "Save the PostgreSQL build": "skipped",
        "base": "skipped",  # the event names no base commit
        "build": "success",
        "run": "success",
        "Download the results of every leg": "skipped",
        "Download the results of the triggering run": "skipped",
        "report": "success",
        "Upload the results": "success",
        "Conclusion": "failure",  # fail-on error and the example has ERROR findings
        "Clean up": "success",
    }, r.log[-5000:]
    assert r.step("validate").outputs["major"] == MAJOR
    assert r.step("postgres").outputs["pg-config"] == str(Path(PG_CONFIG).resolve())
    for phase in ("validate inputs", "install the reporter", f"install PostgreSQL {MAJOR}", "build against",
                  "run the workloads", "report", "clean up"):
        assert f"::group::pg-ext-memcheck: {phase}" in r.log


def test_fails_as_configured_with_error_annotation(leg: Leg) -> None:
    r = leg.result
    assert r.outcome == "failure"
    assert r.step("report").outputs["exit-code"] == "1"
    assert any(re.match(r"\d+ finding\(s\) at or above error; worst is ERROR; see the job summary", e)
               for e in r.errors()), r.errors()


def test_outputs_report_the_known_bugs(leg: Leg) -> None:
    out = leg.result.outputs
    assert out["conclusion"] == "failure"
    assert out["max-severity"] == "ERROR"
    assert int(out["errors"]) >= 1
    # errors, warnings and infos count findings; violations counts the rows behind them
    assert int(out["findings"]) == int(out["errors"]) + int(out["warnings"]) + int(out["infos"])
    assert int(out["findings"]) >= 2  # at least the planner's and the executor's bug
    assert int(out["violations"]) >= int(out["findings"])
    assert out["comment-url"] == ""  # a run leg never comments
    results_dir = Path(leg.result.step("validate").outputs["results-dir"])
    assert out["junit-path"] == str(results_dir / "junit.xml")
    assert out["markdown-path"] == str(results_dir / "report.md")


def test_results_json_names_the_bugs_and_the_pull_request(leg: Leg) -> None:
    results_dir = Path(leg.result.step("validate").outputs["results-dir"])
    doc = json.loads((results_dir / "results.json").read_text())
    assert doc["postgresql"]["major"] == int(MAJOR)
    assert doc["github"]["pr_number"] == 42
    assert doc["github"]["run_id"] in (RUN_ID, int(RUN_ID))
    found = {(v["check_type"], v.get("source_lib")) for w in doc["workloads"] for v in w["violations"]}
    checks = {c for c, _ in found}
    assert "wrong_ctx_alloc" in checks, found  # the executor hook's TopMemoryContext palloc
    assert "context_leak" in checks, found  # the planner hook's child of MessageContext
    assert any(lib and lib.startswith("buggy_pg_ext") for _, lib in found), found
    names = {w["name"] for w in doc["workloads"]}
    assert {"select_companies", "growth", "per_row_function", "abort_loop"} <= names


def test_junit_file(leg: Leg) -> None:
    tree = etree.parse(leg.result.outputs["junit-path"])
    cases = tree.findall(".//testcase")
    assert cases, "no test cases"
    failures = tree.findall(".//testcase/failure") + tree.findall(".//testcase/error")
    assert failures, "the buggy example must produce failing test cases"
    text = etree.tostring(tree, encoding="unicode")
    assert "select_companies" in text and "wrong_ctx_alloc" in text


def test_job_summary(leg: Leg) -> None:
    summary = leg.result.step("report").summary
    assert summary == leg.result.summary  # only the report step writes the summary
    assert summary.startswith("## ")
    summary = html.unescape(summary)  # the Markdown escapes _ as &#95;
    assert "select_companies" in summary
    assert "ERROR" in summary
    assert "wrong_ctx_alloc" in summary
    md = html.unescape(Path(leg.result.outputs["markdown-path"]).read_text())
    assert "wrong_ctx_alloc" in md


def test_results_artifact_uploaded(leg: Leg) -> None:
    art = leg.base / "artifacts" / f"run-{RUN_ID}" / ARTIFACT
    assert (art / "results.json").is_file()
    assert (art / "junit.xml").is_file()
    assert (art / "report.md").is_file()


def test_cleanup_left_no_server_and_no_venv(leg: Leg) -> None:
    root = Path(leg.result.step("validate").outputs["root"])
    venv = Path(leg.result.step("venv-key").outputs["path"])
    assert venv.parent.parent == root.parent and venv.name == "venv", venv  # under RUNNER_TEMP
    assert not venv.exists()
    assert not (root / "tmp").exists()
    assert not list(root.rglob("postmaster.pid"))


def test_publish_job_merges_the_legs_without_commenting(leg: Leg) -> None:
    ws = leg.base / "publish-ws"
    ws.mkdir()
    r = ActionRunner(
        base_dir=leg.base / "job-publish", workspace=ws, action_path=leg.action, run_id=RUN_ID,
        artifacts_dir=leg.base / "artifacts", job="publish", event_name="push",
        inputs={"mode": "publish", "comment": "never", "fail-on": "never"},
    ).run()
    assert r.outcome == "success", r.log[-4000:]
    assert r.step("Download the results of every leg").outcome == "success"
    assert r.step("postgres").outcome == "skipped" and r.step("run").outcome == "skipped"
    assert r.step("Upload the results").outcome == "skipped"
    assert r.outputs["conclusion"] == "success"  # fail-on never
    assert r.outputs["max-severity"] == "ERROR"
    assert r.outputs["violations"] == leg.result.outputs["violations"]
    assert r.outputs["junit-path"].endswith("/pg-ext-memcheck/report/junit.xml")
    assert "select_companies" in html.unescape(r.summary)
    assert r.outputs["comment-url"] == ""


def test_publish_comment_always_without_pull_request_fails(leg: Leg) -> None:
    ws = leg.base / "publish-ws2"
    ws.mkdir()
    # A push event and a leg artifact that carries no pull-request number: nothing to comment on.
    arts = leg.base / "artifacts-nopr"
    src = leg.base / "artifacts" / f"run-{RUN_ID}" / ARTIFACT
    dst = arts / f"run-{RUN_ID}" / ARTIFACT
    shutil.copytree(src, dst)
    doc = json.loads((dst / "results.json").read_text())
    doc["github"]["pr_number"] = None
    (dst / "results.json").write_text(json.dumps(doc))
    r = ActionRunner(
        base_dir=leg.base / "job-publish2", workspace=ws, action_path=leg.action, run_id=RUN_ID,
        artifacts_dir=arts, job="publish", inputs={"mode": "publish", "comment": "always"},
    ).run()
    assert r.outcome == "failure"
    assert any("comment: always, but no pull-request number is known" in e for e in r.errors()), r.errors()


def workflow_run_event(run_id: str, head_sha: str) -> dict:
    """What GitHub sends a workflow_run publisher for a fork's pull request (pull_requests is empty then)."""
    return {"action": "completed", "workflow_run": {
        "id": int(run_id), "run_attempt": 1, "event": "pull_request", "head_sha": head_sha,
        "head_branch": "fix-leak",
        "head_repository": {"full_name": "contributor/ext", "owner": {"login": "contributor"}},
        "pull_requests": [], "conclusion": "failure",
    }}


def test_workflow_run_publisher_posts_one_sticky_comment(leg: Leg) -> None:
    """The fork-safe pair: the publisher runs in another workflow run, downloads the artifact of the
    triggering run (run-id + token) and comments on the pull request whose head is that run's commit."""
    state = FakeState(repository="octo/ext", token="ghs_publisher", prs=set())
    state.add_pull(42, "a" * 40, head_ref="fix-leak", head_repo="contributor/ext")
    with FakeGitHub(state) as server:
        ws = leg.base / "publisher-ws"
        ws.mkdir()
        common = dict(
            workspace=ws, action_path=leg.action, run_id="9999", artifacts_dir=leg.base / "artifacts",
            job="publish", workflow="memcheck-publish", event_name="workflow_run",
            event=workflow_run_event(RUN_ID, "a" * 40),
            token="ghs_publisher", env={"GITHUB_API_URL": server.url},
            inputs={"mode": "publish", "fail-on": "never", "comment-key": "memcheck"},
        )
        first = ActionRunner(base_dir=leg.base / "job-publisher-1", **common).run()  # type: ignore[arg-type]
        assert first.outcome == "success", first.log[-4000:]
        assert first.step("Download the results of the triggering run").outcome == "success"
        assert first.step("Download the results of every leg").outcome == "skipped"
        bodies = state.all_bodies(42)
        assert len(bodies) == 1
        assert re.match(rf"<!-- pg-ext-memcheck:memcheck run={RUN_ID} attempt=1 digest=[0-9a-f]{{16}} -->", bodies[0])
        # the triggering run's report: its leg's findings, counted as the leg counted them
        out = leg.result.outputs
        assert re.search(rf"^PostgreSQL [\d.]+: {out['findings']} findings \({out['errors']} ERROR\b", bodies[0],
                         re.M), bodies[0][:800]
        assert state.comments[42][0]["user"]["login"] == "github-actions[bot]"
        assert first.outputs["comment-url"].endswith(f"#issuecomment-{state.comments[42][0]['id']}")
        assert "ghs_publisher" not in first.log  # the token is never printed

        second = ActionRunner(base_dir=leg.base / "job-publisher-2", **common).run()  # type: ignore[arg-type]
        assert second.outcome == "success", second.log[-4000:]
        assert len(state.all_bodies(42)) == 1  # sticky: edited, not a second comment
        assert second.outputs["comment-url"] == first.outputs["comment-url"]


def test_forged_artifact_cannot_redirect_the_comment(leg: Leg) -> None:
    """Issue 11, item 1, through the real action: the triggering run's artifact claims another pull request
    (#7, with its real red comment) and a huge run id. Nothing is written to #7, and the job fails."""
    state = FakeState(repository="octo/ext", token="ghs_publisher", prs=set())
    state.add_pull(42, "a" * 40, head_ref="fix-leak", head_repo="contributor/ext")
    state.add_pull(7, "7" * 40, head_ref="other")
    red = state.add_comment(7, "<!-- pg-ext-memcheck:memcheck run=100 attempt=1 -->\n## ❌ 3 ERROR")
    arts = leg.base / "artifacts-forged"
    dst = arts / f"run-{RUN_ID}" / ARTIFACT
    shutil.copytree(leg.base / "artifacts" / f"run-{RUN_ID}" / ARTIFACT, dst)
    doc = json.loads((dst / "results.json").read_text())
    doc["github"].update(pr_number=7, head_sha="7" * 40, run_id=str(10**15))
    for w in doc["workloads"]:
        w["violations"], w["status"] = [], "passed"  # "all clear"
    (dst / "results.json").write_text(json.dumps(doc))
    with FakeGitHub(state) as server:
        ws = leg.base / "forged-ws"
        ws.mkdir()
        r = ActionRunner(
            base_dir=leg.base / "job-forged", workspace=ws, action_path=leg.action, run_id="9998",
            artifacts_dir=arts, job="publish", workflow="memcheck-publish", event_name="workflow_run",
            event=workflow_run_event(RUN_ID, "a" * 40), token="ghs_publisher", env={"GITHUB_API_URL": server.url},
            inputs={"mode": "publish", "fail-on": "never", "comment-key": "memcheck"},
        ).run()
    assert r.outcome == "failure"
    assert any("claims pull request #7, but the triggering event's is #42" in e for e in r.errors()), r.errors()
    assert state.find(red["id"])["body"].endswith("3 ERROR")  # type: ignore[index]
    assert state.all_bodies(42) == []
    assert not [q for q in state.requests if q.method != "GET"]
    assert "ghs_publisher" not in r.log


def test_cleanup_never_signals_a_pid_from_an_artifact(leg: Leg) -> None:
    """Issue 11, item 3: a postmaster.pid inside a downloaded artifact names an unrelated process; the
    clean-up step must leave it alone (it used to send it SIGINT)."""
    bystander = subprocess.Popen(["sleep", "300"])
    try:
        arts = leg.base / "artifacts-pidfile"
        dst = arts / f"run-{RUN_ID}" / ARTIFACT
        shutil.copytree(leg.base / "artifacts" / f"run-{RUN_ID}" / ARTIFACT, dst)
        for where in (dst / "data", dst / "tmp" / "pgmc-x" / "data"):
            where.mkdir(parents=True)
            (where / "postmaster.pid").write_text(f"{bystander.pid}\n{where}\n")
        ws = leg.base / "pidfile-ws"
        ws.mkdir()
        r = ActionRunner(
            base_dir=leg.base / "job-pidfile", workspace=ws, action_path=leg.action, run_id=RUN_ID,
            artifacts_dir=arts, job="publish", inputs={"mode": "publish", "comment": "never", "fail-on": "never"},
        ).run()
        assert r.step("Clean up").outcome == "success", r.log[-3000:]
        assert bystander.poll() is None, "the clean-up step signalled a PID read from an artifact"
        assert "0 leftover server(s) stopped" in r.step("Clean up").log
    finally:
        bystander.kill()
        bystander.wait()
