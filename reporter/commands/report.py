"""`pg-ext-memcheck report DIR...`: merge legs, render JUnit/Markdown, publish to GitHub, exit by fail-on."""

from __future__ import annotations

import argparse
import os
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Dict, List, Mapping, Optional, Tuple

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


@dataclass(frozen=True)
class Settings:
    """What `report` was asked to do, read once from its arguments and environment."""

    dirs: Tuple[Path, ...]
    baseline: Tuple[Path, ...]
    files: Mapping[str, Path]  # a RENDERERS option -> the file it writes (only those asked for)
    fail_on: Optional[str]  # --fail-on, else the legs' (Report.fail_on)
    fail_on_scope: Optional[str]
    comment: str  # COMMENT_MODES
    comment_key: Optional[str]
    comment_app: str
    annotations: bool  # --annotations on, or auto inside GitHub Actions
    job_summary: bool
    repository_path: Optional[str]
    in_github: bool
    fallback_file: Optional[str]  # inside GitHub every annotation has a file: the workflow's when no other
    env: Mapping[str, str]
    retry: Optional[RetryPolicy]

    @classmethod
    def from_args(cls, args: argparse.Namespace, env: Mapping[str, str],
                  retry: Optional[RetryPolicy] = None) -> Settings:
        in_github = env.get("GITHUB_ACTIONS") == "true"
        files = {r.option: getattr(args, r.option) for r in RENDERERS if getattr(args, r.option)}
        return cls(
            dirs=tuple(args.dirs), baseline=tuple(args.baseline), files=files, fail_on=args.fail_on,
            fail_on_scope=args.fail_on_scope, comment=args.comment, comment_key=args.comment_key,
            comment_app=args.comment_app,
            annotations=args.annotations == "on" or (args.annotations == "auto" and in_github),
            job_summary=args.job_summary == "on", repository_path=args.repository_path, in_github=in_github,
            fallback_file=annotate.workflow_file(env) if in_github else None, env=env, retry=retry,
        )

    @property
    def commenting(self) -> bool:
        return self.comment != "never"


@dataclass
class Report:
    """One run of the command: the merged legs, the verdict, and what the outputs share as they are made."""

    settings: Settings
    merged: Merged
    fail_on: str
    verdict: Conclusion
    root: str  # files are shown relative to it
    found: origin.Origin
    ctx: Context
    out: Any
    err: Any
    outputs: Dict[str, str] = field(default_factory=dict)
    full_markdown: Optional[str] = None  # the job summary reuses the --markdown text while nothing changed
    comment_url: str = ""
    comment_failed: Optional[str] = None  # the comment was required or refused: exit 2

    @classmethod
    def load(cls, settings: Settings, out: Any, err: Any) -> Report:
        env = settings.env
        try:
            merged = load_legs(list(settings.dirs))
            if settings.baseline:
                baseline, label = load_baseline(list(settings.baseline)), "the --baseline results"
            else:
                baseline, label = leg_bases(merged)
        except MergeError as exc:
            raise UsageError(strip_controls(str(exc))) from None
        merged.notices.extend(incomplete_note(res) for res in merged.present if res.get("complete") is False)
        merged.notices.extend(baseline.notices)
        for notice in merged.notices:
            print(f"pg-ext-memcheck: warning: {clean(notice, 1000)}", file=err)
        attach_comparison(merged, baseline, settings.fail_on_scope, label)
        if settings.commenting:
            comment_key(settings.comment_key, env)  # refuse a bad key before anything is written
        fail_on = _fail_on(settings.fail_on, merged)
        root = repository_root(settings.repository_path, merged, env)
        found = origin.from_env(env)
        ctx = Context(
            fail_on=fail_on, run_url=_run_url(env, found.run[0]),
            head_sha=found.head_sha or origin.head_sha_from_results(merged.present),
            notices=list(merged.notices), workspace=root,
        )
        return cls(settings, merged, fail_on, merged.conclude(fail_on), root, found, ctx, out, err)


# ---- the renderers: each writes one file when its option names one --------------------------------------


@dataclass(frozen=True)
class FileRenderer:
    option: str  # the argument (and Settings.files key) naming the file
    output: Optional[str]  # the action output that carries the path, if any
    render: Callable[[Report], str]


def _full_markdown(report: Report) -> str:
    report.full_markdown = render(report.merged, report.ctx, SUMMARY)
    return report.full_markdown


RENDERERS: Tuple[FileRenderer, ...] = (
    FileRenderer("junit", "junit-path", lambda r: render_junit(r.merged, r.fail_on, r.root)),
    FileRenderer("markdown", "markdown-path", _full_markdown),
    FileRenderer("markdown_comment", None, lambda r: render(r.merged, r.ctx, COMMENT)),
    FileRenderer("sarif", "sarif-path", lambda r: sarif.render(r.merged, r.fail_on, r.root)),
    FileRenderer("json", "json-path", lambda r: jsonreport.render(r.merged, r.verdict, r.root)),
)


# ---- the publishers, in the order they run ---------------------------------------------------------------


def _print_terminal(report: Report) -> None:
    print(render_terminal(report.merged, report.fail_on, style_for(report.out, report.settings.env), report.root),
          file=report.out, end="")


def _print_annotations(report: Report) -> None:
    if not report.settings.annotations:
        return
    fallback = report.settings.fallback_file
    found = annotate.build(report.merged, report.merged.findings, report.fail_on, report.root, fallback)
    for line in ghoutputs.annotations(found, file=fallback):
        print(line, file=report.out)


