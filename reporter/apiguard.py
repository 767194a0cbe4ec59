"""The hook library's SQL API, held to what CREATE EXTENSION made of it.

The runner reads every finding through functions of the schema ext_memcheck (`end()`, `status()`,
`flush_violations()` ...) and the table violation_log. Workloads run as superuser, so one can replace any of
them (`CREATE OR REPLACE FUNCTION ext_memcheck."end"() ... returning nothing`), and a leaking run would read
"0 findings". So the runner takes a fingerprint of those objects right after creating the extension, compares
it before it reads a workload's findings, and when it differs says what changed and creates the extension
again (its findings are then read through the restored functions). Talks to PostgreSQL; formats nothing but
the names of what changed.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Callable, Dict, List, Sequence, Tuple

SCHEMA = "ext_memcheck"
EXTENSION = "pg_ext_memcheck"
EXTENSION_KEY = f"extension {EXTENSION}"  # the fingerprint's entry for the extension itself

# Every function of the schema and the relations the runner reads, each with a digest of what decides what it
# does: a replaced body, language or library, another owner, a dropped and re-created object (a new OID),
# rules or triggers added to the log table, a function that shadows one of ours (a new overload of "end").
FINGERPRINT_SQL = f"""
SELECT 'function ' || p.oid::pg_catalog.regprocedure::text AS name,
       pg_catalog.md5(pg_catalog.concat_ws('|', p.oid, p.proowner, p.prolang, p.prokind, p.prosecdef,
           p.proisstrict, p.proretset, p.provolatile, p.prorettype, p.proargtypes, p.proallargtypes,
           p.proconfig, p.prosrc, p.probin)) AS digest
FROM pg_catalog.pg_proc p JOIN pg_catalog.pg_namespace n ON n.oid = p.pronamespace
WHERE n.nspname = '{SCHEMA}'
UNION ALL
SELECT 'table ' || c.oid::pg_catalog.regclass::text,
       pg_catalog.md5(pg_catalog.concat_ws('|', c.oid, c.relkind, c.relowner, c.relhasrules, c.relhastriggers,
           c.relrowsecurity, c.relforcerowsecurity))
FROM pg_catalog.pg_class c JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace
WHERE n.nspname = '{SCHEMA}' AND c.relkind IN ('r', 'v', 'm', 'p', 'f')
UNION ALL
SELECT 'extension ' || e.extname, pg_catalog.md5(pg_catalog.concat_ws('|', e.oid, e.extnamespace, e.extversion))
FROM pg_catalog.pg_extension e WHERE e.extname = '{EXTENSION}'
ORDER BY 1
"""

Fingerprint = Dict[str, str]
Execute = Callable[[str], List[Tuple[Any, ...]]]


@dataclass(frozen=True)
class Tampering:
    """What differs from the reference: objects changed, gone, or added."""

    changed: Tuple[str, ...]
    missing: Tuple[str, ...]
    added: Tuple[str, ...]

    def __bool__(self) -> bool:
        return bool(self.changed or self.missing or self.added)

    def describe(self, limit: int = 6) -> str:
        """'replaced function ext_memcheck."end"(); added function ext_memcheck."end"(integer)'."""
        parts = [f"replaced {n}" for n in self.changed] + [f"dropped {n}" for n in self.missing] + \
            [f"added {n}" for n in self.added]
        shown = "; ".join(parts[:limit])
        return shown + (f"; and {len(parts) - limit} more" if len(parts) > limit else "")


def fingerprint(execute: Execute) -> Fingerprint:
    """name -> digest of every object of the API, as the session `execute` runs in sees them."""
    return {str(name): str(digest) for name, digest in execute(FINGERPRINT_SQL)}


def compare(reference: Fingerprint, now: Fingerprint) -> Tampering:
    """What changed since `reference`. A table's row for the extension itself is compared like the others."""
    changed = tuple(n for n in reference if n in now and now[n] != reference[n])
    missing = tuple(n for n in reference if n not in now)
    added = tuple(n for n in now if n not in reference)
    return Tampering(changed, missing, added)


def reinstall_statements() -> Sequence[str]:
    """Put the API back as CREATE EXTENSION makes it: the schema goes with the extension (and with it whatever
    else was put there), then the extension is created afresh."""
    return (f"DROP EXTENSION IF EXISTS {EXTENSION} CASCADE", f"DROP SCHEMA IF EXISTS {SCHEMA} CASCADE",
            f"CREATE EXTENSION {EXTENSION}")
