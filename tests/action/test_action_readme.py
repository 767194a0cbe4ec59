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
    for flag in ("--baseline DIR", "--sarif FILE", "--json FILE", "--repository-path PATH"):
        assert flag in report, flag
    assert "--compare REF" in check and "--fail-on-scope {new,all}" in check
    for flag in ("--baseline", "--annotations", "--fail-on-scope", "--compare", "--base REF", "--sarif", "--json",
                 "--repository-path"):
        assert flag in text(), f"{flag} is not in the README"


# ---- docs equal code: each mismatch once found between README, action.yml and --help ---------------------------


def help_text(*command: str) -> str:
    import subprocess
    import sys

    cli = [sys.executable, "-c", "import sys; from reporter.cli import main; sys.exit(main())"]
    proc = subprocess.run([*cli, *command, "--help"], capture_output=True, text=True, env={"COLUMNS": "300"})
    assert proc.returncode == 0, proc.stderr
    return " ".join(proc.stdout.split())


def described(name: str) -> str:
    return " ".join(yaml.safe_load(ACTION_YML.read_text(encoding="utf-8"))["inputs"][name]["description"].split())


def test_publish_example_says_the_event_decides_the_pull_request() -> None:
    """The comment goes to the pull request the workflow_run event names (design: the event decides), never
    to one the artifacts record."""
    header = (REPO_ROOT / "examples" / "workflows" / "memcheck-publish.yml").read_text(encoding="utf-8")
    header = " ".join(line.lstrip("# ") for line in header.splitlines() if line.startswith("#"))
    assert "recorded inside" not in header and "the workflow_run event decides" in header
    assert "only cross-checked" in header
    assert "nothing in them decides where the report goes" in text()


def test_install_method_auto_is_one_order_everywhere() -> None:
    """auto: debian, else pgdg, else the major's known route: in the action, the README and install-postgres
    --help alike; and each says what its own default is."""
    from reporter import provision

    assert provision.DEFAULT_METHOD == "auto"
    action_default = yaml.safe_load(ACTION_YML.read_text(encoding="utf-8"))["inputs"]["install-method"]["default"]
    assert action_default == "pgdg"
    for where, doc in (("action.yml", described("install-method")), ("README", input_row("install-method")),
                       ("--help", help_text("install-postgres"))):
        auto = doc[doc.index("auto"):]
        order = [auto.index(word) for word in ("debian", "pgdg", "route")]
        assert order == sorted(order), (where, auto[:300])
    assert "the default here" in described("install-method") and "install-postgres' default" in described(
        "install-method")
    assert "defaults to `auto`" in input_row("install-method") and "(default)" in help_text("install-postgres")


def test_compare_names_every_pull_request_event() -> None:
    from reporter import inputs

    for event in inputs.PR_EVENTS:
        assert event in described("compare"), event
        assert f"`{event}`" in input_row("compare"), event


def test_config_lookup_names_extension_path() -> None:
    """memcheck.yml is looked for in the workspace, then in extension-path (reporter/inputs.py)."""
    for doc in (described("config"), input_row("config")):
        assert doc.index("workspace, else of") < doc.index("extension-path"), doc


def test_annotations_cap_and_kinds_are_the_same_everywhere() -> None:
    from reporter.ghoutputs import MAX_ANNOTATIONS

    report = help_text("report")
    for where, doc in (("action.yml", described("annotations")), ("README", input_row("annotations")),
                       ("--help", report)):
        assert f"at most {MAX_ANNOTATIONS} of each kind" in doc, where
        for kind in ("::error", "::warning", "::notice"):
            assert kind in doc, (where, kind)


