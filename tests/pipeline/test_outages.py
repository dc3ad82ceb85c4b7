"""Outages mid-stream: Cassandra down for 20 s, the Kafka broker restarted, HDFS down for 20 s.

Each test runs the pipeline over a paced replay on servers of its own (other ports, its
own data folder: stopping them cannot disturb other tests), stops one server mid-run and
starts it again. The pipeline must say that it waits, stop fetching (no new cycle while
a write waits), resume by itself and lose nothing: window rows == an independent recount,
no late clicks, archive rows == input clicks each once.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from kafka import KafkaProducer

from clickstream.settings import Settings
from clickstream.store.cassandra import apply_schema
from launch import services
from pipeline import Pipeline
from producer.sender import ensure_topic, records
from tests.pipeline.conftest import COMPARED, assert_tables_equal, dump_cassandra, read_archive, recount
from tests.pipeline.test_integration import make_clicks, remove_archive

pytestmark = pytest.mark.integration

N_CLICKS = 40_000
REPLAY_S = 30.0  # the paced replay spans the outage
OUTAGE_S = 20.0


@pytest.fixture(scope="module")
def own_servers(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Settings]:
    """Kafka, Cassandra and HDFS of this module only, on ports the shared ones do not use."""
    settings = Settings(stack="local", work_dir=str(tmp_path_factory.mktemp("outage-servers")),
                        kafka_port=29092, kafka_controller_port=29093, cassandra_port=29042,
                        cassandra_storage_port=27000, cassandra_jmx_port=27199, hdfs_port=29000,
                        hdfs_http_port=29870, store="cassandra", outage_timeout_s=180.0,
                        services_start_timeout_s=300.0)
    services.up(settings, services.SERVER_NAMES)
    try:
        yield settings
    finally:
        services.down(settings, services.SERVER_NAMES)


def _replay(settings: Settings, recs: list[tuple[bytes, bytes]], seconds: float) -> None:
    """Send ``recs`` evenly over ``seconds`` (the producer retries while the broker is away)."""
    producer = KafkaProducer(bootstrap_servers=settings.kafka_bootstrap, acks="all", linger_ms=20,
                             enable_idempotence=True, retries=2**31 - 1, delivery_timeout_ms=180_000,
                             max_block_ms=180_000)
    chunk = max(1, len(recs) // int(seconds * 10))
    t0 = time.monotonic()
    for i in range(0, len(recs), chunk):
        for key, value in recs[i:i + chunk]:
            producer.send(settings.topic, key=key, value=value)
        time.sleep(max(0.0, t0 + (i + chunk) / len(recs) * seconds - time.monotonic()))
    producer.flush()
    producer.close()


def _run_with_outage(settings: Settings, server: str, outage_s: float, dask_client) -> tuple[list, set[str]]:
    clicks = make_clicks(800, seed=31, limit=N_CLICKS, span_s=120)
    recs = [(k, v) for k, v, _n, _t in records(clicks)]
    ensure_topic(settings, settings.topic, 4)
    apply_schema(settings)
    statuses: set[str] = set()
    with Pipeline(settings, client=dask_client) as pipe:
        # Kafka: the producer may take seconds to resend after the broker is back, which
        # must not read as the end of the stream; the other outages end with a backlog
        idle_s = 10 if server == "kafka" else 4
        runner = threading.Thread(target=lambda: pipe.run(until_idle_s=idle_s), daemon=True)
        sender = threading.Thread(target=_replay, args=(settings, recs, REPLAY_S), daemon=True)
        runner.start()
        sender.start()
        time.sleep(6)
        services.down(settings, [server])
        deadline = time.monotonic() + outage_s
        while time.monotonic() < deadline:
            statuses.add(pipe.status())
            time.sleep(0.5)
        services.up(settings, [server])
        sender.join(240)
        runner.join(300)
        assert not sender.is_alive() and not runner.is_alive()
    return clicks, statuses


def _assert_exact(settings: Settings, clicks: list) -> None:
    stored = dump_cassandra(settings, COMPARED, pipeline=settings.pipeline_id)
    assert_tables_equal(stored, recount(clicks))
    archived = read_archive(settings.archive)
    assert len(archived) == len(clicks) and archived["click_id"].is_unique
    assert not archived["late"].any()


def _settings(own_servers: Settings, name: str) -> Settings:
    return own_servers.replace(topic=name, consumer_group=name, dead_letter_topic=name + "-dlq",
                               cassandra_keyspace="t_" + name.replace("-", "_")[-40:],
                               archive_url=f"{own_servers.hdfs_url}/tests/{name}")


def test_cassandra_down_for_20_s_is_waited_for_and_loses_nothing(own_servers: Settings, unique_name: str,
                                                                 dask_client) -> None:
    settings = _settings(own_servers, unique_name)
    clicks, statuses = _run_with_outage(settings, "cassandra", OUTAGE_S, dask_client)
    assert any(s.startswith("waiting for store") for s in statuses), statuses
    _assert_exact(settings, clicks)
    remove_archive(settings.archive)


def test_kafka_broker_restarted_mid_stream_loses_nothing(own_servers: Settings, unique_name: str,
                                                          dask_client) -> None:
    settings = _settings(own_servers, unique_name)
    clicks, statuses = _run_with_outage(settings, "kafka", 10.0, dask_client)
    assert any(s.startswith("waiting for") for s in statuses), statuses
    _assert_exact(settings, clicks)
    remove_archive(settings.archive)


def test_hdfs_down_for_20_s_keeps_the_archive_and_loses_nothing(own_servers: Settings, unique_name: str,
                                                               dask_client, tmp_path: Path) -> None:
    settings = _settings(own_servers, unique_name)
    clicks, statuses = _run_with_outage(settings, "hdfs", OUTAGE_S, dask_client)
    assert any(s.startswith("waiting for") for s in statuses), statuses
    _assert_exact(settings, clicks)
    remove_archive(settings.archive)
