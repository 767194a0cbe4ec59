"""results.json: the typed shape, validation against the shipped JSON Schema, loading and writing."""

from __future__ import annotations

import json
import math
from functools import lru_cache
from importlib import resources
from pathlib import Path
from typing import Any, Dict, List, Optional, TypedDict

import jsonschema

from reporter import files

SCHEMA_VERSION = 2  # what the runner writes; load() accepts every version in READABLE_VERSIONS
READABLE_VERSIONS = (1, 2)
# Violation fields added in schema version 2 (absent from version-1 files; upgrade() fills them in memory).
V2_VIOLATION_FIELDS = ("lifetime", "verdict", "rate", "calls", "rows", "occurrences", "entry", "sites", "finding_id")


class Site(TypedDict, total=False):
    lib: str  # library file name, e.g. "buggy_pg_ext.so"
    offset: str  # "0x1a2b": a return address minus the library's load base
    bytes: int
    count: int
    function: Optional[str]  # added by the reporter when it resolves the address
    file: Optional[str]
    line: Optional[int]


class Rate(TypedDict):
    bytes: float
    unit: str  # vocab.RATE_UNITS


class Violation(TypedDict):
    check_type: str
    severity: str
    context: Optional[str]
    context_path: Optional[str]
    depth: Optional[int]
    used_delta: Optional[int]
    allocated_delta: Optional[int]
    bytes_per_iteration: Optional[float]
    iterations: Optional[int]
    source_lib: Optional[str]
    phase: Optional[str]
    detail: str
    backend_pid: Optional[int]
    ts: Optional[str]
    samples: Optional[List[int]]
    suppressed_by: Optional[str]
    lifetime: Optional[str]  # vocab.LIFETIMES
    verdict: Optional[str]  # vocab.VERDICTS
    rate: Optional[Rate]
    calls: Optional[int]
    rows: Optional[int]
    occurrences: Optional[int]
    entry: Optional[str]
    sites: Optional[List[Site]]
    finding_id: Optional[str]


class Workload(TypedDict):
    name: str
    kind: str
    status: str
    iterations: int
    duration_s: float
    mode: str
    error: Optional[Dict[str, Optional[str]]]
    log_excerpt: Optional[str]
    dropped: int
    suppressed: int
    scenario: Optional[Dict[str, Any]]
    violations: List[Violation]


Results = Dict[str, Any]  # top level; see reporter/schemas/results.schema.json


class ResultsError(Exception):
    """A results.json that cannot be used: names the file and what is wrong."""


@lru_cache(maxsize=1)
def schema() -> Dict[str, Any]:
    text = resources.files("reporter").joinpath("schemas/results.schema.json").read_text(encoding="utf-8")
    return json.loads(text)


def validation_errors(doc: Any) -> List[str]:
    """Every schema violation as 'path: message', empty when the document is valid."""
    validator = jsonschema.Draft202012Validator(schema(), format_checker=jsonschema.FormatChecker())
    out = []
    for err in sorted(validator.iter_errors(doc), key=lambda e: list(e.absolute_path)):
        where = "/".join(str(p) for p in err.absolute_path) or "(top level)"
        out.append(f"{where}: {err.message}")
    return out


def validate(doc: Any, source: str = "results.json") -> None:
    errors = validation_errors(doc)
    if errors:
        raise ResultsError(f"{source}: not a valid results file: " + "; ".join(errors[:5]))


# A results file is machine-written: integers fit a PostgreSQL bigint, numbers are finite, nesting is shallow.
# Anything else is a crafted or corrupt file, refused with its name before a renderer sees it.
_INT_LIMIT = 2**63
MAX_DEPTH = 32


def _parse_int(text: str) -> int:
    if len(text.lstrip("-")) > 19 or not -_INT_LIMIT <= int(text) < _INT_LIMIT:
        raise ValueError(f"integer out of range: {text[:30]}{'...' if len(text) > 30 else ''}")
    return int(text)


def _parse_float(text: str) -> float:
    value = float(text)
    if not math.isfinite(value):
        raise ValueError(f"number out of range: {text[:30]}")
    return value


def _parse_constant(name: str) -> Any:
    raise ValueError(f"{name} is not valid JSON")


def _check_depth(doc: Any) -> None:
    stack = [(doc, 1)]
    while stack:
        value, depth = stack.pop()
        if depth > MAX_DEPTH:
            raise ValueError(f"nested more than {MAX_DEPTH} levels deep")
        if isinstance(value, dict):
            stack.extend((v, depth + 1) for v in value.values())
        elif isinstance(value, list):
            stack.extend((v, depth + 1) for v in value)


def parse(text: str) -> Any:
    """json.loads for results files: ValueError (with the line when known) for what a results file never holds."""
    try:
        doc = json.loads(text, parse_int=_parse_int, parse_float=_parse_float, parse_constant=_parse_constant)
    except RecursionError:
        raise ValueError(f"nested more than {MAX_DEPTH} levels deep") from None
    _check_depth(doc)
    return doc


