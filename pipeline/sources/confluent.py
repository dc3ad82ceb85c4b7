"""confluent-kafka (librdkafka) fetcher: one partition's offset range as a ``RecordBatch``.

``ConfluentFetcher`` is picklable (Dask workers call it): each worker process keeps one
cached ``Consumer`` per bootstrap address. The consumer joins no group (the group id is
only a name librdkafka requires; nothing is subscribed or committed), is assigned the one
partition it reads, and stays positioned at the end of the last range, so reading the next
range of the same partition goes on from librdkafka's prefetched queue without a seek.
Partition EOF events are on: a range that ends at the log end (or at a gap left by
compaction or transaction markers) is known complete without waiting.

Blocking: ``__call__`` returns when every offset of ``[start, end)`` is read, or raises
``SourceError`` after ``timeout_s``; an empty range returns at once without I/O.
"""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass
from typing import Any

import numpy as np
from confluent_kafka import Consumer, KafkaError, TopicPartition

from pipeline.sources.base import FETCH_MAX_BYTES, MAX_PARTITION_FETCH_BYTES, RecordBatch, SourceError
from pipeline.sources.kafka_batch import empty_batch

CONSUME_MESSAGES = 100_000
CONSUME_TIMEOUT_S = 0.5
QUEUED_MAX_KBYTES = 256 * 1024  # librdkafka's prefetch queue per partition


def consumer_config(bootstrap: str, client_id: str = "clickstream-fetch") -> dict[str, Any]:
    """librdkafka settings of the fetch consumer (no group membership, no commits)."""
    return {
        "bootstrap.servers": bootstrap,
        "group.id": client_id,  # required by the client; no subscribe() or commit() uses it
        "client.id": client_id,
        "enable.auto.commit": False,
        "enable.auto.offset.store": False,
        "enable.partition.eof": True,
        "fetch.max.bytes": FETCH_MAX_BYTES,
        "max.partition.fetch.bytes": MAX_PARTITION_FETCH_BYTES,
        "queued.max.messages.kbytes": QUEUED_MAX_KBYTES,
        "fetch.wait.max.ms": 100,
        "check.crcs": False,
    }


class _Reader:
    """A consumer and where it stands: (partition, next offset) or None (not assigned)."""

    def __init__(self, bootstrap: str) -> None:
        self.consumer = Consumer(consumer_config(bootstrap))
        self.at: tuple[str, int, int] | None = None
        self.lock = threading.Lock()


_READERS: dict[str, _Reader] = {}
_READERS_LOCK = threading.Lock()


def _reader(bootstrap: str) -> _Reader:
    with _READERS_LOCK:
        reader = _READERS.get(bootstrap)
        if reader is None:
            reader = _READERS[bootstrap] = _Reader(bootstrap)
        return reader


@dataclass(frozen=True)
class ConfluentFetcher:
    """Reads ``[start, end)`` of a partition of ``topic``; blocks until all are read or ``timeout_s``."""

    bootstrap: str
    topic: str
    timeout_s: float = 60.0

    def __call__(self, partition: int, start_offset: int, end_offset: int) -> RecordBatch:
        if end_offset < start_offset:
            raise ValueError(f"offsets {start_offset}..{end_offset}: end before start")
        if end_offset == start_offset:
            return empty_batch(partition, start_offset, end_offset)
        reader = _reader(self.bootstrap)
        with reader.lock:
            return _read_range(reader, self.topic, partition, start_offset, end_offset, self.timeout_s)


def _read_range(reader: _Reader, topic: str, partition: int, start_offset: int, end_offset: int,
                timeout_s: float) -> RecordBatch:
    consumer = reader.consumer
    if reader.at != (topic, partition, start_offset):
        reader.at = None
        consumer.assign([TopicPartition(topic, partition, start_offset)])
    offsets: list[int] = []
    stamps: list[int] = []
    keys: list[bytes | None] = []
    values: list[bytes | None] = []
    position = start_offset
    overshot = False
    deadline = time.monotonic() + timeout_s
    while position < end_offset:
        if time.monotonic() > deadline:
            raise SourceError(f"topic {topic} partition {partition}: offsets "
                              f"{start_offset}..{end_offset} not readable within {timeout_s:.0f} s")
        messages = consumer.consume(num_messages=min(CONSUME_MESSAGES, end_offset - position),
                                    timeout=CONSUME_TIMEOUT_S)
        for msg in messages:
            err = msg.error()
            if err is not None:
                if err.code() == KafkaError._PARTITION_EOF:
                    if msg.offset() >= end_offset:  # the range ends in a gap at the log end
                        overshot = msg.offset() > end_offset
                        position = end_offset
                        break
                    continue  # the log end so far; keep waiting for the range's end
                raise SourceError(f"topic {topic} partition {partition}: {err.str()}")
            if msg.topic() != topic or msg.partition() != partition:
                continue  # left over from an earlier assignment
            offset = msg.offset()
            if offset < position:
                continue
            if offset >= end_offset:
                overshot = True
                position = end_offset
                break
            offsets.append(offset)
            stamps.append(msg.timestamp()[1])
            keys.append(msg.key())
            values.append(msg.value())
            position = offset + 1
    # Gaps (compaction, transaction markers) are not visible as messages: the next range of
    # the same partition then starts from a fresh assignment, which is always exact.
    reader.at = None if overshot else (topic, partition, end_offset)
    return RecordBatch(partition, start_offset, end_offset, np.asarray(offsets, dtype=np.int64),
                       np.asarray(stamps, dtype=np.int64), keys, values)
