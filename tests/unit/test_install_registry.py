"""The install routes share one interface (install.Route) and one registry (provision.ROUTES): the method list,
--help, --cassert, the cache prefixes and the action's input check all come from it."""

from __future__ import annotations

from pathlib import Path
from typing import Any, Dict

import pytest

from reporter import inputs, install, provision, vocab
from reporter.cli import build_parser


def test_the_registry_holds_every_method_but_auto_in_the_vocabulary_order() -> None:
    assert provision.METHODS == vocab.INSTALL_METHODS
    assert (vocab.INSTALL_AUTO, *provision.ROUTES) == vocab.INSTALL_METHODS
    assert inputs.INSTALL_METHODS == (*vocab.INSTALL_METHODS, vocab.INSTALL_NONE)
    for name, route in provision.ROUTES.items():
        assert isinstance(route, install.Route) and route.name == name and route.summary


def test_install_postgres_offers_the_registry() -> None:
    sub = build_parser()._subparsers._group_actions[0].choices["install-postgres"]  # type: ignore[union-attr]
    method = next(a for a in sub._actions if a.dest == "method")
    assert tuple(method.choices) == provision.METHODS and method.default == vocab.INSTALL_AUTO
    for name, route in provision.ROUTES.items():
        assert f"{name}: {route.summary}" in method.help


def test_cache_prefixes_are_the_routes_own_and_never_shared(tmp_path: Path) -> None:
    prefixes: Dict[Any, str] = {}
    for name, route in provision.ROUTES.items():
        for major in (13, 16, 17):
            for cassert in (False, True) if route.builds_cassert else (False,):
                prefix = route.prefix(tmp_path, major, cassert)
                if prefix is None:
                    assert not route.action_cache, name  # nothing to keep between runs
                    continue
                assert prefix.parent == tmp_path / "postgresql", name
                assert prefix not in prefixes, f"{name} and {prefixes.get(prefix)} share {prefix}"
                prefixes[prefix] = name
    assert {"source", "wheel", "chroot"} == set(prefixes.values())


def test_cached_reads_the_stamp_under_the_routes_prefix(tmp_path: Path) -> None:
    route = provision.ROUTES["wheel"]
    prefix = route.prefix(tmp_path, 16)
    assert prefix is not None and route.cached(tmp_path, 16) is None
    pg_config = prefix / "bin" / "pg_config"
    pg_config.parent.mkdir(parents=True)
    pg_config.write_text("#!/bin/sh\n")
    pg_config.chmod(0o755)
    (prefix / install.STAMP).write_text(f'{{"major": 16, "pg_config": "{pg_config}"}}')
    assert provision.cached(16, "wheel", tmp_path) == str(pg_config)
    assert provision.cached(16, "chroot", tmp_path) is None and provision.cached(16, "debian", tmp_path) is None


def test_cassert_comes_from_the_routes_that_build_it() -> None:
    assert provision.cassert_routes() == ["source"]
    assert provision.cassert_problem("source") is None
    for name in ("debian", "pgdg", "wheel", "chroot", "auto"):
        assert provision.cassert_problem(name) == "--cassert needs --method source (packaged builds have " \
                                                  "assertions off)"
    with pytest.raises(ValueError, match="--cassert needs --method source"):
        provision.install_with(16, "wheel", cassert=True)


def test_install_with_dispatches_through_the_registry(monkeypatch: pytest.MonkeyPatch) -> None:
    calls = []

    class Fake(install.Route):
        name = "debian"
        summary = "fake"

        def install(self, major: int, cassert: bool = False) -> str:
            calls.append((major, cassert))
            return f"/fake/{major}/pg_config"

    monkeypatch.setitem(provision.ROUTES, "debian", Fake())
    assert provision.install_with(15, "debian") == "/fake/15/pg_config" and calls == [(15, False)]
    with pytest.raises(ValueError, match="unknown method 'brew'; choose one of auto, debian"):
        provision.install_with(15, "brew")


def test_the_action_caches_what_the_route_says(tmp_path: Path) -> None:
    env = {"RUNNER_OS": "Linux", "RUNNER_ARCH": "X64"}
    source = provision.ROUTES["source"]
    assert source.action_cache
    path = inputs.postgres_cache_path(str(tmp_path), "15", True, "source")
    assert path == str(source.prefix(tmp_path, 15, True)) == str(tmp_path / "postgresql" / "15-cassert")
    key = inputs.postgres_cache_key(env, "15", True, "source")
    assert key.startswith("pg-ext-memcheck-postgresql-Linux-X64-15-cassert-")
    assert not any(r.action_cache for n, r in provision.ROUTES.items() if n != "source")
