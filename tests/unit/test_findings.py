"""Findings: the key, the folding rules, updates by finding_id, facts over the evidence, old and new legs."""

from __future__ import annotations

import copy
import json
import re
import sys
from pathlib import Path
from typing import Any, Dict, List, Optional

import pytest

from reporter import findings
from reporter.findings import FOLD_PARENT, FOLD_RESTATES, Finding, build, fold, normalize
from reporter.merge import load_legs
from reporter.results import current_violations, load, validate

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures"
LEGS = FIXTURES / "legs"
SOURCE = Path(__file__).resolve().parents[2] / "examples" / "buggy_pg_ext" / "buggy_pg_ext.c"
sys.path.insert(0, str(FIXTURES))
import example_legs  # noqa: E402


def row(check: str = "context_leak", path: Optional[str] = "TopMemoryContext/X", severity: str = "INFO",
        used: Optional[int] = 10_000, lib: Optional[str] = "ext.so", phase: Optional[str] = "executor",
        **extra: Any) -> Dict[str, Any]:
    v: Dict[str, Any] = {
        "check_type": check, "severity": severity, "context": path.rsplit("/", 1)[-1] if path else None,
        "context_path": path, "depth": None, "used_delta": used, "allocated_delta": used,
        "bytes_per_iteration": None, "iterations": 1, "source_lib": lib, "phase": phase, "detail": "d",
        "backend_pid": 1, "ts": None, "samples": None, "suppressed_by": None, "lifetime": None, "verdict": None,
        "rate": None, "calls": None, "rows": None, "occurrences": None, "entry": None, "sites": [],
        "finding_id": None,
    }
    v.update(extra)
    return v


def site(function: Optional[str] = "f", line: Optional[int] = 10, offset: str = "0x10", nbytes: int = 100,
         count: int = 1, file: Optional[str] = "/src/ext.c") -> Dict[str, Any]:
    return {"lib": "ext.so", "offset": offset, "bytes": nbytes, "count": count, "function": function,
            "file": file if function else None, "line": line if function else None}


def leg(major: int, *workloads: List[Dict[str, Any]], min_leak: int = 8192) -> Dict[str, Any]:
    return {
        "postgresql": {"version": f"{major}.1", "major": major},
        "thresholds": {"min_leak_bytes": min_leak},
        "workloads": [{"name": f"w{n}", "violations": rows} for n, rows in enumerate(workloads)],
    }


def one(found: List[Finding]) -> Finding:
    assert len(found) == 1, found
    return found[0]


# ---- key --------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("raw,normal", [
    ("TopMemoryContext/relation 16384", "TopMemoryContext/relation N"),
    ("CachedPlan 0x55d4c3a2b1c0/x 12", "CachedPlan <addr>/x N"),
    ("pg15_ctx/Ctx_2/utf8", "pg15_ctx/Ctx_2/utf8"),  # digits inside a name are the name
    ("portal 10 12", "portal N N"),
])
def test_normalize(raw: str, normal: str) -> None:
    assert normalize(raw) == normal


def test_numbers_and_addresses_do_not_split_a_finding() -> None:
    rows = [row(path=f"TopMemoryContext/relation {oid}") for oid in (16384, 16390, 24576)]
    f = one(build([leg(15, rows)]))
    assert f.where == "TopMemoryContext/relation N" and f.occurrences == 3


def test_one_finding_across_workloads_and_majors() -> None:
    found = build([leg(15, [row()], [row(severity="WARNING")]), leg(18, [row()])])
    f = one(found)
    assert f.majors == (18, 15) and f.workloads == ("w0", "w1") and f.severity == "WARNING"
    assert len(f.evidence) == 3


@pytest.mark.parametrize("change", [
    {"check_type": "malloc_leak"}, {"context_path": "TopMemoryContext/Y"}, {"source_lib": "other.so"},
    {"suppressed_by": "a reason"},
])
def test_key_parts_split_findings(change: Dict[str, Any]) -> None:
    assert len(build([leg(15, [row(), row(**change)])])) == 2


