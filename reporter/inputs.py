"""The GitHub Action's inputs: validated all at once, and turned into the plan its steps follow.

action.yml passes every input through the environment (MC_<INPUT>, never interpolated into a script) to
`pg-ext-memcheck validate-inputs`, which calls plan() and writes the Plan to $GITHUB_OUTPUT; the later steps
only read those outputs. Every problem is reported, each naming the input and what it accepts; a wrong value is
never half-used. Pure apart from reading the event file, pg_config's version and the workspace's files.

What is decided here:
- which parts run (mode), where results go, the artifact's and the leg's name;
- the configuration: memcheck.yml (config, default memcheck.yml when the workspace has one), else the
  extension's regression suite (extension-path, default the workspace);
- the base revision to compare with (compare: default the pull request's base commit on pull_request events;
  `none` switches it off) and the fail-on scope;
- PostgreSQL: how to install it, with assertions or not, and the cache key of a source build.
"""

from __future__ import annotations

import hashlib
import inspect
import os
import re
import subprocess
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, Dict, List, Mapping, Optional

from reporter import commentkey, exttree, gitrev, install, provision
from reporter.vocab import COMMENT_MODES, FAIL_ON_LEVELS, FAIL_ON_SCOPES, INSTALL_NONE, SWITCHES

MODES = ("run", "publish", "all")
# provision's methods (the registry of routes), and none: the installation pg-config names.
INSTALL_METHODS = (*provision.METHODS, INSTALL_NONE)
BOOLEANS = ("true", "false")
COMPARE_OFF = "none"
CONFIG_NAME = "memcheck.yml"
_LEG = re.compile(r"[A-Za-z0-9._-]{1,80}")
_PYTHON = re.compile(r"[A-Za-z0-9.+-]+")
_SHA = re.compile(r"[0-9a-f]{40}")
_CONTROL = re.compile("[\x00-\x1f\x7f-\x9f\u061c\u200e\u200f\u202a-\u202e\u2066-\u2069\u2028\u2029\ufeff]")
PR_EVENTS = ("pull_request", "pull_request_target")

# The inputs and the environment variable each arrives in.
INPUTS = ("postgres-version", "extension-path", "config", "install-method", "pg-config", "fail-on", "fail-on-scope",
          "mode", "comment", "comment-key", "leg-name", "compare", "annotations", "job-summary", "cassert",
          "python-version", "sarif", "repository-path")


def env_name(name: str) -> str:
    return "MC_" + name.upper().replace("-", "_")


@dataclass(frozen=True)
class Plan:
    """What the action's steps do; every field is one $GITHUB_OUTPUT of the validate step."""

    run: str  # "true" / "false": a run leg (install, build, run, upload)
    publish: str  # "true" / "false": download legs, comment
    root: str  # $RUNNER_TEMP/pg-ext-memcheck
    results_dir: str  # this leg's results ('' when only publishing)
    artifact: str  # pg-ext-memcheck-<leg>
    leg: str
    config: str  # memcheck.yml (absolute), or '' for the extension's regression suite
    extension: str  # the extension's directory (absolute) when config is '' or extension-path is set
    comment: str  # auto | always | changes | never (publishing only)
    comment_key: str
    download_run_id: str  # workflow_run: the triggering run whose artifacts are published
    compare: str  # the base revision to compare with, '' for none
    compare_note: str  # why there is no comparison ('' when there is one)
    fail_on_scope: str  # '' (the CLI's default: new with a base, else all) | new | all
    annotations: str  # on | off (report --annotations)
    sarif: str  # where report --sarif writes (absolute), '' for none
    repository_path: str  # report --repository-path (absolute), '' to let the runs' git top level decide
    step_summary: str  # "true" / "false"
    install_method: str  # INSTALL_METHODS
    cassert: str  # "true" / "false"
    pg_config: str  # install-method none: the pg_config (absolute)
    major: str  # the requested or (none) found major, '' when unknown
    cache_dir: str  # PG_EXT_MEMCHECK_CACHE for source builds
    postgres_cache_key: str  # actions/cache key of a source build ('' when not building from source)
    postgres_cache_path: str

    def outputs(self) -> Dict[str, str]:
        return {k.replace("_", "-"): v for k, v in asdict(self).items()}


