"""The `--temp-config` files of an extension's REGRESS_OPTS / ISOLATION_OPTS, read as the server would read them.

pg_regress appends these files to the postgresql.conf of the temporary instance it makes for `make check`, and
ignores them for `make installcheck` against a running server: the private cluster is that instance, so their
settings become its configuration. This module reads the postgresql.conf syntax (`name [=] value`, quoted
values with '' and backslash escapes, `#` comments) and decides what applies:

- shared_preload_libraries is merged with the runner's list (the caller puts pg_ext_memcheck in it too);
- what keeps the cluster private and what the runner reads crashes from (connection, file locations,
  logging; config.RESERVED_SETTINGS minus the library settings) is left out, each with a note saying so;
- `include` directives are left out with a note (a test configuration is one file in practice);
- everything else is a setting of the cluster; memcheck.yml's `settings` still win over it.

No server and no make: pure text in, a TempConfig out; a file that cannot be read or parsed is a ConfigError
naming the file and the line.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Dict, List, Optional, Sequence, Tuple

from reporter.config import RESERVED_SETTINGS, ConfigError

PRELOAD = "shared_preload_libraries"
# Library settings the extension's own test configuration may set (memcheck.yml may not: there `preload` says it).
_LIBRARY_SETTINGS = ("shared_preload_libraries", "local_preload_libraries", "session_preload_libraries",
                     "dynamic_library_path", "jit_provider")
RUNNER_OWNS = {name: why for name, why in RESERVED_SETTINGS.items() if name not in _LIBRARY_SETTINGS}
_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_$]*(?:\.[A-Za-z_][A-Za-z0-9_$]*)*")
_INCLUDES = ("include", "include_if_exists", "include_dir")


@dataclass(frozen=True)
class TempConfig:
    """What the suite's --temp-config files ask of the server."""

    settings: Dict[str, str] = field(default_factory=dict)  # lower-cased name -> value; the last one wins
    preload: Tuple[str, ...] = ()  # their shared_preload_libraries, in order
    files: Tuple[Path, ...] = ()
    notes: Tuple[str, ...] = ()  # what was left out, and why


def parse(text: str, source: str) -> List[Tuple[int, str, str]]:
    """(line, name, value) of each setting line of postgresql.conf text; ConfigError naming source:line."""
    out: List[Tuple[int, str, str]] = []
    for number, raw in enumerate(text.splitlines(), 1):
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        match = _NAME.match(line)
        if not match:
            raise ConfigError([f"{source}:{number}: not a setting line: {raw.strip()!r}"])
        name, rest = match.group(0), line[match.end():].lstrip()
        if rest.startswith("="):
            rest = rest[1:].lstrip()
        value, after = _value(rest, source, number)
        after = after.strip()
        if after and not after.startswith("#"):
            raise ConfigError([f"{source}:{number}: {name}: unexpected text after the value: {after!r}"])
        out.append((number, name, value))
    return out


def _value(text: str, source: str, number: int) -> Tuple[str, str]:
    """The value at the start of text (quoted or one bare token) and what follows it."""
    if not text.startswith("'"):
        match = re.match(r"[^\s#]*", text)
        token = match.group(0) if match else ""
        if not token:
            raise ConfigError([f"{source}:{number}: a setting without a value"])
        return token, text[len(token):]
    out: List[str] = []
    i = 1
    escapes = {"b": "\b", "f": "\f", "n": "\n", "r": "\r", "t": "\t"}
    while i < len(text):
        ch = text[i]
        if ch == "\\" and i + 1 < len(text):
            out.append(escapes.get(text[i + 1], text[i + 1]))
            i += 2
        elif ch == "'":
            if text.startswith("''", i):
                out.append("'")
                i += 2
            else:
                return "".join(out), text[i + 1:]
        else:
            out.append(ch)
            i += 1
    raise ConfigError([f"{source}:{number}: unterminated quoted value"])


def libraries(value: str) -> List[str]:
    """A shared_preload_libraries value as a list (commas, optional quotes and spaces around each name)."""
    names = [part.strip().strip('"').strip() for part in value.split(",")]
    return [n for n in names if n]


def read(paths: Sequence[Path]) -> TempConfig:
    """The files in order (a later file's setting wins, as appended lines do); ConfigError when one cannot be
    read or parsed."""
    settings: Dict[str, str] = {}
    preload: List[str] = []
    notes: List[str] = []
    for path in paths:
        try:
            text = Path(path).read_text(encoding="utf-8")
        except (OSError, UnicodeDecodeError) as exc:
            raise ConfigError([f"{path}: cannot read this --temp-config file: {exc}"]) from None
        for number, name, value in parse(text, str(path)):
            key = name.lower()
            where = f"{path}:{number}"
            if key in _INCLUDES:
                notes.append(f"{where}: {name} {value!r} left out: pg-ext-memcheck reads the --temp-config files "
                             "themselves, not what they include")
            elif key in RUNNER_OWNS:
                notes.append(f"{where}: {name} left out: {RUNNER_OWNS[key]}")
            elif key == PRELOAD:
                preload += [lib for lib in libraries(value) if lib not in preload]
            else:
                settings.pop(key, None)  # keep the order of the last assignment
                settings[key] = value
    return TempConfig(settings, tuple(preload), tuple(Path(p) for p in paths), tuple(notes))


def temp_config_paths(options: Sequence[str], directory: Path, source: str) -> List[Path]:
    """The --temp-config files of pg_regress options (`--temp-config=F` or `--temp-config F`), relative paths
    from the Makefile's directory (where make runs pg_regress). A dual Makefile names its file through
    contrib's tree ($(top_srcdir)/contrib/NAME/NAME.conf), which PGXS does not have: then the file of that
    name in the Makefile's own directory is taken. ConfigError (naming `source`) when a file is found nowhere."""
    out: List[Path] = []
    args = list(options)
    for i, arg in enumerate(args):
        value: Optional[str] = None
        if arg.startswith("--temp-config="):
            value = arg.split("=", 1)[1]
        elif arg == "--temp-config" and i + 1 < len(args):
            value = args[i + 1]
        if value is None:
            continue
        path = Path(value) if Path(value).is_absolute() else directory / value
        if not path.is_file() and (directory / path.name).is_file():
            path = directory / path.name
        if not path.is_file():
            raise ConfigError([f"{source}: --temp-config {value}: no such file (relative paths start at the "
                               f"Makefile's directory {directory})"])
        out.append(path)
    return out