def test_allocation_site_is_part_of_the_key() -> None:
    a, b = row(sites=[site(line=10)]), row(sites=[site(line=20)])
    assert len(build([leg(15, [a, b])])) == 2
    # the same resolved site is the same finding although each major's build puts it at another offset
    a15, a18 = row(sites=[site(offset="0x10")]), row(sites=[site(offset="0x99")])
    assert len(build([leg(15, [a15]), leg(18, [a18])])) == 1
    # unresolved sites are keyed by library + offset
    u1, u2 = row(sites=[site(function=None, offset="0x10")]), row(sites=[site(function=None, offset="0x20")])
    assert len(build([leg(15, [u1, u2])])) == 2
    # the top site is the one with the most bytes, whatever the order
    c = row(sites=[site(line=20, nbytes=5), site(line=10, nbytes=500)])
    assert len(build([leg(15, [a, c])])) == 1


def test_resource_leaks_without_a_context_are_keyed_by_their_detail() -> None:
    dsm = row("resource_leak", path=None, used=None, detail="dynamic shared memory leak: segment 7 not destroyed")
    dsm2 = row("resource_leak", path=None, used=None, detail="dynamic shared memory leak: segment 9 not destroyed")
    rel = row("resource_leak", path=None, used=None, detail="relcache reference leak: relation 1259 not closed")
    assert sorted(f.occurrences for f in build([leg(15, [dsm, dsm2, rel])])) == [1, 2]


# ---- finding_id updates -----------------------------------------------------------------------------------


def test_updates_of_one_finding_id_count_once_the_last_wins() -> None:
    rows = [row(severity="INFO", used=9000, finding_id="7:1"), row(path="TopMemoryContext/Other"),
            row(severity="ERROR", used=2_000_000, finding_id="7:1")]
    w = {"violations": rows}
    assert current_violations(w) == [rows[2], rows[1]]  # the last update, where the first stood
    found = build([leg(15, rows)])
    assert len(found) == 2
    f = next(f for f in found if f.where == "TopMemoryContext/X")
    assert f.severity == "ERROR" and f.bytes == 2_000_000 and len(f.evidence) == 1
    # the same id in another workload is another observation
    assert len(one(build([leg(15, [rows[0]], [rows[2]])])).evidence) == 2


# ---- folding --------------------------------------------------------------------------------------------


def test_wrong_ctx_alloc_restating_a_context_leak_is_folded() -> None:
    leak = row(path="TopMemoryContext", severity="INFO", used=82_080)
    wrong = row("wrong_ctx_alloc", path="TopMemoryContext", severity="WARNING", used=82_080)
    f = one(build([leg(15, [wrong, leak])]))
    assert f.check_type == "context_leak" and f.severity == "WARNING"  # the folded row still counts
    assert [e.folded for e in f.evidence] == [None, FOLD_RESTATES]
    assert f.representative is leak and f.occurrences == 1


def test_ctx_bloat_restating_a_context_leak_is_folded() -> None:
    """growth_benchmark's checkpoints see the same leak: one finding, the escalated severity counts."""
    leak = row(path="TopMemoryContext", severity="WARNING", used=820_800, entry="ExecutorStart", sites=[site()])
    bloat = row("ctx_bloat", path="TopMemoryContext", severity="ERROR", used=820_800, phase="scenario",
                entry="ExecutorStart", sites=[site()])
    f = one(build([leg(15, [bloat, leak])]))
    assert f.check_type == "context_leak" and f.severity == "ERROR"
    assert [e.folded for e in f.evidence] == [None, FOLD_RESTATES]
    alone = row("ctx_bloat", path="TopMemoryContext/Other", severity="WARNING", used=40_000, phase="scenario")
    assert len(build([leg(15, [bloat, leak, alone])])) == 2


