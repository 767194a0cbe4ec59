"""The configuration of an extension without a memcheck.yml: its own regression suite, as `make installcheck`
runs it.

From the extension's Makefile (read by make, see reporter/pgxs.py): the extension is EXTENSION's first name
(else the library's); it is preloaded when the Makefile builds a library of that name (MODULES or MODULE_big),
so that its hooks are followed from the first statement; the one workload is `regress: true`. The text is the
memcheck.yml a user would write, loaded by the same loader, so it is checked and described like one.
"""

from __future__ import annotations

from pathlib import Path
from typing import Optional

from reporter import config, exttree, pgxs

CONFIG_NAME = "memcheck.yml"
# How results.json and messages name a configuration that has no file.
DEFAULT_LABEL = "(no memcheck.yml: the extension's regression suite)"


def document(name: str, preload: bool, create: Optional[bool]) -> str:
    lines = [
        "# pg-ext-memcheck's default: no memcheck.yml, so the extension's own `make installcheck` tests run,",
        "# each test file a workload.",
        "extension:",
        "  path: .",
        f"  name: {name}",
        f"  preload: {'true' if preload else 'false'}",
    ]
    if create is not None:
        lines.append(f"  create: {'true' if create else 'false'}")
    lines += ["workloads:", "  - regress: true", ""]
    return "\n".join(lines)


def for_directory(directory: Path, pg_config: str) -> config.Config:
    """The default configuration of the PGXS extension in `directory`; ConfigError naming what is there instead
    (reporter/exttree.py) when it is not one, before anything is written anywhere."""
    directory = Path(directory).resolve()
    where = directory / DEFAULT_LABEL
    instead = exttree.found_instead(directory)
    if instead is not None:
        raise config.ConfigError([f"no {CONFIG_NAME}, and {exttree.not_an_extension(instead)}"])
    try:
        found = pgxs.makefile_vars(directory, pg_config, ["PGXS", "EXTENSION", "MODULES", "MODULE_big"])
    except pgxs.PgxsError as exc:
        raise config.ConfigError([f"{where}: {exc}\n{exttree.ADVICE}"]) from None
    if not found["PGXS"]:
        raise config.ConfigError([f"no {CONFIG_NAME}, and " + exttree.not_an_extension(
            f"{exttree.makefile(directory)} does not include PGXS (`PGXS := $(shell $(PG_CONFIG) --pgxs)` and "
            "`include $(PGXS)`, also with USE_PGXS=1)")])
    extensions = pgxs.words(found["EXTENSION"])
    libraries = pgxs.words(found["MODULE_big"]) + pgxs.words(found["MODULES"])
    if extensions:
        name, create = extensions[0], None
    elif libraries:
        name, create = libraries[0], False
    else:
        raise config.ConfigError([f"no {CONFIG_NAME}, and " + exttree.not_an_extension(
            f"{exttree.makefile(directory)} sets neither EXTENSION nor MODULES nor MODULE_big, so there is no "
            "extension to measure")])
    return config.load(where, text=document(name, name in libraries, create))


def resolve(explicit: Optional[Path], directory: Path, pg_config: str) -> config.Config:
    """memcheck.yml when given or present in `directory`, else the default for `directory`."""
    if explicit is not None:
        return config.load(explicit)
    local = Path(directory) / CONFIG_NAME
    if local.is_file():
        return config.load(local)
    return for_directory(directory, pg_config)
