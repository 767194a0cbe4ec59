"""`pg-ext-memcheck run`: run the workloads of memcheck.yml on a private cluster and write results.json."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from reporter import results, runner, sites, suppress
from reporter.commands.build import load_config, pg_info
from reporter.config import Config


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "run",
        help="run the configured workloads on a private cluster; write DIR/results.json and DIR/server.log",
        description="Start a private cluster (unix socket only) with pg_ext_memcheck and the configured "
        "libraries preloaded, run setup and every workload, and write DIR/results.json and DIR/server.log. "
        "Errors, timeouts and crashes are recorded as results. Exit status 0 once results.json is written "
        "(judging it is the job of `report`), 2 for bad input.",
    )
    p.add_argument("--config", required=True, metavar="FILE", type=Path, help="memcheck.yml")
    p.add_argument("--pg-config", required=True, metavar="PATH", help="pg_config of the PostgreSQL to run")
    p.add_argument("--output", required=True, metavar="DIR", type=Path, help="directory for the results")
    p.add_argument("--expect-major", type=int, metavar="N", help="fail unless pg_config is major N")
    p.set_defaults(func=main)


def execute(cfg: Config, pg_config: str, output: Path) -> results.Results:
    """Run, apply suppressions, write DIR/results.json; shared with `check`."""
    doc = runner.run(cfg, pg_config, output, results.github_context(), progress=progress)
    # Here the built libraries still exist: resolve allocation sites to source lines now, for every later reader.
    resolved = sites.resolve_results(doc)
    if resolved:
        progress(f"resolved {resolved} allocation site(s) to source lines")
    for note in suppress.apply(doc, cfg.suppressions):
        progress(note)
    results.dump(doc, output / "results.json")
    return doc


def progress(message: str) -> None:
    print(f"pg-ext-memcheck: {message}", file=sys.stderr, flush=True)


def main(args: argparse.Namespace) -> int:
    cfg = load_config(args.config)
    pg_info(args.pg_config, args.expect_major)
    execute(cfg, args.pg_config, args.output)
    progress(f"wrote {args.output / 'results.json'}")
    return 0
