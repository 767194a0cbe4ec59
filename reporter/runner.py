"""Run the configured workloads on a private cluster and collect the violations into a results dict.

The only module that talks to PostgreSQL during a run. It formats nothing: progress goes to a callback,
results come back as data (see docs/interfaces.md section 3).
"""

from __future__ import annotations

import datetime as dt
import re
import shutil
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Callable, Dict, List, Optional, Tuple

import psycopg
from psycopg import sql
from psycopg.rows import dict_row

from reporter import __version__
from reporter.cluster import HOOK_LIBRARY, Cluster, ClusterError
from reporter.config import Config, Workload
from reporter.results import SCHEMA_VERSION, Results

Progress = Callable[[str], None]

# Lines of the server log worth quoting for a workload that went wrong.
_LOG_MARKERS = (
    "terminated by signal",
    "Failed process was running",
    "server process",
    "reinitializing",
    "PANIC",
    "TRAP",
    "was terminated",
)
_MAX_EXCERPT_LINES = 60
_CRASH_SQLSTATES = ("57P02",)  # crash_shutdown: "terminating connection because of crash of another..."
_RECOVERY_TIMEOUT_S = 120

VIOLATION_COLUMNS = (
    "id, seq, ts, backend_pid, check_type, severity, detail, source_lib, context_name, context_path, depth, "
    "used_delta, allocated_delta, bytes_per_iteration, iterations, phase"
)


