"""A private, throw-away PostgreSQL cluster: initdb, postgresql.conf, start/stop, unprivileged user when root.

Every cluster gets its own data directory and its own socket directory and listens on no TCP port, so any
number of clusters (parallel runs, parallel tests) coexist on one machine without choosing ports.
"""

from __future__ import annotations

import os
import pwd
import re
import shutil
import signal
import subprocess
import tempfile
import time
from pathlib import Path
from typing import Dict, List, Sequence

import psycopg
from psycopg.conninfo import make_conninfo

from reporter.build import read_pg_config
from reporter.pgconfig import PgConfig

HOOK_LIBRARY = "pg_ext_memcheck"
RUN_USER_CANDIDATES = ("postgres", "pgextmemcheck")
CREATED_USER = "pgextmemcheck"
# The port only names the socket file (listen_addresses is empty); the socket directory is private.
PORT = 5432


class ClusterError(Exception):
    """The cluster could not be created, started or reached; the message carries the server-log tail."""


class BackendsCrash(ClusterError):
    """The server runs, but every new session's first query crashes its backend (a preloaded library that
    crashes every backend): the message quotes the crash from the server log."""


# A connection counts as crashed when the server log reports a backend killed by a signal meanwhile; this many in
# a row while waiting for the server means every connection crashes.
CRASHES_BEFORE_GIVING_UP = 3
_CRASH_LINES = ("terminated by signal", "was terminated by exception", "Failed process was running")
# conf_problems asks the server again after leaving out the parameters it does not know, at most this often.
_CONF_CHECK_ROUNDS = 4


def order_preload(libraries: Sequence[str]) -> List[str]:
    """The libraries in the order given, empty names and duplicates dropped. The hook library measures in any
    position, so its place is the caller's choice."""
    return list(dict.fromkeys(lib for lib in libraries if lib))


def conf_quote(value: object) -> str:
    """A postgresql.conf value: always single-quoted (valid for every GUC type), quotes doubled."""
    if isinstance(value, bool):
        value = "on" if value else "off"
    return "'" + str(value).replace("\\", "\\\\").replace("'", "''") + "'"


def _server_messages(stderr: str) -> List[str]:
    """The server's messages in its stderr, without the log-line prefix; DETAIL and HINT joined to theirs, and
    the closing "configuration file ... contains errors" left out."""
    messages: List[str] = []
    for line in stderr.splitlines():
        level = next((lv for lv in ("LOG:  ", "FATAL:  ", "ERROR:  ", "DETAIL:  ", "HINT:  ") if lv in line), None)
        if level is None:
            continue
        text = line.split(level, 1)[1].strip()
        if level == "FATAL:  " and "contains errors" in text:
            continue
        if level in ("DETAIL:  ", "HINT:  ") and messages:
            messages[-1] += f" ({text})"
        else:
            messages.append(text)
    return messages


