"""`pg-ext-memcheck check`: build, run and summarise in the terminal; the local one-shot."""

from __future__ import annotations

import argparse
import glob
import os
import re
import shutil
import sys
import tempfile
import time
from pathlib import Path

from reporter import build, defaults, jsonreport
from reporter.commands.build import load_config, pg_info
from reporter.commands.run import claim_output, execute, interrupted_status, progress, run_base
from reporter.config import Config
from reporter.errors import UsageError
from reporter.merge import BASE_DIR, Leg, Merged, attach_comparison, leg_bases
from reporter.pgconfig import PgConfig
from reporter.terminal import render_terminal, style_for
from reporter.vocab import FAIL_ON_LEVELS, FAIL_ON_SCOPES

CONFIG_NAME = "memcheck.yml"
EXAMPLE_DIR = build.EXAMPLE_DIR


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "check",
        help="build, run and summarise in the terminal (exit 1 on findings at or above fail-on)",
        description="Build the hook library and the extension, run the workloads of --config (default: "
        "memcheck.yml in the extension's directory; without one, the extension's own test suites: `make "
        "installcheck` of its PGXS Makefile, REGRESS and ISOLATION, each test file a workload) on a private "
        "cluster and print a summary. A directory that is not a PGXS extension is refused (exit 2) with what "
        "it holds instead; --example runs the bundled buggy example. With --compare REF, first build and run "
        "the base revision REF the same way and report what this revision made worse. Exit status: 0 clean, 1 "
        "findings at or above fail-on (--fail-on, else memcheck.yml's; with --compare: new or worse ones, see "
        "--fail-on-scope) or no workload ran, 2 bad input or an environment problem (not an extension, a build "
        "that fails, a server that cannot start), 128+N when signal N stopped it.",
    )
    p.add_argument("--config", metavar="FILE", type=Path,
                   help="memcheck.yml (default: memcheck.yml in --extension's directory; without one, the "
                        "extension's own test suites)")
    p.add_argument("--extension", metavar="DIR", type=Path,
                   help="the extension's directory when there is no --config (default: the current directory)")
    p.add_argument("--example", action="store_true",
                   help="run the bundled deliberately buggy example (examples/buggy_pg_ext and its memcheck.yml; "
                        "exits 1: it has memory bugs on purpose)")
    p.add_argument(
        "--pg-config",
        metavar="PATH",
        help="pg_config to use (default: pg_config on PATH, else the highest /usr/lib/postgresql/*/bin/pg_config)",
    )
    p.add_argument(
        "--output",
        metavar="DIR",
        type=Path,
        help="where results.json and server.log go (default: ./memcheck-results, or a temporary "
        "directory when that is not writable)",
    )
    p.add_argument("--compare", metavar="REF",
                   help="compare with the base revision REF of the extension's git repository (a commit, branch "
                        "or tag; fetched from origin when the clone lacks it): it is checked out in a temporary "
                        "worktree, built against the same PostgreSQL and run with the same workloads first. A "
                        "base that cannot be built or run is reported and the comparison skipped")
    p.add_argument("--fail-on", choices=FAIL_ON_LEVELS,
                   help="the lowest severity that fails (exit 1): never, info, warning, error (default: "
                        "memcheck.yml's fail-on, else error)")
    p.add_argument("--json", type=Path, metavar="FILE",
                   help="also write the JSON summary here: verdict, counts, findings with their classification "
                        "(reporter/schemas/summary.schema.json, as `report --json`)")
    p.add_argument("--fail-on-scope", choices=FAIL_ON_SCOPES,
                   help="new: only findings this revision introduced or made worse (and workloads it broke) "
                        "fail; all: every finding does (default: new when a base was compared, else all)")
    p.set_defaults(func=main)


def find_config(args: argparse.Namespace) -> Path | None:
    """--config; --example: the bundled example's; else memcheck.yml in --extension's directory (default: here).
    None: there is none, so the extension's own test suites run (reporter/defaults.py decides whether the
    directory is an extension at all)."""
    if args.example:
        if args.config is not None or args.extension is not None:
            raise UsageError("--example runs the bundled example with its own memcheck.yml: not with --config or "
                             "--extension")
        progress(f"running the bundled example {EXAMPLE_DIR} (it has memory bugs on purpose)")
        return EXAMPLE_DIR / CONFIG_NAME
    if args.config is not None:
        return args.config
    local = extension_dir(args) / CONFIG_NAME
    return local if local.is_file() else None


