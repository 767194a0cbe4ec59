"""The harness's expression evaluator follows GitHub's rules (it is what judges action.yml's `if:`s)."""

from __future__ import annotations

from typing import Any, Dict

import pytest
from harness import ExpressionError, condition, evaluate, interpolate, parse_file_commands

CTX: Dict[str, Any] = {
    "inputs": {"mode": "run", "python-version": "", "fail-on": "error"},
    "steps": {
        "validate": {"outputs": {"run": "true", "results-dir": "/t/r"}, "outcome": "success"},
        "run": {"outputs": {}, "outcome": "skipped"},
    },
    "github": {"token": "tok", "event": {"pull_request": {"number": 7}}},
    "runner": {"temp": "/rt"},
    "env": {"X": "1"},
}
OK = {"always": lambda: True, "success": lambda: True, "failure": lambda: False, "cancelled": lambda: False}
FAILED = {"always": lambda: True, "success": lambda: False, "failure": lambda: True, "cancelled": lambda: False}


@pytest.mark.parametrize(
    "expr, expected",
    [
        ("inputs.mode == 'run'", True),
        ("inputs.mode == 'RUN'", True),  # string comparison ignores case
        ("inputs.mode != 'run'", False),
        ("inputs.python-version != ''", False),
        ("steps.validate.outputs.run == 'true'", True),
        ("steps.validate.outputs.missing == ''", True),  # null == '' (both coerce to 0)
        ("steps.run.outcome != 'skipped'", False),
        ("github.event.pull_request.number == 7", True),
        ("github.event.pull_request.number == '7'", True),
        ("github['token']", "tok"),
        ("runner.temp", "/rt"),
        ("env.X", "1"),
        ("inputs.nothing || 'fallback'", "fallback"),
        ("inputs.mode || 'fallback'", "run"),
        ("inputs.mode && 'yes'", "yes"),
        ("'' && 'yes'", ""),
        ("!inputs.python-version", True),
        ("(inputs.mode == 'x' || inputs.mode == 'run') && true", True),
        ("'it''s'", "it's"),
        ("1 < 2", True),
        ("null", None),
    ],
)
def test_evaluate(expr: str, expected: Any) -> None:
    assert evaluate(expr, CTX, OK) == expected


def test_unknown_context_and_function_raise() -> None:
    with pytest.raises(ExpressionError, match="context 'secrets' is not available here"):
        evaluate("secrets.X", CTX, OK)
    with pytest.raises(ExpressionError, match=r"function hashFiles\(\) is not supported by the harness"):
        evaluate("hashFiles('x')", CTX, OK)
    with pytest.raises(ExpressionError, match="expected a token at token 4"):
        evaluate("inputs.mode ==", CTX, OK)


def test_interpolate() -> None:
    assert interpolate("a ${{ inputs.mode }} b ${{ runner.temp }}/x", CTX, OK) == "a run b /rt/x"
    assert interpolate("${{ true }}", CTX, OK) == "true"


def test_conditions_imply_success() -> None:
    assert condition("inputs.mode == 'run'", CTX, OK) is True
    assert condition("inputs.mode == 'run'", CTX, FAILED) is False
    assert condition("${{ always() && inputs.mode == 'run' }}", CTX, FAILED) is True
    assert condition("failure()", CTX, FAILED) is True
    assert condition("always()", CTX, OK) is True


def test_file_commands() -> None:
    text = "a=1\nb=x=y\nmulti<<EOF\nline 1\nline 2\nEOF\n\n"
    assert parse_file_commands(text) == {"a": "1", "b": "x=y", "multi": "line 1\nline 2"}
    with pytest.raises(ValueError, match="heredoc for 'm' has no closing 'EOF'"):
        parse_file_commands("m<<EOF\nno end\n")
