"""The worker groups of a parallel test run (tests/parallel.py)."""

from __future__ import annotations

import pytest

from tests.parallel import parallel_group

IDS = ["pg15", "pg13", "pg16", "pg17", "pg18"]


@pytest.mark.parametrize("nodeid,group", [
    ("tests/integration/test_hooklib.py::test_x[order-after-pg13-func_malloc_leak]", "postgresql-pg13"),
    ("tests/integration/test_matrix.py::test_s[pg18]", "postgresql-pg18"),
    ("tests/integration/test_engine_cli_errors.py::test_m[pg16-bad-yaml]", "postgresql-pg16"),
    ("tests/integration/test_hooklib.py::test_x[order-after-pg15-func_malloc_leak]",
     "tests/integration/test_hooklib.py"),
    ("tests/integration/test_engine_run.py::test_build_command[pg15]", "tests/integration/test_engine_run.py"),
    ("tests/action/test_action_e2e.py::test_every_phase_ran", "tests/action/test_action_e2e.py"),
    ("tests/integration/test_cassert.py::test_write_past_end_is_memory_corruption", "postgresql-cassert"),
    ("tests/action/test_action_compare.py::test_cassert_source_build", "postgresql-cassert"),
    ("tests/unit/test_vocab.py::test_a[pg13]", "postgresql-pg13"),
    ("tests/unit/test_vocab.py::test_a", "tests/unit/test_vocab.py::test_a"),
    ("tests/integration/test_x.py::test_y[pg130]", "tests/integration/test_x.py"),  # not the id pg13
    ("tests/integration/test_x.py::test_y[apg13]", "tests/integration/test_x.py"),
])
def test_groups(nodeid: str, group: str) -> None:
    assert parallel_group(nodeid, IDS) == group


def test_with_one_major_everything_is_grouped_by_module() -> None:
    assert parallel_group("tests/integration/test_matrix.py::test_s[pg15]", ["pg15"]) == \
        "tests/integration/test_matrix.py"
