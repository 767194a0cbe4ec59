"""`pg-ext-memcheck report` end to end from files: exit codes, files, runner outputs, PR comment."""

from __future__ import annotations

import json
import re
import shutil
import sys
from pathlib import Path
from typing import Iterator, List

import pytest

from reporter import cli
from tests.action.harness import parse_file_commands

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from fakegithub import FakeGitHub, FakeState  # noqa: E402

LEGS = Path(__file__).resolve().parents[1] / "fixtures" / "legs"
TOKEN = "ghs_command_token_do_not_print"
LEG_SHA = "0123456789abcdef0123456789abcdef01234567"  # the head_sha the fixture legs record
GH_VARS = ("GITHUB_ACTIONS", "GITHUB_OUTPUT", "GITHUB_STEP_SUMMARY", "GITHUB_EVENT_PATH", "GITHUB_TOKEN",
           "GITHUB_REPOSITORY", "GITHUB_API_URL", "GITHUB_RUN_ID", "GITHUB_RUN_ATTEMPT", "GITHUB_WORKFLOW",
           "GITHUB_SERVER_URL")


@pytest.fixture(autouse=True)
def clean_env(monkeypatch: pytest.MonkeyPatch) -> None:
    for var in GH_VARS:
        monkeypatch.delenv(var, raising=False)


def run(*args: str) -> int:
    return cli.main(["report", *args])


def legs(*names: str) -> List[str]:
    return [str(LEGS / n) for n in names]


@pytest.mark.parametrize("names,extra,code", [
    (("clean_pg15", "clean_pg18"), (), 0),
    (("violations_pg15",), (), 1),
    (("violations_pg15",), ("--fail-on", "never"), 0),
    (("errors_pg16",), (), 1),
    (("crash_pg17",), (), 1),
    (("empty_pg15",), ("--fail-on", "never"), 1),
    (("clean_pg15", "missing_leg"), (), 1),
])
def test_exit_codes(names: tuple, extra: tuple, code: int) -> None:
    assert run(*legs(*names), *extra) == code


@pytest.mark.parametrize("fail_on,code", [(None, 0), ("error", 0), ("warning", 1), ("info", 1), ("never", 0)])
def test_fail_on_threshold_levels(tmp_path: Path, fail_on: str, code: int) -> None:
    doc = json.loads((LEGS / "violations_pg18" / "results.json").read_text())
    for w in doc["workloads"]:  # warnings and infos only
        w["violations"] = [v for v in w["violations"] if v["severity"] != "ERROR" and not v["suppressed_by"]]
    (tmp_path / "leg").mkdir()
    (tmp_path / "leg" / "results.json").write_text(json.dumps(doc))
    extra = ["--fail-on", fail_on] if fail_on else []
    assert run(str(tmp_path / "leg"), *extra) == code


def test_fail_on_defaults_to_the_results(tmp_path: Path) -> None:
    doc = json.loads((LEGS / "violations_pg18" / "results.json").read_text())
    doc["fail_on"] = "never"  # memcheck.yml said never; the command honours it unless overridden
    (tmp_path / "leg").mkdir()
    (tmp_path / "leg" / "results.json").write_text(json.dumps(doc))
    assert run(str(tmp_path / "leg")) == 0
    assert run(str(tmp_path / "leg"), "--fail-on", "error") == 1


@pytest.mark.parametrize("names,needle", [
    (("no_such_leg",), "no_such_leg: no such file or directory"),
    (("invalid",), "invalid/results.json: not a valid results file"),
    (("clean_pg15", "duplicate_pg15"), "a second result for PostgreSQL 15"),
])
def test_input_errors_exit_2(names: tuple, needle: str, capsys: pytest.CaptureFixture[str]) -> None:
    assert run(*legs(*names)) == 2
    assert needle in capsys.readouterr().err


def test_usage_error_for_bad_fail_on(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit, match="^2$"):  # argparse's usage error
        run(*legs("clean_pg15"), "--fail-on", "sometimes")
    assert "argument --fail-on: invalid choice: 'sometimes'" in capsys.readouterr().err