def _alive(pid: int) -> bool:
    """The process exists and is not a zombie (a postmaster reparented to a PID 1 that does not reap)."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        pass
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return True
    return stat.rsplit(")", 1)[-1].split()[:1] != ["Z"]


def _user_exists(name: str) -> bool:
    try:
        pwd.getpwnam(name)
        return True
    except KeyError:
        return False


def server_user() -> str | None:
    """The OS user the server runs as: None (ourselves) unless we are root, which initdb/postgres refuse."""
    if os.geteuid() != 0:
        return None
    for name in RUN_USER_CANDIDATES:
        if _user_exists(name):
            return name
    subprocess.run(
        ["useradd", "--system", "--no-create-home", "--shell", "/usr/sbin/nologin", CREATED_USER],
        check=False,
        capture_output=True,
    )
    if not _user_exists(CREATED_USER):
        raise ClusterError(f"running as root and could not create the unprivileged user {CREATED_USER}")
    return CREATED_USER


class Cluster:
    """One private cluster; `with Cluster(pg_config) as c:` initialises and starts it, stops it on exit."""

    def __init__(
        self,
        pg_config: str,
        base_dir: Path | None = None,
        preload: Sequence[str] = (HOOK_LIBRARY,),
        settings: Dict[str, object] | None = None,
        keep: bool = False,
    ) -> None:
        self.info: PgConfig = read_pg_config(pg_config)
        self.pg_config = pg_config
        self.preload = order_preload(preload)
        self.settings: Dict[str, object] = dict(settings or {})
        self.keep = keep
        self.run_as = server_user()
        self.superuser = "postgres"
        self.workdir = self._make_private_dir(base_dir, "pgmc-")
        # Socket paths are limited to ~107 bytes, so the socket always gets a short directory in /tmp.
        self.socket_dir = self._make_private_dir(None, "pgmc-s-")
        self.data_dir = self.workdir / "data"
        self.log_path = self.workdir / "server.log"
        self.running = False
        self._initialised = False
        self.last_postmaster_pid: int | None = None  # of the server started last (it may be gone)
        # The postgresql.conf line of each setting we wrote (pg_settings.sourceline says which one took).
        self.conf_lines: Dict[str, int] = {}

    # -- paths and helpers -------------------------------------------------------------------------

    @property
    def bindir(self) -> Path:
        return Path(self.info.bindir)

    @property
    def pgbench_bin(self) -> Path:
        return self.bindir / "pgbench"

    def _make_private_dir(self, base: Path | None, prefix: str) -> Path:
        """A fresh directory the server user owns; placed where that user can reach it."""
        parent = Path(base) if base is not None else None
        if parent is not None:
            parent.mkdir(parents=True, exist_ok=True)
            if self.run_as is not None and not self._reachable(parent):
                # e.g. pytest's /tmp/pytest-of-root (0700) or anything under /root.
                parent = None
        path = Path(tempfile.mkdtemp(prefix=prefix, dir=str(parent) if parent else None))
        if self.run_as is not None:
            entry = pwd.getpwnam(self.run_as)
            os.chown(path, entry.pw_uid, entry.pw_gid)
        os.chmod(path, 0o700)
        return path

    def _reachable(self, directory: Path) -> bool:
        probe = subprocess.run(self._as_server_user(["test", "-x", str(directory)]), capture_output=True)
        return probe.returncode == 0

    def _as_server_user(self, cmd: List[str]) -> List[str]:
        if self.run_as is None:
            return cmd
        return ["runuser", "-u", self.run_as, "--", *cmd]

    def _run(self, cmd: List[str], what: str, timeout: float = 180) -> subprocess.CompletedProcess:
        # cwd: the server user cannot enter root's working directory, and postgres complains if it cannot.
        try:
            proc = subprocess.run(
                self._as_server_user(cmd), capture_output=True, text=True, cwd=self.workdir, timeout=timeout
            )
        except subprocess.TimeoutExpired as exc:
            raise ClusterError(f"{what} timed out after {timeout}s\n{self.log_tail()}") from exc
        if proc.returncode != 0:
            raise ClusterError(
                f"{what} failed (exit {proc.returncode}): {proc.stderr.strip() or proc.stdout.strip()}\n"
                f"{self.log_tail()}"
            )
        return proc

    # -- lifecycle ---------------------------------------------------------------------------------

    def init(self) -> None:
        self._run(
            [
                str(self.bindir / "initdb"),
                "-D",
                str(self.data_dir),
                "-U",
                self.superuser,
                "-A",
                "trust",
                "-E",
                "UTF8",
                "--locale=C",
                "--no-sync",
            ],
            "initdb",
        )
        self._write_conf()
        self._initialised = True

    def _write_conf(self) -> None:
        """Append our settings to postgresql.conf; later lines win, so the user's settings override ours."""
        base: Dict[str, object] = {
            "listen_addresses": "",
            "port": PORT,
            "unix_socket_directories": str(self.socket_dir),
            "unix_socket_permissions": "0700",
            "shared_preload_libraries": ",".join(self.preload),
            "log_line_prefix": "%m [%p] ",
            "logging_collector": "off",
            "fsync": "off",
            # A crashed backend must not take the run with it: the postmaster reinitialises and we go on.
            "restart_after_crash": "on",
        }
        lines = ["", "# written by pg-ext-memcheck"]
        conf = self.data_dir / "postgresql.conf"
        first = len(conf.read_text(encoding="utf-8").splitlines()) + 1
        for key, value in {**base, **self.settings}.items():
            if key == "shared_preload_libraries" and key in self.settings:
                value = ",".join(order_preload(str(value).split(",")))
            self.conf_lines[key] = first + len(lines)
            lines.append(f"{key} = {conf_quote(value)}")
        # Written as root when root: postgresql.conf stays owned by the server user since we only append.
        with open(conf, "a", encoding="utf-8") as fh:
            fh.write("\n".join(lines) + "\n")

    def conf_problems(self) -> List[str]:
        """What PostgreSQL itself says about postgresql.conf before it starts (`postgres -C`, which reads the
        configuration and exits): invalid values and parameters this major lacks, one message each, naming the
        parameter; empty when it has nothing to say. The server stops at unknown parameters before it checks
        values, so those lines are left out of a scratch copy and it is asked again. Placeholders of libraries
        not loaded yet (`a_lib.x`) are checked after start."""
        if not self._initialised:
            raise ClusterError("conf_problems() before init()")
        lines = (self.data_dir / "postgresql.conf").read_text(encoding="utf-8").splitlines()
        scratch = self.workdir / "postgresql.check.conf"
        messages: List[str] = []
        for _ in range(_CONF_CHECK_ROUNDS):
            scratch.write_text("\n".join(lines) + "\n", encoding="utf-8")
            if self.run_as is not None:
                entry = pwd.getpwnam(self.run_as)
                os.chown(scratch, entry.pw_uid, entry.pw_gid)
            proc = subprocess.run(
                self._as_server_user([str(self.bindir / "postgres"), "-D", str(self.data_dir),
                                      "-c", f"config_file={scratch}", "-C", "work_mem"]),
                capture_output=True, text=True, cwd=self.workdir, timeout=60,
            )
            if proc.returncode == 0:
                break
            found = _server_messages(proc.stderr)
            messages += [re.sub(r' in file "[^"]*" line \d+', "", m) for m in found]
            unknown = [int(m.group(1)) for m in (re.search(r'unrecognized configuration parameter ".*" in file '
                                                           r'"[^"]*" line (\d+)', t) for t in found) if m]
            if not found or not unknown:
                messages = messages or [proc.stderr.strip() or f"postgres -C exited with status {proc.returncode}"]
                break
            for number in unknown:
                lines[number - 1] = ""
        scratch.unlink(missing_ok=True)
        return messages

    def start(self, timeout: float = 60) -> None:
        if not self._initialised:
            raise ClusterError("start() before init()")
        if self.run_as is not None and not self.log_path.exists():
            # pg_ctl (as the server user) must be able to create/append the log.
            self.log_path.touch()
            entry = pwd.getpwnam(self.run_as)
            os.chown(self.log_path, entry.pw_uid, entry.pw_gid)
        self._run(
            [
                str(self.bindir / "pg_ctl"),
                "-D",
                str(self.data_dir),
                "-l",
                str(self.log_path),
                "-w",
                "-t",
                str(int(timeout)),
                "start",
            ],
            "pg_ctl start",
            timeout=timeout + 30,
        )
        self.running = True
        self.last_postmaster_pid = self._postmaster_pid()
        self.wait_ready(timeout)

    def stop(self, mode: str = "fast") -> None:
        """Stop the server if one runs here (its postmaster.pid exists); a server already gone is no error, and
        what its postmaster left running when it died is ended."""
        if self._postmaster_pid() is not None and not self.server_alive():
            self._end_orphans()
        elif self._postmaster_pid() is not None:
            self._run(
                [str(self.bindir / "pg_ctl"), "-D", str(self.data_dir), "-m", mode, "-w", "-t", "60", "stop"],
                "pg_ctl stop",
                timeout=90,
            )
        self.running = False

    def restart(self, timeout: float = 60) -> None:
        self.stop()
        self.start(timeout)

    def cleanup(self) -> None:
        """Remove the cluster's directories (the log too: copy it first if it matters)."""
        shutil.rmtree(self.workdir, ignore_errors=True)
        shutil.rmtree(self.socket_dir, ignore_errors=True)

    def __enter__(self) -> Cluster:
        try:
            self.init()
            self.start()
        except BaseException:
            if not self.keep:
                self.cleanup()
            raise
        return self

    def __exit__(self, *exc: object) -> None:
        try:
            self.stop()
        finally:
            if not self.keep:
                self.cleanup()

    def _postmaster_pid(self) -> int | None:
        try:
            return int((self.data_dir / "postmaster.pid").read_text().splitlines()[0])
        except (OSError, ValueError, IndexError):
            return None

    def server_alive(self) -> bool:
        """Does the postmaster still run? A killed one leaves postmaster.pid behind, so the process is asked."""
        pid = self._postmaster_pid()
        return pid is not None and _alive(pid)

    def processes(self) -> List[int]:
        """The server's processes that are still running: every one has the data directory as its working
        directory (a killed postmaster's backends live on until they notice)."""
        found: List[int] = []
        proc = Path("/proc")
        if not proc.is_dir():
            return found
        data = os.path.realpath(self.data_dir)
        for entry in proc.iterdir():
            if not entry.name.isdigit():
                continue
            try:
                if os.readlink(entry / "cwd") == data and _alive(int(entry.name)):
                    found.append(int(entry.name))
            except OSError:
                continue
        return found

    def restart_after_death(self, timeout: float = 60) -> None:
        """Start the server again after its postmaster died. ClusterError when it cannot be."""
        self._end_orphans()
        self.running = False
        self.start(timeout)

    def _end_orphans(self) -> None:
        """After the postmaster died: kill the backends it left (they hold its shared memory, and a new
        postmaster refuses to start beside them), and remove its lock files, postmaster.pid and the socket's (a
        postmaster left a zombie, when nothing reaps it, still answers kill(pid, 0), and a new one would take
        it for a running server). Both directories are this cluster's own."""
        deadline = time.monotonic() + 30
        while True:
            left = self.processes()
            if not left:
                break
            if time.monotonic() > deadline:
                raise ClusterError(f"the dead server's processes {left} did not exit")
            for pid in left:
                try:
                    os.kill(pid, signal.SIGKILL)
                except OSError:
                    pass
            time.sleep(0.1)
        for lock in (self.data_dir / "postmaster.pid", self.socket_dir / f".s.PGSQL.{PORT}.lock",
                     self.socket_dir / f".s.PGSQL.{PORT}"):
            lock.unlink(missing_ok=True)

    # -- clients -----------------------------------------------------------------------------------

    def conninfo(self, dbname: str = "postgres", user: str | None = None) -> str:
        return make_conninfo(host=str(self.socket_dir), port=str(PORT), dbname=dbname, user=user or self.superuser)

    def connect(self, dbname: str = "postgres", user: str | None = None, **kw: object) -> psycopg.Connection:
        kw.setdefault("autocommit", True)
        return psycopg.connect(self.conninfo(dbname, user), **kw)

    def wait_ready(self, timeout: float = 60) -> None:
        """Poll until a connection succeeds (after start, or after a crash-restart of the postmaster).
        ClusterError at once when the postmaster is gone (nothing will come back), BackendsCrash when the
        server runs but every try crashes a backend."""
        deadline = time.monotonic() + timeout
        last: Exception | None = None
        offset = self.log_size()
        while time.monotonic() < deadline:
            try:
                with self.connect(connect_timeout=5) as conn:
                    conn.execute("SELECT 1")
                return
            except psycopg.Error as exc:
                last = exc
            if not self.server_alive():
                raise ClusterError(f"the server is not running: its postmaster is gone ({last})\n{self.log_tail()}")
            crashes = self._crash_reports(offset)
            if len(crashes) >= CRASHES_BEFORE_GIVING_UP:
                raise BackendsCrash(
                    f"the server started, but every connection crashed: the first query of each new session "
                    f"(SELECT 1) killed its backend, each of the {CRASHES_BEFORE_GIVING_UP}+ times it was tried; "
                    f"the server log says: "
                    f"{crashes[0]}\n" + "\n".join(ln for ln in self.read_log(offset).splitlines()
                                                 if any(m in ln for m in _CRASH_LINES))[:4000])
            time.sleep(0.2)
        raise ClusterError(f"server not accepting connections after {timeout}s: {last}\n{self.log_tail()}")

    def _crash_reports(self, offset: int) -> List[str]:
        """The postmaster's reports of backends killed by a signal since `offset` of the server log."""
        return [ln.split(":  ", 1)[-1].strip() for ln in self.read_log(offset).splitlines()
                if "terminated by signal" in ln or "was terminated by exception" in ln]

    def psql(self, query: str, dbname: str = "postgres") -> str:
        proc = subprocess.run(
            [
                str(self.bindir / "psql"),
                "-X",
                "-A",
                "-t",
                "-v",
                "ON_ERROR_STOP=1",
                "-d",
                self.conninfo(dbname),
                "-c",
                query,
            ],
            capture_output=True,
            text=True,
            timeout=300,
        )
        if proc.returncode != 0:
            raise ClusterError(f"psql failed: {proc.stderr.strip()}")
        return proc.stdout

    # -- the server log ----------------------------------------------------------------------------

    def log_size(self) -> int:
        try:
            return self.log_path.stat().st_size
        except OSError:
            return 0

    def read_log(self, offset: int = 0) -> str:
        try:
            with open(self.log_path, "rb") as fh:
                fh.seek(offset)
                return fh.read().decode("utf-8", errors="replace")
        except OSError:
            return ""

    def log_tail(self, lines: int = 20) -> str:
        text = self.read_log()
        return "\n".join(text.splitlines()[-lines:])
