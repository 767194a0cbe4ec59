"""Sticky comment upsert over real HTTP: create, update, duplicate cleanup, stale runs, degradation."""

from __future__ import annotations

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
BOT = "github-actions[bot]"  # who GITHUB_TOKEN writes as


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
    out = sticky.upsert(client(server), 42, KEY, (10, 1), "report A", BOT)
    assert out.action == "created" and out.deleted == []
    bodies = server.state.all_bodies(42)
    assert bodies[1] == f"{sticky.marker(KEY, (10, 1))}\nreport A"


def test_updates_oldest_and_deletes_younger_duplicates(server: FakeGitHub) -> None:
    first = server.state.add_comment(42, marked(5))
    server.state.add_comment(42, "human")
    dup = server.state.add_comment(42, marked(6))
    other_key = server.state.add_comment(42, marked(99, key="other-workflow"))
    out = sticky.upsert(client(server), 42, KEY, (7, 1), "report B", BOT)
    assert out.action == "updated" and out.comment_id == first["id"] and out.deleted == [dup["id"]]
    ids = [c["id"] for c in server.state.comments[42]]
    assert dup["id"] not in ids and other_key["id"] in ids  # another key's comment is left alone
    assert server.state.find(first["id"])["body"].endswith("report B")  # type: ignore[index]


def test_all_clear_replaces_a_red_comment(server: FakeGitHub) -> None:
    first = server.state.add_comment(42, marked(5) + "\n❌ 3 violations")
    sticky.upsert(client(server), 42, KEY, (6, 1), "## ✅ pg-ext-memcheck: all clear", BOT)
    assert "all clear" in server.state.find(first["id"])["body"]  # type: ignore[index]


def test_older_run_never_overwrites_newer(server: FakeGitHub) -> None:
    first = server.state.add_comment(42, marked(20, 2))
    out = sticky.upsert(client(server), 42, KEY, (20, 1), "stale report", BOT)
    assert out.action == "stale" and out.notice and "run 20 attempt 2" in out.notice
    assert server.state.find(first["id"])["body"] == marked(20, 2)  # type: ignore[index]
    assert not [r for r in server.state.requests if r.method == "PATCH"]
    out = sticky.upsert(client(server), 42, KEY, (19, 5), "older run", BOT)
    assert out.action == "stale"
    out = sticky.upsert(client(server), 42, KEY, (20, 3), "retry of the same run", BOT)
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
    out = sticky.upsert(client(server), 42, KEY, (30, 1), "our report", BOT)
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
    out = sticky.upsert(client(server), 42, KEY, (30, 1), "our report", BOT)
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
    with pytest.raises(ValueError, match=r"comment body of \d+ characters exceeds 65536"):
        sticky.upsert(client(server), 42, KEY, (1, 1), "x" * 70_000, BOT)
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


# ---- item 2 of issue 11: only our own comments count, and "newest" is decided after the clean-up ---------


def test_someone_elses_marker_is_never_adopted(server: FakeGitHub) -> None:
    forged = server.state.add_comment(42, marked(10**12) + "\nall clear, says mallory", login="mallory")
    out = sticky.publish(client(server), 42, KEY, (10, 1), "the real report")
    assert out.action == "created"  # not "stale" (blocked by the forged run id), not "updated" (PATCHed)
    assert server.state.find(forged["id"])["body"].endswith("says mallory")  # type: ignore[index]
    assert [r.method for r in server.state.requests if r.method != "GET"] == ["POST"]  # no PATCH, no DELETE
    ours = [c for c in server.state.comments[42] if c["user"]["login"] == BOT]
    assert len(ours) == 1 and ours[0]["body"].endswith("the real report")


def test_someone_elses_younger_duplicate_is_not_deleted(server: FakeGitHub) -> None:
    first = server.state.add_comment(42, marked(5))
    other = server.state.add_comment(42, marked(6), login="mallory")
    out = sticky.publish(client(server), 42, KEY, (7, 1), "report")
    assert out.action == "updated" and out.comment_id == first["id"] and out.deleted == []
    assert server.state.find(other["id"]) is not None


def test_newest_run_is_decided_after_the_cleanup(server: FakeGitHub) -> None:
    # Ours, both: the sticky one (run 5) and a younger duplicate (run 40) that a crashed publisher left.
    sticky_one = server.state.add_comment(42, marked(5))
    dup = server.state.add_comment(42, marked(40))
    out = sticky.publish(client(server), 42, KEY, (7, 1), "run 7")
    # The duplicate goes; the pull request then shows run 5, so run 7 replaces it (before: refused as stale).
    assert out.action == "updated" and out.deleted == [dup["id"]]
    assert server.state.find(sticky_one["id"])["body"].endswith("run 7")  # type: ignore[index]


