"""memcheck.yml: load, validate against schemas/memcheck.schema.json, errors name file, line and key."""

from __future__ import annotations

import datetime as dt
import difflib
import hashlib
import json
import math
import os
import re
from dataclasses import dataclass, field
from functools import lru_cache
from importlib import resources
from pathlib import Path
from typing import Any, Dict, List, Tuple, Union

import jsonschema
import yaml

from reporter import files, sqltext, vocab

DEFAULT_THRESHOLDS = {"min_leak_bytes": 8192, "warning_bytes": 65536, "error_bytes": 1048576}
DEFAULT_TIMEOUT_S = 300.0
DEFAULT_FAIL_ON = vocab.DEFAULT_FAIL_ON
DEFAULT_PROTOCOL = vocab.DEFAULT_PROTOCOL
# The thresholds are int GUCs of the hook library: PostgreSQL's int is 32 bits.
MAX_THRESHOLD_BYTES = 2**31 - 1
# statement_timeout is an int of milliseconds; below 1 ms it would round to 0, which disables it.
MIN_TIMEOUT_S = 0.001
MAX_TIMEOUT_S = (2**31 - 1) // 1000
MAX_YAML_DEPTH = 32
# A memcheck.yml is written by hand: a larger one is a mistake (or an attack) that would take minutes and
# hundreds of MB to load before anything ran. The workload count's limit is the schema's (workloads.maxItems).
MAX_CONFIG_BYTES = 1024 * 1024
# A workload's SQL file is read whole into memory and sent as one query.
MAX_SQL_FILE_BYTES = 64 * 1024 * 1024
# A regression test file runs once as pg_regress runs it, then iterations - 1 more times in one session of its
# own: the C side calls growth a leak after 3 growths, so that session needs 3 passes of a file whose leaky
# statement runs once (docs/compare.md has the measurement).
DEFAULT_REGRESS_ITERATIONS = 4
# The name of a regress entry without one (its tests are named after their files).
REGRESS_NAME = "regress"

# postgresql.conf settings memcheck.yml may not set: the runner owns them. Connection settings keep the private
# cluster on its unix socket with no TCP (its superuser has no password); loading settings would put code in
# the server by another way than extension/preload; the logging ones are what the runner reads crashes from.
RESERVED_SETTINGS: Dict[str, str] = {
    **dict.fromkeys(
        ("listen_addresses", "port", "unix_socket_directories", "unix_socket_group", "unix_socket_permissions",
         "hba_file", "ident_file", "config_file", "data_directory", "external_pid_file", "krb_server_keyfile",
         "ssl", "ssl_ca_file", "ssl_cert_file", "ssl_crl_file", "ssl_crl_dir", "ssl_key_file",
         "ssl_passphrase_command"),
        "the private cluster's connection settings are fixed: unix socket only, in a private directory, no TCP",
    ),
    "shared_preload_libraries": "use the top-level 'preload' list (pg_ext_memcheck is added last unless it lists it)",
    **dict.fromkeys(
        ("local_preload_libraries", "session_preload_libraries", "dynamic_library_path", "jit_provider"),
        "libraries are loaded only through 'extension' and 'preload'",
    ),
    **dict.fromkeys(
        ("include", "include_dir", "include_if_exists"),
        "memcheck.yml cannot include other configuration files",
    ),
    **dict.fromkeys(
        ("logging_collector", "log_destination", "log_line_prefix", "restart_after_crash"),
        "the runner reads crashes and errors from the server log and needs this setting as it is",
    ),
}

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
    kind: str  # sql | file | scenario | regress
    sql: str  # the SQL text (read from the file for kind file)
    scenario: str | None
    iterations: int
    mode: str  # off | planner | executor | all ("none" is normalised to "off")
    context_pattern: str
    allowed_contexts: Tuple[str, ...]
    timeout_s: float
    file: Path | None = None
    protocol: str = DEFAULT_PROTOCOL  # simple | extended | prepared (see the schema)
    concurrency: int = 1  # sessions that run it at the same time
    named: bool = True  # False: a regress entry without a name (its tests keep their own names)


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
    preload: Tuple[str, ...] = field(default=())  # further libraries, after the extension
    lines: Dict[str, int] = field(default_factory=dict)  # key path ('settings.work_mem') -> line in the file
    setup_lines: Tuple[int, ...] = field(default=())  # the line in the file of each setup statement

    @property
    def base_dir(self) -> Path:
        return self.path.parent

    def locate(self, key: str) -> str:
        """'memcheck.yml:9: settings.work_mem': where a key is, for messages about it."""
        return f"{self.path}:{self.lines.get(key, 1)}: {key}"


