"""Suppressions from memcheck.yml applied to results, and the github block taken from the environment."""

from __future__ import annotations

import datetime as dt
import json
from pathlib import Path
from typing import Any, Dict

from reporter import results, suppress
from reporter.config import Suppression

TODAY = dt.date(2026, 11, 24)


def violation(**kw: Any) -> Dict[str, Any]:
    base = {
        "check_type": "wrong_ctx_alloc",
        "severity": "WARNING",
        "context": "TopMemoryContext",
        "context_path": "TopMemoryContext",
        "depth": 0,
        "used_delta": 8208,
        "allocated_delta": 0,
        "bytes_per_iteration": None,
        "iterations": 1,
        "source_lib": "buggy_pg_ext.so",
        "phase": "executor",
        "detail": "d",
        "backend_pid": 1,
        "ts": None,
        "samples": None,
        "suppressed_by": None,
    }
    base.update(kw)
    return base


def doc(*violations: Dict[str, Any]) -> Dict[str, Any]:
    return {"workloads": [{"status": "violations", "suppressed": 0, "violations": list(violations)}]}


def test_matches_every_given_matcher() -> None:
    v = violation(context="BuggyPlannerLeakCtx", context_path="TopMemoryContext/MessageContext/BuggyPlannerLeakCtx")
    assert suppress.matches(Suppression("r", pattern="*BuggyPlanner*"), v)
    assert suppress.matches(Suppression("r", pattern="BuggyPlannerLeakCtx"), v)  # the name alone
    assert suppress.matches(Suppression("r", check="wrong_ctx_alloc", library="buggy_*"), v)
    assert not suppress.matches(Suppression("r", check="context_leak"), v)
    assert not suppress.matches(Suppression("r", library="other*"), v)
    assert not suppress.matches(Suppression("r", pattern="Cache*", check="wrong_ctx_alloc"), v)
    assert suppress.matches(Suppression("r", library="*"), violation(source_lib=None))  # unattributed too


def test_apply_marks_counts_and_settles_status() -> None:
    d = doc(violation(), violation(check_type="context_leak", severity="ERROR"))
    notes = suppress.apply(d, [Suppression("cache by design", check="wrong_ctx_alloc")], TODAY)
    w = d["workloads"][0]
    assert notes == []
    assert [v["suppressed_by"] for v in w["violations"]] == ["cache by design", None]
    assert (w["suppressed"], w["status"]) == (1, "violations")
    suppress.apply(d, [Suppression("all", library="buggy_pg_ext.so")], TODAY)
    assert (w["suppressed"], w["status"]) == (2, "passed")


def test_expired_suppression_is_skipped_with_a_note() -> None:
    d = doc(violation())
    old = Suppression("temporary", check="wrong_ctx_alloc", expiry=dt.date(2026, 11, 23))
    notes = suppress.apply(d, [old], TODAY)
    assert notes == ["suppression 'temporary' expired on 2026-11-23; not applied"]
    assert d["workloads"][0]["violations"][0]["suppressed_by"] is None
    # The expiry day itself still counts.
    assert suppress.apply(d, [old], dt.date(2026, 11, 23)) == []
    assert d["workloads"][0]["suppressed"] == 1


def test_errors_keep_their_status() -> None:
    d = doc(violation())
    d["workloads"][0]["status"] = "crashed"
    suppress.apply(d, [Suppression("x", check="wrong_ctx_alloc")], TODAY)
    assert d["workloads"][0]["status"] == "crashed"


def test_github_context_from_pull_request_event(tmp_path: Path) -> None:
    sha = "a" * 40
    event = tmp_path / "event.json"
    event.write_text(json.dumps({"pull_request": {"number": 17, "head": {"sha": sha}}}))
    env = {
        "GITHUB_EVENT_PATH": str(event),
        "GITHUB_REPOSITORY": "o/r",
        "GITHUB_SHA": "b" * 40,
        "GITHUB_RUN_ID": "123",
        "GITHUB_RUN_ATTEMPT": "2",
        "GITHUB_WORKFLOW": "ci",
    }
    assert results.github_context(env) == {
        "repository": "o/r",
        "pr_number": 17,
        "head_sha": sha,
        "run_id": "123",
        "run_attempt": 2,
        "workflow": "ci",
    }


def test_github_context_rejects_malformed_values(tmp_path: Path) -> None:
    event = tmp_path / "event.json"
    event.write_text(json.dumps({"pull_request": {"number": "17; rm -rf /", "head": {"sha": "zz"}}}))
    env = {"GITHUB_EVENT_PATH": str(event), "GITHUB_SHA": "not-a-sha", "GITHUB_RUN_ATTEMPT": "0"}
    ctx = results.github_context(env)
    assert (ctx["pr_number"], ctx["head_sha"], ctx["run_attempt"], ctx["run_id"]) == (None, None, None, None)
    env = {"GITHUB_EVENT_PATH": str(tmp_path / "missing.json"), "GITHUB_SHA": "C" * 40}
    ctx = results.github_context(env)
    assert (ctx["pr_number"], ctx["head_sha"]) == (None, "c" * 40)
    assert results.github_context({}) == {
        "repository": None,
        "pr_number": None,
        "head_sha": None,
        "run_id": None,
        "run_attempt": None,
        "workflow": None,
    }