def test_identity_of_an_installation_token_and_of_a_personal_token(server: FakeGitHub) -> None:
    gh = client(server)
    assert sticky.identity(gh) == "github-actions[bot]"  # GET /user is 403 for GITHUB_TOKEN
    statuses = [(r.method, r.path) for r in server.state.requests]
    assert statuses == [("GET", "/user"), ("GET", "/apps/github-actions")]
    server.state.app_slug = "dependabot"
    assert sticky.identity(gh, "dependabot") == "dependabot[bot]"
    server.state.apps = {}  # a GitHub Enterprise Server without the public app page
    assert sticky.identity(gh) == "github-actions[bot]"
    server.state.installation_token = False
    server.state.user_login = "release-bot-user"
    assert sticky.identity(gh) == "release-bot-user"


def test_personal_token_owns_its_comments_not_the_bots(server: FakeGitHub) -> None:
    server.state.installation_token = False
    server.state.user_login = "alice"
    bots = server.state.add_comment(42, marked(3))  # by github-actions[bot]: not ours with this token
    out = sticky.publish(client(server), 42, KEY, (4, 1), "alice's report")
    assert out.action == "created"
    assert server.state.comments[42][-1]["user"]["login"] == "alice"
    assert server.state.find(bots["id"])["body"] == marked(3)  # type: ignore[index]
    out = sticky.publish(client(server), 42, KEY, (5, 1), "again")
    assert out.action == "updated" and len(server.state.all_bodies(42)) == 2


def test_unknown_app_slug_degrades_with_the_way_out(server: FakeGitHub) -> None:
    out = sticky.publish(client(server), 42, KEY, (1, 1), "x", app_slug="no-such-app")
    assert out.action == "degraded"
    assert "--comment-app" in (out.notice or "") and "no app 'no-such-app'" in (out.notice or "")
    assert server.state.all_bodies(42) == []


# ---- comment: changes -----------------------------------------------------------------------------------


def test_marker_carries_the_digest_and_old_markers_still_parse() -> None:
    m = sticky.marker(KEY, (5, 1), "0123456789abcdef")
    assert m == "<!-- pg-ext-memcheck:memcheck run=5 attempt=1 digest=0123456789abcdef -->"
    assert sticky.parse_marker(m, KEY) == (5, 1) and sticky.marker_digest(m, KEY) == "0123456789abcdef"
    assert sticky.marker_digest(sticky.marker(KEY, (5, 1)), KEY) is None
    assert sticky.digest(["b", "a"]) == sticky.digest(["a", "b"]) != sticky.digest(["a", "c"])


def test_changes_posts_nothing_new_when_there_is_nothing_to_say(server: FakeGitHub) -> None:
    quiet = sticky.Changes(sticky.digest(["conclusion success"]), worth_a_new_comment=False)
    out = sticky.upsert(client(server), 42, KEY, (10, 1), "## ✅ nothing new", BOT, quiet)
    assert out.action == "skipped" and "nothing changed" in (out.notice or "")
    assert server.state.all_bodies(42) == [] and not [r for r in server.state.requests if r.method != "GET"]
    loud = sticky.Changes(sticky.digest(["new|leak"]), worth_a_new_comment=True)
    assert sticky.upsert(client(server), 42, KEY, (11, 1), "## ❌ 1 new", BOT, loud).action == "created"


def test_changes_updates_only_when_the_digest_differs(server: FakeGitHub) -> None:
    same = sticky.digest(["new|leak"])
    first = server.state.add_comment(42, f"{sticky.marker(KEY, (5, 1), same)}\n## ❌ 1 new")
    out = sticky.upsert(client(server), 42, KEY, (6, 1), "## ❌ 1 new (run 6)", BOT,
                        sticky.Changes(same, worth_a_new_comment=True))
    assert out.action == "unchanged" and out.comment_id == first["id"]
    assert server.state.find(first["id"])["body"].endswith("## ❌ 1 new")  # type: ignore[index]
    # Fixed since: what the comment shows changed, so it is updated (and would be even if nothing is new now).
    gone = sticky.Changes(sticky.digest(["conclusion success"]), worth_a_new_comment=False)
    out = sticky.upsert(client(server), 42, KEY, (7, 1), "## ✅ nothing new", BOT, gone)
    assert out.action == "updated"
    body = server.state.find(first["id"])["body"]  # type: ignore[index]
    assert body.endswith("## ✅ nothing new") and f"digest={gone.digest}" in body
