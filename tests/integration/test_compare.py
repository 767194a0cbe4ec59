"""`check --compare REF` on real clusters: the example as a git repository whose commits switch a bug on and
off in the code (the C default of buggy_pg_ext.bugs), so that only the build differs between base and head.

nested_leak leaks per row on PostgreSQL 13-17; PostgreSQL 18 frees a SQL function's memory per row, so there
func_row_leak (512 B per call in fn_mcxt, every major) is the bug the change introduces.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any, Dict, Iterator, List

import pytest

from reporter import results
from reporter.build import build_all
from reporter.merge import attach_comparison, leg_bases, load_legs
from reporter.pgconfig import PgConfig

pytestmark = pytest.mark.integration

REPO = Path(__file__).resolve().parents[2]
EXAMPLE = REPO / "examples" / "buggy_pg_ext"
CLI = [sys.executable, "-c", "import sys; from reporter.cli import main; sys.exit(main())"]
C_DEFAULT = '"planner_ctx_leak,top_ctx_alloc",\n'  # the GUC's default in DefineCustomStringVariable
CONFIG = """\
extension: {path: ., name: buggy_pg_ext}
setup: |
  CREATE EXTENSION IF NOT EXISTS buggy_pg_ext;
  CREATE FUNCTION two_step(int) RETURNS int LANGUAGE sql AS $$ SELECT 1; SELECT $1 + 1; $$;
workloads:
  - name: per_row_function
    sql: SELECT sum(two_step(g)) FROM generate_series(1, 500) g
  - name: work
    sql: SELECT sum(buggy_pg_ext_work(g)) FROM generate_series(1, 500) g
