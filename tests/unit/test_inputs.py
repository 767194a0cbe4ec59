"""The action's input validation and plan (reporter/inputs.py, `pg-ext-memcheck validate-inputs`)."""

from __future__ import annotations

import json
import os
import re
import stat
from pathlib import Path
from typing import Any, Dict, Optional

import pytest

from reporter import inputs
from reporter.commands import validate_inputs
from tests.action.harness import parse_file_commands

DEFAULTS: Dict[str, str] = {
    "postgres-version": "", "extension-path": "", "config": "", "install-method": "pgdg", "pg-config": "",
    "fail-on": "", "fail-on-scope": "", "mode": "all", "comment": "auto", "comment-key": "", "leg-name": "",
    "compare": "", "annotations": "on", "job-summary": "on", "cassert": "false", "python-version": "3.12",
    "has-token": "true",
}
BASE_SHA = "b" * 40


def fake_pg_config(directory: Path, version: str = "16.4", configure: str = "'--prefix=/x'") -> str:
    path = directory / "pg_config"
    path.write_text(f"#!/bin/sh\ncase \"$1\" in --version) echo 'PostgreSQL {version}';; "
                    f"--configure) echo \"{configure}\";; esac\n")
    path.chmod(path.stat().st_mode | stat.S_IXUSR)
    return str(path)


@pytest.fixture
def workspace(tmp_path: Path) -> Path:
    ws = tmp_path / "ws"
    ws.mkdir()
    (ws / "Makefile").write_text("REGRESS = a\n")
    return ws


def plan(workspace: Path, event: Optional[Dict[str, Any]] = None, env: Optional[Dict[str, str]] = None,
         **values: str) -> inputs.Plan:
    merged = {**DEFAULTS, "postgres-version": "17", **{k.replace("_", "-"): v for k, v in values.items()}}
    environ = {"RUNNER_TEMP": str(workspace.parent / "tmp"), "GITHUB_JOB": "memcheck", "GITHUB_WORKFLOW": "CI",
               "GITHUB_EVENT_NAME": "push", "RUNNER_OS": "Linux", "RUNNER_ARCH": "X64", **(env or {})}
    return inputs.plan(merged, environ, event or {}, workspace)


def problems(workspace: Path, expected: str, **values: str) -> str:
    """Every problem plan() reports for these inputs; one of them says `expected`."""
    with pytest.raises(inputs.Problems, match=re.escape(expected)) as exc:
        plan(workspace, **values)
    return "\n".join(exc.value.messages)


@pytest.mark.parametrize("values, message", [
    ({"mode": "both"}, "mode must be one of run, publish, all (got 'both')"),
    ({"fail_on": "sometimes"}, "fail-on must be one of never, info, warning, error, or empty for memcheck.yml's "
                               "fail-on (got 'sometimes')"),
    ({"fail_on_scope": "everything"}, "fail-on-scope must be one of new, all"),
    ({"comment": "yes"}, "comment must be one of auto, always, changes, never (got 'yes')"),
    ({"annotations": "true"}, "annotations must be one of on, off (got 'true')"),
    ({"job_summary": "yes"}, "job-summary must be one of on, off (got 'yes')"),
    ({"cassert": "on"}, "cassert must be one of true, false (got 'on')"),
    ({"compare": "main;rm -rf /"}, "compare must be a revision"),
    ({"compare": "a..b"}, "compare must be a revision"),
    ({"postgres_version": "latest"}, "postgres-version must be a PostgreSQL major version such as 17 (got 'latest')"),
    ({"postgres_version": "10"}, "PostgreSQL 10 is not supported"),
    ({"postgres_version": "12"}, "PostgreSQL 12 is not supported"),
    ({"postgres_version": ""}, "postgres-version is needed"),
    ({"install_method": "brew"},
     "install-method must be one of auto, debian, pgdg, source, wheel, chroot, none (got 'brew')"),
    ({"pg_config": "/x/pg_config"}, "pg-config is only used with install-method: none"),
    ({"install_method": "none"}, "install-method: none needs pg-config"),
    ({"install_method": "none", "pg_config": "/nonexistent/pg_config"}, "is not an executable file"),
    ({"cassert": "true"}, "cassert: true needs a build with assertions: install-method source"),
    ({"config": "nope.yml"}, "config 'nope.yml' not found"),
    ({"extension_path": "nope"}, "extension-path 'nope' is not a directory"),
    ({"leg_name": "pg 15/x"}, "leg-name may hold only letters"),
    ({"python_version": "3.12; rm"}, "python-version must be a version such as 3.12"),
    ({"comment_key": "a-->b"}, "comment-key must be at most 100 characters"),
    ({"comment_key": "tab\there"}, "comment-key must be at most 100 characters"),
    ({"comment": "always", "has_token": ""}, "comment: always needs github-token"),
])
def test_each_mistake_is_named(workspace: Path, values: Dict[str, str], message: str) -> None:
    problems(workspace, message, **values)


