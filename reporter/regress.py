"""The extension's own test suites as workloads: `make installcheck` against the private cluster.

pg_regress (REGRESS) and pg_isolation_regress (ISOLATION specs) do everything they always do (create the test
database, load REGRESS_OPTS' extensions, set their environment, compare each test's output with expected/ and
its alternatives), with two additions passed in EXTRA_REGRESS_OPTS: `--max-concurrent-tests=1` (a schedule's
parallel groups run one test at a time, so that findings belong to one test) and `--launcher`,
reporter/regress_launch.py, which measures each test file or spec in a window of its own and repeats it for
growth judgement (see there). The two suites run as two makes (`ISOLATION=` then `REGRESS=` on the command
line), so that a failing regression test does not keep the specs from running; TAP_TESTS are never run (`TAP_TESTS=`;
the results say so). NO_INSTALLCHECK is overridden: the private cluster is the server the suite asks for.

What the Makefile's REGRESS_OPTS / ISOLATION_OPTS say about the server is honoured: their --temp-config files
become the private cluster's configuration (reporter/pgconf.py; the runner applies them); the other options
reach pg_regress as they always do (make passes them), and --outputdir says where regression.diffs is.

This module reads the Makefile, starts make and reads what came back (each test's record, regression.diffs,
the launcher's progress); the launcher is the part that talks to PostgreSQL. Results are workload dicts of kind
`regress`, one per test file and spec, REGRESS order then ISOLATION order.
"""

from __future__ import annotations

import json
import os
import shlex
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Dict, List, Mapping, Optional, Sequence, Tuple

from reporter import pgconf, pgxs
from reporter.config import Config, ConfigError, Workload
from reporter.ctxfilter import keep_violation

# What the runner tells the launcher (reporter/regress_launch.py) through pg_regress's environment.
ENV_DIR = "PG_EXT_MEMCHECK_REGRESS_DIR"  # where each test's record goes (NAME.json)
ENV_ITERATIONS = "PG_EXT_MEMCHECK_REGRESS_ITERATIONS"
ENV_TIMEOUT = "PG_EXT_MEMCHECK_REGRESS_TIMEOUT"
ENV_LOG = "PG_EXT_MEMCHECK_REGRESS_SERVER_LOG"
ENV_PROGRESS = "PG_EXT_MEMCHECK_REGRESS_PROGRESS"  # a file of JSON lines: what the launcher is doing
DIFF_LIMIT = 20_000
OUTPUT_TAIL_LINES = 40
# The two test programs PGXS runs, and the PGAPPNAME prefix each gives its tests.
PG_REGRESS = "pg_regress"
PG_ISOLATION_REGRESS = "pg_isolation_regress"
APP_PREFIXES = {PG_REGRESS: "pg_regress/", PG_ISOLATION_REGRESS: "isolation/"}
# Where each writes results/ and regression.diffs unless --outputdir says otherwise (PGXS's Makefile.global).
DEFAULT_OUTPUTDIR = {PG_REGRESS: ".", PG_ISOLATION_REGRESS: "output_iso"}
# Make arguments of each pass: only its own suite, never the TAP tests, NO_INSTALLCHECK overridden.
_ONLY = {PG_REGRESS: ("ISOLATION=", "TAP_TESTS=", "NO_INSTALLCHECK="),
         PG_ISOLATION_REGRESS: ("REGRESS=", "TAP_TESTS=", "NO_INSTALLCHECK=")}
TAP_NOTE = ("the Makefile's TAP_TESTS (t/*.pl, run by prove) are not run: pg-ext-memcheck measures the SQL suites "
            "(REGRESS and ISOLATION); run the TAP tests as you do today")
WHY_REPEAT = ("each test file runs {n} time(s): once as pg_regress runs it (its output compared with expected/), "
              "then {r} more in a session of its own on a copy of its database, so that growth on every pass (a "
              "leak) can be told from growth once (a cache); `iterations` on the regress entry of memcheck.yml "
              "sets the number (1: no repeats, faster, leaks judged on one pass)")
