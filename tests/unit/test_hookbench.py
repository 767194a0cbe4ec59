"""The hook-overhead benchmark's pure parts: callgrind parsing, cost attribution, ratios and verdicts, streams."""

from __future__ import annotations

import pytest

from benchmarks.hookbench import configs, report
from benchmarks.hookbench.callgrind import (
    CallgrindError,
    hook_chain_passthrough,
    object_is,
    own_work,
    parse_annotate,
    parse_profile,
    read_total,
)
from benchmarks.hookbench.evaluate import SPREAD_LIMIT, Measurement, evaluate, spread
from benchmarks.hookbench.streams import (
    MARKER,
    STREAMS,
    build_streams,
    check_line,
    check_query,
    check_value,
    lookup_aids,
    output_problems,
)

MC = "/tmp/x/usr/lib/postgresql/15/lib/pg_ext_memcheck.so"

# exec_simple_query (100) -> mc_run (20) -> standard_ExecutorRun (1000)   pass-through: PostgreSQL's work
#                                        -> buggy_run (150)              pass-through: the foreign hook
#                                        -> mc_own_used (30) -> 0x5d2880 (200, the stats method)
# Names compressed as callgrind writes them; positions relative (+N, -N, *).
PROFILE = f"""# callgrind format
version: 1
creator: callgrind-3.19.0
cmd:  /usr/lib/postgresql/15/bin/postgres --single -c dynamic_library_path=/x:$libdir postgres
part: 2
desc: Trigger: --dump-before=pg_sleep

positions: line
events: Ir
summary: 1500


ob=(1) /usr/lib/postgresql/15/bin/postgres
fl=(1) ???
fn=(1) exec_simple_query
0 60
+3 40
cob=(2) {MC}
cfi=(2) /src/cext/hooks.c
cfn=(2) mc_run
calls=1 0
* 1400

ob=(2)
fl=(2)
fn=(2)
10 15
+2 5
cob=(1)
cfi=(1)
cfn=(4) standard_ExecutorRun
calls=1 0
* 1000
cob=(3) /usr/lib/postgresql/15/lib/buggy_pg_ext.so
cfi=(1)
cfn=(6) buggy_run
calls=1 0
* 150
cfi=(3) /src/cext/ctxutil.c
cfn=(3) mc_own_used
calls=4 48
-2 230

fl=(3)
fn=(3)
48 30
cob=(1)
cfi=(1)
cfn=(5) 0x00000000005d2880
calls=4 0
* 200

ob=(1)
fl=(1)
fn=(4)
0 1000
fn=(5)
0 200

ob=(3)
fl=(1)
fn=(6)
0 150

totals: 1500
"""


def test_read_total_takes_the_totals_line_and_the_ir_column() -> None:
    assert read_total(PROFILE, "p") == 1500
    two_events = "events: Dr Ir\nsummary: 7 42\n"
    assert read_total(two_events, "p") == 42


@pytest.mark.parametrize(
    "text, message",
    [
        ("positions: line\nsummary: 5\n", "no 'events:' line"),
        ("events: Dr\nsummary: 5\n", "Ir is not among them"),
        ("events: Ir\n", "no 'totals:' or 'summary:' line"),
        ("events: Ir\ntotals: many\n", "malformed 'totals:' line"),
    ],
)
def test_read_total_names_the_file_it_cannot_read(text: str, message: str) -> None:
    with pytest.raises(CallgrindError, match=message) as info:
        read_total(text, "/tmp/run/callgrind.out.2")
    assert "/tmp/run/callgrind.out.2" in str(info.value)


def test_parse_profile_resolves_compressed_names_objects_and_call_costs() -> None:
    profile = parse_profile(PROFILE, "p")
    assert profile.total == 1500
    assert profile.self_cost == {"exec_simple_query": 100, "mc_run": 20, "mc_own_used": 30,
                                 "standard_ExecutorRun": 1000, "0x00000000005d2880": 200, "buggy_run": 150}
    assert profile.objects["mc_own_used"] == MC
    assert profile.objects["buggy_run"].endswith("buggy_pg_ext.so")
    assert profile.calls[("exec_simple_query", "mc_run")] == 1400
    assert profile.calls[("mc_run", "mc_own_used")] == 230
    assert sum(profile.self_cost.values()) == profile.total


