"""Multi-node clusters of the local servers for the scale tests, each on ports and a work
dir of its own (the shared servers on the default ports are never touched).

``cluster_settings`` gives settings on free ports; the test starts the servers it needs
with ``launch.services.up`` and stops them with ``down`` in a ``finally``.
"""

from __future__ import annotations

import socket
from pathlib import Path

from clickstream.settings import Settings
from tests.pipeline.conftest import dask_client  # noqa: F401 (a fixture: 2 Dask worker processes)

PORT_SETTINGS = ("kafka_port", "kafka_controller_port", "cassandra_port", "cassandra_storage_port",
                 "cassandra_jmx_port", "hdfs_port", "hdfs_http_port")
# The machine is shared and often loaded: a cold JVM start can take minutes there.
START_TIMEOUT_S = 300.0


def _free_run(host: str, count: int, avoid: set[int]) -> int:
    """The first port of ``count`` consecutive ports free on ``host`` (none in ``avoid``)."""
    while True:
        with socket.socket() as s:
            s.bind((host, 0))
            first = s.getsockname()[1]
        run = range(first, first + count)
        if first + count < 65000 and not avoid & set(run) and all(_free(host, p) for p in run):
            return first


def _free(host: str, port: int) -> bool:
    with socket.socket() as s:
        try:
            s.bind((host, port))
        except OSError:
            return False
    return True


def cluster_settings(tmp_path: Path, kafka_brokers: int = 1, cassandra_nodes: int = 1,
                     **overrides: object) -> Settings:
    """Settings of a cluster on free ports (consecutive where nodes need it; free on every
    Cassandra node's address) with its work dir under ``tmp_path``."""
    taken: set[int] = set()
    values: dict[str, object] = {}
    hosts = [f"127.0.0.{i + 1}" for i in range(cassandra_nodes)]
    for name in PORT_SETTINGS:
        count = {"kafka_port": kafka_brokers, "kafka_controller_port": kafka_brokers,
                 "cassandra_jmx_port": cassandra_nodes}.get(name, 1)
        while True:
            first = _free_run("127.0.0.1", count, taken)
            shared_by_nodes = name in ("cassandra_port", "cassandra_storage_port")
            if not shared_by_nodes or all(_free(h, first) for h in hosts):
                break
        taken |= set(range(first, first + count))
        values[name] = first
    values.update(overrides)
    return Settings(work_dir=str(tmp_path / "work"), stack="local", kafka_brokers=kafka_brokers,
                    cassandra_nodes=cassandra_nodes, services_start_timeout_s=START_TIMEOUT_S,
                    **values)  # type: ignore[arg-type]

