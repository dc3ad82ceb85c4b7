"""A 3-broker KRaft cluster (ports of its own): a topic with replication factor 3 and
min.insync.replicas 2, and the pipeline still exact when a broker is stopped mid-run.

The pipeline reads the cluster and writes a keyspace of its own on the shared Cassandra
and a file:// archive; the oracle is ``tests.pipeline.conftest.recount`` of the input.
"""

from __future__ import annotations

import threading
import time
from pathlib import Path

import pytest
from dask.distributed import Client
from kafka import KafkaAdminClient
from kafka.admin import ConfigResource, ConfigResourceType

from clickstream.settings import Settings
from launch import services
from pipeline import Pipeline
from producer.sender import PRODUCER_CONFIG, ensure_topic, make_producer, records
from tests.pipeline.conftest import COMPARED, assert_tables_equal, dump_cassandra, recount
from tests.pipeline.test_integration import make_clicks
from tests.scale.conftest import cluster_settings

pytestmark = pytest.mark.integration

N_CLICKS = 40_000


def _leaders(admin: KafkaAdminClient, topic: str) -> dict[int, tuple[int, list[int], list[int]]]:
    """partition -> (leader node id, replicas, in-sync replicas)."""
    (desc,) = admin.describe_topics([topic])
    return {p["partition_index"]: (p["leader_id"], p["replica_nodes"], p["isr_nodes"])
            for p in desc["partitions"]}


def _send(settings: Settings, recs: list[tuple[bytes, bytes]]) -> None:
    producer = make_producer(settings)
    futures = [producer.send(settings.topic, key=k, value=v) for k, v in recs]
    producer.flush()
    assert all(f.succeeded() for f in futures)
    producer.close()


def test_three_brokers_replicate_and_survive_a_stopped_broker(
        tmp_path: Path, isolated_cassandra_settings: Settings, unique_name: str,
        dask_client: Client) -> None:
    assert PRODUCER_CONFIG["acks"] == "all"  # what makes min.insync.replicas matter
    kafka = cluster_settings(tmp_path, kafka_brokers=3)
    settings = isolated_cassandra_settings.replace(
        kafka_bootstrap_servers=kafka.kafka_bootstrap, kafka_replication_factor=3,
        kafka_min_insync_replicas=2, topic=unique_name, consumer_group=unique_name,
        dead_letter_topic=unique_name + "-dlq", archive_url=(tmp_path / "archive").as_uri(),
        work_dir=str(tmp_path / "run"), stream_batch_records=2_000, checkpoint_interval_s=0.5)
    clicks = make_clicks(1_500, seed=31, limit=N_CLICKS, span_s=240)
    recs = [(k, v) for k, v, _n, _t in records(clicks)]
    t0 = time.monotonic()
    try:
        services.up(kafka, ["kafka"], log=print)
        print(f"3 brokers up in {time.monotonic() - t0:.1f} s")
        assert [s.label for s in services.status(kafka, ["kafka"]) if s.healthy] == \
            ["kafka-1", "kafka-2", "kafka-3"]
        ensure_topic(settings, settings.topic, 4)
        admin = KafkaAdminClient(bootstrap_servers=kafka.kafka_bootstrap)
        try:
            leaders = _leaders(admin, settings.topic)
            assert sorted(leaders) == [0, 1, 2, 3]
            assert all(sorted(replicas) == [1, 2, 3] for _l, replicas, _isr in leaders.values())
            configs = admin.describe_configs([ConfigResource(ConfigResourceType.TOPIC, settings.topic)])
            min_isr = configs["topic"][settings.topic]["min.insync.replicas"]
            assert (min_isr.get("value") if isinstance(min_isr, dict) else min_isr) == "2", min_isr
            offsets_topic = _leaders(admin, "__consumer_offsets")
            assert all(len(replicas) == 3 for _l, replicas, _isr in offsets_topic.values())
        finally:
            admin.close()
        half = len(recs) // 2
        _send(settings, recs[:half])

        with Pipeline(settings, client=dask_client) as pipe:
            result: dict[str, object] = {}
            runner = threading.Thread(target=lambda: result.update(summary=pipe.run(max_clicks=N_CLICKS)))
            runner.start()
            deadline = time.monotonic() + 120
            while sum(pipe.consumed_offsets().values()) == 0 and time.monotonic() < deadline:
                time.sleep(0.2)
            assert sum(pipe.consumed_offsets().values()) > 0, pipe.status()
            victim = leaders[0][0] - 1  # the broker leading partition 0: its partitions move
            t_stop = time.monotonic()
            assert services.stop_node(kafka, "kafka", victim)
            print(f"broker {victim + 1} stopped in {time.monotonic() - t_stop:.1f} s after "
                  f"{sum(pipe.consumed_offsets().values())} records read")
            _send(settings, recs[half:])  # acks=all with 2 of 3 replicas in sync: accepted
            runner.join(300)
            assert not runner.is_alive(), pipe.status()
        summary = result["summary"]
        assert summary.clicks == N_CLICKS and summary.late_clicks == 0 and summary.dead_letters == 0
        stored = dump_cassandra(settings, COMPARED, pipeline=settings.pipeline_id)
        assert_tables_equal(stored, recount(clicks))
        states = {s.label: s.healthy for s in services.status(kafka, ["kafka"])}
        assert list(states.values()).count(True) == 2 and not states[f"kafka-{victim + 1}"]
        print(f"whole test {time.monotonic() - t0:.1f} s")
    finally:
        services.down(kafka, ["kafka"], log=print)
