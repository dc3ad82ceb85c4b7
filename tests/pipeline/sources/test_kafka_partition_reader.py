"""``PartitionReader`` against the real broker: waits for records not yet appended, holds a
bounded number past a range, is closed once its partition is no longer read, and is set
where asked before the first take (an idle pipeline has each worker's readers ready)."""

from __future__ import annotations

import threading
import time
import uuid
from pathlib import Path

import pytest
from kafka import KafkaProducer

from pipeline import Pipeline
from pipeline.sources import kafka_partition_reader
from pipeline.sources.kafka_partition_reader import PartitionReader, partition_reader
from producer.sender import ensure_topic

pytestmark = pytest.mark.integration


def _values(start: int, end: int) -> list[bytes]:
    return [f'{{"o": {o}}}'.encode() for o in range(start, end)]


def _topic(settings, n: int, partitions: int = 1) -> str:  # type: ignore[no-untyped-def]
    topic = f"test-partition-reader-{uuid.uuid4().hex[:8]}"
    ensure_topic(settings, topic, partitions)
    _append(settings.kafka_bootstrap, topic, 0, n)
    return topic


def _filled_reader(settings, n: int, partitions: int = 1) -> tuple[str, str, PartitionReader]:  # type: ignore[no-untyped-def]
    """(bootstrap, topic, this process's reader of its partition 0) of a new topic of ``n``
    records in partition 0."""
    topic = _topic(settings, n, partitions)
    return settings.kafka_bootstrap, topic, partition_reader(settings.kafka_bootstrap, topic, 0)


def _append(bootstrap: str, topic: str, start: int, end: int) -> None:
    producer = KafkaProducer(bootstrap_servers=bootstrap, linger_ms=5)
    for v in _values(start, end):
        producer.send(topic, value=v, partition=0)
    producer.flush()
    producer.close()


def test_a_range_not_yet_appended_is_returned_once_it_is(services_running) -> None:  # type: ignore[no-untyped-def]
    bootstrap, topic, reader = _filled_reader(services_running, 100)
    assert reader.take(0, 100, 30.0).values == _values(0, 100)
    later = threading.Timer(1.0, _append, (bootstrap, topic, 100, 150))
    later.start()
    t0 = time.monotonic()
    batch = reader.take(100, 150, 30.0)
    assert time.monotonic() - t0 >= 0.9  # it waited for the append
    assert batch.values == _values(100, 150) and batch.offsets.tolist() == list(range(100, 150))
    later.join()
    reader.close()


def test_it_holds_at_most_max_held_records_and_reads_on(services_running, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    monkeypatch.setattr(kafka_partition_reader, "MAX_HELD_RECORDS", 100)
    *_, reader = _filled_reader(services_running, 1_000)
    assert reader.take(0, 10, 30.0).values == _values(0, 10)
    assert 0 < reader.held_records() <= 100  # read past the range in the same poll, then cut
    assert reader.take(10, 1_000, 30.0).values == _values(10, 1_000)
    assert reader.held_records() == 0
    assert reader.take(500, 510, 30.0).values == _values(500, 510)  # asked out of order: seeks back
    assert reader.take(510, 520, 30.0).values == _values(510, 520)
    reader.close()


def test_a_reader_not_used_for_idle_s_is_closed_by_the_next_lookup(services_running, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    monkeypatch.setattr(kafka_partition_reader, "IDLE_S", 0.5)
    bootstrap, topic, reader = _filled_reader(services_running, 50, partitions=2)
    assert reader.take(0, 20, 30.0).values == _values(0, 20)
    time.sleep(1.0)
    other = partition_reader(bootstrap, topic, 1)
    assert reader.closed and not other.closed
    assert (topic, 0) not in kafka_partition_reader.open_readers()
    again = partition_reader(bootstrap, topic, 0)
    assert again is not reader
    assert again.take(20, 50, 30.0).values == _values(20, 50)
    again.close()
    other.close()


def test_start_at_keeps_a_reader_that_is_there_and_sets_one_that_is_not(services_running) -> None:  # type: ignore[no-untyped-def]
    *_, reader = _filled_reader(services_running, 300)
    reader.start_at(200)  # before any take: set there, whatever it reads meanwhile
    assert reader.take(200, 250, 30.0).values == _values(200, 250)
    held = reader.held_records()
    assert held > 0  # 250.. came in the same poll
    reader.start_at(250)  # already there: keeps what it holds
    assert reader.held_records() == held
    reader.start_at(100)  # elsewhere: what it held is dropped
    assert reader.take(100, 300, 30.0).values == _values(100, 300)
    reader.close()


def _idle_settings(settings, name: str, tmp_path: Path, partitions: int):  # type: ignore[no-untyped-def]
    """A Kafka topic of its own, with nothing in it; the embedded store and archive in tmp_path."""
    own = settings.replace(topic=name, consumer_group=name, dead_letter_topic=name + "-dlq",
                           store="embedded", work_dir=str(tmp_path / "work"),
                           archive_url=(tmp_path / "archive").as_uri())
    ensure_topic(own, name, partitions)
    return own


def test_an_idle_pipeline_has_each_worker_open_readers_of_its_partitions(
        services_running, unique_name: str, dask_client, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    settings = _idle_settings(services_running, unique_name, tmp_path, 4)

    def reading() -> list[int]:  # on a worker: the partitions of the topic it has a reader of
        from pipeline.sources.kafka_partition_reader import open_readers

        return [p for topic, p in open_readers() if topic == unique_name]

    with Pipeline(settings, client=dask_client) as pipe:
        runner = threading.Thread(target=lambda: pipe.run(until_idle_s=60), daemon=True)
        runner.start()
        deadline = time.monotonic() + 30
        by_worker = dask_client.run(reading)
        while sum(len(p) for p in by_worker.values()) < 4 and time.monotonic() < deadline:
            time.sleep(0.2)
            by_worker = dask_client.run(reading)
        pipe.stop()
        runner.join(60)
    assert pipe.progress().records == 0  # nothing was there to read: the readers were opened idle
    assert sorted(by_worker.values()) == [[0, 2], [1, 3]]


def test_workers_that_do_not_answer_leave_an_idle_pipeline_running(
        services_running, unique_name: str, dask_client, tmp_path: Path, caplog) -> None:  # type: ignore[no-untyped-def]
    settings = _idle_settings(services_running, unique_name, tmp_path, 2)
    asked = []

    def no_answer() -> tuple[str, ...]:
        asked.append(time.monotonic())
        raise TimeoutError("scheduler did not answer")

    with Pipeline(settings, client=dask_client) as pipe:
        pipe._workers = no_answer  # type: ignore[method-assign]
        summary = pipe.run(until_idle_s=2.0)
    assert asked and summary.records == 0 and pipe.status() == "stopped"
    assert "partition readers not opened" in caplog.text
