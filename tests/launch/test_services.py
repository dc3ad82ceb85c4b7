"""`clickstream services`: errors are one line, nothing is left half-started; a full cycle."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
from pathlib import Path

import pytest

from clickstream.settings import Settings
from launch import services


def _free_ports(n: int) -> list[int]:
    socks = [socket.socket() for _ in range(n)]
    for s in socks:
        s.bind(("127.0.0.1", 0))
    ports = [s.getsockname()[1] for s in socks]
    for s in socks:
        s.close()
    return ports


def _isolated(tmp_path: Path, **overrides: object) -> Settings:
    """Settings on ports nobody uses and a work dir of the test's own."""
    names = ["kafka_port", "kafka_controller_port", "cassandra_port", "cassandra_storage_port",
             "cassandra_jmx_port", "hdfs_port", "hdfs_http_port"]
    values = dict(zip(names, _free_ports(len(names)), strict=True))
    values.update(overrides)
    values.setdefault("services_start_timeout_s", 300.0)  # a busy 2-core machine starts JVMs slowly
    return Settings(work_dir=str(tmp_path / "work"), **values)  # type: ignore[arg-type]


def _cli(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "launch.cli.main", *args], capture_output=True,
                          text=True, env={**os.environ, **(env or {})}, timeout=120)


def _no_server_started(settings: Settings) -> None:
    for name in services.SERVER_NAMES:
        assert not services.pid_file(settings, name).exists(), name


def test_missing_java_is_one_line_error_and_starts_nothing(tmp_path: Path) -> None:
    settings = _isolated(tmp_path, java_command="/nonexistent/java")
    with pytest.raises(services.ServiceError, match="Java executable '/nonexistent/java' not found"):
        services.up(settings)
    _no_server_started(settings)
    proc = _cli("services", "up", "--work-dir", settings.work_dir, "--java-command", "/nonexistent/java")
    assert proc.returncode != 0
    assert proc.stderr.strip().count("\n") == 0, proc.stderr
    assert "clickstream services: error: up: Java executable '/nonexistent/java' not found" in proc.stderr


def test_port_taken_is_named_and_starts_nothing(tmp_path: Path) -> None:
    with socket.socket() as blocker:
        blocker.bind(("127.0.0.1", 0))
        blocker.listen()
        taken = blocker.getsockname()[1]
        settings = _isolated(tmp_path, hdfs_port=taken)
        with pytest.raises(services.ServiceError,
                           match=f"up hdfs: port {taken} \\(namenode\\) on 127.0.0.1 is already in use"):
            services.up(settings)
        _no_server_started(settings)
        proc = _cli("services", "up", "--work-dir", settings.work_dir, "--hdfs-port", str(taken),
                    "--kafka-port", str(settings.kafka_port),
                    "--kafka-controller-port", str(settings.kafka_controller_port),
                    "--cassandra-port", str(settings.cassandra_port),
                    "--cassandra-storage-port", str(settings.cassandra_storage_port),
                    "--cassandra-jmx-port", str(settings.cassandra_jmx_port))
    assert proc.returncode == 1
    assert proc.stderr.strip() == (f"clickstream services: error: up hdfs: port {taken} (namenode) "
                                   "on 127.0.0.1 is already in use by another process")
    _no_server_started(settings)


def test_unreachable_repository_fails_fetch_cleanly(tmp_path: Path) -> None:
    # Real Maven, offline with an empty local repository: the repository cannot be reached.
    wrapper = tmp_path / "mvn-offline"
    wrapper.write_text(f"#!/bin/sh\nexec mvn -o -Dmaven.repo.local={tmp_path / 'm2'} \"$@\"\n")
    wrapper.chmod(0o755)
    settings = _isolated(tmp_path, services_home=str(tmp_path / "cache"), mvn_command=str(wrapper))
    with pytest.raises(services.ServiceError, match=r"fetch kafka: Maven could not resolve .*kafka/pom.xml"):
        services.fetch(settings, ["kafka"])
    assert not services.lib_dir(settings, "kafka").exists()
    assert not services.lib_dir(settings, "kafka").with_name("lib.partial").exists()
    proc = _cli("services", "up", "kafka", "--work-dir", settings.work_dir,
                "--services-home", settings.services_home, "--mvn-command", str(wrapper))
    assert proc.returncode == 1 and proc.stderr.count("\n") == 1, proc.stderr
    assert proc.stderr.startswith("clickstream services: error: fetch kafka: Maven could not resolve")
    _no_server_started(settings)


def test_kafka_cluster_ids_never_look_like_an_option() -> None:
    """One random id in 64 would start with '-', which kafka-storage's ``-t`` reads as an
    option (a CI run failed on one); 2,000 ids without the guard hold such an id all but surely."""
    import base64

    ids = [services.kafka_cluster_id() for _ in range(2000)]
    assert not [i for i in ids if i.startswith("-")]
    assert all(len(base64.urlsafe_b64decode(i + "==")) == 16 for i in ids)
    assert len(set(ids)) == len(ids)


def test_hdfs_read_back_waits_for_a_short_read_and_fails_on_other_bytes() -> None:
    """The health probe's read after a close: a file whose last block is only committed reads
    short (0 bytes) until the DataNodes report it; a read of other bytes is no such race."""
    reads = iter([b"", b"", b"pay", b"payload"])
    assert services.read_back(lambda: next(reads), b"payload", within_s=5.0, pause_s=0.0)
    assert not services.read_back(lambda: b"", b"payload", within_s=0.05, pause_s=0.01)
    other = iter([b"", b"other!!", b"payload"])
    assert not services.read_back(lambda: next(other), b"payload", within_s=5.0, pause_s=0.0)
    assert next(other) == b"payload"  # not read again after the wrong bytes


