"""`install-postgres --method chroot`: a newer Debian release's own PostgreSQL packages, in a tree of their own.

For a major that no suite of this machine packages, but a newer Debian release does (17: trixie), while the archive
serves no source package to build from: ``debootstrap --variant=minbase`` makes a tree of that release from the
mirror the machine's apt already uses, and apt-get inside it installs ``postgresql-N``, ``postgresql-server-dev-N``
and a compiler. Its programs need that release's C library, newer than this machine's, so they run in a
bubblewrap sandbox whose /usr and /etc are the tree's, while every other top-level directory of this machine is
bound at its own path: data directories, sockets, logs and build trees mean the same inside and out. No mounts
outlive a command, and an unprivileged user (the server user) can run the sandbox through a user namespace.

What `build`, `run` and `check` get is an ordinary-looking installation under
``$PG_EXT_MEMCHECK_CACHE/postgresql/N-chroot``:
- ``bin/``: one small script per program of the tree, each running the real one in the sandbox; ``bin/pg_config``
  reports the tree's (host-visible) directories, except that its bindir is this ``bin/`` and, outside the sandbox,
  its PGXS is the stub below;
- ``lib/pgxs/src/makefiles/pgxs.mk``: a stub that hands every goal of the host's make to a make in the sandbox,
  which reads the same Makefile with the tree's real PGXS (gcc and the C library headers of the tree);
- ``sandbox``: the launcher the scripts share; ``root/``: the Debian tree.
Limit: directories under this machine's /usr and /etc are the tree's inside the sandbox, so extension sources and
cluster directories must live elsewhere (they do by default: /tmp, the work tree, the cache).
"""

from __future__ import annotations

import json
import os
import re
import shlex
import shutil
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Dict, List, Sequence, Tuple

from reporter.install import (
    DEBIAN_KEYRING,
    STAMP,
    InstallError,
    Route,
    apt_install_command,
    cache_dir,
    check_pg_config,
    debian_mirror,
    file_lock,
    is_root,
    last_line,
    log,
    open_up,
    read_stamp,
    run_logged,
    system_apt_sources,
)


@dataclass(frozen=True)
class ChrootRelease:
    suite: str
    packages: Tuple[str, ...]


CHROOTS: Dict[int, ChrootRelease] = {
    17: ChrootRelease("trixie", ("postgresql-17", "postgresql-server-dev-17", "make", "gcc", "libc6-dev")),
}
# host command -> the bookworm package that has it
HOST_TOOLS = {"debootstrap": "debootstrap", "bwrap": "bubblewrap"}
# Top-level directories the sandbox takes from the tree (or from nowhere) rather than from this machine.
OS_DIRS = ("bin", "boot", "dev", "etc", "lib", "lib32", "lib64", "libx32", "sbin", "usr", "proc", "sys",
           "lost+found")
SANDBOX_ENV = "PG_EXT_MEMCHECK_SANDBOX"


def route_for(major: int) -> ChrootRelease:
    if major not in CHROOTS:
        have = ", ".join(f"{m} (Debian {r.suite})" for m, r in sorted(CHROOTS.items()))
        raise InstallError(
            f"--method chroot has no PostgreSQL {major}: it knows {have} only; "
            "use --method auto to see what this machine can provide, or --method pgdg where PGDG is reachable"
        )
    return CHROOTS[major]


# ------------------------------------------------------------------------------------- preconditions


def missing_host_tools() -> List[str]:
    return [pkg for tool, pkg in HOST_TOOLS.items() if shutil.which(tool) is None]


def ensure_host_tools() -> None:
    missing = missing_host_tools()
    if not missing:
        return
    cmd = apt_install_command(missing)
    log("installing " + " ".join(missing) + ": " + " ".join(cmd))
    if subprocess.run(cmd, stdout=subprocess.DEVNULL, stdin=subprocess.DEVNULL, check=False).returncode != 0:
        raise InstallError("could not install " + " ".join(missing) + " (apt-get install failed)")


def unprivileged_sandbox_problem(user: str = "nobody") -> str | None:
    """Why an unprivileged user could not start a bubblewrap sandbox here (the server runs as one), or None."""
    cmd = ["bwrap", "--ro-bind", "/", "/", "--dev", "/dev", "--", "true"]
    if is_root():
        cmd = ["runuser", "-u", user, "--", *cmd]
    proc = subprocess.run(cmd, capture_output=True, text=True, stdin=subprocess.DEVNULL, check=False)
    if proc.returncode == 0:
        return None
    return last_line(proc.stderr) or f"exit {proc.returncode}"


