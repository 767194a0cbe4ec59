"""The fixed query streams fed to a single-user backend on stdin, and what their output must show.

A stream is one statement per line (single-user mode ends a statement at a newline):

    check query           the configuration's settings as the backend sees them
    setup                 warm-up (and, for stream c, the temp-table DDL)
    SELECT pg_sleep(0);   marker: callgrind dumps before entering pg_sleep
    measured statements
    SELECT pg_sleep(0);   marker
    (end of input: the backend shuts down)

Run under `--dump-before=pg_sleep`, callgrind writes three parts; the second holds exactly the measured statements
and one marker statement, so start-up, setup and shut-down are not in the figure.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Dict, List, Mapping, Tuple

from benchmarks.hookbench.configs import MODE_GUC

MARKER_FUNCTION = "pg_sleep"
MARKER = f"SELECT {MARKER_FUNCTION}(0);"
ACCOUNTS = 100_000  # rows of pgbench_accounts at scale 1
LOOKUPS = 2_000
ROWS = 2_000
TEMP_TABLES = 300
SEED = 20_260_000

# Created once in the template data directory (stream b calls them).
TEMPLATE_SQL: Tuple[str, ...] = (
    "CREATE FUNCTION two_step(int) RETURNS int LANGUAGE sql AS 'SELECT 1; SELECT $1 + 1'",
    """CREATE FUNCTION loop_select(n int) RETURNS int LANGUAGE plpgsql AS $$
DECLARE
    v int;
    found_rows int := 0;
BEGIN
    FOR i IN 1..n LOOP
        SELECT abalance INTO v FROM pgbench_accounts WHERE aid = i;
        IF FOUND THEN
            found_rows := found_rows + 1;
        END IF;
    END LOOP;
    RETURN found_rows;
