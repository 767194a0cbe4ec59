"""action.yml rejects wrong inputs with a clear ::error:: before doing anything: its validate step runs
`pg-ext-memcheck validate-inputs` (reporter/inputs.py, unit-tested in tests/unit/test_inputs.py) from the
action's files, before the reporter is installed. A few end-to-end cases through the harness."""

from __future__ import annotations

from pathlib import Path
from typing import Dict, List

import pytest
from harness import ActionResult, ActionRunner, default_pg_config

PG_CONFIG = default_pg_config()
CONFIG = "examples/buggy_pg_ext/memcheck.yml"
GOOD: Dict[str, str] = {"install-method": "none", "pg-config": PG_CONFIG, "config": CONFIG, "mode": "run"}


def run(base_dir: Path, workspace: Path, action: Path, **inputs: str) -> ActionResult:
    merged = {**GOOD, **inputs}
    return ActionRunner(base_dir=base_dir, workspace=workspace, inputs=merged, action_path=action).run()


def ran(result: ActionResult) -> List[str]:
    return [s.id or s.name for s in result.steps if s.outcome != "skipped"]


@pytest.mark.parametrize(
    "inputs, message",
    [
        ({"fail-on": "sometimes"}, "fail-on must be one of never, info, warning, error"),
        ({"comment": "yes"}, "comment must be one of auto, always, changes, never (got 'yes')"),
        ({"install-method": "pgdg", "pg-config": "", "postgres-version": "12"}, "PostgreSQL 12 is not supported"),
        ({"compare": "--upload-pack=x"}, "compare must be a revision"),
        ({"cassert": "true"}, "cassert: true, but pg-config"),
        ({"config": "nope/memcheck.yml"}, "config 'nope/memcheck.yml' not found"),
    ],
)
def test_bad_input_fails_with_clear_error(
    base_dir: Path, workspace: Path, action_copy: Path, inputs: Dict[str, str], message: str
) -> None:
    result = run(base_dir, workspace, action_copy, **inputs)
    assert result.outcome == "failure"
    assert result.step("validate").outcome == "failure"
    assert result.step("validate").returncode == 2  # bad input: 2, like the CLI (1 is for findings)
    assert any(message in e for e in result.errors()), result.errors()
    assert any("invalid inputs" in e for e in result.errors())
    # Nothing else happened (nothing installed) except the always() cleanup.
    assert ran(result) == ["python", "validate", "Clean up"]
    assert result.outputs["conclusion"] == ""


def test_fail_on_sometimes_message_is_exact(base_dir: Path, workspace: Path, action_copy: Path) -> None:
    result = run(base_dir, workspace, action_copy, **{"fail-on": "sometimes"})
    assert result.errors()[0] == (
        "fail-on must be one of never, info, warning, error, or empty for memcheck.yml's fail-on (got 'sometimes')"
    )
    assert result.annotations[0].title == "pg-ext-memcheck invalid input"
    assert all((a.file or "").startswith(".github/workflows/") for a in result.annotations)  # every one has a file


def test_every_bad_input_is_reported_at_once(base_dir: Path, workspace: Path, action_copy: Path) -> None:
    result = run(base_dir, workspace, action_copy, **{"fail-on": "x", "comment": "y", "mode": "z"})
    errors = " | ".join(result.errors())
    for name in ("fail-on", "comment must", "mode must"):
        assert name in errors


def test_error_messages_cannot_inject_workflow_commands(base_dir: Path, workspace: Path, action_copy: Path) -> None:
    result = run(base_dir, workspace, action_copy, **{"fail-on": "x\n::warning::injected"})
    assert not any(a.message == "injected" for a in result.annotations)
    assert "got 'x\n::warning::injected'" in result.errors()[0]  # escaped as %0A, one annotation


def test_valid_inputs_pass_validation(base_dir: Path, workspace: Path, action_copy: Path) -> None:
    result = ActionRunner(
        base_dir=base_dir, workspace=workspace, action_path=action_copy,
        inputs={**GOOD, "fail-on": "warning", "leg-name": "pg15-x"},
    ).run()
    validate = result.step("validate")
    assert validate.outcome == "success", validate.log
    assert validate.outputs["run"] == "true"
    assert validate.outputs["publish"] == "false"
    assert validate.outputs["artifact"] == "pg-ext-memcheck-pg15-x"
    assert validate.outputs["config"] == str(workspace / CONFIG)
    assert validate.outputs["comment-key"] == "memcheck"  # the workflow name
    assert validate.outputs["results-dir"].startswith(str(result.runner_temp))
    assert validate.outputs["compare"] == "" and "not a pull request (push event)" in validate.outputs["compare-note"]
    assert validate.outputs["annotations"] == "on" and validate.outputs["step-summary"] == "true"
    assert result.step("python").outcome == "success"  # setup-python (local equivalent) ran for 3.12


@pytest.mark.parametrize("workflow", ["CI -- memcheck", "memcheck <x>", "a" * 101, "bidi \u202e name"])
def test_default_comment_key_is_validated_like_the_input(base_dir: Path, workspace: Path, action_copy: Path,
                                                          workflow: str) -> None:
    result = ActionRunner(
        base_dir=base_dir, workspace=workspace, inputs=dict(GOOD), workflow=workflow, action_path=action_copy,
    ).run()
    assert result.outcome == "failure"
    assert ran(result) == ["python", "validate", "Clean up"]
    assert any("comment-key (default: the workflow name)" in e and "set comment-key" in e
               for e in result.errors()), result.errors()


def test_workflow_run_publish_needs_run_id(base_dir: Path, workspace: Path, action_copy: Path) -> None:
    result = ActionRunner(
        base_dir=base_dir, workspace=workspace, inputs={"mode": "publish"}, event_name="workflow_run",
        action_path=action_copy,
        event={"workflow_run": {"id": "12; echo"}},
    ).run()
    assert result.outcome == "failure"
    assert any("carries no numeric workflow_run.id" in e for e in result.errors())
