"""The C library names its vocabularies in cext/base/vocab.c, numbers them in cext/base/base.h's enums and registers
a scenario kind per scenario in the file of its check; all of it must be exactly reporter/vocab.py's, in order.
The extension's SQL scripts spell no vocabulary today: should one appear there, it must be complete."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Dict, List, Tuple

import pytest

from reporter import vocab

ROOT = Path(__file__).resolve().parents[2]
CEXT = ROOT / "cext"
VOCAB_C = CEXT / "base" / "vocab.c"
BASE_H = CEXT / "base" / "base.h"

# table in vocab.c -> key of vocab.export()
TABLES = {
    "check_names": "check_types",
    "severity_names": "severities",
    "phase_names": "phases",
    "lifetime_names": "lifetimes",
    "verdict_names": "verdicts",
    "unit_names": "rate_units",
    "mode_names": "modes",
    "scenario_names": "scenarios",
}
# enum in base.h -> (its members' prefix, the member that names nothing, key of vocab.export())
ENUMS: Dict[str, Tuple[str, str, str]] = {
    "McCheck": ("MC_CHECK_", "MC_NUM_CHECKS", "check_types"),
    "McSeverity": ("MC_SEV_", "", "severities"),
    "McPhase": ("MC_PHASE_", "", "phases"),
    "McLifetime": ("MC_LIFE_", "MC_LIFE_UNKNOWN", "lifetimes"),
    "McVerdict": ("MC_VERDICT_", "MC_VERDICT_NONE", "verdicts"),
    "McUnit": ("MC_UNIT_", "MC_UNIT_NONE", "rate_units"),
    "McMode": ("MC_MODE_", "", "modes"),
}


def c_tables(text: str | None = None) -> Dict[str, List[str]]:
    """Each `static const char *const NAME[...] = { ... };` as its words in order (NULL skipped)."""
    text = VOCAB_C.read_text() if text is None else text
    out: Dict[str, List[str]] = {}
    for name, body in re.findall(r"static const char \*const (\w+)\[\w*\] = \{(.*?)\};", text, flags=re.S):
        out[name] = re.findall(r'"([^"]*)"', body)
    return out


def c_designations(text: str) -> List[Tuple[str, str]]:
    """Every `[MC_X_Y] = "word"` of vocab.c: the enum member and the word it is given."""
    return re.findall(r'\[(MC_\w+)\]\s*=\s*"([^"]*)"', text)


def c_enum(name: str) -> List[str]:
    enum = re.search(rf"typedef enum {name}\s*\{{(.*?)\}}", BASE_H.read_text(), re.S)
    assert enum is not None, f"{BASE_H} lost enum {name}"
    body = re.sub(r"/\*.*?\*/", "", enum.group(1), flags=re.S)
    return re.findall(r"\b(MC_\w+)", body)


@pytest.mark.parametrize("table", sorted(TABLES))
def test_c_vocabulary_equals_python(table: str) -> None:
    tables = c_tables()
    assert table in tables, f"{VOCAB_C} lost its {table} table"
    assert tables[table] == list(vocab.export()[TABLES[table]])


def test_every_exported_vocabulary_the_c_side_knows_has_a_table() -> None:
    """Every vocabulary of vocab.export() that the C library uses is checked here (the rest are the reporter's)."""
    reporter_only = {"statuses", "session_statuses", "workload_kinds", "fail_on_levels", "install_methods"}
    assert set(TABLES.values()) | reporter_only == set(vocab.export())


@pytest.mark.parametrize("enum", sorted(ENUMS))
def test_c_enum_equals_python(enum: str) -> None:
    """base.h's enum numbers the words in vocab.py's order; vocab.c gives each member its own word."""
    prefix, nothing, key = ENUMS[enum]
    members = [m for m in c_enum(enum) if m != nothing]
    words = list(vocab.export()[key])
    assert all(m.startswith(prefix) for m in members), members
    assert [m[len(prefix):].lower() for m in members] == [w.lower() for w in words]
    given = dict(c_designations(VOCAB_C.read_text()))
    assert [given.get(m) for m in members] == words


def test_the_checkers_of_c_and_python_fail_on_a_difference() -> None:
    """The parsers above see a reordered or missing word (so the tests above can fail)."""
    text = VOCAB_C.read_text().replace('"tx_abort_loop",\n', "").replace(
        '[MC_PHASE_PLANNER] = "planner"', '[MC_PHASE_PLANNER] = "planning"')
    assert c_tables(text)["scenario_names"] != list(vocab.SCENARIOS)
    assert ("MC_PHASE_PLANNER", "planning") in c_designations(text)


def test_scenario_count_and_kinds() -> None:
    """MC_NUM_SCENARIOS is the vocabulary's length, and each scenario's kind is defined and registered once."""
    count = re.search(r"#define MC_NUM_SCENARIOS (\d+)", BASE_H.read_text())
    assert count and int(count.group(1)) == len(vocab.SCENARIOS)
    kinds: Dict[str, str] = {}
    registered: List[str] = []
    for path in sorted(CEXT.rglob("*.c")):
        text = path.read_text()
        for var, name in re.findall(r'static const McScenarioKind (\w+) = \{\s*"(\w+)"', text):
            assert name not in kinds, f"{name} defined in {kinds.get(name)} and {path}"
            kinds[name] = f"{path.relative_to(ROOT)}:{var}"
            assert f"mc_scenario_register(&{var});" in text, f"{path}: {var} is never registered"
        registered += re.findall(r"mc_scenario_register\(&(\w+)\);", text)
    assert sorted(kinds) == sorted(vocab.SCENARIOS)
    assert len(registered) == len(vocab.SCENARIOS)


def test_sql_mode_names_match() -> None:
    """The extension script does not spell the modes; the GUC's own table (base/settings.c) does."""
    text = (CEXT / "base" / "settings.c").read_text()
    modes = re.findall(r'\{"(\w+)", MC_MODE_\w+, false\}', text)
    aliases = dict(re.findall(r'\{"(\w+)", MC_MODE_(\w+), true\}', text))
    assert modes == list(vocab.MODES)
    assert {a: m.lower() for a, m in aliases.items()} == vocab.MODE_ALIASES


# a column of violation_log (or an argument) -> the vocabulary its values come from
SQL_COLUMNS = {"check_type": "check_types", "severity": "severities", "phase": "phases", "lifetime": "lifetimes",
               "verdict": "verdicts", "rate_unit": "rate_units", "scenario_name": "scenarios",
               "memcheck_mode": "modes"}


def sql_comparisons(text: str) -> List[Tuple[str, str]]:
    """(column, word) for every `column = 'word'`, `column <> 'word'` and `column IN ('a', 'b')` of a script,
    comments left out."""
    text = re.sub(r"--[^\n]*", "", text)
    found = re.findall(r"\b(\w+)\s*(?:=|<>|!=)\s*'([^']*)'", text)
    for column, words in re.findall(r"\b(\w+)\s+IN\s*\(([^)]*)\)", text, flags=re.I):
        found += [(column, w) for w in re.findall(r"'([^']*)'", words)]
    return found


def test_sql_spells_only_words_of_the_vocabularies() -> None:
    """Where the extension's scripts compare a column with a word (end()'s `check_type = 'wrong_ctx_alloc'`),
    the word is one of that column's vocabulary."""
    seen = []
    for path in sorted((ROOT / "sql").glob("*.sql")):
        for column, word in sql_comparisons(path.read_text()):
            if column in SQL_COLUMNS:
                seen.append(word)
                assert word in vocab.export()[SQL_COLUMNS[column]], f"{path.name}: {column} = '{word}'"
    assert "wrong_ctx_alloc" in seen  # the 1.0 script's end() spells one
    assert sql_comparisons("WHERE x.phase IN ('planner', 'nope') -- check_type = 'no'\n AND severity <> 'INFO'") \
        == [("severity", "INFO"), ("phase", "planner"), ("phase", "nope")]
