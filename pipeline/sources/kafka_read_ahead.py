"""kafka-python with read-ahead: a thread per partition that reads records as they arrive.

A caught-up cycle's fetch, read on demand, waits for the broker round trip and then for
the records to be read (``kafka_columnar``; kafka-python's own per-record parsing, ~20 µs a
record here, was most of a worker's time on the critical path before it:
benchmarks/RESULTS-streaming-peers.md, "Eleventh session"). librdkafka reads ahead on its
own threads; this gives kafka-python the same: while the worker waits for its next task,
a ``ReadAhead`` thread of the worker process polls the partition and keeps the records as
columns, so the next range is (mostly) read before it is asked for.

Contract of ``ReadAhead.take(start, end, timeout_s)``: blocks until every offset of
``[start, end)`` is read (or ``timeout_s`` passes: ``SourceError``) and returns them as a
``RecordBatch``, as ``kafka_python_fetch_batch`` does. Asking for a range that does not
begin where the last one ended (a retry, a replay after a restart, a range another worker
read) drops what was read ahead and seeks. It reads at most ``MAX_RECORDS`` /
``MAX_BYTES`` beyond the range a ``take`` waits for. A thread whose partition is not
asked for during ``IDLE_S`` closes its consumer and ends (the next ``take`` starts a new
one). The consumer is used only by its thread (kafka-python's is not thread-safe).
"""

from __future__ import annotations

import bisect
import threading
import time

import numpy as np
from kafka import TopicPartition

from pipeline.sources.base import RecordBatch, SourceError
from pipeline.sources.kafka_batch import columnar_consumer, empty_batch
from pipeline.sources.kafka_columnar import CHUNK_RECORDS, concat

MAX_RECORDS = 20_000  # a caught-up cycle reads a few thousand records a partition
MAX_BYTES = 32 * 1024 * 1024
IDLE_S = 30.0
POLL_MS = 100


