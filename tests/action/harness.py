"""Runs a composite action.yml for real, the way the GitHub runner does, without GitHub.

What it does, step by step, like the runner:
- inputs: the declared inputs with their defaults (defaults may hold expressions such as ${{ github.token }});
  an undeclared input is an error here (the runner only warns, but a test passing one is a mistake);
- `${{ }}` expressions in `if:`, `env:`, `with:`, `run:` and the output values are evaluated by a small
  evaluator for the subset of the expression language actions use: contexts inputs, steps, github, runner,
  env; property access with `.` and `['...']`; literals (strings, numbers, true/false/null); operators
  `!`, `==`, `!=`, `<`, `<=`, `>`, `>=`, `&&`, `||` with GitHub's coercion and case-insensitive string
  equality; status functions always(), success(), failure(), cancelled(). Anything else raises, so a
  construct the harness does not understand can never pass silently;
- `if:` without a status function means `success() && (...)`;
- `run:` steps are executed with `bash --noprofile --norc -eo pipefail FILE` (the runner's bash), in the
  workspace, with a fresh GITHUB_OUTPUT, GITHUB_ENV, GITHUB_PATH and GITHUB_STEP_SUMMARY per step;
  outputs are parsed (name=value and name<<DELIMITER heredocs), GITHUB_ENV and GITHUB_PATH carry over to
  later steps;
- `uses:` steps are replaced by local equivalents, and their references must be pinned by a full commit
  SHA: actions/setup-python reports the current interpreter; actions/upload-artifact copies the path into
  an artifacts directory (per run id; a second upload of a name fails unless overwrite is true, as in v4);
  actions/download-artifact copies artifacts back (name or pattern, merge-multiple, run-id);
  actions/cache/restore and actions/cache/save keep directories by key in a cache store (cache_dir; an
  exact key only, a second save of a key is refused with a warning, a missing path saves nothing), so two
  runs sharing the store see each other's caches as two jobs of a repository do (by default every run of
  a test process shares one store: the jobs of one repository);
- continue-on-error, step outcome and conclusion, and the action's outputs are evaluated as the runner does.
"""

from __future__ import annotations

import atexit
import fnmatch
import json
import math
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Dict, List, Optional, Tuple

import yaml

REPO_ROOT = Path(__file__).resolve().parents[2]
ACTION_YML = REPO_ROOT / "action.yml"
SHA_PIN = re.compile(r"^[^@\s]+@[0-9a-f]{40}$")


class ExpressionError(Exception):
    """An expression the harness does not understand or that is malformed."""


# --------------------------------------------------------------------------------------------------------------
# Expressions
# --------------------------------------------------------------------------------------------------------------

_TOKEN = re.compile(
    r"""\s*(?:
        (?P<str>'(?:[^']|'')*')
      | (?P<num>-?(?:0x[0-9a-fA-F]+|\d+(?:\.\d+)?(?:[eE][+-]?\d+)?))
      | (?P<op>==|!=|<=|>=|&&|\|\||[!<>().\[\],])
      | (?P<ident>[A-Za-z_][A-Za-z0-9_-]*)
    )""",
    re.VERBOSE,
)

STATUS_FUNCTIONS = ("always", "success", "failure", "cancelled")


def tokenize(text: str) -> List[Tuple[str, str]]:
    tokens: List[Tuple[str, str]] = []
    pos = 0
    text = text.rstrip()
    while pos < len(text):
        m = _TOKEN.match(text, pos)
        if not m or m.end() == pos:
            raise ExpressionError(f"cannot tokenize {text[pos:]!r} in {text!r}")
        pos = m.end()
        kind = m.lastgroup
        assert kind is not None
        tokens.append((kind, m.group(kind)))
    return tokens


