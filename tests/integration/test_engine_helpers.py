"""Pure helpers of the engine (no server): filtering, log excerpts, scenario samples, versions, preload."""

from __future__ import annotations

from pathlib import Path

import pytest

from reporter import build, config, ctxfilter, runner
from reporter.pgconfig import PgConfig


def wl(**kw: object) -> config.Workload:
    base = dict(
        name="w",
        kind="sql",
        sql="SELECT 1",
        scenario=None,
        iterations=1,
        mode="all",
        context_pattern="",
        allowed_contexts=(),
        timeout_s=10.0,
    )
    base.update(kw)
    return config.Workload(**base)  # type: ignore[arg-type]


def test_like_to_regex() -> None:
    assert ctxfilter.like_to_regex("Buggy%").fullmatch("BuggyPlannerLeakCtx")
    assert not ctxfilter.like_to_regex("Buggy%").fullmatch("MessageContext")
    assert ctxfilter.like_to_regex("a_c").fullmatch("abc")
    assert not ctxfilter.like_to_regex("a\\_c").fullmatch("abc")
    assert ctxfilter.like_to_regex("a.c").fullmatch("a.c") and not ctxfilter.like_to_regex("a.c").fullmatch("abc")


def test_keep_violation_pattern_and_allowlist() -> None:
    top_alloc = {"context_name": "TopMemoryContext", "check_type": "wrong_ctx_alloc"}
    top_leak = {"context_name": "TopMemoryContext", "check_type": "context_leak"}
    assert ctxfilter.keep_violation(top_alloc, wl())
    assert not ctxfilter.keep_violation(top_alloc, wl(context_pattern="Buggy%"))
    allowed = wl(allowed_contexts=("TopMemoryContext",))
    assert not ctxfilter.keep_violation(top_alloc, allowed)
    assert ctxfilter.keep_violation(top_leak, allowed)  # allowed to allocate there, not to grow forever


def test_log_excerpt_picks_backend_and_crash_lines() -> None:
    log = "\n".join(
        [
            "2026 [10] LOG:  checkpoint starting",
            "2026 [42] ERROR:  boom",
            "2026 [1] LOG:  server process (PID 42) was terminated by signal 11: Segmentation fault",
            "2026 [1] DETAIL:  Failed process was running: SELECT 1",
            "2026 [1] LOG:  all server processes terminated; reinitializing",
        ]
    )
    excerpt = runner.log_excerpt(log, 42)
    assert "checkpoint" not in excerpt
    assert excerpt.count("\n") == 3
    assert runner.log_excerpt("", 42) is None
    assert runner.log_excerpt("only\nother\nlines", 7) == "only\nother\nlines"


def test_scenario_samples_match_path_and_rate() -> None:
    scenario = {
        "contexts": [
            {"path": "Top", "bytes_per_iteration": 7000.0, "samples": [1, 2, 3]},
            {"path": "Top", "bytes_per_iteration": 700.0, "samples": [4, 5, 6]},
            {"path": "Top/Msg", "bytes_per_iteration": None, "samples": [7, True, 8.0]},
        ]
    }
    samples = runner.scenario_samples(scenario)
    assert runner.pick_samples(samples, "Top", 690.0) == [4, 5, 6]
    assert runner.pick_samples(samples, "Top", 6900.0) == [1, 2, 3]
    assert runner.pick_samples(samples, "Top/Msg", 5.0) == [7, 8]
    assert runner.pick_samples(samples, "Other", 5.0) is None
    assert runner.scenario_samples(None) == {}


def test_preload_order_from_config(tmp_path: Path) -> None:
    path = tmp_path / "memcheck.yml"
    path.write_text(
        "extension: {name: myext}\n"
        "preload: [pg_stat_statements, pg_ext_memcheck]\nsettings: {work_mem: 1MB}\n"
        "workloads: [{name: a, sql: x}]\n"
    )
    cfg = config.load(path)
    # the config placed the hook library: its place is kept
    assert runner.preload_libraries(cfg) == ["myext", "pg_stat_statements", "pg_ext_memcheck"]
    path.write_text("extension: {name: myext}\npreload: [pg_stat_statements, myext]\nworkloads: [{name: a, sql: x}]\n")
    # otherwise it goes last, so that the first place stays the extension's; nothing is listed twice
    assert runner.preload_libraries(config.load(path)) == ["myext", "pg_stat_statements", "pg_ext_memcheck"]
    path.write_text("preload: [pg_ext_memcheck, pg_stat_statements]\nworkloads: [{name: a, sql: x}]\n")
    assert runner.preload_libraries(config.load(path)) == ["pg_ext_memcheck", "pg_stat_statements"]
    assert cfg.settings == {"work_mem": "1MB"}


def fake(path: str, major: int) -> PgConfig:
    return PgConfig(path, f"{major}.1", major, "/b", "/l", "/p", "/s", "/i")


def test_check_major() -> None:
    build.check_major(fake("/usr/lib/postgresql/15/bin/pg_config", 15), 15)
    build.check_major(fake("/opt/pg/bin/pg_config", 13), None)
    with pytest.raises(build.BuildError, match="but major 16 was requested"):
        build.check_major(fake("/opt/pg/bin/pg_config", 15), 16)
    with pytest.raises(build.BuildError, match="lives under postgresql/16 but reports PostgreSQL 15.1"):
        build.check_major(fake("/usr/lib/postgresql/16/bin/pg_config", 15), None)
    assert build.major_from_path("/var/cache/pg-ext-memcheck/postgresql/13/bin/pg_config") == 13
