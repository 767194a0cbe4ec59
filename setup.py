"""setuptools glue for one thing pyproject.toml cannot say: the wheel carries the hook library's sources (cext/,
sql/) and the bundled example (examples/buggy_pg_ext) as package data under reporter/bundled/, so that an
installed pg-ext-memcheck (pip, pipx) builds them from any working directory (reporter/build.py finds them
there). An editable install uses the checkout's own directories instead, so nothing is copied for it."""

import shutil
from pathlib import Path

from setuptools import setup
from setuptools.command.build_py import build_py

ROOT = Path(__file__).resolve().parent
BUNDLED = ("cext", "sql", "examples/buggy_pg_ext")
SKIP = shutil.ignore_patterns("*.o", "*.so", "*.bc", ".deps", "results", "regression.*", "memcheck-results",
                              "__pycache__")


class BuildPyWithSources(build_py):
    def run(self) -> None:
        super().run()
        if getattr(self, "editable_mode", False):
            return
        target = Path(self.build_lib) / "reporter" / "bundled"
        for rel in BUNDLED:
            shutil.rmtree(target / rel, ignore_errors=True)
            shutil.copytree(ROOT / rel, target / rel, ignore=SKIP)


setup(cmdclass={"build_py": BuildPyWithSources})
