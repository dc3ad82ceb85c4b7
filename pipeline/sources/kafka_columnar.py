"""kafka-python's fetched record batches read as columns, without an object per record.

kafka-python parses every record of a fetch in Python (a ``DefaultRecord`` and then a
``ConsumerRecord`` each, ~10-20 µs a record here): it was half of a worker's time
(benchmarks/RESULTS-streaming-peers.md, "Eleventh session"). kafka-python still does all
the rest (connections, metadata, fetch requests and sessions, leader epochs, offsets,
decompression codecs); only the step from a fetched batch to its records is replaced:

- ``read_batches`` (pure): v2 record batches' bodies -> offsets, timestamps, keys,
  values. A short Python loop finds where each record starts (one varint each); every
  field after that is read for all records at once with numpy.
- ``ColumnarPartitionRecords``: kafka-python's per-partition record iterator, giving
  ``RecordColumns`` of consecutive batches (at least ``CHUNK_RECORDS`` records each, but
  the last) instead of one ``ConsumerRecord`` per record. ``columnar`` installs it on a
  consumer, whose ``poll(max_records=n)`` then returns ``{TopicPartition: [RecordColumns,
  ...]}`` with at most n of them, and moves positions as before. A fetch is read as far
  as it is taken: the batches after stay bytes until a later poll.

Contract: the same records, offsets, timestamps, keys and values, in the same order, as
kafka-python's own iterator gives with ``isolation_level="read_uncommitted"`` (the only
level supported here): control batches skipped, records before the fetch offset of a
batch dropped, the next fetch offset after a batch's last offset (compacted topics).
A malformed batch raises ``CorruptRecordError`` naming the partition and offset.
kafka-python is pinned (pyproject.toml); ``tests/pipeline/sources/test_kafka_columnar.py``
checks the result against kafka-python's own parser.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import NamedTuple

import numpy as np
from kafka import KafkaConsumer, TopicPartition
from kafka.codec import gzip_decode, lz4_decode, snappy_decode, zstd_decode
from kafka.consumer.fetcher import Fetcher
from kafka.errors import CorruptRecordError
from kafka.protocol.consumer.offsets import IsolationLevel
from kafka.record.default_records import DefaultRecordBase, DefaultRecordBatch
from kafka.record.memory_records import MemoryRecords

_HEADER_BYTES = DefaultRecordBase.HEADER_STRUCT.size  # 61: records (or their compressed block) follow
_DECOMPRESS = {
    DefaultRecordBase.CODEC_GZIP: gzip_decode,
    DefaultRecordBase.CODEC_SNAPPY: snappy_decode,
    DefaultRecordBase.CODEC_LZ4: lz4_decode,
    DefaultRecordBase.CODEC_ZSTD: zstd_decode,
}
_MAX_VARINT_BYTES = 10
_NO_KEY_OR_VALUE = -1
CHUNK_RECORDS = 4096  # a poll's unit: batches are read in groups of at least this many records
NO_TIMESTAMP = -1  # v0 messages have none (kafka-python gives None)


@dataclass(frozen=True)
class RecordColumns:
    """Records of one partition as columns, in offset order (one entry per record)."""

    offsets: np.ndarray  # int64
    timestamps_ms: np.ndarray  # int64 (append time if the topic says so, else create time)
    keys: list[bytes | None]
    values: list[bytes | None]

    def __len__(self) -> int:
        return len(self.values)

    def since(self, offset: int) -> RecordColumns:
        """The records at ``offset`` or after."""
        k = int(np.searchsorted(self.offsets, offset))
        return self if k == 0 else self._rows(k, len(self))

    def before(self, offset: int) -> RecordColumns:
        """The records before ``offset``."""
        k = int(np.searchsorted(self.offsets, offset))
        return self if k == len(self) else self._rows(0, k)

    def _rows(self, start: int, stop: int) -> RecordColumns:
        return RecordColumns(self.offsets[start:stop], self.timestamps_ms[start:stop],
                             self.keys[start:stop], self.values[start:stop])


NO_RECORDS = RecordColumns(np.empty(0, np.int64), np.empty(0, np.int64), [], [])


def concat(parts: Sequence[RecordColumns]) -> RecordColumns:
    """One ``RecordColumns`` of ``parts`` in the order given."""
    if len(parts) == 1:
        return parts[0]
    keys: list[bytes | None] = []
    values: list[bytes | None] = []
    for part in parts:
        keys.extend(part.keys)
        values.extend(part.values)
    return RecordColumns(np.concatenate([p.offsets for p in parts] or [np.empty(0, np.int64)]),
                         np.concatenate([p.timestamps_ms for p in parts] or [np.empty(0, np.int64)]),
                         keys, values)


def _varints(buf: np.ndarray, at: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Zig-zag varints starting at each of ``at`` in ``buf`` (padded with
    ``_MAX_VARINT_BYTES`` zeros): their values (int64) and sizes in bytes. One numpy step
    per byte of the longest (most are one or two bytes)."""
    raw = buf[at].astype(np.uint64)
    size = np.ones(len(at), np.int64)
    more = np.flatnonzero(raw >= 0x80)
    raw &= np.uint64(0x7F)
    for k in range(1, _MAX_VARINT_BYTES + 1):
        if not more.size:
            break
        if k == _MAX_VARINT_BYTES:
            raise ValueError("a varint longer than 10 bytes")
        byte = buf[at[more] + k].astype(np.uint64)
        raw[more] |= (byte & np.uint64(0x7F)) << np.uint64(7 * k)
        size[more] += 1
        more = more[byte >= 0x80]
    value = (raw >> np.uint64(1)).astype(np.int64) ^ -(raw & np.uint64(1)).astype(np.int64)
    return value, size


