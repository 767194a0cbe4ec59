"""README.md for action users stays true to action.yml, the examples and the memcheck.yml schema."""

from __future__ import annotations

import re
from pathlib import Path
from typing import List

import yaml
from harness import ACTION_YML, REPO_ROOT

from reporter import config

README = REPO_ROOT / "README.md"


def text() -> str:
    return README.read_text(encoding="utf-8")


def section(title: str) -> str:
    body = text().split(f"\n## {title}\n", 1)[1]
    return body.split("\n## ", 1)[0]


def yaml_blocks(md: str) -> List[str]:
    return re.findall(r"```yaml\n(.*?)```", md, re.DOTALL)


def test_first_lines_are_the_newcomer_commands() -> None:
    head = "\n".join(text().splitlines()[:8])
    assert "bash .ci/demo" in head
    assert "bash .ci/run" in head
    assert "scripts/test" in head
    for script in (".ci/demo", ".ci/run", "scripts/test"):
        assert (REPO_ROOT / script).is_file(), script


def test_every_input_and_output_is_documented() -> None:
    action = yaml.safe_load(ACTION_YML.read_text(encoding="utf-8"))
    inputs, outputs = section("Inputs"), section("Outputs")
    for name, spec in action["inputs"].items():
        row = re.search(rf"^\| `{re.escape(name)}` \|\s*([^|]*?)\s*\|", inputs, re.MULTILINE)
        assert row, f"input {name} missing from the README"
        default = str(spec.get("default", ""))
        documented = row.group(1).strip().strip("`")
        assert documented == default or (documented in ("", "''") and default == ""), (name, documented, default)
    for name in action["outputs"]:
        assert f"`{name}`" in outputs, f"output {name} missing from the README"


def test_quick_start_workflow_is_the_example(tmp_path: Path) -> None:
    block = yaml_blocks(section("Quick start: the workflow to copy"))[1]
    example = (REPO_ROOT / "examples" / "workflows" / "memcheck.yml").read_text(encoding="utf-8")
    strip = re.compile(r"\s*# zizmor: ignore\[[a-z-]+\].*$", re.MULTILINE)
    assert yaml.safe_load(block) == yaml.safe_load(strip.sub("", example))


def test_memcheck_yml_reference_example_is_valid(tmp_path: Path) -> None:
    """The reference example passes the real loader (schema and semantic checks), and uses every key of the
    schema, so the reference cannot drift from it."""
    block = yaml_blocks(section("memcheck.yml reference"))[0]
    path = tmp_path / "memcheck.yml"
    path.write_text(block, encoding="utf-8")
    (tmp_path / "Makefile").write_text("# PGXS\n", encoding="utf-8")
    (tmp_path / "workloads").mkdir()
    (tmp_path / "workloads" / "report.sql").write_text("SELECT 1;\n", encoding="utf-8")
    cfg = config.load(path)
    assert [w.name for w in cfg.workloads] == ["select_companies", "from_file", "growth", "regress"]
    assert cfg.workloads[-1].kind == "regress" and cfg.workloads[-1].iterations == config.DEFAULT_REGRESS_ITERATIONS
    schema = config_schema_keys()
    doc = yaml.safe_load(block)
    used = set(doc) | {f"extension.{k}" for k in doc["extension"]} | {f"thresholds.{k}" for k in doc["thresholds"]}
    used |= {f"workload.{k}" for w in doc["workloads"] for k in w}
    used |= {f"suppression.{k}" for s in doc["suppressions"] for k in s}
    assert schema <= used, f"not shown in the README: {sorted(schema - used)}"


def config_schema_keys() -> set:
    import json

    schema = json.loads((REPO_ROOT / "reporter" / "schemas" / "memcheck.schema.json").read_text())
    keys = set(schema["properties"])
    keys |= {f"extension.{k}" for k in schema["properties"]["extension"]["properties"]}
    keys |= {f"thresholds.{k}" for k in schema["properties"]["thresholds"]["properties"]}
    keys |= {f"workload.{k}" for k in schema["$defs"]["workload"]["properties"]}
    keys |= {f"suppression.{k}" for k in schema["$defs"]["suppression"]["properties"]}
    return keys


def test_readme_links_exist() -> None:
    for link in re.findall(r"\]\(((?:examples|reporter|docs)/[^)#]+)\)", text()):
        assert (REPO_ROOT / link).exists(), link


def test_check_types_and_sql_api_documented() -> None:
    md = text()
    for check in ("context_leak", "wrong_ctx_alloc", "resource_leak", "bytes_per_iteration"):
        assert f"`{check}`" in md
    for fn in ("flush_violations()", "pending_violations()", "status()", "begin(", '"end"()', "run_scenario("):
        assert fn in md, fn
    for guc in ("memcheck_mode", "min_leak_bytes", "warning_bytes", "error_bytes", "ring_capacity"):
        assert f"`{guc}`" in md


def input_row(name: str) -> str:
    row = re.search(rf"^\| `{re.escape(name)}` \|.*$", section("Inputs"), re.MULTILINE)
    assert row, name
    return row.group(0)


def test_choices_agree_between_action_readme_and_the_cli() -> None:
    """One vocabulary: every value an input accepts is named in its README row and its action.yml description,
    and the CLI flag the action passes it to offers the same choices (`--help`)."""
    import subprocess
    import sys

    from reporter import inputs, vocab

    action = yaml.safe_load(ACTION_YML.read_text(encoding="utf-8"))["inputs"]
    choices = {
        "comment": vocab.COMMENT_MODES, "fail-on": vocab.FAIL_ON_LEVELS, "fail-on-scope": vocab.FAIL_ON_SCOPES,
        "annotations": vocab.SWITCHES, "job-summary": vocab.SWITCHES, "mode": inputs.MODES,
        "install-method": inputs.INSTALL_METHODS, "cassert": inputs.BOOLEANS,
    }
    for name, values in choices.items():
        described = " ".join(action[name]["description"].split())
        for value in values:
            assert f"`{value}`" in input_row(name), (name, value)
            assert re.search(rf"\b{re.escape(value)}\b", described), (name, value, described)
    cli = [sys.executable, "-c", "import sys; from reporter.cli import main; sys.exit(main())"]
    report = subprocess.run([*cli, "report", "--help"], capture_output=True, text=True, env={"COLUMNS": "200"}).stdout
    check = subprocess.run([*cli, "check", "--help"], capture_output=True, text=True, env={"COLUMNS": "200"}).stdout
    assert "--fail-on-scope {" + ",".join(vocab.FAIL_ON_SCOPES) + "}" in report
    assert "--fail-on {" + ",".join(vocab.FAIL_ON_LEVELS) + "}" in report
    assert "--annotations {" + ",".join(vocab.ANNOTATION_MODES) + "}" in report
    for flag in ("--comment-changes", "--require-comment", "--baseline DIR", "--step-summary"):
        assert flag in report, flag
    assert "--compare REF" in check and "--fail-on-scope {new,all}" in check
    for flag in ("--baseline", "--annotations", "--fail-on-scope", "--compare", "--base REF", "--comment-changes"):
        assert flag in text(), f"{flag} is not in the README"