def _to_number(value: Any) -> float:
    if value is None:
        return 0.0
    if isinstance(value, bool):
        return 1.0 if value else 0.0
    if isinstance(value, (int, float)):
        return float(value)
    if isinstance(value, str):
        s = value.strip()
        if s == "":
            return 0.0
        try:
            return float(int(s, 16)) if s.lower().startswith("0x") else float(s)
        except ValueError:
            return math.nan
    return math.nan  # objects and arrays


def truthy(value: Any) -> bool:
    if value is None:
        return False
    if isinstance(value, bool):
        return value
    if isinstance(value, (int, float)):
        return value != 0 and not math.isnan(value)
    if isinstance(value, str):
        return value != ""
    return True  # objects and arrays


def _equal(a: Any, b: Any) -> bool:
    if isinstance(a, str) and isinstance(b, str):
        return a.casefold() == b.casefold()
    if type(a) is type(b) and not isinstance(a, (dict, list)):
        return a == b
    if isinstance(a, (dict, list)) or isinstance(b, (dict, list)):
        return a is b
    x, y = _to_number(a), _to_number(b)
    return x == y  # NaN never equals anything


def _order(a: Any, b: Any, op: str) -> bool:
    if isinstance(a, str) and isinstance(b, str):
        x: Any = a.casefold()
        y: Any = b.casefold()
    else:
        x, y = _to_number(a), _to_number(b)
        if math.isnan(x) or math.isnan(y):
            return False
    return {"<": x < y, "<=": x <= y, ">": x > y, ">=": x >= y}[op]


def to_string(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float):
        return str(int(value)) if value.is_integer() else repr(value)
    if isinstance(value, (dict, list)):
        return json.dumps(value, indent=2)
    return str(value)


class _Parser:
    def __init__(self, text: str, contexts: Dict[str, Any], functions: Dict[str, Callable[[], bool]]) -> None:
        self.text = text
        self.tokens = tokenize(text)
        self.pos = 0
        self.contexts = contexts
        self.functions = functions

    def peek(self) -> Optional[Tuple[str, str]]:
        return self.tokens[self.pos] if self.pos < len(self.tokens) else None

    def take(self, value: Optional[str] = None) -> Tuple[str, str]:
        tok = self.peek()
        if tok is None or (value is not None and tok[1] != value):
            raise ExpressionError(f"expected {value or 'a token'} at token {self.pos} of {self.text!r}")
        self.pos += 1
        return tok

    def parse(self) -> Any:
        value = self.or_expr()
        if self.peek() is not None:
            raise ExpressionError(f"unexpected {self.peek()} in {self.text!r}")
        return value

    # `||` and `&&` return one of their operands, like JavaScript (GitHub's documented behaviour).
    def or_expr(self) -> Any:
        left = self.and_expr()
        while self.peek() == ("op", "||"):
            self.take()
            right = self.and_expr()
            left = left if truthy(left) else right
        return left

    def and_expr(self) -> Any:
        left = self.cmp_expr()
        while self.peek() == ("op", "&&"):
            self.take()
            right = self.cmp_expr()
            left = right if truthy(left) else left
        return left

    def cmp_expr(self) -> Any:
        left = self.unary()
        tok = self.peek()
        while tok is not None and tok[0] == "op" and tok[1] in ("==", "!=", "<", "<=", ">", ">="):
            self.take()
            right = self.unary()
            if tok[1] == "==":
                left = _equal(left, right)
            elif tok[1] == "!=":
                left = not _equal(left, right)
            else:
                left = _order(left, right, tok[1])
            tok = self.peek()
        return left

    def unary(self) -> Any:
        if self.peek() == ("op", "!"):
            self.take()
            return not truthy(self.unary())
        return self.primary()

    def primary(self) -> Any:
        kind, value = self.take()
        if kind == "str":
            return value[1:-1].replace("''", "'")
        if kind == "num":
            return float(int(value, 16)) if "x" in value.lower() else float(value)
        if kind == "op" and value == "(":
            inner = self.or_expr()
            self.take(")")
            return inner
        if kind != "ident":
            raise ExpressionError(f"unexpected {value!r} in {self.text!r}")
        if value == "true":
            return True
        if value == "false":
            return False
        if value == "null":
            return None
        if self.peek() == ("op", "("):
            if value not in self.functions:  # before its arguments: hashFiles('x') is unknown, not malformed
                raise ExpressionError(f"function {value}() is not supported by the harness ({self.text!r})")
            self.take("(")
            self.take(")")
            return self.functions[value]()
        if value not in self.contexts:
            raise ExpressionError(f"context {value!r} is not available here ({self.text!r})")
        current: Any = self.contexts[value]
        while self.peek() in (("op", "."), ("op", "[")):
            _, op = self.take()
            if op == ".":
                kind, name = self.take()
                if kind != "ident":
                    raise ExpressionError(f"bad property name {name!r} in {self.text!r}")
            else:
                kind, lit = self.take()
                if kind != "str":
                    raise ExpressionError(f"only string indexes are supported ({self.text!r})")
                name = lit[1:-1].replace("''", "'")
                self.take("]")
            current = _property(current, name)
        return current


