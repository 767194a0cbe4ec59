"""PgConfig: facts from a pg_config, and clear errors for paths that are not one."""

from __future__ import annotations

import dataclasses
import os
import re
import stat
from pathlib import Path

import pytest

from reporter.pgconfig import PgConfig, PgConfigError

GOOD_OUTPUT = """PostgreSQL 15.18 (Debian 15.18-0+deb12u1)
/usr/lib/postgresql/15/bin
/usr/lib/x86_64-linux-gnu
/usr/lib/postgresql/15/lib
/usr/share/postgresql/15
/usr/include/postgresql/15/server
"""


def fake_pg_config(tmp_path: Path, output: str, status: int = 0, name: str = "pg_config") -> Path:
    """An executable that prints `output` whatever the options, like a pg_config would for ours."""
    data = tmp_path / f"{name}.out"
    data.write_text(output)
    script = tmp_path / name
    script.write_text(f"#!/bin/sh\ncat '{data}'\nexit {status}\n")
    script.chmod(0o755)
    return script


def test_from_path_reads_every_field(tmp_path: Path) -> None:
    cfg = PgConfig.from_path(fake_pg_config(tmp_path, GOOD_OUTPUT))
    assert cfg == PgConfig(
        path=str(tmp_path / "pg_config"),
        version="15.18",
        major=15,
        bindir="/usr/lib/postgresql/15/bin",
        libdir="/usr/lib/x86_64-linux-gnu",
        pkglibdir="/usr/lib/postgresql/15/lib",
        sharedir="/usr/share/postgresql/15",
        includedir_server="/usr/include/postgresql/15/server",
    )
    assert cfg.postgres == "/usr/lib/postgresql/15/bin/postgres"
    with pytest.raises(dataclasses.FrozenInstanceError, match="cannot assign to field 'major'"):
        cfg.major = 16  # type: ignore[misc]


def test_options_are_asked_in_the_order_parse_expects(tmp_path: Path) -> None:
    # A pg_config that answers per option, so a change in the option order would show up as swapped fields.
    answers = {
        "--version": "PostgreSQL 18.1",
        "--bindir": "/pg/bin",
        "--libdir": "/pg/lib",
        "--pkglibdir": "/pg/lib/postgresql",
        "--sharedir": "/pg/share",
        "--includedir-server": "/pg/include/server",
    }
    cases = "\n".join(f'    {opt}) echo "{val}" ;;' for opt, val in answers.items())
    script = tmp_path / "pg_config"
    body = f'for a in "$@"; do\n  case "$a" in\n{cases}\n    *) exit 1 ;;\n  esac\ndone\n'
    script.write_text("#!/bin/sh\n" + body)
    script.chmod(0o755)
    cfg = PgConfig.from_path(str(script))
    assert (cfg.version, cfg.major, cfg.bindir, cfg.pkglibdir, cfg.includedir_server) == (
        "18.1", 18, "/pg/bin", "/pg/lib/postgresql", "/pg/include/server"
    )


@pytest.mark.parametrize(
    ("line", "version", "major"),
    [
        ("PostgreSQL 13.16", "13.16", 13),
        ("PostgreSQL 18beta1", "18beta1", 18),
        ("PostgreSQL 19devel", "19devel", 19),
        ("PostgreSQL 15.20 (Debian 15.20-0+deb12u1)", "15.20", 15),
    ],
)
def test_version_forms(line: str, version: str, major: int) -> None:
    cfg = PgConfig.parse("/x/pg_config", GOOD_OUTPUT.replace(GOOD_OUTPUT.splitlines()[0], line))
    assert (cfg.version, cfg.major) == (version, major)


def test_missing_path_is_named(tmp_path: Path) -> None:
    missing = tmp_path / "nope" / "pg_config"
    with pytest.raises(PgConfigError, match="does not exist") as exc:
        PgConfig.from_path(missing)
    assert str(missing) in str(exc.value)
    assert isinstance(exc.value, ValueError)


def test_not_executable(tmp_path: Path) -> None:
    script = fake_pg_config(tmp_path, GOOD_OUTPUT)
    script.chmod(script.stat().st_mode & ~(stat.S_IXUSR | stat.S_IXGRP | stat.S_IXOTH))
    if os.access(script, os.X_OK):  # pragma: no cover - only when the mode bits are not honoured
        pytest.fail("chmod -x did not take effect; cannot test the non-executable case")
    with pytest.raises(PgConfigError, match="not an executable file"):
        PgConfig.from_path(script)


def test_directory_is_rejected(tmp_path: Path) -> None:
    with pytest.raises(PgConfigError, match="not an executable file"):
        PgConfig.from_path(tmp_path)


@pytest.mark.parametrize(
    "output",
    [
        "hello world\n",
        GOOD_OUTPUT.replace("PostgreSQL 15.18", "MySQL 8.0"),
        GOOD_OUTPUT.replace("/usr/share/postgresql/15", "share/postgresql/15"),
        "",
        GOOD_OUTPUT + "/extra\n",
    ],
    ids=["garbage", "not-postgres", "relative-dir", "empty", "extra-line"],
)
def test_garbage_output(tmp_path: Path, output: str) -> None:
    script = fake_pg_config(tmp_path, output)
    with pytest.raises(PgConfigError, match=re.escape(str(script))):
        PgConfig.from_path(script)


def test_failing_pg_config(tmp_path: Path) -> None:
    with pytest.raises(PgConfigError, match="exited with status 3"):
        PgConfig.from_path(fake_pg_config(tmp_path, GOOD_OUTPUT, status=3))


def test_binary_that_cannot_be_exec_ed(tmp_path: Path) -> None:
    blob = tmp_path / "pg_config"
    blob.write_bytes(b"\x00\x01\x02 not an ELF")
    blob.chmod(0o755)
    with pytest.raises(PgConfigError, match="could not be run"):
        PgConfig.from_path(blob)