END
$$""",
)

CHECK_TAG = "pgmc-check"
UNSET = "<unset>"


def _checked(settings: Mapping[str, str]) -> List[str]:
    # the mode is always checked: unset in the baseline (pg_ext_memcheck not loaded), set otherwise
    return sorted({*settings, MODE_GUC})


def _literal(text: str) -> str:
    return "'" + text.replace("'", "''") + "'"


def check_query(settings: Mapping[str, str]) -> str:
    """A statement returning every setting of the configuration as the backend sees it (and the mode)."""
    parts = [f"{_literal(key + '=')} || coalesce(current_setting({_literal(key)}, true), {_literal(UNSET)})"
             for key in _checked(settings)]
    return f"SELECT {_literal(CHECK_TAG + ':')} || concat_ws('|', {', '.join(parts)});"


def check_value(settings: Mapping[str, str]) -> str:
    """What the check query returns when the configuration is in force."""
    return CHECK_TAG + ":" + "|".join(f"{key}={settings.get(key, UNSET)}" for key in _checked(settings))


def check_line(settings: Mapping[str, str]) -> str:
    """How a single-user backend prints that value."""
    return f'= "{check_value(settings)}"'


def lookup_aids(count: int, seed: int = SEED, accounts: int = ACCOUNTS) -> List[int]:
    """A fixed pseudo-random sequence of account ids in 1..accounts (64-bit LCG, high bits; never changes)."""
    state = seed
    aids = []
    for _ in range(count):
        state = (state * 6364136223846793005 + 1442695040888963407) % (1 << 64)
        aids.append((state >> 33) % accounts + 1)
    return aids


def lookup(aid: int) -> str:
    return f"SELECT abalance FROM pgbench_accounts WHERE aid = {aid};"


@dataclass(frozen=True)
class Stream:
    key: str
    title: str
    setup: Tuple[str, ...]
    measured: Tuple[str, ...]
    units: int  # what one measured unit is, for per-unit figures
    unit: str
    expect: Tuple[Tuple[str, int], ...]  # (text in the single-user output, how often it must appear)

    def script(self, check: str) -> str:
        """The stdin of a run: `check` (see check_query), setup, marker, measured statements, marker."""
        lines = [check, *self.setup, MARKER, *self.measured, MARKER]
        for line in lines:
            if "\n" in line:
                raise ValueError(f"stream {self.key}: a statement spans lines: {line[:60]!r}")
        return "\n".join(lines) + "\n"


def _stream_a(lookups: int) -> Stream:
    return Stream(
        key="a",
        title=f"{lookups} primary-key lookups",
        setup=(lookup(1),),
        measured=tuple(lookup(aid) for aid in lookup_aids(lookups)),
        units=lookups,
        unit="lookup",
        expect=(('abalance = "', lookups + 1),),
    )


def _stream_b(rows: int) -> Stream:
    total = rows * (rows + 1) // 2 + rows  # sum of g + 1 for g in 1..rows
    warm = 10
    return Stream(
        key="b",
        title=f"two-statement SQL function over {rows} rows + PL/pgSQL loop of {rows} SELECTs",
        setup=(
            f"SELECT sum(two_step(g)) FROM generate_series(1, {warm}) g;",
            f"SELECT loop_select({warm});",
        ),
        measured=(
            f"SELECT sum(two_step(g)) FROM generate_series(1, {rows}) g;",
            f"SELECT loop_select({rows});",
        ),
        units=3 * rows,
        unit="nested statement",
        expect=((f'sum = "{total}"', 1), (f'loop_select = "{rows}"', 1)),
    )


def _stream_c(lookups: int, temp_tables: int) -> Stream:
    # In one transaction: the catalog entries of all the tables are freed together at commit, which leaves
    # thousands of free chunks in CacheMemoryContext and TopMemoryContext (one create/drop per transaction
    # would reuse the same few chunks each time).
    ddl: List[str] = ["BEGIN;"]
    for i in range(1, temp_tables + 1):
        ddl.append(f"CREATE TEMP TABLE bench_tmp_{i} (id int PRIMARY KEY, payload text);")
        ddl.append(f"DROP TABLE bench_tmp_{i};")
    ddl.append("COMMIT;")
    base = _stream_a(lookups)
    return Stream(
        key="c",
        title=f"{lookups} primary-key lookups after {temp_tables} temp tables created and dropped in one transaction",
        setup=(*ddl, lookup(1)),
        measured=base.measured,
        units=lookups,
        unit="lookup",
        expect=base.expect,
    )


def _stream_d(rows: int) -> Stream:
    # alloclib_row(g) returns 8g + 28 (g + i for i in 0..7)
    total = sum(8 * g + 28 for g in range(1, rows + 1))
    warm = 10
    return Stream(
        key="d",
        title=f"a foreign C function over {rows} rows, 8 small pallocs per row (4 freed at once, 4 with the row)",
        # alloclib is in the benchmark's private install (dynamic_library_path), so it is declared by the run
        setup=("CREATE FUNCTION alloclib_row(int) RETURNS int AS 'alloclib' LANGUAGE C STRICT;",
               f"SELECT sum(alloclib_row(g)) FROM generate_series(1, {warm}) g;"),
        measured=(f"SELECT sum(alloclib_row(g)) FROM generate_series(1, {rows}) g;",),
        units=rows,
        unit="row",
        expect=((f'sum = "{total}"', 1),),
    )


def build_streams(lookups: int = LOOKUPS, rows: int = ROWS, temp_tables: int = TEMP_TABLES) -> Dict[str, Stream]:
    streams = (_stream_a(lookups), _stream_b(rows), _stream_c(lookups, temp_tables), _stream_d(rows))
    return {s.key: s for s in streams}


STREAMS = build_streams()


def output_problems(stream: Stream, stdout: str, settings: Mapping[str, str]) -> List[str]:
    """What is wrong with a run's single-user output (empty when it ran as intended)."""
    problems = []
    expected_check = check_line(settings)
    if expected_check not in stdout:
        found = re.search(rf'= "{CHECK_TAG}:[^"]*"', stdout)
        problems.append(
            f"configuration not in force: expected {expected_check[2:]}, "
            f"the backend printed {found.group(0)[2:] if found else 'no check line'}"
        )
    for text, count in stream.expect:
        seen = stdout.count(text)
        if seen != count:
            problems.append(f"expected {count} x {text!r} in the output, found {seen}")
    return problems