def _property(obj: Any, name: str) -> Any:
    if isinstance(obj, dict):
        if name in obj:
            return obj[name]
        lowered = {str(k).casefold(): v for k, v in obj.items()}  # property names are case-insensitive
        return lowered.get(name.casefold())
    return None


def evaluate(expr: str, contexts: Dict[str, Any], functions: Optional[Dict[str, Callable[[], bool]]] = None) -> Any:
    return _Parser(expr, contexts, functions or {}).parse()


_TEMPLATE = re.compile(r"\$\{\{(.*?)\}\}", re.DOTALL)


def interpolate(text: str, contexts: Dict[str, Any], functions: Optional[Dict[str, Callable[[], bool]]] = None) -> str:
    """Replace every ${{ expr }} in text by the string form of its value."""
    return _TEMPLATE.sub(lambda m: to_string(evaluate(m.group(1), contexts, functions)), text)


def condition(text: Any, contexts: Dict[str, Any], functions: Dict[str, Callable[[], bool]]) -> bool:
    """An `if:` value: optional ${{ }} wrapper; success() && (...) unless it calls a status function."""
    if isinstance(text, bool):
        text = "true" if text else "false"
    expr = str(text).strip()
    m = re.fullmatch(r"\$\{\{(.*)\}\}", expr, re.DOTALL)
    if m:
        expr = m.group(1)
    if not any(re.search(rf"\b{name}\s*\(", expr) for name in STATUS_FUNCTIONS):
        expr = f"success() && ({expr})"
    return truthy(evaluate(expr, contexts, functions))


# --------------------------------------------------------------------------------------------------------------
# Runner files
# --------------------------------------------------------------------------------------------------------------


def parse_file_commands(text: str) -> Dict[str, str]:
    """Parse $GITHUB_OUTPUT / $GITHUB_ENV content: name=value lines and name<<DELIM heredocs."""
    values: Dict[str, str] = {}
    lines = text.split("\n")
    i = 0
    while i < len(lines):
        line = lines[i]
        i += 1
        if line.strip() == "":
            continue
        if "<<" in line and ("=" not in line or line.index("<<") < line.index("=")):
            name, delim = line.split("<<", 1)
            body: List[str] = []
            while i < len(lines) and lines[i] != delim:
                body.append(lines[i])
                i += 1
            if i >= len(lines):
                raise ValueError(f"heredoc for {name!r} has no closing {delim!r}")
            i += 1
            values[name] = "\n".join(body)
        elif "=" in line:
            name, value = line.split("=", 1)
            values[name] = value
        else:
            raise ValueError(f"invalid file-command line {line!r}")
    return values


_COMMAND = re.compile(r"^::(?P<cmd>[a-z-]+)(?: (?P<props>.*?))?::(?P<msg>.*)$")


