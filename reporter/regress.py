"""The extension's own regression suite as workloads: `make installcheck` against the private cluster.

pg_regress does everything it always does (creates the test database, loads REGRESS_OPTS' extensions, sets its
environment, compares each test's output with expected/ and its alternatives), with two additions passed in
EXTRA_REGRESS_OPTS: `--max-concurrent-tests=1` (a schedule's parallel groups run one test at a time, so that
findings belong to one test) and `--launcher`, reporter/regress_launch.py, which measures each test file in a
window of its own and repeats it for growth judgement (see there). PGOPTIONS switches measuring on in every
session pg_regress and its psql open.

This module starts make and reads what came back (each test's record, pg_regress's regression.diffs); the
launcher is the part that talks to PostgreSQL. Results are workload dicts of kind `regress`, one per test file,
in REGRESS order.
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
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Dict, List, Mapping, Optional, Sequence

from reporter import pgxs
from reporter.config import Config, ConfigError, Workload

# What the runner tells the launcher (reporter/regress_launch.py) through pg_regress's environment.
ENV_DIR = "PG_EXT_MEMCHECK_REGRESS_DIR"  # where each test's record goes (NAME.json)
ENV_ITERATIONS = "PG_EXT_MEMCHECK_REGRESS_ITERATIONS"
ENV_TIMEOUT = "PG_EXT_MEMCHECK_REGRESS_TIMEOUT"
ENV_LOG = "PG_EXT_MEMCHECK_REGRESS_SERVER_LOG"
DIFF_LIMIT = 20_000
OUTPUT_TAIL_LINES = 40
# Build products and earlier test output that must not travel into the private copy.
_IGNORE = ("*.o", "*.so", "*.bc", ".deps", ".git", "results", "regression.diffs", "regression.out", "log",
           "tmp_check")
PACKAGE_ROOT = Path(__file__).resolve().parent.parent
Progress = Callable[[str], None]


@dataclass(frozen=True)
class Suite:
    """One regress workload entry and the test files its Makefile lists."""

    workload: Workload
    directory: Path
    tests: List[str]

    def name_of(self, test: str) -> str:
        return f"{self.workload.name}/{test}" if self.workload.named else test


def plan(cfg: Config, pg_config: str) -> List[Suite]:
    """The suites of cfg's regress entries, their tests read from the Makefile (REGRESS); ConfigError when
    there is nothing to run or a test's name collides with another workload's."""
    entries = [wl for wl in cfg.workloads if wl.kind == "regress"]
    if not entries:
        return []
    ext = cfg.extension
    assert ext is not None and ext.path is not None  # config.load checked it
    try:
        found = pgxs.makefile_vars(ext.path, pg_config, ["REGRESS"], ext.make_args)
    except pgxs.PgxsError as exc:
        raise ConfigError([f"{cfg.locate('workloads')}: regress: {exc}"]) from None
    tests = pgxs.words(found["REGRESS"])
    if not tests:
        raise ConfigError([f"{cfg.locate('workloads')}: regress: {ext.path}/Makefile lists no REGRESS tests, "
                           "so `make installcheck` has nothing to run; add REGRESS (and sql/, expected/) or "
                           "write workloads in memcheck.yml"])
    suites = [Suite(wl, ext.path, tests) for wl in entries]
    names = {wl.name for wl in cfg.workloads if wl.kind != "regress"}
    clashes = sorted(names & {s.name_of(t) for s in suites for t in s.tests})
    if clashes:
        raise ConfigError([f"{cfg.locate('workloads')}: regression test {', '.join(clashes)} has the name of a "
                           "workload; give the regress entry a name (its tests become NAME/test)"])
    return suites


def pg_options(wl: Workload, thresholds: Mapping[str, int], inherited: str = "") -> str:
    """PGOPTIONS for every session of the suite: measuring on, the thresholds; what was set before stays."""
    ours = [f"-c pg_ext_memcheck.memcheck_mode={wl.mode}"]
    ours += [f"-c pg_ext_memcheck.{key}={int(value)}" for key, value in thresholds.items()]
    return " ".join([*ours, inherited]).strip()


def launcher_script(directory: Path) -> Path:
    """A tiny shell script for --launcher: the path needs no quoting inside pg_regress's command line."""
    script = directory / "pgmc-launch"
    python = shlex.quote(sys.executable)
    root = shlex.quote(str(PACKAGE_ROOT))
    script.write_text(f'#!/bin/sh\nPYTHONPATH={root}${{PYTHONPATH:+:$PYTHONPATH}} exec {python} -m '
                      f'reporter.regress_launch "$@"\n', encoding="utf-8")
    script.chmod(0o755)
    return script


