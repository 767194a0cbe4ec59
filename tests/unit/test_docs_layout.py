"""The maps of the code in the docs name exactly the files that exist: docs/architecture.md's table of the hook
library's layers (every cext/ source and header, in its layer's row; the Makefile builds every source) and
docs/interfaces.md's repository layout (every module of reporter/, its commands, schemas and templates)."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Dict, Set

ROOT = Path(__file__).resolve().parents[2]
CEXT = ROOT / "cext"
ARCHITECTURE = ROOT / "docs" / "architecture.md"
INTERFACES = ROOT / "docs" / "interfaces.md"
TOP = "top"


def architecture_map(text: str | None = None) -> Dict[str, Set[str]]:
    """folder ('base', ..., or 'top' for cext/ itself) -> the file names its row of the layer table names."""
    text = ARCHITECTURE.read_text(encoding="utf-8") if text is None else text
    out: Dict[str, Set[str]] = {}
    for line in text.splitlines():
        cells = [c.strip() for c in line.strip().strip("|").split("|")]
        if len(cells) != 4 or not (cells[0].isdigit() or cells[0] == TOP):
            continue
        folder = cells[1].strip("`").rstrip("/") if cells[0] != TOP else TOP
        out[folder] = set(re.findall(r"`([\w]+\.[ch])`", " ".join(cells[1:])))
    return out


def cext_files() -> Dict[str, Set[str]]:
    out: Dict[str, Set[str]] = {TOP: {p.name for p in CEXT.glob("*.[ch]")}}
    for folder in sorted(p for p in CEXT.iterdir() if p.is_dir()):
        out[folder.name] = {p.name for p in folder.glob("*.[ch]")}
    return out


def test_the_layer_table_names_every_cext_file_in_its_folder() -> None:
    documented, actual = architecture_map(), cext_files()
    assert set(documented) == set(actual), "a layer folder is missing from docs/architecture.md, or gone"
    for folder, files in actual.items():
        assert documented[folder] == files, (
            f"docs/architecture.md, row {folder}: missing {sorted(files - documented[folder])}, "
            f"gone {sorted(documented[folder] - files)}")


def test_the_table_parser_sees_a_missing_file() -> None:
    row = "| 1 | `platform/` | machine-specific mechanisms (`platform.h`) | `gotpatch.c` GOT slots |\n"
    assert architecture_map(row) == {"platform": {"platform.h", "gotpatch.c"}}
    assert architecture_map(row)["platform"] != cext_files()["platform"]  # thunk.c is not named in it


def test_the_makefile_builds_every_source() -> None:
    objs = re.search(r"^OBJS = \\\n(.*?)\n\n", (CEXT / "Makefile").read_text(), re.S | re.M)
    assert objs is not None
    built = set(re.findall(r"([\w/]+)\.o", objs.group(1)))
    sources = {p.relative_to(CEXT).with_suffix("").as_posix() for p in CEXT.rglob("*.c")}
    assert built == sources


def layout_block() -> str:
    text = INTERFACES.read_text(encoding="utf-8")
    section = text.split("## 1. Repository layout", 1)[1]
    block = re.search(r"```\n(.*?)```", section, re.S)
    assert block is not None, "docs/interfaces.md lost its layout block"
    return block.group(1)


def test_the_interfaces_layout_names_every_reporter_module() -> None:
    block = layout_block()
    reporter = ROOT / "reporter"
    named = set(re.findall(r"(?<![\w.])([\w.]+\.(?:py|json|j2))\b", block))
    modules = {p.name for p in reporter.glob("*.py")} | {p.name for p in (reporter / "commands").glob("*.py")}
    modules -= {"__init__.py", "__main__.py"}
    modules |= {p.name for p in (reporter / "schemas").glob("*.json")}
    modules |= {p.name for p in (reporter / "templates").iterdir()}
    assert not modules - named, f"docs/interfaces.md's layout does not name {sorted(modules - named)}"
    part = block.split("\nreporter/\n", 1)[1].split("\ntests/", 1)[0]  # the reporter/ part of the layout
    in_part = set(re.findall(r"(?<![\w.])([\w.]+\.py)\b", part))
    gone = {n for n in in_part if n not in modules | {"__init__.py"}}
    assert not gone, f"docs/interfaces.md's layout names modules that do not exist: {sorted(gone)}"
    assert "commands/" in block