def _comment(report: Report) -> None:
    """The sticky comment, and what its outcome means for the log, the job summary and the exit status."""
    s = report.settings
    if not s.commenting:
        return
    outcome = _publish_comment(s, report.merged, report.ctx, report.found)
    report.comment_url = outcome.url or ""
    require = s.comment == "always"
    no_pr = report.found.pr is None
    if outcome.action == "refused" or (require and outcome.action == "degraded"):
        failed = outcome.notice or "the comment could not be posted"
        if require and outcome.action == "degraded" and no_pr:
            failed = f"comment: always, but no pull-request number is known: {failed}"
        print(ghoutputs.command("error", f"pg-ext-memcheck: {failed}", file=s.fallback_file), file=report.out)
        report.comment_failed = failed
        report.ctx.notices.append(failed)
        report.full_markdown = None
    elif outcome.action == "skipped" or (outcome.action == "degraded" and no_pr
                                          and not report.found.from_workflow_run):
        # Nothing to comment on (a push, say): worth a line in the log, not an annotation on every run.
        print(f"pg-ext-memcheck: {outcome.notice}", file=report.out)
    elif outcome.notice:
        # One line, a notice not an error: a fork PR must not turn the job red.
        print(ghoutputs.command("notice", clean(f"pg-ext-memcheck: {outcome.notice}", 1000), file=s.fallback_file),
              file=report.out)
        report.ctx.notices.append(outcome.notice)
        report.full_markdown = None  # re-render so the job summary carries the notice
    elif outcome.url:
        print(f"pg-ext-memcheck: PR comment {outcome.action}: {clean(outcome.url, 500)}", file=report.out)


def _job_summary(report: Report) -> None:
    if not report.settings.job_summary:
        return
    path = report.settings.env.get("GITHUB_STEP_SUMMARY")
    if not path:
        raise UsageError("--job-summary on needs GITHUB_STEP_SUMMARY (set by the GitHub runner)")
    ghoutputs.append_step_summary(Path(path), report.full_markdown or render(report.merged, report.ctx, SUMMARY))


def _outputs(report: Report) -> None:
    c, comparison, outputs = report.verdict.counts, report.merged.comparison, report.outputs
    outputs.update({
        "findings": str(c.findings), "violations": str(c.violations), "errors": str(c.by_severity["ERROR"]),
        "warnings": str(c.by_severity["WARNING"]), "infos": str(c.by_severity["INFO"]),
        "max-severity": c.worst or "none", "conclusion": report.verdict.conclusion,
        # one line, escaped for a workflow command (the action's conclusion step prints it as an ::error::)
        "reasons": ghoutputs.escape_data(clean("; ".join(report.verdict.reasons), 2000)),
        **{r.output: outputs.get(r.output, "") for r in RENDERERS if r.output},
        "comment-url": report.comment_url,
        "new-findings": str(len(comparison.new)) if comparison else "",
        "worse-findings": str(len(comparison.worse)) if comparison else "",
        "fixed-findings": str(len(comparison.fixed)) if comparison else "",
        "compared-with": (comparison.label or "") if comparison else "",
    })
    if report.settings.env.get("GITHUB_OUTPUT"):
        ghoutputs.write_outputs(Path(report.settings.env["GITHUB_OUTPUT"]), outputs)


def _print_verdict(report: Report) -> None:
    c, verdict, merged = report.verdict.counts, report.verdict, report.merged
    counts = ", ".join(f"{c.by_severity[s]} {s}" for s in ("ERROR", "WARNING", "INFO"))
    print(f"pg-ext-memcheck: {verdict.conclusion}: {c.findings} finding(s) ({counts}) from {c.violations} "
          f"violation(s); {c.suppressed} suppressed; "
          f"{c.workloads} workloads on {len(merged.present)} PostgreSQL version(s), "
          f"{len(merged.missing)} missing (fail-on {report.fail_on})", file=report.out)
    for reason in verdict.reasons:
        print(f"  - {reason}", file=report.out)


PUBLISHERS: Tuple[Callable[[Report], None], ...] = (
    _print_terminal, _print_annotations, _comment, _job_summary, _outputs, _print_verdict,
)


def _publish_comment(settings: Settings, merged: Merged, ctx: Context, found: origin.Origin) -> sticky.Outcome:
    """Post where the trusted origin says, after checking that every leg agrees with it."""
    key = comment_key(settings.comment_key, settings.env)
    try:
        client: GitHubClient | None = GitHubClient.from_env(settings.env, settings.retry)
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
    if settings.comment == "changes":
        worth = merged.comparison.changed if merged.comparison else (verdict.failed or bool(merged.findings))
        changes = sticky.Changes(digest, worth)
    return sticky.publish(client, found.pr, key, found.run, render(merged, ctx, COMMENT), settings.comment_app,
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
    """The command with its environment passed in (tests pass a dict and a fast RetryPolicy): the settings,
    the merged legs, then every renderer asked for and every publisher, in order."""
    settings = Settings.from_args(args, env, retry)
    report = Report.load(settings, out or sys.stdout, err or sys.stderr)
    for renderer in RENDERERS:
        path = settings.files.get(renderer.option)
        if path is not None:
            _write(path, renderer.render(report))
            if renderer.output:
                report.outputs[renderer.output] = str(path)
    for publish in PUBLISHERS:
        publish(report)
    if report.merged.rejected:
        # The other legs are reported and published; the bad input still fails the command, by name.
        raise UsageError("; ".join(strip_controls(leg.problem or "") for leg in report.merged.rejected))
    if report.comment_failed is not None:
        return 2  # the report is written; the comment, which was required or refused, is not
    return 1 if report.verdict.failed else 0


def _write(path: Path, text: str) -> None:
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text, encoding="utf-8")
    except OSError as exc:
        raise UsageError(f"{path}: cannot write: {exc.strerror}") from None


def main(args: argparse.Namespace) -> int:
    return run_report(args, os.environ)


__all__: List[str] = ["add_parser", "main", "run_report"]
