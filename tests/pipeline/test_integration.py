"""The pipeline on the real servers: exact windows, archive, dead letters, late clicks, restart.

One full 1,000,000-click run (Kafka -> Cassandra + HDFS), the same records through the
in-process topic into the embedded store and a file:// archive, and smaller runs for
late clicks and restart. Every expectation comes from ``conftest.recount``.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from kafka import KafkaConsumer, TopicPartition

from clickstream.archive import filesystem
from clickstream.events import Click
from clickstream.memory_topic import MemoryTopic
from clickstream.settings import Settings
from pipeline import Pipeline
from pipeline.sinks.dead_letter import read_dead_letter_file
from producer.expand import expand_clicks
from producer.sender import ensure_topic, records
from producer.synthetic import generate_rows
from tests.pipeline.conftest import (
    COMPARED,
    assert_tables_equal,
    dump_cassandra,
    dump_sqlite,
    read_archive,
    recount,
)

pytestmark = pytest.mark.integration

N_CLICKS = 1_000_000
N_BAD = 1_000
CLICKS_PER_RECORD = 4  # the wire format's batch records (one destination each): 4x fewer sends
BAD_VALUES = (b"{not json", b"[1, 2, 3]", b'{"id": 1, "ts": 1422748800000, "prev": "a"}',
              b'{"id": -5, "ts": 1422748800000, "prev": "a", "curr": "b", "type": "link"}',
              b'{"id": 7, "ts": 12, "prev": "a", "curr": "b", "type": "link"}',
              b'{"id": 8, "ts": 1422748800000, "prev": "a", "curr": "b", "type": "portal"}',
              b'{"clicks": []}', b"\xff\xfe",
              b'{"curr":"b","ids":[1,2],"ts":[1422748800000],"prevs":["a","a"],"types":["link","link"]}')


def make_clicks(rows: int, seed: int, limit: int, span_s: float) -> list[Click]:
    return list(expand_clicks(generate_rows(rows, seed=seed, head_share=0.1), seed=seed,
                              span_s=span_s, jitter_ms=200, limit=limit))


def with_bad_records(clicks: list[Click]) -> list[tuple[bytes, bytes]]:
    """(key, value) records of the clicks, with N_BAD malformed ones spread evenly among them."""
    good = [(key, value) for key, value, _n, _ts in records(clicks, CLICKS_PER_RECORD)]
    every = len(good) // N_BAD
    out = []
    for i, rec in enumerate(good):
        out.append(rec)
        if i % every == every - 1 and i // every < N_BAD:
            bad = i // every
            out.append((f"bad-{bad}".encode(), BAD_VALUES[bad % len(BAD_VALUES)]))
    assert len(out) == len(good) + N_BAD
    return out


def produce(settings: Settings, topic: str, recs: list[tuple[bytes, bytes]]) -> None:
    """Fill ``topic`` (4 partitions) with ``recs`` in order, every record acknowledged.

    A test's setup, not the code under test: librdkafka fills 10x faster than kafka-python
    (the producer's own tests use ``producer.sender``). ``murmur2_random`` places keys
    where Kafka's Java client and kafka-python would.
    """
    from confluent_kafka import Producer

    ensure_topic(settings, topic, 4)
    failed: list[str] = []

    def delivered(err: object, _msg: object) -> None:
        if err is not None:
            failed.append(str(err))

    producer = Producer({"bootstrap.servers": settings.kafka_bootstrap, "acks": "all",
                         "enable.idempotence": True, "compression.type": "lz4", "linger.ms": 20,
                         "partitioner": "murmur2_random", "queue.buffering.max.messages": 200_000})
    for key, value in recs:
        while True:
            try:
                producer.produce(topic, value, key, on_delivery=delivered)
                break
            except BufferError:  # the local queue is full: let deliveries drain it
                producer.poll(0.05)
        producer.poll(0)
    left = producer.flush(120)
    assert left == 0 and not failed, f"fill {topic}: {left} undelivered, errors {failed[:3]}"


def dead_letters(settings: Settings, topic: str, expected: int) -> list:
    """The dead-letter topic's records (stops at ``expected`` or after 10 s without one)."""
    consumer = KafkaConsumer(topic, bootstrap_servers=settings.kafka_bootstrap, group_id=None,
                             auto_offset_reset="earliest", consumer_timeout_ms=10_000)
    got = []
    for record in consumer:
        got.append(record)
        if len(got) == expected:
            break
    consumer.close()
    return got


@pytest.fixture(scope="module")
def million() -> tuple[list[Click], list[tuple[bytes, bytes]]]:
    clicks = make_clicks(6_000, seed=5, limit=N_CLICKS, span_s=300)
    assert len(clicks) == N_CLICKS
    return clicks, with_bad_records(clicks)


@pytest.fixture(scope="module")
def million_expected(million) -> dict:
    return recount(million[0])


@pytest.fixture(scope="module")
def cassandra_run(million, services_running: Settings, tmp_path_factory, dask_client) -> Iterator[dict]:
    """The one 1M run on Kafka -> Cassandra + HDFS (its own keyspace, topic and archive)."""
    import uuid

    from clickstream.store.cassandra import apply_schema, connect

    name = f"pipeline-1m-{uuid.uuid4().hex[:8]}"
    settings = services_running.replace(
        cassandra_keyspace="t_" + name.replace("-", "_"), store="cassandra", topic=name,
        dead_letter_topic=name + "-dlq", consumer_group=name,
        archive_url=f"{services_running.hdfs_url}/tests/{name}",
        work_dir=str(tmp_path_factory.mktemp("work")))
    apply_schema(settings)
    ensure_topic(settings, settings.dead_letter_topic, 1)
    produce(settings, settings.topic, million[1])
    with Pipeline(settings, client=dask_client) as pipe:
        partitions = len(pipe.source.partitions)
        summary = pipe.run(until_idle_s=2)
    yield {"settings": settings, "summary": summary, "partitions": partitions,
           "tables": dump_cassandra(settings, (*COMPARED, "trending"))}
    remove_archive(settings.archive)
    cluster, session = connect(settings)
    try:
        session.execute(f"DROP KEYSPACE IF EXISTS {settings.cassandra_keyspace}", timeout=120)
    finally:
        cluster.shutdown()


@pytest.fixture
def hdfs_archive(services_running: Settings, unique_name: str) -> Iterator[str]:
    """An archive URL of its own on HDFS, removed afterwards."""
    url = f"{services_running.hdfs_url}/tests/{unique_name}"
    yield url
    remove_archive(url)


def remove_archive(url: str) -> None:
    fs, path = filesystem(url)
    if fs.exists(path):
        fs.rm(path, recursive=True)


def test_million_clicks_kafka_to_cassandra_and_hdfs_are_exact(cassandra_run, million, million_expected,
                                                               dask_client) -> None:
    settings: Settings = cassandra_run["settings"]
    summary = cassandra_run["summary"]
    assert cassandra_run["partitions"] == 4
    assert len(dask_client.scheduler_info()["workers"]) == 2
    assert summary.clicks == N_CLICKS
    assert summary.dead_letters == N_BAD
    assert summary.late_clicks == 0
    assert_tables_equal(cassandra_run["tables"], million_expected)
    archived = read_archive(settings.archive)
    assert len(archived) == N_CLICKS
    assert archived["click_id"].is_unique
    assert set(archived["click_id"]) == {c.click_id for c in million[0]}
    assert not archived["late"].any()
    letters = dead_letters(settings, settings.dead_letter_topic, N_BAD)
    assert len(letters) == N_BAD
    assert {r.key for r in letters} == {f"bad-{i}".encode() for i in range(N_BAD)}
    assert all(dict(r.headers)["reason"] for r in letters)
    # committed offsets cover everything read
    ends = KafkaConsumer(bootstrap_servers=settings.kafka_bootstrap)
    tps = [TopicPartition(settings.topic, p) for p in range(4)]
    assert summary.committed == {tp.partition: off for tp, off in ends.end_offsets(tps).items()}
    ends.close()


def test_same_records_in_memory_give_identical_tables(cassandra_run, million, dask_client,
                                                      tmp_path: Path) -> None:
    settings = Settings(work_dir=str(tmp_path / "work"), archive_url=(tmp_path / "archive").as_uri(),
                        consumer_group="embedded-1m")
    topic = MemoryTopic("clicks-1m", 4)
    for key, value in million[1]:
        topic.append(key, value)
    topic.close()
    with Pipeline(settings, client=dask_client, memory_topic=topic) as pipe:
        summary = pipe.run()
    assert summary.clicks == N_CLICKS and summary.dead_letters == N_BAD
    embedded = dump_sqlite(settings.embedded_store_file, (*COMPARED, "trending"))
    assert_tables_equal(embedded, cassandra_run["tables"], (*COMPARED, "trending"))
    assert len(cassandra_run["tables"]["trending"]) > 0
    archived = read_archive(settings.archive)
    assert len(archived) == N_CLICKS and archived["click_id"].is_unique
    letters = read_dead_letter_file(settings.work_path / "dead-letter" / "clicks-1m.jsonl")
    assert len(letters) == N_BAD and all(r["reason"] for r in letters)


def test_late_clicks_are_counted_late_and_archived(isolated_cassandra_settings: Settings, unique_name: str,
                                                   hdfs_archive: str, dask_client) -> None:
    settings = isolated_cassandra_settings.replace(
        topic=unique_name, consumer_group=unique_name, dead_letter_topic=unique_name + "-dlq",
        archive_url=hdfs_archive)
    on_time = make_clicks(300, seed=9, limit=20_000, span_s=100)
    t0 = on_time[0].ts_ms - on_time[0].ts_ms % 60_000
    late = [Click((1 << 50) + i, t0 + i * 20, "other-search", c.curr, "external")
            for i, c in enumerate(on_time[:50])]
    produce(settings, settings.topic, [(k, v) for k, v, _n, _t in records(on_time)])
    with Pipeline(settings, client=dask_client) as pipe:
        runner = threading.Thread(target=lambda: pipe.run(until_idle_s=60), daemon=True)
        runner.start()
        deadline = time.monotonic() + 120
        while sum(pipe.consumed_offsets().values()) < len(on_time) and time.monotonic() < deadline:
            time.sleep(0.1)
        assert sum(pipe.consumed_offsets().values()) == len(on_time)
        produce(settings, settings.topic, [(k, v) for k, v, _n, _t in records(late)])
        want = len(on_time) + len(late)
        while sum(pipe.consumed_offsets().values()) < want and time.monotonic() < deadline:
            time.sleep(0.1)
        pipe.stop()
        runner.join(120)
        assert not runner.is_alive()
    expected = recount(on_time + late, late_ids={c.click_id for c in late})
    stored = dump_cassandra(settings)
    assert_tables_equal(stored, expected)
    assert sum(r[4] for r in stored["window_totals"] if r[0] == 1_000) == len(late)
    archived = read_archive(settings.archive).set_index("click_id")
    assert len(archived) == len(on_time) + len(late)
    assert archived.loc[[c.click_id for c in late], "late"].all()
    assert not archived.loc[[c.click_id for c in on_time], "late"].any()


def test_restart_after_clean_stop_resumes_exactly_with_no_late_clicks(
        isolated_cassandra_settings: Settings, unique_name: str, hdfs_archive: str, dask_client) -> None:
    settings = isolated_cassandra_settings.replace(
        topic=unique_name, consumer_group=unique_name, dead_letter_topic=unique_name + "-dlq",
        archive_url=hdfs_archive, stream_batch_records=4_000)
    clicks = make_clicks(400, seed=11, limit=30_000, span_s=120)
    recs = list(records(clicks))
    produce(settings, settings.topic, [(k, v) for k, v, _n, _t in recs])
    with Pipeline(settings, client=dask_client) as pipe:
        first = pipe.run(max_clicks=12_000)
    assert 12_000 <= first.clicks < 30_000
    with Pipeline(settings, client=dask_client) as pipe:
        assert pipe.source.committed() == first.committed  # where the restart resumes
        second = pipe.run(until_idle_s=2)
    assert first.clicks + second.clicks == len(clicks)
    # the restart reopened the windows the clean stop had written: no click is late
    assert second.late_clicks == 0
    stored = dump_cassandra(settings)
    assert_tables_equal(stored, recount(clicks))
    archived = read_archive(settings.archive)
    assert len(archived) == len(clicks) and archived["click_id"].is_unique


def test_confluent_kafka_source_gives_exact_windows(isolated_cassandra_settings: Settings, unique_name: str,
                                                     hdfs_archive: str, dask_client) -> None:
    settings = isolated_cassandra_settings.replace(
        topic=unique_name, consumer_group=unique_name, dead_letter_topic=unique_name + "-dlq",
        archive_url=hdfs_archive, stream_source_client="confluent-kafka")
    clicks = make_clicks(300, seed=13, limit=20_000, span_s=90)
    produce(settings, settings.topic, [(k, v) for k, v, _n, _t in records(clicks)])
    with Pipeline(settings, client=dask_client) as pipe:
        assert type(pipe.source.fetcher()).__name__ == "ConfluentFetcher"
        summary = pipe.run(until_idle_s=2)
    assert summary.clicks == len(clicks) and summary.late_clicks == 0
    assert_tables_equal(dump_cassandra(settings, pipeline=settings.pipeline_id), recount(clicks))
    archived = read_archive(settings.archive)
    assert len(archived) == len(clicks) and archived["click_id"].is_unique
