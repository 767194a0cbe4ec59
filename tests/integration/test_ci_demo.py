""".ci/demo's setup path, for real, in a cache directory of its own: it makes a venv and installs no PostgreSQL
but Debian's 15 (the demo needs one; the source builds, the wheel and the trixie tree are for .ci/run)."""

from __future__ import annotations

import os
import re
import subprocess
from pathlib import Path
from typing import Set

import pytest

pytestmark = pytest.mark.integration

REPO_ROOT = Path(__file__).resolve().parents[2]


def installed_postgresql_packages() -> Set[str]:
    proc = subprocess.run(["dpkg-query", "-W", "-f=${Package} ${db:Status-Status}\n", "postgresql*"],
                          capture_output=True, text=True, check=False)
    return {line.split()[0] for line in proc.stdout.splitlines() if line.endswith(" installed")}


def test_demo_setup_in_a_clean_cache_installs_postgresql_15_only(tmp_path: Path) -> None:
    cache = tmp_path / "cache"
    cache.mkdir()
    before = installed_postgresql_packages()
    env = {k: v for k, v in os.environ.items() if k not in ("VIRTUAL_ENV", "PG_EXT_MEMCHECK_PG_CONFIGS")}
    env["PG_EXT_MEMCHECK_CACHE"] = str(cache)
    proc = subprocess.run(
        ["bash", "-c", '. .ci/setup.sh; ci_setup_demo; echo "configs=$PG_EXT_MEMCHECK_PG_CONFIGS venv=$VIRTUAL_ENV"'],
        cwd=REPO_ROOT, env=env, capture_output=True, text=True, stdin=subprocess.DEVNULL, timeout=900, check=False,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    configs, venv = re.fullmatch(r"configs=(\S*) venv=(\S*)", proc.stdout.splitlines()[-1]).groups()
    assert configs == "/usr/lib/postgresql/15/bin/pg_config"
    assert Path(venv).parent == cache and (Path(venv) / "bin" / "pg-ext-memcheck").is_file()

    # Nothing installed into the cache but the venv: no source build, no wheel, no Debian tree.
    assert [p.name for p in cache.iterdir()] == [Path(venv).name]
    assert re.findall(r"install-postgres (\S+)", proc.stderr) == ["15"]
    apt_line = next(line for line in proc.stderr.splitlines() if "apt" in line and "postgresql-15" in line)
    assert set(re.findall(r"postgresql-(?:server-dev-)?(\d+)", apt_line)) == {"15"}
    assert not re.search(r"debootstrap|bubblewrap|bison", apt_line)
    new = installed_postgresql_packages() - before
    assert {p for p in new if re.search(r"-\d+$", p) and not p.endswith("-15")} == set(), new
