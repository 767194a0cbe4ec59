"""Run the configured workloads on a private cluster and collect the violations into a results dict.

The only module that talks to PostgreSQL during a run. It formats nothing: progress goes to a callback,
results come back as data (see docs/interfaces.md section 3).
"""

from __future__ import annotations

import datetime as dt
import re
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Callable, Dict, List, Optional, Sequence, Tuple

import psycopg
from psycopg import sql
from psycopg.rows import dict_row

from reporter import __version__, apiguard, files, regress
from reporter.cluster import HOOK_LIBRARY, PORT, BackendsCrash, Cluster, ClusterError
from reporter.config import Config, ConfigError, Workload
from reporter.ctxfilter import keep_violation
from reporter.results import SCHEMA_VERSION, Results
from reporter.watchdog import Watchdog

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
# Between the watchdog's cancel and its terminate (and between terminate and giving up on the backend).
CANCEL_GRACE_S = 5.0

VIOLATION_COLUMNS = (
    "id, seq, ts, backend_pid, check_type, severity, detail, source_lib, context_name, context_path, depth, "
    "used_delta, allocated_delta, bytes_per_iteration, iterations, phase, lifetime, verdict, rate_bytes, "
    "rate_unit, calls, occurrences, entry, sites, finding_id"
)
# Every setting of the hook library is read back after each workload: those the runner sets in the session
# (the mode, the thresholds) must still have its values, every other one (bloat_min_bytes, ...) the value the
# run started with, so that a workload that changes one (SET, or ALTER SYSTEM and a reload, which reaches the
# later workloads too) is flagged in its own window and in every later one.
# Read back as prepared statements planned before the window opened: parameterless, so the generic plan is
# reused and neither the planner nor parse analysis runs again inside the window, and an extension's planner or
# parse hook is not charged for the runner's own statements.
_SETTINGS_SQL = ("SELECT name, setting, source, sourcefile FROM pg_catalog.pg_settings "
                 f"WHERE name LIKE '{HOOK_LIBRARY}.%'")
_END_SQL = 'SELECT * FROM ext_memcheck."end"()'
# Errors of concurrent sessions that are findings about concurrency, not failures of the workload.
_CONCURRENCY_SQLSTATES = {"40P01": "deadlock", "55P03": "lock timeout"}
# How long concurrent sessions wait for each other at the start line.
_START_LINE_S = 30.0