def _unescape(value: str, prop: bool = False) -> str:
    if prop:
        value = value.replace("%3A", ":").replace("%2C", ",")
    return value.replace("%0D", "\r").replace("%0A", "\n").replace("%25", "%")


@dataclass
class Annotation:
    level: str  # error, warning, notice
    message: str
    title: Optional[str]
    file: Optional[str] = None


@dataclass
class StepRecord:
    index: int
    id: Optional[str]
    name: str
    outcome: str  # success, failure, skipped
    conclusion: str
    outputs: Dict[str, str]
    log: str
    summary: str
    returncode: Optional[int]
    seconds: float = 0.0  # wall-clock time the step took, as a runner's log shows it


@dataclass
class ActionResult:
    outcome: str
    outputs: Dict[str, str]
    steps: List[StepRecord]
    summary: str
    artifacts_dir: Path
    runner_temp: Path
    log: str = ""
    annotations: List[Annotation] = field(default_factory=list)

    def step(self, step_id: str) -> StepRecord:
        for s in self.steps:
            if step_id in (s.id, s.name):
                return s
        raise KeyError(step_id)

    def errors(self) -> List[str]:
        return [a.message for a in self.annotations if a.level == "error"]


def _annotations(log: str) -> List[Annotation]:
    found: List[Annotation] = []
    for line in log.splitlines():
        m = _COMMAND.match(line.strip())
        if not m or m.group("cmd") not in ("error", "warning", "notice"):
            continue
        title = file = None
        for prop in (m.group("props") or "").split(","):
            if prop.startswith("title="):
                title = _unescape(prop[len("title="):], prop=True)
            if prop.startswith("file="):
                file = _unescape(prop[len("file="):], prop=True)
        found.append(Annotation(m.group("cmd"), _unescape(m.group("msg")), title, file))
    return found


# --------------------------------------------------------------------------------------------------------------
# The runner
# --------------------------------------------------------------------------------------------------------------


