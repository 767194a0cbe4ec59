"""What the hook-overhead benchmarks compare: configurations, their preload lists and settings, and the targets.

One source for both views (callgrind instruction counts, pgbench TPS). Every configuration is measured against a
baseline with the same foreign libraries preloaded and pg_ext_memcheck absent, so the ratio is what pg_ext_memcheck
adds to a backend whose hook chains already hold foreign code.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Dict, List, Optional, Sequence, Tuple

from reporter.cluster import HOOK_LIBRARY, order_preload

MODE_GUC = f"{HOOK_LIBRARY}.memcheck_mode"


@dataclass(frozen=True)
class Config:
    name: str
    mode: Optional[str]  # pg_ext_memcheck.memcheck_mode; None: pg_ext_memcheck is not preloaded

    @property
    def is_baseline(self) -> bool:
        return self.mode is None


BASELINE = Config("baseline", None)
CONFIGS: Tuple[Config, ...] = (BASELINE, Config("mode all", "all"), Config("mode off", "off"))

# Settings a foreign library needs to behave as a well-behaved foreign hook library (the example's bugs off).
FOREIGN_SETTINGS: Dict[str, Dict[str, str]] = {"buggy_pg_ext": {"buggy_pg_ext.bugs": ""}}
# The foreign preload lists measured by default: the example alone, and with a realistic contrib hook library.
DEFAULT_FOREIGN: Tuple[Tuple[str, ...], ...] = (("buggy_pg_ext",), ("buggy_pg_ext", "pg_stat_statements"))

# Issue 19: with a foreign hook library preloaded, instructions relative to the same preload list without
# pg_ext_memcheck, per stream (a: lookups, b: nested statements, c: lookups after temp-table DDL, d: rows of a
# foreign function that allocates on every call).
TARGETS: Dict[Tuple[str, str], float] = {
    ("all", "a"): 1.05,
    ("all", "b"): 1.12,
    ("all", "c"): 1.05,
    ("all", "d"): 1.25,
    ("off", "a"): 1.005,
    ("off", "b"): 1.005,
    ("off", "c"): 1.005,
    ("off", "d"): 1.005,
}


def parse_foreign(text: str) -> Tuple[str, ...]:
    """A comma-separated foreign preload list ("buggy_pg_ext,pg_stat_statements"); ValueError says what is wrong."""
    names = tuple(part.strip() for part in text.split(","))
    if not text.strip() or any(not name for name in names):
        raise ValueError(f"--foreign {text!r}: expected comma-separated library names, none empty")
    if HOOK_LIBRARY in names:
        raise ValueError(f"--foreign {text!r}: {HOOK_LIBRARY} is added by the configurations, not a foreign library")
    if len(set(names)) != len(names):
        raise ValueError(f"--foreign {text!r}: a library is listed twice")
    return names


def foreign_label(foreign: Sequence[str]) -> str:
    return ",".join(foreign)


def preload(foreign: Sequence[str], config: Config) -> List[str]:
    """shared_preload_libraries: the foreign list, with pg_ext_memcheck first unless this is the baseline."""
    if config.is_baseline:
        return list(foreign)
    return order_preload([HOOK_LIBRARY, *foreign])


def settings(foreign: Sequence[str], config: Config) -> Dict[str, str]:
    """The server settings of one configuration (given on the command line or in postgresql.conf)."""
    values: Dict[str, str] = {"shared_preload_libraries": ",".join(preload(foreign, config))}
    for lib in foreign:
        values.update(FOREIGN_SETTINGS.get(lib, {}))
    if config.mode is not None:
        values[MODE_GUC] = config.mode
    return values


def target(config: Config, stream: str) -> Optional[float]:
    """The highest acceptable ratio against the baseline, or None (the baseline itself)."""
    if config.mode is None:
        return None
    return TARGETS.get((config.mode, stream))