class ReadAhead:
    """One partition read ahead by its own kafka-python consumer (see the module docstring)."""

    def __init__(self, bootstrap: str, topic: str, partition: int) -> None:
        self.bootstrap, self.topic, self.partition = bootstrap, topic, partition
        self._cond = threading.Condition()
        self._base = -1  # offset the held records continue from (-1: nothing asked yet)
        self._seek_to: int | None = None
        self._epoch = 0  # bumped by every seek: a poll begun before it is dropped
        self._position = -1  # next offset the consumer returns after the held records
        self._wanted = -1  # end of the range a take waits for (read up to it whatever the cap)
        self._offsets: list[int] = []
        self._stamps: list[int] = []
        self._keys: list[bytes | None] = []
        self._values: list[bytes | None] = []
        self._bytes = 0
        self._error: BaseException | None = None
        self._last_take = time.monotonic()
        self._closed = False
        self._thread = threading.Thread(target=self._run, daemon=True,
                                        name=f"read-ahead-{topic}-{partition}")
        self._thread.start()

    @property
    def alive(self) -> bool:
        return self._thread.is_alive() and not self._closed

    def take(self, start_offset: int, end_offset: int, timeout_s: float) -> RecordBatch:
        if end_offset < start_offset:
            raise ValueError(f"offsets {start_offset}..{end_offset}: end before start")
        if end_offset == start_offset:
            return empty_batch(self.partition, start_offset, end_offset)
        with self._cond:
            self._last_take = time.monotonic()
            if self._base != start_offset:
                self._reset(start_offset)
            self._wanted = end_offset
            self._cond.notify_all()
            try:
                done = self._cond.wait_for(lambda: self._position >= end_offset or self._error is not None
                                           or self._closed, timeout=timeout_s)
            finally:
                self._wanted = -1
            if self._error is not None:
                raise SourceError(f"topic {self.topic} partition {self.partition}: reading ahead "
                                  f"failed: {type(self._error).__name__}: {self._error}")
            if not done or self._closed:
                raise SourceError(f"topic {self.topic} partition {self.partition}: offsets "
                                  f"{start_offset}..{end_offset} not readable within {timeout_s:.0f} s")
            k = bisect.bisect_left(self._offsets, end_offset)
            batch = RecordBatch(self.partition, start_offset, end_offset,
                                np.asarray(self._offsets[:k], dtype=np.int64),
                                np.asarray(self._stamps[:k], dtype=np.int64), self._keys[:k],
                                self._values[:k])
            self._bytes -= sum(len(v) for v in self._values[:k] if v is not None)
            del self._offsets[:k], self._stamps[:k], self._keys[:k], self._values[:k]
            self._base = end_offset
            self._last_take = time.monotonic()
            self._cond.notify_all()  # room to read ahead again
            return batch

    def start_at(self, offset: int) -> None:
        """Read ahead from ``offset`` now, before any ``take`` (keeps what is held if it
        already continues from there); counts as a take for ``IDLE_S``. Does not block."""
        with self._cond:
            self._last_take = time.monotonic()
            if self._base != offset:
                self._reset(offset)

    def held_records(self) -> int:
        """Records read ahead and not taken yet."""
        with self._cond:
            return len(self._offsets)

    def close(self) -> None:
        with self._cond:
            self._closed = True
            self._cond.notify_all()

    def _reset(self, offset: int) -> None:
        self._base = self._seek_to = offset
        self._epoch += 1
        self._position = -1
        self._offsets, self._stamps, self._keys, self._values = [], [], [], []
        self._bytes = 0
        self._cond.notify_all()  # the thread seeks now, not after its wait

    def _run(self) -> None:
        consumer = None
        tp = TopicPartition(self.topic, self.partition)
        try:
            consumer = columnar_consumer(self.bootstrap, client_id="clickstream-read-ahead")
            consumer.assign([tp])
            while True:
                with self._cond:
                    if self._closed or time.monotonic() - self._last_take > IDLE_S:
                        self._closed = True
                        self._cond.notify_all()
                        return
                    seek, self._seek_to = self._seek_to, None
                    epoch = self._epoch
                    full = len(self._offsets) >= MAX_RECORDS or self._bytes >= MAX_BYTES
                    owed = self._wanted - max(self._position, self._base)  # a waiting take's rest
                    if (self._base < 0 or (full and owed <= 0)) and seek is None:
                        self._cond.wait(POLL_MS / 1000)
                        continue
                    room = max(MAX_RECORDS - len(self._offsets), owed, 1)
                if seek is not None:
                    consumer.seek(tp, seek)
                chunks = max(1, room // CHUNK_RECORDS)
                polled = consumer.poll(timeout_ms=POLL_MS, max_records=chunks).get(tp, [])
                position = consumer.position(tp)
                with self._cond:
                    if epoch != self._epoch:
                        continue  # a seek was asked for while polling: this poll is stale
                    got = concat(polled).since(self._base)
                    if len(got) > room:  # chunks are read whole: keep room, read the rest again
                        position = int(got.offsets[room])
                        consumer.seek(tp, position)
                        got = got.before(position)
                    self._offsets.extend(got.offsets.tolist())
                    self._stamps.extend(got.timestamps_ms.tolist())
                    self._keys.extend(got.keys)
                    self._values.extend(got.values)
                    self._bytes += sum(map(len, filter(None, got.values)))
                    self._position = position
                    self._cond.notify_all()
        except BaseException as exc:
            with self._cond:
                self._error = exc
                self._cond.notify_all()
        finally:
            if consumer is not None:
                consumer.close()


_READ_AHEAD: dict[tuple[str, str, int], ReadAhead] = {}
_LOCK = threading.Lock()


def read_ahead(bootstrap: str, topic: str, partition: int) -> ReadAhead:
    """This process's live ``ReadAhead`` of the partition (started on first use)."""
    key = (bootstrap, topic, partition)
    with _LOCK:
        reader = _READ_AHEAD.get(key)
        if reader is None or not reader.alive:
            reader = _READ_AHEAD[key] = ReadAhead(bootstrap, topic, partition)
        return reader