def utc_now() -> str:
    return dt.datetime.now(dt.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


def iso_ts(value: dt.datetime | None) -> str | None:
    if value is None:
        return None
    return value.astimezone(dt.timezone.utc).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def to_violation(row: Dict[str, Any], samples: Samples) -> Dict[str, Any]:
    def as_int(v: Any) -> int | None:
        return None if v is None else int(v)

    rate = None if row["bytes_per_iteration"] is None else float(row["bytes_per_iteration"])
    rate_bytes = row.get("rate_bytes")
    finding_id = row.get("finding_id")
    return {
        "check_type": row["check_type"],
        "severity": str(row["severity"]).upper(),
        "context": row["context_name"],
        "context_path": row["context_path"],
        "depth": as_int(row["depth"]),
        "used_delta": as_int(row["used_delta"]),
        "allocated_delta": as_int(row["allocated_delta"]),
        "bytes_per_iteration": rate,
        "iterations": as_int(row.get("iterations")),
        "source_lib": row["source_lib"],
        "phase": row["phase"],
        "detail": row["detail"] or "",
        "backend_pid": as_int(row["backend_pid"]),
        "ts": iso_ts(row["ts"]),
        "samples": pick_samples(samples, row["context_path"], rate),
        "suppressed_by": None,
        "lifetime": row.get("lifetime"),
        "verdict": row.get("verdict"),
        "rate": None if rate_bytes is None else {"bytes": float(rate_bytes), "unit": row.get("rate_unit")},
        "calls": as_int(row.get("calls")),
        "rows": None,
        "occurrences": as_int(row.get("occurrences")),
        "entry": row.get("entry"),
        "sites": [dict(s) for s in (row.get("sites") or []) if isinstance(s, dict)],
        "finding_id": None if finding_id is None else f"{row['backend_pid']}:{finding_id}",
    }


def latest_per_finding(rows: List[Dict[str, Any]]) -> List[Dict[str, Any]]:
    """A finding is written again each time it changes: keep the last row of each (backend, finding)."""
    last: Dict[Tuple[Any, Any], Dict[str, Any]] = {}
    order: List[Tuple[Any, Any]] = []
    for i, row in enumerate(rows):
        fid = row.get("finding_id")
        key = (row.get("backend_pid"), fid) if fid is not None else ("row", i)
        if key not in last:
            order.append(key)
        last[key] = row
    return [last[k] for k in order]


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
    """The superuser connection that flushes and reads the log; reconnects after a crash-restart.

    While a workload runs, only its watchdog uses this connection (from its thread); the runner uses it
    between workloads."""

    def __init__(self, cluster: Cluster) -> None:
        self.cluster = cluster
        self._conn: psycopg.Connection | None = None

    @property
    def conn(self) -> psycopg.Connection:
        if self._conn is None or self._conn.closed or self._conn.broken:
            # Never measured itself, even while the cluster's configuration switches measuring on for every
            # session (a regression suite): a superuser may set this at connection time.
            self._conn = self.cluster.connect(options=f"-c {HOOK_LIBRARY}.memcheck_mode=off")
            self._conn.prepare_threshold = None  # the extension may be dropped and created again
        return self._conn

    def execute(self, query: str, params: Tuple[Any, ...] = ()) -> List[Tuple[Any, ...]]:
        """One statement; after a crash-restart our old session is gone, so reconnect once and retry."""
        try:
            cur = self.conn.execute(query, params or None)
        except psycopg.OperationalError:
            if self._conn is not None:
                self._conn.close()
            self._conn = None
            cur = self.conn.execute(query, params or None)
        return cur.fetchall() if cur.description else []

    def close(self) -> None:
        if self._conn is not None:
            self._conn.close()

    def status(self) -> Dict[str, int]:
        row = self.execute(
            "SELECT capacity, pending, written, dropped, next_seq, ring_full, refused FROM ext_memcheck.status()")[0]
        return {"capacity": int(row[0]), "dropped": int(row[3]), "next_seq": int(row[4]), "full": bool(row[5]),
                "refused": int(row[6])}

    def flush(self) -> None:
        self.execute("SELECT ext_memcheck.flush_violations()")

    def extension_oid(self) -> int | None:
        rows = self.execute("SELECT oid::bigint FROM pg_extension WHERE extname = %s", (HOOK_LIBRARY,))
        return int(rows[0][0]) if rows else None

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

    def wait_gone(self, pids: List[int], timeout_s: float = 10.0) -> None:
        """Wait until these backends have exited: each publishes what it found when it exits, and that must
        land in the window of the workload that ran it, not in the next one's."""
        deadline = time.monotonic() + timeout_s
        while pids and time.monotonic() < deadline:
            alive = self.execute("SELECT count(*) FROM pg_stat_activity WHERE pid = ANY(%s)", (pids,))
            if not alive or int(alive[0][0]) == 0:
                return
            time.sleep(0.02)

    def settings(self, names: List[str]) -> Dict[str, Dict[str, Any]]:
        """pg_settings rows by lower-cased name (what this session sees: preloaded and created libraries)."""
        query = ("SELECT lower(name) AS key, name, setting, unit, source, sourcefile, sourceline, min_val, "
                 "max_val, enumvals FROM pg_settings WHERE lower(name) = ANY(%s)")
        with self.conn.cursor(row_factory=dict_row) as cur:
            cur.execute(query, ([n.lower() for n in names],))
            return {row["key"]: row for row in cur.fetchall()}


class ApiTampered(Exception):
    """The setup changed pg_ext_memcheck's SQL API (apiguard): nothing it would measure could be trusted."""


class Interrupted(BaseException):
    """SIGINT or SIGTERM arrived (raised by the command's signal handler). A BaseException, like
    KeyboardInterrupt, so that no `except Exception` swallows it, but not KeyboardInterrupt itself: psycopg
    answers that one by cancelling the query and waiting for it, which a workload that catches cancels defeats."""

    def __init__(self, signal_name: str) -> None:
        super().__init__(signal_name)
        self.signal_name = signal_name


class Runner:
    def __init__(
        self,
        cfg: Config,
        cluster: Cluster,
        progress: Progress = lambda _m: None,
        cancel_grace_s: float = CANCEL_GRACE_S,
    ) -> None:
        self.cfg = cfg
        self.cluster = cluster
        self.admin = Admin(cluster)
        self.progress = progress
        self.cancel_grace_s = cancel_grace_s
        self.suites: Dict[str, regress.Suite] = {}
        self.setup_at = ""  # the setup statement running, for the message when it fails
        # The SQL API as CREATE EXTENSION made it (apiguard), and the hook library's settings as the run began.
        self.api_reference: apiguard.Fingerprint = {}
        self.reference_settings: Dict[str, str] = {}
        self._api_lock = threading.Lock()  # concurrent sessions check the API from their own threads
        # The workload running now and where the server log stood when it began (for a server that dies).
        self.current: Dict[str, Any] | None = None
        self.log_offset = 0

    # -- setup ----------------------------------------------------------------------------------

    def setup(self) -> None:
        """CREATE EXTENSION pg_ext_memcheck (+ the extension under test), check the settings took, then the
        user's setup SQL; neither may change pg_ext_memcheck's SQL API (ApiTampered)."""
        conn = self.admin.conn
        conn.execute(f"CREATE EXTENSION IF NOT EXISTS {HOOK_LIBRARY}")
        self.api_reference = apiguard.fingerprint(self._admin_query)
        ext = self.cfg.extension
        if ext is not None and self._should_create(ext.name, ext.create):
            conn.execute(sql.SQL("CREATE EXTENSION IF NOT EXISTS {}").format(sql.Identifier(ext.name)))
        self.check_settings()
        # One statement at a time, as psql sends a script (config split it): some extensions refuse several
        # utility statements in one query string.
        for n, text in enumerate(self.cfg.setup):
            line = self.cfg.setup_lines[n] if n < len(self.cfg.setup_lines) else self.cfg.lines.get("setup", 1)
            self.setup_at = f"{self.cfg.path}:{line}: setup statement {n + 1} of {len(self.cfg.setup)}"
            conn.execute(text, prepare=False)
        self.setup_at = ""
        changed = apiguard.compare(self.api_reference, apiguard.fingerprint(self._admin_query))
        if changed:
            what = f"CREATE EXTENSION {ext.name} or the setup SQL" if ext is not None else "the setup SQL"
            raise ApiTampered(f"{what} changed pg_ext_memcheck's SQL API ({changed.describe()}): the runner reads "
                              "every finding through it, so no workload was run")
        self.reference_settings = {row[0]: str(row[1]) for row in self.admin.execute(_SETTINGS_SQL)}

    def _admin_query(self, query: str) -> List[Tuple[Any, ...]]:
        return self.admin.execute(query)

    def check_api(self) -> apiguard.Tampering | None:
        """Is the SQL API still what CREATE EXTENSION made it? If not, create the extension again (the findings
        are then read through the restored functions) and say what had changed. A dropped extension is left to
        _restore_extension, which says so in its own words."""
        with self._api_lock:
            now = apiguard.fingerprint(self._admin_query)
            if apiguard.EXTENSION_KEY not in now:
                return None
            changed = apiguard.compare(self.api_reference, now)
            if not changed:
                return None
            self.progress(f"pg_ext_memcheck's SQL API was changed ({changed.describe()}); creating the extension "
                          "again")
            for statement in apiguard.reinstall_statements():
                self.admin.execute(statement)
            self.api_reference = apiguard.fingerprint(self._admin_query)
            return changed

    def _should_create(self, name: str, create: bool | None) -> bool:
        if create is not None:
            return create
        return (Path(self.cluster.info.sharedir) / "extension" / f"{name}.control").is_file()

    def check_settings(self) -> None:
        """Every `settings:` entry must be a parameter PostgreSQL knows and must have been applied from the line
        we wrote: an invalid value for a library's parameter is only a WARNING in the server log, and an unknown
        name under a library's prefix is dropped, both leaving the run to measure something else than asked."""
        asked = self.cfg.settings
        if not asked:
            return
        rows = self.admin.settings(list(asked))
        log = self.cluster.read_log()
        problems: List[str] = []
        for key, value in asked.items():
            where = self.cfg.locate(f"settings.{key}")
            row = rows.get(key.lower())
            if row is None:
                reason = _log_reason(log, key)
                problems.append(f"{where}: PostgreSQL has no parameter '{key}' (a library's parameter exists only "
                                "when that library is preloaded or its extension created)"
                                + (f" (server log: {reason})" if reason else ""))
                continue
            line = self.cluster.conf_lines.get(key)
            applied = (row["source"] == "configuration file" and line is not None
                       and row["sourceline"] == line and str(row["sourcefile"] or "").endswith("postgresql.conf"))
            if applied:
                continue
            now = f"{row['setting']}{row['unit'] or ''}"
            allowed = ""
            if row["min_val"] is not None and row["max_val"] is not None:
                allowed = f"; allowed: {row['min_val']} .. {row['max_val']}{row['unit'] or ''}"
            elif row["enumvals"]:
                allowed = f"; allowed: {', '.join(row['enumvals'])}"
            reason = _log_reason(log, row["name"])
            problems.append(f"{where}: PostgreSQL did not apply {value!r}; it runs with {now}{allowed}"
                            + (f" (server log: {reason})" if reason else ""))
        if problems:
            raise ConfigError(problems)

    # -- the regression suite -------------------------------------------------------------------

    def run_regress(self, wl: Workload, label: str) -> List[Dict[str, Any]]:
        """Every test file and spec of the extension's suites, each a workload (reporter/regress.py)."""
        suite = self.suites[wl.name]
        self.admin.flush()  # what ran before belongs to earlier workloads
        self.measure_every_session(wl)
        # The launcher waits for every other session to end between tests: ours too (it reconnects later).
        self.admin.close()
        try:
            return regress.run_suite(suite, self.cfg, self.cluster.pg_config, str(self.cluster.socket_dir), PORT,
                                     self.cluster.superuser, self.cluster.log_path, self.progress,
                                     self.cluster.info.pkglibdir)
        finally:
            self.measure_every_session(None)

    def measure_every_session(self, wl: Workload | None, timeout: float = 60) -> None:
        """The measuring settings (mode and thresholds) in the cluster's configuration, for every session of a
        suite, whatever role it connects as: they are superuser-only, so a role that is not a superuser
        cannot change them, and its connection is not refused as it is when they come in PGOPTIONS. None
        takes them out again. Returns once new sessions start with the change (pg_reload_conf() only signals
        the postmaster: a backend forked after it has reloaded carries its newer load time)."""
        values = {"memcheck_mode": wl.mode, **{k: str(int(v)) for k, v in self.cfg.thresholds.items()}} if wl \
            else dict.fromkeys(("memcheck_mode", *self.cfg.thresholds))
        loaded = self.admin.execute("SELECT pg_catalog.pg_conf_load_time()")[0][0]
        for key, value in values.items():
            name = sql.Identifier(HOOK_LIBRARY, key)  # the schema's fixed keys
            if value is None:
                self.admin.execute(sql.SQL("ALTER SYSTEM RESET {}").format(name).as_string(self.admin.conn))
            else:
                self.admin.execute(sql.SQL("ALTER SYSTEM SET {} = {}").format(name, sql.Literal(value))
                                   .as_string(self.admin.conn))
        self.admin.execute("SELECT pg_catalog.pg_reload_conf()")
        deadline = time.monotonic() + timeout
        while True:
            with self.cluster.connect(options=f"-c {HOOK_LIBRARY}.memcheck_mode=off") as conn:
                now = conn.execute("SELECT pg_catalog.pg_conf_load_time()").fetchone()[0]
            if now > loaded:
                return
            if time.monotonic() > deadline:
                raise ClusterError(f"the server did not reload its configuration within {timeout:g}s")
            time.sleep(0.05)

    # -- one workload ---------------------------------------------------------------------------

    @contextmanager
    def _workload_connection(self, wl: Workload, result: Dict[str, Any]) -> Iterator[psycopg.Connection]:
        conn = self.cluster.connect()
        try:
            # A first line of defence inside the session; the watchdog enforces the deadline from outside.
            timeout_ms = max(1, int(wl.timeout_s * 1000))
            conn.execute(sql.SQL("SET statement_timeout = {}").format(sql.Literal(f"{timeout_ms}ms")))
            for key, value in self.cfg.thresholds.items():
                # key comes from the schema's fixed set, so it is safe to splice into the statement.
                conn.execute(sql.SQL(f"SET {HOOK_LIBRARY}.{key} = ") + sql.Literal(int(value)))
            # The mode last: the statements above are set-up, not part of what is measured.
            conn.execute(sql.SQL(f"SET {HOOK_LIBRARY}.memcheck_mode = ") + sql.Literal(wl.mode))
            # Plan the read-back statements now, in a window of their own, then open the workload's window.
            conn.execute("SELECT ext_memcheck.begin('')")
            conn.execute(_SETTINGS_SQL, prepare=True)
            conn.execute(_END_SQL, prepare=True)
            conn.execute("SELECT ext_memcheck.begin('')")
            yield conn
            self._finish_session(conn, wl, result)
        finally:
            conn.close()

    def _finish_session(self, conn: psycopg.Connection, wl: Workload, result: Dict[str, Any]) -> None:
        """This session's findings straight from end() (a full ring hides nothing), a check that the workload
        left the measuring settings alone, and one that it left the SQL API alone (end() is read only through
        what CREATE EXTENSION made). A workload that changed role is put back to the superuser first."""
        if conn.info.transaction_status != psycopg.pq.TransactionStatus.IDLE:
            conn.rollback()
        role = self._reset_role(conn)
        if role is not None:
            result.setdefault("_notes", []).append(role)
        # pg_settings.setting is in base units ('8192', not current_setting's '8kB')
        actual = {row[0]: row[1:] for row in conn.execute(_SETTINGS_SQL, prepare=True).fetchall()}
        result["_settings_changed"] = self._changed_settings(wl, actual)
        tampered = self.check_api()
        if tampered:
            result["_tampered"] = tampered.describe()
        with conn.cursor(row_factory=dict_row) as cur:
            try:
                cur.execute(_END_SQL, prepare=True)
            except (psycopg.errors.UndefinedFunction, psycopg.errors.InvalidSchemaName):
                return  # the workload dropped the extension: run_workload says so and reads the ring instead
            result["_end_rows"] = list(cur.fetchall())

    def _reset_role(self, conn: psycopg.Connection) -> str | None:
        """After `SET ROLE` or `SET SESSION AUTHORIZATION`, the runner's own statements (end() is for the
        superuser only) would fail: reset them, and say what the workload ran as (a note, not an error: its
        findings are kept). The server reports both settings to the client, so no statement is needed to
        tell."""
        who = conn.info.parameter_status("session_authorization")
        superuser = conn.info.parameter_status("is_superuser")
        if who in (None, self.cluster.superuser) and superuser in (None, "on"):
            return None
        conn.execute("RESET SESSION AUTHORIZATION", prepare=False)
        conn.execute("RESET ROLE", prepare=False)
        how = (f"its session user, SET SESSION AUTHORIZATION {who}" if who != self.cluster.superuser
               else "its role, SET ROLE to a role that is not a superuser")
        return (f"the workload changed {how}: its statements after that ran as that role, and were measured as "
                "usual; the runner reset the role to read the findings, which are kept")

    def _changed_settings(self, wl: Workload, actual: Dict[str, Tuple[Any, ...]]) -> List[str]:
        """The hook library's settings that differ from what the runner set or the run began with."""
        set_here = {f"{HOOK_LIBRARY}.memcheck_mode": wl.mode,
                    **{f"{HOOK_LIBRARY}.{k}": str(int(v)) for k, v in self.cfg.thresholds.items()}}
        changed: List[str] = []
        for name in sorted(set(self.reference_settings) | set(actual)):
            setting, source, sourcefile = (list(actual.get(name) or ()) + [None, None, None])[:3]
            if name in set_here:
                if str(setting) != set_here[name]:
                    changed.append(f"{name} = {setting} (the runner set {set_here[name]})")
                continue
            started = self.reference_settings.get(name)
            if str(setting) != str(started):
                how = ""
                if source == "configuration file" and str(sourcefile or "").endswith("postgresql.auto.conf"):
                    how = "; ALTER SYSTEM put it in postgresql.auto.conf"
                elif source:
                    how = f"; source: {source}"
                changed.append(f"{name} = {setting} (the run started with {started}{how})")
        return changed

    def _execute(self, wl: Workload, result: Dict[str, Any], label: str) -> None:
        """Run the workload's SQL under its watchdog; exceptions propagate to the caller, which classifies
        them (the watchdog, attached to the exception, says whether the deadline fired)."""
        if wl.concurrency > 1:
            self._execute_sessions(wl, result, label)
            return
        with self._workload_connection(wl, result) as conn:
            result["_pid"] = conn.info.backend_pid
            dog = Watchdog(self.admin.execute, conn, wl.timeout_s, self.cancel_grace_s, self.progress)
            try:
                with dog:
                    self._statements(conn, wl, result, label, dog)
            except BaseException as exc:
                exc.watchdog = dog  # type: ignore[attr-defined]
                raise

    def _session(self, wl: Workload, sub: Dict[str, Any], label: str, start_line: threading.Barrier) -> None:
        """One of `concurrency` sessions, in its own thread: its own window, watchdog and end(). An error ends
        this session's iterations only; it is kept in sub["_exc"] for _execute_sessions to classify."""
        try:
            with self._workload_connection(wl, sub) as conn:
                sub["_pid"] = conn.info.backend_pid
                dog = Watchdog(self.admin.execute, conn, wl.timeout_s, self.cancel_grace_s, self.progress)
                try:
                    with dog:
                        start_line.wait(_START_LINE_S)
                        self._statements(conn, wl, sub, label, dog)
                except (psycopg.Error, _WorkloadTimeout, threading.BrokenBarrierError) as exc:
                    exc.watchdog = dog  # type: ignore[attr-defined]
                    sub["_exc"] = exc
        except psycopg.Error as exc:  # a broken session (the server crashed): no end() for it
            sub.setdefault("_exc", exc)
            sub.pop("_end_rows", None)

    def _execute_sessions(self, wl: Workload, result: Dict[str, Any], label: str) -> None:
        """`concurrency: N`: N sessions run the workload at the same time (they start together). Every
        session's findings are kept (each row carries its backend's pid); deadlocks and lock timeouts become
        concurrency_error findings; a crash, a timeout or another error is the workload's status, as for one
        session. Raises the most serious session error (crash, then timeout, then any other)."""
        n = wl.concurrency
        self.progress(f"{label}: {n} concurrent sessions")
        subs: List[Dict[str, Any]] = [{"iterations": 0} for _ in range(n)]
        start_line = threading.Barrier(n)
        threads = [threading.Thread(target=self._session, args=(wl, subs[k], f"{label} [session {k + 1}]",
                                                                 start_line), name=f"session-{k + 1}")
                   for k in range(n)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        result["iterations"] = sum(sub.get("iterations", 0) for sub in subs)
        if wl.scenario is not None:
            result["scenario"] = next((sub["scenario"] for sub in subs if sub.get("scenario")), None)
        result["_pid"] = next((sub["_pid"] for sub in subs if sub.get("_pid")), None)
        result["_own_pids"] = [sub["_pid"] for sub in subs if sub.get("_pid")]
        result["_settings_changed"] = list(dict.fromkeys(c for sub in subs for c in sub.get("_settings_changed", [])))
        result["_notes"] = list(dict.fromkeys(n for sub in subs for n in sub.get("_notes", [])))
        result["_tampered"] = next((sub["_tampered"] for sub in subs if sub.get("_tampered")), None)
        # every session's end(); a session without one (it broke) makes the runner read the ring instead
        if all("_end_rows" in sub for sub in subs):
            result["_end_rows"] = [row for sub in subs for row in sub["_end_rows"]]
        errors = [(sub.get("_pid"), sub["_exc"]) for sub in subs if "_exc" in sub]
        result["concurrency"] = n
        result["sessions"] = [_session_summary(sub) for sub in subs]
        found: Dict[str, List[Tuple[Any, psycopg.Error]]] = {}
        fatal: List[BaseException] = []
        for pid, exc in errors:
            kind = _CONCURRENCY_SQLSTATES.get(getattr(exc, "sqlstate", None) or "")
            if kind is not None and isinstance(exc, psycopg.Error) and not getattr(exc.watchdog, "fired", None):
                found.setdefault(kind, []).append((pid, exc))
            else:
                fatal.append(exc)
        result["_extra_violations"] = [concurrency_violation(kind, hits, n) for kind, hits in found.items()]
        if fatal:
            crashed = [e for e in fatal if isinstance(e, psycopg.Error) and self._crashed(e)]
            timeouts = [e for e in fatal if isinstance(e, (_WorkloadTimeout, psycopg.errors.QueryCanceled))
                        or getattr(getattr(e, "watchdog", None), "fired", None)]
            raise (crashed or timeouts or fatal)[0]

    def _statements(
        self, conn: psycopg.Connection, wl: Workload, result: Dict[str, Any], label: str, dog: Watchdog
    ) -> None:
        if wl.scenario is not None:
            self.progress(f"{label}: run_scenario({wl.scenario}, {wl.iterations} iterations)")
            # CALL: a transaction per iteration, so memory freed at commit is seen freed.
            row = conn.execute(
                "CALL ext_memcheck.scenario(%s, %s, %s)", (wl.scenario, wl.iterations, wl.sql), prepare=False
            ).fetchone()
            result["scenario"] = row[0] if row else None
            result["iterations"] = wl.iterations
            return
        send = _SENDERS[wl.protocol]
        deadline = time.monotonic() + wl.timeout_s
        step = max(1, wl.iterations // 10)
        for i in range(wl.iterations):
            # The watchdog interrupts a statement that runs past the deadline; this stops the loop
            # between statements (a cancel that lands between two statements cancels nothing).
            if time.monotonic() > deadline or dog.fired:
                raise _WorkloadTimeout(f"workload exceeded its timeout of {wl.timeout_s:g}s after {i} iterations")
            send(conn, wl.sql)
            result["iterations"] = i + 1
            if (i + 1) % step == 0 or i + 1 == wl.iterations:
                self.progress(f"{label}: iteration {i + 1}/{wl.iterations}")

    def run_workload(self, wl: Workload, label: str) -> Dict[str, Any]:
        result = empty_workload(wl)
        self.current = result
        self.log_offset = log_offset = self.cluster.log_size()
        self.admin.flush()  # anything pending belongs to what ran before, not to this workload
        before = self.admin.status()
        ext_oid = self.admin.extension_oid()
        last_id = self.admin.last_id()
        started = time.monotonic()
        crashed = False
        try:
            self._execute(wl, result, label)
        except _WorkloadTimeout as exc:
            result.update(status="timeout", error={"message": str(exc), "sqlstate": None})
        except psycopg.Error as exc:
            dog = getattr(exc, "watchdog", None)
            crashed = self._crashed(exc)
            if dog is not None and dog.fired and not (crashed and exc.sqlstate in _CRASH_SQLSTATES):
                crashed = False
                result.update(status="timeout", error={"message": dog.describe(), "sqlstate": exc.sqlstate})
            elif isinstance(exc, psycopg.errors.QueryCanceled):
                result.update(status="timeout", error=_error(exc))
            else:
                result.update(status="crashed" if crashed else "error", error=_error(exc))
        result["duration_s"] = round(time.monotonic() - started, 3)
        pid = result.pop("_pid", None)
        own_pids = result.pop("_own_pids", None) or ([pid] if pid is not None else [])
        if crashed:
            self.progress(f"{label}: backend crashed; waiting for the server to recover")
            self._await_restart(log_offset)
            self.cluster.wait_ready(_RECOVERY_TIMEOUT_S)
        tampered = result.pop("_tampered", None)
        if tampered:  # the session's check created the extension again, and read end() through the new one
            ext_oid = self.admin.extension_oid()
        replaced = self._restore_extension(wl, result, ext_oid, label)
        unread = self.check_api() if not tampered else None  # a session that could not check (it broke)
        if unread:
            tampered = unread.describe()
            result["_end_rows"] = None  # what end() returned came through what the workload had put there
            replaced = True
        if tampered:
            how = ("this workload's findings were read through the restored functions" if not unread else
                   "this workload's findings are what its backend published to the shared ring")
            self._fail(result, f"workload '{wl.name}' changed pg_ext_memcheck's SQL API ({tampered}): the runner "
                               f"reads findings through it, so a replaced function could hide every finding; the "
                               f"extension was created again, and {how}")
        if result["status"] != "passed":
            result["log_excerpt"] = log_excerpt(self.cluster.read_log(log_offset), pid)
        if not crashed:
            self.admin.wait_gone(own_pids)
        self.admin.flush()
        after = self.admin.status()
        # A crash-restart reinitialises the ring: sequence numbers and counters start again.
        restarted = after["next_seq"] < before["next_seq"] or after["dropped"] < before["dropped"]
        end_rows = result.pop("_end_rows", None)
        changed = result.pop("_settings_changed", [])
        notes = result.pop("_notes", [])
        if notes:
            result["notes"] = notes
            for note in notes:
                self.progress(f"{label}: {note}")
        logged = latest_per_finding(
            self.admin.violations_after(0 if replaced else last_id, None if restarted else before["next_seq"]))
        # the workload's sessions said what they found in end(); every other process (a background worker the
        # library runs, a session the workload opened itself) through the ring
        rows = logged if end_rows is None else \
            end_rows + [r for r in logged if r.get("backend_pid") not in own_pids]
        result["dropped"] = after["dropped"] - (0 if restarted else before["dropped"])
        samples = scenario_samples(result["scenario"])
        result["violations"] = [to_violation(r, samples) for r in rows if keep_violation(r, wl)]
        if changed:
            result["violations"].append(settings_changed_violation(changed, pid))
        result["violations"].extend(result.pop("_extra_violations", []))
        if result["status"] == "passed" and result["violations"]:
            result["status"] = "violations"
        return result

    def _restore_extension(self, wl: Workload, result: Dict[str, Any], oid_before: int | None, label: str) -> bool:
        """The workload dropped (or dropped and re-created) pg_ext_memcheck: create it again so that the next
        workloads are measured, and say which workload did it. True when violation_log is a new table."""
        oid = self.admin.extension_oid()
        if oid is not None and oid == oid_before:
            return False
        if oid is None:
            self.progress(f"{label}: the workload dropped the {HOOK_LIBRARY} extension; creating it again")
            self.admin.execute(f"CREATE EXTENSION {HOOK_LIBRARY}")
        message = (f"workload '{wl.name}' dropped the {HOOK_LIBRARY} extension (and its violation_log); it was "
                   "created again for the next workloads, and the violations this workload flushed before the "
                   "drop are lost")
        self._fail(result, message)
        self.api_reference = apiguard.fingerprint(self._admin_query)
        return True

    @staticmethod
    def _fail(result: Dict[str, Any], message: str) -> None:
        """The workload is an error (its own error, if it had one, stays first)."""
        if result["status"] in ("passed", "violations"):
            result.update(status="error", error={"message": message, "sqlstate": None})
        else:
            result["error"] = {**(result["error"] or {"sqlstate": None}),
                               "message": f"{(result['error'] or {}).get('message', '')}; {message}".lstrip("; ")}

    def _await_restart(self, log_offset: int, timeout: float = 15) -> None:
        """Connections can still succeed in the moment before the postmaster notices the dead backend;
        wait for its report so that wait_ready sees the restarted server, not the dying one."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            text = self.cluster.read_log(log_offset)
            if "reinitializing" in text or "shutting down because" in text or not self.cluster.server_alive():
                return
            time.sleep(0.1)

    def server_died(self, wl: Workload, exc: BaseException) -> Dict[str, Any]:
        """The postmaster is gone (killed, or it gave up): the workload that was running is a crash, with what
        the server log says; its partial result (iterations, duration) is kept."""
        result = self.current if self.current is not None and self.current["name"] == wl.name else empty_workload(wl)
        result = {k: v for k, v in result.items() if not k.startswith("_")}
        pid = self.cluster.last_postmaster_pid
        result.update(status="crashed", error={
            "message": (f"the PostgreSQL server stopped while this workload ran: its postmaster"
                        f"{f' (pid {pid})' if pid else ''} is gone (killed, or it exited); the run started it "
                        f"again for the next workloads ({_first_line(exc)})"),
            "sqlstate": getattr(exc, "sqlstate", None)})
        result["log_excerpt"] = log_excerpt(self.cluster.read_log(self.log_offset), None)
        return result

    def _crashed(self, exc: psycopg.Error) -> bool:
        """The backend died under us (segfault, abort): the connection broke with no SQL error, or the
        postmaster killed every backend because another one crashed. A FATAL with an SQLSTATE (say
        pg_terminate_backend) is an error: the server is fine."""
        if exc.sqlstate in _CRASH_SQLSTATES:
            return True
        return exc.sqlstate is None and isinstance(exc, psycopg.OperationalError)


class _WorkloadTimeout(Exception):
    pass


def settings_changed_violation(changed: List[str], pid: int | None) -> Dict[str, Any]:
    """A setting the runner measures with was not what the run set during this workload's window (this workload
    changed it, or an earlier one did for the whole server): its findings cannot be trusted."""
    return {
        "check_type": "settings_changed", "severity": "ERROR", "context": "settings", "context_path": "settings",
        "depth": None, "used_delta": None, "allocated_delta": None, "bytes_per_iteration": None,
        "iterations": None, "source_lib": None, "phase": "other",
        "detail": f"the measuring settings changed: {'; '.join(changed)}; this window's findings cannot be trusted",
        "backend_pid": pid, "ts": utc_now(), "samples": None, "suppressed_by": None, "lifetime": None,
        "verdict": None, "rate": None, "calls": None, "rows": None, "occurrences": 1, "entry": None, "sites": [],
        "finding_id": None,
    }


def concurrency_violation(kind: str, hits: List[Tuple[Any, psycopg.Error]], sessions: int) -> Dict[str, Any]:
    """Deadlocks or lock timeouts among concurrent sessions: a finding about how the code takes its locks."""
    pid, first = hits[0]
    return {
        "check_type": "concurrency_error", "severity": "WARNING", "context": kind,
        "context_path": f"concurrency/{kind}", "depth": None, "used_delta": None, "allocated_delta": None,
        "bytes_per_iteration": None, "iterations": None, "source_lib": None, "phase": "other",
        "detail": (f"{len(hits)} of {sessions} concurrent sessions stopped on a {kind}: "
                   f"{_error(first)['message']} (SQLSTATE {first.sqlstate})"),
        "backend_pid": pid, "ts": utc_now(), "samples": None, "suppressed_by": None, "lifetime": None,
        "verdict": None, "rate": None, "calls": None, "rows": None, "occurrences": len(hits), "entry": None,
        "sites": [], "finding_id": None,
    }


def _session_summary(sub: Dict[str, Any]) -> Dict[str, Any]:
    """One concurrent session in results.json: its backend, how far it got, and how it ended."""
    exc = sub.get("_exc")
    status = "passed"
    error = None
    if exc is not None:
        error = _error(exc) if isinstance(exc, psycopg.Error) else {"message": str(exc) or type(exc).__name__,
                                                                     "sqlstate": None}
        dog = getattr(exc, "watchdog", None)
        if isinstance(exc, (_WorkloadTimeout, psycopg.errors.QueryCanceled)) or getattr(dog, "fired", None):
            status = "timeout"
        elif isinstance(exc, psycopg.Error) and exc.sqlstate is None and isinstance(exc, psycopg.OperationalError):
            status = "crashed"
        else:
            status = "error"
    return {"pid": sub.get("_pid"), "iterations": int(sub.get("iterations", 0)), "status": status, "error": error}


# Every sender passes `prepare` explicitly: left to psycopg, a statement run 5 times (prepare_threshold)
# becomes a prepared statement, whose cached plan skips the planner on the iterations after that.


def _send_simple(conn: psycopg.Connection, text: str) -> None:
    """The simple query protocol: parsed and planned on every call; several statements allowed."""
    conn.execute(text, prepare=False)


def _send_extended(conn: psycopg.Connection, text: str) -> None:
    """The extended protocol with the unnamed statement (psycopg uses it in pipeline mode): planned every call."""
    with conn.pipeline():
        conn.execute(text, prepare=False)


def _send_prepared(conn: psycopg.Connection, text: str) -> None:
    """A named prepared statement: prepared on the first call, then only bound and executed; PostgreSQL's plan
    cache decides when it stops planning (a statement without parameters gets its generic plan at once)."""
    conn.execute(text, prepare=True)


_SENDERS: Dict[str, Callable[[psycopg.Connection, str], None]] = {
    "simple": _send_simple,
    "extended": _send_extended,
    "prepared": _send_prepared,
}


def _error(exc: psycopg.Error) -> Dict[str, str | None]:
    diag = exc.diag
    message = (diag.message_primary if diag and diag.message_primary else str(exc)).strip()
    return {"message": message, "sqlstate": exc.sqlstate}


def _log_reason(log: str, name: str) -> str | None:
    """The server's own words about a parameter (e.g. 'invalid value for parameter "x": "0"' and its DETAIL)."""
    lines = log.splitlines()
    for i, line in enumerate(lines):
        if f'"{name}"' in line and ("WARNING" in line or "ERROR" in line or "LOG" in line):
            text = line.split(":  ", 1)[-1].strip()
            if i + 1 < len(lines) and "DETAIL:" in lines[i + 1]:
                text += " " + lines[i + 1].split("DETAIL:", 1)[1].strip()
            return text
    return None


def log_excerpt(text: str, pid: int | None) -> str | None:
    """The server-log lines about this workload: its backend's lines and the postmaster's crash report."""
    lines = text.splitlines()
    marker = f"[{pid}]" if pid else None
    picked = [ln for ln in lines if (marker and marker in ln) or any(m in ln for m in _LOG_MARKERS)]
    picked = picked or lines[-20:]
    if not picked:
        return None
    return "\n".join(picked[:_MAX_EXCERPT_LINES])


RECORD_ALL_SESSIONS = f"{HOOK_LIBRARY}.record_all_sessions"
MEASURE_EVERY_PROCESS = f"{HOOK_LIBRARY}.memcheck_mode"


def preload_libraries(cfg: Config, suites: Sequence[str] = ()) -> List[str]:
    """shared_preload_libraries: what the test suites' --temp-config files preload, the extension under test,
    then `preload`, then the hook library, unless `preload` places it. The hook library measures in any
    position; last leaves the first place to extensions that insist on it (Citus refuses to start anywhere
    else)."""
    libs: List[str] = []
    for lib in list(suites) + ([cfg.extension.name] if cfg.extension is not None and cfg.extension.preload
                               else []) + list(cfg.preload):
        if lib not in libs:
            libs.append(lib)
    if HOOK_LIBRARY not in libs:
        libs.append(HOOK_LIBRARY)
    return libs


def check_protocols(cfg: Config) -> None:
    """protocol: extended needs libpq's pipeline mode (libpq 14+); refuse it up front when it is missing."""
    if psycopg.Pipeline.is_supported():
        return
    bad = [f"{cfg.locate(f'workloads[{i}].protocol')}: protocol 'extended' needs libpq 14 or newer (psycopg "
           f"uses libpq {psycopg.pq.version()}); use simple or prepared"
           for i, wl in enumerate(cfg.workloads) if wl.protocol == "extended"]
    if bad:
        raise ConfigError(bad)


Checkpoint = Callable[[Results], None]


def run(
    cfg: Config,
    pg_config: str,
    output: Path,
    github: Dict[str, Any],
    progress: Progress = lambda _m: None,
    checkpoint: Checkpoint = lambda _doc: None,
    cancel_grace_s: float = CANCEL_GRACE_S,
) -> Results:
    """Start a private cluster, run setup and every workload, stop it; copy DIR/server.log; return results.

    `checkpoint(results)` is called after every workload with the results so far (`complete` false), so
    that the caller can save them. On Interrupted (SIGINT/SIGTERM) the run stops at once: the cluster is
    stopped, and the results come back marked incomplete with the signal's name.
    """
    output = Path(output)
    check_protocols(cfg)
    suites = regress.plan(cfg, pg_config)  # the Makefile's suites, read before anything starts
    started_at = utc_now()
    # The suites' --temp-config files describe the server they expect: theirs, then memcheck.yml's settings.
    temp = [s.server for s in suites]
    # Every session's findings reach the ring, also those of roles the tests connect as (the private cluster is
    # ours; the setting is read from the server's configuration only). Every process measures from the start:
    # the background workers the extension registers run from the postmaster's start, and what they find is
    # collected with the workload in whose window it was published; the runner's own sessions set their mode.
    cluster = Cluster(pg_config, preload=preload_libraries(cfg, [lib for t in temp for lib in t.preload]),
                      settings={RECORD_ALL_SESSIONS: "on", MEASURE_EVERY_PROCESS: "all",
                                **{k: v for t in temp for k, v in t.settings.items()}, **cfg.settings})
    notes = list(dict.fromkeys(note for s in suites for note in s.notes()))
    for note in notes:
        progress(f"note: {note}")
    results: Results = {
        "schema_version": SCHEMA_VERSION,
        "tool": {"name": "pg-ext-memcheck", "version": __version__},
        "postgresql": {"version": cluster.info.version, "major": cluster.info.major, "pg_config": pg_config,
                       "pkglibdir": cluster.info.pkglibdir,
                       "includedir_server": cluster.info.includedir_server},
        "config": {"path": str(cfg.path), "digest": cfg.digest},
        "started_at": started_at,
        "finished_at": started_at,
        "complete": False,
        "interrupted": None,
        "thresholds": dict(cfg.thresholds),
        "fail_on": cfg.fail_on,
        "github": github,
        "ring": {"capacity": 0, "dropped": 0},
        "workloads": [],
    }
    if notes:
        results["notes"] = notes
    stop_mode = "fast"
    log_problem: str | None = None
    try:
        progress(f"starting PostgreSQL {cluster.info.version} (preload: {','.join(cluster.preload)})")
        try:
            cluster.init()
            check_core_settings(cfg, cluster)
            cluster.start()
        except ClusterError as exc:
            stop_mode = "immediate"  # pg_ctl may give up waiting on a server that still comes up later
            why = _first_line(exc)
            why = why if isinstance(exc, BackendsCrash) else f"the server did not start: {why}"
            results["workloads"] = [_not_run(wl, why, exc) for wl in cfg.workloads]
            results["complete"] = True
            return results
        runner = Runner(cfg, cluster, progress, cancel_grace_s)
        runner.suites = {s.workload.name: s for s in suites}
        try:
            _run_all(runner, cfg, results, progress, checkpoint)
            results["complete"] = True
        finally:
            runner.admin.close()
    except Interrupted as exc:
        stop_mode = "immediate"  # the CI system gives a few seconds before it kills us: no checkpoint
        results["complete"] = False
        results["interrupted"] = exc.signal_name
        progress(f"interrupted by {exc.signal_name}: stopping the server; the results so far are kept")
    finally:
        try:
            _stop(cluster, stop_mode, progress)
            results["finished_at"] = utc_now()
            log_problem = _save_log(cluster, output, progress)
        finally:
            cluster.cleanup()  # whatever failed above: no data directory is left behind
    if log_problem is not None:
        raise files.FileProblem(output / "server.log", log_problem)
    return results


def _save_log(cluster: Cluster, output: Path, progress: Progress) -> str | None:
    """Copy the server log to DIR/server.log; what went wrong instead of raising (the run may be failing
    already, and its own error must not be replaced by this one)."""
    if not cluster.log_path.exists():
        return None
    try:
        output.mkdir(parents=True, exist_ok=True)
        files.copy_atomic(cluster.log_path, output / "server.log")
    except (OSError, files.FileProblem) as exc:
        reason = exc.reason if isinstance(exc, files.FileProblem) else files.os_reason(exc)
        progress(f"could not save the server log to {output / 'server.log'}: {reason}")
        return reason
    return None


def check_core_settings(cfg: Config, cluster: Cluster) -> None:
    """`settings:` PostgreSQL itself refuses (`work_mem: banana`, a parameter this major lacks) stop the run
    before the server starts, with the server's own words (a library's parameters are checked once it runs,
    check_settings)."""
    problems = cluster.conf_problems()
    if not problems:
        return
    keys = {k.lower(): k for k in cfg.settings}
    by_line = {line: key for key, line in cluster.conf_lines.items()}
    out: List[Tuple[int, str]] = []
    for message in problems:
        named = re.search(r'parameter "([^"]+)"', message)
        line = re.search(r"line (\d+)", message)
        key = keys.get(named.group(1).lower()) if named else None
        if key is None and line is not None:
            key = keys.get(str(by_line.get(int(line.group(1)), "")).lower())
        where = cfg.locate(f"settings.{key}") if key else f"{cfg.path}: settings"
        out.append((cfg.lines.get(f"settings.{key}", 0), f"{where}: PostgreSQL {cluster.info.version} refuses it: "
                                                        f"{message}"))
    raise ConfigError([text for _, text in sorted(out)])


def _stop(cluster: Cluster, mode: str, progress: Progress) -> None:
    """Stop the server whatever state it is in; a server that will not stop fast is stopped immediately."""
    for attempt in dict.fromkeys((mode, "immediate")):
        try:
            cluster.stop(mode=attempt)
            return
        except ClusterError as exc:
            # A server that died for good must not cost us the results gathered so far.
            progress(f"could not stop the server ({attempt}): {_first_line(exc)}")


def _run_all(runner: Runner, cfg: Config, results: Results, progress: Progress, checkpoint: Checkpoint) -> None:
    try:
        progress("running setup")
        runner.setup()
    except (psycopg.Error, ApiTampered) as exc:
        if isinstance(exc, psycopg.Error):
            message = f"setup failed: {_error(exc)['message']}" + (f" ({runner.setup_at})" if runner.setup_at else "")
        else:
            message = f"setup failed: {exc}"
        progress(message)
        results["workloads"] = [_not_run(wl, message, exc) for wl in cfg.workloads]
        return
    results["ring"]["capacity"] = runner.admin.status()["capacity"]
    total = len(cfg.workloads)
    for n, wl in enumerate(cfg.workloads, 1):
        label = f"[{n}/{total}] {wl.name}"
        progress(f"{label}: {wl.kind}, {wl.iterations} iteration(s), mode {wl.mode}")
        if wl.kind == "regress":
            try:
                tests = runner.run_regress(wl, label)
                tampered = runner.check_api()
            except Interrupted as exc:
                results["workloads"].append(_not_run(wl, f"interrupted by {exc.signal_name} while running", exc))
                raise
            if tampered:  # which test did it is not known: none of their findings can be trusted
                for test in tests:
                    Runner._fail(test, f"the regression suite changed pg_ext_memcheck's SQL API "
                                       f"({tampered.describe()}): the runner reads findings through it, so these "
                                       "findings cannot be trusted; the extension was created again")
            results["workloads"].extend(tests)
            results["ring"]["dropped"] = sum(w["dropped"] for w in results["workloads"])
            checkpoint(results)
            continue
        try:
            result = runner.run_workload(wl, label)
        except Interrupted as exc:
            results["workloads"].append(_not_run(wl, f"interrupted by {exc.signal_name} while running", exc))
            raise
        except (psycopg.Error, ClusterError) as exc:
            # Bookkeeping around the workload failed (the server went away between statements, say):
            # still a result, and the remaining workloads run if the server comes back.
            result = _not_run(wl, f"could not run or collect this workload: {_first_line(exc)}", exc)
            try:
                try:
                    runner.cluster.wait_ready(_RECOVERY_TIMEOUT_S)
                except ClusterError:
                    if runner.cluster.server_alive():
                        raise
                    # The postmaster itself is gone (kill -9): no recovery will come; start it again.
                    result = runner.server_died(wl, exc)
                    progress(f"{label}: the server's postmaster is gone; starting the server again")
                    runner.cluster.restart_after_death()
            except ClusterError as down:
                results["workloads"].append(result)
                why = ("the server stopped and could not be started again" if result["status"] == "crashed"
                       else "the server did not recover")
                for rest in cfg.workloads[n:]:
                    results["workloads"].append(_not_run(rest, f"not run: {why}: {_first_line(down)}", down))
                break
        progress(f"{label}: {result['status']} ({len(result['violations'])} violation(s), {result['duration_s']}s)")
        results["workloads"].append(result)
        results["ring"]["dropped"] = sum(w["dropped"] for w in results["workloads"])
        checkpoint(results)
    results["ring"]["dropped"] = sum(w["dropped"] for w in results["workloads"])
    try:
        full = runner.admin.status()["full"]
    except psycopg.Error:  # the server is gone: what was dropped is counted above
        full = False
    results["ring"]["full"] = results["ring"]["dropped"] > 0 or full


def _not_run(wl: Workload, message: str, exc: BaseException) -> Dict[str, Any]:
    """A workload that could not run at all is still a result: an error saying why."""
    result = empty_workload(wl)
    sqlstate = getattr(exc, "sqlstate", None)
    excerpt = str(exc)[-4000:] if isinstance(exc, Exception) else None
    result.update(status="error", error={"message": message, "sqlstate": sqlstate}, log_excerpt=excerpt)
    return result


def _first_line(exc: BaseException) -> str:
    lines = str(exc).strip().splitlines()
    return lines[0] if lines else type(exc).__name__
