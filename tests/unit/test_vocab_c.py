"""The C library names its vocabularies in cext/base/vocab.c; they must be exactly reporter/vocab.py's, in order."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Dict, List

import pytest

from reporter import vocab

CEXT = Path(__file__).resolve().parents[2] / "cext"
VOCAB_C = CEXT / "base" / "vocab.c"

# table in vocab.c -> key of vocab.export()
TABLES = {
    "check_names": "check_types",
    "severity_names": "severities",
    "lifetime_names": "lifetimes",
    "verdict_names": "verdicts",
    "unit_names": "rate_units",
    "mode_names": "modes",
}


def c_tables() -> Dict[str, List[str]]:
    """Each `static const char *const NAME[] = { [ENUM] = "word", ... };` as its words in order (NULL skipped)."""
    text = VOCAB_C.read_text()
    out: Dict[str, List[str]] = {}
    for name, body in re.findall(r"static const char \*const (\w+)\[\] = \{(.*?)\};", text, flags=re.S):
        out[name] = re.findall(r'=\s*"([^"]*)"', body)
    return out


@pytest.mark.parametrize("table", sorted(TABLES))
def test_c_vocabulary_equals_python(table: str) -> None:
    tables = c_tables()
    assert table in tables, f"{VOCAB_C} lost its {table} table"
    assert tables[table] == list(vocab.export()[TABLES[table]])


def test_every_c_check_type_is_in_the_python_vocabulary() -> None:
    enum = re.search(r"typedef enum McCheck\s*\{(.*?)\}", (CEXT / "base" / "base.h").read_text(), re.S)
    assert enum is not None
    members = re.findall(r"MC_CHECK_\w+", enum.group(1))
    assert len(members) == len(vocab.CHECK_TYPES)


def test_sql_mode_names_match() -> None:
    """The extension script does not spell the modes; the GUC's own table (base/settings.c) does."""
    text = (CEXT / "base" / "settings.c").read_text()
    modes = re.findall(r'\{"(\w+)", MC_MODE_\w+, false\}', text)
    aliases = dict(re.findall(r'\{"(\w+)", MC_MODE_(\w+), true\}', text))
    assert modes == list(vocab.MODES)
    assert {a: m.lower() for a, m in aliases.items()} == vocab.MODE_ALIASES
