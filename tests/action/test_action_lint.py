"""action.yml and every workflow file: JSON Schema (check-jsonschema's vendored GitHub schemas), security lint
(zizmor --offline: no finding of medium severity or above) and the composite-action conventions."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any, Dict, Iterator, List, Tuple

import pytest
import yaml
from harness import ACTION_YML, REPO_ROOT

WORKFLOWS = sorted((REPO_ROOT / ".github" / "workflows").glob("*.yml")) + sorted(
    (REPO_ROOT / "examples" / "workflows").glob("*.yml")
)
OWN_ACTION = "pg-ext-memcheck/pg-ext-memcheck@v1"  # how the examples reference the released action
PINNED = re.compile(r"^\s*(?:-\s+)?uses:\s+([\w.-]+/[\w./-]+)@([0-9a-f]{40}) # v\d+\.\d+\.\d+\s*$")
REQUIRED_OUTPUTS = {
    "findings", "violations", "errors", "warnings", "infos", "max-severity", "conclusion", "junit-path",
    "markdown-path", "comment-url", "new-findings", "worse-findings", "fixed-findings", "compared-with",
    "sarif-path", "json-path", "reasons", "exit-code",
}


def tool(name: str) -> str:
    """The tool from this interpreter's environment (pyproject's test extras), else from PATH."""
    local = Path(sys.executable).parent / name
    if local.is_file():
        return str(local)
    found = shutil.which(name)
    assert found, f"{name} is not installed: pip install -e '.[test]'"
    return found


def load(path: Path) -> Dict[str, Any]:
    return yaml.safe_load(path.read_text(encoding="utf-8"))


def action() -> Dict[str, Any]:
    return load(ACTION_YML)


def test_the_expected_workflow_files_exist() -> None:
    names = {p.relative_to(REPO_ROOT).as_posix() for p in WORKFLOWS}
    assert {
        ".github/workflows/ci.yml", ".github/workflows/release.yml",
        "examples/workflows/memcheck.yml", "examples/workflows/memcheck-matrix.yml",
        "examples/workflows/memcheck-pr.yml", "examples/workflows/memcheck-publish.yml",
    } <= names


def test_action_schema() -> None:
    proc = subprocess.run(
        [tool("check-jsonschema"), "--builtin-schema", "vendor.github-actions", str(ACTION_YML)],
        capture_output=True, text=True,
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr


@pytest.mark.parametrize("path", WORKFLOWS, ids=[p.name for p in WORKFLOWS])
def test_workflow_schema(path: Path) -> None:
    proc = subprocess.run(
        [tool("check-jsonschema"), "--builtin-schema", "vendor.github-workflows", str(path)],
        capture_output=True, text=True,
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr


def test_schema_check_can_fail(tmp_path: Path) -> None:
    """The schema really is applied: a composite run step without shell is refused."""
    doc = action()
    first_run = next(step for step in doc["runs"]["steps"] if "run" in step)
    del first_run["shell"]
    bad = tmp_path / "action.yml"
    bad.write_text(yaml.safe_dump(doc), encoding="utf-8")
    proc = subprocess.run(
        [tool("check-jsonschema"), "--builtin-schema", "vendor.github-actions", str(bad)],
        capture_output=True, text=True,
    )
    assert proc.returncode != 0


def zizmor(paths: List[Path]) -> List[Dict[str, Any]]:
    proc = subprocess.run(
        [tool("zizmor"), "--offline", "--format", "json", *map(str, paths)],
        capture_output=True, text=True, cwd=REPO_ROOT,
    )
    assert proc.stdout.strip().startswith("["), proc.stdout + proc.stderr
    return json.loads(proc.stdout)


def test_zizmor_no_medium_or_high_findings() -> None:
    findings = zizmor([ACTION_YML, *WORKFLOWS, REPO_ROOT / ".github" / "dependabot.yml"])
    serious = [
        (f["ident"], f["determinations"]["severity"], f["locations"][0]["symbolic"]["key"])
        for f in findings
        if f["determinations"]["severity"] in ("Medium", "High")
    ]
    assert serious == []


def test_zizmor_can_fail(tmp_path: Path) -> None:
    """The linter really runs: an input interpolated into run: is a template-injection finding."""
    doc = action()
    next(step for step in doc["runs"]["steps"] if "run" in step)["run"] = 'echo "${{ inputs.mode }}"\n'
    bad = tmp_path / "action.yml"
    bad.write_text(yaml.safe_dump(doc), encoding="utf-8")
    findings = zizmor([bad])
    assert any(f["ident"] == "template-injection" for f in findings)


def test_zizmor_ignores_are_only_the_justified_ones() -> None:
    """Examples reference the released action by its moving major tag (users may pin a SHA) and the fork-safe
    publisher uses workflow_run without ever checking out the PR: the only two inline ignores allowed."""
    for path in [ACTION_YML, *WORKFLOWS]:
        for line in path.read_text(encoding="utf-8").splitlines():
            if "zizmor: ignore" not in line:
                continue
            rel = path.relative_to(REPO_ROOT).as_posix()
            unpinned_own = f"uses: {OWN_ACTION} # zizmor: ignore[unpinned-uses]" in line
            trigger = rel == "examples/workflows/memcheck-publish.yml" and line.startswith(
                "on:  # zizmor: ignore[dangerous-triggers]"
            )
            assert rel.startswith("examples/") and (unpinned_own or trigger), f"{rel}: {line}"


# ---------------------------------------------------------------------------------------------------------------
# Conventions (ci-conventions.md section 4)
# ---------------------------------------------------------------------------------------------------------------


def test_metadata_and_branding() -> None:
    doc = action()
    for key in ("name", "description", "author"):
        assert doc.get(key)
    assert doc["branding"]["icon"] and doc["branding"]["color"] in (
        "white", "black", "yellow", "blue", "green", "orange", "red", "purple", "gray-dark",
    )
    assert doc["runs"]["using"] == "composite"
    assert "post" not in doc["runs"]


def test_inputs_are_kebab_case_and_all_used() -> None:
    doc = action()
    text = ACTION_YML.read_text(encoding="utf-8")
    for name in doc["inputs"]:
        assert re.fullmatch(r"[a-z][a-z0-9]*(-[a-z0-9]+)*", name), name
        assert f"inputs.{name}" in text, f"input {name} is never used"
    assert {
        "postgres-version", "extension-path", "config", "install-method", "pg-config", "fail-on", "mode",
        "comment", "comment-key", "github-token", "python-version",
    } <= set(doc["inputs"])
    assert doc["inputs"]["github-token"]["default"] == "${{ github.token }}"


def test_outputs() -> None:
    doc = action()
    assert set(doc["outputs"]) == REQUIRED_OUTPUTS
    for name, spec in doc["outputs"].items():
        assert re.fullmatch(r"\$\{\{ steps\.[a-z-]+\.outputs\.[a-z-]+ \}\}", spec["value"]), name


def run_steps() -> Iterator[Tuple[str, Dict[str, Any]]]:
    for step in action()["runs"]["steps"]:
        if "run" in step:
            yield step.get("name", "?"), step


def test_run_steps_take_inputs_only_through_env() -> None:
    for name, step in run_steps():
        assert step.get("shell") == "bash", name
        assert "${{" not in step["run"], f"{name}: expressions inside run: (pass them through env:)"
        for value in (step.get("env") or {}).values():
            assert "github.event" not in str(value), name


def test_run_steps_are_valid_bash_and_grouped() -> None:
    for name, step in run_steps():
        proc = subprocess.run(["bash", "-n"], input=step["run"], capture_output=True, text=True)
        assert proc.returncode == 0, f"{name}: {proc.stderr}"
        opened = step["run"].count('echo "::group::')
        closed = step["run"].count('echo "::endgroup::"')
        assert opened <= 1 and closed >= opened, name


def test_bundled_files_referenced_through_action_path() -> None:
    text = ACTION_YML.read_text(encoding="utf-8")
    assert '"$GITHUB_ACTION_PATH"' in text
    assert "github.action_path" not in text


def test_cleanup_is_an_always_step() -> None:
    last = action()["runs"]["steps"][-1]
    assert last["name"] == "Clean up" and last["if"] == "always()"


def uses_lines(path: Path) -> List[str]:
    return [line for line in path.read_text(encoding="utf-8").splitlines() if re.match(r"^\s*(-\s+)?uses:", line)]


@pytest.mark.parametrize("path", [ACTION_YML, *WORKFLOWS], ids=["action.yml"] + [p.name for p in WORKFLOWS])
def test_uses_pinned_by_sha_with_version_comment(path: Path) -> None:
    for line in uses_lines(path):
        ref = line.split("uses:", 1)[1].strip()
        if ref == "./" or ref.startswith(f"{OWN_ACTION} "):
            continue
        assert PINNED.match(line), f"{path.name}: {line.strip()}"


@pytest.mark.parametrize("path", WORKFLOWS, ids=[p.name for p in WORKFLOWS])
def test_workflows_declare_minimal_permissions(path: Path) -> None:
    doc = load(path)
    top = doc.get("permissions")
    assert top is not None, f"{path.name}: no top-level permissions"
    assert top == {} or top == {"contents": "read"}, f"{path.name}: top-level permissions {top}"
    for name, job in doc["jobs"].items():
        perms = job.get("permissions", top)
        assert "write-all" not in str(perms) and "read-all" not in str(perms)
        for scope, level in (perms or {}).items():
            if level == "write":
                assert (scope, path.name) in {
                    ("pull-requests", "memcheck.yml"), ("pull-requests", "memcheck-matrix.yml"),
                    ("pull-requests", "memcheck-publish.yml"), ("pull-requests", "ci.yml"),
                    ("contents", "release.yml"), ("pull-requests", "memcheck-code-scanning.yml"),
                    ("security-events", "memcheck-code-scanning.yml"),  # upload-sarif
                }, f"{path.name}/{name}: {scope}: write"
        text = path.read_text(encoding="utf-8")
        assert "${{ github.event.pull_request.title" not in text


def test_fork_safe_pair() -> None:
    runs = load(REPO_ROOT / "examples" / "workflows" / "memcheck-pr.yml")
    pub = load(REPO_ROOT / "examples" / "workflows" / "memcheck-publish.yml")
    on_runs = runs.get("on", runs.get(True))  # PyYAML reads the key `on` as True
    on_pub = pub.get("on", pub.get(True))
    assert list(on_runs) == ["pull_request"]
    assert runs["permissions"] == {"contents": "read"}
    for job in runs["jobs"].values():
        permissions = job.get("permissions") or {}
        assert isinstance(permissions, dict) and "write" not in permissions.values()  # a run leg only reads
        assert any(s.get("with", {}).get("mode") == "run" for s in job["steps"])
    assert on_pub["workflow_run"]["workflows"] == [runs["name"]]
    job = pub["jobs"]["publish"]
    assert job["permissions"] == {"actions": "read", "pull-requests": "write"}
    assert not any("checkout" in str(s.get("uses", "")) for s in job["steps"]), "never check out PR code"
    assert any(s.get("with", {}).get("mode") == "publish" for s in job["steps"])


def test_project_ci_builds_with_werror_over_14_to_18() -> None:
    ci = load(REPO_ROOT / ".github" / "workflows" / "ci.yml")
    assert ci["jobs"]["test"]["strategy"]["matrix"]["pg"] == [18, 17, 16, 15, 14]
    assert ci["jobs"]["test"]["strategy"]["fail-fast"] is False
    text = (REPO_ROOT / ".github" / "workflows" / "ci.yml").read_text(encoding="utf-8")
    assert "make -C cext PG_CONFIG=\"$PG_CONFIG\" PG_CFLAGS='-Wall -Wextra -Werror'" in text
    assert "apt.postgresql.org.sh -p -v \"$PG\" -i -y" in text
    dogfood = ci["jobs"]["dogfood"]["steps"]
    own = [s for s in dogfood if s.get("uses") == "./"]
    assert own and all(s.get("continue-on-error") is True for s in own)


def test_issue_templates_schema() -> None:
    forms = sorted((REPO_ROOT / ".github" / "ISSUE_TEMPLATE").glob("*.yml"))
    forms = [p for p in forms if p.name != "config.yml"]
    assert forms
    for schema, paths in (
        ("vendor.github-issue-forms", forms),
        ("vendor.github-issue-config", [REPO_ROOT / ".github" / "ISSUE_TEMPLATE" / "config.yml"]),
    ):
        proc = subprocess.run(
            [tool("check-jsonschema"), "--builtin-schema", schema, *map(str, paths)], capture_output=True, text=True
        )
        assert proc.returncode == 0, proc.stdout + proc.stderr


DEPENDABOT = REPO_ROOT / ".github" / "dependabot.yml"


def test_dependabot_keeps_the_pinned_actions_and_pip_current(tmp_path: Path) -> None:
    """Dependabot's schema accepts the file (and refuses a misspelt ecosystem), and it covers both kinds of pin:
    the actions used by action.yml and the workflows (the root directory), and pyproject.toml's dependencies."""
    proc = subprocess.run([tool("check-jsonschema"), "--builtin-schema", "vendor.dependabot", str(DEPENDABOT)],
                          capture_output=True, text=True)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    updates = {(u["package-ecosystem"], u["directory"]) for u in load(DEPENDABOT)["updates"]}
    assert updates == {("github-actions", "/"), ("pip", "/")}
    bad = tmp_path / "dependabot.yml"
    bad.write_text(DEPENDABOT.read_text().replace("github-actions", "github-action"), encoding="utf-8")
    proc = subprocess.run([tool("check-jsonschema"), "--builtin-schema", "vendor.dependabot", str(bad)],
                          capture_output=True, text=True)
    assert proc.returncode == 1 and "github-action" in proc.stdout
