"""Which pull request, commit and workflow run a report belongs to: from the triggering event and the GitHub
API, never from the results files.

The results files of a `workflow_run` publisher come from the triggering run, and that run may be a fork's
pull request running code the fork wrote: whatever its results.json claims (`pr_number`, `head_sha`,
`run_id`) is untrusted. The trusted facts are the event the runner wrote (GITHUB_EVENT_PATH) and what the API
says. For workflow_run: the run id and attempt and the head SHA are the event's; the pull request is one the
event lists or, for a fork (GitHub lists none), an open pull request whose head is the run's branch in the
run's head repository; either way GET /pulls/N must show the same head SHA. The legs' own claims are then
only cross-checked against these facts: a leg that claims another pull request, commit or run is refused.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any, Dict, List, Mapping, Optional, Sequence, Tuple

from reporter.event import load_event
from reporter.github import GitHubClient, NotFound

RunId = Tuple[int, int]  # (run id, attempt), as in reporter.comment
_SHA = re.compile(r"[0-9a-f]{40}")
PR_EVENTS = ("pull_request", "pull_request_target")


@dataclass
class Origin:
    pr: Optional[int]
    head_sha: Optional[str]
    run: RunId
    workflow_run: Optional[Dict[str, Any]] = None  # the triggering run, for workflow_run events
    why_no_pr: Optional[str] = None  # one line, when pr is None

    @property
    def from_workflow_run(self) -> bool:
        return self.workflow_run is not None


def _positive_int(value: Any) -> Optional[int]:
    if isinstance(value, bool):
        return None
    if isinstance(value, int) and value > 0:
        return value
    if isinstance(value, str) and value.isdigit() and int(value) > 0:
        return int(value)
    return None


def _sha(value: Any) -> Optional[str]:
    return value if isinstance(value, str) and _SHA.fullmatch(value) else None


def pr_from_event(event: Mapping[str, Any]) -> Optional[int]:
    """pull_request.number, else issue.number when the issue is a pull request (issue_comment)."""
    pull = event.get("pull_request")
    if isinstance(pull, dict) and _positive_int(pull.get("number")):
        return _positive_int(pull.get("number"))
    issue = event.get("issue")
    if isinstance(issue, dict) and isinstance(issue.get("pull_request"), dict):
        return _positive_int(issue.get("number"))
    return None


def from_env(env: Mapping[str, str]) -> Origin:
    """What the event alone says (no API call): enough for a pull_request event, a start for workflow_run."""
    event = load_event(env.get("GITHUB_EVENT_PATH"))
    wr = event.get("workflow_run")
    if env.get("GITHUB_EVENT_NAME", "workflow_run") == "workflow_run" and isinstance(wr, dict):
        run = (_positive_int(wr.get("id")) or 0, _positive_int(wr.get("run_attempt")) or 1)
        why = None
        if wr.get("event") not in PR_EVENTS:
            why = f"the triggering run was a {wr.get('event') or 'non-pull-request'} event, not a pull request"
        why = why or (f"the pull request of run {run[0]} could not be looked up (no GITHUB_TOKEN or "
                      "GITHUB_REPOSITORY): the report is in the job summary only")
        return Origin(None, _sha(wr.get("head_sha")), run, wr, why)
    run_id, attempt = env.get("GITHUB_RUN_ID", ""), env.get("GITHUB_RUN_ATTEMPT", "")
    run = (int(run_id) if run_id.isdigit() else 0, int(attempt) if attempt.isdigit() else 1)
    pull = event.get("pull_request") if isinstance(event.get("pull_request"), dict) else {}
    head = pull.get("head") if isinstance(pull.get("head"), dict) else {}
    pr = pr_from_event(event)
    why = None if pr else "no pull request number (not a pull_request event): the report is in the job summary only"
    # A push (or another event of one commit) is about GITHUB_SHA; a pull_request's GITHUB_SHA is a merge commit,
    # so there only the event's head counts.
    sha = _sha(head.get("sha")) if pull else _sha(env.get("GITHUB_SHA"))
    return Origin(pr, sha, run, None, why)


def resolve_pull_request(origin: Origin, client: GitHubClient) -> Origin:
    """For workflow_run: the pull request whose head is the triggering run's commit, checked with the API."""
    wr = origin.workflow_run
    if wr is None or wr.get("event") not in PR_EVENTS:
        return origin
    sha = origin.head_sha
    if sha is None or origin.run[0] == 0:
        origin.why_no_pr = "the workflow_run event carries no valid run id or head SHA"
        return origin
    candidates: List[int] = []
    for listed in wr.get("pull_requests") or []:  # same-repository pull requests; empty for forks
        number = _positive_int(listed.get("number")) if isinstance(listed, dict) else None
        if number and number not in candidates:
            candidates.append(number)
    if not candidates:
        head_repo = wr.get("head_repository") if isinstance(wr.get("head_repository"), dict) else {}
        owner = (head_repo.get("owner") or {}).get("login") if isinstance(head_repo.get("owner"), dict) else None
        branch = wr.get("head_branch")
        if isinstance(owner, str) and isinstance(branch, str) and owner and branch:
            for pull in client.list_pulls(f"{owner}:{branch}"):
                number = _positive_int(pull.get("number"))
                if number and (pull.get("head") or {}).get("sha") == sha and number not in candidates:
                    candidates.append(number)
    confirmed, moved = [], []
    for number in candidates:
        try:
            pull = client.get_pull(number)
        except NotFound:
            continue
        (confirmed if (pull.get("head") or {}).get("sha") == sha else moved).append(number)
    if len(confirmed) == 1:
        origin.pr, origin.why_no_pr = confirmed[0], None
    elif confirmed:
        origin.why_no_pr = (f"commit {sha[:12]} heads several pull requests "
                            f"({', '.join(f'#{n}' for n in confirmed)}): not guessing which to comment on")
    elif moved:
        origin.why_no_pr = (f"pull request #{moved[0]} has moved on from commit {sha[:12]} since this run; "
                            "the run for its new head will report")
    else:
        origin.why_no_pr = f"no open pull request has commit {sha[:12]} (run {origin.run[0]}) as its head"
    return origin