@dataclass
class ActionRunner:
    """One invocation of a composite action inside a simulated job.

    base_dir holds RUNNER_TEMP, the event file and the artifacts store; several runners can share one
    artifacts store (artifacts_dir) to simulate the legs and the publish job of one workflow run.
    """

    base_dir: Path
    workspace: Path
    action_path: Path = REPO_ROOT  # GITHUB_ACTION_PATH
    action_yml: Optional[Path] = None  # default: action_path / action.yml
    inputs: Dict[str, str] = field(default_factory=dict)
    env: Dict[str, str] = field(default_factory=dict)  # the job's env: context (also exported)
    event_name: str = "push"
    event: Dict[str, Any] = field(default_factory=dict)
    job: str = "memcheck"
    workflow: str = "memcheck"
    run_id: str = "1000"
    run_attempt: str = "1"
    token: str = "ghs_harness_token_not_real"
    artifacts_dir: Optional[Path] = None
    cache_dir: Optional[Path] = None  # actions/cache's store (default: shared_cache_store())
    step_timeout: float = 1800.0
    echo: bool = True  # copy step logs to stderr (pytest shows them for failed tests)

    def run(self) -> ActionResult:
        action_yml = self.action_yml or Path(self.action_path) / "action.yml"
        action = yaml.safe_load(action_yml.read_text(encoding="utf-8"))
        if action["runs"]["using"] != "composite":
            raise ValueError("not a composite action")
        base = Path(self.base_dir)
        runner_temp = base / "runner_temp"
        runner_temp.mkdir(parents=True, exist_ok=True)
        os.chmod(base, 0o755)
        os.chmod(runner_temp, 0o777)  # like a runner's _temp: the unprivileged server user may need it
        files_dir = base / "file_commands"
        files_dir.mkdir(exist_ok=True)
        artifacts = Path(self.artifacts_dir) if self.artifacts_dir else base / "artifacts"
        artifacts.mkdir(parents=True, exist_ok=True)
        event_path = base / "event.json"
        event_path.write_text(json.dumps(self.event), encoding="utf-8")

        github: Dict[str, Any] = {
            "token": self.token,
            "workflow": self.workflow,
            "job": self.job,
            "run_id": self.run_id,
            "run_attempt": self.run_attempt,
            "event_name": self.event_name,
            "event": self.event,
            "event_path": str(event_path),
            "repository": "octo/ext",
            "repository_owner": "octo",
            "sha": "0" * 40,
            "ref": "refs/heads/main",
            "action_path": str(self.action_path),
            "workspace": str(self.workspace),
            "api_url": self.env.get("GITHUB_API_URL", "https://api.github.com"),
            "server_url": "https://github.com",
            "actor": "octocat",
        }
        process_env = {k: v for k, v in os.environ.items() if not k.startswith(("GITHUB_", "RUNNER_", "INPUT_"))}
        process_env.update(
            {
                "CI": "true",
                "GITHUB_ACTIONS": "true",
                "GITHUB_ACTION_PATH": str(self.action_path),
                "GITHUB_WORKSPACE": str(self.workspace),
                "GITHUB_EVENT_PATH": str(event_path),
                "GITHUB_EVENT_NAME": self.event_name,
                "GITHUB_REPOSITORY": github["repository"],
                "GITHUB_REPOSITORY_OWNER": github["repository_owner"],
                "GITHUB_RUN_ID": self.run_id,
                "GITHUB_RUN_ATTEMPT": self.run_attempt,
                "GITHUB_SHA": github["sha"],
                "GITHUB_REF": github["ref"],
                "GITHUB_WORKFLOW": self.workflow,
                "GITHUB_WORKFLOW_REF": f"{github['repository']}/.github/workflows/{self.workflow}.yml@{github['ref']}",
                "GITHUB_JOB": self.job,
                "GITHUB_API_URL": github["api_url"],
                "GITHUB_SERVER_URL": github["server_url"],
                "GITHUB_ACTOR": github["actor"],
                "RUNNER_TEMP": str(runner_temp),
                "RUNNER_OS": "Linux",
                "RUNNER_ARCH": "X64",
            }
        )
        process_env.update(self.env)
        env_context: Dict[str, str] = dict(self.env)
        extra_path: List[str] = []

        declared = action.get("inputs") or {}
        unknown = set(self.inputs) - set(declared)
        if unknown:
            raise ValueError(f"inputs not declared by action.yml: {sorted(unknown)}")
        contexts: Dict[str, Any] = {
            "github": github,
            "runner": {"temp": str(runner_temp), "os": "Linux", "arch": "X64", "name": "harness"},
            "env": env_context,
        }
        input_values: Dict[str, str] = {}
        for name, spec in declared.items():
            if name in self.inputs:
                input_values[name] = str(self.inputs[name])
            else:
                default = (spec or {}).get("default", "")
                input_values[name] = interpolate(to_string(default), contexts)
        contexts["inputs"] = input_values
        steps_context: Dict[str, Dict[str, Any]] = {}
        contexts["steps"] = steps_context

        records: List[StepRecord] = []
        failed = False

        def functions() -> Dict[str, Callable[[], bool]]:
            return {
                "always": lambda: True,
                "success": lambda: not failed,
                "failure": lambda: failed,
                "cancelled": lambda: False,
            }

        for index, step in enumerate(action["runs"]["steps"]):
            step_id = step.get("id")
            name = step.get("name") or step_id or step.get("uses") or f"step {index}"
            run_it = condition(step["if"], contexts, functions()) if "if" in step else not failed
            if not run_it:
                rec = StepRecord(index, step_id, name, "skipped", "skipped", {}, "", "", None)
                records.append(rec)
                if step_id:
                    steps_context[step_id] = {"outputs": {}, "outcome": "skipped", "conclusion": "skipped"}
                continue

            step_env = dict(process_env)
            step_env.update(env_context)
            if extra_path:
                step_env["PATH"] = os.pathsep.join([*reversed(extra_path), step_env.get("PATH", "")])
            for key, value in (step.get("env") or {}).items():
                step_env[key] = interpolate(to_string(value), contexts, functions())
            out_file = files_dir / f"output_{index}"
            env_file = files_dir / f"env_{index}"
            path_file = files_dir / f"path_{index}"
            summary_file = files_dir / f"summary_{index}"
            for f in (out_file, env_file, path_file, summary_file):
                f.write_text("", encoding="utf-8")
            step_env.update(
                {
                    "GITHUB_OUTPUT": str(out_file),
                    "GITHUB_ENV": str(env_file),
                    "GITHUB_PATH": str(path_file),
                    "GITHUB_STEP_SUMMARY": str(summary_file),
                }
            )

            started = time.monotonic()
            if "run" in step:
                log, rc, outputs = self._run_script(step, step_env, contexts, functions(), files_dir, index)
            elif "uses" in step:
                log, rc, outputs = self._uses(step, contexts, functions(), artifacts, step_env)
            else:
                raise ValueError(f"step {name!r} has neither run nor uses")

            outputs.update(parse_file_commands(out_file.read_text(encoding="utf-8")))
            env_context.update(parse_file_commands(env_file.read_text(encoding="utf-8")))
            extra_path.extend(p for p in path_file.read_text(encoding="utf-8").splitlines() if p.strip())
            summary = summary_file.read_text(encoding="utf-8")
            outcome = "success" if rc == 0 else "failure"
            coe = step.get("continue-on-error", False)
            if isinstance(coe, str):
                coe = truthy(evaluate(coe.strip().removeprefix("${{").removesuffix("}}"), contexts))
            conclusion = "success" if outcome == "success" or coe else "failure"
            if conclusion == "failure":
                failed = True
            rec = StepRecord(index, step_id, name, outcome, conclusion, outputs, log, summary, rc,
                             time.monotonic() - started)
            records.append(rec)
            if step_id:
                steps_context[step_id] = {"outputs": outputs, "outcome": outcome, "conclusion": conclusion}
            if self.echo:
                print(f"===== [{outcome}] {name} (exit {rc}, {rec.seconds:.1f} s)\n{log}", file=sys.stderr)

        outputs: Dict[str, str] = {}
        for name, spec in (action.get("outputs") or {}).items():
            outputs[name] = interpolate(to_string(spec.get("value", "")), contexts, functions())
        full_log = "\n".join(f"##[step] {r.name}\n{r.log}" for r in records if r.outcome != "skipped")
        return ActionResult(
            outcome="failure" if failed else "success",
            outputs=outputs,
            steps=records,
            summary="".join(r.summary for r in records),
            artifacts_dir=artifacts,
            runner_temp=runner_temp,
            log=full_log,
            annotations=_annotations(full_log),
        )

    # ----------------------------------------------------------------------------------------------------------

    def _run_script(
        self,
        step: Dict[str, Any],
        env: Dict[str, str],
        contexts: Dict[str, Any],
        functions: Dict[str, Callable[[], bool]],
        files_dir: Path,
        index: int,
    ) -> Tuple[str, int, Dict[str, str]]:
        shell = step.get("shell")
        if shell != "bash":
            raise ValueError(f"step {step.get('name')!r}: the harness runs shell: bash only (got {shell!r})")
        script = interpolate(step["run"], contexts, functions)
        path = files_dir / f"script_{index}.sh"
        path.write_text(script, encoding="utf-8")
        cwd = self.workspace
        if "working-directory" in step:
            cwd = Path(self.workspace) / interpolate(step["working-directory"], contexts, functions)
        proc = subprocess.run(
            ["bash", "--noprofile", "--norc", "-eo", "pipefail", str(path)],
            cwd=cwd,
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
            timeout=self.step_timeout,
        )
        return proc.stdout, proc.returncode, {}

    def _uses(
        self,
        step: Dict[str, Any],
        contexts: Dict[str, Any],
        functions: Dict[str, Callable[[], bool]],
        artifacts: Path,
        env: Dict[str, str],
    ) -> Tuple[str, int, Dict[str, str]]:
        ref = step["uses"]
        if not SHA_PIN.match(ref):
            raise ValueError(f"uses: {ref} is not pinned by a full commit SHA")
        action = ref.split("@", 1)[0]
        with_ = {k: interpolate(to_string(v), contexts, functions) for k, v in (step.get("with") or {}).items()}
        if action == "actions/setup-python":
            version = f"{sys.version_info.major}.{sys.version_info.minor}.{sys.version_info.micro}"
            log = f"setup-python (harness): using {sys.executable} {version} for {with_.get('python-version')!r}"
            return log, 0, {"python-path": sys.executable, "python-version": version}
        if action == "actions/upload-artifact":
            return self._upload(with_, artifacts)
        if action == "actions/download-artifact":
            return self._download(with_, artifacts)
        if action in ("actions/cache/restore", "actions/cache/save"):
            return self._cache(action.rsplit("/", 1)[1], with_)
        raise ValueError(f"the harness has no local equivalent for uses: {ref}")

    def _cache(self, op: str, with_: Dict[str, str]) -> Tuple[str, int, Dict[str, str]]:
        key = with_.get("key", "")
        paths = [p.strip() for p in with_.get("path", "").splitlines() if p.strip()]
        if not key or len(key) > 512 or "," in key or len(paths) != 1:
            return f"::error::cache/{op}: a key (at most 512 characters, no commas) and one path are required", 1, {}
        path = Path(os.path.expanduser(paths[0]))
        store = Path(self.cache_dir or shared_cache_store())
        store.mkdir(parents=True, exist_ok=True)
        entry = store / key
        if op == "restore":
            if not entry.is_dir():
                return f"Cache not found for input keys: {key}", 0, {"cache-hit": "false", "cache-primary-key": key}
            shutil.copytree(entry, path, symlinks=True, dirs_exist_ok=True)
            return (f"Cache restored from key: {key}", 0,
                    {"cache-hit": "true", "cache-primary-key": key, "cache-matched-key": key})
        if not path.exists():
            return ("::warning::Path Validation Error: Path(s) specified in the action for caching do(es) not exist, "
                    "hence no cache is being saved."), 0, {}
        if entry.exists():
            return (f"::warning::Failed to save: Unable to reserve cache with key {key}, another job may be "
                    "creating this cache."), 0, {}
        shutil.copytree(path, entry, symlinks=True)
        return f"Cache saved with key: {key}", 0, {"cache-id": str(abs(hash(key)) % 10**9)}

    def _store(self, artifacts: Path, run_id: Optional[str] = None) -> Path:
        store = artifacts / f"run-{run_id or self.run_id}"
        store.mkdir(parents=True, exist_ok=True)
        return store

    def _upload(self, with_: Dict[str, str], artifacts: Path) -> Tuple[str, int, Dict[str, str]]:
        name = with_.get("name") or "artifact"
        paths = [p.strip() for p in with_.get("path", "").splitlines() if p.strip()]
        if not paths:
            return "upload-artifact: input path is required", 1, {}
        target = self._store(artifacts) / name
        if target.exists():
            if with_.get("overwrite", "false") != "true":
                return f"upload-artifact: an artifact named {name!r} already exists (409 Conflict)", 1, {}
            shutil.rmtree(target)
        files: List[Tuple[Path, Path]] = []
        for p in paths:
            src = Path(p) if os.path.isabs(p) else Path(self.workspace) / p
            if src.is_dir():
                files += [(f, f.relative_to(src)) for f in sorted(src.rglob("*")) if f.is_file()]
            elif src.is_file():
                files.append((src, Path(src.name)))
        if not files:
            mode = with_.get("if-no-files-found", "warn")
            msg = f"No files were found with the provided path: {' '.join(paths)}. No artifacts will be uploaded."
            if mode == "error":
                return f"::error::{msg}", 1, {}
            return (f"::warning::{msg}" if mode == "warn" else msg), 0, {}
        for src, rel in files:
            dest = target / rel
            dest.parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(src, dest)
        return f"upload-artifact: {len(files)} file(s) as {name!r}", 0, {"artifact-id": str(abs(hash(name)) % 10**9)}

    def _download(self, with_: Dict[str, str], artifacts: Path) -> Tuple[str, int, Dict[str, str]]:
        run_id = with_.get("run-id") or None
        if run_id and run_id != self.run_id and not with_.get("github-token"):
            return "download-artifact: run-id needs github-token", 1, {}
        store = self._store(artifacts, run_id)
        dest = Path(with_.get("path") or self.workspace)
        if not dest.is_absolute():
            dest = Path(self.workspace) / dest
        name = with_.get("name", "")
        available = sorted(p.name for p in store.iterdir() if p.is_dir())
        if name:
            if name not in available:
                return f"::error::Unable to download artifact(s): Artifact not found for name: {name}", 1, {}
            chosen = [name]
            single = True
        else:
            pattern = with_.get("pattern", "") or "*"
            chosen = [a for a in available if fnmatch.fnmatchcase(a, pattern)]
            single = False
        merge = with_.get("merge-multiple", "false") == "true"
        for a in chosen:
            target = dest if (single or merge) else dest / a
            shutil.copytree(store / a, target, dirs_exist_ok=True)
        return f"download-artifact: {len(chosen)} artifact(s) {chosen} to {dest}", 0, {"download-path": str(dest)}