@pytest.mark.parametrize("change", [
    {"phase": "planner"}, {"entry": "planner"}, {"sites": [site(line=99)]}, {"source_lib": "other.so"},
])
def test_restatement_needs_the_same_origin(change: Dict[str, Any]) -> None:
    leak = row(path="TopMemoryContext", entry="ExecutorStart", sites=[site()])
    wrong = row("wrong_ctx_alloc", path="TopMemoryContext", **{"entry": "ExecutorStart", "sites": [site()], **change})
    assert len(build([leg(15, [leak, wrong])])) == 2


def test_restatement_only_within_one_workload() -> None:
    leak = row(path="TopMemoryContext")
    wrong = row("wrong_ctx_alloc", path="TopMemoryContext")
    assert len(build([leg(15, [leak], [wrong])])) == 2


def test_parent_that_grew_with_its_leaked_child_is_folded() -> None:
    child = row(path="TopMemoryContext/MessageContext/Leak", used=8440, sites=[site()])
    parent = row(path="TopMemoryContext/MessageContext", used=8440)
    f = one(build([leg(15, [parent, child])]))
    assert f.where == "TopMemoryContext/MessageContext/Leak"
    assert [e.folded for e in f.evidence] == [None, FOLD_PARENT]
    # only the direct parent: the C library reports "the child and its parent"; a grandparent's growth is its own
    grand = row(path="TopMemoryContext", used=9000)
    assert len(build([leg(15, [grand, parent, child])])) == 2


def test_parent_of_many_children_over_a_scenario() -> None:
    # schema 1 as the C library reports it today: the child once (planner phase), then the scenario's parent
    # row with the growth per iteration of one child per iteration; TopMemoryContext is another bug
    child = row(path="TopMemoryContext/MessageContext/BuggyPlannerLeakCtx", used=8512, phase="planner")
    parent = row(path="TopMemoryContext/MessageContext", used=1_693_888, phase="scenario", severity="ERROR",
                 rate={"bytes": 8512.0, "unit": "iteration"}, iterations=199)
    top = row(path="TopMemoryContext", used=1_633_592, phase="scenario", severity="ERROR",
              rate={"bytes": 8209.0, "unit": "iteration"}, iterations=199)
    found = build([leg(15, [child, parent, top])])
    assert [(f.where, f.severity, len(f.evidence)) for f in found] == [
        ("TopMemoryContext", "ERROR", 1), ("TopMemoryContext/MessageContext/BuggyPlannerLeakCtx", "ERROR", 2)]
    assert found[1].rate == {"bytes": 8512.0, "unit": "iteration"}  # the parent's, as the child has none


def test_parent_with_growth_of_its_own_stays() -> None:
    child = row(path="TopMemoryContext/Leak", used=8440)
    parent = row(path="TopMemoryContext", used=8440 + 8192)  # min_leak more than the child: its own bug
    assert len(build([leg(15, [parent, child])])) == 2
    assert len(build([leg(15, [parent, child], min_leak=8193)])) == 1


def test_parent_of_another_origin_stays() -> None:
    # the example with planner_ctx_leak and top_ctx_alloc both on: TopMemoryContext is an ancestor of the
    # planner's leaked context, but its growth comes from ExecutorStart
    child = row(path="TopMemoryContext/MessageContext/Leak", used=8440, entry="planner", sites=[site(line=179)])
    top = row(path="TopMemoryContext", used=8208, entry="ExecutorStart", sites=[site(line=193)])
    assert len(build([leg(15, [top, child])])) == 2
    top_no_entry = row(path="TopMemoryContext", used=8208, sites=[site(line=193)])
    assert len(build([leg(15, [top_no_entry, child])])) == 2  # the sites differ
    assert len(build([leg(15, [row(path="TopMemoryContext", used=8208, phase="planner"),
                               row(path="TopMemoryContext/Leak", used=8440, phase="executor")])])) == 2


