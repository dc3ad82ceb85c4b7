"""``clickstream stream`` on a Dask cluster of separate processes (``dask scheduler`` and two
``dask worker`` processes on loopback): the work spreads over the workers and partitions,
a worker SIGKILLed mid-run is survived (its nanny restarts it, its lost tasks run again
elsewhere and rewrite the same archive files and partials), windows and archive exact.
And the pipeline's own LocalCluster prints a Dask dashboard link that answers."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest
from dask.distributed import Client

from clickstream.archive import filesystem
from clickstream.settings import Settings
from producer.sender import records
from tests.pipeline.conftest import COMPARED, assert_tables_equal, dump_cassandra, read_archive, recount
from tests.pipeline.test_integration import make_clicks, produce, remove_archive

pytestmark = pytest.mark.integration

REPO = Path(__file__).resolve().parents[2]
DASK = Path(sys.executable).parent / "dask"
N_CLICKS = 100_000
ENV = {**os.environ, "PYTHONPATH": str(REPO)}  # the workers import pipeline/ from this checkout


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


def test_stream_on_a_dask_cluster_survives_a_killed_worker(isolated_cassandra_settings: Settings,
                                                           unique_name: str, tmp_path: Path) -> None:
    settings = own_topic(isolated_cassandra_settings, unique_name)
    clicks = make_clicks(3_000, seed=31, limit=N_CLICKS, span_s=240)
    # 4 partitions; 4 clicks a record (the wire format's batch records): 25,000 records
    produce(settings, settings.topic, [(k, v) for k, v, _n, _t in records(clicks, 4)])
    expected = recount(clicks)
    try:
        with dask_cluster(2, tmp_path) as (address, dashboard), Client(address) as client:
            pids = client.run(os.getpid)  # {worker address: pid of the worker process}
            assert len(pids) == 2
            batch_tasks(client)  # the scheduler records the task stream from now on
            started = time.monotonic()
            argv = stream_argv(settings, tmp_path / "work", "--dask-scheduler-address", address,
                               "--stream-batch-records", "1500", "--until-idle-s", "3")
            proc = subprocess.Popen(argv,
                                    cwd=REPO, env=ENV, start_new_session=True, stdout=subprocess.PIPE,
                                    stderr=subprocess.PIPE, text=True)
            try:
                # kill a worker while it runs a batch, once a few batches are done (mid-run)
                victim = None
                while victim is None and proc.poll() is None and time.monotonic() - started < 120:
                    busy = [w for w, keys in client.processing().items()
                            if any(str(k).startswith("process_batch") for k in keys) and w in pids]
                    if busy and len(batch_tasks(client)) >= 4:
                        victim = busy[0]
                        os.kill(pids[victim], signal.SIGKILL)
                    else:
                        time.sleep(0.1)
                before = {t["worker"] for t in batch_tasks(client)}
                out, err = proc.communicate(timeout=240)
            finally:
                stop(proc)
            assert victim is not None, f"no batch seen running on a worker (stream exit {proc.returncode})"
            assert proc.returncode == 0, err[-3000:]
            assert f"stream: Dask scheduler {address}, 2 workers" in out
            assert f"stream: Dask dashboard at {dashboard}" in out
            assert f"stream: {N_CLICKS} clicks (0 late, 0 dead letters)" in out, out
            tasks = batch_tasks(client)
            assert before == set(pids), f"batches before the kill ran on {before}, workers {set(pids)}"
            assert len({t["worker"] for t in tasks}) >= 2
            client.wait_for_workers(2, timeout=60)  # the victim's nanny started a new one
            assert set(client.run(os.getpid).values()) - set(pids.values()), "no worker was restarted"
        stored = dump_cassandra(settings, COMPARED, pipeline=settings.pipeline_id)
        assert_tables_equal(stored, expected)
        archived = read_archive(settings.archive)
        assert len(archived) == N_CLICKS and archived["click_id"].is_unique
        assert set(archived["click_id"]) == {c.click_id for c in clicks}
        fs, root = filesystem(settings.archive)
        files = [f.rsplit("/", 1)[1] for f in fs.find(root) if f.endswith(".parquet") and "_tmp" not in f]
        assert {name[:5] for name in files} == {"p0000", "p0001", "p0002", "p0003"}
    finally:
        remove_archive(settings.archive)


def test_own_local_cluster_prints_a_dashboard_link(isolated_cassandra_settings: Settings, unique_name: str,
                                                   tmp_path: Path) -> None:
    settings = own_topic(isolated_cassandra_settings, unique_name)
    clicks = make_clicks(200, seed=32, limit=2_000, span_s=60)
    produce(settings, settings.topic, [(k, v) for k, v, _n, _t in records(clicks)])
    proc = subprocess.Popen(stream_argv(settings, tmp_path / "work", "--dask-workers", "1",
                                        "--dask-dashboard-address", "127.0.0.1:0", "--until-idle-s", "4"),
                            cwd=REPO, env=ENV, start_new_session=True, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)
    try:
        link = None
        assert proc.stdout is not None
        for line in proc.stdout:
            if line.startswith("stream: Dask dashboard at "):
                link = line.split(" at ", 1)[1].strip()
                break
        assert link and link.startswith("http://127.0.0.1:"), proc.communicate(timeout=120)[1][-3000:]
        with urllib.request.urlopen(link, timeout=30) as page:  # the pipeline is still running
            assert page.status == 200
        out, err = proc.communicate(timeout=120)
        assert proc.returncode == 0, err[-3000:]
        assert "stream: 2000 clicks" in out
    finally:
        stop(proc)
        remove_archive(settings.archive)
