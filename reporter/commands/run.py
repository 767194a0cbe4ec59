"""`pg-ext-memcheck run`: run the workloads of memcheck.yml on a private cluster and write results.json."""

from __future__ import annotations

import argparse
import os
import signal
import sys
import time
from contextlib import contextmanager
from pathlib import Path
from types import FrameType
from typing import Any, Callable, Dict, Iterator, List, Optional

from reporter import baseinfo, build, defaults, exttree, files, gitrev, results, runner, sites, suppress
from reporter.cluster import ClusterError
from reporter.commands.build import load_config, pg_info
from reporter.config import Config, ConfigError
from reporter.errors import UsageError
from reporter.merge import BASE_DIR

RESULTS_FILE = "results.json"
LOG_FILE = "server.log"
# Exit status of a run stopped by a signal: the shell's convention, 128 + the signal number.
SIGNALS = (signal.SIGINT, signal.SIGTERM)
# Less free space than this where results.json goes: the run would only fail at its end.
MIN_FREE_BYTES = 1024 * 1024
# results.json is saved during a run at least this often (besides SavePolicy's count).
SAVE_INTERVAL_S = 60.0


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "run",
        help="run the configured workloads on a private cluster; write DIR/results.json and DIR/server.log",
        description="Start a private cluster (unix socket only) with pg_ext_memcheck and the configured "
        "libraries preloaded, run setup and every workload, and write DIR/results.json and DIR/server.log. "
        "Errors, timeouts and crashes are recorded as results. results.json is saved during the run (after each "
        "of the first 8 workloads, then whenever those done since the last save reach an eighth of those saved, "
        "and at least every minute: linear in the number of workloads) and on SIGINT/SIGTERM (then marked "
        "incomplete). DIR is locked for the run: a second run into it fails at once. Exit status 0 once "
        "results.json is written (judging it is the job of `report`), 2 for bad input or an output that cannot "
        "be written (a full disk is named), 128+N when signal N stopped the run.",
    )
    p.add_argument("--config", metavar="FILE", type=Path,
                   help="memcheck.yml (default: memcheck.yml in --extension's directory; without one, the "
                        "extension's own regression suite: `make installcheck`, each test file a workload)")
    p.add_argument("--extension", metavar="DIR", type=Path, default=Path("."),
                   help="the extension's directory when there is no --config (default: the current directory)")
    p.add_argument("--pg-config", required=True, metavar="PATH", help="pg_config of the PostgreSQL to run")
    p.add_argument("--output", required=True, metavar="DIR", type=Path, help="directory for the results")
    p.add_argument("--expect-major", type=int, metavar="N", help="fail unless pg_config is major N")
    p.add_argument("--base", metavar="REF",
                   help="run the base revision REF instead, for `report` to compare with: check the extension's "
                        "repository out at REF (a temporary git worktree; fetched from origin if the clone lacks "
                        "it), build and install it against --pg-config, run the same workloads (this memcheck.yml, "
                        "these test files) and write DIR/base/results.json and DIR/base/base.json. A base that "
                        "cannot be checked out, built or run is recorded as skipped (exit 0): the comparison is "
                        "skipped, the run is not failed. Build and install the current revision after it.")
    p.set_defaults(func=main)


def prepare_output(output: Path) -> None:
    """Make DIR, prove it writable, and remove the results of an earlier run: whatever happens next, nobody
    may read an old results.json as the outcome of this run. The caller holds DIR's lock (claim_output)."""
    try:
        output.mkdir(parents=True, exist_ok=True)
        probe = output / ".pg-ext-memcheck-write-test"
        probe.touch()
        probe.unlink()
        for name in (RESULTS_FILE, LOG_FILE):
            (output / name).unlink(missing_ok=True)
        fs = os.statvfs(output)
    except OSError as exc:
        raise UsageError(f"--output {output}: cannot write there: {exc.strerror or exc}") from None
    free = fs.f_bavail * fs.f_frsize
    if free < MIN_FREE_BYTES:
        raise UsageError(f"--output {output}: its file system is full ({free:,} bytes free; results.json and "
                         f"server.log need at least {MIN_FREE_BYTES:,}): free some space or choose another "
                         "directory")


