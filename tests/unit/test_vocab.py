"""One source of truth per vocabulary: every enum of the JSON schemas equals reporter/vocab.py, and the README
has a "what to do" paragraph for every check type."""

from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path
from typing import Any, Dict, Iterator, Tuple

import pytest

from reporter import describe, vocab
from reporter.cli import build_parser

ROOT = Path(__file__).resolve().parents[2]
SCHEMAS = ROOT / "reporter" / "schemas"

# Every enum in the schemas, by JSON pointer, and the vocabulary it must equal (null stripped).
EXPECTED: Dict[Tuple[str, str], Tuple[Any, ...]] = {
    ("results", "/properties/fail_on"): vocab.FAIL_ON_LEVELS,
    ("results", "/properties/schema_version"): (1, 2),
    ("results", "/$defs/workload/properties/kind"): vocab.WORKLOAD_KINDS,
    ("results", "/$defs/workload/properties/status"): vocab.STATUSES,
    ("results", "/$defs/workload/properties/sessions/items/properties/status"): vocab.SESSION_STATUSES,
    ("results", "/$defs/workload/properties/mode"): vocab.MODES,
    ("results", "/$defs/violation/properties/check_type"): vocab.CHECK_TYPES,
    ("results", "/$defs/violation/properties/severity"): vocab.SEVERITIES,
    ("results", "/$defs/violation/properties/lifetime"): vocab.LIFETIMES,
    ("results", "/$defs/violation/properties/verdict"): vocab.VERDICTS,
    ("results", "/$defs/violation/properties/rate/properties/unit"): vocab.RATE_UNITS,
    ("memcheck", "/properties/fail-on"): vocab.FAIL_ON_LEVELS,
    ("memcheck", "/$defs/workload/properties/scenario"): vocab.SCENARIOS,
    ("memcheck", "/$defs/workload/properties/protocol"): vocab.PROTOCOLS,
    ("memcheck", "/$defs/workload/properties/mode"): vocab.MODES + tuple(vocab.MODE_ALIASES),
    ("memcheck", "/$defs/suppression/properties/check"): vocab.CHECK_TYPES,
    ("summary", "/properties/schema_version"): (1,),
    ("summary", "/properties/verdict/properties/conclusion"): ("success", "failure"),
    ("summary", "/properties/verdict/properties/fail_on"): vocab.FAIL_ON_LEVELS,
    ("summary", "/properties/verdict/properties/fail_on_scope"): vocab.FAIL_ON_SCOPES,
    ("summary", "/properties/postgresql/items/properties/conclusion"): ("success", "failure"),
    ("summary", "/$defs/finding/properties/check_type"): vocab.CHECK_TYPES,
    ("summary", "/$defs/finding/properties/severity"): vocab.SEVERITIES,
    ("summary", "/$defs/finding/properties/severity_by_major/additionalProperties"): vocab.SEVERITIES,
    ("summary", "/$defs/finding/properties/gate"): vocab.GATES,
    ("summary", "/$defs/finding/properties/classification"): vocab.COMPARISON_CLASSES,
    ("summary", "/$defs/finding/properties/rate/properties/unit"): vocab.RATE_UNITS,
    ("summary", "/$defs/finding/properties/lifetime"): vocab.LIFETIMES,
    ("summary", "/$defs/finding/properties/verdict"): vocab.VERDICTS,
    ("summary", "/$defs/finding/properties/location/properties/kind"): ("site", "workload"),
}


def enums(node: Any, pointer: str = "") -> Iterator[Tuple[str, list]]:
    if isinstance(node, dict):
        if "enum" in node:
            yield pointer, node["enum"]
        for key, value in node.items():
            yield from enums(value, f"{pointer}/{key}")
    elif isinstance(node, list):
        for n, value in enumerate(node):
            yield from enums(value, f"{pointer}/{n}")


def all_enums() -> Dict[Tuple[str, str], list]:
    out = {}
    for name in ("results", "memcheck", "summary"):
        doc = json.loads((SCHEMAS / f"{name}.schema.json").read_text(encoding="utf-8"))
        for pointer, values in enums(doc):
            out[(name, pointer)] = values
    return out


def test_every_schema_enum_is_a_checked_vocabulary() -> None:
    assert set(all_enums()) == set(EXPECTED)  # a new enum must be added to vocab.py and here


@pytest.mark.parametrize("where", sorted(EXPECTED))
def test_schema_enum_equals_vocab(where: Tuple[str, str]) -> None:
    values = [v for v in all_enums()[where] if v is not None]
    assert sorted(values, key=str) == sorted(EXPECTED[where], key=str), where


def test_cli_choices_come_from_vocab() -> None:
    report = build_parser()._subparsers._group_actions[0].choices["report"]  # type: ignore[union-attr]
    choices = {a.dest: tuple(a.choices) for a in report._actions if a.choices}
    assert choices["fail_on"] == vocab.FAIL_ON_LEVELS
    assert choices["annotations"] == vocab.ANNOTATION_MODES