def extension_dir(args: argparse.Namespace) -> Path:
    return args.extension if args.extension is not None else Path.cwd()


def find_pg_config(explicit: str | None) -> str:
    if explicit:
        return explicit
    on_path = shutil.which("pg_config")
    if on_path:
        return on_path
    candidates = glob.glob("/usr/lib/postgresql/*/bin/pg_config")

    def major(path: str) -> int:
        match = re.search(r"/postgresql/(\d+)/", path)
        return int(match.group(1)) if match else 0

    if not candidates:
        raise UsageError("no pg_config found on PATH or in /usr/lib/postgresql/*/bin; pass --pg-config")
    return max(candidates, key=major)


def output_dir(explicit: Path | None) -> Path:
    if explicit is not None:
        return explicit
    default = Path.cwd() / "memcheck-results"
    try:
        default.mkdir(exist_ok=True)
        probe = default / ".write-test"
        probe.touch()
        probe.unlink()
        return default
    except OSError:
        return Path(tempfile.mkdtemp(prefix="memcheck-results-"))


def main(args: argparse.Namespace) -> int:
    started = time.monotonic()
    config_path = find_config(args)
    cfg = load_config(config_path) if config_path is not None else None
    pg_config = find_pg_config(args.pg_config)
    info = pg_info(pg_config, None)
    if cfg is None:
        # Not an extension: exit 2 naming what is there, before anything is written (no memcheck-results/).
        cfg = defaults.for_directory(extension_dir(args), pg_config)
        progress(f"no {CONFIG_NAME} here: running the extension's regression suite (make installcheck)")
    out = output_dir(args.output)
    # no earlier results.json is left to pass for this run's, and no other run writes there meanwhile
    with claim_output(out):
        return _check(args, cfg, pg_config, info, out, started)


def _check(args: argparse.Namespace, cfg: Config, pg_config: str, info: PgConfig, out: Path,
           started: float) -> int:
    shutil.rmtree(out / BASE_DIR, ignore_errors=True)  # nor an earlier base to compare with
    progress(f"PostgreSQL {info.version} ({pg_config})")
    base_started = time.monotonic()
    if args.compare:
        run_base(cfg, pg_config, args.compare, out)  # first: it installs the base's build, ours replaces it
    built = time.monotonic()
    build.install_hook_library(info, log=progress)  # a BuildError is exit 2 at the CLI boundary
    if cfg.extension and cfg.extension.path:
        build.install_extension(cfg.extension.path, info, cfg.extension.make_args, log=progress)
    ran = time.monotonic()
    doc = execute(cfg, pg_config, out)
    merged = Merged([Leg(out, doc)])
    baseline, label = leg_bases(merged)
    for notice in baseline.notices:
        progress(f"warning: {notice}")
    attach_comparison(merged, baseline, args.fail_on_scope, label)
    fail_on = args.fail_on or doc["fail_on"]
    root = merged.source_root or os.getcwd()
    print(render_terminal(merged, fail_on, style=style_for(sys.stdout, os.environ), root=root))
    if args.json is not None:
        try:
            args.json.parent.mkdir(parents=True, exist_ok=True)
            args.json.write_text(jsonreport.render(merged, merged.conclude(fail_on), root), encoding="utf-8")
        except OSError as exc:
            raise UsageError(f"{args.json}: cannot write: {exc.strerror}") from None
    for note in doc.get("notes") or []:
        print(f"note: {note}")
    print(f"results: {out / 'results.json'}  server log: {out / 'server.log'}")
    done = time.monotonic()
    progress(f"finished in {done - started:.1f}s (build {ran - built:.1f}s, run {done - ran:.1f}s"
             + (f", base {built - base_started:.1f}s" if args.compare else "") + ")")
    stopped = interrupted_status(doc)
    return stopped if stopped is not None else exit_status(merged, fail_on)


def exit_status(merged: Merged, fail_on: str) -> int:
    """The same rule as `report`: findings at or above fail-on (in scope), broken workloads, or nothing ran."""
    return 1 if merged.conclude(fail_on).failed else 0
