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


def test_inline_chains_are_split_per_address() -> None:
    out = ("0x0000000000001234\n"
           "SH_GROW\n/usr/include/postgresql/15/server/lib/simplehash.h:464\n"
           "SH_CREATE\n/usr/include/postgresql/15/server/lib/simplehash.h:440\n"
           "make_table\n/home/u/ext/inline_site.c:52\n"
           "0x0000000000005678\n"
           "plain\n/home/u/ext/inline_site.c:70\n")
    chains = sites.parse_inline_chains(out)
    assert [len(c) for c in chains] == [3, 1]
    assert chains[0][2] == ("make_table", "/home/u/ext/inline_site.c", 52)


def test_the_site_is_the_extensions_own_frame_of_an_inline_chain() -> None:
    chain = [("SH_GROW", "/opt/pg/include/server/lib/simplehash.h", 464),
             ("SH_CREATE", "/opt/pg/include/server/lib/simplehash.h", 440),
             ("make_table", "/home/u/ext/inline_site.c", 52)]
    assert sites.pick_frame(chain, ["/opt/pg/include/server"]) == ("make_table", "/home/u/ext/inline_site.c", 52)
    # the extension's own header is its code
    own = [("helper", "/home/u/ext/own.h", 9), ("caller", "/home/u/ext/a.c", 3)]
    assert sites.pick_frame(own, ["/opt/pg/include/server"]) == ("helper", "/home/u/ext/own.h", 9)
    # nothing but headers: the innermost frame, as before
    assert sites.pick_frame(chain[:1], ["/opt/pg/include/server"]) == chain[0]


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
