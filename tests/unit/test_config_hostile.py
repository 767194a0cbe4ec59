"""memcheck.yml and its SQL against a second hostile pass (issue 21, items 4, 11, 13 and 17), each through the
command line's one error boundary: exit 2, a message naming the file, the line, the key (and the offset),
never a traceback or an "internal error", and nothing run.

4. A NUL byte in a workload's file or inline SQL would silently end the SQL there.
11. A line break in a setting's value would write a second postgresql.conf line.
13. YAML tags the safe loader does not know (!custom, !!python/object/apply:...).
17. A configuration too large, or with too many workloads, to load in reasonable time and memory.
"""

from __future__ import annotations

from pathlib import Path
from typing import List

import pytest

from reporter import config
from reporter.cli import main

NO_PG = "/nonexistent/pg_config"  # the configuration is refused before pg_config is even asked


def run(tmp_path: Path, text: str, capsys: pytest.CaptureFixture[str]) -> List[str]:
    """`pg-ext-memcheck run` on this memcheck.yml: its exit status must be 2; the error lines."""
    path = tmp_path / "memcheck.yml"
    path.write_text(text)
    status = main(["run", "--config", str(path), "--pg-config", NO_PG, "--output", str(tmp_path / "out")])
    err = capsys.readouterr().err
    assert status == 2, err
    assert "Traceback" not in err and "internal error" not in err, err
    assert not (tmp_path / "out" / "results.json").exists()
    return [ln for ln in err.splitlines() if ln.startswith(str(path))]


# ---- item 4 -----------------------------------------------------------------------------------------------


