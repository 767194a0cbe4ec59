"""`pg-ext-memcheck report DIR...`: merge legs, render JUnit/Markdown, publish to GitHub, exit by fail-on."""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path
from typing import Any, Dict, List, Mapping, Optional

from reporter import annotate, ghoutputs, jsonreport, origin, sarif
from reporter import comment as sticky
from reporter.errors import UsageError
from reporter.ghoutputs import MAX_ANNOTATIONS
from reporter.github import GitHubClient, GitHubError, RetryPolicy
from reporter.junit import render_junit
from reporter.markdown import COMMENT, SUMMARY, Context, render
from reporter.merge import Merged, MergeError, attach_comparison, leg_bases, load_baseline, load_legs
from reporter.summary import Conclusion, incomplete_note
from reporter.terminal import render_terminal, style_for
from reporter.text import clean, strip_controls
from reporter.vocab import (
    ANNOTATION_MODES,
    BROKEN_STATUSES,
    COMMENT_MODES,
    FAIL_ON_LEVELS,
    FAIL_ON_SCOPES,
    SWITCHES,
    strictest_fail_on,
)


def add_parser(sub: Any) -> None:
    p = sub.add_parser(
        "report",
        help="merge results directories and render/publish them",
        description="Merge one or more results directories (one per PostgreSQL version of a matrix) and "
                    "write JUnit XML, Markdown, SARIF, a JSON summary, the job summary, outputs and one sticky PR "
                    "comment. --annotations, --job-summary and --comment take the values of the action's inputs "
                    "of the same names. Every output says the same about each finding: it fails the job only "
                    "when fail-on (and, with a base, fail-on-scope) says so.",
    )
    p.add_argument("dirs", nargs="+", type=Path, metavar="DIR",
                   help="a results directory, a results.json, or a folder of downloaded leg artifacts")
    p.add_argument("--junit", type=Path, metavar="FILE", help="write JUnit XML here")
    p.add_argument("--markdown", type=Path, metavar="FILE", help="write the full Markdown report here")
    p.add_argument("--markdown-comment", type=Path, metavar="FILE",
                   help="write the pull-request comment variant here (to post it with another tool)")
    p.add_argument("--sarif", type=Path, metavar="FILE",
                   help="write SARIF 2.1.0 here, for GitHub code scanning (github/codeql-action/upload-sarif)")
    p.add_argument("--json", type=Path, metavar="FILE",
                   help="write the JSON summary here: verdict, counts, findings with their classification "
                        "(reporter/schemas/summary.schema.json)")
    p.add_argument("--job-summary", choices=SWITCHES, default="off",
                   help="on: append the report to $GITHUB_STEP_SUMMARY (the action's job-summary)")
    p.add_argument("--annotations", choices=ANNOTATION_MODES, default="auto",
                   help="::error (what fails the job), ::warning (judged, below fail-on) and ::notice (unchanged "
                        f"from the base) lines, at most {MAX_ANNOTATIONS} of each kind and a notice for the rest; "
                        "auto: on when GITHUB_ACTIONS=true")
    p.add_argument("--comment", choices=COMMENT_MODES, default="never",
                   help="the sticky pull-request comment, as the action's comment input: auto (when the event "
                        "names a pull request), always (like auto, and exit 2 when it cannot be posted), changes "
                        "(post or update only when the findings changed: an existing comment when what it shows "
                        "differs, a digest in its marker; a new one only when there is something to say: with a "
                        "base new, worse or fixed findings or a broken workload, without any finding or "
                        "failure), never (the default here)")
    p.add_argument("--comment-key", metavar="KEY", help="sticky comment identity (default: $GITHUB_WORKFLOW)")
    p.add_argument("--comment-app", metavar="SLUG",
                   default=os.environ.get("PG_EXT_MEMCHECK_COMMENT_APP") or sticky.DEFAULT_APP,
                   help="for an installation token: the app whose bot writes the comments (default: "
                        "$PG_EXT_MEMCHECK_COMMENT_APP, else github-actions, the app of GITHUB_TOKEN)")
    p.add_argument("--fail-on", choices=FAIL_ON_LEVELS,
                   help="exit 1 at this severity (default: memcheck.yml's fail-on, recorded in the results)")
    # Repeatable rather than nargs="+": a greedy option list would swallow the positional DIRs after it.
    p.add_argument("--baseline", action="append", type=Path, metavar="DIR", default=[],
                   help="previous results (e.g. the base branch or an earlier attempt) to show what this "
                        "change made worse; repeat for several legs")
    p.add_argument("--fail-on-scope", choices=FAIL_ON_SCOPES,
                   help="with a base to compare with (a leg's base/ from `run --base`, or --baseline): new = only "
                        "findings this change introduced or made worse (and workloads it broke) fail; all = every "
                        "finding does (default: new when there is a base, else all)")
    p.add_argument("--repository-path", metavar="PATH",
                   help="where the repository is checked out (actions/checkout's path:), absolute or relative to "
                        "$GITHUB_WORKSPACE (else the current directory): files are shown, linked and annotated "
                        "relative to it. Default: the git top level each run recorded, else $GITHUB_WORKSPACE")
    p.set_defaults(func=main)


