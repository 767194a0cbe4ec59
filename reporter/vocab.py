"""Every shared vocabulary of pg-ext-memcheck, in one place.

The JSON schemas (reporter/schemas/*.json) spell these enums out too, because a schema must stand alone; a test
(tests/unit/test_vocab.py) asserts that each schema enum equals the tuple here, and the C library's names are
checked against `export()` the same way. Add a word here first, then to the schemas (and the C side), then to the
README's "what to do" table (a test checks every check type has its paragraph).

Order matters where it is a rank: SEVERITIES, LIFETIMES and FAIL_ON_LEVELS go from least to most serious.
"""

from __future__ import annotations

from typing import Dict, Iterable, Optional, Tuple

# ---- what a violation is -------------------------------------------------------------------------------

CHECK_TYPES: Tuple[str, ...] = (
    "context_leak",  # a memory context kept growing
    "wrong_ctx_alloc",  # allocations landed in a backend-lifetime context (TopMemoryContext, ...)
    "resource_leak",  # PostgreSQL warned at commit about a resource not released
    "malloc_leak",  # the backend's malloc heap grew with no memory context growing to match
    "settings_changed",  # the checker's own settings (mode, thresholds) were changed inside a measured window
    "coverage_gap",  # something could not be measured (load order, a hook not reachable): said, never silent
    "memory_corruption",  # an assertion-enabled build's memory-context checks found a write past a chunk's end
    "shmem_overrun",  # guard bytes after a shared-memory allocation (ShmemInitStruct) were overwritten
    "dsm_leak",  # a DSM segment created or attached in a window was still mapped at its end (pinned mappings too)
    "ctx_bloat",  # growth_benchmark: a context grew across log-spaced checkpoints (linear or superlinear)
    "use_after_reset",  # context_reset_storm: a crash, an error or a changed result after memory was reset and
    # poisoned, or a crash of the workload in its workers that no poisoning explains (context "crash")
    "concurrency_error",  # concurrent_backends: a worker crashed, deadlocked, timed out on a lock or failed
)
# Checks that are about the growth of one memory context: the ones findings fold parents and restatements of.
CONTEXT_GROWTH_CHECKS: Tuple[str, ...] = ("context_leak", "wrong_ctx_alloc", "ctx_bloat")

SEVERITIES: Tuple[str, ...] = ("INFO", "WARNING", "ERROR")  # least serious first
SEVERITY_RANK: Dict[str, int] = {s: n for n, s in enumerate(SEVERITIES, 1)}

# What the leaked memory lives until, shortest first.
LIFETIMES: Tuple[str, ...] = ("statement", "transaction", "backend")
LIFETIME_RANK: Dict[str, int] = {s: n for n, s in enumerate(LIFETIMES, 1)}

# leak: growth that repeats; cache: one-time growth (the C side never reports a cache above INFO).
VERDICTS: Tuple[str, ...] = ("leak", "cache")

# The denominator of a rate: "bytes per call" is not "bytes per iteration". The unit a user means: one call of the
# library's function (SQL function, access-method callback), one statement run (a hook's entries for one
# statement; statements run by EXECUTE or SPI count as their own), one transaction or subtransaction (their
# callbacks), one loop of a background worker between two waits, one iteration of a scenario.
RATE_UNITS: Tuple[str, ...] = ("call", "row", "iteration", "statement", "transaction", "subtransaction", "loop")

# Where foreign code was entered when a row was measured (violation_log's "phase"), in the C library's order
# (cext/base/base.h McPhase). A scenario's rows are measured over repetitions of the whole workload: "scenario"
# is not a phase of the code, and findings treat it as compatible with any phase.
PHASES: Tuple[str, ...] = ("planner", "executor", "utility", "scenario", "commit", "function", "callback", "other")
PHASE_SCENARIO = "scenario"

# ---- workloads -----------------------------------------------------------------------------------------

# failed: a regression test file whose output differed from its expected file (the memory results still count).
STATUSES: Tuple[str, ...] = ("passed", "violations", "error", "timeout", "crashed", "failed")
# Statuses that mean the workload did not finish as it should: JUnit errors, and a failure unless fail-on is never.
BROKEN_STATUSES: Tuple[str, ...] = ("error", "timeout", "crashed", "failed")
# How one of a workload's concurrent sessions (`concurrency: N`) ended.
SESSION_STATUSES: Tuple[str, ...] = ("passed", "error", "timeout", "crashed")
WORKLOAD_KINDS: Tuple[str, ...] = ("sql", "file", "scenario", "regress")
# run_scenario()'s scenarios, in the C library's order (cext/base/vocab.c scenario_names; each kind registered by
# the file of its check).
SCENARIOS: Tuple[str, ...] = ("growth_benchmark", "tx_abort_loop", "shmem_sentinel_probe", "wrong_context_probe",
                               "context_reset_storm", "concurrent_backends", "dsm_lifecycle_check")
