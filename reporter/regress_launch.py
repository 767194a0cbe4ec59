"""pg_regress's `--launcher`: measures one regression test file (or isolation spec) in a window of its own.

pg_regress runs each test as `LAUNCHER psql -X -a -q -d DB ... < sql/NAME.sql > results/NAME.out 2>&1`, and
pg_isolation_regress each spec as `LAUNCHER isolationtester "dbname=DB" < specs/NAME.spec > ...`, one at a time
(`--max-concurrent-tests=1`). For a test (PGAPPNAME `pg_regress/NAME` or `isolation/NAME`) this program:

1. waits until no other client session is left (the previous test's backend may still be exiting: it publishes
   its findings on exit), flushes the ring and notes where violation_log ends;
2. copies the test's database (CREATE DATABASE ... TEMPLATE), as it is before the test, for the repeats;
3. runs the program exactly as asked, on the same stdin and stdout: the output compared with expected/ is
   untouched by the measuring;
4. runs the test `iterations - 1` more times on the copy, output discarded: a test file in ONE psql session of
   its own, so that growth repeats within a backend (a leak) can be told from growth once (a cache) even when
   the leaky statement runs once per file; a spec by isolationtester again, each time (every permutation's
   sessions are measured like any session); the copy keeps the repeats' rows and objects from the later tests;
5. waits for quiet again, flushes, and writes the rows this test's backends published (each backend publishes
   at statement boundaries and on exit), with its status, to DIR/NAME.json; drops the copy.

Measuring is switched on in the cluster's configuration for the whole suite (the runner does it), so every
session of a test is measured whatever role it connects as (`\\connect - u`), and its findings are recorded
(`pg_ext_memcheck.record_all_sessions`, set in the private cluster's configuration; on a shared server the hook
library records privileged sessions only, so that no role can fill the shared ring). Should a record still be
refused (a cluster without that setting), the record notes how many were. Anything
that is not a test (no `pg_regress/NAME` or `isolation/NAME` application name) runs untouched. Whatever goes
wrong in the measuring, the program still runs as asked and its exit status is pg_regress's: the test's
outcome is never changed by this program. What it is doing goes, as JSON lines, to the progress file the
runner reads (its own stdout and stderr are the test's output file).

Settings come from the environment (see RegressEnv): the runner sets them.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Dict, List, Optional, Sequence, Tuple

import psycopg
from psycopg.conninfo import conninfo_to_dict, make_conninfo

from reporter.regress import (
    APP_PREFIXES,
    ENV_DIR,
    ENV_ITERATIONS,
    ENV_LOG,
    ENV_PROGRESS,
    ENV_TIMEOUT,
    PG_REGRESS,
)
from reporter.runner import Admin, latest_per_finding, log_excerpt, to_violation

COPY_DB = "pg_ext_memcheck_repeat"
QUIET_TIMEOUT_S = 30.0
RECOVERY_TIMEOUT_S = 120.0
_CRASH_MARKERS = ("terminated by signal", "was terminated by exception", "server process (PID")


@dataclass(frozen=True)
class RegressEnv:
    out_dir: Path
    iterations: int
    timeout_s: float
    server_log: Optional[Path]
    progress: Optional[Path] = None

    @classmethod
    def from_env(cls, env: Dict[str, str]) -> Optional[RegressEnv]:
        if not env.get(ENV_DIR):
            return None
        log, progress = env.get(ENV_LOG), env.get(ENV_PROGRESS)
        return cls(Path(env[ENV_DIR]), max(1, int(env.get(ENV_ITERATIONS) or 1)),
                   float(env.get(ENV_TIMEOUT) or 300), Path(log) if log else None,
                   Path(progress) if progress else None)


def test_of(env: Dict[str, str]) -> Optional[Tuple[str, str]]:
    """(test name, the program running it) from PGAPPNAME, which pg_regress and pg_isolation_regress set."""
    app = env.get("PGAPPNAME") or ""
    for runner, prefix in APP_PREFIXES.items():
        if app.startswith(prefix) and app[len(prefix):]:
            return app[len(prefix):], runner
    return None


def database_of(args: Sequence[str]) -> Optional[str]:
    """The database of psql's `-d DB` / `--dbname=DB`, or of isolationtester's conninfo `dbname=DB`."""
    for i, arg in enumerate(args):
        if arg == "-d" and i + 1 < len(args):
            return args[i + 1]
        if arg.startswith("--dbname="):
            return arg.split("=", 1)[1]
        if "=" in arg and not arg.startswith("-"):
            try:
                dbname = conninfo_to_dict(arg).get("dbname")
            except psycopg.ProgrammingError:
                continue
            if dbname:
                return str(dbname)
    return None


def stdin_file() -> Optional[str]:
    """The test file pg_regress redirected to our stdin (its path, for the repeats' `psql -f`)."""
    try:
        path = os.readlink("/proc/self/fd/0")
    except OSError:
        return None
    return path if os.path.isfile(path) else None


class _Connector:
    """Connections for the bookkeeping: to the postgres database, never measured themselves (the cluster's
    configuration, which switches measuring on for the tests, is overridden for this session)."""

    def connect(self, dbname: str = "postgres", **kw: Any) -> psycopg.Connection:
        conninfo = make_conninfo(dbname=dbname, options="-c pg_ext_memcheck.memcheck_mode=off",
                                 application_name="pg-ext-memcheck regress")
        kw.setdefault("autocommit", True)
        return psycopg.connect(conninfo, **kw)


class Measure:
    """The bookkeeping around one test; every method may raise psycopg.Error (the caller notes it)."""

    def __init__(self) -> None:
        self.connector = _Connector()
        self.admin = Admin(self.connector)  # type: ignore[arg-type]

    def others(self) -> int:
        rows = self.admin.execute("SELECT count(*) FROM pg_catalog.pg_stat_activity "
                                  "WHERE backend_type = 'client backend' AND pid <> pg_catalog.pg_backend_pid()")
        return int(rows[0][0])

    def wait_quiet(self, timeout: float = QUIET_TIMEOUT_S) -> bool:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.others() == 0:
                return True
            time.sleep(0.05)
        return False

    def wait_ready(self, timeout: float = RECOVERY_TIMEOUT_S) -> None:
        deadline = time.monotonic() + timeout
        while True:
            try:
                self.admin.execute("SELECT 1")
                return
            except psycopg.Error:
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.2)

    def terminate_others(self) -> None:
        self.admin.execute("SELECT pg_catalog.pg_terminate_backend(pid) FROM pg_catalog.pg_stat_activity "
                           "WHERE backend_type = 'client backend' AND pid <> pg_catalog.pg_backend_pid()")

    def mark(self) -> Dict[str, int]:
        self.admin.flush()
        status = self.admin.status()
        return {"last_id": self.admin.last_id(), "dropped": status["dropped"], "next_seq": status["next_seq"],
                "refused": status["refused"]}

    def collect(self, before: Dict[str, int]) -> tuple[List[Dict[str, Any]], int, int]:
        """(violations, dropped, refused) since `before` (mark())."""
        self.admin.flush()
        after = self.admin.status()
        restarted = after["next_seq"] < before["next_seq"] or after["dropped"] < before["dropped"]
        rows = latest_per_finding(self.admin.violations_after(before["last_id"], None))
        dropped = after["dropped"] - (0 if restarted else before["dropped"])
        refused = after["refused"] - (0 if restarted else before["refused"])
        return [to_violation(r, {}) for r in rows], max(0, dropped), max(0, refused)

    def copy_database(self, template: str) -> None:
        self.drop_copy()
        self.admin.execute(f"CREATE DATABASE {COPY_DB} TEMPLATE {_ident(template)}")

    def drop_copy(self) -> None:
        self.admin.execute(f"DROP DATABASE IF EXISTS {COPY_DB}")

    def close(self) -> None:
        self.admin.close()