# Build products and earlier test output that must not travel into the private copy.
_IGNORE = ("*.o", "*.so", "*.bc", ".deps", ".git", "results", "regression.diffs", "regression.out", "log",
           "tmp_check", "output_iso", "tmp_check_iso")
PACKAGE_ROOT = Path(__file__).resolve().parent.parent
Progress = Callable[[str], None]


@dataclass(frozen=True)
class Suite:
    """One regress workload entry: the test files and specs its Makefile lists and what it asks of the server."""

    workload: Workload
    directory: Path
    tests: List[str]  # REGRESS
    isolation: List[str] = field(default_factory=list)  # ISOLATION
    regress_opts: Tuple[str, ...] = ()  # REGRESS_OPTS as make expands it, split like the shell
    isolation_opts: Tuple[str, ...] = ()
    server: pgconf.TempConfig = field(default_factory=pgconf.TempConfig)  # the --temp-config files
    tap_tests: bool = False

    def name_of(self, test: str, runner: str = PG_REGRESS) -> str:
        """A test's workload name: its file's name (a spec named like a test file: isolation/NAME)."""
        base = f"isolation/{test}" if runner == PG_ISOLATION_REGRESS and test in self.tests else test
        return f"{self.workload.name}/{base}" if self.workload.named else base

    def runs(self) -> List[Tuple[str, List[str]]]:
        """(program, tests) in the order they run; programs with nothing to run left out."""
        return [(r, t) for r, t in ((PG_REGRESS, self.tests), (PG_ISOLATION_REGRESS, self.isolation)) if t]

    def outputdir(self, runner: str) -> str:
        """Where regression.diffs goes: the last --outputdir of the options, else PGXS's default."""
        return option_value(self.options(runner), "--outputdir") or DEFAULT_OUTPUTDIR[runner]

    def options(self, runner: str) -> Tuple[str, ...]:
        return self.regress_opts if runner == PG_REGRESS else self.isolation_opts

    def notes(self) -> List[str]:
        """What the run should say about this suite: TAP tests not run, configuration left out."""
        return ([TAP_NOTE] if self.tap_tests else []) + list(self.server.notes)


def option_value(options: Sequence[str], name: str) -> Optional[str]:
    """The last value of `--name=V` or `--name V` among pg_regress options."""
    value: Optional[str] = None
    for i, arg in enumerate(options):
        if arg.startswith(name + "="):
            value = arg.split("=", 1)[1]
        elif arg == name and i + 1 < len(options):
            value = options[i + 1]
    return value


_VARS = ["REGRESS", "REGRESS_OPTS", "ISOLATION", "ISOLATION_OPTS", "TAP_TESTS"]


def plan(cfg: Config, pg_config: str) -> List[Suite]:
    """The suites of cfg's regress entries, read from the Makefile (REGRESS, ISOLATION, their options,
    TAP_TESTS) and their --temp-config files; ConfigError when there is nothing to run, a file is missing or a
    test's name collides with another workload's."""
    entries = [wl for wl in cfg.workloads if wl.kind == "regress"]
    if not entries:
        return []
    ext = cfg.extension
    assert ext is not None and ext.path is not None  # config.load checked it
    where = f"{cfg.locate('workloads')}: regress"
    try:
        found = pgxs.makefile_vars(ext.path, pg_config, _VARS, ext.make_args)
    except pgxs.PgxsError as exc:
        raise ConfigError([f"{where}: {exc}"]) from None
    tests, specs = pgxs.words(found["REGRESS"]), pgxs.words(found["ISOLATION"])
    if not tests and not specs:
        raise ConfigError([f"{where}: {ext.path}/Makefile lists no REGRESS tests and no ISOLATION specs, so "
                           "`make installcheck` has nothing to run; add REGRESS (and sql/, expected/) or write "
                           "workloads in memcheck.yml"])
    opts: Dict[str, Tuple[str, ...]] = {}
    for key in ("REGRESS_OPTS", "ISOLATION_OPTS"):
        try:
            opts[key] = tuple(shlex.split(found[key]))
        except ValueError as exc:
            raise ConfigError([f"{ext.path}/Makefile: {key}: cannot split {found[key]!r}: {exc}"]) from None
    temp_configs = pgconf.temp_config_paths([*opts["REGRESS_OPTS"], *opts["ISOLATION_OPTS"]], ext.path,
                                            f"{ext.path}/Makefile: REGRESS_OPTS/ISOLATION_OPTS")
    server = pgconf.read(temp_configs)
    suites = [Suite(wl, ext.path, tests, specs, opts["REGRESS_OPTS"], opts["ISOLATION_OPTS"], server,
                    bool(found["TAP_TESTS"].strip())) for wl in entries]
    names = {wl.name for wl in cfg.workloads if wl.kind != "regress"}
    clashes = sorted(names & {s.name_of(t, r) for s in suites for r, ts in s.runs() for t in ts})
    if clashes:
        raise ConfigError([f"{cfg.locate('workloads')}: regression test {', '.join(clashes)} has the name of a "
                           "workload; give the regress entry a name (its tests become NAME/test)"])
    return suites