def load(path: Path) -> Results:
    """Read and validate one results.json (or a directory holding one)."""
    path = Path(path)
    if path.is_dir():
        path = path / "results.json"
    try:
        text = files.read_regular(path).decode("utf-8")
    except files.FileProblem as exc:
        raise ResultsError(str(exc) if exc.reason != "no such file or directory" else f"{path}: no such file") \
            from None
    except UnicodeDecodeError as exc:
        raise ResultsError(f"{path}: not UTF-8 text (byte offset {exc.start})") from None
    try:
        doc = parse(text)
    except json.JSONDecodeError as exc:
        raise ResultsError(f"{path}: line {exc.lineno}: invalid JSON: {exc.msg}") from exc
    except ValueError as exc:
        raise ResultsError(f"{path}: not a valid results file: {exc}") from None
    validate(doc, str(path))
    return upgrade(doc)


def upgrade(doc: Results) -> Results:
    """Fill in what an older (valid) file lacks, in place, so readers see one shape; returns doc.

    Version 1 had only `bytes_per_iteration`: outside a scenario it was a per-call figure over `iterations`
    calls (the statement-level check), inside one a per-iteration slope. The new fields are null otherwise.
    """
    doc["postgresql"].setdefault("pkglibdir", None)
    for workload in doc["workloads"]:
        for v in workload["violations"]:
            if "rate" in v:
                continue
            per = v.get("bytes_per_iteration")
            unit = "iteration" if v.get("phase") == "scenario" else "call"
            v["rate"] = None if per is None else {"bytes": per, "unit": unit}
            v.setdefault("calls", v.get("iterations") if per is not None and unit == "call" else None)
            for name in V2_VIOLATION_FIELDS:
                v.setdefault(name, [] if name == "sites" else None)  # type: ignore[misc]
    return doc


def current_violations(workload: Dict[str, Any]) -> List[Dict[str, Any]]:
    """The workload's violations with superseded updates dropped.

    Rows that share a `finding_id` are successive updates of one finding of the C side: the last one wins (it
    stands at the position of the first). results.json keeps every row; readers count only these.
    """
    rows = workload["violations"]
    last: Dict[str, int] = {}
    for n, v in enumerate(rows):
        fid = v.get("finding_id")
        if fid:
            last[fid] = n
    if not last:
        return rows
    out: List[Dict[str, Any]] = []
    placed: set = set()
    for v in rows:
        fid = v.get("finding_id")
        if not fid:
            out.append(v)
        elif fid not in placed:
            placed.add(fid)
            out.append(rows[last[fid]])
    return out


def dump(doc: Results, path: Path) -> None:
    """Validate, then write atomically so a reader never sees half a file (files.write_atomic: a temporary file
    of our own, never a symbolic link planted in the directory; nothing left behind when the disk is full)."""
    validate(doc, str(path))
    try:
        files.write_atomic(path, (json.dumps(doc, indent=2, sort_keys=False) + "\n").encode("utf-8"))
    except files.FileProblem as exc:
        raise ResultsError(str(exc)) from None


def github_context(environ: Dict[str, str] | None = None) -> Dict[str, Any]:
    """The `github` block from GITHUB_* variables and the event payload; null where absent or malformed.

    Values are validated (PR number numeric, SHA 40 hex) because the publish step builds API URLs from them.
    """
    import os
    import re

    env = os.environ if environ is None else environ
    event: Dict[str, Any] = {}
    event_path = env.get("GITHUB_EVENT_PATH")
    if event_path:
        try:
            loaded = json.loads(Path(event_path).read_text(encoding="utf-8"))
            event = loaded if isinstance(loaded, dict) else {}
        except (OSError, ValueError):
            event = {}
    pr = event.get("pull_request") if isinstance(event.get("pull_request"), dict) else {}
    pr_number = pr.get("number")
    if isinstance(pr_number, str) and pr_number.isdigit():
        pr_number = int(pr_number)
    if not (isinstance(pr_number, int) and not isinstance(pr_number, bool) and pr_number >= 1):
        pr_number = None
    # On pull_request events GITHUB_SHA is the merge commit; the PR's head is what reviewers see.
    head = pr.get("head") if isinstance(pr.get("head"), dict) else {}
    sha = head.get("sha") or env.get("GITHUB_SHA")
    sha = sha.lower() if isinstance(sha, str) and re.fullmatch(r"[0-9a-fA-F]{40}", sha) else None
    run_id = env.get("GITHUB_RUN_ID")
    attempt = env.get("GITHUB_RUN_ATTEMPT")
    return {
        "repository": env.get("GITHUB_REPOSITORY") or None,
        "pr_number": pr_number,
        "head_sha": sha,
        "run_id": run_id if run_id and run_id.isdigit() else None,
        "run_attempt": int(attempt) if attempt and attempt.isdigit() and int(attempt) >= 1 else None,
        "workflow": env.get("GITHUB_WORKFLOW") or None,
    }