# How a workload's SQL is sent: simple query, extended (unnamed statement), or a prepared statement.
PROTOCOLS: Tuple[str, ...] = ("simple", "extended", "prepared")
DEFAULT_PROTOCOL = "simple"

# pg_ext_memcheck.memcheck_mode; memcheck.yml also accepts the aliases, results.json holds only MODES.
MODES: Tuple[str, ...] = ("off", "planner", "executor", "all")
MODE_ALIASES: Dict[str, str] = {"none": "off"}

# ---- PostgreSQL ----------------------------------------------------------------------------------------

# install-postgres --method and the action's install-method: auto picks one of the others (provision.py);
# each other word names a route of provision.ROUTES. The action also takes "none" (INSTALL_NONE).
INSTALL_METHODS: Tuple[str, ...] = ("auto", "debian", "pgdg", "source", "wheel", "chroot")
INSTALL_AUTO = "auto"
INSTALL_NONE = "none"

# ---- judging -------------------------------------------------------------------------------------------

FAIL_ON_LEVELS: Tuple[str, ...] = ("never", "info", "warning", "error")
# The lowest severity rank that fails the run; None: nothing does.
FAIL_ON_RANK: Dict[str, Optional[int]] = {"never": None, "info": 1, "warning": 2, "error": 3}
DEFAULT_FAIL_ON = "error"

# report --annotations: the action's on/off, and auto (on inside GitHub Actions) for the command line.
ANNOTATION_MODES: Tuple[str, ...] = ("auto", "on", "off")

# Which findings fail-on judges when a base revision was compared: only what the change introduced or made
# worse (new), or every finding (all). Without a comparison it is always all.
FAIL_ON_SCOPES: Tuple[str, ...] = ("new", "all")
# How a finding compares with the base run (reporter/compare.py), in the order the report lists them.
COMPARISON_CLASSES: Tuple[str, ...] = ("new", "worse", "unchanged", "fixed", "not compared")
# What fail-on (and fail-on-scope) says about one finding (summary.gate), the same in every output: it fails the
# job; it is judged but below fail-on; it is not judged (unchanged from the base under fail-on-scope new);
# it is suppressed.
GATES: Tuple[str, ...] = ("fails", "below", "not judged", "suppressed")

# ---- the action -----------------------------------------------------------------------------------------

COMMENT_MODES: Tuple[str, ...] = ("auto", "always", "changes", "never")
SWITCHES: Tuple[str, ...] = ("on", "off")


def reaches(severity: Optional[str], fail_on: str) -> bool:
    """True when a finding of this severity fails the run under fail_on."""
    threshold = FAIL_ON_RANK[fail_on]
    return severity is not None and threshold is not None and SEVERITY_RANK[severity] >= threshold


def strictest_fail_on(levels: Iterable[str]) -> str:
    """The level that fails soonest (info before warning before error before never); DEFAULT_FAIL_ON if none."""
    chosen = list(levels)
    if not chosen:
        return DEFAULT_FAIL_ON
    return min(chosen, key=lambda lvl: FAIL_ON_RANK[lvl] or len(FAIL_ON_LEVELS))


def export() -> Dict[str, Tuple[str, ...]]:
    """The vocabularies other languages must agree with (the C library's tests compare against this)."""
    return {
        "check_types": CHECK_TYPES,
        "severities": SEVERITIES,
        "lifetimes": LIFETIMES,
        "verdicts": VERDICTS,
        "rate_units": RATE_UNITS,
        "phases": PHASES,
        "statuses": STATUSES,
        "session_statuses": SESSION_STATUSES,
        "workload_kinds": WORKLOAD_KINDS,
        "scenarios": SCENARIOS,
        "modes": MODES,
        "fail_on_levels": FAIL_ON_LEVELS,
        "install_methods": INSTALL_METHODS,
    }


if __name__ == "__main__":  # `python -m reporter.vocab`: the vocabularies as JSON, for the C side's test
    import json

    print(json.dumps(export(), indent=2))
