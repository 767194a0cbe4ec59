"""The groups of a parallel test run (pytest -n N --dist loadgroup, scheduled by tests/conftest.py)."""

from __future__ import annotations

import re
from typing import Sequence


def parallel_group(nodeid: str, major_ids: Sequence[str]) -> str:
    """Which tests must share a worker. `major_ids`: the version matrix's ids (pg15, pg13, ...), the first being
    the PostgreSQL each worker has a private copy of.

    Tests on another major share its worker (pytest ids such as [pg13] or [order-after-pg13-...]): they install
    into that PostgreSQL. So do the tests of the assertion-enabled build (their names say cassert). Else a module's
    tests share one (its module-scoped fixtures are set up once); unit tests share nothing and go anywhere.
    """
    path, _, rest = nodeid.partition("::")
    if "cassert" in nodeid:
        return "postgresql-cassert"
    params = rest[rest.find("[") + 1:-1] if rest.endswith("]") else ""
    for major_id in major_ids[1:]:
        if major_id != major_ids[0] and re.search(rf"(?:^|-){re.escape(major_id)}(?:-|$)", params):
            return f"postgresql-{major_id}"
    return nodeid if "/unit/" in f"/{path}" else path
