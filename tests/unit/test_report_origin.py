"""The workflow_run publisher posts where the triggering event and the API say, never where a results file says
(issue 11, item 1: a fork's artifact claiming `pr_number: 7` and a huge `run_id` replaced PR 7's real
"3 ERROR" comment with "all clear", and later honest runs were refused as older)."""

from __future__ import annotations

import json
import re
import sys
from pathlib import Path
from typing import Any, Callable, Dict, Iterator, List

import pytest

from reporter import cli, origin
from reporter import comment as sticky

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from fakegithub import FakeGitHub, FakeState  # noqa: E402

LEGS = Path(__file__).resolve().parents[1] / "fixtures" / "legs"
TOKEN = "ghs_publisher_token_never_printed"
KEY = "memcheck-pr"
SHA_7 = "7" * 40  # head of the victim's pull request #7
SHA_9 = "9" * 40  # head of the attacker's pull request #9, from the fork mallory/ext


@pytest.fixture
def github(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Iterator[FakeGitHub]:
    with FakeGitHub(FakeState(repository="acme/ext", token=TOKEN)) as gh:
        gh.state.add_pull(7, SHA_7, head_ref="fix-cache")  # same repository
        gh.state.add_pull(9, SHA_9, head_ref="main", head_repo="mallory/ext")  # a fork
        for var, value in {"GITHUB_API_URL": gh.url, "GITHUB_TOKEN": TOKEN, "GITHUB_REPOSITORY": "acme/ext",
                           "GITHUB_RUN_ID": "555", "GITHUB_RUN_ATTEMPT": "1", "GITHUB_EVENT_NAME": "workflow_run",
                           "GITHUB_WORKFLOW": "memcheck-publish", "GITHUB_SERVER_URL": "https://github.example"
                           }.items():
            monkeypatch.setenv(var, value)
        for var in ("GITHUB_OUTPUT", "GITHUB_STEP_SUMMARY", "GITHUB_ACTIONS"):
            monkeypatch.delenv(var, raising=False)
        yield gh


Trigger = Callable[..., None]


@pytest.fixture
def trigger(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Trigger:
    """trigger(run_id, head_sha, pulls, ...): the workflow_run event the runner writes for the publisher."""

    def write(run_id: int, sha: str, pulls: List[Dict[str, Any]], owner: str = "mallory", branch: str = "main",
              event: str = "pull_request", attempt: int = 1) -> None:
        payload = {"action": "completed", "workflow_run": {
            "id": run_id, "run_attempt": attempt, "event": event, "head_sha": sha, "head_branch": branch,
            "head_repository": {"full_name": f"{owner}/ext", "owner": {"login": owner}},
            "pull_requests": pulls, "conclusion": "failure",
        }}
        path = tmp_path / f"event-{run_id}.json"
        path.write_text(json.dumps(payload))
        monkeypatch.setenv("GITHUB_EVENT_PATH", str(path))

    return write


def leg(tmp_path: Path, name: str, source: str, **github: Any) -> Path:
    doc = json.loads((LEGS / source / "results.json").read_text())
    doc["github"].update(github)
    target = tmp_path / name
    target.mkdir()
    (target / "results.json").write_text(json.dumps(doc))
    return target


def report(*args: str) -> int:
    return cli.main(["report", *args, "--comment", "auto", "--comment-key", KEY])


def test_forged_pr_number_and_run_id_cannot_touch_another_pull_request(
    github: FakeGitHub, tmp_path: Path, trigger: Trigger, capsys: pytest.CaptureFixture[str]
) -> None:
    real = github.state.add_comment(7, sticky.marker(KEY, (100, 1)) + "\n## ❌ 3 ERROR")
    # The attacker's run 200 (their fork's PR #9) uploads a clean report that claims PR 7 and a huge run id.
    forged = leg(tmp_path, "forged", "clean_pg15", pr_number=7, head_sha=SHA_7, run_id=str(10**15))
    trigger(200, SHA_9, pulls=[])  # GitHub lists no pull requests for a fork's run
    assert report(str(forged)) == 2
    out = capsys.readouterr().out
    assert "not commenting: results that contradict the triggering run" in out
    assert "claims pull request #7, but the triggering event's is #9" in out
    assert f"claims run {10**15}, but the results come from run 200" in out
    assert github.state.find(real["id"])["body"].endswith("3 ERROR")  # type: ignore[index]
    assert github.state.all_bodies(9) == []
    assert not [r for r in github.state.requests if r.method != "GET"]
    assert TOKEN not in out

    # The victim's next honest run (101) still updates its comment: nothing recorded run 10^15 anywhere.
    honest = leg(tmp_path, "honest", "violations_pg15", pr_number=7, head_sha=SHA_7, run_id="101")
    trigger(101, SHA_7, pulls=[{"number": 7, "head": {"sha": SHA_7}}], owner="acme",
                 branch="fix-cache")
    assert report(str(honest)) == 1  # violations: exit 1, comment posted
    assert sticky.parse_marker(github.state.find(real["id"])["body"], KEY) == (101, 1)  # type: ignore[index]


def test_fork_pull_request_found_through_the_api(github: FakeGitHub, tmp_path: Path, trigger: Trigger) -> None:
    honest = leg(tmp_path, "pg15", "clean_pg15", pr_number=9, head_sha=SHA_9, run_id="200")
    trigger(200, SHA_9, pulls=[], attempt=2)
    assert report(str(honest)) == 0
    (body,) = github.state.all_bodies(9)
    assert sticky.parse_marker(body, KEY) == (200, 2)  # the event's run and attempt, not this job's 555
    assert re.match(r"<!-- pg-ext-memcheck:memcheck-pr run=200 attempt=2 digest=[0-9a-f]{16} -->\n", body)
    paths = [r.path for r in github.state.requests]
    assert "/repos/acme/ext/pulls" in paths and "/repos/acme/ext/pulls/9" in paths
    listing = [r for r in github.state.requests if r.path == "/repos/acme/ext/pulls"][0]
    assert listing.query["head"] == ["mallory:main"] and listing.query["state"] == ["open"]


def test_results_without_claims_are_published_on_the_events_pull_request(
    github: FakeGitHub, tmp_path: Path, trigger: Trigger
) -> None:
    quiet = leg(tmp_path, "pg15", "clean_pg15", pr_number=None, head_sha=None, run_id=None, run_attempt=None)
    trigger(101, SHA_7, pulls=[{"number": 7}], owner="acme", branch="fix-cache")
    assert report(str(quiet)) == 0
    assert len(github.state.all_bodies(7)) == 1


def test_pull_request_that_moved_on_gets_no_comment(github: FakeGitHub, tmp_path: Path, trigger: Trigger,
                                                    capsys: pytest.CaptureFixture[str]) -> None:
    old = leg(tmp_path, "pg15", "clean_pg15", pr_number=7, head_sha="1" * 40, run_id="90")
    trigger(90, "1" * 40, pulls=[{"number": 7}], owner="acme", branch="fix-cache")
    assert report(str(old)) == 0
    assert "pull request #7 has moved on from commit 111111111111" in capsys.readouterr().out
    assert github.state.all_bodies(7) == []


def test_push_triggered_run_has_no_pull_request(github: FakeGitHub, tmp_path: Path, trigger: Trigger,
                                                capsys: pytest.CaptureFixture[str]) -> None:
    pushed = leg(tmp_path, "pg15", "clean_pg15", pr_number=7, head_sha=SHA_7, run_id="300")
    trigger(300, SHA_7, pulls=[], owner="acme", branch="fix-cache", event="push")
    assert report(str(pushed)) == 0
    assert "the triggering run was a push event" in capsys.readouterr().out
    assert github.state.all_bodies(7) == []


def test_comment_always_fails_when_nothing_can_be_posted(github: FakeGitHub, tmp_path: Path, trigger: Trigger,
                                                         capsys: pytest.CaptureFixture[str]) -> None:
    pushed = leg(tmp_path, "pg15", "clean_pg15", run_id="300")
    trigger(300, SHA_7, pulls=[], owner="acme", branch="fix-cache", event="push")
    assert cli.main(["report", str(pushed), "--comment", "always", "--comment-key", KEY]) == 2
    out = capsys.readouterr().out
    assert "::error::pg-ext-memcheck: comment: always, but no pull-request number is known" in out


def test_origin_from_a_pull_request_event(tmp_path: Path) -> None:
    event = tmp_path / "e.json"
    event.write_text(json.dumps({"pull_request": {"number": 17, "head": {"sha": "a" * 40}}}))
    found = origin.from_env({"GITHUB_EVENT_PATH": str(event), "GITHUB_EVENT_NAME": "pull_request",
                             "GITHUB_RUN_ID": "12", "GITHUB_RUN_ATTEMPT": "3"})
    assert (found.pr, found.head_sha, found.run) == (17, "a" * 40, (12, 3))
    event.write_text(json.dumps({"issue": {"number": 18, "pull_request": {}}}))
    assert origin.from_env({"GITHUB_EVENT_PATH": str(event)}).pr == 18
    for bad in ({"pull_request": {"number": -1}}, {"pull_request": {"number": True}},
                {"pull_request": {"number": "12; rm"}}, {"issue": {"number": 5}}, {"push": {}}, []):
        event.write_text(json.dumps(bad))
        assert origin.from_env({"GITHUB_EVENT_PATH": str(event)}).pr is None
    assert origin.from_env({"GITHUB_EVENT_PATH": str(tmp_path / "missing.json")}).pr is None


def test_cross_check_lists_every_contradiction() -> None:
    found = origin.Origin(pr=9, head_sha=SHA_9, run=(200, 1))
    legs = [("a", {"github": {"pr_number": 9, "head_sha": SHA_9, "run_id": "200", "run_attempt": 1}}),
            ("b", {"github": {"pr_number": None, "head_sha": None, "run_id": None, "run_attempt": None}}),
            ("c", {"github": {"pr_number": 7, "head_sha": SHA_7, "run_id": "201", "run_attempt": 4}})]
    assert origin.cross_check(found, legs) == [
        "c: claims pull request #7, but the triggering event's is #9",
        f"c: claims commit {SHA_7[:12]}, but the triggering run built {SHA_9[:12]}",
        "c: claims run 201, but the results come from run 200",
        "c: claims attempt 4, but the run is at attempt 1",
    ]
