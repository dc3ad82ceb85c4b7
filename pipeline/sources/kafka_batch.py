"""kafka-python, tuned: read one partition's offset range as a ``RecordBatch`` (columns).

What is tuned against ``pipeline.sources.kafka``'s consumer (measured in
benchmarks/RESULTS-streaming-peers.md, "source"):

- ``check_crcs=False``: kafka-python checks every record batch's CRC-32C in Python unless
  the optional ``crc32c`` extension is installed; TCP and the broker already checked it.
- large fetches (``FETCH_MAX_BYTES`` / ``MAX_PARTITION_FETCH_BYTES``) and a 4 MiB socket
  receive buffer, ``max_poll_records`` as large as the range, ``fetch_min_bytes=1`` (a
  caught-up range returns as soon as its records are there).
- records kept as bytes and read as columns: ``kafka_columnar`` replaces kafka-python's
  per-record parsing (no ``ConsumerRecord`` per record; the fetch alone 3.4-5.0x faster here:
  benchmarks/RESULTS-streaming-peers.md, "Twelfth session").

``kafka_python_fetch_batch`` blocks until every offset of ``[start, end)`` is read (or
``timeout_s`` passes: ``SourceError``); an empty range returns at once without I/O.
"""

from __future__ import annotations

import time

import numpy as np
from kafka import KafkaConsumer, TopicPartition

from pipeline.sources.base import FETCH_MAX_BYTES, MAX_PARTITION_FETCH_BYTES, RecordBatch, SourceError
from pipeline.sources.kafka_columnar import CHUNK_RECORDS, RecordColumns, columnar, concat

RECEIVE_BUFFER_BYTES = 4 * 1024 * 1024
MAX_POLL_RECORDS = 500_000
POLL_TIMEOUT_MS = 500


def tuned_consumer(bootstrap: str, client_id: str = "clickstream-fetch") -> KafkaConsumer:
    """A group-less consumer with the fetch settings above; its polls give kafka-python's
    own ``ConsumerRecord``s (the benchmark's bare kafka-python baseline uses it)."""
    return KafkaConsumer(bootstrap_servers=bootstrap, group_id=None, enable_auto_commit=False,
                         auto_offset_reset="earliest", check_crcs=False,
                         fetch_max_bytes=FETCH_MAX_BYTES,
                         max_partition_fetch_bytes=MAX_PARTITION_FETCH_BYTES,
                         max_poll_records=MAX_POLL_RECORDS, fetch_min_bytes=1,
                         receive_buffer_bytes=RECEIVE_BUFFER_BYTES, client_id=client_id)


def columnar_consumer(bootstrap: str, client_id: str = "clickstream-fetch") -> KafkaConsumer:
    """``tuned_consumer`` whose polls give ``RecordColumns`` (``kafka_columnar``): what
    ``kafka_python_fetch_batch`` and the partition readers read with."""
    return columnar(tuned_consumer(bootstrap, client_id))


def empty_batch(partition: int, start_offset: int, end_offset: int) -> RecordBatch:
    """A batch with no records (for ``start_offset == end_offset``)."""
    return RecordBatch(partition, start_offset, end_offset, np.empty(0, np.int64),
                       np.empty(0, np.int64), [], [])


def poll_until(consumer: KafkaConsumer, tp: TopicPartition, end_offset: int,
               deadline: float) -> list[RecordColumns] | None:
    """Poll ``consumer`` (a ``columnar_consumer`` assigned ``tp``) until its position in
    ``tp`` reaches ``end_offset``: what was polled (chunks, whole: the last may go past
    ``end_offset``), or None once ``time.monotonic()`` passed ``deadline`` first."""
    parts: list[RecordColumns] = []
    while (position := consumer.position(tp)) < end_offset:
        if time.monotonic() > deadline:
            return None
        chunks = max(1, (end_offset - position) // CHUNK_RECORDS)
        parts += consumer.poll(timeout_ms=POLL_TIMEOUT_MS, max_records=chunks).get(tp, ())
    return parts


def kafka_python_fetch_batch(consumer: KafkaConsumer, topic: str, partition: int, start_offset: int,
                             end_offset: int, timeout_s: float) -> RecordBatch:
    """Records ``[start_offset, end_offset)`` of ``topic``/``partition`` as a ``RecordBatch``.

    ``consumer`` comes from ``columnar_consumer``. Leaves it assigned to that one partition
    at position ``end_offset``, so reading the next range goes on without a seek (the
    prefetched records are kept).
    """
    if end_offset < start_offset:
        raise ValueError(f"offsets {start_offset}..{end_offset}: end before start")
    if end_offset == start_offset:
        return empty_batch(partition, start_offset, end_offset)
    tp = TopicPartition(topic, partition)
    if consumer.assignment() != {tp}:
        consumer.assign([tp])
        consumer.seek(tp, start_offset)
    elif consumer.position(tp) != start_offset:
        consumer.seek(tp, start_offset)
    parts = poll_until(consumer, tp, end_offset, time.monotonic() + timeout_s)
    if parts is None:
        raise SourceError(f"topic {topic} partition {partition}: offsets "
                          f"{start_offset}..{end_offset} not readable within {timeout_s:.0f} s")
    if consumer.position(tp) > end_offset:
        consumer.seek(tp, end_offset)
    got = concat(parts).before(end_offset)
    return RecordBatch(partition, start_offset, end_offset, got.offsets, got.timestamps_ms, got.keys,
                       got.values)
