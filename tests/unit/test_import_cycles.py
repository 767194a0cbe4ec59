"""reporter/ has no import cycle: every module's imports (at the top, inside functions, and through
importlib.import_module with a literal or f-string name) read with ast, and the graph searched for a cycle.

What two modules both need lives below both (reporter/errors.py's UsageError for cli and commands/*,
reporter/ctxfilter.py for runner and regress), never in one of them imported lazily by the other."""

from __future__ import annotations

import ast
from pathlib import Path
from typing import Dict, List, Set

ROOT = Path(__file__).resolve().parents[2]
PACKAGE = ROOT / "reporter"


def module_names(package: Path) -> Dict[str, Path]:
    """Dotted name -> file for every module of the package (a package's __init__ under the package's name)."""
    out = {}
    for path in sorted(package.rglob("*.py")):
        parts = path.relative_to(package.parent).with_suffix("").parts
        if parts[-1] == "__init__":
            parts = parts[:-1]
        out[".".join(parts)] = path
    return out


def _dynamic_prefix(call: ast.Call) -> str | None:
    """importlib.import_module("a.b") -> "a.b"; import_module(f"a.b.{x}") -> "a.b." (a prefix)."""
    func = call.func
    name = func.attr if isinstance(func, ast.Attribute) else func.id if isinstance(func, ast.Name) else None
    if name != "import_module" or not call.args:
        return None
    arg = call.args[0]
    if isinstance(arg, ast.Constant) and isinstance(arg.value, str):
        return arg.value
    if isinstance(arg, ast.JoinedStr) and arg.values and isinstance(arg.values[0], ast.Constant):
        return str(arg.values[0].value)
    return None


def imports_of(name: str, source: str, modules: Set[str], is_package: bool = False) -> Set[str]:
    """The package's modules that module `name` (an __init__ when is_package) imports, wherever in the file."""
    found: Set[str] = set()
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Import):
            found.update(a.name for a in node.names if a.name in modules)
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = name.rsplit(".", node.level - 1)[0] if is_package else name.rsplit(".", node.level)[0]
                target = f"{base}.{node.module}" if node.module else base
            else:
                target = node.module or ""
            if target in modules:
                found.add(target)
            found.update(f"{target}.{a.name}" for a in node.names if f"{target}.{a.name}" in modules)
        elif isinstance(node, ast.Call):
            prefix = _dynamic_prefix(node)
            if prefix is not None:
                found.update(m for m in modules if m == prefix or (prefix.endswith(".") and m.startswith(prefix)))
    found.discard(name)
    return found


def import_graph(package: Path) -> Dict[str, Set[str]]:
    modules = module_names(package)
    return {name: imports_of(name, path.read_text(encoding="utf-8"), set(modules), path.name == "__init__.py")
            for name, path in modules.items()}


def cycles(graph: Dict[str, Set[str]]) -> List[List[str]]:
    """Strongly connected components of more than one module (Tarjan), each sorted; [] when acyclic."""
    index: Dict[str, int] = {}
    low: Dict[str, int] = {}
    stack: List[str] = []
    on_stack: Set[str] = set()
    found: List[List[str]] = []

    def visit(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        on_stack.add(v)
        for w in sorted(graph.get(v, ())):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on_stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            component = []
            while True:
                w = stack.pop()
                on_stack.discard(w)
                component.append(w)
                if w == v:
                    break
            if len(component) > 1:
                found.append(sorted(component))

    for v in sorted(graph):
        if v not in index:
            visit(v)
    return found


def test_reporter_has_no_import_cycle() -> None:
    graph = import_graph(PACKAGE)
    assert len(graph) > 40  # every module was read
    assert cycles(graph) == [], "import cycle(s) among reporter's modules: move what both need below both"


def test_the_graph_sees_lazy_and_dynamic_imports() -> None:
    """The edges a cycle hid behind before: an import inside a function, and cli's importlib of the commands."""
    graph = import_graph(PACKAGE)
    assert "reporter.commands.report" in graph["reporter.cli"]  # importlib.import_module(f"reporter.commands.{n}")
    assert "reporter.errors" in graph["reporter.commands.report"]
    assert "reporter.ctxfilter" in graph["reporter.regress"] and "reporter.ctxfilter" in graph["reporter.runner"]
    assert "reporter.cli" not in graph["reporter.commands.report"]
    assert "reporter.runner" not in graph["reporter.regress"]


def test_a_cycle_is_found(tmp_path: Path) -> None:
    """The checker itself fails on a cycle, also one made by an import inside a function."""
    pkg = tmp_path / "pkg"
    (pkg / "sub").mkdir(parents=True)
    (pkg / "__init__.py").write_text("")
    (pkg / "sub" / "__init__.py").write_text("from . import c\n")
    (pkg / "a.py").write_text("from pkg import b\n")
    (pkg / "b.py").write_text("def f():\n    from pkg.sub import c\n")
    (pkg / "sub" / "c.py").write_text("import importlib\nimportlib.import_module('pkg.a')\n")
    (pkg / "d.py").write_text("from . import a\n")
    graph = import_graph(pkg)
    assert "pkg.a" in graph["pkg.d"] and "pkg.sub.c" in graph["pkg.sub"]
    assert cycles(graph) == [["pkg.a", "pkg.b", "pkg.sub", "pkg.sub.c"]]  # pkg.sub: imported by b, imports c
