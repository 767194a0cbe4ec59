"""memcheck.yml: load, validate against schemas/memcheck.schema.json, errors name file, line and key."""

from __future__ import annotations

import datetime as dt
import difflib
import hashlib
import json
import re
from dataclasses import dataclass, field
from functools import lru_cache
from importlib import resources
from pathlib import Path
from typing import Any, Dict, List, Tuple, Union

import jsonschema
import yaml

from reporter import vocab

DEFAULT_THRESHOLDS = {"min_leak_bytes": 8192, "warning_bytes": 65536, "error_bytes": 1048576}
DEFAULT_TIMEOUT_S = 300.0
DEFAULT_FAIL_ON = vocab.DEFAULT_FAIL_ON

PathKey = Tuple[Union[str, int], ...]


class ConfigError(Exception):
    """memcheck.yml is unusable; `errors` holds one 'file:line: key: message' string per problem."""

    def __init__(self, errors: List[str]) -> None:
        super().__init__("\n".join(errors))
        self.errors = errors


@dataclass(frozen=True)
class Extension:
    name: str
    path: Path | None  # resolved; None when the library is already installed
    preload: bool = True
    create: bool | None = None  # None: CREATE EXTENSION when a control file is installed
    make_args: Tuple[str, ...] = ()


@dataclass(frozen=True)
class Workload:
    name: str
    kind: str  # sql | file | scenario
    sql: str  # the SQL text (read from the file for kind file)
    scenario: str | None
    iterations: int
    mode: str  # off | planner | executor | all ("none" is normalised to "off")
    context_pattern: str
    allowed_contexts: Tuple[str, ...]
    timeout_s: float
    file: Path | None = None


@dataclass(frozen=True)
class Suppression:
    reason: str
    pattern: str | None = None
    check: str | None = None
    library: str | None = None
    expiry: dt.date | None = None


@dataclass(frozen=True)
class Config:
    path: Path
    digest: str  # "sha256:<hex>" of the file bytes
    extension: Extension | None
    settings: Dict[str, str]
    setup: Tuple[str, ...]
    workloads: Tuple[Workload, ...]
    thresholds: Dict[str, int]
    fail_on: str
    suppressions: Tuple[Suppression, ...] = field(default=())

    @property
    def base_dir(self) -> Path:
        return self.path.parent


@lru_cache(maxsize=1)
def schema() -> Dict[str, Any]:
    text = resources.files("reporter").joinpath("schemas/memcheck.schema.json").read_text(encoding="utf-8")
    return json.loads(text)


# -- YAML with positions -----------------------------------------------------------------------------


class _Positions:
    """Line numbers (1-based) of every key and list item, by their path in the document."""

    def __init__(self) -> None:
        self.lines: Dict[PathKey, int] = {}
        self.duplicates: List[Tuple[PathKey, int]] = []

    def walk(self, node: yaml.Node, path: PathKey) -> None:
        if isinstance(node, yaml.MappingNode):
            seen: set = set()
            for key_node, value_node in node.value:
                key = key_node.value if isinstance(key_node, yaml.ScalarNode) else str(key_node.value)
                line = key_node.start_mark.line + 1
                if key in seen:
                    self.duplicates.append((path + (key,), line))
                seen.add(key)
                self.lines[path + (key,)] = line
                self.walk(value_node, path + (key,))
        elif isinstance(node, yaml.SequenceNode):
            for index, item in enumerate(node.value):
                self.lines[path + (index,)] = item.start_mark.line + 1
                self.walk(item, path + (index,))

    def line_of(self, path: PathKey) -> int:
        """The line of the deepest known ancestor of `path` (a missing key reports its parent's line)."""
        while path:
            if path in self.lines:
                return self.lines[path]
            path = path[:-1]
        return 1


def key_path(path: PathKey) -> str:
    """('workloads', 1, 'iterations') -> 'workloads[1].iterations'."""
    out = ""
    for part in path:
        out += f"[{part}]" if isinstance(part, int) else (f".{part}" if out else str(part))
    return out or "(top level)"