def repository_root(explicit: Optional[str], merged: Merged, env: Mapping[str, str]) -> str:
    """The directory site files are shown relative to: --repository-path, else where the runs found the git
    repository, else the workspace (or the current directory)."""
    base = env.get("GITHUB_WORKSPACE") or os.getcwd()
    if explicit:
        return os.path.normpath(os.path.join(base, explicit))
    return merged.source_root or base


def _fail_on(arg: str | None, merged: Merged) -> str:
    if arg:
        return arg
    # Legs come from one config; if they disagree take the strictest so nothing slips through.
    return strictest_fail_on({res["fail_on"] for res in merged.present})


def comment_key(explicit: Optional[str], env: Mapping[str, str]) -> str:
    """The sticky comment's key: --comment-key, else the workflow name, both held to the action input's rules."""
    if explicit:
        key, source = explicit, "--comment-key"
    else:
        key = env.get("GITHUB_WORKFLOW") or "pg-ext-memcheck"
        source = "the default comment key (the workflow name, GITHUB_WORKFLOW)"
    if sticky.key_problem(key):
        raise UsageError(f"{source} {key!r} cannot identify the PR comment: it must be at most 100 characters "
                         "without '--', '<', '>', line breaks or control characters; pass --comment-key")
    return key


def _run_url(env: Mapping[str, str], run_id: int) -> str | None:
    server, repo = env.get("GITHUB_SERVER_URL"), env.get("GITHUB_REPOSITORY")
    if server and repo and run_id:
        return f"{server.rstrip('/')}/{repo}/actions/runs/{run_id}"
    return None


def _publish_comment(args: argparse.Namespace, env: Mapping[str, str], merged: Merged, ctx: Context,
                     found: origin.Origin, retry: RetryPolicy | None) -> sticky.Outcome:
    """Post where the trusted origin says, after checking that every leg agrees with it."""
    key = comment_key(args.comment_key, env)
    try:
        client: GitHubClient | None = GitHubClient.from_env(env, retry)
    except GitHubError:
        client = None
    if client is not None and found.from_workflow_run:
        try:
            origin.resolve_pull_request(found, client)
        except GitHubError as exc:
            return sticky.Outcome("degraded", notice=f"could not look up the pull request of run "
                                                     f"{found.run[0]} ({exc}): the report is in the job summary")
    if found.pr is not None:
        problems = origin.cross_check(found, [(str(leg.source), leg.results) for leg in merged.legs
                                              if leg.results is not None])
        if problems:
            return sticky.Outcome("refused", notice="not commenting: results that contradict the triggering "
                                                    "run: " + "; ".join(problems))
    verdict = merged.conclude(ctx.fail_on)
    digest = sticky.digest(digest_lines(merged, verdict.conclusion))
    changes = None
    if args.comment == "changes":
        worth = merged.comparison.changed if merged.comparison else (verdict.failed or bool(merged.findings))
        changes = sticky.Changes(digest, worth)
    return sticky.publish(client, found.pr, key, found.run, render(merged, ctx, COMMENT), args.comment_app,
                          found.why_no_pr, changes, digest)