@lru_cache(maxsize=1)
def schema() -> Dict[str, Any]:
    text = resources.files("reporter").joinpath("schemas/memcheck.schema.json").read_text(encoding="utf-8")
    return json.loads(text)


# -- YAML with positions -----------------------------------------------------------------------------


class _Loader(yaml.SafeLoader):
    """SafeLoader without YAML's implicit timestamps: `expiry: 2027-13-45` stays the string the user wrote,
    so that it is checked (and named) like every other value instead of failing inside the YAML parser."""


_Loader.yaml_implicit_resolvers = {
    first: [(tag, rx) for tag, rx in resolvers if tag != "tag:yaml.org,2002:timestamp"]
    for first, resolvers in yaml.SafeLoader.yaml_implicit_resolvers.items()
}


class _Positions:
    """Line numbers (1-based) of every key and list item, by their path in the document."""

    def __init__(self) -> None:
        self.lines: Dict[PathKey, int] = {}
        self.duplicates: List[Tuple[PathKey, int]] = []
        # The first line of a scalar value's content, when it maps line for line onto the text (plain,
        # quoted on one line, or a literal block `|`); folded and multi-line quoted scalars are left out.
        self.text_lines: Dict[PathKey, int] = {}

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
        elif isinstance(node, yaml.ScalarNode):
            if node.style == "|":
                self.text_lines[path] = node.start_mark.line + 2  # the indicator line, then the content
            elif node.start_mark.line == node.end_mark.line and node.style != ">":
                self.text_lines[path] = node.start_mark.line + 1

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


def load(path: Union[str, Path], text: str | None = None) -> Config:
    """Read and validate memcheck.yml; raise ConfigError listing every problem found.

    `text`: the document itself, for a configuration that has no file (the default one, see reporter.defaults);
    `path` then only places it (relative paths start from its directory) and names it in messages."""
    path = Path(path)
    source = str(path)
    try:
        raw = files.read_regular(path, MAX_CONFIG_BYTES, "memcheck.yml") if text is None else text.encode("utf-8")
    except files.FileProblem as exc:
        if exc.reason == "no such file or directory":
            raise ConfigError([f"{source}: no such file"]) from None
        raise ConfigError([str(exc) if "too large" not in exc.reason else
                           f"{exc}: split it, or generate fewer workloads"]) from None
    if len(raw) > MAX_CONFIG_BYTES:
        raise ConfigError([f"{source}: too large for a memcheck.yml: {len(raw):,} bytes, at most "
                           f"{MAX_CONFIG_BYTES:,}"])
    text = _decode(raw, source)
    node = _compose(text, source)
    if node is None:
        raise ConfigError([f"{source}:1: the file is empty (it needs at least 'workloads')"])
    try:
        data = _Loader("").construct_document(node)
    except yaml.YAMLError as exc:  # a tag the safe loader has no constructor for: !custom, !!python/...
        mark = getattr(exc, "problem_mark", None)
        tag = re.search(r"for the tag '([^']*)'", str(getattr(exc, "problem", "")))
        if mark is None or tag is None:
            raise ConfigError([f"{source}:{_yaml_error_text(exc)}"]) from None
        raise ConfigError([f"{source}:{mark.line + 1}: invalid YAML: unknown tag '{tag.group(1)}': memcheck.yml takes "
                           "plain values (strings, numbers, lists, mappings); remove the tag"]) from None
    positions = _Positions()
    positions.walk(node, ())
    doc = _jsonable(data)
    found = [(line, f"{key_path(p)}: duplicate key") for p, line in positions.duplicates]
    if not isinstance(doc, dict):
        found.append((1, f"(top level): expected a mapping of keys, got {type(doc).__name__}"))
    else:
        found += _schema_messages(doc, positions, source)
    sql_texts: Dict[int, str] = {}
    if not found:
        found += _semantic_messages(doc, positions, path.parent, sql_texts)
    if found:
        raise ConfigError([f"{source}:{line}: {msg}" for line, msg in sorted(found)])
    return _build(doc, path, raw, positions, sql_texts)


