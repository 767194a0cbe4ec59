"""`pg-ext-memcheck install-postgres VERSION`: print the pg_config path of an installed PostgreSQL VERSION."""

from __future__ import annotations

import argparse

from reporter import install, provision
from reporter.errors import UsageError


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "install-postgres",
        help="install PostgreSQL VERSION and print its pg_config path (last line of stdout)",
        description="Install a PostgreSQL major version; progress goes to stderr, the pg_config path is the "
        "last line of stdout. Builds and unpacked trees are cached in $PG_EXT_MEMCHECK_CACHE (default: "
        "/var/cache/pg-ext-memcheck as root, else ${XDG_CACHE_HOME:-~/.cache}/pg-ext-memcheck).",
    )
    p.add_argument("version", metavar="VERSION", help="major version, e.g. 15")
    p.add_argument("--method", choices=provision.METHODS, default=provision.DEFAULT_METHOD,
                   help=provision.method_help())
    p.add_argument("--cassert", action="store_true",
                   help="build with --enable-cassert --enable-debug (" + ", ".join(provision.cassert_routes())
                   + " method only)")
    p.set_defaults(func=main)


def main(args: argparse.Namespace) -> int:
    try:
        major = install.parse_major(args.version)
        problem = provision.cassert_problem(args.method) if args.cassert else None
        if problem:
            raise ValueError(problem)
    except ValueError as exc:
        raise UsageError(str(exc)) from exc
    try:
        pg_config = provision.install_with(major, args.method, args.cassert)
    except install.InstallError as exc:
        # Not a finding: exit 2 at the CLI boundary, with what was asked for.
        raise install.InstallError(f"install-postgres {major} --method {args.method}: {exc}") from exc
    print(pg_config, flush=True)
    return 0
