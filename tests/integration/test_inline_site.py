"""A leak allocated by code a PostgreSQL header inlined into the extension (lib/simplehash.h's SH_CREATE) is named
by the extension's own function and line, on a real cluster and a real build with debug information."""

from __future__ import annotations

from pathlib import Path
from typing import Iterator

import pytest

from reporter import build, sites
from reporter.cluster import Cluster

pytestmark = [pytest.mark.integration, pytest.mark.all_majors]

LIBDIR = Path(__file__).resolve().parents[1] / "extensions" / "inline_site"
SOURCE = LIBDIR / "inline_site.c"
LINE = next(n for n, text in enumerate(SOURCE.read_text().splitlines(), 1) if "INLINE_SITE_LINE" in text)


@pytest.fixture(scope="module")
def cluster(installed_pg_config: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Cluster]:
    info = build.read_pg_config(installed_pg_config)
    build.make_install(LIBDIR, info)
    c = Cluster(installed_pg_config, base_dir=tmp_path_factory.mktemp("inline"), preload=["pg_ext_memcheck"])
    c.init()
    c.start()
    with c.connect() as conn:
        conn.execute("CREATE EXTENSION pg_ext_memcheck; CREATE EXTENSION inline_site")
    yield c
    c.stop()
    c.cleanup()


def test_an_inlined_allocation_is_named_by_the_extensions_line(cluster: Cluster) -> None:
    with cluster.connect() as conn:
        conn.execute("SET pg_ext_memcheck.memcheck_mode = 'all'")
        conn.execute("SELECT ext_memcheck.begin('')")
        for _ in range(20):
            conn.execute("SELECT inline_site_leak()")
        rows = conn.execute("SELECT check_type, verdict, context_name, sites FROM ext_memcheck.\"end\"() "
                            "WHERE check_type = 'context_leak' AND context_name = 'TopMemoryContext'").fetchall()
    assert len(rows) == 1 and rows[0][1] == "leak", rows
    top = rows[0][3][0]
    assert top["lib"] == "inline_site.so"
    library = Path(cluster.info.pkglibdir) / "inline_site.so"
    # without the header directories addr2line's innermost frame is simplehash.h: the allocation is inlined
    raw = sites.resolve(library, [top["offset"]])[top["offset"]]
    assert raw[1] is not None and raw[1].endswith("simplehash.h"), raw
    function, file, line = sites.resolve(library, [top["offset"]],
                                         header_dirs=[cluster.info.includedir_server])[top["offset"]]
    assert function == "inline_site_leak" and file == str(SOURCE) and line == LINE, (function, file, line)
