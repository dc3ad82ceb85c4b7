"""kafka-python for a caught-up pipeline: one consumer per partition, left where its last range ended.

Caught up, the driver pins each partition to one worker, so a partition's ranges are asked
for on one worker, one after the other (``KafkaFetcher(pinned=True)``). A
``PartitionReader`` keeps that partition's consumer at the end of the last range, with the
records it read past that end: the next range goes on without a seek, from what kafka-python
already fetched (it sends the next fetch request as a poll returns).

Reads happen in the calling thread only: there is no reader thread. Until the thirteenth
session a thread per partition read ahead in the background (kafka-python's per-record
parsing was worth hiding then). With batches read as columns (``kafka_columnar``) a read is
cheap, and those threads' pure-Python polling held the worker's GIL: a caught-up range's
decode and window counts took 150-180 ms of wall time for 30-45 ms of CPU
(benchmarks/RESULTS-streaming-peers.md, "Thirteenth session").

Contract of ``PartitionReader.take(start, end, timeout_s)``: blocks until every offset of
``[start, end)`` is read (or ``timeout_s`` passes: ``SourceError``) and returns them as a
``RecordBatch``, as ``kafka_python_fetch_batch`` does. A range that does not begin where
the last one ended (a retry, a replay after a restart, a range another worker read) drops
what was held and seeks. At most ``MAX_HELD_RECORDS`` records past a range are kept (the
rest is read again). Thread-safe (one lock per reader). ``partition_reader`` closes this
process's readers that were not used for ``IDLE_S``.
"""

from __future__ import annotations

import threading
import time

from kafka import TopicPartition

from pipeline.sources.base import RecordBatch, SourceError
from pipeline.sources.kafka_batch import columnar_consumer, empty_batch, poll_until
from pipeline.sources.kafka_columnar import NO_RECORDS, RecordColumns, concat

MAX_HELD_RECORDS = 20_000  # a caught-up cycle reads a few thousand records a partition
IDLE_S = 30.0


class PartitionReader:
    """One partition read by its own kafka-python consumer (see the module docstring)."""

    def __init__(self, bootstrap: str, topic: str, partition: int) -> None:
        self.topic, self.partition = topic, partition
        self._tp = TopicPartition(topic, partition)
        self._lock = threading.Lock()
        self._consumer = columnar_consumer(bootstrap, client_id="clickstream-partition-reader")
        self._consumer.assign([self._tp])
        self._next = -1  # where the last range ended: what the held records continue from
        self._held: RecordColumns = NO_RECORDS
        self.used_at = time.monotonic()
        self.closed = False

    def take(self, start_offset: int, end_offset: int, timeout_s: float) -> RecordBatch:
        if end_offset < start_offset:
            raise ValueError(f"offsets {start_offset}..{end_offset}: end before start")
        if end_offset == start_offset:
            return empty_batch(self.partition, start_offset, end_offset)
        with self._lock:
            self._check_open()
            self.used_at = time.monotonic()
            if self._next != start_offset:
                self._seek(start_offset)
            try:
                got = self._read_to(end_offset, time.monotonic() + timeout_s)
            except BaseException:
                self._next = -1  # where the consumer stands is unknown: the next take seeks
                raise
            if got is None:
                self._next = -1
                raise SourceError(f"topic {self.topic} partition {self.partition}: offsets "
                                  f"{start_offset}..{end_offset} not readable within {timeout_s:.0f} s")
            self._keep(got.since(end_offset))
            self._next = end_offset
            rows = got.before(end_offset)
            return RecordBatch(self.partition, start_offset, end_offset, rows.offsets, rows.timestamps_ms,
                               rows.keys, rows.values)

    def start_at(self, offset: int) -> None:
        """Be ready to read from ``offset`` (an idle pipeline's warm-up; the reader's
        consumer connected when it was made): nothing to do when the reader already
        continues from there; otherwise seek and poll once without waiting (a fetch goes
        out; what came back is held for the next ``take``). Does not wait for records."""
        with self._lock:
            self._check_open()
            self.used_at = time.monotonic()
            if self._next == offset:
                return
            self._seek(offset)
            try:
                polled = self._consumer.poll(timeout_ms=0, max_records=1).get(self._tp, [])
            except BaseException:
                self._next = -1
                raise
            self._keep(concat([self._held, *polled]))

    def held_records(self) -> int:
        """Records read past the last range and not taken yet."""
        with self._lock:
            return len(self._held)

    def close(self) -> None:
        with self._lock:
            if not self.closed:
                self.closed = True
                self._consumer.close()

    def _check_open(self) -> None:
        if self.closed:
            raise SourceError(f"topic {self.topic} partition {self.partition}: the reader was closed")

    def _seek(self, offset: int) -> None:
        self._consumer.seek(self._tp, offset)
        self._next = offset
        self._held = NO_RECORDS

    def _read_to(self, end_offset: int, deadline: float) -> RecordColumns | None:
        """The held records and what is polled after them, up to at least ``end_offset``;
        None when ``deadline`` passed first."""
        polled = poll_until(self._consumer, self._tp, end_offset, deadline)
        if polled is None:
            return None
        parts = [self._held, *polled] if len(self._held) else polled
        return concat(parts) if parts else NO_RECORDS

    def _keep(self, rest: RecordColumns) -> None:
        """Hold ``rest`` (records past the last range), at most ``MAX_HELD_RECORDS`` of them:
        the consumer goes back to the first one dropped."""
        if len(rest) > MAX_HELD_RECORDS:
            cut = int(rest.offsets[MAX_HELD_RECORDS])
            self._consumer.seek(self._tp, cut)
            rest = rest.before(cut)
        self._held = rest


_READERS: dict[tuple[str, str, int], PartitionReader] = {}
_LOCK = threading.Lock()


def partition_reader(bootstrap: str, topic: str, partition: int) -> PartitionReader:
    """This process's open reader of the partition (made on first use); closes the readers
    not used for ``IDLE_S``."""
    key = (bootstrap, topic, partition)
    now = time.monotonic()
    with _LOCK:
        idle = [k for k, r in _READERS.items() if k != key and (r.closed or now - r.used_at > IDLE_S)]
        stale = [_READERS.pop(k) for k in idle]
        reader = _READERS.get(key)
        if reader is None or reader.closed:
            reader = _READERS[key] = PartitionReader(bootstrap, topic, partition)
    for old in stale:
        old.close()  # waits for a take in progress on it (its lock)
    return reader


def open_readers() -> list[tuple[str, int]]:
    """(topic, partition) of this process's open readers."""
    with _LOCK:
        return sorted((k[1], k[2]) for k, r in _READERS.items() if not r.closed)