def test_every_mistake_is_reported_at_once(workspace: Path) -> None:
    text = problems(workspace, "mode must", mode="x", comment="y", fail_on="z", compare="-x")
    for name in ("mode must", "comment must", "fail-on must", "compare must"):
        assert name in text


def test_the_workflow_name_as_default_key_is_checked_too(workspace: Path) -> None:
    with pytest.raises(inputs.Problems, match="the workflow name 'CI -- memcheck' is not: set comment-key"):
        plan(workspace, env={"GITHUB_WORKFLOW": "CI -- memcheck"})


def test_pull_request_compares_with_its_base(workspace: Path) -> None:
    event = {"pull_request": {"number": 3, "base": {"sha": BASE_SHA}, "head": {"sha": "a" * 40}}}
    p = plan(workspace, event=event, env={"GITHUB_EVENT_NAME": "pull_request"})
    assert p.compare == BASE_SHA and p.compare_note == ""
    assert plan(workspace, event=event, env={"GITHUB_EVENT_NAME": "pull_request"}, compare="none").compare == ""
    assert plan(workspace, event=event, env={"GITHUB_EVENT_NAME": "pull_request"}, compare="v1.2").compare == "v1.2"
    pushed = plan(workspace)
    assert pushed.compare == "" and pushed.compare_note.startswith("not a pull request (push event)")
    assert plan(workspace, compare="main").compare == "main"  # explicit on any event
    forged = {"pull_request": {"base": {"sha": "$(id)"}}}
    assert plan(workspace, event=forged, env={"GITHUB_EVENT_NAME": "pull_request"}).compare == ""
    assert plan(workspace, event=event, env={"GITHUB_EVENT_NAME": "pull_request"}, mode="publish").compare == ""


def test_configuration_memcheck_yml_or_the_regression_suite(workspace: Path) -> None:
    p = plan(workspace)
    assert p.config == "" and p.extension == str(workspace.resolve())  # no memcheck.yml: make installcheck
    (workspace / "memcheck.yml").write_text("workloads: []\n")
    assert plan(workspace).config == str((workspace / "memcheck.yml").resolve())
    ext = workspace / "ext"
    ext.mkdir()
    assert plan(workspace, extension_path="ext").extension == str(ext.resolve())


def test_no_config_and_no_makefile_is_refused(tmp_path: Path) -> None:
    ws = tmp_path / "ws"
    ws.mkdir()
    with pytest.raises(inputs.Problems, match="no memcheck.yml in the workspace") as exc:
        plan(ws)
    assert f"not a PGXS extension: {ws} is empty" in exc.value.messages[0]
    (ws / "CMakeLists.txt").write_text("project(x)\n")
    with pytest.raises(inputs.Problems, match=re.escape(f"{ws} is a CMake project (CMakeLists.txt), not a PGXS "
                                                        "extension")):
        plan(ws)


def test_install_method_none_takes_major_and_cassert_from_pg_config(workspace: Path, tmp_path: Path) -> None:
    plain = fake_pg_config(tmp_path)
    p = plan(workspace, install_method="none", pg_config=plain, postgres_version="")
    assert p.major == "16" and p.leg == "memcheck-pg16" and p.pg_config == str(Path(plain).resolve())
    problems(workspace, "is PostgreSQL 16, not postgres-version 17", install_method="none", pg_config=plain)
    problems(workspace, "without --enable-cassert", install_method="none", pg_config=plain, postgres_version="",
             cassert="true")
    (tmp_path / "c").mkdir()
    asserting = fake_pg_config(tmp_path / "c", configure="'--enable-cassert' '--enable-debug'")
    assert plan(workspace, install_method="none", pg_config=asserting, postgres_version="",
                cassert="true").cassert == "true"


