"""What a directory holds when it is not a PGXS extension, named before anything runs (reporter/exttree.py)."""

from __future__ import annotations

from pathlib import Path

import pytest

from reporter import exttree


@pytest.mark.parametrize("files, found", [
    ({}, "{d} is empty"),
    ({"CMakeLists.txt": "project(x)"}, "{d} is a CMake project (CMakeLists.txt), not a PGXS extension"),
    ({"meson.build": "project('x')"}, "{d} is a Meson project (meson.build), not a PGXS extension"),
    ({"configure.ac": "AC_INIT", "Makefile.in": "all:"},
     "{d} is an autoconf project (configure.ac) with no Makefile yet: its ./configure writes one, not a PGXS "
     "extension"),
    ({"notes.txt": "", "x.c": ""}, "{d} has no Makefile (it holds notes.txt, x.c)"),
    ({f"f{i}": "" for i in range(8)}, "{d} has no Makefile (it holds f0, f1, f2, f3, f4, f5 and 2 more)"),
])
def test_what_is_there_instead(tmp_path: Path, files: dict, found: str) -> None:
    d = tmp_path / "tree"
    d.mkdir()
    for name, text in files.items():
        (d / name).write_text(text)
    assert exttree.found_instead(d) == found.format(d=d)


def test_a_makefile_is_for_make_to_judge(tmp_path: Path) -> None:
    for name in exttree.MAKEFILE_NAMES:
        d = tmp_path / f"with-{name}"
        d.mkdir()
        (d / name).write_text("all:\n")
        assert exttree.found_instead(d) is None and exttree.makefile(d) == d / name


def test_a_typo_names_the_nearest_directory(tmp_path: Path) -> None:
    (tmp_path / "pg_myext").mkdir()
    (tmp_path / "file").write_text("")
    assert exttree.found_instead(tmp_path / "pg_myxet") == (f"{tmp_path / 'pg_myxet'}: no such directory "
                                                            f"(did you mean {tmp_path / 'pg_myext'}?)")
    assert exttree.found_instead(tmp_path / "unrelated") == f"{tmp_path / 'unrelated'}: no such directory"
    assert exttree.found_instead(tmp_path / "file") == f"{tmp_path / 'file'}: a file, not a directory"


def test_the_message_says_what_to_do() -> None:
    text = exttree.not_an_extension("/x is empty")
    assert text.startswith("not a PGXS extension: /x is empty; ")
    for hint in ("extension: {path: DIR, name: NAME, make_args: [...]}", "extension: {name: NAME}",
                 "check --example"):
        assert hint in text