@contextmanager
def claim_output(output: Path) -> Iterator[None]:
    """DIR locked for this run (a second run into it fails at once instead of overwriting this one's results,
    or losing its own), then prepared (prepare_output); unlocked when the run is over."""
    try:
        output.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise UsageError(f"--output {output}: cannot write there: {exc.strerror or exc}") from None
    try:
        lock = files.DirectoryLock(output).acquire()
    except files.FileProblem as exc:
        raise UsageError(f"--output {exc}: wait for that run to finish, or give this one another --output") \
            from None
    try:
        prepare_output(output)
        yield
    finally:
        lock.release()


class SavePolicy:
    """When to rewrite results.json during a run. Each save rewrites the whole file, so saving after every
    workload costs time quadratic in their number; saving once the workloads done since the last save reach an
    eighth of those saved then keeps the bytes written within about 9 times the final file (linear), while
    the first 8 workloads are each saved at once and a long run is saved at least every `interval_s`."""

    def __init__(self, interval_s: float = SAVE_INTERVAL_S, clock: Callable[[], float] = time.monotonic) -> None:
        self.interval_s = interval_s
        self.clock = clock
        self.saved = 0  # workloads in the last saved file
        self.at = clock()

    def due(self, done: int) -> bool:
        return done - self.saved >= max(1, self.saved // 8) or self.clock() - self.at >= self.interval_s

    def record(self, done: int) -> None:
        self.saved = done
        self.at = self.clock()


class _Saver:
    """Writes results.json (atomically) during the run (SavePolicy) and at the end, suppressions applied."""

    def __init__(self, cfg: Config, path: Path, policy: SavePolicy | None = None) -> None:
        self.cfg = cfg
        self.path = path
        self._noted = False
        self.policy = policy or SavePolicy()

    def __call__(self, doc: Dict[str, Any], final: bool = True) -> None:
        done = len(doc["workloads"])
        if not final and not self.policy.due(done):
            return
        notes = suppress.apply(doc, self.cfg.suppressions)  # idempotent: marks are recomputed each time
        if not self._noted:
            for note in notes:
                progress(note)
            self._noted = True
        results.dump(doc, self.path)
        self.policy.record(done)


class _Signals:
    """While the run is going on, SIGINT and SIGTERM raise runner.Interrupted once; later ones (and any once
    the run has returned) are only noted, so that stopping the cluster and saving the results are not cut
    short."""

    def __init__(self) -> None:
        self.received: List[str] = []
        self.armed = True

    def handler(self, signum: int, _frame: Optional[FrameType]) -> None:
        name = signal.Signals(signum).name
        first = not self.received
        self.received.append(name)
        if first and self.armed:
            raise runner.Interrupted(name)
        progress(f"{name} received while stopping; still saving the results")

    @contextmanager
    def installed(self) -> Iterator[_Signals]:
        previous = {sig: signal.signal(sig, self.handler) for sig in SIGNALS}
        try:
            yield self
        finally:
            for sig, old in previous.items():
                signal.signal(sig, old)


def execute(cfg: Config, pg_config: str, output: Path) -> results.Results:
    """Run, apply suppressions, write DIR/results.json (after every workload and at the end); shared with
    `check`. The caller has prepared DIR (prepare_output)."""
    save = _Saver(cfg, output / RESULTS_FILE)
    with _Signals().installed() as signals:
        try:
            doc = runner.run(cfg, pg_config, output, results.github_context(), progress=progress,
                             checkpoint=lambda partial: save(partial, final=False))
        except runner.Interrupted as exc:  # before the run had anything to save
            progress(f"interrupted by {exc.signal_name} before the run started")
            raise SystemExit(128 + int(signal.Signals[exc.signal_name])) from None
        signals.armed = False  # every workload is accounted for: a late signal does not undo that
        # Here the built libraries still exist: resolve allocation sites to source lines now, for every later
        # reader.
        resolved = sites.resolve_results(doc)
        if resolved:
            progress(f"resolved {resolved} allocation site(s) to source lines")
        doc["source_root"] = source_root(cfg)
        save(doc)
    if doc.get("interrupted"):
        progress(f"wrote {output / RESULTS_FILE}, marked incomplete (interrupted by {doc['interrupted']})")
    return doc


def source_root(cfg: Config) -> str | None:
    """The git top level of the extension's sources (else of memcheck.yml's directory): the reports show the
    files of allocation sites relative to it, wherever the repository was checked out (actions/checkout's
    `path:`, an extension in a subdirectory). None outside a git repository."""
    places = [cfg.extension.path] if cfg.extension and cfg.extension.path else []
    places.append(Path(cfg.path).parent)
    for place in places:
        try:
            return str(gitrev.toplevel(Path(place)))
        except (gitrev.GitError, OSError):
            continue
    return None


def interrupted_status(doc: results.Results) -> int | None:
    name = doc.get("interrupted")
    return 128 + int(signal.Signals[name]) if name in signal.Signals.__members__ else None


def progress(message: str) -> None:
    print(f"pg-ext-memcheck: {message}", file=sys.stderr, flush=True)


def run_base(cfg: Config, pg_config: str, ref: str, leg_dir: Path) -> baseinfo.BaseRun:
    """The base revision `ref` of cfg's extension, built, installed and run with cfg's workloads into
    leg_dir/base; whatever stops it is recorded (base.json) and returned as a skipped base, never raised."""
    out = leg_dir / BASE_DIR
    with claim_output(out):
        (out / baseinfo.INFO_FILE).unlink(missing_ok=True)
        if not gitrev.valid_ref(ref):
            raise UsageError(f"--base/--compare {ref!r}: not a revision (a commit SHA, a branch or a tag)")
        return _run_base(cfg, pg_config, ref, out)


def _run_base(cfg: Config, pg_config: str, ref: str, out: Path) -> baseinfo.BaseRun:
    sha: str | None = None
    try:
        ext = cfg.extension
        if ext is None or ext.path is None:
            raise _Skip("memcheck.yml names no extension.path, so there is nothing to build at another revision")
        repo = gitrev.toplevel(ext.path)
        sha = gitrev.resolve(repo, ref)
        progress(f"base: {ref} is {sha[:12]}; checking it out in a temporary worktree")
        rel = ext.path.resolve().relative_to(repo)
        with gitrev.worktree(repo, sha) as tree:
            base_ext = tree / rel
            if exttree.makefile(base_ext) is None:
                raise _Skip(f"{rel} has no Makefile at {ref}")
            info = build.read_pg_config(pg_config)
            build.install_hook_library(info, log=progress)
            build.install_extension(base_ext, info, ext.make_args, log=progress, source_root=ext.path.parent)
        doc = execute(cfg, pg_config, out)
        ran = [w for w in doc["workloads"] if w["status"] not in ("error", "crashed", "timeout")]
        if not ran:
            first = next((w["error"]["message"] for w in doc["workloads"] if w.get("error")), "no workload ran")
            raise _Skip(f"no workload ran on the base: {first}")
    except (_Skip, gitrev.GitError, build.BuildError, ConfigError, ClusterError, OSError) as exc:
        reason = str(exc).strip().splitlines()
        text = reason[0] if len(reason) == 1 else f"{reason[0]} ... {reason[-1]}" if reason else type(exc).__name__
        progress(f"base {ref}: skipped, the comparison will be too: {text}")
        (out / RESULTS_FILE).unlink(missing_ok=True)
        run = baseinfo.BaseRun(ref, sha, baseinfo.SKIPPED, text)
        baseinfo.write(out, run)
        return run
    run = baseinfo.BaseRun(ref, sha, baseinfo.RAN)
    baseinfo.write(out, run)
    progress(f"base {ref}: wrote {out / RESULTS_FILE}")
    return run


class _Skip(Exception):
    """The base cannot be compared with; the message says why."""


def main(args: argparse.Namespace) -> int:
    with claim_output(args.output):
        return _main(args)


def _main(args: argparse.Namespace) -> int:
    cfg = load_config(args.config) if args.config is not None else None
    pg_info(args.pg_config, args.expect_major)
    cfg = cfg or defaults.resolve(None, args.extension, args.pg_config)  # needs pg_config: make reads PGXS
    if args.base:
        run_base(cfg, args.pg_config, args.base, args.output)
        return 0
    doc = execute(cfg, args.pg_config, args.output)
    stopped = interrupted_status(doc)
    if stopped is not None:
        return stopped
    progress(f"wrote {args.output / RESULTS_FILE}")
    return 0