def test_missing_leg_is_named(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    md = tmp_path / "r.md"
    assert run(*legs("clean_pg15", "missing_leg"), "--markdown", str(md)) == 1
    assert "missing_leg: no results.json" in capsys.readouterr().err
    assert "Missing leg: missing&#95;leg" in md.read_text()


def test_files_outputs_and_summary(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    out, summary = tmp_path / "out.txt", tmp_path / "summary.md"
    monkeypatch.setenv("GITHUB_OUTPUT", str(out))
    monkeypatch.setenv("GITHUB_STEP_SUMMARY", str(summary))
    junit, md = tmp_path / "r" / "junit.xml", tmp_path / "r" / "report.md"
    code = run(*legs("violations_pg15", "violations_pg18"), "--junit", str(junit), "--markdown", str(md),
               "--job-summary", "on")
    assert code == 1
    values = parse_file_commands(out.read_text())
    # 9 rows on two majors are 5 findings: errors, warnings and infos count findings
    assert values == {
        "findings": "5", "violations": "9", "errors": "2", "warnings": "2", "infos": "1", "max-severity": "ERROR",
        "conclusion": "failure", "junit-path": str(junit), "markdown-path": str(md), "comment-url": "",
        "sarif-path": "", "json-path": "",
        "new-findings": "", "worse-findings": "", "fixed-findings": "", "compared-with": "",
        "reasons": "2 finding(s) at or above error; worst is ERROR",
    }
    assert junit.read_text().startswith("<?xml")
    assert summary.read_text() == md.read_text()


def test_clean_outputs(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    out = tmp_path / "out.txt"
    monkeypatch.setenv("GITHUB_OUTPUT", str(out))
    assert run(*legs("clean_pg15")) == 0
    values = parse_file_commands(out.read_text())
    assert values["conclusion"] == "success" and values["max-severity"] == "none"
    assert values["violations"] == "0"


def test_step_summary_needs_the_variable() -> None:
    assert run(*legs("clean_pg15"), "--job-summary", "on") == 2


def test_annotations_capped(monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str],
                            tmp_path: Path) -> None:
    doc = json.loads((LEGS / "violations_pg15" / "results.json").read_text())
    v = doc["workloads"][1]["violations"][0]
    doc["workloads"][1]["violations"] = [dict(v, context=f"c{i}", context_path=f"T/c{i}") for i in range(30)]
    (tmp_path / "leg").mkdir()
    (tmp_path / "leg" / "results.json").write_text(json.dumps(doc))
    monkeypatch.setenv("GITHUB_ACTIONS", "true")
    run(str(tmp_path / "leg"))
    lines = capsys.readouterr().out.splitlines()
    assert len([x for x in lines if x.startswith("::error")]) == 10  # 30 distinct ERROR findings, capped
    assert len([x for x in lines if x.startswith("::warning")]) == 2  # the WARNING and INFO findings
    assert any(x.startswith("::notice") and "21 errors more not shown" in x for x in lines)


# ---- PR comment through the command --------------------------------------------------------------------


@pytest.fixture
def github(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Iterator[FakeGitHub]:
    with FakeGitHub(FakeState(token=TOKEN, prs={42, 77})) as gh:
        monkeypatch.setenv("GITHUB_API_URL", gh.url)
        monkeypatch.setenv("GITHUB_TOKEN", TOKEN)
        monkeypatch.setenv("GITHUB_REPOSITORY", gh.state.repository)
        monkeypatch.setenv("GITHUB_RUN_ID", "9001")  # the run the legs' results.json say they come from
        monkeypatch.setenv("GITHUB_RUN_ATTEMPT", "1")
        monkeypatch.setenv("GITHUB_WORKFLOW", "memcheck CI")
        monkeypatch.setenv("GITHUB_OUTPUT", str(tmp_path / "out.txt"))
        monkeypatch.setenv("GITHUB_STEP_SUMMARY", str(tmp_path / "summary.md"))
        event = tmp_path / "event.json"
        event.write_text(json.dumps({"pull_request": {"number": 42, "head": {"sha": LEG_SHA}}}))
        monkeypatch.setenv("GITHUB_EVENT_PATH", str(event))
        yield gh


def test_comment_created_once_for_the_matrix(github: FakeGitHub, tmp_path: Path,
                                             capsys: pytest.CaptureFixture[str]) -> None:
    args = [*legs("violations_pg15", "violations_pg18"), "--comment", "auto", "--job-summary", "on"]
    assert run(*args) == 1
    assert run(*args) == 1  # publishing again updates, never adds
    bodies = github.state.all_bodies(42)
    assert len(bodies) == 1
    assert re.match(r"<!-- pg-ext-memcheck:memcheck_CI run=9001 attempt=1 digest=[0-9a-f]{16} -->\n## ❌", bodies[0])
    assert len(bodies[0]) < 60_100
    values = parse_file_commands((tmp_path / "out.txt").read_text())
    assert values["comment-url"].endswith(f"#issuecomment-{github.state.comments[42][0]['id']}")
    captured = capsys.readouterr()
    assert TOKEN not in captured.out + captured.err


def test_bad_and_duplicate_legs_are_skipped_and_the_others_published(
        github: FakeGitHub, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    md = tmp_path / "report.md"
    args = [*legs("violations_pg15", "duplicate_pg15", "invalid", "violations_pg18"), "--comment", "auto",
            "--job-summary", "on", "--markdown", str(md)]
    assert run(*args) == 2  # bad input, named: not "findings"
    err = capsys.readouterr().err
    assert "a second result for PostgreSQL 15" in err and "invalid/results.json: not a valid results file" in err
    # the good legs are still published, with the rejected ones named
    [body] = github.state.all_bodies(42)
    for text in (body, md.read_text(), (tmp_path / "summary.md").read_text()):
        assert "15." in text and "18." in text
        assert "Rejected: " in text and "duplicate&#95;pg15" in text
    values = parse_file_commands((tmp_path / "out.txt").read_text())
    assert values["conclusion"] == "failure"


def test_no_pr_from_the_results_on_a_push(github: FakeGitHub, monkeypatch: pytest.MonkeyPatch,
                                          capsys: pytest.CaptureFixture[str]) -> None:
    # The legs say PR 42, but a push event has no pull request: results never choose where to post.
    monkeypatch.delenv("GITHUB_EVENT_PATH")
    assert run(*legs("clean_pg15"), "--comment", "auto", "--comment-key", "k") == 0
    assert github.state.all_bodies(42) == []
    assert "no pull request number" in capsys.readouterr().out


def test_read_only_token_degrades_without_failing(github: FakeGitHub, tmp_path: Path,
                                                  capsys: pytest.CaptureFixture[str]) -> None:
    github.state.writable = False
    assert run(*legs("clean_pg15"), "--comment", "auto", "--job-summary", "on") == 0
    out = capsys.readouterr().out
    notices = [line for line in out.splitlines() if line.startswith("::notice::")]
    assert len(notices) == 1 and "read-only" in notices[0]
    assert "read-only" in (tmp_path / "summary.md").read_text()
    assert parse_file_commands((tmp_path / "out.txt").read_text())["comment-url"] == ""


def test_no_pr_degrades(github: FakeGitHub, monkeypatch: pytest.MonkeyPatch, tmp_path: Path,
                        capsys: pytest.CaptureFixture[str]) -> None:
    event = tmp_path / "push.json"
    event.write_text(json.dumps({"ref": "refs/heads/main"}))
    monkeypatch.setenv("GITHUB_EVENT_PATH", str(event))
    doc = json.loads((LEGS / "clean_pg15" / "results.json").read_text())
    doc["github"]["pr_number"] = None
    (tmp_path / "leg").mkdir()
    (tmp_path / "leg" / "results.json").write_text(json.dumps(doc))
    assert run(str(tmp_path / "leg"), "--comment", "auto") == 0
    out = capsys.readouterr().out
    assert "pg-ext-memcheck: no pull request number" in out
    assert "::notice" not in out  # a push is not worth an annotation on every run
    assert not [r for r in github.state.requests if r.method != "GET"]


def test_baseline_option_marks_new_findings(tmp_path: Path) -> None:
    md = tmp_path / "r.md"
    # --baseline before the positional DIR must not swallow it
    code = run("--baseline", str(LEGS / "baseline"), *legs("violations_pg15"), "--markdown", str(md))
    assert code == 1
    text = md.read_text()
    assert "### What this change did\n\nCompared with the --baseline results on PostgreSQL 15" in text
    assert "1 new, 0 worse, 4 unchanged, 1 fixed." in text
    rows = [line for line in text.splitlines() if line.startswith("| ") and "[" in line]
    assert rows[0].startswith("| ❌ ERROR | 🆕 [context_leak] in BuggyPlannerLeakCtx |")
    # the other ERROR is on the base too: not failing (fail-on-scope new), so no ❌
    assert [r.split(" | ")[0] for r in rows] == ["| ❌ ERROR", "| 🟥 ERROR", "| 🟧 WARNING", "| 🟧 WARNING",
                                                 "| 🟦 INFO"]
    assert text.startswith("## ❌ pg-ext-memcheck: this change adds 1 finding (1 ERROR)\n")
    # with a base, fail-on judges only what is new (default fail-on-scope new); all judges everything
    assert "- 1 new or worse finding(s) at or above error; worst is ERROR" in text
    code = run("--baseline", str(LEGS / "baseline"), *legs("violations_pg15"), "--markdown", str(md),
               "--fail-on-scope", "all")
    assert code == 1 and "- 2 finding(s) at or above error; worst is ERROR" in md.read_text()


# ---- findings, the comment file, the comment key, hostile text -------------------------------------------


def test_report_prints_the_findings(capsys: pytest.CaptureFixture[str]) -> None:
    assert run(*legs("example_pg15", "example_pg18")) == 1
    out = capsys.readouterr().out
    assert out.startswith("pg-ext-memcheck 0.2.0 on PostgreSQL 18.1, 15.18 (fail-on: error)\n")
    assert out.count(" ERROR   context_leak ") == 3
    assert "pg-ext-memcheck: failure: 3 finding(s) (3 ERROR, 0 WARNING, 0 INFO) from 34 violation(s)" in out
    assert "\x1b" not in out  # not a terminal: no colour


def test_markdown_comment_writes_the_comment_variant(tmp_path: Path) -> None:
    comment, summary = tmp_path / "c" / "comment.md", tmp_path / "summary.md"
    code = run(*legs("example_pg15", "example_pg18"), "--markdown-comment", str(comment), "--markdown", str(summary))
    assert code == 1
    text = comment.read_text()
    assert text.startswith("## ❌ pg-ext-memcheck: 3 findings (3 ERROR)")
    assert "- … 10 more rows in results.json" in text  # the comment's shorter details
    assert "more evidence rows" not in summary.read_text()  # the job summary has room for all of them


@pytest.mark.parametrize("args,workflow,needle", [
    (("--comment-key", "a--b"), "memcheck", "--comment-key 'a--b' cannot identify the PR comment"),
    (("--comment-key", "x\u202ey"), "memcheck", "--comment-key 'x\\u202ey' cannot identify"),  # shown escaped
    ((), "CI <nightly>", "the default comment key (the workflow name, GITHUB_WORKFLOW) 'CI <nightly>'"),
    ((), "w" * 101, "cannot identify the PR comment"),
    ((), "bell\x07", "the default comment key"),
])
def test_comment_key_is_validated(monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str],
                                  args: tuple, workflow: str, needle: str) -> None:
    monkeypatch.setenv("GITHUB_WORKFLOW", workflow)
    assert run(*legs("clean_pg15"), "--comment", "auto", *args) == 2
    assert needle in capsys.readouterr().err


def test_hostile_text_is_stripped_and_capped_everywhere(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                        capsys: pytest.CaptureFixture[str]) -> None:
    evil = "\x1b[31m\u202e\x07\u2066"
    doc = json.loads((LEGS / "example_pg18" / "results.json").read_text())
    doc["postgresql"]["version"] = f"18.1{evil}"
    doc["tool"]["version"] = f"0.2{evil}"
    w = doc["workloads"][0]
    w["name"] = f"select{evil}"
    v = w["violations"][0]
    v["context_path"] = f"TopMemoryContext/Ctx{evil}"
    v["detail"] = f"detail{evil}" + "d" * 1_000_000
    v["sites"][0]["function"] = f"fn{evil}"
    broken = dict(doc["workloads"][1], name=f"broken{evil}", status="error", violations=[],
                  error={"message": f"boom{evil}" + "m" * 1_000_000, "sqlstate": f"XX{evil}"},
                  log_excerpt="LOG " * 500_000)
    doc["workloads"].append(broken)
    (tmp_path / "leg").mkdir()
    (tmp_path / "leg" / "results.json").write_text(json.dumps(doc))
    monkeypatch.setenv("GITHUB_ACTIONS", "true")
    files = {name: tmp_path / name for name in ("junit.xml", "summary.md", "comment.md")}
    assert run(str(tmp_path / "leg"), "--junit", str(files["junit.xml"]), "--markdown", str(files["summary.md"]),
               "--markdown-comment", str(files["comment.md"])) == 1
    outputs = {name: path.read_text() for name, path in files.items()}
    outputs["stdout"] = capsys.readouterr().out
    for name, text in outputs.items():
        for ch in "\x1b\u202e\x07\u2066":
            assert ch not in text, (name, repr(ch))
    assert "PostgreSQL 18.1[31m" in outputs["stdout"] and "18.1&#91;31m" in outputs["summary.md"]
    assert len(outputs["comment.md"]) < 60_000
    assert len(outputs["summary.md"].encode()) < 900 * 1024
    # JUnit: one-line messages capped, bodies capped
    from lxml import etree
    root = etree.fromstring(outputs["junit.xml"].encode("utf-8"))
    error = root.find(".//testcase/error")
    assert len(error.get("message")) < 400 and len(error.text) <= 64 * 1024
    assert all(len(t) <= 64 * 1024 for t in root.xpath("//failure/text()|//system-out/text()"))
    annotations = [line for line in outputs["stdout"].splitlines() if line.startswith("::")]
    assert annotations and all(len(line) < 2000 for line in annotations)


def test_notices_about_odd_leg_names_are_cleaned(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    odd = tmp_path / "artifacts" / "pg-ext-memcheck-\x1b]0;x\x07\u202eleg"
    odd.mkdir(parents=True)  # an empty artifact: a missing leg
    shutil.copytree(LEGS / "clean_pg15", tmp_path / "artifacts" / "pg-ext-memcheck-pg15")
    assert run(str(tmp_path / "artifacts"), "--annotations", "on") == 1
    captured = capsys.readouterr()
    assert "no results.json" in captured.err and "]0;xleg" in captured.err
    for ch in "\x1b\x07\u202e":
        assert ch not in captured.err + captured.out
