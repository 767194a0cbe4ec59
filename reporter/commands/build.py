"""`pg-ext-memcheck build`: build and install the hook library and extensions against one pg_config."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from reporter import build, config, exttree
from reporter.errors import UsageError


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "build",
        help="build and install the hook library and extensions with PGXS against PG_CONFIG",
        description="Run `make` and `make install` with PG_CONFIG pinned to --pg-config (never the pg_config on "
        "PATH) for the hook library and each --extension directory (and the extension of --config), the "
        "extensions with USE_PGXS=1 before memcheck.yml's make_args. Fails when the PostgreSQL major is not the "
        "one asked for, and names what a directory holds instead when it is not a PGXS extension.",
    )
    p.add_argument("--pg-config", required=True, metavar="PATH", help="pg_config of the target PostgreSQL")
    p.add_argument(
        "--extension",
        action="append",
        default=[],
        metavar="DIR",
        type=Path,
        help="PGXS extension directory to build and install (repeatable)",
    )
    p.add_argument(
        "--config",
        metavar="FILE",
        type=Path,
        help="also build the extension memcheck.yml names (with its make_args)",
    )
    p.add_argument("--expect-major", type=int, metavar="N", help="fail unless pg_config is PostgreSQL major N")
    p.set_defaults(func=main)


def pg_info(pg_config: str, expect_major: int | None) -> build.PgConfig:
    """The pg_config's facts; BuildError (exit 2 at the CLI boundary) when it is missing or the wrong major."""
    info = build.read_pg_config(pg_config)
    build.check_major(info, expect_major)
    return info


def load_config(path: Path) -> config.Config:
    """memcheck.yml; ConfigError (exit 2, every problem with file, line and key) when it is unusable."""
    return config.load(path)


def main(args: argparse.Namespace) -> int:
    info = pg_info(args.pg_config, args.expect_major)
    for ext in args.extension:
        instead = exttree.found_instead(ext)
        if instead is not None:
            raise UsageError(f"--extension {ext}: {exttree.not_an_extension(instead)}")
    make_args: tuple[str, ...] = ()
    extensions = list(args.extension)
    if args.config is not None:
        cfg = load_config(args.config)
        if cfg.extension is not None and cfg.extension.path is not None:
            extensions.append(cfg.extension.path)
            make_args = cfg.extension.make_args
    build.build_all(info, extensions, make_args=make_args, log=_log)  # a BuildError is exit 2 at the CLI boundary
    print(f"built and installed against PostgreSQL {info.version} (major {info.major}, {info.path})")
    return 0


def _log(message: str) -> None:
    print(message, file=sys.stderr, flush=True)