def test_source_builds_get_a_cache_key(workspace: Path) -> None:
    p = plan(workspace, install_method="source", cassert="true", postgres_version="15")
    assert p.postgres_cache_key.startswith("pg-ext-memcheck-postgresql-Linux-X64-15-cassert-")
    assert p.postgres_cache_path.endswith("/pg-ext-memcheck-cache/postgresql/15-cassert")
    assert p.cache_dir.endswith("/pg-ext-memcheck-cache")
    assert plan(workspace, install_method="pgdg").postgres_cache_key == ""
    own = plan(workspace, install_method="source", env={"PG_EXT_MEMCHECK_CACHE": "/c"})
    assert own.cache_dir == "/c" and own.postgres_cache_path == "/c/postgresql/17"


def test_switches_and_names(workspace: Path) -> None:
    p = plan(workspace, annotations="off", job_summary="off", leg_name="pg17-jammy", comment="changes")
    assert (p.annotations, p.step_summary, p.artifact, p.comment) == ("off", "false", "pg-ext-memcheck-pg17-jammy",
                                                                      "changes")
    assert p.comment_key == "CI" and p.results_dir.endswith("/pg-ext-memcheck/legs/pg17-jammy")
    publish = plan(workspace, mode="publish", postgres_version="")
    assert (publish.run, publish.publish, publish.results_dir) == ("false", "true", "")


def test_workflow_run_publisher_downloads_the_triggering_run(workspace: Path) -> None:
    env = {"GITHUB_EVENT_NAME": "workflow_run"}
    p = plan(workspace, event={"workflow_run": {"id": 77}}, env=env, mode="publish")
    assert p.download_run_id == "77"
    with pytest.raises(inputs.Problems, match="carries no numeric workflow_run.id"):
        plan(workspace, event={"workflow_run": {"id": "7; echo"}}, env=env, mode="publish")


def test_the_command_writes_outputs_or_errors(workspace: Path, tmp_path: Path,
                                              capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "github_output"
    out.write_text("")
    event = tmp_path / "event.json"
    event.write_text(json.dumps({"pull_request": {"base": {"sha": BASE_SHA}}}))
    env = {inputs.env_name(k): v for k, v in DEFAULTS.items() if k != "has-token"}
    env.update(MC_POSTGRES_VERSION="15", MC_HAS_TOKEN="true", GITHUB_OUTPUT=str(out), GITHUB_EVENT_PATH=str(event),
               GITHUB_EVENT_NAME="pull_request", GITHUB_WORKSPACE=str(workspace),
               RUNNER_TEMP=str(tmp_path / "rt"), GITHUB_JOB="j")
    assert validate_inputs.run(env) == 0
    values = parse_file_commands(out.read_text())
    assert values["compare"] == BASE_SHA and values["leg"] == "j-pg15" and values["run"] == "true"
    assert set(values) == {k.replace("_", "-") for k in inputs.Plan.__dataclass_fields__}
    tmp = Path(values["root"]) / "tmp"
    assert os.stat(tmp).st_mode & 0o1777 == 0o1777  # the server user may run the clusters there
    assert "workloads: the regression suite of" in capsys.readouterr().out
    env["MC_MODE"] = "nope\n::warning::forged"
    assert validate_inputs.run(env) == 2
    printed = capsys.readouterr().out.splitlines()
    assert printed[0].startswith("::error title=pg-ext-memcheck invalid input::mode must be one of")
    assert "%0A::warning::forged" in printed[0] and not any(line.startswith("::warning") for line in printed)
    assert printed[-1] == "::error title=pg-ext-memcheck::invalid inputs, see the messages above; nothing was run"


@pytest.mark.parametrize("name", ["sarif", "repository-path"])
def test_report_paths_are_relative_to_the_workspace(tmp_path: Path, name: str) -> None:
    env = {"RUNNER_TEMP": str(tmp_path / "rt"), "GITHUB_EVENT_NAME": "push"}
    good = {"mode": "publish", "comment": "auto", "annotations": "on", "job-summary": "on", "cassert": "false",
            "install-method": "pgdg", name: "sub/dir"}
    p = inputs.plan(good, env, {}, tmp_path)
    assert p.outputs()[name] == str(tmp_path / "sub" / "dir")
    for bad in ("/etc/x", "../outside", "a/../../b"):
        with pytest.raises(inputs.Problems, match=f"{name} must be a path relative to the workspace"):
            inputs.plan({**good, name: bad}, env, {}, tmp_path)