def launcher_script(directory: Path) -> Path:
    """A tiny shell script for --launcher: the path needs no quoting inside pg_regress's command line."""
    script = directory / "pgmc-launch"
    python = shlex.quote(sys.executable)
    root = shlex.quote(str(PACKAGE_ROOT))
    script.write_text(f'#!/bin/sh\nPYTHONPATH={root}${{PYTHONPATH:+:$PYTHONPATH}} exec {python} -m '
                      f'reporter.regress_launch "$@"\n', encoding="utf-8")
    script.chmod(0o755)
    return script


def suite_env(base: Mapping[str, str], wl: Workload, socket_dir: str, port: int, user: str, records: Path,
              launcher: Path, server_log: Path, progress_file: Optional[Path] = None) -> Dict[str, str]:
    """pg_regress's environment. The measuring settings are not here: the runner puts them in the cluster's
    configuration, where every session gets them, whatever role it connects as (a role that is not a superuser
    may not set them, so PGOPTIONS carrying them would make the server refuse its connection)."""
    env = {k: v for k, v in base.items() if k not in ("PGDATABASE", "PGSERVICE", "PGSERVICEFILE", "PGHOSTADDR",
                                                        "PGAPPNAME", "MAKEFLAGS", "MFLAGS")}
    env.update({
        "PGHOST": socket_dir, "PGPORT": str(port), "PGUSER": user,
        "EXTRA_REGRESS_OPTS": " ".join(filter(None, [base.get("EXTRA_REGRESS_OPTS", ""),
                                                     f"--launcher={launcher}", "--max-concurrent-tests=1"])),
        ENV_DIR: str(records),
        ENV_ITERATIONS: str(wl.iterations),
        ENV_TIMEOUT: str(wl.timeout_s),
        ENV_LOG: str(server_log),
    })
    if progress_file is not None:
        env[ENV_PROGRESS] = str(progress_file)
    return env


def isolation_program(pkglibdir: str) -> Path:
    """Where PGXS's installcheck looks for pg_isolation_regress ($(top_builddir)/src/test/isolation)."""
    return Path(pkglibdir) / "pgxs" / "src" / "test" / "isolation" / PG_ISOLATION_REGRESS


def split_diffs(text: str) -> Dict[str, str]:
    """pg_regress's regression.diffs by test: each test's part starts with `diff OPTS EXPECTED RESULTS`."""
    parts: Dict[str, List[str]] = {}
    current: Optional[List[str]] = None
    for line in text.splitlines():
        if line.startswith("diff ") and line.rstrip().endswith(".out") and "/results/" in line:
            name = line.rstrip().rsplit("/", 1)[-1][: -len(".out")]
            current = parts.setdefault(name, [])
        if current is not None:
            current.append(line)
    return {name: _cap("\n".join(lines), DIFF_LIMIT) for name, lines in parts.items()}


def _cap(text: str, limit: int) -> str:
    return text if len(text) <= limit else text[: limit - 40] + f"\n... ({len(text) - limit + 40} more characters)"


