"""Sticky comment upsert over real HTTP: create, update, duplicate cleanup, stale runs, degradation."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Iterator

import pytest

from reporter import comment as sticky
from reporter.github import BodyTooLong, GitHubClient, RetryPolicy

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from fakegithub import FakeGitHub, FakeState, Scripted  # noqa: E402

TOKEN = "ghs_comment_token"
KEY = "memcheck"


@pytest.fixture
def server() -> Iterator[FakeGitHub]:
    with FakeGitHub(FakeState(token=TOKEN)) as gh:
        yield gh


def client(gh: FakeGitHub) -> GitHubClient:
    return GitHubClient(TOKEN, gh.state.repository, gh.url, RetryPolicy(sleep=lambda s: None))


def marked(run: int, attempt: int = 1, key: str = KEY) -> str:
    return f"{sticky.marker(key, (run, attempt))}\nold report of run {run}"


def test_marker_round_trip_and_key_normalization() -> None:
    m = sticky.marker("CI tests --> <x>", (123, 2))
    assert m == "<!-- pg-ext-memcheck:CI_tests_-__x_ run=123 attempt=2 -->"
    assert sticky.parse_marker(f"body\n{m}\n", "CI tests --> <x>") == (123, 2)
    assert sticky.parse_marker(m, "other") is None


def test_creates_when_none(server: FakeGitHub) -> None:
    server.state.add_comment(42, "an unrelated human comment")
    out = sticky.upsert(client(server), 42, KEY, (10, 1), "report A")
    assert out.action == "created" and out.deleted == []
    bodies = server.state.all_bodies(42)
    assert bodies[1] == f"{sticky.marker(KEY, (10, 1))}\nreport A"


def test_updates_oldest_and_deletes_younger_duplicates(server: FakeGitHub) -> None:
    first = server.state.add_comment(42, marked(5))
    server.state.add_comment(42, "human")
    dup = server.state.add_comment(42, marked(6))
    other_key = server.state.add_comment(42, marked(99, key="other-workflow"))
    out = sticky.upsert(client(server), 42, KEY, (7, 1), "report B")
    assert out.action == "updated" and out.comment_id == first["id"] and out.deleted == [dup["id"]]
    ids = [c["id"] for c in server.state.comments[42]]
    assert dup["id"] not in ids and other_key["id"] in ids  # another key's comment is left alone
    assert server.state.find(first["id"])["body"].endswith("report B")  # type: ignore[index]


def test_all_clear_replaces_a_red_comment(server: FakeGitHub) -> None:
    first = server.state.add_comment(42, marked(5) + "\n❌ 3 violations")
    sticky.upsert(client(server), 42, KEY, (6, 1), "## ✅ pg-ext-memcheck: all clear")
    assert "all clear" in server.state.find(first["id"])["body"]  # type: ignore[index]


def test_older_run_never_overwrites_newer(server: FakeGitHub) -> None:
    first = server.state.add_comment(42, marked(20, 2))
    out = sticky.upsert(client(server), 42, KEY, (20, 1), "stale report")
    assert out.action == "stale" and out.notice and "run 20 attempt 2" in out.notice
    assert server.state.find(first["id"])["body"] == marked(20, 2)  # type: ignore[index]
    assert not [r for r in server.state.requests if r.method == "PATCH"]
    out = sticky.upsert(client(server), 42, KEY, (19, 5), "older run")
    assert out.action == "stale"
    out = sticky.upsert(client(server), 42, KEY, (20, 3), "retry of the same run")
    assert out.action == "updated"


def test_race_converges_on_one_comment(server: FakeGitHub) -> None:
    # Another publisher (a newer run) creates its comment between our list and our create... but its
    # comment ends up OLDER than ours only if it was created first: simulate it landing before ours.
    def racer(state: FakeState, pr: int) -> None:
        ours = state.comments[pr].pop()
        state.add_comment(pr, marked(31))
        ours["created_at"] = "2026-11-24T23:59:59Z"
        state.comments[pr].append(ours)

    server.state.after_create = racer
    out = sticky.upsert(client(server), 42, KEY, (30, 1), "our report")
    bodies = server.state.all_bodies(42)
    assert len(bodies) == 1 and bodies[0] == marked(31)  # newer run's comment survives, ours removed
    assert out.action == "stale" and len(out.deleted) == 1


def test_race_with_older_run_updates_the_survivor(server: FakeGitHub) -> None:
    def racer(state: FakeState, pr: int) -> None:
        ours = state.comments[pr].pop()
        state.add_comment(pr, marked(29))
        ours["created_at"] = "2026-11-24T23:59:59Z"
        state.comments[pr].append(ours)

    server.state.after_create = racer
    out = sticky.upsert(client(server), 42, KEY, (30, 1), "our report")
    bodies = server.state.all_bodies(42)
    assert len(bodies) == 1 and bodies[0].endswith("our report") and out.action == "updated"


def test_degrades_on_read_only_token(server: FakeGitHub) -> None:
    server.state.writable = False
    out = sticky.publish(client(server), 42, KEY, (1, 1), "x")
    assert out.action == "degraded" and "read-only" in (out.notice or "")
    assert server.state.all_bodies(42) == []


def test_degrades_on_missing_pr_or_no_pr_or_no_client(server: FakeGitHub) -> None:
    assert "not found" in (sticky.publish(client(server), 404, KEY, (1, 1), "x").notice or "")
    assert "no pull request number" in (sticky.publish(client(server), None, KEY, (1, 1), "x").notice or "")
    assert "GITHUB_TOKEN" in (sticky.publish(None, 42, KEY, (1, 1), "x").notice or "")


def test_body_over_the_limit_is_refused_by_server_and_degrades(server: FakeGitHub) -> None:
    with pytest.raises(ValueError):
        sticky.upsert(client(server), 42, KEY, (1, 1), "x" * 70_000)
    gh = client(server)
    with pytest.raises(BodyTooLong, match="maximum is 65536"):
        gh.create_comment(42, "y" * 65_537)  # the server's own 422
    # If something upstream still sent too much, GitHub's 422 becomes a notice, not a crash.
    server.state.scripted = [Scripted(422, body={"message": "Body is too long"}, method="POST")]
    out = sticky.publish(gh, 42, KEY, (1, 1), "x")
    assert out.action == "degraded" and "too long" in (out.notice or "")


def test_retries_a_502_during_upsert(server: FakeGitHub) -> None:
    server.state.scripted = [Scripted(502, method="GET")]
    out = sticky.publish(client(server), 42, KEY, (1, 1), "after a 502")
    assert out.action == "created"


def test_pr_number_sources(tmp_path: Path) -> None:
    event = tmp_path / "event.json"
    event.write_text(json.dumps({"pull_request": {"number": 17}}))
    assert sticky.pr_from_event(str(event)) == 17
    event.write_text(json.dumps({"issue": {"number": 18, "pull_request": {}}}))
    assert sticky.pr_from_event(str(event)) == 18
    for bad in ({"pull_request": {"number": -1}}, {"pull_request": {"number": True}},
                {"pull_request": {"number": "12; rm"}}, {"push": {}}, []):
        event.write_text(json.dumps(bad))
        assert sticky.pr_from_event(str(event)) is None
    assert sticky.pr_from_event(str(tmp_path / "missing.json")) is None
    sha = "a" * 40
    legs = [{"github": {"pr_number": 5, "head_sha": sha}}, {"github": {"pr_number": 5, "head_sha": sha}}]
    assert sticky.pr_from_results(legs) == 5
    assert sticky.pr_from_results([{"github": {"pr_number": 5, "head_sha": "nothex"}}]) is None
    assert sticky.pr_from_results(legs + [{"github": {"pr_number": 6, "head_sha": sha}}]) is None
    assert sticky.head_sha_from_results(legs) == sha


def test_run_identity_prefers_results_then_env() -> None:
    env = {"GITHUB_RUN_ID": "500", "GITHUB_RUN_ATTEMPT": "3"}
    assert sticky.run_identity(env, []) == (500, 3)
    assert sticky.run_identity(env, [{"github": {"run_id": "400", "run_attempt": 2}}]) == (400, 2)
    assert sticky.run_identity(env, [{"github": {"run_id": "x", "run_attempt": 2}}]) == (500, 3)