def test_nul_byte_in_a_workload_file(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    (tmp_path / "w.sql").write_bytes(b"SELECT 1;\nSELECT 2\x00; DROP TABLE important;\n")
    lines = run(tmp_path, "workloads:\n  - name: a\n    file: w.sql\n", capsys)
    assert lines == [f"{tmp_path / 'memcheck.yml'}:3: workloads[0].file: {tmp_path / 'w.sql'}:2: a NUL byte at "
                     "byte offset 18: PostgreSQL takes SQL as a C string, so everything after it would silently not "
                     "run"]


def test_nul_character_in_inline_sql(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    lines = run(tmp_path, 'workloads:\n  - name: a\n    sql: "SELECT 1;\\nSELECT 2;\\0 DROP TABLE important"\n',
                capsys)
    assert lines == [f"{tmp_path / 'memcheck.yml'}:3: workloads[0].sql: a NUL character at offset 19 (line 2 of the "
                     "SQL): PostgreSQL takes SQL as a C string, so everything after it would silently not run"]


def test_nul_character_in_setup(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    lines = run(tmp_path, 'setup:\n  - "SELECT 1"\n  - "CREATE TABLE t();\\0DROP TABLE t"\n'
                          "workloads:\n  - {name: a, sql: SELECT 1}\n", capsys)
    assert lines == [f"{tmp_path / 'memcheck.yml'}:3: setup[1]: a NUL character at offset 17: PostgreSQL takes SQL "
                     "as a C string, so everything after it would silently not run"]


def test_raw_nul_in_memcheck_yml(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = tmp_path / "memcheck.yml"
    path.write_bytes(b"workloads:\n  - name: a\n    sql: SELECT 1\x00\n")
    status = main(["run", "--config", str(path), "--pg-config", NO_PG, "--output", str(tmp_path / "out")])
    err = capsys.readouterr().err
    assert status == 2 and "Traceback" not in err
    assert f"{path}:3: invalid YAML: character U+0000 at offset 40 is not allowed in a YAML file" in err


# ---- item 11 ------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("value", ['"4MB\\nshared_preload_libraries = evil"', '"4MB\\r"', '"a\\tb"', '"x\\u0085"'])
def test_control_characters_in_a_setting(tmp_path: Path, capsys: pytest.CaptureFixture[str], value: str) -> None:
    lines = run(tmp_path, f"settings:\n  work_mem: {value}\nworkloads:\n  - {{name: a, sql: SELECT 1}}\n", capsys)
    assert lines == [f"{tmp_path / 'memcheck.yml'}:2: settings.work_mem: a line break or another control character "
                     "in a setting: postgresql.conf takes one line per setting"]


# ---- item 13 ------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(("tagged", "tag"), [
    ("!custom x", "!custom"),
    ('!!python/object/apply:os.system ["touch /tmp/pwned-by-yaml"]',
     "tag:yaml.org,2002:python/object/apply:os.system"),
    ("!!python/name:os.system", "tag:yaml.org,2002:python/name:os.system"),
])
def test_unknown_yaml_tags(tmp_path: Path, capsys: pytest.CaptureFixture[str], tagged: str, tag: str) -> None:
    lines = run(tmp_path, f"workloads:\n  - name: a\n    sql: {tagged}\n", capsys)
    assert lines == [f"{tmp_path / 'memcheck.yml'}:3: invalid YAML: unknown tag '{tag}': memcheck.yml takes plain "
                     "values (strings, numbers, lists, mappings); remove the tag"]
    assert not Path("/tmp/pwned-by-yaml").exists()


def test_standard_tags_of_the_wrong_type_are_schema_errors(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    lines = run(tmp_path, "workloads:\n  - name: a\n    sql: !!set {a, b}\n    iterations: !!binary aGVsbG8=\n",
                capsys)
    assert [ln.split(": ", 2)[1] for ln in lines] == ["workloads[0].sql", "workloads[0].iterations"], lines


# ---- item 17 ------------------------------------------------------------------------------------------------


def test_too_many_workloads(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    limit = config.max_workloads()
    assert limit == 1000
    text = "workloads:\n" + "".join(f"  - {{name: w{i}, sql: SELECT 1}}\n" for i in range(limit + 1))
    lines = run(tmp_path, text, capsys)
    assert lines == [f"{tmp_path / 'memcheck.yml'}:1002: workloads: more than 1,000 workloads (this is number "
                     "1,001): split the configuration into several runs"]


def test_tens_of_thousands_of_workloads_are_refused_at_once(tmp_path: Path) -> None:
    """The probe: 36,000 workloads in a file just under the size cap. Building them into YAML nodes took
    minutes and hundreds of MB; the parse now stops at the first one too many, and the message says where (no
    time is asserted: the line number shows where it stopped)."""
    path = tmp_path / "memcheck.yml"
    path.write_text("workloads:\n" + "".join(f"  - {{name: w{i}, sql: S}}\n" for i in range(36000)))
    assert path.stat().st_size < config.MAX_CONFIG_BYTES
    with pytest.raises(config.ConfigError, match=r":1002: workloads: more than 1,000 workloads \(this is number "
                                                 r"1,001\)"):
        config.load(path)


def test_the_most_workloads_load(tmp_path: Path) -> None:
    path = tmp_path / "memcheck.yml"
    path.write_text("workloads:\n" + "".join(f"  - {{name: w{i}, sql: SELECT 1}}\n" for i in range(1000)))
    assert len(config.load(path).workloads) == 1000


def test_too_large_a_configuration(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = tmp_path / "memcheck.yml"
    text = "workloads:\n  - {name: a, sql: SELECT 1}\n# " + "x" * config.MAX_CONFIG_BYTES + "\n"
    status = main(["run", "--config", str(_write(path, text)), "--pg-config", NO_PG,
                   "--output", str(tmp_path / "out")])
    err = capsys.readouterr().err
    assert status == 2, err
    assert (f"{path}: too large for a memcheck.yml: {len(text):,} bytes, at most 1,048,576: split it, or generate "
            "fewer workloads") in err


def test_a_fifo_is_not_read(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    import os

    path = tmp_path / "memcheck.yml"
    os.mkfifo(path)  # opening it for reading would block until a writer came
    status = main(["run", "--config", str(path), "--pg-config", NO_PG, "--output", str(tmp_path / "out")])
    assert status == 2
    assert f"{path}: not a regular file: a FIFO (named pipe)" in capsys.readouterr().err


def _write(path: Path, text: str) -> Path:
    path.write_text(text)
    return path