def test_ranks_follow_the_order() -> None:
    assert [vocab.SEVERITY_RANK[s] for s in vocab.SEVERITIES] == [1, 2, 3]
    assert [vocab.FAIL_ON_RANK[f] for f in vocab.FAIL_ON_LEVELS] == [None, 1, 2, 3]
    assert vocab.reaches("WARNING", "warning") and not vocab.reaches("INFO", "warning")
    assert not vocab.reaches("ERROR", "never") and not vocab.reaches(None, "info")
    assert set(vocab.BROKEN_STATUSES) < set(vocab.STATUSES)
    assert vocab.strictest_fail_on(["never", "error", "warning"]) == "warning"
    assert vocab.strictest_fail_on(["never"]) == "never" and vocab.strictest_fail_on([]) == "error"


def test_export_for_the_c_side() -> None:
    out = subprocess.run([sys.executable, "-m", "reporter.vocab"], capture_output=True, text=True, check=True,
                         cwd=ROOT)
    doc = json.loads(out.stdout)
    assert doc["check_types"] == list(vocab.CHECK_TYPES)
    assert doc["rate_units"] == list(vocab.RATE_UNITS) and "statement" in doc["rate_units"]
    assert set(doc) == set(vocab.export())


def test_readme_has_what_to_do_for_every_check_type() -> None:
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    headings = re.findall(r"^#### (\S+)$", readme, re.M)
    for check in vocab.CHECK_TYPES:
        assert describe.advice_anchor(check) in headings, f"README lacks '#### {check}'"
        section = readme.split(f"#### {check}\n", 1)[1].split("\n#### ", 1)[0]
        assert "What to do" in section, check
    assert describe.advice_url("context_leak").endswith("README.md#context_leak")


# ---- the vocabularies where the docs spell them out -------------------------------------------------------

INTERFACES = ROOT / "docs" / "interfaces.md"


def readme_column_words(column: str) -> list:
    """The words the README's violation_log paragraph gives a column: "`column` (`a`, `b`, ...)"."""
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    paragraph = readme.split("`ext_memcheck.violation_log` has these columns:", 1)[1].split("\n\n", 1)[0]
    found = re.search(rf"`{column}`\s+\(([^)]*)\)", paragraph)
    assert found, f"the README's violation_log paragraph gives no values for {column}"
    return re.findall(r"`([^`]+)`", found.group(1))


@pytest.mark.parametrize("column, words", [
    ("check_type", vocab.CHECK_TYPES), ("severity", vocab.SEVERITIES), ("phase", vocab.PHASES),
    ("lifetime", vocab.LIFETIMES), ("verdict", vocab.VERDICTS), ("rate_unit", vocab.RATE_UNITS),
])
def test_readme_violation_log_columns_name_each_vocabulary(column: str, words: Tuple[str, ...]) -> None:
    assert readme_column_words(column) == list(words)


def interfaces_row(column: str) -> str:
    row = re.search(rf"^\| {column} \| [^|]+ \| (.*) \|$", INTERFACES.read_text(encoding="utf-8"), re.M)
    assert row, f"docs/interfaces.md has no violation_log row for {column}"
    return row.group(1)


@pytest.mark.parametrize("column, words", [
    ("severity", vocab.SEVERITIES), ("phase", vocab.PHASES), ("lifetime", vocab.LIFETIMES),
    ("verdict", vocab.VERDICTS), ("rate_bytes, rate_unit", vocab.RATE_UNITS),
])
def test_interfaces_violation_log_table_names_each_vocabulary(column: str, words: Tuple[str, ...]) -> None:
    cell = re.sub(r"\([^)]*\)", "", interfaces_row(column)).replace("bytes per ", "")
    assert [w for w in re.split(r",\s*|\s+or\s+", cell.strip()) if w] == list(words)


def test_interfaces_results_rate_units_and_install_methods() -> None:
    text = INTERFACES.read_text(encoding="utf-8")
    rate = re.search(r'^\| `rate` \| `\{"bytes": number, "unit": (.*?)\}`', text, re.M)
    assert rate and re.findall(r'"(\w+)"', rate.group(1)) == list(vocab.RATE_UNITS)
    method = re.search(r"install-postgres VERSION \[--method ([\w|]+)\]", text)
    assert method and tuple(method.group(1).split("|")) == vocab.INSTALL_METHODS


def test_readme_lists_every_scenario() -> None:
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    table = readme.split("The scenarios:\n", 1)[1].split("\n\n", 1)[0]
    assert sorted(re.findall(r"^\| `(\w+)` \|", table, re.M)) == sorted(vocab.SCENARIOS)
    example = re.search(r"^ +scenario: (\w+) +# or ([^\n]*\n[^\n]*)", readme, re.M)
    assert example, "the memcheck.yml reference lost its scenario line"
    named = {example.group(1), *re.findall(r"[a-z]+(?:_[a-z]+)+", example.group(2))}
    assert set(vocab.SCENARIOS) <= named


def test_python_spells_only_phases_of_the_vocabulary() -> None:
    """The reporter writes a phase itself for rows it makes (a crash, a changed setting): only vocabulary words."""
    assert vocab.PHASE_SCENARIO in vocab.PHASES
    spelled = set()
    for path in (ROOT / "reporter").rglob("*.py"):
        spelled |= set(re.findall(r'"phase"\)?\s*(?::|==|!=)\s*"(\w+)"', path.read_text(encoding="utf-8")))
    assert spelled and spelled <= set(vocab.PHASES), spelled - set(vocab.PHASES)