def _record_bodies(body: bytes, count: int) -> tuple[np.ndarray, np.ndarray]:
    """Where each record's fields start in ``body`` and their lengths (the record's
    Length varint excluded). The only per-record Python: a record's place depends on the
    length of the one before."""
    starts = [0] * count
    lengths = [0] * count
    pos = 0
    end = len(body)
    for i in range(count):
        if pos >= end:
            raise ValueError(f"record {i} of {count} starts past the batch's {end} bytes")
        raw = body[pos]
        pos += 1
        if raw >= 0x80:
            raw &= 0x7F
            shift = 7
            while True:
                byte = body[pos] if pos < end else 0
                pos += 1
                raw |= (byte & 0x7F) << shift
                if byte < 0x80:
                    break
                shift += 7
        length = (raw >> 1) ^ -(raw & 1)
        if length < 0:
            raise ValueError(f"record {i} of {count} has a negative length ({length})")
        starts[i] = pos
        lengths[i] = length
        pos += length
    if pos != end:
        raise ValueError(f"{len(body) - pos} bytes left after {count} records")
    return np.asarray(starts, dtype=np.int64), np.asarray(lengths, dtype=np.int64)


def _slices(body: bytes, starts: np.ndarray, lengths: np.ndarray) -> list[bytes | None]:
    return [None if n == _NO_KEY_OR_VALUE else body[s:s + n]
            for s, n in zip(starts.tolist(), lengths.tolist(), strict=True)]


class BatchBody(NamedTuple):
    """One v2 record batch: its uncompressed records and the header fields they need."""

    body: bytes
    count: int
    base_offset: int
    first_timestamp_ms: int
    max_timestamp_ms: int
    log_append_time: bool


def read_batches(batches: Sequence[BatchBody]) -> RecordColumns:
    """The records of ``batches``, in the order given, as one ``RecordColumns``. Pure.

    Raises ``ValueError`` naming the batch (its base offset) when a body does not hold
    exactly its ``count`` well-formed records.
    """
    starts_of: list[np.ndarray] = []
    lengths_of: list[np.ndarray] = []
    base = 0
    for batch in batches:
        try:
            starts, lengths = _record_bodies(batch.body, batch.count)
        except ValueError as exc:
            raise ValueError(f"record batch at offset {batch.base_offset}: {exc}") from None
        starts_of.append(starts + base)
        lengths_of.append(lengths)
        base += len(batch.body)
    joined = b"".join(batch.body for batch in batches)
    counts = np.fromiter((batch.count for batch in batches), np.int64, len(batches))
    if not counts.sum():
        return RecordColumns(np.empty(0, np.int64), np.empty(0, np.int64), [], [])
    starts, lengths = np.concatenate(starts_of), np.concatenate(lengths_of)
    buf = np.frombuffer(joined + bytes(_MAX_VARINT_BYTES), dtype=np.uint8)
    at = starts + 1  # after the attributes byte
    ts_delta, size = _varints(buf, at)
    at = at + size
    offset_delta, size = _varints(buf, at)
    at = at + size
    key_len, size = _varints(buf, at)
    at = at + size
    key_at = at
    at = at + np.maximum(key_len, 0)
    value_len, size = _varints(buf, at)
    value_at = at + size
    # the record's header count (>= 1 byte) still follows its value
    bad = (key_len < _NO_KEY_OR_VALUE) | (value_len < _NO_KEY_OR_VALUE) | (
        value_at + np.maximum(value_len, 0) >= starts + lengths)
    if bad.any():
        batch = batches[int(np.searchsorted(np.cumsum(counts), np.argmax(bad), side="right"))]
        raise ValueError(f"record batch at offset {batch.base_offset}: a key or value length "
                         "is negative or runs past its record")
    offsets = np.repeat([b.base_offset for b in batches], counts) + offset_delta
    append_time = np.repeat([b.log_append_time for b in batches], counts)
    stamps = np.where(append_time, np.repeat([b.max_timestamp_ms for b in batches], counts),
                      np.repeat([b.first_timestamp_ms for b in batches], counts) + ts_delta)
    return RecordColumns(offsets.astype(np.int64), stamps.astype(np.int64),
                         _slices(joined, key_at, key_len), _slices(joined, value_at, value_len))


