"""memcheck.yml values a careless or hostile user may write: each is refused with file, line and key, never a
traceback and never silently run (issue 11, items 4, 5, 6, 7, 13 and 14)."""

from __future__ import annotations

import re
from pathlib import Path
from typing import List

import pytest

from reporter import config, sqltext

GOOD = "workloads:\n  - name: a\n    sql: SELECT 1\n"


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "memcheck.yml"
    path.write_text(text)
    return path


def errors_of(path: Path) -> List[str]:
    with pytest.raises(config.ConfigError, match=re.escape(str(path))) as info:  # every error names the file
        config.load(path)
    return info.value.errors


# ---- item 4: settings that would open the cluster or load code ------------------------------------------


@pytest.mark.parametrize(
    ("key", "value", "reason"),
    [
        ("listen_addresses", "127.0.0.1", "unix socket only"),
        ("port", 5433, "unix socket only"),
        ("unix_socket_directories", "/tmp", "unix socket only"),
        ("unix_socket_permissions", "0777", "unix socket only"),
        ("hba_file", "/tmp/hba.conf", "unix socket only"),
        ("ssl", "on", "unix socket only"),
        ("shared_preload_libraries", "pg_stat_statements", "top-level 'preload' list"),
        ("session_preload_libraries", "x", "loaded only through"),
        ("dynamic_library_path", "/tmp", "loaded only through"),
        ("include", "/etc/passwd", "cannot include"),
        ("logging_collector", "on", "reads crashes and errors from the server log"),
        ("Listen_Addresses", "*", "unix socket only"),  # GUC names are case-insensitive
    ],
)
def test_reserved_settings_are_refused(tmp_path: Path, key: str, value: object, reason: str) -> None:
    path = write(tmp_path, f"settings:\n  work_mem: 4MB\n  {key}: {value!r}\n" + GOOD)
    (err,) = errors_of(path)
    assert err.startswith(f"{path}:3: settings.{key}: '{key}' cannot be set here: "), err
    assert reason in err


def test_preload_list_replaces_shared_preload_libraries(tmp_path: Path) -> None:
    cfg = config.load(write(tmp_path, "preload: [pg_stat_statements]\n" + GOOD))
    assert cfg.preload == ("pg_stat_statements",)
    (err,) = errors_of(write(tmp_path, "preload: ['$libdir/../../tmp/evil']\n" + GOOD))
    assert err.startswith(f"{tmp_path / 'memcheck.yml'}:1: preload[0]: ")


# ---- items 5 and 13: timeouts and other numbers in range -----------------------------------------------


@pytest.mark.parametrize("value", [".inf", ".nan", "0.0001", "'0ms'", "'0.5ms'", "1.0e+12", "'9999999h'"])
def test_timeout_out_of_range(tmp_path: Path, value: str) -> None:
    path = write(tmp_path, GOOD + f"    timeout: {value}\n")
    (err,) = errors_of(path)
    assert err.startswith(f"{path}:4: workloads[0].timeout: "), err
    assert "out of range: a timeout is at least 1ms" in err


def test_timeout_smallest_and_largest_accepted(tmp_path: Path) -> None:
    assert config.load(write(tmp_path, GOOD + "    timeout: 1ms\n")).workloads[0].timeout_s == 0.001
    big = config.load(write(tmp_path, GOOD + f"    timeout: {config.MAX_TIMEOUT_S}\n"))
    assert big.workloads[0].timeout_s == config.MAX_TIMEOUT_S


@pytest.mark.parametrize("value", ["3GB", 2**31, "2048MB"])
def test_thresholds_beyond_int32(tmp_path: Path, value: object) -> None:
    path = write(tmp_path, GOOD + f"thresholds:\n  warning_bytes: 64kB\n  error_bytes: {value}\n")
    (err,) = errors_of(path)
    assert err.startswith(f"{path}:6: thresholds.error_bytes: "), err
    assert "too large: at most 2147483647 bytes" in err


def test_threshold_at_int32_max_is_accepted(tmp_path: Path) -> None:
    cfg = config.load(write(tmp_path, GOOD + f"thresholds:\n  error_bytes: {2**31 - 1}\n"))
    assert cfg.thresholds["error_bytes"] == 2**31 - 1


