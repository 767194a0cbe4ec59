"""One sticky pull-request comment per key: find it by a hidden marker, upsert it, converge after races.

Marker: ``<!-- pg-ext-memcheck:KEY run=RUN_ID attempt=N digest=HEX -->``, KEY the comment key with every run of
characters other than letters, digits and ``. _ / -`` turned into ``_`` (``CI tests`` -> ``CI_tests``), HEX a
digest of the findings the comment shows (comment: changes compares it). Only comments written by the token's own
identity count: anyone can paste a marker into a comment of theirs. Among ours, the OLDEST marked comment is
the sticky one; younger duplicates (two publishers racing) are deleted; then, if the survivor shows a newer
run (run id, then attempt), it is not overwritten by an older one. Anything that makes commenting impossible
(read-only token, no PR, missing PR) degrades to a notice instead of failing the step.

Who "we" are: GET /user names the user of a personal access token. An installation token (GITHUB_TOKEN, or
a GitHub App's token) gets 403 there; its comments are written by the app's bot user, `<app slug>[bot]`, and
the slug is `github-actions` for GITHUB_TOKEN (another app's slug is given with --comment-app or
PG_EXT_MEMCHECK_COMMENT_APP); GET /apps/{slug} confirms it.
"""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass, field
from typing import Any, Dict, Iterable, List, Tuple

from reporter.commentkey import key_problem, normalize_key
from reporter.github import BodyTooLong, GitHubClient, GitHubError, NotFound, ReadOnlyToken

MAX_BODY = 65_536
DEFAULT_APP = "github-actions"  # GITHUB_TOKEN's app: its comments are by github-actions[bot]
_MARKER = re.compile(r"<!-- pg-ext-memcheck:(?P<key>\S+) run=(?P<run>\d+) attempt=(?P<attempt>\d+)"
                     r"(?: digest=(?P<digest>[0-9a-f]{1,64}))? -->")

__all__ = ["key_problem", "normalize_key"]  # re-exported: the comment's users need one import

RunId = Tuple[int, int]  # (run id, attempt): compared as a tuple, newest is largest


def marker(key: str, run: RunId, digest: str | None = None) -> str:
    tail = f" digest={digest}" if digest else ""
    return f"<!-- pg-ext-memcheck:{normalize_key(key)} run={run[0]} attempt={run[1]}{tail} -->"


def parse_marker(body: str, key: str) -> RunId | None:
    found = _parse(body, key)
    return found[0] if found else None


def marker_digest(body: str, key: str) -> str | None:
    found = _parse(body, key)
    return found[1] if found else None


def _parse(body: str, key: str) -> Tuple[RunId, str | None] | None:
    for m in _MARKER.finditer(body or ""):
        if m.group("key") == normalize_key(key):
            return (int(m.group("run")), int(m.group("attempt"))), m.group("digest")
    return None


def digest(lines: Iterable[str]) -> str:
    """What a report says, as 16 hex digits: the same findings (and classes, severities, broken workloads,
    conclusion) give the same digest whatever the run."""
    h = hashlib.sha256()
    for line in sorted(lines):
        h.update(line.encode("utf-8") + b"\n")
    return h.hexdigest()[:16]


# ---- who the token is -----------------------------------------------------------------------------------


def identity(client: GitHubClient, app_slug: str = DEFAULT_APP) -> str:
    """The login this token's comments are written by."""
    try:
        user = client.get_user()
    except GitHubError as exc:
        if exc.status != 403:
            raise
        try:
            app = client.get_app(app_slug)  # an installation token: the app's bot writes
        except NotFound:
            if app_slug == DEFAULT_APP:  # a GitHub Enterprise Server without the public app page
                return f"{DEFAULT_APP}[bot]"
            raise GitHubError(f"the token is an app's installation token, and there is no app '{app_slug}': "
                              "give the app's slug with --comment-app or PG_EXT_MEMCHECK_COMMENT_APP") from None
        return f"{app.get('slug') or app_slug}[bot]"
    login = user.get("login")
    if not isinstance(login, str) or not login:
        raise GitHubError("GET /user: no login in the answer")
    return login


def _author(comment: Dict[str, Any]) -> str:
    user = comment.get("user")
    login = user.get("login") if isinstance(user, dict) else None
    return login.lower() if isinstance(login, str) else ""


# ---- upsert --------------------------------------------------------------------------------------------


@dataclass
class Outcome:
    action: str  # created | updated | stale | unchanged | skipped | degraded
    comment_id: int | None = None
    url: str | None = None
    deleted: List[int] = field(default_factory=list)
    notice: str | None = None


