"""Entry point of the `pg-ext-memcheck` console script: parses arguments and dispatches to a subcommand."""

from __future__ import annotations

import argparse
import importlib
import sys
from typing import Optional, Sequence

from reporter import __version__

# Each subcommand lives in its own module under reporter.commands; the order is the help order.
SUBCOMMANDS = ("install_postgres", "build", "run", "report", "check")


class UsageError(Exception):
    """Bad input from the user: printed as one clear line, exit status 2."""


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="pg-ext-memcheck",
        description="Find memory-context misuse in PostgreSQL extensions and report it for CI.",
    )
    parser.add_argument("--version", action="version", version=f"pg-ext-memcheck {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    sub.required = True
    for name in SUBCOMMANDS:
        module = importlib.import_module(f"reporter.commands.{name}")
        module.add_parser(sub)
    return parser


def main(argv: Optional[Sequence[str]] = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        return int(args.func(args))
    except UsageError as exc:
        print(f"pg-ext-memcheck: error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":
    # `python -m reporter.cli` runs this file as __main__, a second copy of the module: dispatch through the
    # imported one, so the UsageError the commands raise is the one caught here (exit 2).
    from reporter import cli as _cli

    sys.exit(_cli.main())
