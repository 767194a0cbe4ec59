"""The CLI's one error boundary (issue 11, item 14) and how `report` treats crafted or incomplete legs (items 12
and 14): exit 2 with one clear message naming the file, never a traceback and never 1, which means findings."""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path
from typing import Any, Callable, Dict

import pytest

from reporter import build, cli, runner
from reporter.cluster import ClusterError
from reporter.results import ResultsError

LEGS = Path(__file__).resolve().parents[1] / "fixtures" / "legs"
PG_CONFIG = "/usr/lib/postgresql/15/bin/pg_config"
GOOD = "workloads:\n  - name: a\n    sql: SELECT 1\n"


@pytest.fixture(autouse=True)
def no_github(monkeypatch: pytest.MonkeyPatch) -> None:
    for var in [v for v in os.environ if v.startswith("GITHUB_")]:
        monkeypatch.delenv(var)


def leg(tmp_path: Path, edit: Callable[[Dict[str, Any]], Any] | None = None, text: str | None = None,
        raw: bytes | None = None) -> Path:
    target = tmp_path / "leg"
    target.mkdir()
    if raw is not None:
        (target / "results.json").write_bytes(raw)
    elif text is not None:
        (target / "results.json").write_text(text)
    else:
        doc = json.loads((LEGS / "violations_pg15" / "results.json").read_text())
        if edit:
            edit(doc)
        (target / "results.json").write_text(json.dumps(doc))
    return target


def big_dropped(doc: Dict[str, Any]) -> None:
    doc["ring"]["dropped"] = 10**400


def big_iterations(doc: Dict[str, Any]) -> None:
    doc["workloads"][0]["iterations"] = 2**64


@pytest.mark.parametrize(
    ("make", "needle"),
    [
        (lambda p: leg(p, big_dropped), "integer out of range: " + "1" + "0" * 29 + "..."),
        (lambda p: leg(p, big_iterations), "integer out of range: 18446744073709551616"),
        (lambda p: leg(p, text='{"a": ' * 100_000 + "1" + "}" * 100_000), "nested more than 32 levels deep"),
        (lambda p: leg(p, text='{"a": ' * 40 + "1" + "}" * 40), "nested more than 32 levels deep"),
        (lambda p: leg(p, text=(LEGS / "clean_pg15" / "results.json").read_text().replace(
            '"duration_s": 0.', '"duration_s": NaN, "x": 0.', 1)), "NaN is not valid JSON"),
        (lambda p: leg(p, text=(LEGS / "clean_pg15" / "results.json").read_text().replace(
            '"duration_s": 0.', '"duration_s": 1e400, "x": 0.', 1)), "number out of range: 1e400"),
        (lambda p: leg(p, raw=b'{"schema_version": 1, "x": "\xff"}'), "not UTF-8 text"),
    ],
    ids=["10^400", "2^64", "deep-100000", "deep-40", "NaN", "1e400", "latin-1"],
)
def test_crafted_leg_is_exit_2_naming_the_file(
    tmp_path: Path, make: Callable[[Path], Path], needle: str, capsys: pytest.CaptureFixture[str]
) -> None:
    target = make(tmp_path)
    assert cli.main(["report", str(target)]) == 2
    err = capsys.readouterr().err
    assert f"{target / 'results.json'}: " in err and needle in err, err
    assert "Traceback" not in err


