"""Site resolution helpers and the debug flags of the build (the real addr2line run is in
tests/integration/test_sites.py)."""

from __future__ import annotations

import shlex
from pathlib import Path

from reporter import sites
from reporter.build import debug_make_args


def test_return_addresses_are_looked_up_one_byte_back() -> None:
    assert sites.lookup_address("0x14f3") == "0x14f2"
    assert sites.lookup_address("0x0") == "0x0"


def test_parse_addr2line_output() -> None:
    out = ("buggy_ExecutorStart\n/src/buggy_pg_ext.c:193\n"
           "??\n??:0\n"
           "inlined_thing\n/src/a.c:12 (discriminator 3)\n"
           "fn\n/src/b.c:?\n")
    assert sites.parse_addr2line(out, 5) == [
        ("buggy_ExecutorStart", "/src/buggy_pg_ext.c", 193), (None, None, None), ("inlined_thing", "/src/a.c", 12),
        ("fn", None, None), (None, None, None),  # a short answer leaves the rest unresolved
    ]


def test_library_path() -> None:
    assert sites.library_path("buggy_pg_ext.so", "/usr/lib/postgresql/15/lib") == Path(
        "/usr/lib/postgresql/15/lib/buggy_pg_ext.so")
    assert sites.library_path("/opt/x/lib.so", None) == Path("/opt/x/lib.so")
    assert sites.library_path("../../etc/passwd", "/usr/lib") is None  # a bare file name only
    assert sites.library_path("lib.so", None) is None


def test_debug_flags_are_added_without_replacing_the_users() -> None:
    build, source = Path("/tmp/pgmc-build-x"), Path("/home/u/my ext")
    args = debug_make_args(["PG_CFLAGS=-Werror"], build, source)
    assert args[0] == "PG_CFLAGS=-Werror"
    copt = args[1].split("=", 1)[1]
    assert shlex.split(copt) == ["-g", "-fdebug-prefix-map=/tmp/pgmc-build-x=/home/u/my ext"]  # quoted for make's shell
    merged = debug_make_args(["COPT=-O0", "V=1"], build, source)
    assert merged[0].startswith("COPT=-O0 -g ") and merged[1] == "V=1" and len(merged) == 2
