"""Bad input to build/run/check: exit status 2 and a message naming the file, the line and the key."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = pytest.mark.integration

GOOD = "workloads:\n  - name: a\n    sql: SELECT 1\n"


def cli(*args: str, cwd: Path | None = None) -> subprocess.CompletedProcess:
    return subprocess.run(
        # Not `-m reporter.cli`: that would make a second copy of the module (and of UsageError) as __main__.
        [sys.executable, "-c", "import sys; from reporter.cli import main; sys.exit(main())", *args],
        capture_output=True,
        text=True,
        cwd=cwd,
        timeout=600,
    )


def run_with(tmp_path: Path, text: str, pg_config: str) -> subprocess.CompletedProcess:
    cfg = tmp_path / "memcheck.yml"
    cfg.write_text(text)
    return cli("run", "--config", str(cfg), "--pg-config", pg_config, "--output", str(tmp_path / "out"))


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("workloads:\n  - name: a\n    sql: 'unterminated\n", ":3: invalid YAML"),
        (
            GOOD + "    iterashuns: 3\n",
            ":4: workloads[0].iterashuns: unknown key 'iterashuns' (did you mean 'iterations'?)",
        ),
        (
            GOOD + "    iterations: many\n",
            ":4: workloads[0].iterations: wrong type: 'many' is not of type 'integer'",
        ),
        ("workloads:\n  - name: a\n    file: missing.sql\n", ":3: workloads[0].file: file not found: "),
        (GOOD + "fail_on: error\n", ":4: fail_on: unknown key 'fail_on' (did you mean 'fail-on'?)"),
    ],
    ids=["bad-yaml", "unknown-key", "wrong-type", "missing-file", "fail-on-spelling"],
)
def test_config_mistakes(tmp_path: Path, pg_config: str, text: str, expected: str) -> None:
    proc = run_with(tmp_path, text, pg_config)
    assert proc.returncode == 2, proc.stderr
    assert f"{tmp_path / 'memcheck.yml'}{expected}" in proc.stderr
    assert "Traceback" not in proc.stderr
    assert not (tmp_path / "out" / "results.json").exists()


def test_nonexistent_pg_config(tmp_path: Path) -> None:
    proc = run_with(tmp_path, GOOD, "/nonexistent/bin/pg_config")
    assert proc.returncode == 2
    assert "pg_config '/nonexistent/bin/pg_config' does not exist" in proc.stderr
    proc = cli("build", "--pg-config", "/nonexistent/bin/pg_config")
    assert proc.returncode == 2
    assert "does not exist" in proc.stderr


def test_wrong_major_requested(tmp_path: Path, pg_config: str) -> None:
    proc = cli("build", "--pg-config", pg_config, "--expect-major", "9")
    assert proc.returncode == 2
    assert f"{pg_config} is PostgreSQL" in proc.stderr and "but major 9 was requested" in proc.stderr
    proc = run_with(tmp_path, GOOD, pg_config)  # run takes the same check
    cfg = tmp_path / "memcheck.yml"
    proc = cli(
        "run",
        "--config",
        str(cfg),
        "--pg-config",
        pg_config,
        "--output",
        str(tmp_path / "o"),
        "--expect-major",
        "9",
    )
    assert proc.returncode == 2 and "but major 9 was requested" in proc.stderr


def test_pg_config_path_promising_another_major(tmp_path: Path, pg_config: str) -> None:
    # /usr/lib/postgresql/N/bin/pg_config that reports another major: the classic wrong-pg_config mistake.
    fake = tmp_path / "usr" / "lib" / "postgresql" / "9" / "bin"
    fake.mkdir(parents=True)
    os.symlink(pg_config, fake / "pg_config")
    proc = cli("build", "--pg-config", str(fake / "pg_config"))
    assert proc.returncode == 2
    assert "lives under postgresql/9 but reports PostgreSQL" in proc.stderr


def test_missing_extension_dir(tmp_path: Path, pg_config: str) -> None:
    proc = cli("build", "--pg-config", pg_config, "--extension", str(tmp_path / "nope"))
    assert proc.returncode == 2
    nope = tmp_path / "nope"
    assert f"--extension {nope}: not a PGXS extension: {nope}: no such directory" in proc.stderr


def test_usage_errors_exit_2() -> None:
    proc = cli("run", "--config", "x.yml")
    assert proc.returncode == 2
    assert "--pg-config" in proc.stderr


def test_an_extension_that_does_not_compile_is_exit_2_not_1(tmp_path: Path, pg_config: str) -> None:
    """A compile failure is an environment problem (2), never mistaken for findings (1): build, and check
    without a memcheck.yml (the regression suite would have run)."""
    example = Path(__file__).resolve().parents[2] / "examples" / "buggy_pg_ext"
    ext = tmp_path / "broken_ext"
    shutil.copytree(example, ext, ignore=shutil.ignore_patterns("*.o", "*.so", "*.bc", "memcheck.yml"))
    (ext / "buggy_pg_ext.c").write_text((ext / "buggy_pg_ext.c").read_text() + "\nthis is not C;\n")
    proc = cli("build", "--pg-config", pg_config, "--extension", str(ext))
    assert proc.returncode == 2, proc.stderr[-2000:]
    assert f"make build failed for {ext}" in proc.stderr and "Traceback" not in proc.stderr
    proc = cli("check", "--pg-config", pg_config, "--output", str(tmp_path / "out"), cwd=ext)
    assert proc.returncode == 2, proc.stderr[-2000:]
    assert "make build failed" in proc.stderr
    assert not (tmp_path / "out" / "results.json").exists()