def _decode(raw: bytes, source: str) -> str:
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        line = raw.count(b"\n", 0, exc.start) + 1
        raise ConfigError([f"{source}:{line}: not UTF-8 text (byte 0x{raw[exc.start]:02x})"]) from None


def _compose(text: str, source: str) -> yaml.Node | None:
    """The document's node graph. Aliases are refused: memcheck.yml does not need them, and a few nested
    aliases expand to billions of nodes (the 'billion laughs' attack)."""
    depth = 0
    workloads = _WorkloadCounter(source)
    try:
        for event in yaml.parse(text, Loader=_Loader):
            workloads.see(event, depth)
            if isinstance(event, yaml.CollectionStartEvent):
                depth += 1
                if depth > MAX_YAML_DEPTH:  # PyYAML's scanner slows down quadratically with depth
                    line = event.start_mark.line + 1 if event.start_mark else 1
                    raise ConfigError([f"{source}:{line}: invalid YAML: nested more than {MAX_YAML_DEPTH} "
                                       "levels deep"])
            elif isinstance(event, yaml.CollectionEndEvent):
                depth -= 1
            elif isinstance(event, yaml.AliasEvent):
                line = event.start_mark.line + 1 if event.start_mark else 1
                raise ConfigError([f"{source}:{line}: YAML aliases (*{event.anchor}) are not supported in "
                                   "memcheck.yml; write the value out"])
        return yaml.compose(text, Loader=_Loader)
    except yaml.reader.ReaderError as exc:  # a NUL or another character YAML does not allow, raw in the file
        at = exc.position
        char = exc.character if isinstance(exc.character, int) else ord(exc.character)
        raise ConfigError([f"{source}:{text.count(chr(10), 0, at) + 1}: invalid YAML: character U+{char:04X} at "
                           f"offset {at} is not allowed in a YAML file (inside a double-quoted string, write it "
                           "as an escape)"]) from None
    except yaml.YAMLError as exc:
        raise ConfigError([f"{source}:{_yaml_error_text(exc)}"]) from exc
    except RecursionError:
        raise ConfigError([f"{source}:1: invalid YAML: nested too deeply"]) from None


def max_workloads() -> int:
    """How many workloads one memcheck.yml may list (the schema's workloads.maxItems)."""
    return int(schema()["properties"]["workloads"]["maxItems"])


class _WorkloadCounter:
    """Counts the items of the top-level `workloads` list while the YAML is parsed, and stops the parse at the
    first one too many: a file of tens of thousands of workloads is refused in a moment, before it is built
    into nodes (which takes minutes and hundreds of MB), and without the schema's message quoting the list."""

    def __init__(self, source: str) -> None:
        self.source = source
        self.limit = max_workloads()
        self.expect_key = True  # in the top-level mapping: the next node is a key (else its value)
        self.key: object = None
        self.inside = False  # in the workloads sequence
        self.count = 0

    def see(self, event: yaml.Event, depth: int) -> None:
        """`depth`: collections open before this event."""
        node = isinstance(event, (yaml.ScalarEvent, yaml.CollectionStartEvent, yaml.AliasEvent))
        if node and depth == 1:
            if self.expect_key:
                self.key = event.value if isinstance(event, yaml.ScalarEvent) else None
            else:
                self.inside = self.key == "workloads" and isinstance(event, yaml.SequenceStartEvent)
            self.expect_key = not self.expect_key
        elif node and depth == 2 and self.inside:
            self.count += 1
            if self.count > self.limit:
                line = event.start_mark.line + 1 if event.start_mark else 1
                raise ConfigError([f"{self.source}:{line}: workloads: more than {self.limit:,} workloads (this is "
                                   f"number {self.count:,}): split the configuration into several runs"])
        elif isinstance(event, yaml.CollectionEndEvent) and depth == 2:
            self.inside = False


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


