"""`concurrency: N` on a memcheck.yml workload: the runner opens N sessions that run it at the same time, on a
real cluster with the example preloaded. Every session's findings are kept (one backend each), deadlocks and lock
timeouts are concurrency_error findings, shared-memory overruns are found, and each session's end is recorded."""

from __future__ import annotations

from pathlib import Path
from typing import Any, Dict

import pytest

from tests.integration.test_engine_run import example_doc, finish, start_run, workload, write_config
from tests.lockstep import DEADLOCK

pytestmark = pytest.mark.integration



@pytest.fixture(scope="module")
def concurrent_run(installed_pg_config: str, tmp_path_factory: pytest.TempPathFactory) -> Dict[str, Any]:
    doc = example_doc()
    doc["settings"]["buggy_pg_ext.bugs"] = ""
    doc["setup"] += ("\nCREATE TABLE d (id int PRIMARY KEY, v int); INSERT INTO d VALUES (1, 0), (2, 0);"
                     "\nCREATE SEQUENCE side;")
    doc["workloads"] = [
        {"name": "parallel_leak", "iterations": 10, "concurrency": 3,
         "sql": "SELECT set_config('buggy_pg_ext.bugs', 'top_ctx_alloc', false); SELECT count(*) FROM companies"},
        {"name": "deadlock", "iterations": 3, "concurrency": 4, "sql": DEADLOCK},
        {"name": "overrun", "iterations": 3, "concurrency": 2,
         "sql": "SELECT set_config('buggy_pg_ext.bugs', 'shmem_overrun', false); SELECT count(*) FROM companies"},
        {"name": "clean", "iterations": 5, "concurrency": 3, "sql": "SELECT count(*) FROM companies"},
    ]
    base = tmp_path_factory.mktemp("concurrency")
    config = write_config(base / "cfg", doc)
    _, _, results = finish(start_run(config, installed_pg_config, base / "out"), base / "out")
    return results


def test_every_sessions_findings_are_kept(concurrent_run: Dict[str, Any]) -> None:
    w = workload(concurrent_run, "parallel_leak")
    assert w["concurrency"] == 3 and w["iterations"] == 30 and w["status"] == "violations"
    assert [s["status"] for s in w["sessions"]] == ["passed"] * 3
    assert all(s["iterations"] == 10 and s["error"] is None for s in w["sessions"])
    pids = {s["pid"] for s in w["sessions"]}
    assert len(pids) == 3
    leaks = [v for v in w["violations"] if v["check_type"] == "context_leak" and v["context"] == "TopMemoryContext"
             and v["severity"] in ("WARNING", "ERROR")]
    assert {v["backend_pid"] for v in leaks} == pids  # one finding per backend, all of the same bug
    assert all(v["source_lib"] == "buggy_pg_ext.so" for v in leaks)


def test_deadlocks_are_concurrency_errors(concurrent_run: Dict[str, Any]) -> None:
    w = workload(concurrent_run, "deadlock")
    hits = [v for v in w["violations"] if v["check_type"] == "concurrency_error"]
    assert len(hits) == 1 and hits[0]["context"] == "deadlock" and hits[0]["severity"] == "WARNING"
    assert hits[0]["occurrences"] >= 1 and "40P01" in hits[0]["detail"]
    stopped = [s for s in w["sessions"] if s["status"] == "error"]
    assert len(stopped) == hits[0]["occurrences"] and all(s["error"]["sqlstate"] == "40P01" for s in stopped)
    assert w["status"] == "violations"


def test_shared_overrun_under_concurrency(concurrent_run: Dict[str, Any]) -> None:
    w = workload(concurrent_run, "overrun")
    overruns = [v for v in w["violations"] if v["check_type"] == "shmem_overrun"]
    assert overruns and all(v["context"] == "buggy_pg_ext state" and v["severity"] == "ERROR" for v in overruns)


def test_clean_concurrent_workload(concurrent_run: Dict[str, Any]) -> None:
    w = workload(concurrent_run, "clean")
    assert w["status"] == "passed" and w["iterations"] == 15
    assert [v for v in w["violations"] if v["severity"] in ("WARNING", "ERROR")] == []


def test_single_session_workloads_have_no_sessions(installed_pg_config: str, tmp_path: Path) -> None:
    doc = example_doc()
    doc["settings"]["buggy_pg_ext.bugs"] = ""
    doc["workloads"] = [{"name": "one", "sql": "SELECT 1", "iterations": 2}]
    config = write_config(tmp_path / "cfg", doc)
    _, _, results = finish(start_run(config, installed_pg_config, tmp_path / "out"), tmp_path / "out")
    w = workload(results, "one")
    assert "concurrency" not in w and "sessions" not in w and w["status"] == "passed"
