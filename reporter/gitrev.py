"""The extension's repository at another revision: resolve a ref, fetch it if the clone lacks it, and check it
out in a temporary git worktree that is removed afterwards.

Every failure is a GitError with git's own words: the caller decides what it means (for a base revision:
the comparison is skipped, never an error of the run).
"""

from __future__ import annotations

import contextlib
import re
import shutil
import subprocess
import tempfile
from pathlib import Path
from typing import Iterator, List

# A ref as users write them (a SHA, main, origin/main, v1.2, HEAD~1, HEAD^): never an option, no spaces.
_REF = re.compile(r"[A-Za-z0-9_][A-Za-z0-9._/@^~{}+-]{0,250}")
_SHA = re.compile(r"[0-9a-f]{40}")


class GitError(Exception):
    """git could not do what was asked; the message says what and git's reason."""


def valid_ref(ref: str) -> bool:
    return bool(_REF.fullmatch(ref)) and ".." not in ref


def _git(repo: Path, *args: str, timeout: float = 300) -> str:
    cmd: List[str] = ["git", "-C", str(repo), "-c", "core.hooksPath=/dev/null", *args]
    try:
        proc = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout, stdin=subprocess.DEVNULL)
    except FileNotFoundError:
        raise GitError("git is not installed") from None
    except subprocess.TimeoutExpired:
        raise GitError(f"git {args[0]} took more than {timeout:.0f}s") from None
    if proc.returncode != 0:
        words = (proc.stderr.strip() or proc.stdout.strip()).splitlines()
        raise GitError(f"git {' '.join(args[:2])}: {words[-1] if words else f'exit {proc.returncode}'}")
    return proc.stdout.strip()


def toplevel(path: Path) -> Path:
    """The root of the git repository `path` is in."""
    try:
        return Path(_git(Path(path), "rev-parse", "--show-toplevel")).resolve()
    except GitError as exc:
        raise GitError(f"{path} is not in a git repository ({exc})") from None


def resolve(repo: Path, ref: str, fetch: bool = True) -> str:
    """The commit `ref` names; fetched from origin (one commit deep) when this clone does not have it, as in
    a shallow CI checkout of a pull request."""
    if not valid_ref(ref):
        raise GitError(f"{ref!r} is not a revision (a commit SHA, a branch or a tag)")
    try:
        return _git(repo, "rev-parse", "--verify", "--quiet", "--end-of-options", f"{ref}^{{commit}}")
    except GitError:
        if not fetch:
            raise GitError(f"unknown revision {ref!r} in {repo}") from None
    try:
        _git(repo, "fetch", "--no-tags", "--depth=1", "--quiet", "origin", ref)
        if _SHA.fullmatch(ref):
            return _git(repo, "rev-parse", "--verify", "--quiet", "--end-of-options", f"{ref}^{{commit}}")
        return _git(repo, "rev-parse", "--verify", "--quiet", "FETCH_HEAD^{commit}")
    except GitError as exc:
        raise GitError(f"unknown revision {ref!r} in {repo}, and fetching it from origin failed ({exc})") from None


@contextlib.contextmanager
def worktree(repo: Path, sha: str) -> Iterator[Path]:
    """A detached checkout of `sha` in a temporary directory, removed (and pruned) on exit."""
    parent = Path(tempfile.mkdtemp(prefix="pgmc-base-"))
    path = parent / "tree"
    try:
        _git(repo, "worktree", "add", "--detach", "--force", str(path), sha)
        yield path
    finally:
        with contextlib.suppress(GitError):
            _git(repo, "worktree", "remove", "--force", str(path))
        shutil.rmtree(parent, ignore_errors=True)
        with contextlib.suppress(GitError):
            _git(repo, "worktree", "prune")
