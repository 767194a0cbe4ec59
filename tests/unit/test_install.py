"""install-postgres without the network: command construction, apt source handling, cache, stamp and lock."""

from __future__ import annotations

import argparse
import json
import os
import re
import subprocess
import threading
from pathlib import Path
from typing import List

import pytest

from reporter import cli, install, provision
from reporter.commands import install_postgres
from reporter.errors import UsageError

DEB822 = """\
Types: deb
# http://snapshot.example/archive/debian/20250520T000000Z
URIs: http://mirror.example/debian
Suites: bookworm bookworm-updates
Components: main
Signed-By: /usr/share/keyrings/debian-archive-keyring.gpg

Types: deb
URIs: http://mirror.example/debian-security
Suites: bookworm-security
Components: main
Signed-By: /usr/share/keyrings/debian-archive-keyring.gpg
"""


# ------------------------------------------------------------------------------------------ arguments


@pytest.mark.parametrize("text,major", [("13", 13), ("18", 18), (" 15 ", 15), ("99", 99)])
def test_parse_major(text: str, major: int) -> None:
    assert install.parse_major(text) == major


@pytest.mark.parametrize(
    "text,message",
    [("9", "not supported"), ("12", "not supported"), ("abc", "major version"), ("15.2", "major version"),
     ("", "major version")],
)
def test_parse_major_rejects(text: str, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        install.parse_major(text)


def parse(argv: List[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser()
    install_postgres.add_parser(parser.add_subparsers())
    return parser.parse_args(argv)


def test_parser_sets_func_and_defaults() -> None:
    args = parse(["install-postgres", "15"])
    assert args.func is install_postgres.main
    assert (args.version, args.method, args.cassert) == ("15", "auto", False)
    args = parse(["install-postgres", "13", "--method", "source", "--cassert"])
    assert (args.method, args.cassert) == ("source", True)


def test_unknown_method_is_an_argparse_error() -> None:
    with pytest.raises(SystemExit, match="^2$"):  # argparse's usage error
        parse(["install-postgres", "15", "--method", "brew"])


@pytest.mark.parametrize(
    "argv, message",
    [(["install-postgres", "nine"], "VERSION must be a PostgreSQL major version number such as 15, not 'nine'"),
     (["install-postgres", "9", "--method", "source"], "PostgreSQL 9 is not supported"),
     (["install-postgres", "15", "--method", "debian", "--cassert"], "--cassert needs --method source")],
)
def test_bad_input_is_a_usage_error(argv: List[str], message: str) -> None:
    args = parse(argv)
    with pytest.raises(UsageError, match=re.escape(message)):
        args.func(args)


def test_main_prints_pg_config_last_and_failures_exit_2(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setattr(provision, "install_with", lambda major, method, cassert: f"/pg/{major}/{method}/pg_config")
    args = parse(["install-postgres", "13", "--method", "source"])
    assert args.func(args) == 0
    assert capsys.readouterr().out.splitlines()[-1] == "/pg/13/source/pg_config"

    def fail(major: int, method: str, cassert: bool) -> str:
        raise install.InstallError("no such thing; try --method source")

    monkeypatch.setattr(provision, "install_with", fail)
    # Not a finding: the CLI boundary makes it exit 2 with what was asked for.
    assert cli.main(["install-postgres", "13", "--method", "source"]) == 2
    out, err = capsys.readouterr()
    assert out == ""
    assert "pg-ext-memcheck: error: install-postgres 13 --method source: no such thing; try --method source" in err


# ---------------------------------------------------------------------------------------------- cache


def test_cache_dir_choice() -> None:
    assert install.cache_dir({"PG_EXT_MEMCHECK_CACHE": "/srv/c"}, root=True) == Path("/srv/c")
    assert install.cache_dir({"HOME": "/root"}, root=True) == Path("/var/cache/pg-ext-memcheck")
    assert install.cache_dir({"XDG_CACHE_HOME": "/x"}, root=False) == Path("/x/pg-ext-memcheck")
    assert install.cache_dir({"HOME": "/home/u"}, root=False) == Path("/home/u/.cache/pg-ext-memcheck")


# ----------------------------------------------------------------------------------------------- pgdg


def test_pgdg_command(monkeypatch: pytest.MonkeyPatch) -> None:
    script = install.PGDG_SCRIPT
    monkeypatch.setattr(install, "is_root", lambda: True)
    assert install.pgdg_command(18) == [script, "-v", "18", "-i", "-y"]
    monkeypatch.setattr(install, "is_root", lambda: False)
    assert install.pgdg_command(16) == ["sudo", "-n", script, "-v", "16", "-i", "-y"]


def test_pgdg_host_is_read_from_the_script() -> None:
    text = 'case $X in\n  a) HOST="archive.example" ;;\nesac\nif true; then\n    HOST="repo.example"\nfi\n'
    assert install.pgdg_host(text) == "repo.example"
    assert install.pgdg_host("nothing here") is None


def test_pgdg_unreachable_fails_before_touching_apt(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    script = tmp_path / "pgdg.sh"
    marker = tmp_path / "ran"
    script.write_text(f'#!/bin/sh\nHOST="repo.example"\ntouch {marker}\n')
    script.chmod(0o755)
    monkeypatch.setattr(install, "PGDG_SCRIPT", str(script))
    monkeypatch.setattr(install, "reachable", lambda host, port=443, timeout=5.0: False)
    monkeypatch.setattr(install, "proxy_configured", lambda: False)
    with pytest.raises(install.InstallError, match=r"the PGDG repository \(repo.example\) is not reachable") as exc:
        provision.install_with(18, "pgdg")
    msg = str(exc.value)
    assert "--method debian" in msg and "--method source" in msg
    assert not marker.exists()


def test_pgdg_script_failure(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    script = tmp_path / "pgdg.sh"
    script.write_text('#!/bin/sh\nHOST="repo.example"\necho "$@" > "$0.args"\nexit 1\n')
    script.chmod(0o755)
    monkeypatch.setattr(install, "PGDG_SCRIPT", str(script))
    monkeypatch.setattr(install, "is_root", lambda: True)
    monkeypatch.setattr(install, "reachable", lambda host, port=443, timeout=5.0: True)
    with pytest.raises(install.InstallError, match="--method source"):
        provision.install_with(77, "pgdg")
    assert (tmp_path / "pgdg.sh.args").read_text().split() == ["-v", "77", "-i", "-y"]


def test_proxy_in_environment_counts(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("https_proxy", "http://proxy.example:3128")
    assert install.proxy_configured()


def test_pgdg_without_script(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setattr(install, "PGDG_SCRIPT", str(tmp_path / "missing.sh"))
    with pytest.raises(install.InstallError, match="postgresql-common"):
        provision.install_with(18, "pgdg")


# --------------------------------------------------------------------------------------------- debian


def test_debian_without_package_suggests_source(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(install, "dpkg_installed", lambda packages: False)
    monkeypatch.setattr(install, "apt_has_candidate", lambda package: package.endswith("-15"))
    with pytest.raises(install.InstallError, match="apt has no package postgresql-17.*--method source"):
        provision.install_with(17, "debian")


def test_apt_install_command(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(install, "is_root", lambda: False)
    cmd = install.apt_install_command(install.debian_packages(15))
    assert cmd[:2] == ["sudo", "-n"]
    assert cmd[-2:] == ["postgresql-15", "postgresql-server-dev-15"]
    assert "-y" in cmd and "DEBIAN_FRONTEND=noninteractive" in cmd


def test_cassert_needs_source() -> None:
    with pytest.raises(ValueError, match="--method source"):
        provision.install_with(15, "debian", cassert=True)


# --------------------------------------------------------------------------------------- apt sources


def test_parse_deb822_and_pick_mirror() -> None:
    sources = install.parse_deb822(DEB822 + "\nTypes: deb\nEnabled: no\nURIs: http://off.example\n"
                                   "Suites: bookworm\nComponents: main\n")
    assert [s.uris for s in sources] == [["http://mirror.example/debian"], ["http://mirror.example/debian-security"]]
    mirror = install.debian_mirror(sources)
    assert mirror.uris == ["http://mirror.example/debian"]
    assert mirror.signed_by == "/usr/share/keyrings/debian-archive-keyring.gpg"


def test_mirror_skips_security_and_foreign_repos() -> None:
    text = (
        "deb http://mirror.example/debian-security bookworm-security main\n"
        "deb [arch=amd64 signed-by=/k.gpg] https://vendor.example/apt nodistro main\n"
        "# deb http://commented.example/debian bookworm main\n"
        "deb [signed-by=/usr/share/keyrings/x.gpg] http://one.example/debian bookworm main contrib\n"
    )
    mirror = install.debian_mirror(install.parse_one_line(text))
    assert mirror.uris == ["http://one.example/debian"]
    assert mirror.signed_by == "/usr/share/keyrings/x.gpg"


def test_no_debian_mirror_is_explained() -> None:
    with pytest.raises(install.InstallError, match="sources.list"):
        install.debian_mirror(install.parse_one_line("deb https://vendor.example/apt nodistro main\n"))


def test_system_sources_read_both_formats(tmp_path: Path) -> None:
    (tmp_path / "sources.list.d").mkdir()
    (tmp_path / "sources.list").write_text("deb http://a.example/debian bullseye main\n")
    (tmp_path / "sources.list.d" / "debian.sources").write_text(DEB822)
    (tmp_path / "sources.list.d" / "off.list.disabled").write_text("deb http://no.example/debian sid main\n")
    uris = [s.uris[0] for s in install.system_apt_sources(tmp_path)]
    assert uris == ["http://a.example/debian", "http://mirror.example/debian",
                    "http://mirror.example/debian-security"]


def test_this_machines_apt_config_has_a_debian_mirror() -> None:
    # The source method depends on it; CI machines are Debian with a configured archive.
    mirror = install.debian_mirror(install.system_apt_sources())
    assert mirror.uris[0].startswith(("http://", "https://", "file:", "mirror"))


def test_suites_order() -> None:
    assert install.suites_for(13) == ["bullseye", "trixie", "sid"]
    assert install.suites_for(15) == ["bookworm", "trixie", "sid"]
    assert install.suites_for(18) == ["trixie", "sid"]


def test_deb_src_stanza() -> None:
    mirror = install.parse_deb822(DEB822)[0]
    text = install.deb_src_stanza(mirror, "sid")
    assert "Types: deb-src\nURIs: http://mirror.example/debian\nSuites: sid\nComponents: main\n" in text
    assert "Signed-By: /usr/share/keyrings/debian-archive-keyring.gpg" in text
    trusted = install.deb_src_stanza(mirror, "sid", trusted=True)
    assert "Trusted: yes" in trusted and "Signed-By" not in trusted


def test_private_apt_keeps_system_state_alone(tmp_path: Path) -> None:
    apt = install.PrivateApt(tmp_path / "apt")
    opts = apt.options()
    pairs = dict(o.split("=", 1) for o in opts[1::2])
    assert set(opts[0::2]) == {"-o"}
    assert pairs["Dir::Etc::sourcelist"] == "/dev/null"
    for key in ("Dir::Etc::sourceparts", "Dir::State::Lists", "Dir::Cache", "Dir::State::status"):
        assert pairs[key].startswith(str(tmp_path / "apt")), key
    apt.set_sources("Types: deb-src\n")
    apt.set_sources("Types: deb-src\nSuites: sid\n")
    assert [f.name for f in apt.parts.iterdir()] == ["pg-ext-memcheck.sources"]
    assert "sid" in (apt.parts / "pg-ext-memcheck.sources").read_text()


# ----------------------------------------------------------------------------------------------- build


def test_configure_args() -> None:
    prefix = Path("/c/postgresql/13")
    assert install.configure_args(13, prefix, False, True, True) == [
        "--prefix=/c/postgresql/13", "--with-icu", "--with-openssl"]
    assert install.configure_args(13, prefix, False, False, False) == ["--prefix=/c/postgresql/13"]
    assert install.configure_args(18, prefix, True, False, False) == [
        "--prefix=/c/postgresql/13", "--without-icu", "--enable-cassert", "--enable-debug"]


def test_install_key() -> None:
    assert install.install_key(13, False) == "13"
    assert install.install_key(13, True) == "13-cassert"


def write_install(prefix: Path, major: int) -> str:
    """A fake completed install: an executable pg_config plus the stamp."""
    (prefix / "bin").mkdir(parents=True, exist_ok=True)
    pg_config = prefix / "bin" / "pg_config"
    pg_config.write_text("#!/bin/sh\n")
    pg_config.chmod(0o755)
    (prefix / install.STAMP).write_text(json.dumps({"major": major, "pg_config": str(pg_config)}))
    return str(pg_config)


def test_read_stamp(tmp_path: Path) -> None:
    assert install.read_stamp(tmp_path, 13) is None
    pg_config = write_install(tmp_path, 13)
    assert install.read_stamp(tmp_path, 13) == pg_config
    assert install.read_stamp(tmp_path, 18) is None
    os.unlink(pg_config)
    assert install.read_stamp(tmp_path, 13) is None
    (tmp_path / install.STAMP).write_text("{garbage")
    assert install.read_stamp(tmp_path, 13) is None


def test_completed_install_is_reused(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    def no_build(*args: object) -> str:
        raise AssertionError("must not build when the stamp is there")

    monkeypatch.setattr(install, "build_from_source", no_build)
    pg_config = write_install(tmp_path / "postgresql" / "13-cassert", 13)
    assert install.install_source(13, cassert=True, cache=tmp_path) == pg_config  # no_build was not called


def test_concurrent_installs_build_once(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Three installs at once: one builds while the other two wait on its lock, then find its stamp."""
    builds: List[int] = []
    waiting: List[str] = []
    others_wait = threading.Event()

    def log(message: str) -> None:
        if message.startswith("waiting for another process"):
            waiting.append(message)
            if len(waiting) == 2:
                others_wait.set()

    def build_while_the_others_wait(major: int, cassert: bool, cache: Path, prefix: Path) -> str:
        builds.append(major)
        assert others_wait.wait(120), "the other installs never waited on the lock"
        return write_install(prefix, major)

    monkeypatch.setattr(install, "log", log)
    monkeypatch.setattr(install, "build_from_source", build_while_the_others_wait)
    results: List[str] = []
    threads = [threading.Thread(target=lambda: results.append(install.install_source(18, cache=tmp_path)))
               for _ in range(3)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert builds == [18]
    assert len(set(results)) == 1 and len(results) == 3


def test_missing_build_deps_as_user_says_what_to_install(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(install, "missing_build_packages", lambda: ["bison", "flex"])
    monkeypatch.setattr(install, "is_root", lambda: False)
    with pytest.raises(install.InstallError, match="apt-get install -y bison flex"):
        install.ensure_build_deps()


def test_make_world_readable(tmp_path: Path) -> None:
    d = tmp_path / "tree" / "bin"
    d.mkdir(parents=True)
    exe, data = d / "postgres", tmp_path / "tree" / "data.txt"
    exe.write_text("")
    data.write_text("")
    exe.chmod(0o700)
    data.chmod(0o600)
    d.chmod(0o700)
    install.make_world_readable(tmp_path / "tree")
    assert exe.stat().st_mode & 0o777 == 0o755
    assert data.stat().st_mode & 0o777 == 0o644
    assert d.stat().st_mode & 0o777 == 0o755


def test_untraversable_ancestor(tmp_path: Path) -> None:
    closed = tmp_path / "closed"
    (closed / "inner").mkdir(parents=True)
    closed.chmod(0o700)
    try:
        found = install.untraversable_ancestor(closed / "inner" / "pg")
        assert found is not None and str(found) in {str(closed), *map(str, closed.parents)}
    finally:
        closed.chmod(0o755)


def test_open_up_opens_only_the_cache(tmp_path: Path) -> None:
    above = tmp_path / "home"
    above.mkdir(mode=0o700)
    above.chmod(0o700)
    cache = above / "cache"
    cache.mkdir(mode=0o700)
    cache.chmod(0o700)
    install.open_up(cache, "postgresql")
    assert cache.stat().st_mode & 0o777 == 0o755
    assert (cache / "postgresql").stat().st_mode & 0o055 == 0o055
    assert above.stat().st_mode & 0o777 == 0o700


class FakeApt:
    """Stands in for apt-get: `update` always works, `source` finds the package only in `has_in`."""

    def __init__(self, has_in: str) -> None:
        self.has_in = has_in
        self.calls: List[str] = []

    def __call__(self, apt: install.PrivateApt, args: List[str], cwd: Path | None = None) -> object:
        suite = (apt.parts / "pg-ext-memcheck.sources").read_text().split("Suites: ")[1].split()[0]
        self.calls.append(f"{args[0]} {suite}")
        ok = args[0] == "update" or suite == self.has_in
        if args[0] == "source" and ok and cwd is not None:
            (cwd / "postgresql-18_18.6.orig.tar.bz2").write_text("tarball")
            (cwd / "postgresql-18_18.6-3.dsc").write_text("dsc")
        err = "" if ok else "E: Unable to find a source package for postgresql-18"
        return subprocess.CompletedProcess(args, 0 if ok else 100, stdout="", stderr=err)


def use_fake_apt(monkeypatch: pytest.MonkeyPatch, fake: FakeApt) -> None:
    # A plain function, so that it binds as a method like the real one.
    def run(self: install.PrivateApt, args: List[str], cwd: Path | None = None) -> object:
        return fake(self, args, cwd)

    monkeypatch.setattr(install.PrivateApt, "run", run)


@pytest.fixture
def mirror(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(install, "system_apt_sources", lambda: install.parse_deb822(DEB822))


def test_fetch_tries_suites_in_order(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, mirror: None) -> None:
    fake = FakeApt(has_in="sid")
    use_fake_apt(monkeypatch, fake)
    (tmp_path / "src").mkdir()
    tarball = install.fetch_orig_tarball(18, tmp_path)
    assert fake.calls == ["update trixie", "source trixie", "update sid", "source sid"]
    assert tarball == tmp_path / "src" / "18" / "postgresql-18_18.6.orig.tar.bz2"
    assert (tarball.parent / "postgresql-18_18.6-3.dsc").is_file()
    assert [p.name for p in (tmp_path / "src").iterdir()] == ["18"]  # the temp download dir is gone
    # Downloaded once: the next call does not ask apt again.
    use_fake_apt(monkeypatch, FakeApt(has_in="nowhere"))
    assert install.fetch_orig_tarball(18, tmp_path) == tarball


def test_fetch_nowhere_says_where_it_looked(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, mirror: None) -> None:
    use_fake_apt(monkeypatch, FakeApt(has_in="nowhere"))
    (tmp_path / "src").mkdir()
    with pytest.raises(install.InstallError, match="^PostgreSQL 18 cannot be had") as exc:
        install.fetch_orig_tarball(18, tmp_path)
    msg = str(exc.value)
    assert "trixie (E: Unable to find" in msg and "sid (E: Unable to find" in msg
    assert "--method pgdg" in msg