def apt_proxy_options(dump: str) -> List[str]:
    """-o options carrying this machine's apt proxy settings (from `apt-config dump`) to apt-get in the tree."""
    opts: List[str] = []
    for m in re.finditer(r'^(Acquire::https?::Proxy(?:::[^ ]+)?) "([^"]*)";$', dump, flags=re.M | re.I):
        opts += ["-o", f"{m.group(1)}={m.group(2)}"]
    return opts


def host_apt_proxy_options() -> List[str]:
    proc = subprocess.run(["apt-config", "dump"], capture_output=True, text=True, check=False)
    return apt_proxy_options(proc.stdout) if proc.returncode == 0 else []


# ------------------------------------------------------------------------------------------ the tree


def debootstrap_command(suite: str, root: Path, mirror: str, keyring: str | None) -> List[str]:
    cmd = ["debootstrap", "--variant=minbase"]
    if keyring:
        cmd.append(f"--keyring={keyring}")
    return [*cmd, suite, str(root), mirror]


def root_bwrap_command(root: Path, args: Sequence[str]) -> List[str]:
    """Run `args` as root inside the tree (for apt-get): its own /proc and /dev, this machine's resolv.conf."""
    cmd = ["bwrap", "--bind", str(root), "/", "--dev", "/dev", "--proc", "/proc", "--unshare-pid",
           "--setenv", "DEBIAN_FRONTEND", "noninteractive", "--setenv", "PATH", "/usr/sbin:/usr/bin:/sbin:/bin"]
    if os.path.exists("/etc/resolv.conf"):
        cmd += ["--ro-bind", "/etc/resolv.conf", "/etc/resolv.conf"]
    return [*cmd, "--", *args]


def prepare_tree(root: Path) -> None:
    """No daemons started by package scripts, no cluster created by postgresql-common, a fast dpkg."""
    policy = root / "usr" / "sbin" / "policy-rc.d"
    policy.write_text("#!/bin/sh\n# pg-ext-memcheck: services are never started in this tree\nexit 101\n")
    policy.chmod(0o755)
    conf = root / "etc" / "postgresql-common" / "createcluster.d"
    conf.mkdir(parents=True, exist_ok=True)
    (conf / "pg-ext-memcheck.conf").write_text("create_main_cluster = false\n")
    (root / "etc" / "resolv.conf").touch()  # the mount point for this machine's resolv.conf
    # A throw-away tree: no fsync per file, and no documentation or translations (the server runs in the C locale).
    (root / "etc" / "dpkg" / "dpkg.cfg.d" / "pg-ext-memcheck").write_text(
        "force-unsafe-io\npath-exclude=/usr/share/doc/*\npath-exclude=/usr/share/man/*\n"
        "path-exclude=/usr/share/info/*\npath-exclude=/usr/share/locale/*\n"
    )


# ------------------------------------------------------------------------------------------ wrappers


def sandbox_script(root: Path, links: Dict[str, str], major: int, suite: str) -> str:
    q = shlex.quote
    link_args = " ".join(f"--symlink {q(target)} {q('/' + name)}" for name, target in sorted(links.items()))
    skip = "|".join(OS_DIRS)
    return f"""#!/bin/bash
# Runs a program of the PostgreSQL {major} tree (Debian {suite}) in a bubblewrap sandbox: the tree's /usr and /etc,
# this machine's users, /dev and /proc, and every other top-level directory of this machine at its own path.
# Made by `pg-ext-memcheck install-postgres {major} --method chroot`.   usage: sandbox PROGRAM [ARG...]
set -euo pipefail
root={q(str(root))}
if [ "${{{SANDBOX_ENV}:-}}" = "$root" ]; then exec "$@"; fi
args=(--ro-bind "$root/usr" /usr --ro-bind "$root/etc" /etc {link_args}
      --ro-bind /etc/passwd /etc/passwd --ro-bind /etc/group /etc/group
      --dev-bind /dev /dev --bind /proc /proc --ro-bind /sys /sys)
for dir in /*; do
  case "${{dir#/}}" in {skip}) continue ;; esac
  if [ -L "$dir" ]; then args+=(--symlink "$(readlink "$dir")" "$dir")
  elif [ -d "$dir" ]; then args+=(--bind "$dir" "$dir"); fi
done
exec bwrap "${{args[@]}}" --unsetenv LD_LIBRARY_PATH --unsetenv LD_PRELOAD --setenv {SANDBOX_ENV} "$root" -- "$@"
"""


