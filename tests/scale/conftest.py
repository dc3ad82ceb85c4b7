"""Multi-node clusters of the local servers for the scale tests, each on ports and a work
dir of its own (the shared servers on the default ports are never touched).

``cluster_settings`` gives settings on free ports; the test starts the servers it needs
with ``launch.services.up`` and stops them with ``down`` in a ``finally``. ``dask_cluster``
starts a ``dask scheduler`` and ``dask worker`` processes; ``stream_argv`` is the
``clickstream stream`` command line a test runs against them.
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from dask.distributed import Client

from clickstream.settings import Settings
from tests.pipeline.conftest import dask_client  # noqa: F401 (a fixture: 2 Dask worker processes)

PORT_SETTINGS = ("kafka_port", "kafka_controller_port", "cassandra_port", "cassandra_storage_port",
                 "cassandra_jmx_port", "hdfs_port", "hdfs_http_port")
REPO = Path(__file__).resolve().parents[2]
DASK = Path(sys.executable).parent / "dask"
ENV = {**os.environ, "PYTHONPATH": str(REPO)}  # the workers import pipeline/ from this checkout
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


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def stop(proc: subprocess.Popen) -> None:
    """End a process we started and everything it started (its own session)."""
    if proc.poll() is None:
        os.killpg(proc.pid, signal.SIGTERM)
        try:
            proc.wait(20)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait(10)


@contextmanager
def dask_cluster(n_workers: int, log_dir: Path) -> Iterator[tuple[str, str]]:
    """A ``dask scheduler`` (its dashboard on a free port) and ``n_workers`` ``dask worker``
    processes (each 1 thread, under a nanny) on loopback, stopped at the end; yields the
    scheduler's address and its dashboard's."""
    address = f"tcp://127.0.0.1:{free_port()}"
    dashboard = f"127.0.0.1:{free_port()}"
    procs = []

    def start(name: str, argv: list[str]) -> None:
        with open(log_dir / f"{name}.log", "wb") as log:
            procs.append(subprocess.Popen(argv, cwd=REPO, env=ENV, start_new_session=True,
                                          stdout=log, stderr=subprocess.STDOUT))

    try:
        port = address.rsplit(":", 1)[1]
        start("scheduler", [str(DASK), "scheduler", "--host", "127.0.0.1", "--port", port,
                            "--dashboard-address", dashboard])
        for n in range(n_workers):
            start(f"worker-{n}", [str(DASK), "worker", address, "--nworkers", "1", "--nthreads", "1",
                                  "--host", "127.0.0.1", "--no-dashboard", "--name", f"w{n}"])
        with Client(address, timeout=60) as client:
            client.wait_for_workers(n_workers, timeout=120)
        yield address, f"http://{dashboard}/status"
    finally:
        for proc in reversed(procs):
            stop(proc)


def stream_argv(settings: Settings, work: Path, *extra: str) -> list[str]:
    return [sys.executable, "-m", "launch.cli.main", "stream", "--stack", "local",
            "--topic", settings.topic, "--consumer-group", settings.consumer_group,
            "--dead-letter-topic", settings.dead_letter_topic,
            "--cassandra-keyspace", settings.cassandra_keyspace, "--archive-url", settings.archive,
            "--work-dir", str(work), "--log-level", "WARNING", *extra]


def own_topic(settings: Settings, name: str) -> Settings:
    """Topic, consumer group, dead letters and archive of the test's own."""
    return settings.replace(topic=name, consumer_group=name, dead_letter_topic=name + "-dlq",
                            archive_url=f"{settings.hdfs_url}/tests/{name}")


def batch_tasks(client: Client) -> list[dict]:
    return [t for t in client.get_task_stream() if str(t["key"]).startswith("process_batch")]
