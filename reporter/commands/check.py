"""`pg-ext-memcheck check`: build, run and summarise in the terminal; the local one-shot."""

from __future__ import annotations

import argparse
import glob
import os
import re
import shutil
import sys
import tempfile
from pathlib import Path
from typing import Any, Dict

from reporter import build, defaults
from reporter.cli import UsageError
from reporter.commands.build import load_config, pg_info
from reporter.commands.run import execute, interrupted_status, prepare_output, progress
from reporter.merge import Leg, Merged
from reporter.summary import conclude
from reporter.terminal import render_terminal, style_for

CONFIG_NAME = "memcheck.yml"
EXAMPLE_DIR = build.REPO_ROOT / "examples" / "buggy_pg_ext"


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "check",
        help="build, run and summarise in the terminal (exit 1 on findings at or above fail-on)",
        description="Build the hook library and the extension, run the workloads of --config (default: "
        "./memcheck.yml; without one, the bundled examples/buggy_pg_ext) on a private cluster and print a "
        "summary. Exit status: 0 clean, 1 findings at or above fail-on or no workload ran, 2 bad input.",
    )
    p.add_argument("--config", metavar="FILE", type=Path, help="memcheck.yml (default: ./memcheck.yml)")
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
    p.set_defaults(func=main)


def find_config(explicit: Path | None) -> Path | None:
    """--config, else ./memcheck.yml; None: the extension here has none, so its regression suite runs; with
    neither a memcheck.yml nor a Makefile here, the bundled example."""
    if explicit is not None:
        return explicit
    local = Path.cwd() / CONFIG_NAME
    if local.is_file():
        return local
    if (Path.cwd() / "Makefile").is_file():
        progress(f"no {CONFIG_NAME} here: running the extension's regression suite (make installcheck)")
        return None
    progress(f"no {CONFIG_NAME} and no Makefile here: running the bundled example {EXAMPLE_DIR}")
    return EXAMPLE_DIR / CONFIG_NAME


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
    out = output_dir(args.output)
    prepare_output(out)  # before anything can fail: no earlier results.json is left to pass for this run's
    config_path = find_config(args.config)
    cfg = load_config(config_path) if config_path is not None else None
    pg_config = find_pg_config(args.pg_config)
    info = pg_info(pg_config, None)
    cfg = cfg or defaults.for_directory(Path.cwd(), pg_config)
    progress(f"PostgreSQL {info.version} ({pg_config})")
    extensions = [cfg.extension.path] if cfg.extension and cfg.extension.path else []
    build.install_hook_library(info, log=progress)  # a BuildError is exit 2 at the CLI boundary
    for ext in extensions:
        build.make_install(ext, info, cfg.extension.make_args if cfg.extension else (), log=progress)
    doc = execute(cfg, pg_config, out)
    print(render_terminal(Merged([Leg(out, doc)]), style=style_for(sys.stdout, os.environ), root=os.getcwd()))
    print(f"results: {out / 'results.json'}  server log: {out / 'server.log'}")
    stopped = interrupted_status(doc)
    return stopped if stopped is not None else exit_status(doc)


def exit_status(doc: Dict[str, Any]) -> int:
    """The same rule as `report`: findings at or above fail-on, broken workloads, or nothing ran."""
    return 1 if conclude([doc], doc["fail_on"]).failed else 0