def program_script(sandbox: Path, program: Path) -> str:
    return f"#!/bin/sh\nexec {shlex.quote(str(sandbox))} {shlex.quote(str(program))} \"$@\"\n"


def pg_config_script(sandbox: Path, root: Path, real_bindir: Path, bindir: Path, real_pgxs: Path,
                     pgxs: Path) -> str:
    q = shlex.quote
    return f"""#!/bin/bash
# pg_config of the tree, run in its sandbox; the bindir it reports is {bindir} (scripts that run each program in
# the sandbox) and, outside the sandbox, its PGXS is the stub that hands the build to a make in the sandbox.
set -euo pipefail
real_bindir={q(str(real_bindir))}
real_pgxs={q(str(real_pgxs))}
out=$({q(str(sandbox))} "$real_bindir/pg_config" "$@")
while IFS= read -r line; do
  case "$line" in
    *"$real_bindir") line="${{line%"$real_bindir"}}"{q(str(bindir))} ;;
    *"$real_pgxs") [ "${{{SANDBOX_ENV}:-}}" = {q(str(root))} ] || line="${{line%"$real_pgxs"}}"{q(str(pgxs))} ;;
  esac
  printf '%s\\n' "$line"
done <<<"$out"
"""


def pgxs_stub(sandbox: Path, real_pgxs: Path, major: int) -> str:
    return f"""# PGXS of the PostgreSQL {major} tree made by `pg-ext-memcheck install-postgres {major} --method chroot`.
# That tree's compiler and C library only run in its sandbox, so this make builds nothing itself: it hands the
# goals it was given to a make in the sandbox, which reads the same Makefile with the tree's real PGXS. Variables
# set on the command line (PG_CONFIG, PG_CFLAGS, ...) reach that make through MAKEFLAGS.
pg_ext_memcheck_goals := $(or $(MAKECMDGOALS),all)
.DEFAULT_GOAL := $(firstword $(pg_ext_memcheck_goals))
.PHONY: $(pg_ext_memcheck_goals) pg-ext-memcheck-sandbox
$(pg_ext_memcheck_goals): pg-ext-memcheck-sandbox
\t@:
pg-ext-memcheck-sandbox:
\t+{sandbox} $(MAKE) -C $(CURDIR) -f $(firstword $(MAKEFILE_LIST)) PGXS={real_pgxs} $(MAKECMDGOALS)
"""


def top_level_links(root: Path) -> Dict[str, str]:
    """The tree's merged-/usr links (bin -> usr/bin, ...), recreated in the sandbox."""
    return {p.name: os.readlink(p) for p in root.iterdir() if p.is_symlink()}


def write_executable(path: Path, text: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)
    path.chmod(0o755)


def write_wrappers(prefix: Path, root: Path, major: int, suite: str) -> str:
    """The sandbox launcher, bin/, and the PGXS stub; returns the pg_config to hand out."""
    real_bindir = root / "usr" / "lib" / "postgresql" / str(major) / "bin"
    real_pgxs = root / "usr" / "lib" / "postgresql" / str(major) / "lib" / "pgxs" / "src" / "makefiles" / "pgxs.mk"
    if not (real_bindir / "pg_config").is_file() or not real_pgxs.is_file():
        raise InstallError(f"{root} has no {real_bindir / 'pg_config'} or {real_pgxs}")
    sandbox = prefix / "sandbox"
    write_executable(sandbox, sandbox_script(root, top_level_links(root), major, suite))
    bindir = prefix / "bin"
    pgxs = prefix / "lib" / "pgxs" / "src" / "makefiles" / "pgxs.mk"
    for program in sorted(real_bindir.iterdir()):
        if program.name != "pg_config":
            write_executable(bindir / program.name, program_script(sandbox, program))
    write_executable(bindir / "pg_config", pg_config_script(sandbox, root, real_bindir, bindir, real_pgxs, pgxs))
    pgxs.parent.mkdir(parents=True, exist_ok=True)
    pgxs.write_text(pgxs_stub(sandbox, real_pgxs, major))
    pgxs.chmod(0o644)
    return str(bindir / "pg_config")


