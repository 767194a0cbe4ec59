"""Runs of a single-user backend (`postgres --single`) under callgrind on a copy of a template data directory.

The template is made once per benchmark: initdb, pgbench tables at scale 1, the functions stream b calls. Every
run gets a fresh copy of it (DDL and hint bits would otherwise change the next run's work), reads its stream on
stdin, and is checked: exit status, no ERROR/FATAL/PANIC, the configuration in force, the expected rows printed.
"""

from __future__ import annotations

import os
import pwd
import re
import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path
from typing import Dict, List, Optional

from benchmarks.hookbench.callgrind import read_total
from benchmarks.hookbench.streams import MARKER_FUNCTION, TEMPLATE_SQL, Stream, check_query, output_problems
from reporter.cluster import PORT, Cluster, ClusterError


class RunError(Exception):
    """A run that did not do what the stream asked; the message names the run and shows the evidence."""


class Template:
    """The data directory every run copies; `with Template(pg_config, workdir) as t:` makes and removes it."""

    def __init__(self, pg_config: str, workdir: Path) -> None:
        self.cluster = Cluster(pg_config, base_dir=workdir, preload=[], keep=True,
                               settings={"max_connections": 10, "autovacuum": "off"})

    @property
    def data_dir(self) -> Path:
        return self.cluster.data_dir

    @property
    def run_as(self) -> Optional[str]:
        return self.cluster.run_as

    def __enter__(self) -> Template:
        c = self.cluster
        try:
            c.init()
            c.start()
            proc = subprocess.run(
                [str(c.pgbench_bin), "-i", "-q", "-s", "1", "-h", str(c.socket_dir), "-p", str(PORT),
                 "-U", c.superuser, "postgres"], capture_output=True, text=True)
            if proc.returncode != 0:
                raise ClusterError(f"pgbench -i failed (exit {proc.returncode}): {proc.stderr.strip()}")
            with c.connect() as conn:
                for statement in TEMPLATE_SQL:
                    conn.execute(statement)
                conn.execute("CHECKPOINT")
            c.stop()
        except BaseException:
            self.__exit__()
            raise
        return self

    def __exit__(self, *exc: object) -> None:
        try:
            self.cluster.stop()
        finally:
            self.cluster.cleanup()


@dataclass(frozen=True)
class RunResult:
    measured: int  # instructions of the measured part (the second dump)
    parts: List[int]  # instructions of every dump, in order
    profile: Path  # the callgrind file of the measured part


def _chown(path: Path, user: Optional[str]) -> None:
    if user is not None:
        entry = pwd.getpwnam(user)
        os.chown(path, entry.pw_uid, entry.pw_gid)


def _as_user(cmd: List[str], user: Optional[str]) -> List[str]:
    return cmd if user is None else ["runuser", "-u", user, "--", *cmd]


def dump_files(out: Path) -> List[Path]:
    """callgrind's dumps for --callgrind-out-file=out: out.1, out.2, ... (one per trigger), then out (at exit)."""
    numbered = []
    for candidate in out.parent.glob(out.name + ".*"):
        suffix = candidate.name[len(out.name) + 1:]
        if suffix.isdigit():
            numbered.append((int(suffix), candidate))
    files = [path for _, path in sorted(numbered)]
    if out.exists():
        files.append(out)
    return files


# The only timer-driven work of a single-user backend is the statistics flush (at most once a second): under
# callgrind its timing follows the machine's load, and the pending-stats memory it frees and re-allocates shifts
# malloc's heap state, so repeat runs would differ by up to ~0.1%. Every configuration runs without it.
RUN_SETTINGS: Dict[str, str] = {"track_counts": "off"}

_SERVER_PROBLEM = re.compile(r"\b(ERROR|FATAL|PANIC):")


def run_stream(
    template: Template,
    bindir: Path,
    stream: Stream,
    settings: Dict[str, str],
    rundir: Path,
    label: str,
) -> RunResult:
    """One run of `stream` with `settings` on the command line; rundir must not exist yet."""
    user = template.run_as
    rundir.mkdir(parents=True)
    _chown(rundir, user)
    data = rundir / "data"
    copy = subprocess.run(["cp", "-a", str(template.data_dir), str(data)], capture_output=True, text=True)
    if copy.returncode != 0:
        raise RunError(f"{label}: copying the template data directory failed: {copy.stderr.strip()}")
    script = rundir / "stream.sql"
    settings = {**RUN_SETTINGS, **settings}
    script.write_text(stream.script(check_query(settings)))
    out = rundir / "callgrind.out"
    cmd = ["valgrind", "--tool=callgrind", f"--dump-before={MARKER_FUNCTION}", f"--callgrind-out-file={out}",
           f"--log-file={rundir / 'valgrind.log'}", str(bindir / "postgres"), "--single", "-D", str(data)]
    for key, value in settings.items():
        cmd += ["-c", f"{key}={value}"]
    cmd.append("postgres")
    with open(script, encoding="utf-8") as stdin:
        proc = subprocess.run(_as_user(cmd, user), stdin=stdin, capture_output=True, text=True, cwd=rundir)
    (rundir / "stdout.txt").write_text(proc.stdout)
    (rundir / "stderr.txt").write_text(proc.stderr)
    shutil.rmtree(data, ignore_errors=True)
    if proc.returncode != 0:
        tail = "\n".join(proc.stderr.splitlines()[-15:])
        raise RunError(f"{label}: postgres --single under valgrind exited with {proc.returncode}:\n{tail}")
    problems = [line for line in proc.stderr.splitlines() if _SERVER_PROBLEM.search(line)]
    if problems:
        raise RunError(f"{label}: the backend reported errors ({rundir / 'stderr.txt'}):\n" + "\n".join(problems[:10]))
    wrong = output_problems(stream, proc.stdout, settings)
    if wrong:
        raise RunError(f"{label}: the stream did not run as intended ({rundir / 'stdout.txt'}):\n" + "\n".join(wrong))
    files = dump_files(out)
    if len(files) != 3:
        raise RunError(f"{label}: expected 3 callgrind dumps (two {MARKER_FUNCTION} markers, then exit), "
                       f"found {len(files)} in {rundir}")
    parts = [read_total(path.read_text(), str(path)) for path in files]
    return RunResult(measured=parts[1], parts=parts, profile=files[1])


def annotate_inclusive(profile: Path) -> str:
    """callgrind_annotate's per-function listing by inclusive cost, every function."""
    proc = subprocess.run(["callgrind_annotate", "--inclusive=yes", "--threshold=100", str(profile)],
                          capture_output=True, text=True)
    if proc.returncode != 0:
        raise RunError(f"callgrind_annotate {profile} failed (exit {proc.returncode}): {proc.stderr.strip()[:500]}")
    return proc.stdout