def _semantic_messages(
    doc: Dict[str, Any], positions: _Positions, base: Path, sql_texts: Dict[int, str]
) -> List[Tuple[int, str]]:
    """What the schema cannot say: files exist and are text, names are unique, numbers are in range, settings
    are ours to take, the SQL can run the way the workload runs it. Fills sql_texts (workload index -> SQL)."""
    out: List[Tuple[int, str]] = []

    def problem(where: PathKey, message: str) -> None:
        out.append((positions.line_of(where), f"{key_path(where)}: {message}"))

    ext = doc.get("extension") or {}
    if "path" in ext:
        ext_dir = _resolve(base / ext["path"])
        if not ext_dir.is_dir():
            problem(("extension", "path"), f"directory not found: {ext_dir}")
    out += [(line, message) for line, message in _setup_statements(doc, positions)[1]]
    for key, value in (doc.get("settings") or {}).items():
        reason = RESERVED_SETTINGS.get(key.lower())
        if reason is not None:
            problem(("settings", key), f"'{key}' cannot be set here: {reason}")
        elif _CONTROL.search(key) or _CONTROL.search(_settings_value(value)):
            problem(("settings", key), "a line break or another control character in a setting: postgresql.conf "
                                       "takes one line per setting")
    setup = doc.get("setup")
    for n, text in enumerate([setup] if isinstance(setup, str) else setup or []):
        if "\x00" in text:
            where: PathKey = ("setup",) if isinstance(setup, str) else ("setup", n)
            problem(where, f"a NUL character at offset {text.index(chr(0))}: {_NUL_WHY}")
    names: Dict[str, int] = {}
    regress: List[int] = []
    for i, wl in enumerate(doc.get("workloads", [])):
        name = wl.get("name", REGRESS_NAME)
        if name in names:
            problem(("workloads", i, "name"), f"duplicate workload name '{name}'")
        names[name] = i
        if "timeout" in wl:
            out += _timeout_messages(wl["timeout"], ("workloads", i, "timeout"), positions)
        if "regress" in wl:
            regress.append(i)
            out += _regress_messages(wl, i, ext, regress, positions)
            continue
        text = _workload_sql(wl, i, base, positions, out)
        if text is not None:
            sql_texts[i] = text
            out += _sql_messages(wl, i, text, positions)
    thresholds = dict(DEFAULT_THRESHOLDS)
    for key, value in (doc.get("thresholds") or {}).items():
        thresholds[key] = parse_bytes(value)
        if thresholds[key] > MAX_THRESHOLD_BYTES:
            problem(("thresholds", key), f"{value!r} is too large: at most {MAX_THRESHOLD_BYTES} bytes (2GB - 1)")
    if not thresholds["min_leak_bytes"] <= thresholds["warning_bytes"] <= thresholds["error_bytes"]:
        problem(("thresholds",), "need min_leak_bytes <= warning_bytes <= error_bytes")
    for i, sup in enumerate(doc.get("suppressions", [])):
        if "expiry" in sup:
            try:
                dt.date.fromisoformat(sup["expiry"])
            except ValueError:
                problem(("suppressions", i, "expiry"), f"not a date: {sup['expiry']!r}")
    return out


# psql meta-commands that only change what psql shows or where its output goes: setup skips them (the server
# never sees a meta-command). Any other one (\\connect, \\i, \\copy, \\gset, \\if...) is refused.
SETUP_SKIPPED_META = ("set", "unset", "pset", "echo", "qecho", "warn", "timing", "t", "a", "x", "H", "C", "f", "T",
                      "o", "out", "errverbose", "conninfo")


def _setup_statements(doc: Dict[str, Any],
                      positions: _Positions) -> Tuple[List[Tuple[str, int]], List[Tuple[int, str]]]:
    """setup split into statements as psql splits a script (reporter/sqltext.py), each with its line in the
    file; and the problems (meta-commands that are not display settings)."""
    setup = doc.get("setup", ())
    entries = [(("setup",), setup)] if isinstance(setup, str) else [(("setup", i), t) for i, t in enumerate(setup)]
    statements: List[Tuple[str, int]] = []
    problems: List[Tuple[int, str]] = []
    for where, text in entries:
        start = positions.text_lines.get(where)

        def line_of(relative: int, where: PathKey = where, start: int | None = start) -> int:
            return start + relative - 1 if start is not None else positions.line_of(where)

        for item in sqltext.script(str(text)):
            if isinstance(item, sqltext.Statement):
                statements.append((item.text, line_of(item.line)))
            elif item.name not in SETUP_SKIPPED_META:
                problems.append((line_of(item.line), f"{key_path(where)}: psql meta-command {item.text.split()[0]} "
                                                     "cannot run here: setup is sent to the server one statement "
                                                     "at a time, not through psql (display settings such as "
                                                     "\\set ECHO or \\pset are skipped); write it as SQL"))
    return statements, problems