class Problems(Exception):
    def __init__(self, messages: List[str]) -> None:
        super().__init__("\n".join(messages))
        self.messages = messages


def _choice(name: str, value: str, allowed: tuple, errors: List[str], extra: str = "") -> None:
    if value not in allowed:
        shown = ", ".join(a for a in allowed if a)
        errors.append(f"{name} must be one of {shown}{extra} (got '{value}')")


def base_sha_of(event: Mapping[str, Any]) -> Optional[str]:
    pull = event.get("pull_request")
    base = pull.get("base") if isinstance(pull, dict) else None
    sha = base.get("sha") if isinstance(base, dict) else None
    return sha if isinstance(sha, str) and _SHA.fullmatch(sha) else None


def pg_major(pg_config: str) -> Optional[int]:
    try:
        out = subprocess.run([pg_config, "--version"], capture_output=True, text=True, timeout=30).stdout
    except (OSError, subprocess.TimeoutExpired):
        return None
    m = re.match(r"PostgreSQL (\d+)", out)
    return int(m.group(1)) if m else None


def has_cassert(pg_config: str) -> bool:
    try:
        out = subprocess.run([pg_config, "--configure"], capture_output=True, text=True, timeout=30).stdout
    except (OSError, subprocess.TimeoutExpired):
        return False
    return "--enable-cassert" in out


def postgres_cache_key(env: Mapping[str, str], major: str, cassert: bool, method: str = "source") -> str:
    """The actions/cache key of a route's build: OS, architecture, major, assertions, and the code that builds
    it (a change to the route's module builds afresh)."""
    route = provision.ROUTES[method]
    recipe = hashlib.sha256(Path(inspect.getfile(type(route))).read_bytes()).hexdigest()[:16]
    return (f"pg-ext-memcheck-postgresql-{env.get('RUNNER_OS', 'os')}-{env.get('RUNNER_ARCH', 'arch')}-"
            f"{install.install_key(int(major), cassert)}-{recipe}")


def postgres_cache_path(cache_dir: str, major: str, cassert: bool, method: str) -> str:
    """Where the route keeps a finished install under cache_dir (what actions/cache saves and restores)."""
    prefix = provision.ROUTES[method].prefix(Path(cache_dir), int(major), cassert)
    return str(prefix) if prefix is not None else ""


def plan(values: Mapping[str, str], env: Mapping[str, str], event: Mapping[str, Any], workspace: Path) -> Plan:
    """Validate the inputs (`values` by input name) and decide; Problems lists every mistake."""
    v = {name: values.get(name, "") for name in INPUTS}
    errors: List[str] = []
    _check_choices(v, errors)
    key = _comment_key(v, env, errors)
    _check_formats(v, errors)
    run_leg = v["mode"] in ("run", "all")
    publish = v["mode"] in ("publish", "all")
    method, cassert = v["install-method"], v["cassert"] == "true"
    major, pg_config, config_abs, extension_abs = "", "", "", ""
    if run_leg:
        major, pg_config = _postgres(v, method, cassert, errors)
        config_abs, extension_abs = _configuration(v, workspace, errors)
    download_run_id = _download_run_id(v, values, env, event, errors) if publish else ""
    if errors:
        raise Problems(errors)
    if not env.get("RUNNER_TEMP"):
        raise Problems(["RUNNER_TEMP is not set (not on a GitHub runner?)"])

    root = str(Path(env["RUNNER_TEMP"]) / "pg-ext-memcheck")
    leg = v["leg-name"] or f"{env.get('GITHUB_JOB') or 'job'}-pg{major or 'custom'}"
    base, note = _base(v["compare"], env, event, run_leg)
    cache_dir = env.get("PG_EXT_MEMCHECK_CACHE") or str(Path(env["RUNNER_TEMP"]) / "pg-ext-memcheck-cache")
    # a route whose build the action keeps between runs (actions/cache)
    building = run_leg and method in provision.ROUTES and provision.ROUTES[method].action_cache
    return Plan(
        run=str(run_leg).lower(), publish=str(publish).lower(), root=root,
        results_dir=str(Path(root) / "legs" / leg) if run_leg else "", artifact=f"pg-ext-memcheck-{leg}", leg=leg,
        config=config_abs, extension=extension_abs, comment=v["comment"], comment_key=key,
        download_run_id=download_run_id, compare=base, compare_note=note, fail_on_scope=v["fail-on-scope"],
        annotations=v["annotations"],
        sarif=str(workspace / v["sarif"]) if v["sarif"] else "",
        repository_path=str(workspace / v["repository-path"]) if v["repository-path"] else "",
        step_summary=str(v["job-summary"] == "on").lower(), install_method=method, cassert=str(cassert).lower(),
        pg_config=pg_config, major=major, cache_dir=cache_dir,
        postgres_cache_key=postgres_cache_key(env, major, cassert, method) if building else "",
        postgres_cache_path=postgres_cache_path(cache_dir, major, cassert, method) if building else "",
    )


