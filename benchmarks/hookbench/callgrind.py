"""Reading callgrind's output: totals of a dump, the call graph of a dump, and callgrind_annotate listings.

Pure text processing. Format: https://valgrind.org/docs/manual/cl-format.html (names may be compressed as
"(id) name" on first use and "(id)" after; a call's cost line follows its "calls=" line and is the inclusive cost
of the call; "cob=" names the callee's object for the next call only, the caller's object otherwise).
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Callable, Dict, List, Optional, Tuple

EVENT = "Ir"


class CallgrindError(Exception):
    """A callgrind file or listing that cannot be read; the message names the source."""


def _event_index(text: str, source: str) -> int:
    match = re.search(r"^events:\s*(.+)$", text, re.MULTILINE)
    if not match:
        raise CallgrindError(f"{source}: no 'events:' line (not a callgrind output file?)")
    events = match.group(1).split()
    if EVENT not in events:
        raise CallgrindError(f"{source}: events are {' '.join(events)}, {EVENT} is not among them")
    return events.index(EVENT)


def read_total(text: str, source: str) -> int:
    """The instructions (Ir) of one dump: its 'totals:' line, else its 'summary:' line."""
    index = _event_index(text, source)
    for key in ("totals", "summary"):
        match = re.search(rf"^{key}:\s*(.+)$", text, re.MULTILINE)
        if match:
            values = match.group(1).split()
            try:
                return int(values[index])
            except (IndexError, ValueError) as exc:
                raise CallgrindError(f"{source}: malformed '{key}:' line: {match.group(0)!r}") from exc
    raise CallgrindError(f"{source}: no 'totals:' or 'summary:' line")


@dataclass
class Profile:
    """The call graph of one dump, by function name."""

    total: int
    objects: Dict[str, str] = field(default_factory=dict)  # function -> ELF object it is in
    self_cost: Dict[str, int] = field(default_factory=dict)  # function -> instructions in the function itself
    calls: Dict[Tuple[str, str], int] = field(default_factory=dict)  # (caller, callee) -> inclusive instructions


_NAMED = re.compile(r"^\((\d+)\)(?: (.*))?$")
_POSITION = re.compile(r"^(?:[+-]?\d+|\*|0x[0-9a-fA-F]+)$")


def parse_profile(text: str, source: str) -> Profile:
    index = _event_index(text, source)
    npos = 1
    match = re.search(r"^positions:\s*(.+)$", text, re.MULTILINE)
    if match:
        npos = len(match.group(1).split())
    profile = Profile(total=read_total(text, source))
    names: Dict[Tuple[str, str], str] = {}

    def name(kind: str, value: str, lineno: int) -> str:
        m = _NAMED.match(value)
        if not m:
            return value
        key = (kind, m.group(1))
        if m.group(2) is not None:
            names[key] = m.group(2)
        if key not in names:
            raise CallgrindError(f"{source}:{lineno}: compressed name ({m.group(1)}) used before it was defined")
        return names[key]

    obj = ""
    fn: Optional[str] = None
    callee_obj: Optional[str] = None
    callee: Optional[str] = None
    in_call = False
    for lineno, line in enumerate(text.splitlines(), 1):
        if not line or line.startswith("#"):
            continue
        head = line.split("=", 1)[0] if "=" in line.split(" ", 1)[0] else ""
        if head:
            value = line.split("=", 1)[1]
            if head == "ob":
                obj = name("ob", value, lineno)
            elif head == "fn":
                fn = name("fn", value, lineno)
                profile.objects[fn] = obj
            elif head == "cob":
                callee_obj = name("ob", value, lineno)
            elif head == "cfn":
                callee = name("fn", value, lineno)
            elif head in ("fl", "fi", "fe", "cfi", "cfl", "jfi"):
                name("fl", value, lineno)
            elif head == "jfn":
                name("fn", value, lineno)
            elif head == "calls":
                if fn is None or callee is None:
                    raise CallgrindError(f"{source}:{lineno}: 'calls=' outside a function or without 'cfn='")
                in_call = True
            continue
        tokens = line.split()
        if not tokens or not _POSITION.match(tokens[0]):
            continue  # header lines (version:, cmd:, summary:, ...)
        costs = tokens[npos:]
        cost = int(costs[index]) if index < len(costs) else 0
        if fn is None:
            raise CallgrindError(f"{source}:{lineno}: cost line before any 'fn='")
        if in_call:
            assert callee is not None
            key = (fn, callee)
            profile.calls[key] = profile.calls.get(key, 0) + cost
            profile.objects.setdefault(callee, callee_obj or obj)
            in_call = False
            callee_obj = None
        else:
            profile.self_cost[fn] = profile.self_cost.get(fn, 0) + cost
    return profile


def object_is(obj: str, library: str) -> bool:
    """Does the ELF object path name this library ("pg_ext_memcheck" matches .../pg_ext_memcheck.so)?"""
    return obj.rsplit("/", 1)[-1] in (library, f"{library}.so")


@dataclass
class OwnWork:
    """The instructions a library's code causes itself: its functions' own instructions plus what they call,
    except calls that hand control on along the hook chain (PostgreSQL's standard_* functions, other libraries)."""

    total: int
    by_function: Dict[str, int]  # the library's functions: self + non-pass-through callees
    callees: Dict[str, int]  # functions outside the library that its code called (not pass-through)
    callers: Dict[str, List[str]]  # for each of those callees: the library's functions that called it


def own_work(profile: Profile, library: str, passthrough: Callable[[str, str], bool]) -> OwnWork:
    """`passthrough(function, object)` says whether a call from the library's code hands control on."""
    mine = {fn for fn, obj in profile.objects.items() if object_is(obj, library)}
    by_function = {fn: profile.self_cost.get(fn, 0) for fn in mine}
    callees: Dict[str, int] = {}
    callers: Dict[str, List[str]] = {}
    for (caller, callee), cost in sorted(profile.calls.items()):
        if caller not in mine or callee in mine or passthrough(callee, profile.objects.get(callee, "")):
            continue
        by_function[caller] += cost
        callees[callee] = callees.get(callee, 0) + cost
        callers.setdefault(callee, []).append(caller)
    return OwnWork(total=sum(by_function.values()), by_function=by_function, callees=callees, callers=callers)


def hook_chain_passthrough(foreign_libraries: Tuple[str, ...]) -> Callable[[str, str], bool]:
    """Calls along the hook chain: into PostgreSQL's standard_* hook targets or into a foreign library."""

    def passthrough(function: str, obj: str) -> bool:
        if function.startswith("standard_"):
            return True
        return any(object_is(obj, lib) for lib in foreign_libraries)

    return passthrough


@dataclass(frozen=True)
class AnnotatedFunction:
    cost: int
    file: str
    function: str
    obj: str


_ANNOTATE_LINE = re.compile(r"^\s*([\d,]+)\s+\(\s*[\d.]+%\)\s+(\S.*?)(?: \[(.+)\])?\s*$")


def parse_annotate(text: str) -> List[AnnotatedFunction]:
    """The per-function lines of a callgrind_annotate listing ("  1,234 ( 0.5%)  file.c:func [/path/obj.so]")."""
    rows = []
    for line in text.splitlines():
        match = _ANNOTATE_LINE.match(line)
        if not match or ":" not in match.group(2):
            continue
        where = match.group(2)
        if where == "PROGRAM TOTALS":
            continue
        file, function = where.split(":", 1)
        rows.append(AnnotatedFunction(int(match.group(1).replace(",", "")), file, function, match.group(3) or ""))
    return rows