def test_parse_profile_rejects_an_undefined_compressed_name() -> None:
    text = "events: Ir\ntotals: 1\nob=(1) /bin/x\nfn=(9)\n0 1\n"
    with pytest.raises(CallgrindError, match=r"p:4: compressed name \(9\) used before it was defined"):
        parse_profile(text, "p")


def test_own_work_counts_the_library_and_what_it_calls_but_not_the_hook_chain() -> None:
    profile = parse_profile(PROFILE, "p")
    work = own_work(profile, "pg_ext_memcheck", hook_chain_passthrough(("buggy_pg_ext",)))
    # mc_run: its own 20 (standard_ExecutorRun and buggy_run hand control on; mc_own_used counts separately);
    # mc_own_used: its own 30 plus the stats method it calls.
    assert work.by_function == {"mc_run": 20, "mc_own_used": 230}
    assert work.total == 250
    assert work.callees == {"0x00000000005d2880": 200}
    assert work.callers == {"0x00000000005d2880": ["mc_own_used"]}


def test_own_work_counts_a_library_not_declared_foreign() -> None:
    profile = parse_profile(PROFILE, "p")
    work = own_work(profile, "pg_ext_memcheck", hook_chain_passthrough(()))
    assert work.by_function["mc_run"] == 170
    assert work.total == 400


def test_object_is_matches_the_file_name_only() -> None:
    assert object_is(MC, "pg_ext_memcheck")
    assert not object_is("/usr/lib/postgresql/15/lib/pg_ext_memcheck_extra.so", "pg_ext_memcheck")
    assert not object_is("/opt/pg_ext_memcheck.so/postgres", "pg_ext_memcheck")


ANNOTATE = """--------------------------------------------------------------------------------
Profile data file 'callgrind.out.2' (creator: callgrind-3.19.0)
--------------------------------------------------------------------------------
264,746,620 (100.0%)  PROGRAM TOTALS

--------------------------------------------------------------------------------
Ir                    file:function
--------------------------------------------------------------------------------
264,746,620 (100.0%)  ???:exec_simple_query [/usr/lib/postgresql/15/bin/postgres]
 80,029,560 (30.23%)  src/cext/hooks.c:mc_planner_1 [/tmp/x/usr/lib/postgresql/15/lib/pg_ext_memcheck.so]
 43,850,120 (16.56%)  src/cext/ctxutil.c:mc_own_used [/tmp/x/usr/lib/postgresql/15/lib/pg_ext_memcheck.so]
    260,130 ( 0.10%)  ./setjmp/../sysdeps/x86_64/bsd-_setjmp.S:_setjmp [/usr/lib/x86_64-linux-gnu/libc.so.6]
"""


def test_parse_annotate_reads_cost_file_function_and_object() -> None:
    rows = parse_annotate(ANNOTATE)
    assert [r.function for r in rows] == ["exec_simple_query", "mc_planner_1", "mc_own_used", "_setjmp"]
    mine = [r for r in rows if object_is(r.obj, "pg_ext_memcheck")]
    assert [(r.cost, r.file, r.function) for r in mine] == [
        (80_029_560, "src/cext/hooks.c", "mc_planner_1"),
        (43_850_120, "src/cext/ctxutil.c", "mc_own_used"),
    ]


ALL = configs.CONFIGS[1]
OFF = configs.CONFIGS[2]