def _regress_messages(wl: Dict[str, Any], i: int, ext: Dict[str, Any], seen: List[int],
                      positions: _Positions) -> List[Tuple[int, str]]:
    """A regress entry runs the extension's `make installcheck`: it needs the extension's directory, and runs
    its SQL through psql, so the options of sql/file workloads do not apply."""
    out: List[Tuple[int, str]] = []
    where = ("workloads", i, "regress")
    if "path" not in ext:
        out.append((positions.line_of(where), f"{key_path(where)}: runs the extension's regression suite (`make "
                                              "installcheck`), so it needs extension.path, the directory of the "
                                              "extension's Makefile"))
    if len(seen) > 1:
        out.append((positions.line_of(where), f"{key_path(where)}: the regression suite is already run by "
                                              f"workloads[{seen[0]}]; list it once"))
    for key, why in (("scenario", "a regression test file is run by psql, not by ext_memcheck.run_scenario()"),
                     ("protocol", "a regression test file is sent by psql the way pg_regress sends it")):
        if key in wl:
            at = ("workloads", i, key)
            out.append((positions.line_of(at), f"{key_path(at)}: not with regress: {why}"))
    return out


def _timeout_messages(value: Any, where: PathKey, positions: _Positions) -> List[Tuple[int, str]]:
    seconds = parse_duration(value)
    if math.isfinite(seconds) and MIN_TIMEOUT_S <= seconds <= MAX_TIMEOUT_S:
        return []
    return [(positions.line_of(where), f"{key_path(where)}: {value!r} is out of range: a timeout is at least "
                                       f"1ms and at most {MAX_TIMEOUT_S}s")]


def _workload_sql(
    wl: Dict[str, Any], i: int, base: Path, positions: _Positions, out: List[Tuple[int, str]]
) -> str | None:
    """The workload's SQL text; for `file`, read strictly as UTF-8 (a problem is added when it cannot be)."""
    if "sql" in wl:
        text = str(wl["sql"])
        where = ("workloads", i, "sql")
        if "\x00" in text:
            at = text.index("\x00")
            out.append((positions.line_of(where), f"{key_path(where)}: a NUL character at offset {at} (line "
                                                  f"{text.count(chr(10), 0, at) + 1} of the SQL): {_NUL_WHY}"))
            return None
        return text
    where = ("workloads", i, "file")
    sql_file = _resolve(base / wl["file"])
    try:
        raw = files.read_regular(sql_file, MAX_SQL_FILE_BYTES, "workload's SQL file")
    except files.FileProblem as exc:
        reason = "file not found" if exc.reason == "no such file or directory" else exc.reason
        out.append((positions.line_of(where), f"{key_path(where)}: {reason}: {sql_file}"))
        return None
    if b"\x00" in raw:
        at = raw.index(b"\x00")
        line = raw.count(b"\n", 0, at) + 1
        out.append((positions.line_of(where), f"{key_path(where)}: {sql_file}:{line}: a NUL byte at byte offset "
                                              f"{at}: {_NUL_WHY}"))
        return None
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        line = raw.count(b"\n", 0, exc.start) + 1
        out.append((positions.line_of(where),
                    f"{key_path(where)}: {sql_file}:{line}: not UTF-8 text (byte 0x{raw[exc.start]:02x})"))
        return None


# C0 controls (tab included), DEL and C1 controls: none belongs in a postgresql.conf line.
_CONTROL = re.compile("[\x00-\x1f\x7f-\x9f]")
# Why SQL with a NUL in it is refused: libpq sends a query as a C string, so the SQL would silently end there.
_NUL_WHY = "PostgreSQL takes SQL as a C string, so everything after it would silently not run"


def _resolve(path: Path) -> Path:
    """Absolute, symbolic links resolved as far as they go (a link loop is left for the reader to report,
    instead of Path.resolve's RuntimeError)."""
    return Path(os.path.realpath(path))


