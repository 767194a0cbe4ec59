"""docs/recipes.md stays true: one recipe per kind of change, every place it lists exists and holds the names it
points at, and every file that spells a whole vocabulary is a place of that vocabulary's recipe."""

from __future__ import annotations

import re
import subprocess
from pathlib import Path
from typing import Dict, List, Sequence, Tuple

import pytest

from reporter import vocab
from reporter.commands import report

ROOT = Path(__file__).resolve().parents[2]
RECIPES = ROOT / "docs" / "recipes.md"
KINDS = ("check type", "entry point", "scenario", "report format", "install route")

# `path` followed by ` (`name`, `name`)`: a place and the names in it
_PLACE = re.compile(r"`(?P<path>[\w.<>/-]+(?:/|\.\w+))`(?:\s\((?P<names>`[^`]+`(?:,\s+`[^`]+`)*)\))?")


def recipes(text: str | None = None) -> Dict[str, str]:
    """'check type' -> the recipe's text, for each '## A new ...' section."""
    text = RECIPES.read_text(encoding="utf-8") if text is None else text
    out: Dict[str, str] = {}
    for section in re.split(r"^## ", text, flags=re.M)[1:]:
        title, _, body = section.partition("\n")
        kind = next((k for k in KINDS if title.startswith(f"A new {k}")), None)
        assert kind is not None, f"docs/recipes.md: a section that is not a recipe: {title!r}"
        out[kind] = body
    return out


def places(body: str) -> List[Tuple[str, List[str]]]:
    """(path, names) for every place a recipe lists."""
    return [(m.group("path"), re.findall(r"`([^`]+)`", m.group("names") or ""))
            for m in _PLACE.finditer(body) if "/" in m.group("path") or "." in m.group("path")]


def test_one_recipe_per_kind_of_change() -> None:
    assert list(recipes()) == list(KINDS)


@pytest.mark.parametrize("kind", KINDS)
def test_every_place_exists_with_the_names_it_points_at(kind: str) -> None:
    listed = places(recipes()[kind])
    assert len(listed) >= 6, f"the recipe for a new {kind} lists only {listed}"
    for path, names in listed:
        if "<" in path:  # a file the change creates: its folder exists
            folder = ROOT / path[:path.index("<")].rpartition("/")[0]
            assert folder.is_dir(), f"a new {kind}: {path}: no folder {folder}"
            assert not names, f"a new {kind}: {path} does not exist yet, it has no names"
            continue
        target = ROOT / path
        assert target.exists(), f"a new {kind}: {path} does not exist"
        if target.is_dir():
            continue
        text = target.read_text(encoding="utf-8")
        for name in names:
            assert name in text, f"a new {kind}: {path} has no {name!r}"


def test_the_parser_sees_places_and_names() -> None:
    listed = places("1. `reporter/vocab.py` (`CHECK_TYPES`,\n   `X`): add; `cext/checks/<check>.c`: new; the `word`;\n"
                    "`cext/a.c`\n(`Y`)")
    assert listed == [("reporter/vocab.py", ["CHECK_TYPES", "X"]), ("cext/checks/<check>.c", []), ("cext/a.c", ["Y"])]


def _code(path: Path, text: str) -> str:
    """The text without comments, for source files (a vocabulary named in a comment is not a copy of it)."""
    if path.suffix in (".c", ".h"):
        return re.sub(r"/\*.*?\*/|//[^\n]*", "", text, flags=re.S)
    if path.suffix == ".py":
        return re.sub(r"^\s*#[^\n]*", "", text, flags=re.M)
    return text


def tracked_files() -> List[Path]:
    try:
        names = subprocess.run(["git", "ls-files"], cwd=ROOT, capture_output=True, text=True, check=True).stdout
        return [ROOT / n for n in names.splitlines()]
    except (OSError, subprocess.CalledProcessError):  # not a git checkout: every file but build output
        return [p for p in ROOT.rglob("*") if p.is_file() and ".git" not in p.parts and "__pycache__" not in p.parts]


