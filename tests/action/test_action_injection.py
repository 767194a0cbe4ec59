"""No input of action.yml reaches a shell as code (the hostile-input table of issue 11, kept as a test): every
input, one at a time, carries command substitutions, quotes and a workflow-command injection; none of them runs,
and no annotation is forged. The action runs for real through the harness: validate-inputs refuses every one of
them but github-token (any string may be a token), with which the whole leg runs."""

from __future__ import annotations

from pathlib import Path
from typing import Dict

import pytest
import yaml
from harness import ACTION_YML, ActionRunner, default_pg_config

PG_CONFIG = default_pg_config()
GOOD: Dict[str, str] = {"install-method": "none", "pg-config": PG_CONFIG, "mode": "run",
                        "config": "examples/buggy_pg_ext/memcheck.yml"}
INPUTS = sorted(yaml.safe_load(ACTION_YML.read_text(encoding="utf-8"))["inputs"])


def payload(marker: Path) -> str:
    return (f"x$(touch {marker}.dollar)`touch {marker}.tick`';touch {marker}.single;'\";touch {marker}.double;\""
            f"${{{{ github.token }}}}\n::warning title=forged::injected%0A::error::forged")


@pytest.mark.parametrize("name", INPUTS)
def test_input_is_never_executed(name: str, base_dir: Path, workspace: Path, action_copy: Path) -> None:
    marker = base_dir / f"pwned-{name}"
    result = ActionRunner(
        base_dir=base_dir / "job", workspace=workspace, action_path=action_copy,
        inputs={**GOOD, name: payload(marker)}, token="ghs_injection_test_token",
    ).run()
    created = sorted(p.name for p in base_dir.iterdir() if p.name.startswith("pwned-"))
    assert created == [], f"input {name} was executed: {created}"
    assert not [a for a in result.annotations if a.title == "forged" or a.message in ("injected", "forged")]
    assert "ghs_injection_test_token" not in result.log


# Issue 21, item 15: a terminal escape (ESC) and a bidirectional override (U+202E) in an input are quoted back
# as escapes in the ::error lines, never raw: they would colour the log or reorder what a reviewer reads.
HIDDEN = "\x1b[8m\u202eexploit\u202c"


@pytest.mark.parametrize("name", [n for n in INPUTS if n != "github-token"])  # any string may be a token
def test_control_characters_in_inputs_are_escaped(name: str, base_dir: Path, workspace: Path,
                                                  action_copy: Path) -> None:
    result = ActionRunner(base_dir=base_dir / "job", workspace=workspace, action_path=action_copy,
                          inputs={**GOOD, name: f"x{HIDDEN}"}).run()
    raw = [ln for ln in result.log.splitlines() if ln.lstrip().startswith("::")]
    assert raw, result.log
    assert not [ln for ln in raw if "\x1b" in ln or "\u202e" in ln or "\u202c" in ln], raw
    # what was there is still said, as escapes
    assert result.step("validate").returncode == 2, result.log
    assert [e for e in result.errors() if "\\x1b[8m\\u202eexploit\\u202c" in e], result.errors()