def _sql_messages(wl: Dict[str, Any], i: int, text: str, positions: _Positions) -> List[Tuple[int, str]]:
    """SQL that cannot run the way this workload runs it, named by file, line and key."""
    key = "file" if "file" in wl else "sql"
    where = ("workloads", i, key)
    statements = sqltext.split(text)

    def at(stmt: sqltext.Statement) -> Tuple[int, str]:
        """The line to report and how to name the statement: in the SQL file, or inside memcheck.yml."""
        first = " ".join(stmt.words[:2])
        if key == "file":
            return positions.line_of(where), f"{key_path(where)}: {wl['file']}:{stmt.line}: {first}"
        start = positions.text_lines.get(where)
        line = start + stmt.line - 1 if start is not None else positions.line_of(where)
        return line, f"{key_path(where)}: {first}"

    out: List[Tuple[int, str]] = []
    if not statements:
        return [(positions.line_of(where), f"{key_path(where)}: no SQL statement in it")]
    for stmt in statements:
        if sqltext.copy_with_client(stmt):
            line, name = at(stmt)
            out.append((line, f"{name}: COPY FROM STDIN / TO STDOUT needs a client to send or take the data, "
                              "which a workload has not; COPY from or to a file, or use INSERT/SELECT"))
        elif "scenario" in wl and sqltext.transaction_control(stmt):
            line, name = at(stmt)
            out.append((line, f"{name}: transaction control cannot run inside ext_memcheck.run_scenario(), "
                              "which runs each iteration inside one statement (tx_abort_loop already rolls "
                              "every iteration back)"))
    if "scenario" in wl and "protocol" in wl:
        where_p = ("workloads", i, "protocol")
        out.append((positions.line_of(where_p), f"{key_path(where_p)}: a scenario runs its SQL inside "
                                                "ext_memcheck.run_scenario(), so no client protocol applies"))
    protocol = wl.get("protocol", DEFAULT_PROTOCOL)
    if protocol != "simple" and len(statements) > 1:
        line, name = at(statements[1])
        out.append((line, f"{name}: protocol '{protocol}' sends one statement at a time; this workload has "
                          f"{len(statements)} (split it into several workloads or use protocol: simple)"))
    return out


def _build(
    doc: Dict[str, Any], path: Path, raw: bytes, positions: _Positions, sql_texts: Dict[int, str]
) -> Config:
    base = path.parent
    extension = None
    if "extension" in doc:
        ext = doc["extension"]
        extension = Extension(
            name=ext["name"],
            path=_resolve(base / ext["path"]) if "path" in ext else None,
            preload=ext.get("preload", True),
            create=ext.get("create"),
            make_args=tuple(ext.get("make_args", ())),
        )
    setup = _setup_statements(doc, positions)[0]
    workloads = []
    for i, wl in enumerate(doc["workloads"]):
        sql_file = _resolve(base / wl["file"]) if "file" in wl else None
        regress = "regress" in wl
        sql = "" if regress else sql_texts[i]
        mode = wl.get("mode", "all")
        kind = "regress" if regress else "scenario" if "scenario" in wl else ("file" if sql_file else "sql")
        workloads.append(
            Workload(
                name=wl.get("name", REGRESS_NAME),
                kind=kind,
                sql=sql,
                scenario=wl.get("scenario"),
                iterations=wl.get("iterations", DEFAULT_REGRESS_ITERATIONS if regress else 1),
                mode=vocab.MODE_ALIASES.get(mode, mode),
                context_pattern=wl.get("context_pattern", ""),
                allowed_contexts=tuple(wl.get("allowed_contexts", ())),
                timeout_s=parse_duration(wl["timeout"]) if "timeout" in wl else DEFAULT_TIMEOUT_S,
                file=sql_file,
                protocol=wl.get("protocol", DEFAULT_PROTOCOL),
                concurrency=wl.get("concurrency", 1),
                named="name" in wl,
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
        setup=tuple(text for text, _ in setup),
        workloads=tuple(workloads),
        thresholds={
            **DEFAULT_THRESHOLDS,
            **{k: parse_bytes(v) for k, v in (doc.get("thresholds") or {}).items()},
        },
        fail_on=doc.get("fail-on", DEFAULT_FAIL_ON),
        suppressions=suppressions,
        preload=tuple(doc.get("preload", ())),
        lines={key_path(p): line for p, line in positions.lines.items()},
        setup_lines=tuple(line for _, line in setup),
    )