# ------------------------------------------------------------------------------------------ install


def chroot_prefix(cache: Path, major: int) -> Path:
    return cache / "postgresql" / f"{major}-chroot"


def install_chroot(major: int, cache: Path | None = None) -> str:
    route = route_for(major)
    cache = cache_dir() if cache is None else cache
    prefix = chroot_prefix(cache, major)
    pg_config = read_stamp(prefix, major)
    if pg_config:
        return pg_config
    if not is_root():
        raise InstallError(
            "--method chroot needs root (debootstrap, and apt-get inside the tree); run it as root, with "
            "PG_EXT_MEMCHECK_CACHE set to a directory other users can enter (e.g. sudo env "
            "PG_EXT_MEMCHECK_CACHE=/var/cache/pg-ext-memcheck pg-ext-memcheck install-postgres "
            f"{major} --method chroot)"
        )
    for system_dir in ("/usr", "/etc"):
        if prefix.absolute().is_relative_to(system_dir):
            raise InstallError(f"{prefix} lies under {system_dir}, which the sandbox takes from the tree; "
                               "set PG_EXT_MEMCHECK_CACHE to a directory elsewhere")
    ensure_host_tools()
    problem = unprivileged_sandbox_problem()
    if problem:
        raise InstallError(
            f"an unprivileged user cannot start a bubblewrap sandbox here ({problem}); the server runs "
            "unprivileged, so --method chroot cannot work on this machine (user namespaces must be allowed: "
            "sysctl user.max_user_namespaces, kernel.unprivileged_userns_clone, AppArmor's userns restriction)"
        )
    open_up(cache, "postgresql")
    with file_lock(cache / "postgresql" / f"{major}-chroot.lock", f"installing PostgreSQL {major} (chroot)"):
        pg_config = read_stamp(prefix, major)
        if pg_config:
            return pg_config
        return make_tree(major, route, cache, prefix)


def make_tree(major: int, route: ChrootRelease, cache: Path, prefix: Path) -> str:
    started = time.monotonic()
    mirror = debian_mirror(system_apt_sources())
    keyring = DEBIAN_KEYRING if os.path.exists(DEBIAN_KEYRING) else mirror.signed_by
    logfile = cache / "postgresql" / f"{major}-chroot.log"
    logfile.write_text("")
    shutil.rmtree(prefix, ignore_errors=True)
    root = prefix / "root"
    old_umask = os.umask(0o022)  # the tree and the scripts must be readable by the unprivileged server user
    try:
        prefix.mkdir(parents=True)
        log(f"debootstrap {route.suite} from {mirror.uris[0]} into {root} (output in {logfile})")
        run_logged(debootstrap_command(route.suite, root, mirror.uris[0], keyring), prefix, logfile)
        prepare_tree(root)
        apt = ["apt-get", "-q", *host_apt_proxy_options()]
        log(f"apt-get install {' '.join(route.packages)} in the {route.suite} tree")
        run_logged(root_bwrap_command(root, [*apt, "update"]), prefix, logfile)
        run_logged(root_bwrap_command(root, [*apt, "install", "-y", "--no-install-recommends", *route.packages]),
                   prefix, logfile)
        run_logged(root_bwrap_command(root, ["apt-get", "clean"]), prefix, logfile)
        pg_config = write_wrappers(prefix, root, major, route.suite)
    finally:
        os.umask(old_umask)
    cfg = check_pg_config(pg_config, major)
    (prefix / STAMP).write_text(json.dumps({
        "major": major, "version": cfg.version, "pg_config": pg_config, "method": "chroot",
        "suite": route.suite,
        # the wrappers are useless without the tree they run
        "requires": [str(root / "usr" / "lib" / "postgresql" / str(major) / "bin" / "postgres")],
    }) + "\n")
    log(f"PostgreSQL {cfg.version} from Debian {route.suite} ready in {prefix} in {time.monotonic() - started:.0f}s")
    return pg_config


class ChrootRoute(Route):
    name = "chroot"
    summary = "a newer Debian release's packages in a sandboxed tree ({majors}; needs root)".format(
        majors=", ".join(str(m) for m in sorted(CHROOTS)))

    def install(self, major: int, cassert: bool = False) -> str:
        return install_chroot(major)

    def prefix(self, cache: Path, major: int, cassert: bool = False) -> Path | None:
        return chroot_prefix(cache, major)