def test_iterations_beyond_what_run_scenario_takes(tmp_path: Path) -> None:
    text = "workloads:\n  - name: g\n    scenario: growth_benchmark\n    sql: SELECT 1\n    iterations: 10000001\n"
    (err,) = errors_of(write(tmp_path, text))
    assert ":5: workloads[0].iterations: 10000001 is greater than the maximum of 10000000" in err
    assert config.load(write(tmp_path, text.replace("10000001", "10000000"))).workloads[0].iterations == 10**7


# ---- item 14: tracebacks before, clear errors now ------------------------------------------------------


def test_unquoted_invalid_date(tmp_path: Path) -> None:
    path = write(tmp_path, GOOD + "suppressions:\n  - check: context_leak\n    reason: r\n    expiry: 2027-13-45\n")
    (err,) = errors_of(path)
    assert err == f"{path}:7: suppressions[0].expiry: not a date: '2027-13-45'"


def test_unquoted_valid_date_still_works(tmp_path: Path) -> None:
    path = write(tmp_path, GOOD + "suppressions:\n  - {check: context_leak, reason: r, expiry: 2027-06-30}\n")
    assert str(config.load(path).suppressions[0].expiry) == "2027-06-30"


def test_non_utf8_sql_file(tmp_path: Path) -> None:
    (tmp_path / "w.sql").write_bytes(b"SELECT 1;\nSELECT '\xff\xfe';\n")
    path = write(tmp_path, "workloads:\n  - name: a\n    file: w.sql\n")
    (err,) = errors_of(path)
    assert err == f"{path}:3: workloads[0].file: {tmp_path / 'w.sql'}:2: not UTF-8 text (byte 0xff)"


def test_non_utf8_config(tmp_path: Path) -> None:
    path = tmp_path / "memcheck.yml"
    path.write_bytes(GOOD.encode() + b"    mode: \xe9\n")
    (err,) = errors_of(path)
    assert err == f"{path}:4: not UTF-8 text (byte 0xe9)"