def test_one_crafted_leg_among_good_ones_still_names_it(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    bad = leg(tmp_path, big_dropped)
    assert cli.main(["report", str(LEGS / "clean_pg18"), str(bad)]) == 2
    assert str(bad / "results.json") in capsys.readouterr().err


# ---- item 12: an interrupted run is shown as such ------------------------------------------------------


def interrupted(doc: Dict[str, Any]) -> None:
    doc["complete"] = False
    doc["interrupted"] = "SIGTERM"
    for w in doc["workloads"]:
        w["violations"] = []
        w["status"] = "passed"


def test_incomplete_run_fails_and_says_so(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    target = leg(tmp_path, interrupted)
    md = tmp_path / "report.md"
    assert cli.main(["report", str(target), "--markdown", str(md)]) == 1
    captured = capsys.readouterr()
    note = "the run on PostgreSQL 15.18 interrupted by SIGTERM: only 4 workload(s) have results"
    assert f"pg-ext-memcheck: warning: {note}" in captured.err
    assert f"  - {note}" in captured.out  # among the reasons for the failure
    assert "interrupted by SIGTERM" in md.read_text()


def test_incomplete_run_with_fail_on_never_passes_but_is_noted(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    target = leg(tmp_path, interrupted)
    assert cli.main(["report", str(target), "--fail-on", "never"]) == 0
    assert "interrupted by SIGTERM" in capsys.readouterr().err


def test_complete_flag_absent_means_complete(capsys: pytest.CaptureFixture[str]) -> None:
    assert cli.main(["report", str(LEGS / "clean_pg15")]) == 0  # files from before the field existed
    assert "interrupted" not in capsys.readouterr().err


# ---- the boundary itself ----------------------------------------------------------------------------------


def write_config(tmp_path: Path) -> Path:
    path = tmp_path / "memcheck.yml"
    path.write_text(GOOD)
    return path


@pytest.mark.parametrize(
    ("error", "expected"),
    [
        (ClusterError("initdb failed (exit 1): could not create directory"),
         "pg-ext-memcheck: error: initdb failed (exit 1): could not create directory"),
        (ResultsError("x/results.json: not a valid results file"),
         "pg-ext-memcheck: error: x/results.json: not a valid results file"),
        (PermissionError(13, "Permission denied", "/out/server.log"),
         "pg-ext-memcheck: error: /out/server.log: Permission denied"),
        (RuntimeError("a bug"), "pg-ext-memcheck: internal error: RuntimeError: a bug"),
    ],
    ids=["ClusterError", "ResultsError", "OSError", "bug"],
)
def test_errors_from_the_run_exit_2_without_traceback(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str],
    error: BaseException, expected: str,
) -> None:
    def fail(*_a: Any, **_k: Any) -> None:
        raise error

    monkeypatch.setattr(runner, "run", fail)
    monkeypatch.delenv("PG_EXT_MEMCHECK_TRACEBACK", raising=False)
    code = cli.main(["run", "--config", str(write_config(tmp_path)), "--pg-config", PG_CONFIG,
                     "--output", str(tmp_path / "out")])
    err = capsys.readouterr().err
    assert code == 2
    assert expected in err
    assert "Traceback" not in err


def test_build_failure_is_exit_2_not_findings(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    def fail(*_a: Any, **_k: Any) -> None:
        raise build.BuildError("make -C cext failed (exit 2): pg_ext_memcheck.c:1: error: boom")

    monkeypatch.setattr(build, "install_hook_library", fail)
    assert cli.main(["build", "--pg-config", PG_CONFIG]) == 2
    assert "pg-ext-memcheck: error: make -C cext failed (exit 2)" in capsys.readouterr().err
    assert cli.main(["check", "--config", str(write_config(tmp_path)), "--pg-config", PG_CONFIG,
                     "--output", str(tmp_path / "o")]) == 2


def test_config_error_lists_every_problem(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = tmp_path / "memcheck.yml"
    path.write_text("settings: {port: 5433}\nworkloads:\n  - {name: a, sql: SELECT 1, timeout: .inf}\n")
    assert cli.main(["run", "--config", str(path), "--pg-config", PG_CONFIG, "--output", str(tmp_path / "o")]) == 2
    err = capsys.readouterr().err
    assert err.startswith("pg-ext-memcheck: error: invalid configuration:\n")
    assert f"{path}:1: settings.port: 'port' cannot be set here" in err
    assert f"{path}:3: workloads[0].timeout: inf is out of range" in err


def test_stale_results_are_removed_before_the_config_is_read(tmp_path: Path) -> None:
    out = tmp_path / "out"
    out.mkdir()
    shutil.copy(LEGS / "clean_pg15" / "results.json", out / "results.json")
    (out / "server.log").write_text("an old log")
    path = tmp_path / "memcheck.yml"
    path.write_text("workloads: []\n")
    assert cli.main(["run", "--config", str(path), "--pg-config", PG_CONFIG, "--output", str(out)]) == 2
    assert sorted(p.name for p in out.iterdir()) == []


def test_keyboard_interrupt_is_130(monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    def stop(*_a: Any, **_k: Any) -> None:
        raise KeyboardInterrupt

    monkeypatch.setattr("reporter.commands.report.run_report", stop)
    assert cli.main(["report", str(LEGS / "clean_pg15")]) == 130
    assert "interrupted" in capsys.readouterr().err
