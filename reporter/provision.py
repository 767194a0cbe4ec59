"""Which way to get PostgreSQL N: the methods of `install-postgres`, and `auto`, which picks one for this machine.

Methods (each returns the pg_config path of an installation of exactly that major):
- ``debian``: this machine's apt packages ``postgresql-N`` / ``postgresql-server-dev-N``;
- ``pgdg``: the PGDG apt script GitHub runners use;
- ``source``: the upstream tarball of a Debian source package, built into the cache;
- ``wheel``: a PyPI wheel that carries a complete PostgreSQL, pinned by version and sha256;
- ``chroot``: a newer Debian release's packages in a tree of their own, run in a sandbox;
- ``auto`` (the default): ``debian`` if apt has the packages, else ``pgdg`` if its repository is reachable, else
  the route ``LOCAL_ROUTES`` names for the major; for a major with none it fails at once.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Dict, List

from reporter import install, install_chroot, install_wheel
from reporter.install import InstallError, log

METHODS = ("auto", "debian", "pgdg", "source", "wheel", "chroot")
DEFAULT_METHOD = "auto"

# Where a Debian bookworm machine without PGDG gets each major that apt does not have (15 is apt's): the Debian
# archive serves bullseye's postgresql-13 and sid's postgresql-18 as source packages; 16 comes in a PyPI wheel; 17
# only as trixie's binary packages (its source package is listed but not served). .ci/setup.sh relies on `auto`.
LOCAL_ROUTES: Dict[int, str] = {
    13: "source",
    16: "wheel",
    17: "chroot",
    18: "source",
}


def cached(major: int, method: str, cache: Path) -> str | None:
    """The pg_config of a finished install of `major` by `method` in the cache, if there is one."""
    prefixes = {
        "source": install.source_prefix(cache, major),
        "wheel": install_wheel.wheel_prefix(cache, major),
        "chroot": install_chroot.chroot_prefix(cache, major),
    }
    return install.read_stamp(prefixes[method], major) if method in prefixes else None


def install_auto(major: int) -> str:
    route = LOCAL_ROUTES.get(major)
    done = cached(major, route, install.cache_dir()) if route else None
    if done:
        return done  # the route was taken before: no need to ask apt or PGDG again
    tried: List[str] = []
    packages = install.debian_packages(major)
    if install.dpkg_installed(packages) or all(install.apt_has_candidate(p) for p in packages):
        log(f"auto: apt has {' '.join(packages)}")
        return install.install_debian(major)
    tried.append(f"debian (apt has no {packages[0]})")
    pgdg = pgdg_unavailable()
    if pgdg is None:
        log("auto: the PGDG repository is reachable")
        return install.install_pgdg(major)
    tried.append(f"pgdg ({pgdg})")
    if route is not None:
        log(f"auto: PostgreSQL {major} comes from --method {route} on a machine like this one")
        return install_with(major, route)
    known = ", ".join(f"{m} ({r})" for m, r in sorted(LOCAL_ROUTES.items()))
    raise InstallError(
        f"no way to PostgreSQL {major} on this machine: tried " + "; ".join(tried)
        + f", and no other route is known for {major} (known without PGDG: {known}; and any major apt has). "
        f"Use --method pgdg on a machine that reaches PGDG (GitHub runners: the action's default), or "
        f"--method source to look for a postgresql-{major} source package in the Debian archive"
    )


def pgdg_unavailable() -> str | None:
    """Why --method pgdg cannot work here, or None when it might (script there, host reachable or a proxy)."""
    if not os.path.exists(install.PGDG_SCRIPT):
        return f"{install.PGDG_SCRIPT} not installed"
    host = install.pgdg_host(Path(install.PGDG_SCRIPT).read_text(errors="replace"))
    if host and not install.proxy_configured() and not install.reachable(host):
        return f"{host} not reachable"
    return None


def install_with(major: int, method: str, cassert: bool = False) -> str:
    if cassert and method != "source":
        raise ValueError("--cassert needs --method source (packaged builds have assertions off)")
    if method == "auto":
        return install_auto(major)
    if method == "pgdg":
        return install.install_pgdg(major)
    if method == "debian":
        return install.install_debian(major)
    if method == "source":
        return install.install_source(major, cassert)
    if method == "wheel":
        return install_wheel.install_wheel(major)
    if method == "chroot":
        return install_chroot.install_chroot(major)
    raise ValueError(f"unknown method {method!r}; choose one of {', '.join(METHODS)}")
