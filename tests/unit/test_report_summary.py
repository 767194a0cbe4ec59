"""Aggregation, merging of matrix legs, terminal text and GitHub runner files."""

from __future__ import annotations

import json
import re
import shutil
from pathlib import Path

import pytest

from reporter import findings, ghoutputs
from reporter.compare import compare
from reporter.merge import Leg, Merged, MergeError, load_legs
from reporter.results import load
from reporter.summary import FAILURE, SUCCESS, conclude, count
from reporter.terminal import render_terminal
from reporter.text import format_bytes
from tests.action.harness import parse_file_commands

LEGS = Path(__file__).resolve().parents[1] / "fixtures" / "legs"


def res(name: str) -> dict:
    return load(LEGS / name)


# ---- summary -------------------------------------------------------------------------------------------


def test_counts_exclude_suppressed() -> None:
    doc = res("violations_pg15")
    c = count([doc], findings.build([doc]))
    assert c.by_severity == {"INFO": 1, "WARNING": 2, "ERROR": 2}  # findings
    assert c.violations == 5 and c.findings == 5
    assert c.suppressed == 1 and c.workloads == 4 and c.broken == 0 and c.worst == "ERROR"


def test_counts_are_findings_not_rows() -> None:
    doc = res("example_pg15")
    c = count([doc], findings.build([doc]))
    assert c.by_severity == {"INFO": 0, "WARNING": 0, "ERROR": 3}  # one per switched-on bug
    # rows: 3 planner + 3 (+1 superseded update) top_ctx + 1 nested in each of... counted without the update
    rows = sum(len(w["violations"]) for w in doc["workloads"])
    assert c.violations == rows - 1  # the superseded update of finding 4242:1 is not counted
    assert conclude([doc], "error").reasons == ["3 finding(s) at or above error; worst is ERROR"]


@pytest.mark.parametrize("fail_on,expected", [
    ("error", FAILURE), ("warning", FAILURE), ("info", FAILURE), ("never", SUCCESS),
])
def test_conclusion_by_fail_on(fail_on: str, expected: str) -> None:
    assert conclude([res("violations_pg15")], fail_on).conclusion == expected


def test_suppressed_error_does_not_fail() -> None:
    doc = res("violations_pg15")
    for w in doc["workloads"]:
        w["violations"] = [v for v in w["violations"] if v["suppressed_by"]]
    verdict = conclude([doc], "info")
    assert verdict.conclusion == SUCCESS and verdict.counts.suppressed == 1


def test_warning_only_passes_at_error_fails_at_warning() -> None:
    doc = res("violations_pg18")
    for w in doc["workloads"]:
        w["violations"] = [v for v in w["violations"] if v["severity"] != "ERROR"]
    assert conclude([doc], "error").conclusion == SUCCESS
    assert conclude([doc], "warning").conclusion == FAILURE


def test_no_workload_fails_even_with_never() -> None:
    verdict = conclude([res("empty_pg15")], "never")
    assert verdict.failed and verdict.reasons == ["no workload ran"]


def test_broken_workloads_and_missing_legs_fail() -> None:
    assert conclude([res("errors_pg16")], "error").failed
    assert conclude([res("crash_pg17")], "error").failed
    assert not conclude([res("crash_pg17")], "never").failed
    assert conclude([res("clean_pg15"), None], "error").reasons == ["1 matrix leg(s) produced no results"]
    assert not conclude([res("clean_pg15"), res("clean_pg18")], "error").failed


def test_compare_with_baseline_and_retry() -> None:
    cur, base = res("violations_pg15"), res("baseline/pg15")
    c = compare([cur], [base])
    assert [f.where for f in c.new] == ["TopMemoryContext/BuggyPlannerLeakCtx"]
    assert [f.where for f in c.fixed] == ["TopMemoryContext/PortalContext"]
    assert len(c.unchanged) == 4 and not c.unstable and c.compared_majors == [15]
    base["github"]["run_id"] = cur["github"]["run_id"]
    base["github"]["run_attempt"] = 2  # an earlier/other attempt of the same run: vanished findings are flaky
    assert compare([cur], [base]).unstable
    assert compare([cur], [res("clean_pg18")]).compared_majors == []


