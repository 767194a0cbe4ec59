"""pg-ext-memcheck installed like any Python tool: the wheel (not an editable install) built from this tree,
installed into a fresh venv, runs the demo (`check --example`) from a directory that is not the checkout,
building the hook library from the sources the wheel carries (reporter/bundled/, see setup.py)."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

pytestmark = pytest.mark.integration

REPO = Path(__file__).resolve().parents[2]


def run(cmd: list, cwd: Path, env: dict) -> subprocess.CompletedProcess:
    return subprocess.run(cmd, cwd=cwd, env=env, capture_output=True, text=True, timeout=900,
                          stdin=subprocess.DEVNULL)


def test_the_wheel_runs_the_demo_from_anywhere(installed_pg_config: str, tmp_path: Path) -> None:
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "VIRTUAL_ENV", "PIP_REQUIRE_VIRTUALENV")}
    # Built from a copy: setuptools writes build/ and *.egg-info next to the sources it builds.
    src = tmp_path / "src"
    shutil.copytree(REPO, src, ignore=shutil.ignore_patterns(".git", "build", "*.egg-info", "__pycache__", ".*cache",
                                                             "*.o", "*.so", "*.bc", "results", "memcheck-results"))
    dist = tmp_path / "dist"
    built = run([sys.executable, "-m", "pip", "wheel", "--no-deps", "--quiet", "--wheel-dir", str(dist), str(src)],
                tmp_path, env)
    assert built.returncode == 0, built.stderr[-3000:]
    (wheel,) = dist.glob("pg_ext_memcheck-*.whl")
    names = zipfile.ZipFile(wheel).namelist()
    for carried in ("reporter/bundled/cext/Makefile", "reporter/bundled/sql/pg_ext_memcheck.control",
                    "reporter/bundled/examples/buggy_pg_ext/memcheck.yml", "reporter/schemas/memcheck.schema.json"):
        assert carried in names, carried
    assert not [n for n in names if n.endswith((".o", ".so"))]

    venv = tmp_path / "venv"
    made = run([sys.executable, "-m", "venv", str(venv)], tmp_path, env)
    assert made.returncode == 0, made.stderr
    installed = run([str(venv / "bin" / "python"), "-m", "pip", "install", "--quiet", "--disable-pip-version-check",
                     str(wheel)], tmp_path, env)
    assert installed.returncode == 0, installed.stderr[-3000:]
    where = run([str(venv / "bin" / "python"), "-c", "import reporter; print(reporter.__file__)"], tmp_path, env)
    assert where.stdout.strip().startswith(str(venv)), where.stdout  # the venv's copy, not the checkout

    elsewhere = tmp_path / "somewhere"
    elsewhere.mkdir()
    demo = run([str(venv / "bin" / "pg-ext-memcheck"), "check", "--example", "--pg-config", installed_pg_config],
               elsewhere, env)
    assert demo.returncode == 1, demo.stdout[-2000:] + demo.stderr[-3000:]  # the example's bugs, on purpose
    assert f"copy of {venv}" in demo.stderr and "/reporter/bundled/cext" in demo.stderr  # built from the wheel
    assert "FAILED: 3 findings (3 ERROR, 0 WARNING, 0 INFO)" in demo.stdout
    doc = json.loads((elsewhere / "memcheck-results" / "results.json").read_text())
    files = {site.get("file") for w in doc["workloads"] for v in w["violations"] for site in v["sites"]}
    assert any(f and f.endswith("/reporter/bundled/examples/buggy_pg_ext/buggy_pg_ext.c") for f in files), files
    module = run([str(venv / "bin" / "python"), "-m", "reporter", "--version"], elsewhere, env)
    assert module.returncode == 0 and module.stdout.startswith("pg-ext-memcheck "), module.stderr
