"""Fixtures for running action.yml: a workspace holding the buggy example, a runner base directory."""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import Iterator

import pytest
from harness import REPO_ROOT, copy_action, make_base_dir


@pytest.fixture
def base_dir() -> Iterator[Path]:
    base = make_base_dir()
    yield base
    shutil.rmtree(base, ignore_errors=True)


@pytest.fixture
def workspace(base_dir: Path) -> Path:
    """The caller's checkout: the buggy example extension at examples/buggy_pg_ext (copied, so builds never
    touch the working tree)."""
    ws = base_dir / "workspace"
    ws.mkdir()
    ignore = shutil.ignore_patterns("*.o", "*.so", "*.bc", "results", "__pycache__")
    shutil.copytree(REPO_ROOT / "examples" / "buggy_pg_ext", ws / "examples" / "buggy_pg_ext", ignore=ignore)
    return ws


@pytest.fixture(scope="session")
def action_copy(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    """One checkout of the action per session (like the runner's _actions/owner/repo/ref directory)."""
    base = make_base_dir()
    yield copy_action(base / "action")
    shutil.rmtree(base, ignore_errors=True)
