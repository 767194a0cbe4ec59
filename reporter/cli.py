"""Entry point of the `pg-ext-memcheck` console script: parses arguments and dispatches to a subcommand."""

from __future__ import annotations

import argparse
import importlib
import os
import sys
from typing import Optional, Sequence

from reporter import __version__
from reporter.errors import UsageError

# Each subcommand lives in its own module under reporter.commands; the order is the help order.
SUBCOMMANDS = ("install_postgres", "build", "run", "report", "check", "cleanup", "validate_inputs")


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


def _message(exc: BaseException) -> str:
    """The one-line-or-more text the user sees for an error the boundary knows."""
    from reporter.config import ConfigError

    if isinstance(exc, ConfigError):
        return "invalid configuration:\n" + "\n".join(exc.errors)
    if isinstance(exc, OSError) and exc.filename is not None:
        return f"{exc.filename}: {exc.strerror or exc}"
    return str(exc).strip() or type(exc).__name__


def _known_errors() -> tuple:
    """Every error class that means bad input or an unusable environment: exit 2, one clear message."""
    from reporter.build import BuildError
    from reporter.cluster import ClusterError
    from reporter.config import ConfigError
    from reporter.files import FileProblem
    from reporter.github import GitHubError
    from reporter.install import InstallError
    from reporter.merge import MergeError
    from reporter.pgconfig import PgConfigError
    from reporter.results import ResultsError

    return (UsageError, ConfigError, BuildError, ClusterError, ResultsError, MergeError, InstallError,
            PgConfigError, GitHubError, FileProblem, OSError)


def main(argv: Optional[Sequence[str]] = None) -> int:
    """The one error boundary: 0 and 1 come from the commands (1 = findings), everything else is 2 with a
    message, 130 for Ctrl-C. A traceback only with PG_EXT_MEMCHECK_TRACEBACK=1 (for developing this tool)."""
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        return int(args.func(args))
    except KeyboardInterrupt:
        print("pg-ext-memcheck: interrupted", file=sys.stderr)
        return 130
    except _known_errors() as exc:
        print(f"pg-ext-memcheck: error: {_message(exc)}", file=sys.stderr)
        return 2
    except Exception as exc:  # the boundary: a bug must still end in one line and status 2
        if os.environ.get("PG_EXT_MEMCHECK_TRACEBACK") == "1":
            raise
        print(f"pg-ext-memcheck: internal error: {type(exc).__name__}: {exc} (set PG_EXT_MEMCHECK_TRACEBACK=1 "
              "to see where; please report it)", file=sys.stderr)
        return 2


if __name__ == "__main__":
    # `python -m reporter.cli` runs this file as a second copy of the module; UsageError lives in
    # reporter.errors, so the one the commands raise is the one caught here either way.
    sys.exit(main())