def test_yaml_alias_bomb_is_refused_before_it_is_expanded(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """9^9 nodes if expanded: the aliases are refused while the events are read, before a node is composed."""
    lines = ['a: &a ["lol","lol","lol","lol","lol","lol","lol","lol","lol"]']
    for prev, name in zip("abcdefgh", "bcdefghi"):
        lines.append(f"{name}: &{name} [" + ",".join([f"*{prev}"] * 9) + "]")
    path = write(tmp_path, "\n".join(lines) + "\n" + GOOD)

    def compose(*args: object, **kwargs: object) -> None:
        raise AssertionError("the aliased document was composed")

    monkeypatch.setattr(config.yaml, "compose", compose)
    (err,) = errors_of(path)
    assert err.startswith(f"{path}:2: YAML aliases (*a) are not supported")


def test_any_alias_is_refused(tmp_path: Path) -> None:
    path = write(tmp_path, "workloads:\n  - &w {name: a, sql: SELECT 1}\n  - *w\n")
    (err,) = errors_of(path)
    assert err.startswith(f"{path}:3: YAML aliases (*w)")


def test_deep_nesting_is_an_error_not_a_traceback(tmp_path: Path) -> None:
    path = write(tmp_path, "workloads: " + "[" * 5000 + "]" * 5000 + "\n")
    (err,) = errors_of(path)
    assert err == f"{path}:1: invalid YAML: nested more than 32 levels deep"


# ---- item 6: what cannot run inside run_scenario, refused with file, line and key -----------------------


SCENARIO = "workloads:\n  - name: s\n    scenario: tx_abort_loop\n    iterations: 10\n"


@pytest.mark.parametrize(
    ("sql", "first"),
    [
        ("BEGIN; INSERT INTO t VALUES (1); COMMIT", "BEGIN"),
        ("SAVEPOINT a", "SAVEPOINT A"),
        ("RELEASE SAVEPOINT a", "RELEASE SAVEPOINT"),
        ("ROLLBACK", "ROLLBACK"),
        ("START TRANSACTION", "START TRANSACTION"),
        ("PREPARE TRANSACTION 'x'", "PREPARE TRANSACTION"),
        ("end", "END"),
    ],
)
def test_transaction_control_in_a_scenario(tmp_path: Path, sql: str, first: str) -> None:
    path = write(tmp_path, SCENARIO + f"    sql: {sql}\n")
    errors = errors_of(path)
    assert errors[0].startswith(f"{path}:5: workloads[0].sql: {first}: transaction control cannot run inside "
                                "ext_memcheck.run_scenario()"), errors


def test_transaction_control_line_inside_a_block_and_a_file(tmp_path: Path) -> None:
    block = SCENARIO + "    sql: |\n      SELECT 1;\n      -- a comment; with a semicolon\n      COMMIT;\n"
    path = write(tmp_path, block)
    (err,) = errors_of(path)
    assert err.startswith(f"{path}:8: workloads[0].sql: COMMIT: transaction control"), err
    (tmp_path / "s.sql").write_text("SELECT 1;\n\nSAVEPOINT x;\n")
    path = write(tmp_path, SCENARIO + "    file: s.sql\n")
    (err,) = errors_of(path)
    assert err.startswith(f"{path}:5: workloads[0].file: s.sql:3: SAVEPOINT X: transaction control"), err


@pytest.mark.parametrize("sql", ["COPY t FROM STDIN", "copy (select 1) to stdout with (format csv)"])
def test_copy_through_the_client_is_refused_everywhere(tmp_path: Path, sql: str) -> None:
    for head in (SCENARIO, "workloads:\n  - name: s\n    iterations: 10\n    mode: all\n"):
        path = write(tmp_path, head + f"    sql: {sql}\n")
        (err,) = errors_of(path)
        assert err.startswith(f"{path}:5: workloads[0].sql: COPY ") and "COPY FROM STDIN / TO STDOUT" in err


def test_transaction_words_inside_bodies_and_strings_are_fine(tmp_path: Path) -> None:
    sql = ("DO $$BEGIN PERFORM 1; END$$; SELECT 'COMMIT; BEGIN'; SELECT $f$ROLLBACK$f$; "
           "/* COMMIT; /* nested */ ROLLBACK; */ COPY t TO '/tmp/x'; SELECT E'it\\'s; BEGIN'")
    path = write(tmp_path, SCENARIO + f"    sql: {sql!r}\n")
    assert config.load(path).workloads[0].scenario == "tx_abort_loop"


def test_plain_workloads_may_use_transactions(tmp_path: Path) -> None:
    cfg = config.load(write(tmp_path, "workloads:\n  - name: a\n    sql: BEGIN; SELECT 1; COMMIT\n"))
    assert cfg.workloads[0].protocol == "simple"


def test_empty_sql_is_refused(tmp_path: Path) -> None:
    (err,) = errors_of(write(tmp_path, "workloads:\n  - name: a\n    sql: ' ; -- nothing\n'\n"))
    assert ":3: workloads[0].sql: no SQL statement in it" in err


# ---- item 7: the protocol a workload is sent with ---------------------------------------------------------


def test_protocol_values(tmp_path: Path) -> None:
    for protocol in ("simple", "extended", "prepared"):
        cfg = config.load(write(tmp_path, GOOD + f"    protocol: {protocol}\n"))
        assert cfg.workloads[0].protocol == protocol
    (err,) = errors_of(write(tmp_path, GOOD + "    protocol: binary\n"))
    assert ":4: workloads[0].protocol: 'binary' is not one of 'simple', 'extended', 'prepared'" in err


def test_extended_protocol_takes_one_statement(tmp_path: Path) -> None:
    path = write(tmp_path, "workloads:\n  - name: a\n    protocol: prepared\n    sql: |\n      SELECT 1;\n"
                           "      SELECT 2;\n")
    (err,) = errors_of(path)
    assert err.startswith(f"{path}:6: workloads[0].sql: SELECT: protocol 'prepared' sends one statement")


def test_protocol_does_not_apply_to_scenarios(tmp_path: Path) -> None:
    path = write(tmp_path, SCENARIO + "    sql: SELECT 1\n    protocol: prepared\n")
    (err,) = errors_of(path)
    assert err.startswith(f"{path}:6: workloads[0].protocol: a scenario runs its SQL inside")


# ---- the statement splitter on its own ---------------------------------------------------------------


def test_split_lines_and_words() -> None:
    stmts = sqltext.split("SELECT 1;\n\n  -- c\n  commit;\nCREATE FUNCTION f() RETURNS int AS $$ SELECT 1; $$ "
                          "LANGUAGE sql;\n;;")
    assert [(s.line, s.words[0]) for s in stmts] == [(1, "SELECT"), (4, "COMMIT"), (5, "CREATE")]
    assert sqltext.transaction_control(stmts[1]) and not sqltext.transaction_control(stmts[2])
    assert sqltext.split("   ") == [] and sqltext.split("-- only a comment") == []
    (copy,) = sqltext.split('COPY "from" TO STDOUT')
    assert sqltext.copy_with_client(copy)
    assert not sqltext.copy_with_client(sqltext.split("COPY t FROM '/data/stdin'")[0])
    assert not sqltext.transaction_control(sqltext.split("PREPARE p AS SELECT 1")[0])


def test_split_as_psql_does() -> None:
    """psql's own rules (psqlscan.l): `;` inside parentheses or inside a CREATE FUNCTION's BEGIN ATOMIC body
    does not end a statement; a backslash starts a meta-command to the end of its line, which is not SQL."""
    text = ("\\set ECHO none\n"
            "CREATE FUNCTION f() RETURNS int LANGUAGE sql\n"
            "BEGIN ATOMIC SELECT 1; SELECT CASE WHEN true THEN 2 END; END;\n"
            "CREATE RULE r AS ON INSERT TO t DO ALSO (INSERT INTO a VALUES (1); INSERT INTO b VALUES (2));\n"
            "BEGIN; SELECT CASE WHEN true THEN 1 END; END;\n"
            "SELECT 1\n\\echo inside\n, 2;\n"
            "SELECT 3 \\gset\n"
            "SELECT 'a\\b', E'\\';' \\; SELECT 4")
    items = sqltext.script(text)
    assert [(type(i).__name__, i.line, i.text) for i in items] == [
        ("MetaCommand", 1, "\\set ECHO none"),
        ("Statement", 2, "CREATE FUNCTION f() RETURNS int LANGUAGE sql\n"
                         "BEGIN ATOMIC SELECT 1; SELECT CASE WHEN true THEN 2 END; END"),
        ("Statement", 4, "CREATE RULE r AS ON INSERT TO t DO ALSO (INSERT INTO a VALUES (1); INSERT INTO b "
                         "VALUES (2))"),
        ("Statement", 5, "BEGIN"),
        ("Statement", 5, "SELECT CASE WHEN true THEN 1 END"),
        ("Statement", 5, "END"),
        ("MetaCommand", 7, "\\echo inside"),
        ("Statement", 6, "SELECT 1\n\n, 2"),
        ("Statement", 9, "SELECT 3"),
        ("MetaCommand", 9, "\\gset"),
        ("Statement", 10, "SELECT 'a\\b', E'\\';' \\; SELECT 4"),
    ]


def test_setup_is_split_into_statements_with_their_lines(tmp_path: Path) -> None:
    path = write(tmp_path, "setup: |\n"
                           "  \\set ECHO none\n"
                           "  -- the extension first\n"
                           "  CREATE EXTENSION x; CREATE TABLE t (a int);\n"
                           "  CREATE FUNCTION f() RETURNS int LANGUAGE plpgsql AS $$\n"
                           "  BEGIN RETURN 1; END $$;\n"
                           "workloads:\n  - {name: a, sql: SELECT 1}\n")
    cfg = config.load(path)
    assert cfg.setup == ("CREATE EXTENSION x", "CREATE TABLE t (a int)",
                         "CREATE FUNCTION f() RETURNS int LANGUAGE plpgsql AS $$\nBEGIN RETURN 1; END $$")
    assert cfg.setup_lines == (4, 4, 5)
    listed = config.load(write(tmp_path, "setup:\n  - SELECT 1; SELECT 2\n  - SELECT 3\n"
                                         "workloads:\n  - {name: a, sql: SELECT 1}\n"))
    assert (listed.setup, listed.setup_lines) == (("SELECT 1", "SELECT 2", "SELECT 3"), (2, 2, 3))


def test_setup_refuses_meta_commands_that_are_not_display_settings(tmp_path: Path) -> None:
    path = write(tmp_path, "setup: |\n  SELECT 1;\n  \\connect other\n  \\pset null x\n"
                           "workloads:\n  - {name: a, sql: SELECT 1}\n")
    (err,) = errors_of(path)
    assert err.startswith(f"{path}:3: setup: psql meta-command \\connect cannot run here: setup is sent to the "
                          "server one statement at a time")
