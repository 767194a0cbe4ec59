"""`pg-ext-memcheck cleanup DIR`: stop the servers a killed run left in DIR (its TMPDIR), and only those."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from reporter import cleanup


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "cleanup",
        help="stop the PostgreSQL servers a killed run left in DIR (the run's TMPDIR)",
        description="Look for DIR/pgmc-*/data/postmaster.pid (the private clusters `run` creates under its "
        "TMPDIR) and stop each server that is still running, after checking that the PID is a postgres "
        "process serving that data directory. Anything else is left alone. Exit status 0, or 2 when a "
        "verified server did not stop.",
    )
    p.add_argument("root", metavar="DIR", type=Path, help="the TMPDIR the run used")
    p.set_defaults(func=main)


def main(args: argparse.Namespace) -> int:
    outcomes = cleanup.stop_leftovers(args.root, log=_log)
    stuck = [o for o in outcomes if o.action == "still running"]
    for o in stuck:
        _log(f"{o.data_dir}: the server {o.pid} {o.reason}")
    stopped = sum(1 for o in outcomes if o.action == "stopped")
    _log(f"{stopped} leftover server(s) stopped under {args.root}")
    return 2 if stuck else 0


def _log(message: str) -> None:
    print(f"pg-ext-memcheck: cleanup: {message}", file=sys.stderr, flush=True)