def test_evaluate_compares_with_the_baseline_of_the_same_stream_and_foreign_list() -> None:
    rows = evaluate([
        Measurement("a", "buggy_pg_ext", configs.BASELINE, (1000, 1000)),
        Measurement("a", "buggy_pg_ext", ALL, (1050, 1050)),
        Measurement("a", "buggy_pg_ext", OFF, (1006, 1006)),
        Measurement("b", "buggy_pg_ext", configs.BASELINE, (2000, 2000)),
        Measurement("b", "buggy_pg_ext", ALL, (2239, 2241)),
        Measurement("a", "other", configs.BASELINE, (500, 500)),
        Measurement("a", "other", ALL, (1000, 1000)),
    ])
    got = {(r.stream, r.foreign, r.config.name): (r.ratio, r.target, r.verdict) for r in rows}
    assert got[("a", "buggy_pg_ext", "baseline")] == (None, None, "")
    assert got[("a", "buggy_pg_ext", "mode all")] == (pytest.approx(1.05), 1.05, "met")
    assert got[("a", "buggy_pg_ext", "mode off")] == (pytest.approx(1.006), 1.005, "MISSED")
    assert got[("b", "buggy_pg_ext", "mode all")] == (pytest.approx(1.12), 1.12, "met")
    assert got[("a", "other", "mode all")] == (pytest.approx(2.0), 1.05, "MISSED")


def test_evaluate_refuses_a_measurement_without_baseline() -> None:
    with pytest.raises(ValueError, match="stream c, foreign buggy_pg_ext: no baseline"):
        evaluate([Measurement("c", "buggy_pg_ext", ALL, (1, 1))])


def test_spread_is_relative_to_the_mean_and_judged_against_the_limit() -> None:
    assert spread([1000, 1000]) == 0.0
    assert spread([999, 1001]) == pytest.approx(0.002)
    rows = evaluate([
        Measurement("a", "f", configs.BASELINE, (100_000, 100_050)),  # 0.05%: agrees
        Measurement("a", "f", ALL, (100_000, 100_200)),  # 0.2%: does not
    ])
    assert [r.deterministic for r in rows] == [True, False]
    assert SPREAD_LIMIT == 0.001
    text = report.determinism(rows)
    assert "NOT DETERMINISTIC" in text and "a/f/mode all 0.200%" in text
    assert "NOT DETERMINISTIC" not in report.determinism(rows[:1])


def test_verdicts_name_what_missed() -> None:
    rows = evaluate([
        Measurement("a", "f", configs.BASELINE, (1000, 1000)),
        Measurement("a", "f", ALL, (1500, 1500)),
        Measurement("a", "f", OFF, (1005, 1005)),
    ])
    text = report.verdicts(rows)
    assert text.startswith("Targets: 1 of 2 met; MISSED: a/f/mode all 1.500.")


def test_targets_are_the_issues() -> None:
    assert [configs.target(ALL, s) for s in "abcd"] == [1.05, 1.12, 1.05, 1.25]
    assert [configs.target(OFF, s) for s in "abcd"] == [1.005, 1.005, 1.005, 1.005]
    assert configs.target(configs.BASELINE, "a") is None


def test_baseline_preloads_the_same_foreign_libraries_without_pg_ext_memcheck() -> None:
    foreign = ("buggy_pg_ext", "pg_stat_statements")
    assert configs.preload(foreign, configs.BASELINE) == ["buggy_pg_ext", "pg_stat_statements"]
    assert configs.preload(foreign, ALL) == ["pg_ext_memcheck", "buggy_pg_ext", "pg_stat_statements"]
    assert configs.settings(foreign, configs.BASELINE) == {
        "shared_preload_libraries": "buggy_pg_ext,pg_stat_statements", "buggy_pg_ext.bugs": ""}
    assert configs.settings(foreign, OFF) == {
        "shared_preload_libraries": "pg_ext_memcheck,buggy_pg_ext,pg_stat_statements", "buggy_pg_ext.bugs": "",
        "pg_ext_memcheck.memcheck_mode": "off"}


@pytest.mark.parametrize("text", ["", "buggy_pg_ext,", "pg_ext_memcheck", "a,a"])
def test_parse_foreign_rejects_bad_lists(text: str) -> None:
    with pytest.raises(ValueError, match="--foreign"):
        configs.parse_foreign(text)


def test_lookup_sequence_is_fixed_and_spread_over_the_table() -> None:
    aids = lookup_aids(2000)
    assert aids == lookup_aids(2000)
    assert all(1 <= aid <= 100_000 for aid in aids)
    assert len(set(aids)) > 1900
    assert min(aids) < 5_000 and max(aids) > 95_000
    assert lookup_aids(2000, seed=1) != aids


