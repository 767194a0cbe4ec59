"""What a change made worse (reporter/compare.py) and how fail-on-scope judges it, on the example's legs."""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any, Callable, Dict, List

from reporter import compare as cmp
from reporter import findings
from reporter.merge import Leg, Merged, attach_comparison
from reporter.results import load

LEGS = Path(__file__).resolve().parents[1] / "fixtures" / "legs"


def example(major: int = 15) -> Dict[str, Any]:
    return load(LEGS / f"example_pg{major}")


def edit(doc: Dict[str, Any], change: Callable[[Dict[str, Any]], None], where: str = "") -> Dict[str, Any]:
    """A copy of doc with `change` applied to every violation whose context path ends with `where`."""
    out = copy.deepcopy(doc)
    for w in out["workloads"]:
        for v in w["violations"]:
            if (v.get("context_path") or "").endswith(where):
                change(v)
    return out


def names(found: List[findings.Finding]) -> List[str]:
    return sorted(f.where for f in found)


def test_the_same_run_is_unchanged() -> None:
    c = cmp.compare([example()], [example()])
    assert not c.new and not c.worse and not c.fixed and not c.not_compared and not c.broken_new
    assert len(c.unchanged) == 3 and c.compared_majors == [15] and not c.changed


def test_a_site_that_moved_lines_is_the_same_finding() -> None:
    def moved(v: Dict[str, Any]) -> None:
        for s in v.get("sites") or []:
            s["line"] = int(s["line"]) + 12

    c = cmp.compare([edit(example(), moved)], [example()])
    assert not c.new and not c.fixed and len(c.unchanged) == 3


def test_rate_up_beyond_the_margin_is_worse_within_it_unchanged() -> None:
    def times(factor: float) -> Callable[[Dict[str, Any]], None]:
        def change(v: Dict[str, Any]) -> None:
            if v.get("rate"):
                v["rate"]["bytes"] = v["rate"]["bytes"] * factor
        return change

    small = cmp.compare([edit(example(), times(1 + cmp.NOISE_MARGIN / 2), "SQL function")], [example()])
    assert not small.worse and len(small.unchanged) == 3
    big = cmp.compare([edit(example(), times(2.0), "SQL function")], [example()])
    assert names(big.worse) == ["TopMemoryContext/PortalContext/ExecutorState/SQL function"]
    (why,) = big.why_worse.values()
    assert why == "rate 2.0 KiB/call -> 4.0 KiB/call on PostgreSQL 15"
    assert big.changed and len(big.unchanged) == 2


def test_severity_up_is_worse() -> None:
    def lower(v: Dict[str, Any]) -> None:
        v["severity"] = "WARNING"

    # the leaked child and its parent (folded into the child's finding, whose severity it shares)
    base = edit(edit(example(), lower, "BuggyPlannerLeakCtx"), lower, "/MessageContext")
    c = cmp.compare([example()], [base])
    assert names(c.worse) == ["TopMemoryContext/MessageContext/BuggyPlannerLeakCtx"]
    assert "WARNING -> ERROR on PostgreSQL 15" in c.why_worse[c.worse[0].key]


def test_new_fixed_and_not_compared() -> None:
    base = example()
    base["workloads"] = [w for w in base["workloads"] if w["name"] != "per_row_function"]
    c = cmp.compare([example(), example(18)], [base])
    assert names(c.new) == ["TopMemoryContext/PortalContext/ExecutorState/SQL function"]  # per_row_function only
    assert c.compared_majors == [15]
    assert not c.not_compared  # every finding was also seen on 15
    reverse = cmp.compare([base], [example()])
    assert names(reverse.fixed) == ["TopMemoryContext/PortalContext/ExecutorState/SQL function"]
    only18 = cmp.compare([example(18)], [example()])
    assert len(only18.not_compared) == 3 and not only18.new and only18.compared_majors == []


def test_broken_workloads_new_in_this_change() -> None:
    now = copy.deepcopy(example())
    now["workloads"][0]["status"] = "error"
    c = cmp.compare([now], [example()])
    assert c.broken_new == {(15, "select_companies")}
    both = cmp.compare([now], [now])
    assert both.broken_new == set()


def merged_with(now: Dict[str, Any], base: Dict[str, Any], scope: str | None) -> Merged:
    m = Merged([Leg(Path("now"), now)])
    attach_comparison(m, Merged([Leg(Path("base"), base)]), scope, "main (0123456789ab)")
    return m


def test_scope_new_fails_only_for_what_is_new() -> None:
    unchanged = merged_with(example(), example(), None)
    assert unchanged.scope == "new" and not unchanged.conclude("error").failed  # 3 old ERROR findings
    everything = merged_with(example(), example(), "all")
    verdict = everything.conclude("error")
    assert verdict.failed and verdict.reasons == ["3 finding(s) at or above error; worst is ERROR"]
    base = example()
    base["workloads"] = [w for w in base["workloads"] if w["name"] != "per_row_function"]
    new = merged_with(example(), base, None).conclude("error")
    assert new.failed and new.reasons == ["1 new or worse finding(s) at or above error; worst is ERROR"]
    assert new.counts.findings == 3  # what is shown stays everything
    broken = copy.deepcopy(example())
    broken["workloads"][1]["status"] = "timeout"
    verdict = merged_with(broken, example(), None).conclude("error")
    assert verdict.reasons == ["1 workload(s) errored, timed out, crashed or failed their regression test "
                               "(and not in the base)"]


def test_without_a_base_the_scope_is_all() -> None:
    m = Merged([Leg(Path("now"), example())])
    attach_comparison(m, None, "new")
    assert m.comparison is None and m.judged_scope is None and m.conclude("error").failed