def cross_check(origin: Origin, legs: Sequence[Tuple[str, Dict[str, Any]]]) -> List[str]:
    """Every leg claim that contradicts the trusted origin, as 'SOURCE: claims X, but ...' lines."""
    problems = []
    for source, res in legs:
        gh = res.get("github") if isinstance(res.get("github"), dict) else {}
        claims = []
        pr = gh.get("pr_number")
        if pr is not None and origin.pr is not None and pr != origin.pr:
            claims.append(f"pull request #{pr}, but the triggering event's is #{origin.pr}")
        sha = gh.get("head_sha")
        if sha is not None and origin.head_sha is not None and sha != origin.head_sha:
            claims.append(f"commit {str(sha)[:12]}, but the triggering run built {origin.head_sha[:12]}")
        run_id = gh.get("run_id")
        if run_id is not None and origin.run[0] and str(run_id) != str(origin.run[0]):
            claims.append(f"run {run_id}, but the results come from run {origin.run[0]}")
        attempt = gh.get("run_attempt")
        if isinstance(attempt, int) and origin.run[0] and attempt > origin.run[1]:
            claims.append(f"attempt {attempt}, but the run is at attempt {origin.run[1]}")
        problems += [f"{source}: claims {claim}" for claim in claims]
    return problems


def head_sha_from_results(legs: Sequence[Dict[str, Any]]) -> Optional[str]:
    """The commit the legs name, when they agree: only shown in a report, never used to pick where to post."""
    shas = {(res.get("github") or {}).get("head_sha") for res in legs}
    shas.discard(None)
    return _sha(shas.pop()) if len(shas) == 1 else None

