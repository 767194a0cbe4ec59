"""GitHub annotations: the workflow-command format (escaping), file/line on the diff, caps per kind."""

from __future__ import annotations

import copy
import json
import re
import sys
from pathlib import Path
from typing import Dict, List, Tuple

import pytest

from reporter import annotate, ghoutputs
from reporter.ghoutputs import command
from reporter.merge import Leg, Merged, load_legs

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures"
LEGS = FIXTURES / "legs"
sys.path.insert(0, str(FIXTURES))
from example_legs import WORKSPACE, bug_line  # noqa: E402

TOP, NESTED, PLANNER = (str(bug_line(b)) for b in ("top_ctx_alloc", "nested_leak", "planner_ctx_leak"))

# GitHub's runner: `::name k=v,k=v::data`; data escapes % \r \n, property values also : and ,
_COMMAND = re.compile(r"^::(?P<name>[a-z-]+)(?: (?P<props>[^:]*))?::(?P<data>.*)$")


def unescape_data(text: str) -> str:
    return text.replace("%0D", "\r").replace("%0A", "\n").replace("%25", "%")


def unescape_property(text: str) -> str:
    return unescape_data(text.replace("%3A", ":").replace("%2C", ","))


def parse(line: str) -> Tuple[str, Dict[str, str], str]:
    """How the runner reads a workflow command (actions/runner ActionCommand.TryParseV2)."""
    m = _COMMAND.match(line)
    assert m, line
    props: Dict[str, str] = {}
    for pair in filter(None, (m.group("props") or "").split(",")):
        key, _, value = pair.partition("=")
        props[key] = unescape_property(value)
    return m.group("name"), props, unescape_data(m.group("data"))


@pytest.mark.parametrize("message,title,file", [
    ("100% leaked\r\nnext line", "a:b,c", "dir,with:odd%chars/x.c"),
    ("::error::injected", "t\n::warning::x", "f.c"),
    ("%0A is not a newline", "%3A", "%2C.c"),
])
def test_workflow_command_escaping_round_trips(message: str, title: str, file: str) -> None:
    line = command("error", message, title, file, 12)
    assert "\n" not in line and "\r" not in line  # one line: nothing can start a command of its own
    name, props, data = parse(line)
    assert (name, props, data) == ("error", {"file": file, "line": "12", "title": title}, message)


def test_command_without_properties() -> None:
    assert command("notice", "m") == "::notice::m"
    assert command("warning", "m", file="a.c") == "::warning file=a.c::m"  # no line without a file's line


def annotations(merged: Merged, fail_on: str = "error", root: str = WORKSPACE) -> List[str]:
    return ghoutputs.annotations(annotate.build(merged, merged.findings, fail_on, root))


def test_findings_are_annotated_on_their_source_line() -> None:
    lines = annotations(load_legs([LEGS / "example_pg15", LEGS / "example_pg18"]))
    parsed = [parse(line) for line in lines]
    # worst first (all ERROR; the most bytes first): top_ctx_alloc, nested_leak, planner_ctx_leak
    assert [(n, p.get("file"), p.get("line")) for n, p, _ in parsed] == [
        ("error", "buggy_pg_ext.c", TOP), ("error", "buggy_pg_ext.c", NESTED), ("error", "buggy_pg_ext.c", PLANNER),
    ]
    _, props, data = parsed[2]
    assert props["title"] == "pg-ext-memcheck: ERROR context_leak in BuggyPlannerLeakCtx"
    assert data.splitlines()[1] == (f"Allocated by buggy_planner() at buggy_pg_ext.c:{PLANNER}, entered from planner.")
    assert data.splitlines()[2].endswith("README.md#context_leak")


def test_paths_are_relative_to_the_workspace() -> None:
    merged = load_legs([LEGS / "topctx_pg18"])
    _, props, _ = parse(annotations(merged, root=WORKSPACE + "/")[0])
    assert props["file"] == "buggy_pg_ext.c"
    # a site outside the repository (another checkout, a header of PostgreSQL) is annotated without a file,
    # and named by its file name alone: no absolute path of another machine or a build directory
    _, props, data = parse(annotations(merged, root="/somewhere/else")[0])
    assert "file" not in props and "line" not in props
    assert f"at buggy_pg_ext.c:{TOP}" in data and WORKSPACE not in data


def test_below_fail_on_is_a_warning() -> None:
    merged = load_legs([LEGS / "topctx_pg18"])
    assert {parse(x)[0] for x in annotations(merged, "never")} == {"warning"}


def test_broken_workloads_and_missing_legs_come_first() -> None:
    merged = load_legs([LEGS / "example_pg18", LEGS / "crash_pg17", LEGS / "missing_leg"])
    parsed = [parse(x) for x in annotations(merged)]
    assert parsed[0][2].startswith("no results from") and "crashes_backend crashed" in parsed[1][1]["title"]
    assert parsed[2][1]["file"] == "buggy_pg_ext.c"


def test_caps_per_kind_with_one_notice(tmp_path: Path) -> None:
    doc = json.loads((LEGS / "example_pg18" / "results.json").read_text())
    w = doc["workloads"][0]
    template = next(v for v in w["violations"] if v["sites"] and v["check_type"] == "context_leak")
    w["violations"] = []
    for i in range(25):  # 25 distinct ERROR findings (each its own line), 13 INFO ones
        v = copy.deepcopy(template)
        v.update(finding_id=None, severity="ERROR" if i < 12 else "INFO", context_path=f"TopMemoryContext/C{i}x")
        v["sites"][0]["line"] = 100 + i
        w["violations"].append(v)
    lines = annotations(Merged([Leg(tmp_path, doc)]))
    kinds = [parse(x)[0] for x in lines]
    assert kinds == ["error"] * 10 + ["warning"] * 10 + ["notice"]
    # 12 + the 3 bugs of the other workloads are 15 errors; 13 INFO findings are warnings
    assert parse(lines[-1])[2] == "5 errors and 3 warnings more not shown as annotations; see the job summary."


def test_hostile_text_is_cleaned_in_annotations(tmp_path: Path) -> None:
    doc = json.loads((LEGS / "topctx_pg18" / "results.json").read_text())
    doc["workloads"] = doc["workloads"][:1]
    v = next(v for v in doc["workloads"][0]["violations"] if v["check_type"] == "context_leak")
    v["context_path"] = "TopMemoryContext/evil\x1b[31m\u202ename\n::error::pwned"
    v["sites"][0]["function"] = "fn\u202e\x1b[2J"
    doc["workloads"][0]["violations"] = [v]
    lines = annotations(Merged([Leg(tmp_path, doc)]))
    text = "\n".join(lines)
    assert "\x1b" not in text and "\u202e" not in text
    assert not any(line.startswith("::error::pwned") for line in lines)
    name, props, data = parse(lines[0])
    assert "evil[Nmname | ::error::pwned" in data and "in evil[Nmname | ::error::pwned" in props["title"]