def suite_env(base: Mapping[str, str], wl: Workload, thresholds: Mapping[str, int], socket_dir: str, port: int,
              user: str, records: Path, launcher: Path, server_log: Path) -> Dict[str, str]:
    env = {k: v for k, v in base.items() if k not in ("PGDATABASE", "PGSERVICE", "PGSERVICEFILE", "PGHOSTADDR",
                                                        "PGAPPNAME", "MAKEFLAGS", "MFLAGS")}
    env.update({
        "PGHOST": socket_dir, "PGPORT": str(port), "PGUSER": user,
        "PGOPTIONS": pg_options(wl, thresholds, base.get("PGOPTIONS", "")),
        "EXTRA_REGRESS_OPTS": " ".join(filter(None, [base.get("EXTRA_REGRESS_OPTS", ""),
                                                     f"--launcher={launcher}", "--max-concurrent-tests=1"])),
        ENV_DIR: str(records),
        ENV_ITERATIONS: str(wl.iterations),
        ENV_TIMEOUT: str(wl.timeout_s),
        ENV_LOG: str(server_log),
    })
    return env


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
                    missing_reason: str) -> Dict[str, Any]:
    """One test file as a workload of kind regress."""
    wl = suite.workload
    result: Dict[str, Any] = {
        "name": suite.name_of(test), "kind": "regress", "status": "passed", "iterations": 0, "duration_s": 0.0,
        "mode": wl.mode, "error": None, "log_excerpt": None, "dropped": 0, "suppressed": 0, "scenario": None,
        "violations": [], "diff": diff, "regress": None,
    }
    if record is None:
        result.update(status="error", error={"message": f"pg_regress did not run this test: {missing_reason}",
                                             "sqlstate": None})
        return result
    from reporter.runner import keep_violation

    result.update(
        iterations=int(record.get("passes") or 0), duration_s=float(record.get("duration_s") or 0.0),
        dropped=int(record.get("dropped") or 0), log_excerpt=record.get("log_excerpt"),
        violations=[v for v in record.get("violations") or [] if keep_violation(v, wl)],
        regress={"passes": int(record.get("passes") or 0), "repeat_errors": int(record.get("repeat_errors") or 0),
                 "notes": [str(n) for n in record.get("notes") or []]},
    )
    status = record.get("status") or "error"
    if status != "passed":
        result.update(status=status, error={"message": str(record.get("error") or status), "sqlstate": None})
    elif diff:
        result.update(status="failed", error={"message": f"the test's output differs from expected/{test}.out "
                                                         "(the diff is below)", "sqlstate": None})
    elif result["violations"]:
        result["status"] = "violations"
    return result


def _copy(directory: Path, dest: Path) -> Path:
    target = dest / directory.name
    shutil.copytree(directory, target, symlinks=True, ignore=shutil.ignore_patterns(*_IGNORE))
    return target


def run_suite(suite: Suite, cfg: Config, pg_config: str, socket_dir: str, port: int, user: str,
              server_log: Path, progress: Progress = lambda _m: None) -> List[Dict[str, Any]]:
    """`make installcheck` of the suite's directory (a private copy), every test measured; one workload dict
    per test file, in REGRESS order. A failing test is a result (status failed, with its diff), never an
    exception; so is a pg_regress that stopped early (the tests it did not reach: status error)."""
    wl = suite.workload
    ext = cfg.extension
    make_args = ext.make_args if ext else ()
    with tempfile.TemporaryDirectory(prefix="pgmc-regress-") as tmp:
        work = Path(tmp)
        os.chmod(work, 0o755)
        copy = _copy(suite.directory, work)
        records = work / "records"
        records.mkdir()
        env = suite_env(os.environ, wl, cfg.thresholds, socket_dir, port, user, records, launcher_script(work),
                        server_log)
        cmd = ["make", "--no-print-directory", "-C", str(copy), f"PG_CONFIG={pg_config}", *make_args,
               "installcheck"]
        progress(f"{wl.name}: make installcheck ({len(suite.tests)} test(s), {wl.iterations} pass(es) each)")
        deadline = wl.timeout_s * len(suite.tests) * 1.5 + 300
        output = work / "make.log"
        with open(output, "wb") as log:
            proc = subprocess.Popen(cmd, env=env, stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT,
                                    start_new_session=True)
            try:
                rc = _wait(proc, deadline)
            finally:
                if proc.poll() is None:
                    _killpg(proc)
        tail = "\n".join(output.read_text(errors="replace").splitlines()[-OUTPUT_TAIL_LINES:])
        diffs_file = copy / "regression.diffs"
        diffs = split_diffs(diffs_file.read_text(errors="replace")) if diffs_file.is_file() else {}
        reason = (f"make installcheck exited with status {rc} before reaching it" if rc is not None
                  else f"make installcheck ran past {deadline:.0f}s and was stopped")
        results = []
        for test in suite.tests:
            record = _read_record(records / f"{test}.json")
            result = workload_result(suite, test, record, diffs.get(test), reason)
            if record is None:
                result["log_excerpt"] = tail
            results.append(result)
        return results


def _read_record(path: Path) -> Optional[Dict[str, Any]]:
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    return data if isinstance(data, dict) else None


def _wait(proc: subprocess.Popen, deadline_s: float) -> Optional[int]:
    end = time.monotonic() + deadline_s
    while time.monotonic() < end:
        try:
            return proc.wait(timeout=1.0)
        except subprocess.TimeoutExpired:
            continue
    return None


def _killpg(proc: subprocess.Popen) -> None:
    try:
        os.killpg(proc.pid, signal.SIGKILL)
    except OSError:
        pass
    proc.wait()


__all__: Sequence[str] = ["Suite", "plan", "run_suite", "split_diffs", "workload_result"]
