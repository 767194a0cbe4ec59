"""The private cluster (pg_stat_statements preloaded, no hook library), on the first PostgreSQL under test."""

from __future__ import annotations

import os
import pwd
import stat
import threading
from pathlib import Path

import pytest

from reporter.cluster import Cluster, ClusterError, conf_quote, order_preload
from tests.waiting import wait_until

pytestmark = pytest.mark.integration


def test_order_preload_keeps_the_order_given() -> None:
    assert order_preload(["a", "pg_ext_memcheck", "b", "a", ""]) == ["a", "pg_ext_memcheck", "b"]
    assert order_preload(["x"]) == ["x"]


def test_conf_quote() -> None:
    assert conf_quote("it's") == "'it''s'"
    assert conf_quote(True) == "'on'"
    assert conf_quote(5) == "'5'"


@pytest.fixture(scope="module")
def cluster(pg_config: str, tmp_path_factory: pytest.TempPathFactory):  # noqa: ANN201
    settings = {"work_mem": "7MB", "cluster_name": "it's mine"}
    with Cluster(
        pg_config, base_dir=tmp_path_factory.mktemp("c"), preload=["pg_stat_statements"], settings=settings
    ) as c:
        yield c


def test_settings_written_before_start(cluster: Cluster) -> None:
    names = ("work_mem", "shared_preload_libraries", "listen_addresses", "cluster_name")
    query = "SELECT " + ", ".join(f"current_setting('{n}')" for n in names)
    # psql before 15 prints only the last result of a multi-statement -c, hence one SELECT.
    assert cluster.psql(query).strip().split("|") == ["7MB", "pg_stat_statements", "", "it's mine"]


def test_unix_socket_only_in_private_dir(cluster: Cluster) -> None:
    mode = stat.S_IMODE(os.stat(cluster.socket_dir).st_mode)
    assert mode == 0o700
    assert list(Path(cluster.socket_dir).glob(".s.PGSQL.*"))
    with cluster.connect() as conn:
        # No TCP: the server reports no address for a unix-socket connection and listens on none.
        assert conn.execute("SELECT inet_server_addr()").fetchone()[0] is None
        assert conn.execute("SELECT current_setting('listen_addresses')").fetchone()[0] == ""


def test_server_runs_unprivileged(cluster: Cluster) -> None:
    pid = int((cluster.data_dir / "postmaster.pid").read_text().splitlines()[0])
    owner = os.stat(f"/proc/{pid}").st_uid
    assert owner != 0
    if os.geteuid() == 0:
        assert pwd.getpwuid(owner).pw_name == cluster.run_as
    else:
        assert owner == os.geteuid()


def test_clients_and_helpers(cluster: Cluster) -> None:
    with cluster.connect() as conn:
        conn.execute("CREATE ROLE alice LOGIN")
    with cluster.connect(user="alice") as conn:
        assert conn.execute("SELECT current_user").fetchone()[0] == "alice"
        assert conn.autocommit
    assert "host=" + str(cluster.socket_dir) in cluster.conninfo()
    assert cluster.superuser == "postgres"
    assert cluster.pgbench_bin.is_file()
    assert "database system is ready to accept connections" in cluster.read_log()
    assert cluster.psql("SELECT 40 + 2").strip() == "42"


def test_restart_and_crash_recovery(cluster: Cluster) -> None:
    cluster.restart()
    with cluster.connect() as conn:
        pid = conn.info.backend_pid
    # SIGKILL of a backend makes the postmaster reinitialise, as after a segfault; wait_ready rides it out.
    cluster.psql("SELECT 1")
    log_offset = cluster.log_size()
    with cluster.connect() as victim:
        pid = victim.info.backend_pid
        os.kill(pid, 9)
    # Until the postmaster has noticed the death it still accepts connections; wait_ready would return at once
    # and the next client would meet the crash recovery.
    wait_until(lambda: "was terminated by signal 9" in cluster.read_log(log_offset), "the postmaster to notice")
    cluster.wait_ready(60)
    assert cluster.psql("SELECT 1").strip() == "1"
    assert "was terminated by signal 9" in cluster.read_log(log_offset)


def test_two_clusters_at_once(pg_config: str) -> None:
    errors: list = []
    answers: list = []

    def one(n: int) -> None:
        try:
            with Cluster(pg_config, preload=[], settings={"cluster_name": f"c{n}"}) as c:
                answers.append(c.psql("SHOW cluster_name").strip())
        except Exception as exc:  # collected for the assertion below
            errors.append(exc)

    threads = [threading.Thread(target=one, args=(n,)) for n in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors
    assert sorted(answers) == ["c0", "c1"]


def test_unreachable_base_dir_falls_back(pg_config: str, tmp_path: Path) -> None:
    private = tmp_path / "private"
    private.mkdir(mode=0o700)
    c = Cluster(pg_config, base_dir=private, preload=[])
    try:
        if os.geteuid() == 0:
            # pytest's tmp dirs are 0700 root: the server user could not enter them.
            assert not str(c.workdir).startswith(str(private))
        else:
            assert str(c.workdir).startswith(str(private))
    finally:
        c.cleanup()


def test_start_failure_reports_log(pg_config: str) -> None:
    c = Cluster(pg_config, preload=["no_such_library_xyz"])
    with pytest.raises(ClusterError, match="no_such_library_xyz"):  # the server log's line, in the error
        with c:
            pass
    assert not c.workdir.exists()


def test_cluster_factory_with_hook_library(cluster_factory) -> None:  # noqa: ANN001
    c = cluster_factory(preload=["buggy_pg_ext", "pg_ext_memcheck"], settings={"buggy_pg_ext.bugs": "top_ctx_alloc"})
    assert c.running
    with c.connect() as conn:
        assert conn.execute("SHOW shared_preload_libraries").fetchone()[0] == "buggy_pg_ext,pg_ext_memcheck"
        assert conn.execute("SHOW buggy_pg_ext.bugs").fetchone()[0] == "top_ctx_alloc"
        conn.execute("CREATE EXTENSION pg_ext_memcheck")
        assert conn.execute("SELECT capacity FROM ext_memcheck.status()").fetchone()[0] == 4096