def _check_choices(v: Mapping[str, str], errors: List[str]) -> None:
    """The inputs that take one of a few words, and python-version's format."""
    _choice("mode", v["mode"], MODES, errors)
    _choice("fail-on", v["fail-on"], ("", *FAIL_ON_LEVELS), errors, ", or empty for memcheck.yml's fail-on")
    _choice("fail-on-scope", v["fail-on-scope"], ("", *FAIL_ON_SCOPES), errors,
            ", or empty for new when a base was compared, else all")
    _choice("comment", v["comment"], COMMENT_MODES, errors)
    _choice("annotations", v["annotations"], SWITCHES, errors)
    _choice("job-summary", v["job-summary"], SWITCHES, errors)
    _choice("cassert", v["cassert"], BOOLEANS, errors)
    if v["python-version"] and not _PYTHON.fullmatch(v["python-version"]):
        errors.append("python-version must be a version such as 3.12, or empty to use the runner's python3 "
                      f"(got '{v['python-version']}')")


def _comment_key(v: Mapping[str, str], env: Mapping[str, str], errors: List[str]) -> str:
    """comment-key, else the workflow name: either must be a usable key."""
    key = v["comment-key"] or env.get("GITHUB_WORKFLOW") or "pg-ext-memcheck"
    if commentkey.key_problem(key):
        if v["comment-key"]:
            errors.append("comment-key must be at most 100 characters without '--', '<', '>' or control "
                          f"characters (got '{key}')")
        else:
            errors.append("comment-key (default: the workflow name) must be at most 100 characters without "
                          f"'--', '<', '>' or control characters; the workflow name '{key}' is not: set comment-key")
    return key


def _check_formats(v: Mapping[str, str], errors: List[str]) -> None:
    """leg-name's characters, sarif and repository-path inside the workspace, compare a revision."""
    if v["leg-name"] and not _LEG.fullmatch(v["leg-name"]):
        errors.append(f"leg-name may hold only letters, digits, '.', '_' and '-' (at most 80) (got '{v['leg-name']}')")
    for name in ("sarif", "repository-path"):
        value = v[name]
        if value and (value.startswith("/") or ".." in Path(value).parts or _CONTROL.search(value)):
            errors.append(f"{name} must be a path relative to the workspace, without '..' or control characters "
                          f"(got '{value}')")
    compare = v["compare"]
    if compare not in ("", COMPARE_OFF) and not gitrev.valid_ref(compare):
        errors.append(f"compare must be a revision (a commit SHA, a branch or a tag), empty for the pull "
                      f"request's base, or none (got '{compare}')")


def _download_run_id(v: Mapping[str, str], values: Mapping[str, str], env: Mapping[str, str],
                     event: Mapping[str, Any], errors: List[str]) -> str:
    """For a publishing step: the run whose artifacts to publish (workflow_run), and what publishing needs."""
    if v["comment"] == "always" and values.get("has-token") != "true":
        errors.append("comment: always needs github-token")
    if v["mode"] != "publish" or env.get("GITHUB_EVENT_NAME") != "workflow_run":
        return ""
    wr = event.get("workflow_run")
    run_id = wr.get("id") if isinstance(wr, dict) else None
    if isinstance(run_id, int) or (isinstance(run_id, str) and run_id.isdigit()):
        return str(run_id)
    errors.append("mode: publish on workflow_run: the event carries no numeric workflow_run.id")
    return ""


