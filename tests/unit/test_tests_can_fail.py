"""The test suite's own rules, read from its sources with ast: every pytest.raises names the message it expects
(match=), no test sleeps (a wait polls a real condition: tests/waiting.py), and no test asserts how long
something took (the machine is shared)."""

from __future__ import annotations

import ast
from pathlib import Path
from typing import Iterator, List, Tuple

TESTS = Path(__file__).resolve().parents[1]
WAITING = TESTS / "waiting.py"  # the one poll loop; its deadline only ends a wait that would hang


def sources() -> Iterator[Tuple[Path, ast.AST]]:
    for path in sorted(TESTS.rglob("*.py")):
        yield path, ast.parse(path.read_text(encoding="utf-8"))


def _name(node: ast.AST) -> str:
    return ast.unparse(node) if isinstance(node, (ast.Attribute, ast.Name)) else ""


def raises_without_match(tree: ast.AST) -> List[int]:
    return [n.lineno for n in ast.walk(tree) if isinstance(n, ast.Call) and _name(n.func) == "pytest.raises"
            and not any(k.arg == "match" for k in n.keywords)]


def sleeps(tree: ast.AST) -> List[int]:
    return [n.lineno for n in ast.walk(tree) if isinstance(n, ast.Call) and _name(n.func) in ("time.sleep", "sleep")]


def timed_asserts(tree: ast.AST) -> List[int]:
    """assert statements that compare a clock reading or an elapsed time."""
    clocks = ("time.monotonic", "time.time", "time.perf_counter")
    found = []
    for n in ast.walk(tree):
        if isinstance(n, ast.Assert):
            text = ast.unparse(n.test)
            if any(c in text for c in clocks) or "elapsed" in text:
                found.append(n.lineno)
    return found


def test_every_raises_has_a_match() -> None:
    bad = [f"{p.relative_to(TESTS)}:{line}" for p, tree in sources() for line in raises_without_match(tree)]
    assert bad == []


def test_no_test_sleeps() -> None:
    bad = [f"{p.relative_to(TESTS)}:{line}" for p, tree in sources() if p != WAITING for line in sleeps(tree)]
    assert bad == []


def test_no_test_asserts_a_duration() -> None:
    bad = [f"{p.relative_to(TESTS)}:{line}" for p, tree in sources() for line in timed_asserts(tree)]
    assert bad == []


def test_the_readers_see_what_they_look_for() -> None:
    tree = ast.parse("import time\nimport pytest\nwith pytest.raises(ValueError):\n    pass\n"
                     "with pytest.raises(ValueError, match='x'):\n    pass\ntime.sleep(1)\n"
                     "started = time.monotonic()\nassert time.monotonic() - started < 1\n")
    assert raises_without_match(tree) == [3] and sleeps(tree) == [7] and timed_asserts(tree) == [9]