# ---- merge ---------------------------------------------------------------------------------------------


def test_merge_orders_newest_first_and_keeps_missing() -> None:
    merged = load_legs([LEGS / "violations_pg15", LEGS / "missing_leg", LEGS / "violations_pg18"])
    assert [leg.major for leg in merged.legs] == [18, 15, None]
    assert len(merged.notices) == 1 and "missing_leg" in merged.notices[0]


def test_merge_artifact_folder_layout(tmp_path: Path) -> None:
    for name in ("clean_pg15", "errors_pg16"):
        shutil.copytree(LEGS / name, tmp_path / f"memcheck-{name}")
    (tmp_path / "memcheck-pg17").mkdir()  # a leg whose artifact is empty
    merged = load_legs([tmp_path])
    assert [leg.major for leg in merged.legs] == [16, 15, None]
    assert merged.missing[0].source.name == "memcheck-pg17"
    single = load_legs([LEGS / "clean_pg15" / "results.json", LEGS / "clean_pg15"])
    assert len(single.legs) == 1  # the same leg named twice is not a duplicate


def test_merge_duplicate_major_is_rejected_and_the_rest_kept() -> None:
    merged = load_legs([LEGS / "clean_pg15", LEGS / "duplicate_pg15", LEGS / "errors_pg16"])
    assert [leg.major for leg in merged.legs if leg.results is not None] == [16, 15]
    [bad] = merged.rejected
    assert bad.source.name == "duplicate_pg15" and bad.results is None
    assert "clean_pg15" in bad.problem and "a second result for PostgreSQL 15" in bad.problem
    assert merged.missing == [bad]  # counted as missing: the conclusion cannot pass over it


@pytest.mark.parametrize("name,needle", [
    ("invalid", "invalid/results.json: not a valid results file"),
    ("broken_json", "broken_json/results.json: line 2: invalid JSON"),
])
def test_merge_bad_leg_is_rejected_with_the_file_named(name: str, needle: str) -> None:
    merged = load_legs([LEGS / name, LEGS / "clean_pg15"])
    assert [leg.major for leg in merged.legs if leg.results is not None] == [15]
    [bad] = merged.rejected
    assert needle in bad.problem


def test_merge_no_such_dir_is_an_error() -> None:
    with pytest.raises(MergeError, match="no_such_dir: no such file or directory"):
        load_legs([LEGS / "no_such_dir"])


# ---- terminal ------------------------------------------------------------------------------------------


def merged(*docs: dict) -> Merged:
    return Merged([Leg(Path(f"leg{n}"), doc) for n, doc in enumerate(docs)])


def test_terminal_summary() -> None:
    text = render_terminal(merged(res("violations_pg15")))
    assert text.startswith("pg-ext-memcheck 0.1.0 on PostgreSQL 15.18 (fail-on: error)\n")
    assert ("FAILED: 5 findings (2 ERROR, 2 WARNING, 1 INFO) from 5 violations; 1 suppressed; "
            "4 workloads, 0 broken") in text
    assert "  1 ERROR   context_leak     BuggyPlannerLeakCtx  2.0 KiB/iteration" in text
    assert render_terminal(merged(res("clean_pg15"))).splitlines()[-1].startswith("PASSED:")
    assert "PASSED:" in render_terminal(merged(res("violations_pg15")), fail_on="never")


def test_terminal_strips_escape_sequences() -> None:
    doc = res("evil_pg14")
    doc["workloads"][0]["name"] = "evil\x1b]0;pwned\x07\x1b[2J"
    doc["postgresql"]["version"] = "14.15\x1b[31m\u202eevil"
    text = render_terminal(merged(doc))
    assert "\x1b" not in text and "\x07" not in text and "\u202e" not in text
    assert "PostgreSQL 14.15[31mevil" in text


def test_format_bytes() -> None:
    assert [format_bytes(x) for x in (None, 0, 1023, 1536, 3 * 1024 ** 3, -2048)] == [
        "-", "0 B", "1023 B", "1.5 KiB", "3.0 GiB", "-2.0 KiB"]


