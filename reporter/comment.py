"""One sticky pull-request comment per key: find it by a hidden marker, upsert it, converge after races.

Marker: ``<!-- pg-ext-memcheck:KEY run=RUN_ID attempt=N -->``. The OLDEST marked comment is the sticky one;
younger duplicates (two publishers racing) are deleted; a comment written by a newer run (run id, then
attempt) is never overwritten by an older one. Anything that makes commenting impossible (read-only token,
no PR, missing PR) degrades to a notice instead of failing the step.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Dict, List, Mapping, Sequence, Tuple

from reporter.github import BodyTooLong, GitHubClient, GitHubError, NotFound, ReadOnlyToken

MAX_BODY = 65_536
_MARKER = re.compile(r"<!-- pg-ext-memcheck:(?P<key>\S+) run=(?P<run>\d+) attempt=(?P<attempt>\d+) -->")
_SHA = re.compile(r"[0-9a-f]{40}")

RunId = Tuple[int, int]  # (run id, attempt): compared as a tuple, newest is largest


def normalize_key(key: str) -> str:
    """Keys come from workflow names ('CI tests'): keep them one token that cannot close the HTML comment."""
    cleaned = re.sub(r"[^A-Za-z0-9._/-]+", "_", key.strip()).replace("--", "-_")
    return cleaned[:100] or "default"


def marker(key: str, run: RunId) -> str:
    return f"<!-- pg-ext-memcheck:{normalize_key(key)} run={run[0]} attempt={run[1]} -->"


def parse_marker(body: str, key: str) -> RunId | None:
    for m in _MARKER.finditer(body or ""):
        if m.group("key") == normalize_key(key):
            return int(m.group("run")), int(m.group("attempt"))
    return None


# ---- where to comment: PR number and run identity ------------------------------------------------------


def _positive_int(value: Any) -> int | None:
    if isinstance(value, bool):
        return None
    if isinstance(value, int) and value > 0:
        return value
    if isinstance(value, str) and value.isdigit() and int(value) > 0:
        return int(value)
    return None


def pr_from_event(event_path: str | None) -> int | None:
    """pull_request.number, else issue.number (issue_comment on a PR); None when absent or malformed."""
    if not event_path:
        return None
    try:
        event = json.loads(Path(event_path).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    if not isinstance(event, dict):
        return None
    for section in ("pull_request", "issue"):
        obj = event.get(section)
        if isinstance(obj, dict):
            number = _positive_int(obj.get("number"))
            if number:
                return number
    return None


def pr_from_results(legs: Sequence[Dict[str, Any]]) -> int | None:
    """From the artifact (workflow_run publishing): every leg must agree and carry a valid head SHA if any."""
    numbers = set()
    for res in legs:
        gh = res.get("github") or {}
        number = _positive_int(gh.get("pr_number"))
        sha = gh.get("head_sha")
        if number is None or (sha is not None and not (isinstance(sha, str) and _SHA.fullmatch(sha))):
            continue
        numbers.add(number)
    return numbers.pop() if len(numbers) == 1 else None


def head_sha_from_results(legs: Sequence[Dict[str, Any]]) -> str | None:
    shas = {(res.get("github") or {}).get("head_sha") for res in legs}
    shas.discard(None)
    if len(shas) == 1:
        sha = shas.pop()
        if isinstance(sha, str) and _SHA.fullmatch(sha):
            return sha
    return None


def run_identity(env: Mapping[str, str], legs: Sequence[Dict[str, Any]]) -> RunId:
    """The run whose data this is: the results' run (workflow_run publishing) or else this run."""
    runs = set()
    for res in legs:
        gh = res.get("github") or {}
        run_id, attempt = gh.get("run_id"), _positive_int(gh.get("run_attempt"))
        if isinstance(run_id, str) and run_id.isdigit() and attempt:
            runs.add((int(run_id), attempt))
    if runs:
        return max(runs)
    run_id = env.get("GITHUB_RUN_ID", "")
    attempt = env.get("GITHUB_RUN_ATTEMPT", "")
    return (int(run_id) if run_id.isdigit() else 0, int(attempt) if attempt.isdigit() else 1)


# ---- upsert --------------------------------------------------------------------------------------------


@dataclass
class Outcome:
    action: str  # created | updated | stale | degraded
    comment_id: int | None = None
    url: str | None = None
    deleted: List[int] = field(default_factory=list)
    notice: str | None = None


def _marked(client: GitHubClient, pr: int, key: str) -> List[Tuple[Dict[str, Any], RunId]]:
    found = []
    for c in client.list_comments(pr):
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


def upsert(client: GitHubClient, pr: int, key: str, run: RunId, body: str) -> Outcome:
    full = f"{marker(key, run)}\n{body}"
    if len(full) > MAX_BODY:
        raise ValueError(f"comment body of {len(full)} characters exceeds {MAX_BODY}")
    marked = _marked(client, pr, key)
    if not marked:
        created = client.create_comment(pr, full)
        # Another leg may have created one at the same moment: converge on the oldest.
        marked = _marked(client, pr, key)
        if not marked:
            return Outcome("created", int(created["id"]), created.get("html_url"))
        oldest, oldest_run = marked[0]
        deleted = _delete_younger(client, marked, int(oldest["id"]))
        if int(oldest["id"]) == int(created["id"]):
            return Outcome("created", int(created["id"]), created.get("html_url"), deleted)
        newest_run = max(r for _, r in marked)
        if run >= newest_run:
            updated = client.update_comment(int(oldest["id"]), full)
            return Outcome("updated", int(oldest["id"]), updated.get("html_url"), deleted)
        return Outcome("stale", int(oldest["id"]), oldest.get("html_url"), deleted,
                       _stale_notice(newest_run, run))
    oldest, oldest_run = marked[0]
    newest_run = max(r for _, r in marked)
    deleted = _delete_younger(client, marked, int(oldest["id"]))
    if run < newest_run:
        return Outcome("stale", int(oldest["id"]), oldest.get("html_url"), deleted,
                       _stale_notice(newest_run, run))
    updated = client.update_comment(int(oldest["id"]), full)
    return Outcome("updated", int(oldest["id"]), updated.get("html_url"), deleted)


def publish(client: GitHubClient | None, pr: int | None, key: str, run: RunId, body: str) -> Outcome:
    """upsert() with every 'cannot comment here' case turned into a one-line notice."""
    if pr is None:
        return Outcome("degraded", notice="no pull request number (not a pull_request event and none in the "
                                          "results): the report is in the job summary only")
    if client is None:
        return Outcome("degraded", notice="no GITHUB_TOKEN/GITHUB_REPOSITORY: the report is in the "
                                          "job summary only")
    try:
        return upsert(client, pr, key, run, body)
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