def test_one_vocabulary_for_annotations_job_summary_and_comment() -> None:
    """The action's inputs and report's options have the same names and take the same values."""
    from reporter import vocab

    report = help_text("report")
    action = yaml.safe_load(ACTION_YML.read_text(encoding="utf-8"))
    assert "--annotations {auto,on,off}" in report and set(vocab.SWITCHES) <= set(vocab.ANNOTATION_MODES)
    assert "--job-summary {on,off}" in report
    assert "--comment {" + ",".join(vocab.COMMENT_MODES) + "}" in report
    for gone in ("--step-summary", "--require-comment", "--comment-changes"):
        assert gone not in report and gone not in text() and gone not in ACTION_YML.read_text(), gone
    for name in ("annotations", "job-summary", "comment", "sarif", "repository-path"):
        assert name in action["inputs"] and f"--{name}" in report, name
        assert f"(report --{name})" in described(name), name


def test_check_has_fail_on() -> None:
    from reporter import vocab

    check = help_text("check")
    assert "--fail-on {" + ",".join(vocab.FAIL_ON_LEVELS) + "}" in check and "--json FILE" in check
    assert "Its exit status follows `fail-on`" in text() and "`check --fail-on LEVEL`" in text()


def test_change_outputs_are_counts() -> None:
    action = yaml.safe_load(ACTION_YML.read_text(encoding="utf-8"))["outputs"]
    for name in ("new-findings", "worse-findings", "fixed-findings"):
        assert action[name]["description"].startswith("Number of findings"), name
    assert "| `new-findings`, `worse-findings`, `fixed-findings` | numbers (counts) of findings" in section("Outputs")


def test_every_v1_reference_in_the_readme_carries_the_zizmor_note() -> None:
    uses = [line.strip() for block in yaml_blocks(text()) for line in block.splitlines()
            if "pg-ext-memcheck/pg-ext-memcheck@v1" in line]
    assert len(uses) >= 5
    assert all(line.endswith("@v1 # zizmor: ignore[unpinned-uses] pin a release SHA if you prefer") for line in uses)
    quick = yaml_blocks(section("Quick start: the workflow to copy"))[1]
    example = (REPO_ROOT / "examples" / "workflows" / "memcheck.yml").read_text(encoding="utf-8")
    assert [ln for ln in quick.splitlines() if "@v1" in ln] == [ln for ln in example.splitlines() if "@v1" in ln]


def test_reasons_and_exit_code_are_declared_outputs(tmp_path: Path) -> None:
    """Every name the report step writes to $GITHUB_OUTPUT (or the step itself, exit-code) is a declared output of
    the action with the README row, and nothing declared is left unwritten: the names come from a real report."""
    import io

    from harness import parse_file_commands

    from reporter.cli import build_parser
    from reporter.commands.report import run_report

    action = yaml.safe_load(ACTION_YML.read_text(encoding="utf-8"))
    declared = {name for name, spec in action["outputs"].items() if "steps.report." in spec["value"]}
    outputs = tmp_path / "outputs"
    args = build_parser().parse_args(["report", str(REPO_ROOT / "tests" / "fixtures" / "legs" / "clean_pg15")])
    run_report(args, {"GITHUB_OUTPUT": str(outputs)}, out=io.StringIO(), err=io.StringIO())
    written = set(parse_file_commands(outputs.read_text(encoding="utf-8"))) | {"exit-code"}
    assert declared == written, (declared ^ written)
    for name in ("reasons", "exit-code"):
        assert f"`{name}`" in section("Outputs"), name


def test_check_flags_agree_between_readme_and_help() -> None:
    """`check --example` (the bundled example only when asked for) and `check --extension`, in --help and in the
    README's first lines and local section; the demo runs the example by name."""
    check = help_text("check")
    local = section("Running it locally")
    for flag in ("--example", "--extension DIR"):
        assert flag in check, flag
    assert "pg-ext-memcheck check --example" in local and "pg-ext-memcheck check --extension" in local
    assert "pipx install" in local and "python -m reporter check" in local
    assert "check --example" in "\n".join(text().splitlines()[:8])
    assert "check --example" in (REPO_ROOT / ".ci" / "demo").read_text(encoding="utf-8")