def _between_markers(script: str) -> list:
    lines = script.splitlines()
    first, second = (i for i, line in enumerate(lines) if line == MARKER)
    return lines[first + 1:second]


def test_streams_hold_one_statement_per_line_and_two_markers() -> None:
    check = check_query({"shared_preload_libraries": "buggy_pg_ext"})
    for stream in STREAMS.values():
        lines = stream.script(check).splitlines()
        assert lines[0] == check
        assert lines.count(MARKER) == 2
        assert all(line.endswith(";") for line in lines)
        assert _between_markers(stream.script(check)) == list(stream.measured)


def test_check_query_asks_for_every_setting_and_the_mode() -> None:
    settings = {"shared_preload_libraries": "pg_ext_memcheck,buggy_pg_ext", "buggy_pg_ext.bugs": "",
                "dynamic_library_path": "/x/lib:$libdir"}
    query = check_query(settings)
    for key in (*settings, "pg_ext_memcheck.memcheck_mode"):
        assert f"current_setting('{key}', true)" in query
    # what a backend with exactly these settings (and pg_ext_memcheck not loaded) returns
    assert check_value(settings) == ("pgmc-check:buggy_pg_ext.bugs=|dynamic_library_path=/x/lib:$libdir|"
                                     "pg_ext_memcheck.memcheck_mode=<unset>|"
                                     "shared_preload_libraries=pg_ext_memcheck,buggy_pg_ext")
    assert "'it''s'" in check_query({"odd": "x", "it's": "y"})


def test_stream_c_is_stream_a_after_the_temp_table_transaction() -> None:
    a, c = STREAMS["a"], STREAMS["c"]
    assert c.measured == a.measured and len(c.measured) == 2000
    setup = list(c.setup)
    assert setup[0] == "BEGIN;" and setup[-2] == "COMMIT;"
    ddl = setup[1:-2]
    assert sum(s.startswith("CREATE TEMP TABLE") for s in ddl) == 300
    assert sum(s.startswith("DROP TABLE") for s in ddl) == 300
    assert not any("bench_tmp" in s for s in c.measured)


def test_stream_b_expects_the_sums_its_statements_compute() -> None:
    small = build_streams(lookups=3, rows=4)["b"]
    # two_step(g) = g + 1: 2 + 3 + 4 + 5; loop_select(n) finds n rows
    assert dict(small.expect) == {'sum = "14"': 1, 'loop_select = "4"': 1}


def _single_user_output(check: str, rows: int) -> str:
    head = f'\t 1: ?column? {check}\t(typeid = 25, len = -1, typmod = -1, byval = f)\n'
    row = '\t 1: abalance = "0"\t(typeid = 23, len = 4, typmod = -1, byval = t)\n'
    return head + row * rows


def test_output_problems_catch_a_wrong_configuration_and_missing_rows() -> None:
    stream = build_streams(lookups=5)["a"]
    settings = {"shared_preload_libraries": "pg_ext_memcheck,buggy_pg_ext", "pg_ext_memcheck.memcheck_mode": "all"}
    good = _single_user_output(check_line(settings), 6)
    assert output_problems(stream, good, settings) == []
    wrong_mode = _single_user_output(check_line({**settings, "pg_ext_memcheck.memcheck_mode": "off"}), 6)
    assert output_problems(stream, wrong_mode, settings) == [
        "configuration not in force: expected \"pgmc-check:pg_ext_memcheck.memcheck_mode=all|"
        "shared_preload_libraries=pg_ext_memcheck,buggy_pg_ext\", the backend printed \"pgmc-check:"
        "pg_ext_memcheck.memcheck_mode=off|shared_preload_libraries=pg_ext_memcheck,buggy_pg_ext\""]
    short = _single_user_output(check_line(settings), 4)
    assert output_problems(stream, short, settings) == [
        "expected 6 x 'abalance = \"' in the output, found 4"]