def test_only_context_leaks_are_parents() -> None:
    top = row("wrong_ctx_alloc", path="TopMemoryContext", used=81_920)
    cache = row("wrong_ctx_alloc", path="TopMemoryContext/CacheMemoryContext", used=81_920)
    assert len(build([leg(15, [top, cache])])) == 2


def test_a_restatement_follows_its_leak_into_the_child() -> None:
    child = row(path="TopMemoryContext/Leak", used=9000)
    parent = row(path="TopMemoryContext", used=9000)
    wrong = row("wrong_ctx_alloc", path="TopMemoryContext", severity="WARNING", used=9000)
    f = one(build([leg(15, [wrong, parent, child])]))
    assert f.where == "TopMemoryContext/Leak" and f.severity == "WARNING"
    assert sorted(str(e.folded) for e in f.evidence) == ["None", FOLD_PARENT, FOLD_RESTATES]


def test_suppressed_rows_fold_only_among_themselves() -> None:
    child = row(path="TopMemoryContext/Leak", used=9000, suppressed_by="known")
    parent = row(path="TopMemoryContext", used=9000)
    found = build([leg(15, [parent, child])])
    assert [f.suppressed_by for f in found] == [None, "known"]  # suppressed findings sort last


def test_fold_is_linear_for_many_unrelated_rows() -> None:
    rows = [row(path=f"TopMemoryContext/Ctx_{i}") for i in range(20_000)]
    target, reason = fold(rows, 8192)
    assert target == list(range(20_000)) and not any(reason)


def test_many_repeats_of_a_parent_share_the_work() -> None:
    rows = [row(path="TopMemoryContext", used=9000) for _ in range(2000)]
    rows += [row(path=f"TopMemoryContext/C{i}", used=9000 + i) for i in range(2000)]
    target, reason = fold(rows, 8192)
    assert all(r == FOLD_PARENT for r in reason[:2000]) and all(t == 3999 for t in target[:2000])


# ---- facts ------------------------------------------------------------------------------------------------


def test_facts_over_the_evidence() -> None:
    a = row(severity="INFO", used=8208, lifetime="statement", verdict="cache", occurrences=10,
            rate={"bytes": 8208, "unit": "statement"}, entry="ExecutorStart",
            sites=[site(nbytes=82_080, count=10)])
    b = row(severity="ERROR", used=4_112_208, lifetime="backend", verdict="leak", occurrences=1, calls=501,
            rate={"bytes": 8208, "unit": "call"}, entry="ExecutorStart",
            sites=[site(nbytes=4_112_208, count=501, offset="0x20")])
    f = one(build([leg(15, [a], [b])]))
    assert f.severity == "ERROR" and f.representative is b
    assert f.rate == {"bytes": 8208, "unit": "call"}  # the worst observation's rate, with its own unit
    assert f.lifetime == "backend" and f.verdict == "leak" and f.occurrences == 11
    assert f.bytes == 4_112_208 and f.entry == "ExecutorStart"
    assert f.sites == [dict(site(), bytes=4_194_288, count=511)]  # merged by source line across offsets
    assert f.magnitude == 8208 * 501


def test_worst_first_and_cache_after_leak() -> None:
    rows = [row(path="A", severity="INFO"), row(path="B", severity="ERROR", used=1),
            row(path="C", severity="ERROR", used=5_000_000), row(path="D", severity="INFO", verdict="cache",
                                                                   used=9_000_000)]
    assert [f.where for f in build([leg(15, rows)])] == ["C", "B", "A", "D"]


def test_by_workload_slices() -> None:
    found = build([leg(15, [row(severity="INFO")], [row(severity="ERROR")]), leg(18, [row()])])
    slices = findings.by_workload(found)
    assert set(slices) == {(15, "w0"), (15, "w1"), (18, "w0")}
    assert [e.row["severity"] for e in slices[(15, "w1")][0][1]] == ["ERROR"]
    assert [e.row["severity"] for e in slices[(15, "w0")][0][1]] == ["INFO"]
    assert one(found).severity_on(18) == "INFO" and one(found).severity_on(16) is None