class ColumnarPartitionRecords(Fetcher.PartitionRecords):
    """kafka-python's ``PartitionRecords`` giving ``RecordColumns`` of at least
    ``CHUNK_RECORDS`` records each (the last may hold fewer) instead of a record at a time
    (see the module docstring). ``take(n)`` counts a ``RecordColumns`` as one."""

    def _maybe_skip_record(self, record: object) -> bool:
        return False  # records before the fetch offset are dropped in _unpack_records

    def _unpack_records(self, tp, records: MemoryRecords, key_deserializer,  # type: ignore[no-untyped-def]
                        value_deserializer) -> Iterator[RecordColumns]:
        if key_deserializer is not None or value_deserializer is not None:
            raise ValueError("columnar records are raw bytes: no deserializers")
        if self.isolation_level != IsolationLevel.READ_UNCOMMITTED:
            raise ValueError("columnar records support isolation_level='read_uncommitted' only")
        bodies: list[BatchBody] = []
        held = 0
        next_offset = self.fetch_offset
        batch = records.next_batch()
        while batch is not None:
            if self.check_crcs and not batch.validate_crc():
                raise CorruptRecordError(f"topic {tp.topic} partition {tp.partition}: record batch "
                                         f"at offset {batch.base_offset} failed its CRC check")
            if batch.magic != 2:
                if bodies:
                    yield from self._give(_read(tp, bodies), next_offset)
                    bodies, held = [], 0
                legacy = _legacy_columns(batch)
                next_offset = int(legacy.offsets[-1]) + 1 if len(legacy) else next_offset
                yield from self._give(legacy, next_offset)
            else:
                self.leader_epoch = batch.leader_epoch
                next_offset = batch.next_offset
                if not batch.is_control_batch:
                    bodies.append(_body(tp, batch))
                    held += batch.records_count
                if held >= CHUNK_RECORDS:
                    yield from self._give(_read(tp, bodies), next_offset)
                    bodies, held = [], 0
            batch = records.next_batch()
        yield from self._give(_read(tp, bodies) if bodies else NO_RECORDS, next_offset)
        self.drain()

    def _give(self, columns: RecordColumns, next_offset: int) -> Iterator[RecordColumns]:
        """Yield ``columns`` (those at the fetch offset or after) with the position after
        them set first: kafka-python moves the consumer there when they are taken (a
        generator suspended at a yield has not read the batches after it)."""
        columns = columns.since(self.fetch_offset)
        self.next_fetch_offset = max(self.fetch_offset, next_offset)
        if len(columns):
            self.records_read += len(columns)
            yield columns


def _body(tp: TopicPartition, batch: DefaultRecordBatch) -> BatchBody:
    payload = bytes(memoryview(batch._buffer)[_HEADER_BYTES:])
    codec = batch.compression_type
    try:
        body = payload if codec == DefaultRecordBase.CODEC_NONE else bytes(_DECOMPRESS[codec](payload))
    except Exception as exc:
        raise CorruptRecordError(f"topic {tp.topic} partition {tp.partition}: record batch at offset "
                                 f"{batch.base_offset} does not decompress: {exc!r}") from exc
    return BatchBody(body, batch.records_count, batch.base_offset, batch.first_timestamp,
                     batch.max_timestamp, batch.timestamp_type == DefaultRecordBase.LOG_APPEND_TIME)


def _read(tp: TopicPartition, bodies: list[BatchBody]) -> RecordColumns:
    try:
        return read_batches(bodies)
    except ValueError as exc:
        raise CorruptRecordError(f"topic {tp.topic} partition {tp.partition}: {exc}") from exc


def _legacy_columns(batch: object) -> RecordColumns:
    """A v0/v1 batch (brokers before 0.11 or old topics): kafka-python's own records."""
    recs = list(batch)  # type: ignore[call-overload]
    stamps = [NO_TIMESTAMP if r.timestamp is None else r.timestamp for r in recs]
    return RecordColumns(np.asarray([r.offset for r in recs], np.int64), np.asarray(stamps, np.int64),
                         [r.key for r in recs], [r.value for r in recs])


def columnar(consumer: KafkaConsumer) -> KafkaConsumer:
    """``consumer`` with its polls giving ``RecordColumns`` (see the module docstring)."""
    consumer._fetcher.PartitionRecords = ColumnarPartitionRecords  # type: ignore[attr-defined]
    return consumer
