"""Which way to get PostgreSQL N: the registry of install routes (`install-postgres --method`), and `auto`, which
picks one for this machine.

Routes (each a reporter.install.Route; each returns the pg_config path of an installation of exactly that major):
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
from reporter.install import InstallError, Route, log
from reporter.vocab import INSTALL_AUTO, INSTALL_METHODS

# The one registry of routes, in the order of vocab.INSTALL_METHODS (tests/unit/test_install_registry.py).
ROUTES: Dict[str, Route] = {route.name: route for route in (
    install.DebianRoute(), install.PgdgRoute(), install.SourceRoute(), install_wheel.WheelRoute(),
    install_chroot.ChrootRoute(),
)}
METHODS = INSTALL_METHODS  # auto, then every route
DEFAULT_METHOD = INSTALL_AUTO
AUTO_SUMMARY = "debian if apt has it, else pgdg if reachable, else this machine's known route for the major"

# Where a Debian bookworm machine without PGDG gets each major that apt does not have (15 is apt's): the Debian
# archive serves bullseye's postgresql-13 and sid's postgresql-18 as source packages; 16 comes in a PyPI wheel; 17
# only as trixie's binary packages (its source package is listed but not served). .ci/setup.sh relies on `auto`.
LOCAL_ROUTES: Dict[int, str] = {
    13: "source",
    16: "wheel",
    17: "chroot",
    18: "source",
}


def method_help() -> str:
    """--method's help: every method and what it does, from the registry."""
    return "; ".join([f"{INSTALL_AUTO}: {AUTO_SUMMARY} (default)",
                      *(f"{name}: {route.summary}" for name, route in ROUTES.items())])


def cassert_routes() -> List[str]:
    """The routes that can build PostgreSQL with assertions (--cassert)."""
    return [name for name, route in ROUTES.items() if route.builds_cassert]


def cached(major: int, method: str, cache: Path) -> str | None:
    """The pg_config of a finished install of `major` by `method` in the cache, if there is one."""
    return ROUTES[method].cached(cache, major) if method in ROUTES else None


def install_auto(major: int) -> str:
    route = LOCAL_ROUTES.get(major)
    done = cached(major, route, install.cache_dir()) if route else None
    if done:
        return done  # the route was taken before: no need to ask apt or PGDG again
    tried: List[str] = []
    packages = install.debian_packages(major)
    if install.dpkg_installed(packages) or all(install.apt_has_candidate(p) for p in packages):
        log(f"auto: apt has {' '.join(packages)}")
        return ROUTES["debian"].install(major)
    tried.append(f"debian (apt has no {packages[0]})")
    pgdg = pgdg_unavailable()
    if pgdg is None:
        log("auto: the PGDG repository is reachable")
        return ROUTES["pgdg"].install(major)
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


def cassert_problem(method: str) -> str | None:
    """Why --cassert cannot go with this method, or None."""
    if method in ROUTES and ROUTES[method].builds_cassert:
        return None
    can = " or ".join(f"--method {name}" for name in cassert_routes())
    return f"--cassert needs {can} (packaged builds have assertions off)"


def install_with(major: int, method: str, cassert: bool = False) -> str:
    if cassert and cassert_problem(method):
        raise ValueError(cassert_problem(method))
    if method == INSTALL_AUTO:
        return install_auto(major)
    if method not in ROUTES:
        raise ValueError(f"unknown method {method!r}; choose one of {', '.join(METHODS)}")
    return ROUTES[method].install(major, cassert)
