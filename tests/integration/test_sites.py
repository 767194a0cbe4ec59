"""Allocation sites resolved with addr2line against a REAL build of examples/buggy_pg_ext (built the way `build` and
`check` build it: a private copy, -g, the copy's paths mapped back to the sources), installed into a private
DESTDIR so that the shared PostgreSQL installation is not touched."""

from __future__ import annotations

import re
import subprocess
from pathlib import Path
from typing import Any, Dict, Iterator, List, Tuple

import pytest

from reporter import build, sites

EXAMPLE = Path(__file__).resolve().parents[2] / "examples" / "buggy_pg_ext"
SOURCE = EXAMPLE / "buggy_pg_ext.c"


def function_lines(name: str) -> range:
    lines = SOURCE.read_text().splitlines()
    start = next(n for n, text in enumerate(lines, 1) if re.match(rf"{name}\(", text))
    end = next(n for n, text in enumerate(lines[start:], start + 1) if text == "}")
    return range(start, end + 1)


def line_of(needle: str) -> int:
    return next(n for n, text in enumerate(SOURCE.read_text().splitlines(), 1) if needle in text)


@pytest.fixture(scope="module")
def built(pg_config: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Tuple[Path, Any]]:
    info = build.read_pg_config(pg_config)
    dest = tmp_path_factory.mktemp("destdir")
    build.make_install(EXAMPLE, info, [f"DESTDIR={dest}"])
    lib = dest / info.pkglibdir.lstrip("/") / "buggy_pg_ext.so"
    assert lib.is_file()
    yield lib, info


def symbol(lib: Path, name: str) -> int:
    out = subprocess.run(["nm", str(lib)], capture_output=True, text=True, check=True).stdout
    m = re.search(rf"^([0-9a-f]+) [tT] {name}$", out, re.M)
    assert m, f"{name} not in nm output"
    return int(m.group(1), 16)


def return_addresses_after_calls(lib: Path, function: str, callee: str) -> List[int]:
    """The addresses right after each `call callee` inside `function`: what backtrace() reports as return
    addresses (the compiler orders the calls as it likes, not as the source does)."""
    out = subprocess.run(["objdump", "-d", "--no-show-raw-insn", str(lib)], capture_output=True, text=True,
                         check=True).stdout
    body = out.split(f"<{function}>:\n", 1)[1].split("\n\n", 1)[0].splitlines()
    found = [int(body[n + 1].split(":")[0].strip(), 16)
             for n, line in enumerate(body) if "call" in line and f"<{callee}" in line]
    assert found, f"no call to {callee} in {function}"
    return found


def return_address_after_call(lib: Path, function: str, callee: str) -> int:
    found = return_addresses_after_calls(lib, function, callee)
    assert len(found) == 1, f"{len(found)} calls to {callee} in {function}"
    return found[0]


def lines_calling(function: str, needle: str) -> List[int]:
    text = SOURCE.read_text().splitlines()
    return [n for n in function_lines(function) if needle in text[n - 1]]


def results_with(pkglibdir: str, *offsets: str) -> Dict[str, Any]:
    return {
        "postgresql": {"version": "x", "major": 15, "pkglibdir": pkglibdir},
        "workloads": [{"violations": [{"sites": [
            {"lib": "buggy_pg_ext.so", "offset": o, "bytes": 8208, "count": 1} for o in offsets]}]}],
    }


def test_an_address_inside_a_function_resolves_to_its_source(built: Tuple[Path, Any]) -> None:
    lib, _ = built
    offset = hex(symbol(lib, "buggy_ExecutorStart") + 4)  # a few bytes into the function
    doc = results_with(str(lib.parent), offset)
    assert sites.resolve_results(doc) == 1
    site = doc["workloads"][0]["violations"][0]["sites"][0]
    assert site["function"] == "buggy_ExecutorStart"
    assert site["file"] == str(SOURCE)  # the build copy's path was mapped back to the sources
    assert site["line"] in function_lines("buggy_ExecutorStart")


def test_a_return_address_resolves_to_the_allocating_line(built: Tuple[Path, Any]) -> None:
    lib, _ = built
    rets = return_addresses_after_calls(lib, "buggy_ExecutorStart", "MemoryContextAlloc")
    nested = return_address_after_call(lib, "buggy_ExecutorEnd", "palloc")
    doc = results_with(str(lib.parent), *map(hex, rets), hex(nested), "0x0")
    assert sites.resolve_results(doc) == len(rets) + 1
    *starts, end, nothing = doc["workloads"][0]["violations"][0]["sites"]
    # 1 is subtracted: each call's own line, not the line after it; every call in the source, each once
    assert {s["function"] for s in starts} == {"buggy_ExecutorStart"}
    assert {s["line"] for s in starts} == set(lines_calling("buggy_ExecutorStart", "MemoryContextAlloc("))
    assert (end["function"], end["line"]) == ("buggy_ExecutorEnd", line_of("palloc(2048)"))
    assert nothing.get("line") is None  # not code: left unresolved


def test_unresolvable_sites_stay_as_they_are(tmp_path: Path, built: Tuple[Path, Any]) -> None:
    lib, _ = built
    doc = results_with(str(tmp_path), hex(symbol(lib, "buggy_ExecutorStart")))  # no library there
    assert sites.resolve_results(doc) == 0
    assert "function" not in doc["workloads"][0]["violations"][0]["sites"][0]
    assert sites.resolve(lib, ["0x10"], tool=str(tmp_path / "no-addr2line")) == {}
