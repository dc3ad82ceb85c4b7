"""kafka-python source: the driver plans and commits, Dask workers fetch their own ranges.

The driver's consumer joins no group rebalance (``assign()``), reads the group's committed
offsets at start and commits explicit offsets after the sinks flushed. Workers call
``KafkaFetcher`` (picklable): one cached ``KafkaConsumer`` per worker process and
bootstrap address, no group, large fetches (lz4 batches need the ``lz4`` package).
"""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass

import numpy as np
from kafka import KafkaConsumer, TopicPartition
from kafka.structs import OffsetAndMetadata

from pipeline.sources.base import RecordBatch

MAX_PARTITION_FETCH_BYTES = 32 * 1024 * 1024
FETCH_MAX_BYTES = 64 * 1024 * 1024


class SourceError(RuntimeError):
    """The topic cannot be read; the message names the topic and broker."""


def _consumer(bootstrap: str, group: str | None) -> KafkaConsumer:
    return KafkaConsumer(bootstrap_servers=bootstrap, group_id=group, enable_auto_commit=False,
                         auto_offset_reset="earliest",
                         max_partition_fetch_bytes=MAX_PARTITION_FETCH_BYTES,
                         fetch_max_bytes=FETCH_MAX_BYTES, max_poll_records=100_000,
                         client_id=f"clickstream-pipeline-{group or 'fetch'}")


_CACHE: dict[str, KafkaConsumer] = {}
_CACHE_LOCK = threading.Lock()


@dataclass(frozen=True)
class KafkaFetcher:
    """Reads ``[start, end)`` of a partition; blocks until all are read or ``timeout_s``."""

    bootstrap: str
    topic: str
    timeout_s: float = 15.0

    def __call__(self, partition: int, start_offset: int, end_offset: int) -> RecordBatch:
        with _CACHE_LOCK:
            consumer = _CACHE.get(self.bootstrap)
            if consumer is None:
                consumer = _CACHE[self.bootstrap] = _consumer(self.bootstrap, None)
            return fetch_range(consumer, self.topic, partition, start_offset, end_offset,
                               self.timeout_s)


def fetch_range(consumer: KafkaConsumer, topic: str, partition: int, start_offset: int,
                end_offset: int, timeout_s: float) -> RecordBatch:
    """Records ``[start_offset, end_offset)`` as columns; raises ``SourceError`` after ``timeout_s``."""
    tp = TopicPartition(topic, partition)
    if consumer.assignment() != {tp}:
        consumer.assign([tp])
        consumer.seek(tp, start_offset)
    elif consumer.position(tp) != start_offset:
        consumer.seek(tp, start_offset)
    offsets: list[int] = []
    stamps: list[int] = []
    keys: list[bytes | None] = []
    values: list[bytes | None] = []
    deadline = time.monotonic() + timeout_s
    while consumer.position(tp) < end_offset:
        if time.monotonic() > deadline:
            raise SourceError(f"topic {topic} partition {partition}: offsets "
                              f"{start_offset}..{end_offset} not readable within {timeout_s:.0f} s")
        polled = consumer.poll(timeout_ms=500, max_records=end_offset - start_offset)
        for rec in polled.get(tp, ()):
            if rec.offset < end_offset:
                offsets.append(rec.offset)
                stamps.append(rec.timestamp)
                keys.append(rec.key)
                values.append(rec.value)
    if consumer.position(tp) > end_offset:
        consumer.seek(tp, end_offset)
    return RecordBatch(partition, start_offset, end_offset, np.asarray(offsets, dtype=np.int64),
                       np.asarray(stamps, dtype=np.int64), keys, values)


class KafkaSource:
    """A topic's partitions on a Kafka cluster, read for consumer group ``group``."""

    def __init__(self, bootstrap: str, topic: str, group: str) -> None:
        self.topic = topic
        self._bootstrap = bootstrap
        self._group = group
        try:
            self._consumer = _consumer(bootstrap, group)
        except Exception as exc:
            raise SourceError(f"Kafka at {bootstrap}: {exc}") from None
        parts = self._consumer.partitions_for_topic(topic)
        if not parts:
            self._consumer.close()
            raise SourceError(f"topic {topic!r} does not exist on Kafka at {bootstrap}")
        self.partitions = tuple(sorted(parts))
        self._tps = [TopicPartition(topic, p) for p in self.partitions]
        self._consumer.assign(self._tps)

    def end_offsets(self) -> dict[int, int]:
        ends = self._consumer.end_offsets(self._tps)
        return {tp.partition: int(o) for tp, o in ends.items()}

    def committed(self) -> dict[int, int]:
        begin = self._consumer.beginning_offsets(self._tps)
        out = {}
        for tp in self._tps:
            done = self._consumer.committed(tp)
            out[tp.partition] = int(done) if done is not None else int(begin[tp])
        return out

    def commit(self, offsets: dict[int, int]) -> None:
        self._consumer.commit({TopicPartition(self.topic, p): OffsetAndMetadata(o, "", -1)
                               for p, o in offsets.items()})

    def fetch(self, partition: int, start_offset: int, end_offset: int) -> RecordBatch:
        return self.fetcher()(partition, start_offset, end_offset)

    def fetcher(self) -> KafkaFetcher:
        return KafkaFetcher(self._bootstrap, self.topic)

    def wait_for_data(self, offsets: dict[int, int], timeout_s: float) -> bool:
        deadline = time.monotonic() + timeout_s
        while True:
            ends = self.end_offsets()
            if any(ends[p] > o for p, o in offsets.items()):
                return True
            if time.monotonic() >= deadline:
                return False
            time.sleep(min(0.2, timeout_s))

    def exhausted(self, offsets: dict[int, int]) -> bool:
        return False  # a Kafka topic never ends; callers stop on idleness or a count

    def close(self) -> None:
        self._consumer.close()
