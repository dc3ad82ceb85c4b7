"""Issue #18's cluster, all of it at once on loopback: ``clickstream stream`` on a 3-broker
Kafka (topic replication factor 3, min.insync.replicas 2), a ``dask scheduler`` with 2
``dask worker`` processes and a 2-node Cassandra (127.0.0.1 and 127.0.0.2, replication
factor 2, window retention). Mid-run one Dask worker is SIGKILLed while it runs a batch and
the broker leading partition 0 is stopped; the second half of the clicks is sent after
that (acks=all with 2 of 3 replicas in sync). The stored windows must equal the recount and
the same records run through one in-process pipeline on the embedded stack; the archive
holds every click once.

Servers of its own on free ports (the shared servers are not touched); archive file://.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from dask.distributed import Client
from kafka import KafkaAdminClient
from kafka.admin import ConfigResource, ConfigResourceType

from clickstream.archive import filesystem
from clickstream.memory_topic import MemoryTopic
from clickstream.settings import Settings
from clickstream.store.cassandra import RETENTION_TABLES, apply_schema, connect
from launch import services
from pipeline import Pipeline
from producer.sender import PRODUCER_CONFIG, ensure_topic, make_producer, records
from tests.pipeline.conftest import (
    COMPARED,
    assert_tables_equal,
    dump_cassandra,
    dump_sqlite,
    read_archive,
    recount,
)
from tests.pipeline.test_integration import make_clicks
from tests.scale.conftest import ENV, REPO, batch_tasks, cluster_settings, dask_cluster, stop

pytestmark = pytest.mark.integration

N_CLICKS = 60_000
TTL_S = 3 * 86400
PARTITIONS = 4


def _leaders(admin: KafkaAdminClient, topic: str) -> dict[int, tuple[int, list[int]]]:
    """partition -> (leader node id, replica node ids)."""
    (desc,) = admin.describe_topics([topic])
    return {p["partition_index"]: (p["leader_id"], p["replica_nodes"]) for p in desc["partitions"]}


def _send(settings: Settings, recs: list[tuple[bytes, bytes]]) -> None:
    producer = make_producer(settings)
    futures = [producer.send(settings.topic, key=k, value=v) for k, v in recs]
    producer.flush()
    assert all(f.succeeded() for f in futures)
    producer.close()


def _check_kafka_layout(settings: Settings) -> int:
    """Replicas and min.insync.replicas as set; returns the broker index leading partition 0."""
    admin = KafkaAdminClient(bootstrap_servers=settings.kafka_bootstrap)
    try:
        leaders = _leaders(admin, settings.topic)
        assert sorted(leaders) == list(range(PARTITIONS))
        assert all(sorted(replicas) == [1, 2, 3] for _l, replicas in leaders.values()), leaders
        configs = admin.describe_configs([ConfigResource(ConfigResourceType.TOPIC, settings.topic)])
        min_isr = configs["topic"][settings.topic]["min.insync.replicas"]
        assert (min_isr.get("value") if isinstance(min_isr, dict) else min_isr) == "2", min_isr
        offsets_topic = _leaders(admin, "__consumer_offsets")
        assert all(len(replicas) == 3 for _l, replicas in offsets_topic.values())
        return leaders[0][0] - 1
    finally:
        admin.close()


def _check_cassandra_layout(settings: Settings) -> None:
    apply_schema(settings)
    cluster, session = connect(settings, settings.cassandra_keyspace)
    try:
        assert {h.address for h in cluster.metadata.all_hosts() if h.is_up} == {"127.0.0.1", "127.0.0.2"}
        replication = session.execute("SELECT replication FROM system_schema.keyspaces "
                                      "WHERE keyspace_name = %s", (settings.cassandra_keyspace,)).one()[0]
        assert replication["replication_factor"] == "2"
        ttls = {r.table_name: r.default_time_to_live for r in session.execute(
            "SELECT table_name, default_time_to_live FROM system_schema.tables "
            "WHERE keyspace_name = %s", (settings.cassandra_keyspace,))}
        assert {t: ttls[t] for t in RETENTION_TABLES} == dict.fromkeys(RETENTION_TABLES, TTL_S)
    finally:
        cluster.shutdown()


def _cluster_argv(settings: Settings, work: Path, scheduler: str) -> list[str]:
    """``clickstream stream`` on the cluster: every cluster setting as a flag."""
    return ["-m", "launch.cli.main", "stream", "--stack", "local", "--work-dir", str(work),
            "--log-level", "WARNING", "--topic", settings.topic,
            "--consumer-group", settings.consumer_group, "--dead-letter-topic", settings.dead_letter_topic,
            "--kafka-bootstrap-servers", settings.kafka_bootstrap,
            "--kafka-replication-factor", "3", "--kafka-min-insync-replicas", "2",
            "--cassandra-port", str(settings.cassandra_port),
            "--cassandra-keyspace", settings.cassandra_keyspace, "--cassandra-replication-factor", "2",
            "--window-ttl-s", str(TTL_S), "--archive-url", settings.archive,
            "--dask-scheduler-address", scheduler, "--stream-batch-records", "1500",
            "--checkpoint-interval-s", "0.5", "--max-clicks", str(N_CLICKS)]


def _single_process_tables(recs: list[tuple[bytes, bytes]], tmp_path: Path) -> dict[str, set]:
    """The same records through one in-process pipeline on the embedded stack."""
    topic = MemoryTopic("single", PARTITIONS)
    for key, value in recs:
        topic.append(key, value)
    topic.close()
    settings = Settings(work_dir=str(tmp_path / "single"), topic="single",
                        archive_url=(tmp_path / "single-archive").as_uri())
    with Client(processes=False, n_workers=1, threads_per_worker=1, dashboard_address=None) as client, \
            Pipeline(settings, client=client, memory_topic=topic) as pipe:
        summary = pipe.run()
    assert summary.clicks == N_CLICKS
    return dump_sqlite(settings.embedded_store_file, (*COMPARED, "trending"), pipeline=pipe.pipeline_id)


def test_stream_on_three_brokers_two_dask_workers_and_two_cassandra_nodes_survives_kills(
        tmp_path: Path, unique_name: str) -> None:
    assert PRODUCER_CONFIG["acks"] == "all"  # what makes min.insync.replicas matter
    keyspace = "t_" + "".join(ch if ch.isalnum() else "_" for ch in unique_name).lower()[-40:]
    cluster = cluster_settings(tmp_path, kafka_brokers=3, cassandra_nodes=2)
    settings = cluster.replace(
        store="cassandra", kafka_replication_factor=3, kafka_min_insync_replicas=2,
        cassandra_keyspace=keyspace, cassandra_replication_factor=2, window_ttl_s=TTL_S,
        topic=unique_name, consumer_group=unique_name, dead_letter_topic=unique_name + "-dlq",
        archive_url=(tmp_path / "archive").as_uri())
    clicks = make_clicks(1_500, seed=31, limit=N_CLICKS, span_s=240)
    recs = [(k, v) for k, v, _n, _t in records(clicks)]
    half = len(recs) // 2
    t0 = time.monotonic()
    try:
        services.up(cluster, ["kafka", "cassandra"], log=print)
        print(f"3 brokers and 2 Cassandra nodes up in {time.monotonic() - t0:.1f} s")
        report = services.status(cluster, ["kafka", "cassandra"])
        assert [(s.label, s.healthy) for s in report] == [
            ("kafka-1", True), ("kafka-2", True), ("kafka-3", True),
            ("cassandra-1", True), ("cassandra-2", True)], report
        ensure_topic(settings, settings.topic, PARTITIONS)
        victim_broker = _check_kafka_layout(settings)
        _check_cassandra_layout(settings)
        _send(settings, recs[:half])

        with dask_cluster(2, tmp_path) as (scheduler, dashboard), Client(scheduler) as client:
            pids = client.run(os.getpid)  # {worker address: pid of the worker process}
            assert len(pids) == 2
            batch_tasks(client)  # the scheduler records the task stream from now on
            proc = subprocess.Popen([sys.executable, *_cluster_argv(settings, tmp_path / "work", scheduler)],
                                    cwd=REPO, env=ENV, start_new_session=True, stdout=subprocess.PIPE,
                                    stderr=subprocess.PIPE, text=True)
            try:
                victim_worker = None
                started = time.monotonic()
                while victim_worker is None and proc.poll() is None and time.monotonic() - started < 180:
                    busy = [w for w, keys in client.processing().items()
                            if any(str(k).startswith("process_batch") for k in keys) and w in pids]
                    if busy and len(batch_tasks(client)) >= 4:
                        victim_worker = busy[0]
                        os.kill(pids[victim_worker], signal.SIGKILL)
                    else:
                        time.sleep(0.1)
                before = {t["worker"] for t in batch_tasks(client)}
                assert services.stop_node(cluster, "kafka", victim_broker)
                print(f"worker {victim_worker} killed, broker {victim_broker + 1} stopped "
                      f"{time.monotonic() - started:.1f} s into the run")
                _send(settings, recs[half:])  # acks=all, 2 of 3 replicas in sync: accepted
                out, err = proc.communicate(timeout=300)
            finally:
                stop(proc)
            assert victim_worker is not None, f"no batch seen running on a worker (exit {proc.returncode})"
            assert proc.returncode == 0, err[-3000:]
            assert f"stream: Dask scheduler {scheduler}, 2 workers" in out
            assert f"stream: Dask dashboard at {dashboard}" in out
            assert f"stream: {N_CLICKS} clicks (0 late, 0 dead letters)" in out, out
            assert before == set(pids), f"batches before the kill ran on {before}, workers {set(pids)}"
            client.wait_for_workers(2, timeout=60)  # the victim's nanny started a new one
            assert set(client.run(os.getpid).values()) - set(pids.values()), "no worker was restarted"

        states = {s.label: s.healthy for s in services.status(cluster, ["kafka"])}
        assert list(states.values()).count(True) == 2 and not states[f"kafka-{victim_broker + 1}"]
        # every row on both Cassandra nodes: read at ALL (both replicas must answer)
        at_all = settings.replace(cassandra_write_consistency="ALL")  # dump_cassandra's profile
        stored = dump_cassandra(at_all, (*COMPARED, "trending"), pipeline=settings.pipeline_id)
        assert_tables_equal(stored, recount(clicks))
        assert_tables_equal(stored, _single_process_tables(recs, tmp_path), (*COMPARED, "trending"))
        assert len(stored["trending"]) > 0
        archived = read_archive(settings.archive)
        assert len(archived) == N_CLICKS and archived["click_id"].is_unique
        assert set(archived["click_id"]) == {c.click_id for c in clicks}
        fs, root = filesystem(settings.archive)
        files = [f.rsplit("/", 1)[1] for f in fs.find(root) if f.endswith(".parquet") and "_tmp" not in f]
        assert {name[:5] for name in files} == {f"p{p:04d}" for p in range(PARTITIONS)}
        print(f"whole test {time.monotonic() - t0:.1f} s")
    finally:
        services.down(cluster, ["kafka", "cassandra"], log=print)
