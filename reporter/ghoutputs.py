"""GitHub Actions runner files and workflow commands: $GITHUB_OUTPUT, $GITHUB_STEP_SUMMARY, annotations."""

from __future__ import annotations

import secrets
from dataclasses import dataclass
from pathlib import Path
from typing import Dict, Iterable, List, Mapping, Optional

from reporter.text import escape_controls

MAX_ANNOTATIONS = 10  # the runner keeps 10 per type per step and drops the rest silently
STEP_SUMMARY_LIMIT = 1024 * 1024  # over 1 MiB the runner drops the whole summary


def _delimiter(value: str) -> str:
    while True:
        candidate = f"ghadelimiter_{secrets.token_hex(16)}"
        if candidate not in value:
            return candidate


def format_outputs(values: Mapping[str, str | None]) -> str:
    """Heredoc form for every value, so a newline in a value cannot inject another output."""
    chunks = []
    for name, value in values.items():
        text = "" if value is None else str(value)
        delim = _delimiter(text)
        chunks.append(f"{name}<<{delim}\n{text}\n{delim}\n")
    return "".join(chunks)


def write_outputs(path: Path, values: Mapping[str, str | None]) -> None:
    with open(path, "a", encoding="utf-8") as fh:
        fh.write(format_outputs(values))


def append_step_summary(path: Path, markdown: str) -> None:
    """Append, refusing to push the file past the limit (the runner would drop all of it, silently)."""
    path = Path(path)
    existing = path.stat().st_size if path.exists() else 0
    data = markdown if markdown.endswith("\n") else markdown + "\n"
    if existing + len(data.encode("utf-8")) > STEP_SUMMARY_LIMIT:
        data = ("> [!WARNING]\n> pg-ext-memcheck: the job summary is nearly full; the report is in the "
                "run's artifacts.\n")
        if existing + len(data.encode("utf-8")) > STEP_SUMMARY_LIMIT:
            return  # not even the pointer fits; adding it would make the runner drop everything
    with open(path, "a", encoding="utf-8") as fh:
        fh.write(data)


# ---- workflow commands ---------------------------------------------------------------------------------


@dataclass(frozen=True)
class Annotation:
    kind: str  # error | warning | notice
    message: str
    title: Optional[str] = None
    file: Optional[str] = None  # relative to the workspace, so GitHub shows it on the pull request's diff
    line: Optional[int] = None


def escape_data(text: str) -> str:
    """Text for the message part of a workflow command: it cannot end the line or start another command."""
    return _escape_data(text)


def _escape_data(text: str) -> str:
    """GitHub's escaping, after every control and bidirectional character is shown as an escape: a value a
    user gave (an action input quoted back in an ::error) must not colour the log (ESC) or reorder what a reader
    sees (U+202E)."""
    return escape_controls(text).replace("%", "%25").replace("\r", "%0D").replace("\n", "%0A")


def _escape_property(text: str) -> str:
    return _escape_data(text).replace(":", "%3A").replace(",", "%2C")


def command(kind: str, message: str, title: str | None = None, file: str | None = None,
            line: int | None = None) -> str:
    """`::kind file=F,line=L,title=T::message` with GitHub's escaping of data and of properties."""
    props = []
    if file:
        props.append(f"file={_escape_property(file)}")
        if line:
            props.append(f"line={int(line)}")
    if title:
        props.append(f"title={_escape_property(title)}")
    head = f"::{kind} {','.join(props)}" if props else f"::{kind}"
    return f"{head}::{_escape_data(message)}"


def annotations(items: Iterable[Annotation], limit: int = MAX_ANNOTATIONS, file: Optional[str] = None) -> List[str]:
    """At most `limit` lines per kind (most important first), then one notice saying how many of each kind
    were left out, so nothing vanishes silently (on `file` when given: inside GitHub every annotation has one)."""
    lines: List[str] = []
    shown: Dict[str, int] = {}
    extra: Dict[str, int] = {}
    for a in items:
        # The runner keeps `limit` of each kind: one notice stays free for the "more not shown" line.
        if shown.get(a.kind, 0) < (limit - 1 if a.kind == "notice" else limit):
            shown[a.kind] = shown.get(a.kind, 0) + 1
            lines.append(command(a.kind, a.message, a.title, a.file, a.line))
        else:
            extra[a.kind] = extra.get(a.kind, 0) + 1
    if extra:
        what = " and ".join(f"{n} {kind}{'' if n == 1 else 's'}" for kind, n in extra.items())
        lines.append(command("notice", f"{what} more not shown as annotations; see the job summary.",
                             "pg-ext-memcheck", file))
    return lines


def workflow_file(env: Mapping[str, str]) -> Optional[str]:
    """The running workflow's file, relative to the repository, from GITHUB_WORKFLOW_REF
    (`owner/repo/.github/workflows/memcheck.yml@refs/pull/1/merge`): where an annotation with no other place goes,
    so that inside GitHub every annotation has a file."""
    parts = (env.get("GITHUB_WORKFLOW_REF") or "").split("@", 1)[0].split("/", 2)
    return parts[2] if len(parts) == 3 and parts[2].startswith(".github/") else None