def test_spark_plugin_is_fetched_but_never_started(tmp_path: Path) -> None:
    """``comet`` (a Spark plugin's jar) is a fetch target only: up/down/status name the mistake."""
    settings = _isolated(tmp_path)
    for action in ("up", "down", "status"):
        proc = _cli("services", action, "comet", "--work-dir", settings.work_dir)
        assert proc.returncode == 1, proc.stderr
        assert proc.stderr == (f"clickstream services: error: services {action}: comet is a Spark plugin, "
                               "not a server; only `fetch` takes it\n")
    _no_server_started(settings)


def test_missing_maven_is_named(tmp_path: Path) -> None:
    settings = _isolated(tmp_path, services_home=str(tmp_path / "cache"), mvn_command="no-such-mvn")
    with pytest.raises(services.ServiceError, match="Maven executable 'no-such-mvn' not found on PATH"):
        services.fetch(settings, ["hdfs"])


def test_cluster_nodes_take_consecutive_ports_and_addresses(tmp_path: Path) -> None:
    settings = Settings(work_dir=str(tmp_path), kafka_brokers=3, kafka_port=19092,
                        kafka_controller_port=19192, cassandra_nodes=2, cassandra_port=19042,
                        cassandra_jmx_port=17199)
    kafka = services.nodes(settings, "kafka")
    assert [n.endpoints for n in kafka] == [
        (("broker", "127.0.0.1", 19092 + i), ("controller", "127.0.0.1", 19192 + i)) for i in range(3)]
    assert services.kafka_quorum(settings) == \
        "controller.quorum.voters=1@127.0.0.1:19192,2@127.0.0.1:19193,3@127.0.0.1:19194"
    assert services.kafka_quorum(Settings()) == "controller.quorum.bootstrap.servers=127.0.0.1:9093"
    cassandra = services.nodes(settings, "cassandra")
    assert [(n.host, n.endpoints[0], n.endpoints[2]) for n in cassandra] == [
        ("127.0.0.1", ("cql", "127.0.0.1", 19042), ("jmx", "127.0.0.1", 17199)),
        ("127.0.0.2", ("cql", "127.0.0.2", 19042), ("jmx", "127.0.0.1", 17200))]
    assert services.address(settings, "cassandra") == "127.0.0.1:19042,127.0.0.2:19042"
    # the first node keeps the single node's folders; the others get their own
    assert services.pid_file(settings, "kafka", 0) == tmp_path.resolve() / "services/kafka/server.pid"
    assert services.log_file(settings, "kafka", 2) == \
        tmp_path.resolve() / "services/kafka/node-3/logs/stdout.log"
    with pytest.raises(services.ServiceError, match="cassandra_nodes: 2 nodes need an IPv4 bind_address"):
        services.nodes(settings.replace(bind_address="localhost"), "cassandra")
    with pytest.raises(services.ServiceError, match="up kafka: the 3 controller ports 9093-9095 overlap "
                                                     "the broker ports 9092-9094; set kafka_controller_port"):
        services.up(Settings(work_dir=str(tmp_path), kafka_brokers=3), ["kafka"])
    assert not services.pid_file(settings, "kafka").exists()


@pytest.mark.integration
def test_up_status_down_cycle_frees_every_port(tmp_path: Path, services_running: Settings) -> None:
    """A second Kafka and HDFS on other ports: up -> healthy -> down -> no process, ports free."""
    settings = _isolated(tmp_path, services_home=services_running.services_home)
    names = ["kafka", "hdfs"]
    try:
        report = services.up(settings, names, log=lambda _: None)
        assert [(s.name, s.healthy) for s in report] == [("kafka", True), ("hdfs", True)]
        pids = {s.name: s.pid for s in services.status(settings, names)}
        assert all(pids.values())
        again = services.up(settings, names, log=lambda _: None)  # already running: reused
        assert {s.name: s.pid for s in again} == pids
    finally:
        services.down(settings, names, log=lambda _: None)
    for name in names:
        assert not Path(f"/proc/{pids[name]}").exists() or services.read_pid(settings, name) is None
        for node in services.nodes(settings, name):
            for _role, host, port in node.endpoints:
                assert not services.port_in_use(host, port)
    assert not any(s.healthy for s in services.status(settings, names))


@pytest.mark.integration
def test_hdfs_keeps_its_data_across_down_and_up(tmp_path: Path, services_running: Settings) -> None:
    """`services down` then `up` of an HDFS on other ports: a file written before is read back
    (the namespace is formatted once, not at every start)."""
    from clickstream.archive import filesystem

    settings = _isolated(tmp_path, services_home=services_running.services_home,
                         services_start_timeout_s=300.0)
    payload = os.urandom(100_000)
    try:
        services.up(settings, ["hdfs"], log=lambda _: None)
        fs, root = filesystem(settings.hdfs_url + "/kept")
        with fs.open(f"{root}/before-restart.bin", "wb") as f:
            f.write(payload)
        services.down(settings, ["hdfs"], log=lambda _: None)
        assert services.read_pid(settings, "hdfs") is None
        services.up(settings, ["hdfs"], log=lambda _: None)
        fs, root = filesystem(settings.hdfs_url + "/kept")
        with fs.open(f"{root}/before-restart.bin", "rb") as f:
            assert f.read() == payload
    finally:
        services.down(settings, ["hdfs"], log=lambda _: None)
