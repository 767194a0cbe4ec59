"""The requests-based GitHub client against a local server that answers like GitHub's REST API."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Iterator, List

import pytest

from reporter.github import GitHubClient, GitHubError, NotFound, ReadOnlyToken, RetryPolicy

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from fakegithub import FakeGitHub, FakeState, Scripted  # noqa: E402

TOKEN = "ghs_supersecret_token_value"


class Sleeps:
    def __init__(self) -> None:
        self.calls: List[float] = []

    def __call__(self, seconds: float) -> None:
        self.calls.append(seconds)


@pytest.fixture
def server() -> Iterator[FakeGitHub]:
    with FakeGitHub(FakeState(token=TOKEN, prs={42, 7})) as gh:
        yield gh


def client(gh: FakeGitHub, sleeps: Sleeps, **retry: float) -> GitHubClient:
    policy = RetryPolicy(sleep=sleeps, clock=lambda: 1_000_000.0, **retry)  # type: ignore[arg-type]
    return GitHubClient(TOKEN, gh.state.repository, gh.url, policy)


def test_pagination_follows_link_next(server: FakeGitHub) -> None:
    for i in range(250):
        server.state.add_comment(42, f"comment {i}")
    comments = client(server, Sleeps()).list_comments(42)
    assert [c["body"] for c in comments] == [f"comment {i}" for i in range(250)]
    gets = [r for r in server.state.requests if r.method == "GET"]
    assert len(gets) == 3 and gets[0].query["per_page"] == ["100"]
    assert [r.query.get("page") for r in gets] == [None, ["2"], ["3"]]
    assert all(r.headers["Authorization"] == f"Bearer {TOKEN}" for r in gets)


def test_create_update_delete(server: FakeGitHub) -> None:
    gh = client(server, Sleeps())
    created = gh.create_comment(42, "hello")
    assert created["body"] == "hello" and server.state.all_bodies(42) == ["hello"]
    gh.update_comment(created["id"], "edited")
    assert server.state.all_bodies(42) == ["edited"]
    gh.delete_comment(created["id"])
    assert server.state.all_bodies(42) == []
    assert [r.method for r in server.state.requests] == ["POST", "PATCH", "DELETE"]


def test_retries_5xx_then_succeeds(server: FakeGitHub) -> None:
    server.state.scripted = [Scripted(502), Scripted(503)]
    sleeps = Sleeps()
    assert client(server, sleeps, backoff=1.0).list_comments(42) == []
    assert sleeps.calls == [1.0, 2.0]


def test_rate_limit_retry_after_and_reset(server: FakeGitHub) -> None:
    server.state.scripted = [
        Scripted(429, {"Retry-After": "3"}, {"message": "secondary rate limit"}),
        Scripted(403, {"x-ratelimit-remaining": "0", "x-ratelimit-reset": "1000010"},
                 {"message": "API rate limit exceeded"}),
    ]
    sleeps = Sleeps()
    gh = client(server, sleeps)
    gh.create_comment(42, "after the limits")
    assert sleeps.calls == [3.0, 11.0]  # Retry-After, then reset - now + 1
    assert server.state.all_bodies(42) == ["after the limits"]


def test_retry_budget_is_bounded(server: FakeGitHub) -> None:
    server.state.scripted = [Scripted(502) for _ in range(10)]
    sleeps = Sleeps()
    with pytest.raises(GitHubError, match="502") as exc:
        client(server, sleeps, max_attempts=3, backoff=1.0).list_comments(42)
    assert exc.value.status == 502 and len(sleeps.calls) == 2
    server.state.scripted = [Scripted(429, {"Retry-After": "3600"})]
    sleeps = Sleeps()
    with pytest.raises(GitHubError, match="429") as exc:
        client(server, sleeps, max_total_sleep=60).list_comments(42)
    assert exc.value.status == 429 and sleeps.calls == []  # would exceed the sleep budget: give up at once


def test_read_only_and_not_found_are_typed(server: FakeGitHub) -> None:
    gh = client(server, Sleeps())
    with pytest.raises(NotFound, match="404"):
        gh.list_comments(999)
    server.state.writable = False
    with pytest.raises(ReadOnlyToken, match="Resource not accessible by integration"):
        gh.create_comment(42, "x")


def test_token_never_leaks(server: FakeGitHub, capsys: pytest.CaptureFixture[str]) -> None:
    gh = client(server, Sleeps())
    assert TOKEN not in repr(gh) and "***" in repr(gh)
    server.state.writable = False
    with pytest.raises(GitHubError, match="Resource not accessible by integration") as exc:
        gh.create_comment(42, "x")
    assert TOKEN not in str(exc.value) and TOKEN not in repr(exc.value)
    bad = GitHubClient(TOKEN, "acme/buggy_pg_ext", "http://127.0.0.1:9", RetryPolicy(max_attempts=1))
    with pytest.raises(GitHubError, match="issues/1/comments: ConnectionError") as exc2:
        bad.list_comments(1)  # connection refused
    assert TOKEN not in str(exc2.value) and exc2.value.__cause__ is None
    out = capsys.readouterr()
    assert TOKEN not in out.out + out.err


def test_link_to_another_host_is_not_followed(server: FakeGitHub) -> None:
    gh = client(server, Sleeps())
    with pytest.raises(GitHubError, match="another host"):
        gh.request("GET", "http://evil.example/steal")


def test_enterprise_prefix_from_api_url() -> None:
    with FakeGitHub(FakeState(token=TOKEN), prefix="/api/v3") as gh:
        env = {"GITHUB_TOKEN": TOKEN, "GITHUB_REPOSITORY": "acme/buggy_pg_ext", "GITHUB_API_URL": gh.url}
        c = GitHubClient.from_env(env)
        c.create_comment(42, "on GHES")
        assert gh.state.requests[0].path == "/api/v3/repos/acme/buggy_pg_ext/issues/42/comments"


def test_bad_configuration() -> None:
    with pytest.raises(GitHubError, match="no GitHub token"):
        GitHubClient("", "a/b")
    with pytest.raises(GitHubError, match="owner/name"):
        GitHubClient("t", "nope")
