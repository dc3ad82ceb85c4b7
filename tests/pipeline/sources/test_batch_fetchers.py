"""The columnar range fetchers against the real broker: exact ``[start, end)`` ranges.

``kafka_python_fetch_batch`` (tuned kafka-python), ``KafkaFetcher(pinned=True)`` (a
``PartitionReader`` per partition) and ``ConfluentFetcher`` (librdkafka) read the same known records
of a unique 2-partition topic: a whole partition, a range in the middle, consecutive
ranges (no seek in between), a jump back, the other partition, an empty range, and a
range past the log end (a ``SourceError`` naming it).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator

import numpy as np
import pytest
from kafka import KafkaProducer

from pipeline.sources.base import RecordBatch
from pipeline.sources.confluent import ConfluentFetcher
from pipeline.sources.kafka import KafkaFetcher, SourceError
from pipeline.sources.kafka_batch import columnar_consumer, kafka_python_fetch_batch
from producer.sender import ensure_topic

pytestmark = pytest.mark.integration

COUNTS = {0: 300, 1: 50}  # records per partition

RangeFetch = Callable[[int, int, int], RecordBatch]


def value(partition: int, offset: int) -> bytes:
    return f'{{"p": {partition}, "o": {offset}}}'.encode()


def key(partition: int, offset: int) -> bytes | None:
    return None if offset % 7 == 0 else f"k{partition}-{offset}".encode()


@pytest.fixture(scope="module")
def filled_topic(services_running) -> str:  # type: ignore[no-untyped-def]
    import uuid

    topic = f"test-batch-fetch-{uuid.uuid4().hex[:8]}"
    ensure_topic(services_running, topic, len(COUNTS))
    producer = KafkaProducer(bootstrap_servers=services_running.kafka_bootstrap, linger_ms=5)
    for partition, n in COUNTS.items():
        for offset in range(n):
            producer.send(topic, key=key(partition, offset), value=value(partition, offset),
                          partition=partition)
    producer.flush()
    producer.close()
    return topic


@pytest.fixture(params=["kafka-python", "kafka-python pinned", "confluent-kafka"])
def fetch(request: pytest.FixtureRequest, filled_topic: str, kafka_bootstrap: str,
          ) -> Iterator[tuple[RangeFetch, Callable[[float], RangeFetch]]]:
    """(fetch with a 30 s timeout, fetch with a given timeout)."""
    if request.param == "kafka-python":
        consumer = columnar_consumer(kafka_bootstrap)

        def with_timeout(timeout_s: float) -> RangeFetch:
            return lambda p, s, e: kafka_python_fetch_batch(consumer, filled_topic, p, s, e, timeout_s)

        yield with_timeout(30.0), with_timeout
        consumer.close()
    elif request.param == "kafka-python pinned":
        def pinned(timeout_s: float) -> RangeFetch:
            return KafkaFetcher(kafka_bootstrap, filled_topic, timeout_s, pinned=True)

        yield pinned(30.0), pinned
    else:
        def confluent(timeout_s: float) -> RangeFetch:
            return ConfluentFetcher(kafka_bootstrap, filled_topic, timeout_s)

        yield confluent(30.0), confluent


def check(batch: RecordBatch, partition: int, start: int, end: int) -> None:
    assert (batch.partition, batch.start_offset, batch.end_offset) == (partition, start, end)
    assert batch.offsets.dtype == np.int64 and batch.timestamps_ms.dtype == np.int64
    assert batch.offsets.tolist() == list(range(start, end))
    assert batch.values == [value(partition, o) for o in range(start, end)]
    assert batch.keys == [key(partition, o) for o in range(start, end)]
    assert len(batch) == end - start
    assert bool((batch.timestamps_ms > 1_600_000_000_000).all())


def test_exact_ranges(fetch: tuple[RangeFetch, Callable[[float], RangeFetch]]) -> None:
    read, _ = fetch
    for partition, start, end in [(0, 0, 300), (0, 120, 180), (0, 180, 250), (0, 250, 300),
                                  (0, 10, 11), (1, 0, 50), (0, 299, 300), (1, 20, 30)]:
        check(read(partition, start, end), partition, start, end)


def test_empty_range(fetch: tuple[RangeFetch, Callable[[float], RangeFetch]]) -> None:
    read, _ = fetch
    batch = read(0, 42, 42)
    check(batch, 0, 42, 42)
    assert batch.offsets.size == 0 and batch.values == []


def test_range_past_the_log_end_times_out_naming_it(
        fetch: tuple[RangeFetch, Callable[[float], RangeFetch]], filled_topic: str) -> None:
    _, with_timeout = fetch
    with pytest.raises(SourceError, match=f"{filled_topic} partition 1: offsets 40..60"):
        with_timeout(1.0)(1, 40, 60)
    check(with_timeout(30.0)(1, 40, 50), 1, 40, 50)  # still usable afterwards
