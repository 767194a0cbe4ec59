"""The hook library's layers (docs/architecture.md): each folder of cext/ calls only the folders below it, and
no cycle of calls between files spans more than three files.

Read from the sources: every non-static function or variable a .c file defines, and every file that names it.
A lower layer that must tell a higher one something does it through a listener registered at start-up, so
a name of a higher layer never appears in a lower layer's file.
"""

from __future__ import annotations

import re
from collections import defaultdict
from pathlib import Path
from typing import Dict, List, Set

CEXT = Path(__file__).resolve().parents[2] / "cext"
# Bottom to top; pg_ext_memcheck.c (the module entry) sits above every layer.
LAYERS = ["base", "platform", "observe", "entry", "scenarios", "checks", "api", "pg_ext_memcheck.c"]


def layer_of(rel: str) -> int:
    return LAYERS.index(rel.split("/")[0])


def sources() -> Dict[str, str]:
    """cext-relative path -> the file's text without comments and string literals."""
    out = {}
    for path in sorted(CEXT.rglob("*.c")):
        text = re.sub(r"/\*.*?\*/", "", path.read_text(), flags=re.S)
        text = re.sub(r'"(?:[^"\\\n]|\\.)*"', '""', text)
        out[str(path.relative_to(CEXT))] = text
    return out


def definitions(files: Dict[str, str]) -> Dict[str, str]:
    """Global symbol -> the file defining it: functions (type on the line above, name at column 0) and
    variables (`type mc_name = ...;` or `type mc_name;` at column 0). SQL-callable functions (PG_FUNCTION_ARGS)
    are called by PostgreSQL, never by another file, so they are left out."""
    defs: Dict[str, str] = {}
    for rel, text in files.items():
        for m in re.finditer(r"^(?!static)[A-Za-z_][\w \*]*\n([a-z_]\w*)\((?!PG_FUNCTION_ARGS)", text, re.M):
            defs[m.group(1)] = rel
        for m in re.finditer(r"^(?!static)(?:const )?[A-Za-z_]\w*\s*\**\s*(mc_\w+)\s*(?:\[|=|;)", text, re.M):
            defs.setdefault(m.group(1), rel)
    return defs


def call_graph() -> Dict[str, Dict[str, List[str]]]:
    """file -> {file it names a symbol of -> the symbols}."""
    files = sources()
    defs = definitions(files)
    graph: Dict[str, Dict[str, List[str]]] = defaultdict(dict)
    for rel, text in files.items():
        named = set(re.findall(r"\b[a-z_]\w*\b", text))
        for sym in sorted(named & defs.keys()):
            owner = defs[sym]
            if owner != rel:
                graph[rel].setdefault(owner, []).append(sym)
    return graph


def strongly_connected(graph: Dict[str, Dict[str, List[str]]]) -> List[Set[str]]:
    index: Dict[str, int] = {}
    low: Dict[str, int] = {}
    stack: List[str] = []
    on: Set[str] = set()
    comps: List[Set[str]] = []
    nodes = sorted(set(graph) | {d for targets in graph.values() for d in targets})

    def visit(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        on.add(v)
        for w in graph.get(v, {}):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            comp = set()
            while True:
                w = stack.pop()
                on.discard(w)
                comp.add(w)
                if w == v:
                    break
            comps.append(comp)

    for v in nodes:
        if v not in index:
            visit(v)
    return comps


def test_every_source_file_sits_in_a_layer() -> None:
    misplaced = [rel for rel in sources() if rel.split("/")[0] not in LAYERS]
    assert not misplaced, f"files outside the layer folders: {misplaced}"


def test_no_layer_calls_a_higher_one() -> None:
    upward = [f"{src} -> {dst}: {', '.join(syms)}"
              for src, targets in call_graph().items() for dst, syms in targets.items()
              if layer_of(dst) > layer_of(src)]
    assert not upward, "a lower layer names a higher layer's symbol (use a listener):\n" + "\n".join(upward)


def test_no_call_cycle_spans_more_than_three_files() -> None:
    big = [sorted(c) for c in strongly_connected(call_graph()) if len(c) > 3]
    assert not big, f"call cycles over more than three files: {big}"


def test_the_graph_is_read_at_all() -> None:
    """The parser must see the known calls, or the tests above would pass on an empty graph."""
    graph = call_graph()
    assert "mc_finding_get" in graph["observe/track.c"]["base/findings.c"]
    assert "mc_seg_open" in graph["entry/fmgrhook.c"]["observe/segment.c"]