def _marked(client: GitHubClient, pr: int, key: str, author: str) -> List[Tuple[Dict[str, Any], RunId]]:
    """Our marked comments for this key, oldest first; markers in anybody else's comments are ignored."""
    found = []
    for c in client.list_comments(pr):
        if _author(c) != author.lower():
            continue
        run = parse_marker(c.get("body") or "", key)
        if run is not None:
            found.append((c, run))
    # Oldest first: creation time, then id (ids grow with time; ties in created_at happen within a second).
    found.sort(key=lambda cr: (str(cr[0].get("created_at") or ""), int(cr[0]["id"])))
    return found


def _delete_younger(client: GitHubClient, marked: List[Tuple[Dict[str, Any], RunId]], keep: int) -> List[int]:
    deleted = []
    for c, _ in marked:
        if int(c["id"]) != keep:
            try:
                client.delete_comment(int(c["id"]))
            except NotFound:
                pass  # another publisher deleted it first: the goal is reached
            deleted.append(int(c["id"]))
    return deleted


def _stale_notice(newest: RunId, ours: RunId) -> str:
    return (f"the PR comment already shows run {newest[0]} attempt {newest[1]}; "
            f"run {ours[0]} attempt {ours[1]} did not overwrite it")


@dataclass(frozen=True)
class Changes:
    """comment: changes: post or update only when the findings changed. `digest` is what this report shows;
    `worth_a_new_comment` whether there is anything to say where no comment exists yet (a change against the
    base, or without a base any finding or failure)."""

    digest: str
    worth_a_new_comment: bool


def upsert(client: GitHubClient, pr: int, key: str, run: RunId, body: str, author: str,
           changes: Changes | None = None, digest_: str | None = None) -> Outcome:
    digest_ = changes.digest if changes else digest_
    full = f"{marker(key, run, digest_)}\n{body}"
    if len(full) > MAX_BODY:
        raise ValueError(f"comment body of {len(full)} characters exceeds {MAX_BODY}")
    marked = _marked(client, pr, key, author)
    if changes is not None and not marked and not changes.worth_a_new_comment:
        return Outcome("skipped", notice="comment: changes, and nothing changed: no comment posted")
    if changes is not None and marked and marker_digest(marked[0][0].get("body") or "", key) == changes.digest:
        oldest = marked[0][0]
        return Outcome("unchanged", int(oldest["id"]), oldest.get("html_url"))
    created = None
    if not marked:
        created = client.create_comment(pr, full)
        # Another leg may have created one at the same moment: converge on the oldest.
        marked = _marked(client, pr, key, author)
        if not marked:
            return Outcome("created", int(created["id"]), created.get("html_url"))
    oldest, shown = marked[0]
    deleted = _delete_younger(client, marked, int(oldest["id"]))
    if created is not None and int(oldest["id"]) == int(created["id"]):
        return Outcome("created", int(created["id"]), created.get("html_url"), deleted)
    # Decided after the clean-up: the survivor is what the pull request shows.
    if run < shown:
        return Outcome("stale", int(oldest["id"]), oldest.get("html_url"), deleted, _stale_notice(shown, run))
    updated = client.update_comment(int(oldest["id"]), full)
    return Outcome("updated", int(oldest["id"]), updated.get("html_url"), deleted)


def publish(client: GitHubClient | None, pr: int | None, key: str, run: RunId, body: str,
            app_slug: str = DEFAULT_APP, why_no_pr: str | None = None, changes: Changes | None = None,
            digest_: str | None = None) -> Outcome:
    """upsert() with every 'cannot comment here' case turned into a one-line notice."""
    if pr is None:
        return Outcome("degraded", notice=why_no_pr or "no pull request number (not a pull_request event): "
                                                      "the report is in the job summary only")
    if client is None:
        return Outcome("degraded", notice="no GITHUB_TOKEN/GITHUB_REPOSITORY: the report is in the "
                                          "job summary only")
    try:
        return upsert(client, pr, key, run, body, identity(client, app_slug), changes, digest_)
    except ReadOnlyToken:
        return Outcome("degraded", notice="the token is read-only here (fork or Dependabot pull request): "
                                          "the report is in the job summary; publish from a workflow_run "
                                          "workflow to comment")
    except NotFound:
        return Outcome("degraded", notice=f"pull request #{pr} not found in this repository: "
                                          "the report is in the job summary only")
    except BodyTooLong:
        return Outcome("degraded", notice="GitHub refused the comment as too long: the report is "
                                          "in the job summary")
    except GitHubError as exc:
        return Outcome("degraded", notice=f"could not comment on the pull request ({exc}): "
                                          "the report is in the job summary")
