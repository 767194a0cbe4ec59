"""memcheck.yml loading: every kind of mistake gets a message with the file, the line and the key."""

from __future__ import annotations

import datetime as dt
import json
import re
from pathlib import Path

import jsonschema
import pytest

from reporter import config

REPO = Path(__file__).resolve().parents[2]
EXAMPLE = REPO / "examples" / "buggy_pg_ext" / "memcheck.yml"


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "memcheck.yml"
    path.write_text(text)
    return path


def errors_of(path: Path) -> list:
    with pytest.raises(config.ConfigError, match=re.escape(str(path))) as info:  # every error names the file
        config.load(path)
    return info.value.errors


def test_schema_is_a_valid_json_schema() -> None:
    jsonschema.Draft202012Validator.check_schema(config.schema())


def test_example_config_loads() -> None:
    cfg = config.load(EXAMPLE)
    assert cfg.extension is not None and cfg.extension.name == "buggy_pg_ext"
    assert cfg.extension.path == EXAMPLE.parent
    assert [w.name for w in cfg.workloads] == ["select_companies", "growth", "per_row_function", "abort_loop"]
    growth = cfg.workloads[1]
    assert (growth.kind, growth.scenario, growth.iterations) == ("scenario", "growth_benchmark", 200)
    assert cfg.settings["buggy_pg_ext.bugs"] == "planner_ctx_leak,top_ctx_alloc,nested_leak"
    assert cfg.fail_on == "error"
    assert cfg.thresholds == {"min_leak_bytes": 8192, "warning_bytes": 65536, "error_bytes": 1048576}
    assert cfg.digest.startswith("sha256:") and len(cfg.digest) == 7 + 64
    assert any("two_step" in s for s in cfg.setup)


def test_defaults_and_units(tmp_path: Path) -> None:
    (tmp_path / "w.sql").write_text("SELECT 1;\nSELECT 2;\n")
    path = write(
        tmp_path,
        """
settings: {work_mem: 4MB, jit: false, max_connections: 20}
setup: [SELECT 1, SELECT 2]
workloads:
  - {name: a, sql: SELECT 1}
  - {name: b, file: w.sql, mode: none, timeout: 500ms, iterations: 3}
  - {name: c, sql: SELECT 1, timeout: 2min, allowed_contexts: [TopMemoryContext], context_pattern: 'Buggy%'}
thresholds: {warning_bytes: 100kB}
suppressions:
  - {pattern: 'TopMemoryContext*', reason: cache, expiry: 2030-01-31}
""",
    )
    cfg = config.load(path)
    a, b, c = cfg.workloads
    assert (a.kind, a.iterations, a.mode, a.timeout_s) == ("sql", 1, "all", config.DEFAULT_TIMEOUT_S)
    assert (b.kind, b.mode, b.timeout_s, b.iterations) == ("file", "off", 0.5, 3)
    assert b.sql.startswith("SELECT 1;")
    assert c.timeout_s == 120 and c.allowed_contexts == ("TopMemoryContext",) and c.context_pattern == "Buggy%"
    assert cfg.settings == {"work_mem": "4MB", "jit": "off", "max_connections": "20"}
    assert cfg.setup == ("SELECT 1", "SELECT 2")
    assert cfg.thresholds["warning_bytes"] == 100 * 1024
    assert cfg.fail_on == "error" and cfg.extension is None
    assert cfg.suppressions[0].expiry == dt.date(2030, 1, 31)


def test_bad_yaml_names_file_and_line(tmp_path: Path) -> None:
    path = write(tmp_path, "workloads:\n  - name: a\n    sql: [unclosed\n")
    (err,) = errors_of(path)
    assert err.startswith(f"{path}:")
    assert "invalid YAML" in err
    line = int(err.split(":")[1])
    assert line >= 3


def test_unknown_key_did_you_mean(tmp_path: Path) -> None:
    path = write(tmp_path, "workloads:\n  - name: a\n    sql: SELECT 1\n    itrations: 5\nfail_on: error\n")
    errs = errors_of(path)
    assert f"{path}:4: workloads[0].itrations: unknown key 'itrations' (did you mean 'iterations'?)" in errs
    assert f"{path}:5: fail_on: unknown key 'fail_on' (did you mean 'fail-on'?)" in errs


def test_unknown_key_without_close_match_lists_known(tmp_path: Path) -> None:
    path = write(tmp_path, "workloads: [{name: a, sql: x}]\nzzz: 1\n")
    (err,) = errors_of(path)
    assert err.startswith(f"{path}:2: zzz: unknown key 'zzz' (known keys: ")