# ---- the example's bugs -----------------------------------------------------------------------------------


def function_lines(name: str) -> range:
    """The lines of a C function's body in the example, read from the source (not from the fixtures)."""
    lines = SOURCE.read_text().splitlines()
    start = next(n for n, text in enumerate(lines, 1) if re.match(rf"{name}\(", text))
    end = next(n for n, text in enumerate(lines[start:], start + 1) if text == "}")
    return range(start, end + 1)


@pytest.mark.parametrize("names,bugs", [
    (("example_pg15", "example_pg18"), {"buggy_planner", "buggy_ExecutorStart", "buggy_ExecutorEnd"}),
    (("example_pg18",), {"buggy_planner", "buggy_ExecutorStart", "buggy_ExecutorEnd"}),
    (("topctx_pg18",), {"buggy_ExecutorStart"}),
])
def test_example_one_finding_per_switched_on_bug(names: tuple, bugs: set) -> None:
    merged = load_legs([LEGS / n for n in names])
    found = merged.findings
    assert {f.site["function"] for f in found} == bugs and len(found) == len(bugs)
    for f in found:
        assert f.site["file"].endswith("/buggy_pg_ext.c")
        assert f.site["line"] in function_lines(f.site["function"])
        assert f.majors == tuple(sorted((load(LEGS / n)["postgresql"]["major"] for n in names), reverse=True))
    by_function = {f.site["function"]: f for f in found}
    top = by_function["buggy_ExecutorStart"]
    assert top.where == "TopMemoryContext" and top.lifetime == "backend" and top.check_type == "context_leak"
    assert any(e.folded == FOLD_RESTATES and e.row["check_type"] == "wrong_ctx_alloc" for e in top.evidence)
    if "buggy_ExecutorEnd" in by_function:
        nested = by_function["buggy_ExecutorEnd"]
        assert nested.rate["unit"] == "call" and nested.lifetime == "statement"  # per call, not "per iteration"
        planner = by_function["buggy_planner"]
        assert planner.where.endswith("MessageContext/BuggyPlannerLeakCtx")
        assert any(e.folded == FOLD_PARENT for e in planner.evidence)


def test_example_fixtures_are_current() -> None:
    """The hand-written legs point at the example's allocating lines: regenerate them when the source moves."""
    for name, doc in example_legs.legs().items():
        validate(doc, name)
        text = (LEGS / name / "results.json").read_text(encoding="utf-8")
        assert text == example_legs.render(doc), f"run: python tests/fixtures/example_legs.py ({name})"


def test_old_and_new_legs_merge() -> None:
    merged = load_legs([LEGS / "violations_pg15", LEGS / "example_pg18"])
    assert [leg.results["schema_version"] for leg in merged.legs] == [2, 1]
    old = next(f for f in merged.findings if f.where == "TopMemoryContext/BuggyPlannerLeakCtx")
    # schema 1: a scenario's bytes_per_iteration becomes a per-iteration rate, the new fields are null
    assert old.rate == {"bytes": 2097.15, "unit": "iteration"} and old.majors == (15,)
    assert old.lifetime is None and old.sites == []
    assert {f.majors for f in merged.findings} == {(15,), (18,)}


def test_schema_1_statement_rates_are_per_call(tmp_path: Path) -> None:
    doc = json.loads((LEGS / "violations_pg15" / "results.json").read_text())
    v = copy.deepcopy(doc["workloads"][0]["violations"][0])
    v.update(bytes_per_iteration=2064.0, iterations=1000, phase="executor")
    doc["workloads"][0]["violations"] = [v]
    (tmp_path / "results.json").write_text(json.dumps(doc))
    up = load(tmp_path)["workloads"][0]["violations"][0]
    assert up["rate"] == {"bytes": 2064.0, "unit": "call"} and up["calls"] == 1000 and up["sites"] == []