def _postgres(v: Mapping[str, str], method: str, cassert: bool, errors: List[str]) -> tuple[str, str]:
    """(major, pg_config) for a run leg."""
    version = v["postgres-version"]
    major = ""
    if version and not re.fullmatch(r"[0-9]{1,3}", version):
        errors.append(f"postgres-version must be a PostgreSQL major version such as 17 (got '{version}')")
    elif version:
        try:
            major = str(install.parse_major(version))
        except ValueError as exc:
            errors.append(f"postgres-version: {exc}")
    if method not in INSTALL_METHODS:
        _choice("install-method", method, INSTALL_METHODS, errors)
        return major, ""
    if method != "none":
        if not version:
            errors.append("postgres-version is needed (a PostgreSQL major version such as 17) unless "
                          "install-method is none")
        if v["pg-config"]:
            errors.append(f"pg-config is only used with install-method: none (install-method is '{method}')")
        if cassert and provision.cassert_problem(method):
            can = " or ".join(provision.cassert_routes())
            errors.append(f"cassert: true needs a build with assertions: install-method {can} (built from the "
                          f"release tarball and cached), or none with such a pg-config (install-method is "
                          f"'{method}')")
        return major, ""
    pg_config = v["pg-config"]
    if not pg_config:
        errors.append("install-method: none needs pg-config, the path of an installed pg_config")
        return major, ""
    if not (os.path.isfile(pg_config) and os.access(pg_config, os.X_OK)):
        errors.append(f"pg-config '{pg_config}' is not an executable file")
        return major, ""
    found = pg_major(pg_config)
    if found is None:
        errors.append(f"pg-config '{pg_config}' does not say which PostgreSQL it is (pg_config --version)")
        return major, ""
    if major and int(major) != found:
        errors.append(f"pg-config '{pg_config}' is PostgreSQL {found}, not postgres-version {major}")
    if cassert and not has_cassert(pg_config):
        errors.append(f"cassert: true, but pg-config '{pg_config}' is a build without --enable-cassert")
    return str(found), str(Path(pg_config).resolve())


def _configuration(v: Mapping[str, str], workspace: Path, errors: List[str]) -> tuple[str, str]:
    """(memcheck.yml, extension directory), absolute; memcheck.yml '' means the regression suite."""
    extension = ""
    if v["extension-path"]:
        ext = workspace / v["extension-path"]
        if not ext.is_dir():
            errors.append(f"extension-path '{v['extension-path']}' is not a directory (relative to {workspace})")
        else:
            extension = str(ext.resolve())
    if v["config"]:
        path = workspace / v["config"]
        if not path.is_file():
            errors.append(f"config '{v['config']}' not found (relative to {workspace})")
            return "", extension
        return str(path.resolve()), extension
    for default in (workspace / CONFIG_NAME, Path(extension or workspace) / CONFIG_NAME):
        if default.is_file():
            return str(default.resolve()), extension
    directory = Path(extension) if extension else workspace
    instead = exttree.found_instead(directory) if (extension or not v["extension-path"]) else None
    if instead is not None:
        errors.append(f"config: no {CONFIG_NAME} in the workspace, so the extension's regression suite would run, "
                      f"but that is {exttree.not_an_extension(instead)} (the action's inputs: config names your "
                      "memcheck.yml, extension-path the extension's directory)")
    return "", str(directory.resolve())


def _base(compare: str, env: Mapping[str, str], event: Mapping[str, Any], run_leg: bool) -> tuple[str, str]:
    """(revision to compare with, why none)."""
    if not run_leg:
        return "", "publishing only"
    if compare == COMPARE_OFF:
        return "", "compare: none"
    if compare:
        return compare, ""
    if env.get("GITHUB_EVENT_NAME") in PR_EVENTS:
        sha = base_sha_of(event)
        if sha:
            return sha, ""
        return "", "the pull_request event names no base commit"
    return "", f"not a pull request ({env.get('GITHUB_EVENT_NAME') or 'no'} event): nothing to compare with"