fail-on: warning
"""


def git(repo: Path, *args: str) -> str:
    proc = subprocess.run(["git", "-C", str(repo), "-c", "user.name=t", "-c", "user.email=t@example.org", *args],
                          capture_output=True, text=True, check=True)
    return proc.stdout.strip()


def set_default_bugs(ext: Path, bugs: str) -> None:
    source = ext / "buggy_pg_ext.c"
    text = source.read_text()
    start = text.index("&bugs_string,\n") + len("&bugs_string,\n")
    end = text.index("\n", start) + 1
    indent = text[start:end][: len(text[start:end]) - len(text[start:end].lstrip())]
    source.write_text(text[:start] + f'{indent}"{bugs}",\n' + text[end:])


class Repo:
    def __init__(self, root: Path, commits: Dict[str, str]) -> None:
        self.root = root
        self.ext = root / "ext"
        self.commits = commits

    def check(self, at: str, *args: str, out: Path) -> subprocess.CompletedProcess:
        git(self.root, "checkout", "-q", "--detach", self.commits[at])
        return subprocess.run([*CLI, "check", "--pg-config", self.pg_config, "--output", str(out), *args],
                              cwd=self.ext, capture_output=True, text=True, timeout=900,
                              env={**os.environ, "COLUMNS": "400"})

    pg_config = ""


@pytest.fixture(scope="module")
def repo(installed_pg_config: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Repo]:
    """Commits: clean (no bug), buggy (the bug on), buggy-again (a comment changed: the same bug), broken (does
    not compile)."""
    major = PgConfig.from_path(installed_pg_config).major
    bug = "nested_leak" if major < 18 else "func_row_leak"
    root = tmp_path_factory.mktemp("compare-repo")
    ext = root / "ext"
    shutil.copytree(EXAMPLE, ext, ignore=shutil.ignore_patterns("*.o", "*.so", "*.bc", "results", "memcheck.yml"))
    assert (ext / "buggy_pg_ext.c").read_text().count(C_DEFAULT) == 1
    (ext / "memcheck.yml").write_text(CONFIG)
    git(root, "init", "-q", "-b", "main")
    commits: Dict[str, str] = {}

    def commit(name: str) -> None:
        git(root, "add", "-A")
        git(root, "commit", "-q", "-m", name)
        commits[name] = git(root, "rev-parse", "HEAD")

    set_default_bugs(ext, "")
    commit("clean")
    set_default_bugs(ext, bug)
    commit("buggy")
    source = ext / "buggy_pg_ext.c"
    source.write_text(source.read_text().replace("A deliberately buggy extension", "A deliberately buggy extension,"))
    commit("buggy-again")
    source.write_text(source.read_text() + "\nthis is not C\n")
    commit("broken")
    r = Repo(root, commits)
    r.pg_config = installed_pg_config
    r.bug = bug  # type: ignore[attr-defined]
    yield r
    git(root, "checkout", "-q", "--detach", commits["clean"])
    # The checks installed the repository's builds (other C defaults) into this PostgreSQL: put the
    # example back for the tests that run after these.
    build_all(installed_pg_config, [EXAMPLE], log=lambda msg: print(msg, file=sys.stderr))


def compared(out: Path, scope: str | None = None) -> Any:
    merged = load_legs([out])
    baseline, label = leg_bases(merged)
    attach_comparison(merged, baseline, scope, label)
    return merged


def where(found: List[Any]) -> List[str]:
    return [f"{f.check_type} {f.where}" for f in found]


def no_worktrees_left(repo: Repo) -> None:
    listed = git(repo.root, "worktree", "list", "--porcelain")
    assert listed.count("worktree ") == 1, listed  # only the repository itself


def test_the_change_that_adds_a_leak_fails_for_it_alone(repo: Repo, tmp_path: Path) -> None:
    proc = repo.check("buggy", "--compare", repo.commits["clean"], out=tmp_path)
    assert proc.returncode == 1, proc.stdout + proc.stderr[-3000:]
    info = json.loads((tmp_path / "base" / "base.json").read_text())
    assert info == {"ref": repo.commits["clean"], "sha": repo.commits["clean"], "status": "ran", "reason": None}
    assert results.load(tmp_path / "base")["workloads"]  # the base ran the same workloads
    c = compared(tmp_path).comparison
    assert len(c.new) == 1 and not c.fixed and not c.worse and not c.unchanged, where(c.new)
    (new,) = c.new
    assert new.check_type == "context_leak" and new.source_lib == "buggy_pg_ext.so"
    assert new.site is not None and new.site["file"].endswith("buggy_pg_ext.c")
    assert f"Compared with {repo.commits['clean'][:12]} on PostgreSQL" in proc.stdout
    assert "1 new, 0 worse, 0 unchanged, 0 fixed" in proc.stdout
    assert "- 1 new or worse finding(s) at or above warning" in proc.stdout
    no_worktrees_left(repo)


def test_the_reverse_change_fixes_it_and_passes(repo: Repo, tmp_path: Path) -> None:
    proc = repo.check("clean", "--compare", repo.commits["buggy"], out=tmp_path)
    assert proc.returncode == 0, proc.stdout + proc.stderr[-3000:]
    c = compared(tmp_path).comparison
    assert not c.new and not c.worse and not c.unchanged
    assert len(c.fixed) == 1 and c.fixed[0].check_type == "context_leak", where(c.fixed)
    assert "0 new, 0 worse, 0 unchanged, 1 fixed" in proc.stdout
    assert "FIXED" in proc.stdout


def test_an_existing_leak_fails_only_with_scope_all(repo: Repo, tmp_path: Path) -> None:
    """The same bug on both sides (only a comment changed): unchanged, so the default scope (new) passes and
    --fail-on-scope all fails on it."""
    proc = repo.check("buggy-again", "--compare", repo.commits["buggy"], out=tmp_path / "new")
    assert proc.returncode == 0, proc.stdout + proc.stderr[-3000:]
    c = compared(tmp_path / "new").comparison
    assert len(c.unchanged) == 1 and not c.new and not c.fixed and not c.worse
    proc = repo.check("buggy-again", "--compare", repo.commits["buggy"], "--fail-on-scope", "all",
                      out=tmp_path / "all")
    assert proc.returncode == 1
    assert "- 1 finding(s) at or above warning" in proc.stdout


def test_a_base_that_does_not_build_is_reported_not_failed(repo: Repo, tmp_path: Path) -> None:
    proc = repo.check("clean", "--compare", repo.commits["broken"], out=tmp_path)
    assert proc.returncode == 0, proc.stdout + proc.stderr[-3000:]  # never a red job by itself
    info = json.loads((tmp_path / "base" / "base.json").read_text())
    assert info["status"] == "skipped" and "make build failed" in info["reason"]
    assert not (tmp_path / "base" / "results.json").exists()
    assert "not compared with the base" in proc.stderr
    assert compared(tmp_path).comparison is None
    no_worktrees_left(repo)


def test_an_unknown_revision_is_reported_not_failed(repo: Repo, tmp_path: Path) -> None:
    proc = repo.check("clean", "--compare", "no-such-branch", out=tmp_path)
    assert proc.returncode == 0, proc.stderr[-3000:]
    info = json.loads((tmp_path / "base" / "base.json").read_text())
    assert info["status"] == "skipped" and "unknown revision 'no-such-branch'" in info["reason"]


def test_a_ref_that_looks_like_an_option_is_refused(repo: Repo, tmp_path: Path) -> None:
    proc = repo.check("clean", "--compare", "--upload-pack=touch /tmp/x", out=tmp_path)
    assert proc.returncode == 2
    assert "not a revision" in proc.stderr and "Traceback" not in proc.stderr