def test_wrong_type(tmp_path: Path) -> None:
    path = write(tmp_path, "workloads:\n  - name: a\n    sql: SELECT 1\n    iterations: ten\n")
    (err,) = errors_of(path)
    assert err == f"{path}:4: workloads[0].iterations: wrong type: 'ten' is not of type 'integer'"


def test_bad_enum_suggests(tmp_path: Path) -> None:
    path = write(tmp_path, "workloads:\n  - {name: a, sql: x, mode: executer}\nfail-on: warn\n")
    errs = errors_of(path)
    assert any(
        e.startswith(f"{path}:2: workloads[0].mode: 'executer' is not one of") and "did you mean 'executor'" in e
        for e in errs
    )
    assert any(e.startswith(f"{path}:3: fail-on: 'warn' is not one of") for e in errs)


def test_missing_file(tmp_path: Path) -> None:
    path = write(tmp_path, "workloads:\n  - name: a\n    file: nowhere.sql\n")
    (err,) = errors_of(path)
    assert err.startswith(f"{path}:3: workloads[0].file: file not found: ")
    assert err.endswith("nowhere.sql")


def test_missing_extension_dir(tmp_path: Path) -> None:
    path = write(tmp_path, "extension:\n  name: x\n  path: ./nope\nworkloads: [{name: a, sql: x}]\n")
    (err,) = errors_of(path)
    assert err.startswith(f"{path}:3: extension.path: directory not found")


def test_config_file_missing(tmp_path: Path) -> None:
    (err,) = errors_of(tmp_path / "absent.yml")
    assert err == f"{tmp_path / 'absent.yml'}: no such file"


def test_required_and_exclusive_keys(tmp_path: Path) -> None:
    path = write(tmp_path, "extension:\n  path: .\nworkloads:\n  - name: a\n  - {name: b, sql: x, file: y}\n")
    errs = errors_of(path)
    assert f"{path}:1: extension.name: missing required key 'name'" in errs
    assert f"{path}:4: workloads[0]: a workload needs exactly one of 'sql', 'file' or 'regress: true'" in errs
    assert f"{path}:5: workloads[1]: a workload needs exactly one of 'sql', 'file' or 'regress: true'" in errs


def test_empty_and_non_mapping(tmp_path: Path) -> None:
    assert "empty" in errors_of(write(tmp_path, ""))[0]
    assert "expected a mapping" in errors_of(write(tmp_path, "- a\n- b\n"))[0]


def test_duplicates_and_bad_units(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        "workloads:\n  - {name: a, sql: x}\n  - {name: a, sql: y, timeout: soon}\nthresholds:\n  error_bytes: 1TB\n",
    )
    errs = errors_of(path)
    assert any(e.startswith(f"{path}:3: workloads[1].timeout: must be a duration") for e in errs)
    assert any(e.startswith(f"{path}:5: thresholds.error_bytes: must be a byte count") for e in errs)
    path = write(tmp_path, "workloads:\n  - {name: a, sql: x}\n  - {name: a, sql: y}\n")
    assert errors_of(path) == [f"{path}:3: workloads[1].name: duplicate workload name 'a'"]
    path = write(tmp_path, "workloads: [{name: a, sql: x}]\nworkloads: [{name: b, sql: x}]\n")
    assert errors_of(path) == [f"{path}:2: workloads: duplicate key"]


def test_suppression_needs_a_matcher(tmp_path: Path) -> None:
    path = write(tmp_path, "workloads: [{name: a, sql: x}]\nsuppressions:\n  - reason: because\n")
    assert errors_of(path) == [
        f"{path}:3: suppressions[0]: a suppression needs at least one of 'pattern', 'check' or 'library'"
    ]


def test_threshold_order(tmp_path: Path) -> None:
    path = write(tmp_path, "workloads: [{name: a, sql: x}]\nthresholds: {warning_bytes: 10, error_bytes: 5}\n")
    assert "min_leak_bytes <= warning_bytes <= error_bytes" in errors_of(path)[0]


def test_schema_file_is_valid_json() -> None:
    json.loads((REPO / "reporter" / "schemas" / "memcheck.schema.json").read_text())


def test_concurrency(tmp_path: Path) -> None:
    path = write(tmp_path, "workloads:\n  - {name: a, sql: SELECT 1}\n  - {name: b, sql: SELECT 1, concurrency: 4}\n")
    cfg = config.load(path)
    assert [w.concurrency for w in cfg.workloads] == [1, 4]
    for bad in (0, 65, "two"):
        path = write(tmp_path, f"workloads:\n  - name: b\n    sql: SELECT 1\n    concurrency: {bad}\n")
        (error,) = errors_of(path)
        assert error.startswith(f"{path}:4: workloads[0].concurrency"), error