def workload_result(suite: Suite, test: str, record: Optional[Dict[str, Any]], diff: Optional[str],
                    missing_reason: str, runner: str = PG_REGRESS) -> Dict[str, Any]:
    """One test file (or spec) as a workload of kind regress."""
    wl = suite.workload
    result: Dict[str, Any] = {
        "name": suite.name_of(test, runner), "kind": "regress", "status": "passed", "iterations": 0,
        "duration_s": 0.0, "mode": wl.mode, "error": None, "log_excerpt": None, "dropped": 0, "suppressed": 0,
        "scenario": None, "violations": [], "diff": diff, "regress": None,
    }
    expected = f"expected/{test}.out"
    if record is None:
        result.update(status="error", error={"message": f"{runner} did not run this test: {missing_reason}",
                                             "sqlstate": None})
        return result
    result.update(
        iterations=int(record.get("passes") or 0), duration_s=float(record.get("duration_s") or 0.0),
        dropped=int(record.get("dropped") or 0), log_excerpt=record.get("log_excerpt"),
        violations=[v for v in record.get("violations") or [] if keep_violation(v, wl)],
        regress={"passes": int(record.get("passes") or 0), "repeat_errors": int(record.get("repeat_errors") or 0),
                 "notes": [str(n) for n in record.get("notes") or []], "runner": runner},
    )
    status = record.get("status") or "error"
    if status != "passed":
        result.update(status=status, error={"message": str(record.get("error") or status), "sqlstate": None})
    elif diff:
        result.update(status="failed", error={"message": f"the test's output differs from {expected} "
                                                         "(the diff is below)", "sqlstate": None})
    elif result["violations"]:
        result["status"] = "violations"
    return result


def _copy(directory: Path, dest: Path) -> Path:
    target = dest / directory.name
    shutil.copytree(directory, target, symlinks=True, ignore=shutil.ignore_patterns(*_IGNORE))
    return target


def run_suite(suite: Suite, cfg: Config, pg_config: str, socket_dir: str, port: int, user: str,
              server_log: Path, progress: Progress = lambda _m: None,
              pkglibdir: Optional[str] = None) -> List[Dict[str, Any]]:
    """`make installcheck` of the suite's directory (a private copy), once for REGRESS and once for ISOLATION,
    every test measured; one workload dict per test file and spec. A failing test is a result (status failed,
    with its diff), never an exception; so is a test program that stopped early (the tests it did not reach:
    status error)."""
    wl = suite.workload
    ext = cfg.extension
    make_args = pgxs.make_args(ext.make_args if ext else ())
    total = sum(len(tests) for _, tests in suite.runs())
    started = time.monotonic()
    progress(f"{wl.name}: {total} test file(s) in {suite.directory}; "
             + WHY_REPEAT.format(n=wl.iterations, r=wl.iterations - 1))
    results: List[Dict[str, Any]] = []
    with tempfile.TemporaryDirectory(prefix="pgmc-regress-") as tmp:
        work = Path(tmp)
        os.chmod(work, 0o755)
        copy = _copy(suite.directory, work)
        launcher = launcher_script(work)
        for runner, tests in suite.runs():
            ticker = _Ticker(work / f"progress-{runner}.jsonl", suite, runner, len(results), total, progress)
            if runner == PG_ISOLATION_REGRESS and pkglibdir and not isolation_program(pkglibdir).is_file():
                reason = (f"this PostgreSQL has no {isolation_program(pkglibdir)}, which PGXS runs the specs with "
                          "(PostgreSQL installs it from version 14 on; Debian ships it in postgresql-client-N)")
                results += [workload_result(suite, t, None, None, reason, runner) for t in tests]
                continue
            records = work / "records" / runner
            records.mkdir(parents=True)
            env = suite_env(os.environ, wl, socket_dir, port, user, records, launcher, server_log, ticker.path)
            cmd = ["make", "--no-print-directory", "-C", str(copy), f"PG_CONFIG={pg_config}", *make_args,
                   *_ONLY[runner], "installcheck"]
            deadline = wl.timeout_s * len(tests) * 1.5 + 300
            output = work / f"make-{runner}.log"
            with open(output, "wb") as log:
                proc = subprocess.Popen(cmd, env=env, stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT,
                                        start_new_session=True)
                try:
                    rc = _wait(proc, deadline, ticker.tick)
                finally:
                    if proc.poll() is None:
                        _killpg(proc)
            ticker.tick()
            tail = "\n".join(output.read_text(errors="replace").splitlines()[-OUTPUT_TAIL_LINES:])
            diffs_file = copy / suite.outputdir(runner) / "regression.diffs"
            diffs = split_diffs(diffs_file.read_text(errors="replace")) if diffs_file.is_file() else {}
            reason = (f"make installcheck exited with status {rc} before reaching it" if rc is not None
                      else f"make installcheck ran past {deadline:.0f}s and was stopped")
            for test in tests:
                record = _read_record(records / f"{test}.json")
                result = workload_result(suite, test, record, diffs.get(test), reason, runner)
                if record is None:
                    result["log_excerpt"] = tail
                results.append(result)
    progress(f"{wl.name}: {total} test file(s), {wl.iterations} pass(es) each, in {time.monotonic() - started:.1f}s")
    return results