def utc_now() -> str:
    return dt.datetime.now(dt.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


def iso_ts(value: dt.datetime | None) -> str | None:
    if value is None:
        return None
    return value.astimezone(dt.timezone.utc).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def like_to_regex(pattern: str) -> re.Pattern:
    """SQL LIKE (% and _, backslash escapes) as a Python regex, so filtering matches what begin() does."""
    out, i = [], 0
    while i < len(pattern):
        ch = pattern[i]
        if ch == "\\" and i + 1 < len(pattern):
            out.append(re.escape(pattern[i + 1]))
            i += 2
            continue
        out.append(".*" if ch == "%" else "." if ch == "_" else re.escape(ch))
        i += 1
    return re.compile("".join(out), re.DOTALL)


def keep_violation(row: Dict[str, Any], wl: Workload) -> bool:
    """The workload's context pattern and allowlist: an allowed context may be allocated in
    (wrong_ctx_alloc is dropped there) but still may not grow without bound (context_leak stays)."""
    name = row.get("context_name") or ""
    if wl.context_pattern and not like_to_regex(wl.context_pattern).fullmatch(name):
        return False
    return not (row.get("check_type") == "wrong_ctx_alloc" and name in wl.allowed_contexts)


def to_violation(row: Dict[str, Any], samples: Samples) -> Dict[str, Any]:
    def as_int(v: Any) -> int | None:
        return None if v is None else int(v)

    rate = None if row["bytes_per_iteration"] is None else float(row["bytes_per_iteration"])
    return {
        "check_type": row["check_type"],
        "severity": str(row["severity"]).upper(),
        "context": row["context_name"],
        "context_path": row["context_path"],
        "depth": as_int(row["depth"]),
        "used_delta": as_int(row["used_delta"]),
        "allocated_delta": as_int(row["allocated_delta"]),
        "bytes_per_iteration": rate,
        "iterations": as_int(row["iterations"]),
        "source_lib": row["source_lib"],
        "phase": row["phase"],
        "detail": row["detail"] or "",
        "backend_pid": as_int(row["backend_pid"]),
        "ts": iso_ts(row["ts"]),
        "samples": pick_samples(samples, row["context_path"], rate) if row["phase"] == "scenario" else None,
        "suppressed_by": None,
    }


# context path -> [(bytes_per_iteration, samples)]: a path can appear twice (its own growth, its children's).
Samples = Dict[str, List[Tuple[Optional[float], List[int]]]]


def scenario_samples(scenario: Dict[str, Any] | None) -> Samples:
    """Each context's used bytes at every checkpoint, from run_scenario's jsonb."""
    out: Samples = {}
    for ctx in (scenario or {}).get("contexts") or []:
        path, samples, rate = ctx.get("path"), ctx.get("samples"), ctx.get("bytes_per_iteration")
        if isinstance(path, str) and isinstance(samples, list):
            values = [int(s) for s in samples if isinstance(s, (int, float)) and not isinstance(s, bool)]
            out.setdefault(path, []).append((float(rate) if isinstance(rate, (int, float)) else None, values))
    return out


def pick_samples(samples: Samples, path: str | None, rate: float | None) -> List[int] | None:
    """The samples of the scenario context this violation came from: same path, closest rate."""
    candidates = samples.get(path or "")
    if not candidates:
        return None
    if rate is None:
        return candidates[0][1]
    return min(candidates, key=lambda c: abs((c[0] if c[0] is not None else float("inf")) - rate))[1]


def empty_workload(wl: Workload) -> Dict[str, Any]:
    return {
        "name": wl.name,
        "kind": wl.kind,
        "status": "passed",
        "iterations": 0,
        "duration_s": 0.0,
        "mode": wl.mode,
        "error": None,
        "log_excerpt": None,
        "dropped": 0,
        "suppressed": 0,
        "scenario": None,
        "violations": [],
    }


class Admin:
    """The superuser connection that flushes and reads the log; reconnects after a crash-restart."""

    def __init__(self, cluster: Cluster) -> None:
        self.cluster = cluster
        self._conn: psycopg.Connection | None = None

    @property
    def conn(self) -> psycopg.Connection:
        if self._conn is None or self._conn.closed or self._conn.broken:
            self._conn = self.cluster.connect()
        return self._conn

    def execute(self, query: str, params: Tuple[Any, ...] = ()) -> List[Tuple[Any, ...]]:
        """One statement; after a crash-restart our old session is gone, so reconnect once and retry."""
        try:
            return self.conn.execute(query, params or None).fetchall()
        except psycopg.OperationalError:
            if self._conn is not None:
                self._conn.close()
            self._conn = None
            return self.conn.execute(query, params or None).fetchall()

    def close(self) -> None:
        if self._conn is not None:
            self._conn.close()

    def status(self) -> Dict[str, int]:
        row = self.execute("SELECT capacity, pending, written, dropped, next_seq FROM ext_memcheck.status()")[0]
        return {"capacity": int(row[0]), "dropped": int(row[3]), "next_seq": int(row[4])}

    def flush(self) -> None:
        self.execute("SELECT ext_memcheck.flush_violations()")

    def last_id(self) -> int:
        return int(self.conn.execute("SELECT coalesce(max(id), 0) FROM ext_memcheck.violation_log").fetchone()[0])

    def violations_after(self, last_id: int, min_seq: int | None) -> List[Dict[str, Any]]:
        query = f"SELECT {VIOLATION_COLUMNS} FROM ext_memcheck.violation_log WHERE id > %s"
        params: Tuple[Any, ...] = (last_id,)
        if min_seq is not None:
            query += " AND seq >= %s"
            params += (min_seq,)
        query += " AND backend_pid <> pg_backend_pid() ORDER BY id"
        with self.conn.cursor(row_factory=dict_row) as cur:
            cur.execute(query, params)
            return list(cur.fetchall())


class Runner:
    def __init__(self, cfg: Config, cluster: Cluster, progress: Progress = lambda _m: None) -> None:
        self.cfg = cfg
        self.cluster = cluster
        self.admin = Admin(cluster)
        self.progress = progress

    # -- setup ----------------------------------------------------------------------------------

    def setup(self) -> None:
        """CREATE EXTENSION pg_ext_memcheck (+ the extension under test), then the user's setup SQL."""
        conn = self.admin.conn
        conn.execute(f"CREATE EXTENSION IF NOT EXISTS {HOOK_LIBRARY}")
        ext = self.cfg.extension
        if ext is not None and self._should_create(ext.name, ext.create):
            conn.execute(sql.SQL("CREATE EXTENSION IF NOT EXISTS {}").format(sql.Identifier(ext.name)))
        for text in self.cfg.setup:
            conn.execute(text)

    def _should_create(self, name: str, create: bool | None) -> bool:
        if create is not None:
            return create
        return (Path(self.cluster.info.sharedir) / "extension" / f"{name}.control").is_file()

    # -- one workload ---------------------------------------------------------------------------

    @contextmanager
    def _workload_connection(self, wl: Workload) -> Iterator[psycopg.Connection]:
        conn = self.cluster.connect()
        try:
            conn.execute(sql.SQL("SET statement_timeout = {}").format(sql.Literal(f"{int(wl.timeout_s * 1000)}ms")))
            for key, value in self.cfg.thresholds.items():
                # key comes from the schema's fixed set, so it is safe to splice into the statement.
                conn.execute(sql.SQL(f"SET {HOOK_LIBRARY}.{key} = ") + sql.Literal(int(value)))
            # The mode last: the statements above are set-up, not part of what is measured.
            conn.execute(sql.SQL(f"SET {HOOK_LIBRARY}.memcheck_mode = ") + sql.Literal(wl.mode))
            yield conn
        finally:
            conn.close()

    def _execute(self, wl: Workload, result: Dict[str, Any], label: str) -> None:
        """Run the workload's SQL; exceptions propagate to the caller, which classifies them."""
        with self._workload_connection(wl) as conn:
            result["_pid"] = conn.info.backend_pid
            if wl.scenario is not None:
                self.progress(f"{label}: run_scenario({wl.scenario}, {wl.iterations} iterations)")
                row = conn.execute(
                    "SELECT ext_memcheck.run_scenario(%s, %s, %s)", (wl.scenario, wl.iterations, wl.sql)
                ).fetchone()
                result["scenario"] = row[0] if row else None
                result["iterations"] = wl.iterations
                return
            deadline = time.monotonic() + wl.timeout_s
            step = max(1, wl.iterations // 10)
            for i in range(wl.iterations):
                # statement_timeout bounds each statement; this bounds their sum.
                if time.monotonic() > deadline:
                    raise _WorkloadTimeout(f"workload exceeded its timeout of {wl.timeout_s:g}s after {i} iterations")
                conn.execute(wl.sql)
                result["iterations"] = i + 1
                if (i + 1) % step == 0 or i + 1 == wl.iterations:
                    self.progress(f"{label}: iteration {i + 1}/{wl.iterations}")

    def run_workload(self, wl: Workload, label: str) -> Dict[str, Any]:
        result = empty_workload(wl)
        self.admin.flush()  # anything pending belongs to what ran before, not to this workload
        before = self.admin.status()
        last_id = self.admin.last_id()
        log_offset = self.cluster.log_size()
        started = time.monotonic()
        crashed = False
        try:
            self._execute(wl, result, label)
        except _WorkloadTimeout as exc:
            result.update(status="timeout", error={"message": str(exc), "sqlstate": None})
        except psycopg.errors.QueryCanceled as exc:
            result.update(status="timeout", error=_error(exc))
        except psycopg.Error as exc:
            crashed = self._crashed(exc)
            result.update(status="crashed" if crashed else "error", error=_error(exc))
        result["duration_s"] = round(time.monotonic() - started, 3)
        pid = result.pop("_pid", None)
        if crashed:
            self.progress(f"{label}: backend crashed; waiting for the server to recover")
            self._await_restart(log_offset)
            self.cluster.wait_ready(_RECOVERY_TIMEOUT_S)
        if result["status"] != "passed":
            result["log_excerpt"] = log_excerpt(self.cluster.read_log(log_offset), pid)
        self.admin.flush()
        after = self.admin.status()
        # A crash-restart reinitialises the ring: sequence numbers and counters start again.
        restarted = after["next_seq"] < before["next_seq"] or after["dropped"] < before["dropped"]
        rows = self.admin.violations_after(last_id, None if restarted else before["next_seq"])
        result["dropped"] = after["dropped"] - (0 if restarted else before["dropped"])
        samples = scenario_samples(result["scenario"])
        result["violations"] = [to_violation(r, samples) for r in rows if keep_violation(r, wl)]
        if result["status"] == "passed" and result["violations"]:
            result["status"] = "violations"
        return result

    def _await_restart(self, log_offset: int, timeout: float = 15) -> None:
        """Connections can still succeed in the moment before the postmaster notices the dead backend;
        wait for its report so that wait_ready sees the restarted server, not the dying one."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            text = self.cluster.read_log(log_offset)
            if "reinitializing" in text or "shutting down because" in text:
                return
            time.sleep(0.1)

    def _crashed(self, exc: psycopg.Error) -> bool:
        """The backend died under us (segfault, abort): the connection broke with no SQL error, or the
        postmaster killed every backend because another one crashed. A FATAL with an SQLSTATE (say
        pg_terminate_backend) is an error: the server is fine."""
        if exc.sqlstate in _CRASH_SQLSTATES:
            return True
        return exc.sqlstate is None and isinstance(exc, psycopg.OperationalError)


class _WorkloadTimeout(Exception):
    pass


def _error(exc: psycopg.Error) -> Dict[str, str | None]:
    diag = exc.diag
    message = (diag.message_primary if diag and diag.message_primary else str(exc)).strip()
    return {"message": message, "sqlstate": exc.sqlstate}


def log_excerpt(text: str, pid: int | None) -> str | None:
    """The server-log lines about this workload: its backend's lines and the postmaster's crash report."""
    lines = text.splitlines()
    marker = f"[{pid}]" if pid else None
    picked = [ln for ln in lines if (marker and marker in ln) or any(m in ln for m in _LOG_MARKERS)]
    picked = picked or lines[-20:]
    if not picked:
        return None
    return "\n".join(picked[:_MAX_EXCERPT_LINES])


def preload_libraries(cfg: Config) -> List[str]:
    """shared_preload_libraries: the hook library first, then the extension under test, then `preload`."""
    libs = [HOOK_LIBRARY]
    if cfg.extension is not None and cfg.extension.preload:
        libs.append(cfg.extension.name)
    return libs + list(cfg.preload)


def run(
    cfg: Config,
    pg_config: str,
    output: Path,
    github: Dict[str, Any],
    progress: Progress = lambda _m: None,
) -> Results:
    """Start a private cluster, run setup and every workload, stop it; copy DIR/server.log; return results."""
    output = Path(output)
    output.mkdir(parents=True, exist_ok=True)
    started_at = utc_now()
    cluster = Cluster(pg_config, preload=preload_libraries(cfg), settings=dict(cfg.settings))
    results: Results = {
        "schema_version": SCHEMA_VERSION,
        "tool": {"name": "pg-ext-memcheck", "version": __version__},
        "postgresql": {"version": cluster.info.version, "major": cluster.info.major, "pg_config": pg_config},
        "config": {"path": str(cfg.path), "digest": cfg.digest},
        "started_at": started_at,
        "finished_at": started_at,
        "thresholds": dict(cfg.thresholds),
        "fail_on": cfg.fail_on,
        "github": github,
        "ring": {"capacity": 0, "dropped": 0},
        "workloads": [],
    }
    try:
        progress(f"starting PostgreSQL {cluster.info.version} (preload: {','.join(cluster.preload)})")
        try:
            cluster.init()
            cluster.start()
        except ClusterError as exc:
            try:  # pg_ctl may give up waiting on a server that still comes up later
                cluster.stop(mode="immediate")
            except ClusterError:
                pass
            results["workloads"] = [
                _not_run(wl, f"the server did not start: {_first_line(exc)}", exc) for wl in cfg.workloads
            ]
            return results
        runner = Runner(cfg, cluster, progress)
        try:
            _run_all(runner, cfg, results, progress)
        finally:
            runner.admin.close()
            try:
                cluster.stop()
            except ClusterError as exc:
                # A server that died for good must not cost us the results gathered so far.
                progress(f"could not stop the server cleanly: {_first_line(exc)}")
    finally:
        results["finished_at"] = utc_now()
        if cluster.log_path.exists():
            shutil.copyfile(cluster.log_path, output / "server.log")
        cluster.cleanup()
    return results


def _run_all(runner: Runner, cfg: Config, results: Results, progress: Progress) -> None:
    try:
        progress("running setup")
        runner.setup()
    except psycopg.Error as exc:
        message = f"setup failed: {_error(exc)['message']}"
        progress(message)
        results["workloads"] = [_not_run(wl, message, exc) for wl in cfg.workloads]
        return
    results["ring"]["capacity"] = runner.admin.status()["capacity"]
    total = len(cfg.workloads)
    for n, wl in enumerate(cfg.workloads, 1):
        label = f"[{n}/{total}] {wl.name}"
        progress(f"{label}: {wl.kind}, {wl.iterations} iteration(s), mode {wl.mode}")
        try:
            result = runner.run_workload(wl, label)
        except (psycopg.Error, ClusterError) as exc:
            # Bookkeeping around the workload failed (the server went away between statements, say):
            # still a result, and the remaining workloads run if the server comes back.
            result = _not_run(wl, f"could not run or collect this workload: {_first_line(exc)}", exc)
            try:
                runner.cluster.wait_ready(_RECOVERY_TIMEOUT_S)
            except ClusterError as down:
                results["workloads"].append(result)
                for rest in cfg.workloads[n:]:
                    results["workloads"].append(_not_run(rest, "not run: the server did not recover", down))
                break
        progress(f"{label}: {result['status']} ({len(result['violations'])} violation(s), {result['duration_s']}s)")
        results["workloads"].append(result)
    results["ring"]["dropped"] = sum(w["dropped"] for w in results["workloads"])


def _not_run(wl: Workload, message: str, exc: Exception) -> Dict[str, Any]:
    """A workload that could not run at all is still a result: an error saying why."""
    result = empty_workload(wl)
    sqlstate = getattr(exc, "sqlstate", None)
    result.update(status="error", error={"message": message, "sqlstate": sqlstate}, log_excerpt=str(exc)[-4000:])
    return result


def _first_line(exc: BaseException) -> str:
    lines = str(exc).strip().splitlines()
    return lines[0] if lines else type(exc).__name__