def digest_lines(merged: Merged, conclusion: str) -> List[str]:
    """What the comment shows, for comment: changes: each finding with its class and severity, what was
    fixed, the broken workloads, the conclusion."""
    c = merged.comparison
    lines = [f"conclusion {conclusion}"]
    for f in merged.findings:
        if not f.key[0]:
            lines.append(f"{c.class_of(f) if c else ''}|{f.key!r}|{f.severity}|{f.majors}")
    lines += [f"fixed|{f.key!r}" for f in (c.fixed if c else [])]
    for res in merged.present:
        lines += [f"broken|{res['postgresql']['major']}|{w['name']}|{w['status']}" for w in res["workloads"]
                  if w["status"] in BROKEN_STATUSES]
    lines += [f"missing|{leg.source.name}" for leg in merged.missing]
    return lines


def run_report(args: argparse.Namespace, env: Mapping[str, str], retry: RetryPolicy | None = None,
               out: Any = None, err: Any = None) -> int:
    """The command with its environment passed in (tests pass a dict and a fast RetryPolicy)."""
    out = out or sys.stdout
    err = err or sys.stderr
    try:
        merged = load_legs(args.dirs)
        if args.baseline:
            baseline, label = load_baseline(args.baseline), "the --baseline results"
        else:
            baseline, label = leg_bases(merged)
    except MergeError as exc:
        raise UsageError(strip_controls(str(exc))) from None
    merged.notices.extend(incomplete_note(res) for res in merged.present if res.get("complete") is False)
    merged.notices.extend(baseline.notices)
    for notice in merged.notices:
        print(f"pg-ext-memcheck: warning: {clean(notice, 1000)}", file=err)
    attach_comparison(merged, baseline, args.fail_on_scope, label)
    commenting = args.comment != "never"
    if commenting:
        comment_key(args.comment_key, env)  # refuse a bad key before anything is written
    fail_on = _fail_on(args.fail_on, merged)
    verdict: Conclusion = merged.conclude(fail_on)
    root = repository_root(args.repository_path, merged, env)
    in_github = env.get("GITHUB_ACTIONS") == "true"
    fallback = annotate.workflow_file(env) if in_github else None  # inside GitHub every annotation has a file
    found = origin.from_env(env)
    ctx = Context(
        fail_on=fail_on, run_url=_run_url(env, found.run[0]),
        head_sha=found.head_sha or origin.head_sha_from_results(merged.present),
        notices=list(merged.notices), workspace=root,
    )
    outputs: Dict[str, str | None] = {}
    if args.junit:
        _write(args.junit, render_junit(merged, fail_on, root))
        outputs["junit-path"] = str(args.junit)
    full_md: str | None = None
    if args.markdown:
        full_md = render(merged, ctx, SUMMARY)
        _write(args.markdown, full_md)
        outputs["markdown-path"] = str(args.markdown)
    if args.markdown_comment:
        _write(args.markdown_comment, render(merged, ctx, COMMENT))
    if args.sarif:
        _write(args.sarif, sarif.render(merged, fail_on, root))
        outputs["sarif-path"] = str(args.sarif)
    if args.json:
        _write(args.json, jsonreport.render(merged, verdict, root))
        outputs["json-path"] = str(args.json)

    print(render_terminal(merged, fail_on, style_for(out, env), root), file=out, end="")
    if args.annotations == "on" or (args.annotations == "auto" and in_github):
        for line in ghoutputs.annotations(annotate.build(merged, merged.findings, fail_on, root, fallback),
                                          file=fallback):
            print(line, file=out)

    comment_url = ""
    comment_failed: str | None = None
    require = args.comment == "always"
    if commenting:
        outcome = _publish_comment(args, env, merged, ctx, found, retry)
        comment_url = outcome.url or ""
        if outcome.action == "refused" or (require and outcome.action == "degraded"):
            comment_failed = outcome.notice or "the comment could not be posted"
            if require and outcome.action == "degraded" and found.pr is None:
                comment_failed = f"comment: always, but no pull-request number is known: {comment_failed}"
            print(ghoutputs.command("error", f"pg-ext-memcheck: {comment_failed}", file=fallback), file=out)
            ctx.notices.append(comment_failed)
            full_md = None
        elif outcome.action == "skipped" or (outcome.action == "degraded" and found.pr is None
                                              and not found.from_workflow_run):
            # Nothing to comment on (a push, say): worth a line in the log, not an annotation on every run.
            print(f"pg-ext-memcheck: {outcome.notice}", file=out)
        elif outcome.notice:
            # One line, a notice not an error: a fork PR must not turn the job red.
            print(ghoutputs.command("notice", clean(f"pg-ext-memcheck: {outcome.notice}", 1000), file=fallback),
                  file=out)
            ctx.notices.append(outcome.notice)
            full_md = None  # re-render so the job summary carries the notice
        elif outcome.url:
            print(f"pg-ext-memcheck: PR comment {outcome.action}: {clean(outcome.url, 500)}", file=out)

    if args.job_summary == "on":
        path = env.get("GITHUB_STEP_SUMMARY")
        if not path:
            raise UsageError("--job-summary on needs GITHUB_STEP_SUMMARY (set by the GitHub runner)")
        ghoutputs.append_step_summary(Path(path), full_md or render(merged, ctx, SUMMARY))

    c = verdict.counts
    outputs.update({
        "findings": str(c.findings), "violations": str(c.violations), "errors": str(c.by_severity["ERROR"]),
        "warnings": str(c.by_severity["WARNING"]), "infos": str(c.by_severity["INFO"]),
        "max-severity": c.worst or "none", "conclusion": verdict.conclusion,
        # one line, escaped for a workflow command (the action's conclusion step prints it as an ::error::)
        "reasons": ghoutputs.escape_data(clean("; ".join(verdict.reasons), 2000)),
        "junit-path": outputs.get("junit-path", ""), "markdown-path": outputs.get("markdown-path", ""),
        "sarif-path": outputs.get("sarif-path", ""), "json-path": outputs.get("json-path", ""),
        "comment-url": comment_url,
        "new-findings": str(len(merged.comparison.new)) if merged.comparison else "",
        "worse-findings": str(len(merged.comparison.worse)) if merged.comparison else "",
        "fixed-findings": str(len(merged.comparison.fixed)) if merged.comparison else "",
        "compared-with": (merged.comparison.label or "") if merged.comparison else "",
    })
    if env.get("GITHUB_OUTPUT"):
        ghoutputs.write_outputs(Path(env["GITHUB_OUTPUT"]), outputs)

    counts = ", ".join(f"{c.by_severity[s]} {s}" for s in ("ERROR", "WARNING", "INFO"))
    print(f"pg-ext-memcheck: {verdict.conclusion}: {c.findings} finding(s) ({counts}) from {c.violations} "
          f"violation(s); {c.suppressed} suppressed; "
          f"{c.workloads} workloads on {len(merged.present)} PostgreSQL version(s), "
          f"{len(merged.missing)} missing (fail-on {fail_on})", file=out)
    for reason in verdict.reasons:
        print(f"  - {reason}", file=out)
    if merged.rejected:
        # The other legs are reported and published; the bad input still fails the command, by name.
        raise UsageError("; ".join(strip_controls(leg.problem or "") for leg in merged.rejected))
    if comment_failed is not None:
        return 2  # the report is written; the comment, which was required or refused, is not
    return 1 if verdict.failed else 0


def _write(path: Path, text: str) -> None:
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text, encoding="utf-8")
    except OSError as exc:
        raise UsageError(f"{path}: cannot write: {exc.strerror}") from None


def main(args: argparse.Namespace) -> int:
    return run_report(args, os.environ)


__all__: List[str] = ["add_parser", "main", "run_report"]
