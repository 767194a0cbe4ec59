"""The harness itself runs a composite action like the runner: if it did not, the action tests could pass
for the wrong reasons. A small action in a temporary directory exercises each behaviour."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml
from harness import ActionRunner

UPLOAD = "actions/upload-artifact@ea165f8d65b6e75b540449e92b4886f43607fa02"
DOWNLOAD = "actions/download-artifact@d3f86a106a0bac45b974a628896c90dbdf5c8093"


def write_action(dest: Path, steps: list, outputs: dict | None = None, inputs: dict | None = None) -> Path:
    dest.mkdir(parents=True, exist_ok=True)
    doc = {
        "name": "t", "description": "t",
        "inputs": inputs or {"who": {"description": "x", "default": "world"}},
        "outputs": outputs or {},
        "runs": {"using": "composite", "steps": steps},
    }
    (dest / "action.yml").write_text(yaml.safe_dump(doc), encoding="utf-8")
    return dest


def test_outputs_env_conditions_and_failure_handling(tmp_path: Path) -> None:
    action = write_action(
        tmp_path / "a",
        [
            {"id": "one", "shell": "bash", "env": {"WHO": "${{ inputs.who }}"},
             "run": 'echo "greeting=hello $WHO" >> "$GITHUB_OUTPUT"\n'
                    'printf "multi<<EOF\\nl1\\nl2\\nEOF\\n" >> "$GITHUB_OUTPUT"\n'
                    'echo "CARRIED=yes" >> "$GITHUB_ENV"\n'
                    'echo "# summary" >> "$GITHUB_STEP_SUMMARY"\n'},
            {"id": "two", "shell": "bash", "if": "steps.one.outputs.greeting == 'HELLO WORLD'",
             "run": 'echo "carried=$CARRIED" >> "$GITHUB_OUTPUT"; test "$PWD" = "$GITHUB_WORKSPACE"\n'},
            {"id": "skipped", "shell": "bash", "if": "inputs.who == 'nobody'", "run": "exit 0\n"},
            {"id": "soft", "shell": "bash", "continue-on-error": True, "run": "exit 3\n"},
            {"id": "hard", "shell": "bash", "run": "echo '::error title=x::boom'; exit 4\n"},
            {"id": "after", "shell": "bash", "run": "echo never\n"},
            {"id": "onfail", "shell": "bash", "if": "failure()", "run": "echo handled\n"},
            {"id": "cleanup", "shell": "bash", "if": "always()", "run": "echo cleanup\n"},
        ],
        outputs={
            "greeting": {"description": "x", "value": "${{ steps.one.outputs.greeting }}"},
            "multi": {"description": "x", "value": "${{ steps.one.outputs.multi }}"},
            "carried": {"description": "x", "value": "${{ steps.two.outputs.carried || 'none' }}"},
            "soft": {"description": "x", "value": "${{ steps.soft.outcome }}/${{ steps.soft.conclusion }}"},
        },
    )
    ws = tmp_path / "ws"
    ws.mkdir()
    r = ActionRunner(base_dir=tmp_path / "job", workspace=ws, action_path=action, echo=False).run()
    outcomes = {s.id: s.outcome for s in r.steps}
    assert outcomes == {
        "one": "success", "two": "success", "skipped": "skipped", "soft": "failure", "hard": "failure",
        "after": "skipped", "onfail": "success", "cleanup": "success",
    }
    assert r.outcome == "failure"
    assert r.outputs == {"greeting": "hello world", "multi": "l1\nl2", "carried": "yes", "soft": "failure/success"}
    assert r.summary == "# summary\n"
    assert r.errors() == ["boom"]
    assert r.step("hard").returncode == 4


def test_artifacts_round_trip_and_conflict(tmp_path: Path) -> None:
    action = write_action(
        tmp_path / "a",
        [
            {"shell": "bash", "run": "mkdir -p out/sub && echo 1 > out/a.txt && echo 2 > out/sub/b.txt\n"},
            {"uses": UPLOAD, "with": {"name": "res-${{ inputs.who }}", "path": "out"}},
            {"uses": DOWNLOAD, "with": {"pattern": "res-*", "path": "back"}},
            {"shell": "bash", "run": "test -f back/res-world/a.txt && test -f back/res-world/sub/b.txt\n"},
            {"uses": UPLOAD, "with": {"name": "res-world", "path": "out"}},
        ],
    )
    ws = tmp_path / "ws"
    ws.mkdir()
    r = ActionRunner(base_dir=tmp_path / "job", workspace=ws, action_path=action, echo=False).run()
    assert [s.outcome for s in r.steps] == ["success"] * 4 + ["failure"]  # v4: a name is uploaded once
    assert "409 Conflict" in r.steps[-1].log


def test_unpinned_uses_and_unknown_inputs_are_refused(tmp_path: Path) -> None:
    action = write_action(tmp_path / "a", [{"uses": "actions/upload-artifact@v4", "with": {"path": "x"}}])
    ws = tmp_path / "ws"
    ws.mkdir()
    with pytest.raises(ValueError, match="not pinned"):
        ActionRunner(base_dir=tmp_path / "job", workspace=ws, action_path=action, echo=False).run()
    with pytest.raises(ValueError, match="not declared"):
        ActionRunner(
            base_dir=tmp_path / "job2", workspace=ws, action_path=action, inputs={"nope": "1"}, echo=False
        ).run()


def test_run_step_without_shell_is_refused(tmp_path: Path) -> None:
    action = write_action(tmp_path / "a", [{"run": "true\n"}])
    ws = tmp_path / "ws"
    ws.mkdir()
    with pytest.raises(ValueError, match="shell: bash"):
        ActionRunner(base_dir=tmp_path / "job", workspace=ws, action_path=action, echo=False).run()