class _Ticker:
    """Forwards the launcher's progress (JSON lines it appends to `path`) as readable lines, numbered across
    the whole suite: `[3/14] companies: pass 1/4 ...`."""

    def __init__(self, path: Path, suite: Suite, runner: str, done_before: int, total: int,
                 progress: Progress) -> None:
        self.path = path
        self.suite = suite
        self.runner = runner
        self.offset = 0
        self.index = {t: done_before + i + 1 for i, t in enumerate(dict(suite.runs())[runner])}
        self.total = total
        self.progress = progress

    def tick(self) -> None:
        try:
            with open(self.path, "rb") as fh:
                fh.seek(self.offset)
                data = fh.read()
        except OSError:
            return
        complete = data[: data.rfind(b"\n") + 1]
        self.offset += len(complete)
        for line in complete.decode("utf-8", errors="replace").splitlines():
            try:
                event = json.loads(line)
            except ValueError:
                continue
            if isinstance(event, dict):
                text = describe_event(event, self.runner)
                if text:
                    test = str(event.get("test"))
                    where = f"[{self.index.get(test, '?')}/{self.total}] {self.suite.name_of(test, self.runner)}"
                    self.progress(f"{self.suite.workload.name} {where}: {text}")


def describe_event(event: Dict[str, Any], runner: str = PG_REGRESS) -> Optional[str]:
    """One launcher event as text: a pass starting, the repeats starting, a test done."""
    kind, passes = event.get("event"), event.get("passes")
    if kind == "start":
        how = "as pg_isolation_regress runs it" if runner == PG_ISOLATION_REGRESS else "as pg_regress runs it"
        return f"pass 1/{passes} ({how}, output compared with expected/)"
    if kind == "repeat":
        first, how = event.get("first"), ("isolationtester again" if runner == PG_ISOLATION_REGRESS
                                           else "in one session")
        span = f"pass {first}" if first == passes else f"passes {first}-{passes}"
        return f"{span}/{passes} ({how}, on a copy of the test's database, to tell a leak from a cache)"
    if kind == "done":
        count = event.get("violations")
        found = f", {count} violation row(s)" if isinstance(count, int) else ""
        return f"{event.get('status')}{found}, {event.get('duration_s')}s"
    return None


def _read_record(path: Path) -> Optional[Dict[str, Any]]:
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    return data if isinstance(data, dict) else None


def _wait(proc: subprocess.Popen, deadline_s: float, tick: Callable[[], None] = lambda: None) -> Optional[int]:
    end = time.monotonic() + deadline_s
    while time.monotonic() < end:
        try:
            return proc.wait(timeout=0.5)
        except subprocess.TimeoutExpired:
            tick()
    return None


def _killpg(proc: subprocess.Popen) -> None:
    try:
        os.killpg(proc.pid, signal.SIGKILL)
    except OSError:
        pass
    proc.wait()


__all__: Sequence[str] = ["Suite", "plan", "run_suite", "split_diffs", "workload_result"]