def spelling_all(words: Sequence[str]) -> List[str]:
    """Files outside tests/ whose code names every word of a vocabulary (a copy of the whole list)."""
    found = []
    for path in tracked_files():
        rel = path.relative_to(ROOT).as_posix()
        if rel.startswith("tests/") or rel == "docs/recipes.md" or not path.is_file():
            continue
        try:
            text = _code(path, path.read_text(encoding="utf-8"))
        except (UnicodeDecodeError, OSError):
            continue
        if all(re.search(rf"(?<![\w-]){re.escape(w)}(?![\w-])", text) for w in words):
            found.append(rel)
    return found


# which vocabularies each recipe must cover: every file that spells all of one is listed in the recipe
VOCABULARIES: Dict[str, List[Tuple[str, Sequence[str]]]] = {
    "check type": [("CHECK_TYPES", vocab.CHECK_TYPES),
                   ("McCheck", [f"MC_CHECK_{c.upper()}" for c in vocab.CHECK_TYPES])],
    "scenario": [("SCENARIOS", vocab.SCENARIOS)],
    "entry point": [("PHASES", vocab.PHASES), ("RATE_UNITS", vocab.RATE_UNITS)],
    "install route": [("INSTALL_METHODS", [m for m in vocab.INSTALL_METHODS if m != vocab.INSTALL_AUTO])],
    "report format": [("report's file options", ("--junit", "--markdown", "--sarif", "--json"))],
}


@pytest.mark.parametrize("kind", sorted(VOCABULARIES))
def test_every_copy_of_a_vocabulary_is_in_its_recipe(kind: str) -> None:
    listed = {path for path, _ in places(recipes()[kind])}
    for name, words in VOCABULARIES[kind]:
        copies = spelling_all(words)
        assert copies, f"nothing spells {name}: the check has nothing to hold"
        missing = [c for c in copies if c not in listed]
        assert not missing, f"these files spell all of {name}; the recipe for a new {kind} must list them: {missing}"


def test_the_copy_finder_sees_code_not_comments(tmp_path: Path) -> None:
    c = tmp_path / "x.c"
    assert _code(c, '/* "a" "b" */ x = "a"; // b\n') == ' x = "a"; \n'
    assert _code(tmp_path / "x.py", '# a b\nx = "a"\n') == '\nx = "a"\n'


# ---- renderers ---------------------------------------------------------------------------------------------

# report's file renderers -> the golden renderer (tests/unit/test_report_golden.py) that covers each
GOLDEN_OF = {"junit": "junit.xml", "markdown": "summary.md", "markdown_comment": "comment.md",
             "sarif": "report.sarif", "json": "summary.json"}
RENDERER_MODULES = ("junit", "markdown", "sarif", "jsonreport", "terminal", "annotate")


def test_every_file_renderer_has_golden_files() -> None:
    import test_report_golden  # tests/unit is on sys.path under pytest's rootdir-relative imports

    assert [r.option for r in report.RENDERERS] == list(GOLDEN_OF)
    for option, golden in GOLDEN_OF.items():
        assert golden in test_report_golden.RENDERERS, option
        for bug_set in test_report_golden.BUG_SETS:
            assert (test_report_golden.GOLDEN / bug_set / golden).is_file(), (bug_set, golden)


def test_renderers_do_not_import_each_other() -> None:
    from test_import_cycles import PACKAGE, import_graph

    graph = import_graph(PACKAGE)
    names = {f"reporter.{m}" for m in RENDERER_MODULES}
    for module in names:
        assert not graph[module] & names, f"{module} imports another renderer: {graph[module] & names}"


# ---- where the recipes are found ---------------------------------------------------------------------------


def test_the_recipes_are_linked_from_the_readme_and_the_architecture() -> None:
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    developing = readme.split("## Developing pg_ext_memcheck", 1)[1]
    assert "(docs/recipes.md)" in developing
    assert "(recipes.md)" in (ROOT / "docs" / "architecture.md").read_text(encoding="utf-8")