# ---- runner files --------------------------------------------------------------------------------------


def test_outputs_are_heredoc_safe(tmp_path: Path) -> None:
    out = tmp_path / "out"
    out.write_text("earlier=1\n")
    hostile = "x\nconclusion=success\nEOF\nghadelimiter_"
    ghoutputs.write_outputs(out, {"conclusion": "failure", "markdown-path": hostile, "comment-url": None})
    parsed = parse_file_commands(out.read_text())
    assert parsed == {"earlier": "1", "conclusion": "failure", "markdown-path": hostile, "comment-url": ""}


def test_annotations_are_capped_per_kind_with_a_notice() -> None:
    items = [ghoutputs.Annotation("error", f"message {i}\nline two %", f"t{i}") for i in range(25)]
    items += [ghoutputs.Annotation("warning", f"w{i}") for i in range(12)]
    lines = ghoutputs.annotations(items)
    assert len(lines) == 21
    assert [line.split(" ")[0].split("::")[1] for line in lines[:20]] == ["error"] * 10 + ["warning"] * 10
    assert lines[0] == "::error title=t0::message 0%0Aline two %25"
    assert lines[-1] == ("::notice title=pg-ext-memcheck::15 errors and 2 warnings more not shown as "
                         "annotations; see the job summary.")
    assert len(ghoutputs.annotations(items[:10])) == 10


def test_annotation_title_escaping() -> None:
    assert ghoutputs.command("warning", "m", "a:b,c\nd") == "::warning title=a%3Ab%2Cc%0Ad::m"


def test_step_summary_never_crosses_the_limit(tmp_path: Path) -> None:
    path = tmp_path / "summary.md"
    ghoutputs.append_step_summary(path, "# first")
    assert path.read_text() == "# first\n"
    path.write_text("x" * (ghoutputs.STEP_SUMMARY_LIMIT - 1000))
    ghoutputs.append_step_summary(path, "y" * 1000)
    assert path.stat().st_size <= ghoutputs.STEP_SUMMARY_LIMIT
    assert "nearly full" in path.read_text()[-200:]
    path.write_text("x" * (ghoutputs.STEP_SUMMARY_LIMIT - 10))
    ghoutputs.append_step_summary(path, "y" * 1000)
    assert path.stat().st_size == ghoutputs.STEP_SUMMARY_LIMIT - 10


def test_fixtures_are_valid_results() -> None:
    for path in sorted(LEGS.rglob("results.json")):
        if path.parent.name in ("invalid", "broken_json"):
            continue
        json.loads(path.read_text())
        load(path)  # raises when the fixture drifts from the schema


def test_terminal_groups_repeats_of_one_finding() -> None:
    doc = res("violations_pg15")
    workload = next(w for w in doc["workloads"] if w["violations"])
    first = dict(workload["violations"][0], suppressed_by=None)
    other = dict(first, context_path="TopMemoryContext/CacheMemoryContext", context="CacheMemoryContext")
    workload["violations"] = [dict(first) for _ in range(3)] + [other]
    doc["workloads"] = [workload]
    text = render_terminal(merged(doc))
    rows = [line for line in text.splitlines() if re.match(r"\s+\d+ (ERROR|WARNING|INFO) ", line)]
    assert len(rows) == 2  # three repeats are one finding; the other context is another
    assert "TopMemoryContext  80.0 KiB" in rows[0] and "CacheMemoryContext" in rows[1]
    assert "seen 3 times in 1 workload on PostgreSQL 15" in text


@pytest.mark.parametrize("names", [("violations_pg15", "violations_pg18"), ("clean_pg15", "missing_leg"),
                                   ("example_pg15", "crash_pg17"), ("empty_pg15",)])
@pytest.mark.parametrize("fail_on", ["never", "warning", "error"])
def test_cached_conclusion_agrees_with_conclude(names: tuple, fail_on: str) -> None:
    merged = load_legs([LEGS / n for n in names])
    cached, direct = merged.conclude(fail_on), conclude([leg.results for leg in merged.legs], fail_on)
    assert (cached.conclusion, cached.reasons, cached.counts) == (direct.conclusion, direct.reasons, direct.counts)