def _ident(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


def _log_size(path: Optional[Path]) -> int:
    try:
        return path.stat().st_size if path else 0
    except OSError:
        return 0


def _read_log(path: Optional[Path], offset: int) -> str:
    if path is None:
        return ""
    try:
        with open(path, "rb") as fh:
            fh.seek(offset)
            return fh.read().decode("utf-8", errors="replace")
    except OSError:
        return ""


def _kill(proc: subprocess.Popen) -> None:
    try:
        proc.kill()
    except OSError:
        pass
    proc.wait()


def run_pass(cmd: List[str], timeout: float, **kw: Any) -> tuple[int, bool]:
    """(exit status, timed out) of one psql (killed at the timeout)."""
    proc = subprocess.Popen(cmd, **kw)
    try:
        return proc.wait(timeout=max(0.001, timeout)), False
    except subprocess.TimeoutExpired:
        _kill(proc)
        return proc.returncode if proc.returncode is not None else -9, True
    except BaseException:
        _kill(proc)
        raise


def repeat_command(psql: str, args: Sequence[str], test_file: str, times: int) -> List[str]:
    """psql on the copy, the file `times` times in one session; pg_regress's variables kept, no echo."""
    keep: List[str] = []
    skip = False
    for arg in args:
        if skip:
            skip = False
            continue
        if arg in ("-d", "--dbname"):
            skip = True
            continue
        if arg.startswith("--dbname=") or arg in ("-a", "--echo-all", "-e", "--echo-queries"):
            continue
        keep.append(arg)
    files: List[str] = []
    for _ in range(times):
        files += ["-f", test_file]
    return [psql, *keep, "-d", COPY_DB, *files]


def isolation_repeat_command(program: str, args: Sequence[str]) -> List[str]:
    """isolationtester on the copy: its conninfo argument names the copy's database, other words kept."""
    out: List[str] = []
    for arg in args:
        if "=" in arg and not arg.startswith("-") and database_of([arg]) is not None:
            parts = conninfo_to_dict(arg)
            parts["dbname"] = COPY_DB
            out.append(make_conninfo(**{k: str(v) for k, v in parts.items() if v is not None}))
        else:
            out.append(arg)
    return [program, *out]


def main(argv: Sequence[str]) -> int:
    if len(argv) < 2:
        print("pg-ext-memcheck regress launcher: usage: regress_launch PROGRAM [ARGS...]", file=sys.stderr)
        return 2
    program, args = argv[1], list(argv[2:])
    env = dict(os.environ)
    settings = RegressEnv.from_env(env)
    found = test_of(env)
    if settings is None or found is None:
        os.execv(program, [program, *args])  # not a test of ours: exactly what pg_regress asked for
    # Our own connections get PostgreSQL's defaults, not the tests' session settings (the program gets `env`).
    for var in _SESSION_VARS:
        os.environ.pop(var, None)
    name, runner = found
    return measure_test(settings, name, program, args, env, runner)


# pg_regress's session settings for the tests' programs, not for the bookkeeping connections.
_SESSION_VARS = ("PGOPTIONS", "PGAPPNAME", "PGDATESTYLE", "PGTZ", "PGCLIENTENCODING", "PGDATABASE")


def _event(settings: RegressEnv, **event: Any) -> None:
    """One line of progress for the runner (appended whole; the runner reads complete lines only)."""
    if settings.progress is None:
        return
    try:
        with open(settings.progress, "a", encoding="utf-8") as fh:
            fh.write(json.dumps(event, default=str) + "\n")
    except OSError:
        pass


def _repeat(settings: RegressEnv, runner: str, program: str, args: List[str], test_file: str, times: int,
            remaining: float, env: Dict[str, str]) -> tuple[int, bool, int]:
    """The repeats on the copy: (exit status of the last, timed out, error lines in their output)."""
    if runner == PG_REGRESS:
        commands = [(repeat_command(program, args, test_file, times), True)]
    else:
        commands = [(isolation_repeat_command(program, args), False) for _ in range(times)]
    deadline = time.monotonic() + remaining
    rc, timed_out, errors = 0, False, 0
    for cmd, from_file in commands:
        with tempfile.TemporaryFile() as out:
            with open(test_file, "rb") as spec:
                stdin = subprocess.DEVNULL if from_file else spec
                rc, timed_out = run_pass(cmd, deadline - time.monotonic(), env=env, stdin=stdin,
                                         stdout=subprocess.DEVNULL if from_file else out, stderr=out)
            out.seek(0)
            text = out.read().decode("utf-8", errors="replace")
        errors += sum(1 for line in text.splitlines() if "ERROR:" in line)
        if timed_out:
            break
    return rc, timed_out, errors


@dataclass
class _Test:
    """One test being measured: what it is, what the measuring holds, and the record it writes."""

    settings: RegressEnv
    name: str
    program: str
    args: List[str]
    env: Dict[str, str]
    runner: str
    started: float = field(default_factory=time.monotonic)
    record: Dict[str, Any] = field(default_factory=dict)
    measure: Optional[Measure] = None
    before: Optional[Dict[str, int]] = None  # where violation_log ended before the test
    test_file: Optional[str] = None
    copied: bool = False  # the copy of the test's database for the repeats exists
    timed_out: bool = False

    def __post_init__(self) -> None:
        self.record = {"test": self.name, "runner": self.runner, "status": "passed", "error": None, "passes": 0,
                       "repeat_errors": 0, "notes": [], "violations": [], "dropped": 0, "refused": 0,
                       "log_excerpt": None, "psql_exit": None}

    def note(self, text: str) -> None:
        self.record["notes"].append(text)

    def prepare(self) -> None:
        """Quiet, a mark in violation_log, and the copy of the test's database for the repeats."""
        database = database_of(self.args)
        self.test_file = stdin_file()
        try:
            self.measure = Measure()
            if not self.measure.wait_quiet():
                self.note("other sessions were still open when the test started; their findings may be counted "
                          "here")
            self.before = self.measure.mark()
            if self.settings.iterations > 1 and database and self.test_file:
                self.measure.copy_database(database)
                self.copied = True
        except psycopg.Error as exc:
            self.note(f"could not prepare the measuring: {_first_line(exc)}")

    def first_pass(self) -> int:
        """The pass that is compared with expected/: the program as asked, on pg_regress's stdin and stdout."""
        s = self.settings
        _event(s, test=self.name, event="start", passes=s.iterations)
        rc, self.timed_out = run_pass([self.program, *self.args], s.timeout_s, env=self.env)
        self.record.update(psql_exit=rc, passes=1)
        if self.timed_out:
            self.record.update(status="timeout", error=f"the test ran past its timeout of {s.timeout_s:g}s")
        return rc

    def repeats(self, rc: int) -> None:
        """The other iterations, on the copy, when the first pass went well."""
        s = self.settings
        if not (self.copied and not self.timed_out and rc == 0 and self.test_file):
            if s.iterations > 1 and not self.copied:
                self.note("not repeated: the test's database could not be copied or its file was not given on "
                          "stdin")
            return
        times = s.iterations - 1
        remaining = s.timeout_s - (time.monotonic() - self.started)
        _event(s, test=self.name, event="repeat", first=2, passes=s.iterations)
        rrc, rtimed, self.record["repeat_errors"] = _repeat(s, self.runner, self.program, self.args,
                                                            self.test_file, times, remaining, self.env)
        self.record["passes"] += times
        if rtimed:
            self.record.update(status="timeout", error=f"the repeats ran past the test's timeout of "
                                                       f"{s.timeout_s:g}s")
        elif rrc != 0:
            self.note(f"the repeats' {Path(self.program).name} exited with status {rrc}")

    def read_log(self, offset: int) -> None:
        """A crash of the server while the test ran, and the log's excerpt for a crash or a timeout."""
        log = _read_log(self.settings.server_log, offset)
        if any(marker in log for marker in _CRASH_MARKERS):
            self.record.update(status="crashed", error="the server crashed while this test ran")
            self.record["log_excerpt"] = log_excerpt(log, None)
        elif self.record["status"] == "timeout":
            self.record["log_excerpt"] = log_excerpt(log, None)

    def collect(self) -> None:
        """The rows the test's backends published, once they are gone; then the copy is dropped."""
        record = self.record
        try:
            if self.measure is None:
                raise RuntimeError("no connection")
            if self.timed_out or record["status"] == "timeout":
                self.measure.terminate_others()
            if record["status"] == "crashed":
                self.measure.wait_ready()
            self.measure.wait_quiet()
            if self.before is not None:
                record["violations"], record["dropped"], record["refused"] = self.measure.collect(self.before)
            if record["refused"]:
                self.note(f"{record['refused']} finding record(s) of sessions of a role that is neither a superuser "
                          "nor a member of pg_monitor were not kept (the hook library records privileged sessions "
                          "only unless pg_ext_memcheck.record_all_sessions is on); GRANT pg_monitor TO the role the "
                          "test connects as, or turn that setting on, to measure them too")
            if self.copied:
                self.measure.drop_copy()
        except (psycopg.Error, RuntimeError) as exc:
            self.note(f"could not collect the findings: {_first_line(exc)}")
            if record["status"] == "passed":
                record.update(status="error", error=f"could not collect this test's findings: {_first_line(exc)}")
        finally:
            if self.measure is not None:
                self.measure.close()

    def finish(self) -> None:
        record = self.record
        record["duration_s"] = round(time.monotonic() - self.started, 3)
        _write(self.settings.out_dir / f"{self.name}.json", record)
        _event(self.settings, test=self.name, event="done", status=record["status"],
               violations=len(record["violations"]), duration_s=record["duration_s"])


def measure_test(settings: RegressEnv, name: str, program: str, args: List[str], env: Dict[str, str],
                 runner: str = PG_REGRESS) -> int:
    """Steps 1-5 of the module's comment for one test; the exit status is the first pass's (2 on a timeout)."""
    test = _Test(settings, name, program, args, env, runner)
    log_offset = _log_size(settings.server_log)
    test.prepare()
    rc = test.first_pass()
    test.repeats(rc)
    test.read_log(log_offset)
    test.collect()
    test.finish()
    return 2 if test.timed_out else rc


def _first_line(exc: BaseException) -> str:
    lines = str(exc).strip().splitlines()
    return lines[0] if lines else type(exc).__name__


def _write(path: Path, record: Dict[str, Any]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".json.tmp")
    tmp.write_text(json.dumps(record, default=str), encoding="utf-8")
    tmp.replace(path)


if __name__ == "__main__":
    sys.exit(main(sys.argv))
