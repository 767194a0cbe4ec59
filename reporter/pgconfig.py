"""Facts about one PostgreSQL installation, read from its pg_config."""

from __future__ import annotations

import os
import re
import subprocess
from dataclasses import dataclass
from pathlib import Path
from typing import Union

# "PostgreSQL 15.18 (Debian 15.18-0+deb12u1)", "PostgreSQL 18beta1", "PostgreSQL 9.6.24"
_VERSION_RE = re.compile(r"^PostgreSQL (?P<version>(?P<major>\d+)(?:\.\d+)*[A-Za-z0-9]*)(?:\s|$)")

# The order pg_config prints the answers in is the order of the options.
_FIELDS = ("bindir", "libdir", "pkglibdir", "sharedir", "includedir_server")


class PgConfigError(ValueError):
    """A pg_config path that cannot be used; the message names the path and why."""


@dataclass(frozen=True)
class PgConfig:
    path: str
    version: str
    major: int
    bindir: str
    libdir: str
    pkglibdir: str
    sharedir: str
    includedir_server: str

    @classmethod
    def from_path(cls, path: Union[str, os.PathLike[str]]) -> PgConfig:
        path = os.fspath(path)
        p = Path(path)
        if not p.exists():
            raise PgConfigError(f"pg_config {path!r} does not exist")
        if not p.is_file() or not os.access(path, os.X_OK):
            raise PgConfigError(f"pg_config {path!r} is not an executable file")
        options = ["--version"] + ["--" + f.replace("_", "-") for f in _FIELDS]
        try:
            proc = subprocess.run(
                [path, *options], capture_output=True, text=True, timeout=30, check=False
            )
        except (OSError, subprocess.SubprocessError) as exc:
            raise PgConfigError(f"pg_config {path!r} could not be run: {exc}") from exc
        if proc.returncode != 0:
            raise PgConfigError(
                f"pg_config {path!r} exited with status {proc.returncode}: {proc.stderr.strip()[:200]}"
            )
        return cls.parse(path, proc.stdout)

    @classmethod
    def parse(cls, path: str, output: str) -> PgConfig:
        """Build from the output of `pg_config --version --bindir ... --includedir-server`."""
        lines = output.splitlines()
        if len(lines) != 1 + len(_FIELDS):
            raise PgConfigError(
                f"pg_config {path!r} printed {len(lines)} lines, expected {1 + len(_FIELDS)}: "
                f"{output[:200]!r}"
            )
        m = _VERSION_RE.match(lines[0].strip())
        if not m:
            raise PgConfigError(f"pg_config {path!r} printed an unrecognised version: {lines[0][:200]!r}")
        dirs = [line.strip() for line in lines[1:]]
        for name, value in zip(_FIELDS, dirs):
            if not value.startswith("/"):
                raise PgConfigError(f"pg_config {path!r} printed a non-absolute {name}: {value[:200]!r}")
        return cls(path, m.group("version"), int(m.group("major")), *dirs)

    @property
    def postgres(self) -> str:
        """The server binary of this installation."""
        return os.path.join(self.bindir, "postgres")
