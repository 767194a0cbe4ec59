"""A private installation of this tree's cext/ and examples/buggy_pg_ext, so that a benchmark measures exactly
the code in this checkout even when other checkouts install into the same PostgreSQL at the same time.

`make install DESTDIR=<dir>` puts the libraries under <dir><pkglibdir>; the backend finds them first through
`dynamic_library_path = '<that directory>:$libdir'` (contrib libraries such as pg_stat_statements still come
from $libdir).
"""

from __future__ import annotations

from pathlib import Path
from typing import Callable, Sequence

from reporter.build import CEXT_DIR, REPO_ROOT, make_install
from reporter.pgconfig import PgConfig

EXAMPLES = REPO_ROOT / "examples"
# the foreign library the allocation streams call (never preloaded: found through dynamic_library_path)
ALLOCLIB = REPO_ROOT / "benchmarks" / "alloclib"


def private_install(
    info: PgConfig, destdir: Path, foreign: Sequence[str], log: Callable[[str], None]
) -> Path:
    """Build and install the hook library, the foreign libraries this repository holds (examples/<name>) and
    benchmarks/alloclib; return the directory for dynamic_library_path."""
    make_args = [f"DESTDIR={destdir}"]
    make_install(CEXT_DIR, info, make_args, log=log, siblings=("sql",))
    for lib in foreign:
        if (EXAMPLES / lib / "Makefile").is_file():
            make_install(EXAMPLES / lib, info, make_args, log=log)
    make_install(ALLOCLIB, info, make_args, log=log)
    return destdir / info.pkglibdir.lstrip("/")


def library_path(libdir: Path) -> str:
    return f"{libdir}:$libdir"