def _jsonable(value: Any) -> Any:
    """YAML dates (expiry: 2027-01-01) become strings so the schema sees what the user wrote."""
    if isinstance(value, dict):
        return {str(k): _jsonable(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_jsonable(v) for v in value]
    if isinstance(value, (dt.date, dt.datetime)):
        return value.isoformat()
    return value


# -- validation ----------------------------------------------------------------------------------------


def _subschema_properties(err: jsonschema.ValidationError) -> List[str]:
    return sorted((err.schema.get("properties") or {}).keys())


def _schema_messages(doc: Any, positions: _Positions, source: str) -> List[Tuple[int, str]]:
    validator = jsonschema.Draft202012Validator(schema())
    out: List[Tuple[int, str]] = []
    for err in validator.iter_errors(doc):
        path: PathKey = tuple(err.absolute_path)
        if err.validator == "additionalProperties" and isinstance(err.instance, dict):
            known = _subschema_properties(err)
            for key in sorted(set(err.instance) - set(known)):
                near = difflib.get_close_matches(key, known, n=1, cutoff=0.6)
                hint = f" (did you mean '{near[0]}'?)" if near else f" (known keys: {', '.join(known)})"
                where = path + (key,)
                out.append((positions.line_of(where), f"{key_path(where)}: unknown key '{key}'{hint}"))
            continue
        if err.validator == "required":
            missing = re.findall(r"'([^']+)' is a required property", err.message)
            name = missing[0] if missing else "?"
            out.append((positions.line_of(path), f"{key_path(path + (name,))}: missing required key '{name}'"))
            continue
        if err.validator in ("oneOf", "anyOf") and "x-message" in err.schema:
            out.append((positions.line_of(path), f"{key_path(path)}: {err.schema['x-message']}"))
            continue
        if err.validator == "enum":
            choices = ", ".join(repr(c) for c in err.validator_value)
            near = difflib.get_close_matches(str(err.instance), [str(c) for c in err.validator_value], n=1)
            hint = f" (did you mean '{near[0]}'?)" if near else ""
            out.append((positions.line_of(path), f"{key_path(path)}: {err.instance!r} is not one of {choices}{hint}"))
            continue
        if err.validator == "type":
            out.append(
                (
                    positions.line_of(path),
                    f"{key_path(path)}: wrong type: {err.instance!r} is not of type {err.validator_value!r}",
                )
            )
            continue
        out.append((positions.line_of(path), f"{key_path(path)}: {err.message}"))
    return out


def parse_bytes(value: Union[int, str]) -> int:
    if isinstance(value, int):
        return value
    match = re.fullmatch(r"\s*([0-9]+)\s*(B|kB|KB|MB|GB)?\s*", value)
    if not match:
        raise ValueError(value)
    scale = {"B": 1, "kB": 1024, "KB": 1024, "MB": 1024**2, "GB": 1024**3}[match.group(2) or "B"]
    return int(match.group(1)) * scale


def parse_duration(value: Union[int, float, str]) -> float:
    if isinstance(value, (int, float)):
        return float(value)
    match = re.fullmatch(r"\s*([0-9]+(?:\.[0-9]+)?)\s*(ms|s|min|h)?\s*", value)
    if not match:
        raise ValueError(value)
    scale = {"ms": 0.001, "s": 1, "min": 60, "h": 3600}[match.group(2) or "s"]
    return float(match.group(1)) * scale


def _settings_value(value: Any) -> str:
    if isinstance(value, bool):
        return "on" if value else "off"
    return str(value)


def load(path: Union[str, Path]) -> Config:
    """Read and validate memcheck.yml; raise ConfigError listing every problem found."""
    path = Path(path)
    source = str(path)
    try:
        raw = path.read_bytes()
    except FileNotFoundError as exc:
        raise ConfigError([f"{source}: no such file"]) from exc
    except OSError as exc:
        raise ConfigError([f"{source}: cannot read: {exc.strerror}"]) from exc
    text = raw.decode("utf-8", errors="replace")
    try:
        node = yaml.compose(text, Loader=yaml.SafeLoader)
        data = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        raise ConfigError([f"{source}:{_yaml_error_text(exc)}"]) from exc
    if data is None:
        raise ConfigError([f"{source}:1: the file is empty (it needs at least 'workloads')"])
    positions = _Positions()
    positions.walk(node, ())
    doc = _jsonable(data)
    found = [(line, f"{key_path(p)}: duplicate key") for p, line in positions.duplicates]
    if not isinstance(doc, dict):
        found.append((1, f"(top level): expected a mapping of keys, got {type(doc).__name__}"))
    else:
        found += _schema_messages(doc, positions, source)
    if not found:
        found += _semantic_messages(doc, positions, path.parent)
    if found:
        raise ConfigError([f"{source}:{line}: {msg}" for line, msg in sorted(found)])
    return _build(doc, path, raw)


def _yaml_error_text(exc: yaml.YAMLError) -> str:
    """'3: invalid YAML: while scanning a quoted scalar: found unexpected end of stream (line 4)'.

    The line is where the broken construct starts (an unclosed quote is reported at the end of the file).
    """
    problem_mark = getattr(exc, "problem_mark", None)
    context_mark = getattr(exc, "context_mark", None)
    problem = getattr(exc, "problem", None) or str(exc)
    context = getattr(exc, "context", None)
    mark = context_mark or problem_mark
    line = mark.line + 1 if mark is not None else 1
    text = f"{line}: invalid YAML: "
    if context:
        text += f"{context}: "
    text += problem
    if context_mark is not None and problem_mark is not None and problem_mark.line != context_mark.line:
        text += f" (line {problem_mark.line + 1})"
    return text


def _semantic_messages(doc: Dict[str, Any], positions: _Positions, base: Path) -> List[Tuple[int, str]]:
    """What the schema cannot say: files exist, names are unique, thresholds are ordered."""
    out: List[Tuple[int, str]] = []
    ext = doc.get("extension") or {}
    if "path" in ext:
        ext_dir = (base / ext["path"]).resolve()
        if not ext_dir.is_dir():
            where = ("extension", "path")
            out.append((positions.line_of(where), f"{key_path(where)}: directory not found: {ext_dir}"))
    names: Dict[str, int] = {}
    for i, wl in enumerate(doc.get("workloads", [])):
        if wl["name"] in names:
            where = ("workloads", i, "name")
            out.append((positions.line_of(where), f"{key_path(where)}: duplicate workload name '{wl['name']}'"))
        names[wl["name"]] = i
        if "file" in wl:
            sql_file = (base / wl["file"]).resolve()
            if not sql_file.is_file():
                where = ("workloads", i, "file")
                out.append((positions.line_of(where), f"{key_path(where)}: file not found: {sql_file}"))
    thresholds = {
        **DEFAULT_THRESHOLDS,
        **{k: parse_bytes(v) for k, v in (doc.get("thresholds") or {}).items()},
    }
    if not thresholds["min_leak_bytes"] <= thresholds["warning_bytes"] <= thresholds["error_bytes"]:
        where = ("thresholds",)
        out.append((positions.line_of(where), "thresholds: need min_leak_bytes <= warning_bytes <= error_bytes"))
    for i, sup in enumerate(doc.get("suppressions", [])):
        if "expiry" in sup:
            try:
                dt.date.fromisoformat(sup["expiry"])
            except ValueError:
                where = ("suppressions", i, "expiry")
                out.append((positions.line_of(where), f"{key_path(where)}: not a date: {sup['expiry']!r}"))
    return out


def _build(doc: Dict[str, Any], path: Path, raw: bytes) -> Config:
    base = path.parent
    extension = None
    if "extension" in doc:
        ext = doc["extension"]
        extension = Extension(
            name=ext["name"],
            path=(base / ext["path"]).resolve() if "path" in ext else None,
            preload=ext.get("preload", True),
            create=ext.get("create"),
            make_args=tuple(ext.get("make_args", ())),
        )
    setup = doc.get("setup", ())
    workloads = []
    for wl in doc["workloads"]:
        sql_file = (base / wl["file"]).resolve() if "file" in wl else None
        sql = sql_file.read_text(encoding="utf-8") if sql_file else wl["sql"]
        mode = wl.get("mode", "all")
        workloads.append(
            Workload(
                name=wl["name"],
                kind="scenario" if "scenario" in wl else ("file" if sql_file else "sql"),
                sql=sql,
                scenario=wl.get("scenario"),
                iterations=wl.get("iterations", 1),
                mode=vocab.MODE_ALIASES.get(mode, mode),
                context_pattern=wl.get("context_pattern", ""),
                allowed_contexts=tuple(wl.get("allowed_contexts", ())),
                timeout_s=parse_duration(wl["timeout"]) if "timeout" in wl else DEFAULT_TIMEOUT_S,
                file=sql_file,
            )
        )
    suppressions = tuple(
        Suppression(
            reason=s["reason"],
            pattern=s.get("pattern"),
            check=s.get("check"),
            library=s.get("library"),
            expiry=dt.date.fromisoformat(s["expiry"]) if "expiry" in s else None,
        )
        for s in doc.get("suppressions", ())
    )
    return Config(
        path=path,
        digest="sha256:" + hashlib.sha256(raw).hexdigest(),
        extension=extension,
        settings={k: _settings_value(v) for k, v in (doc.get("settings") or {}).items()},
        setup=(setup,) if isinstance(setup, str) else tuple(setup),
        workloads=tuple(workloads),
        thresholds={
            **DEFAULT_THRESHOLDS,
            **{k: parse_bytes(v) for k, v in (doc.get("thresholds") or {}).items()},
        },
        fail_on=doc.get("fail-on", DEFAULT_FAIL_ON),
        suppressions=suppressions,
    )