_SHARED_CACHE: List[Path] = []


def shared_cache_store() -> Path:
    """The actions/cache store the runs of this test process share, as the jobs of one repository do (removed
    when the process exits)."""
    if not _SHARED_CACHE:
        store = Path(tempfile.mkdtemp(prefix="pg-ext-memcheck-actions-cache-"))
        atexit.register(shutil.rmtree, store, True)
        _SHARED_CACHE.append(store)
    return _SHARED_CACHE[0]


def default_pg_config() -> str:
    """The PostgreSQL the action tests run against: the first of PG_EXT_MEMCHECK_PG_CONFIGS (CI sets the
    matrix version), else Debian's PostgreSQL 15."""
    listed = [p for p in os.environ.get("PG_EXT_MEMCHECK_PG_CONFIGS", "").split(":") if p.strip()]
    return listed[0] if listed else "/usr/lib/postgresql/15/bin/pg_config"


def pg_major(pg_config: str) -> str:
    out = subprocess.run([pg_config, "--version"], capture_output=True, text=True, check=True).stdout
    m = re.match(r"PostgreSQL (\d+)", out)
    assert m, out
    return m.group(1)


def copy_action(dest: Path) -> Path:
    """A checkout of the action (the repository without .git and build products) to run from.

    The reporter is installed editable from GITHUB_ACTION_PATH and the C library is built in its cext/, so
    the action runs from a copy and the tests never write into the working tree.
    """
    ignore = shutil.ignore_patterns(
        ".git", "__pycache__", "*.pyc", "*.o", "*.so", "*.bc", "*.egg-info", "build", ".venv",
        ".pytest_cache", ".ruff_cache", "results", "out",
    )
    shutil.copytree(REPO_ROOT, dest, ignore=ignore, symlinks=True)
    os.chmod(dest, 0o755)
    return dest


def make_base_dir() -> Path:
    """A temporary directory every user can traverse (the cluster may run as an unprivileged user)."""
    base = Path(tempfile.mkdtemp(prefix="pg-ext-memcheck-action-"))
    os.chmod(base, 0o755)
    return base
