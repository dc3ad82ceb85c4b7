"""Columnar record batches give exactly what kafka-python's own parser gives (pure: the
batches are built with kafka-python's ``MemoryRecordsBuilder``, no broker)."""

from __future__ import annotations

import random
import struct

import numpy as np
import pytest
from kafka import TopicPartition
from kafka.codec import has_snappy, has_zstd
from kafka.consumer.fetcher import Fetcher
from kafka.errors import CorruptRecordError
from kafka.record.default_records import DefaultRecordBase
from kafka.record.memory_records import MemoryRecords, MemoryRecordsBuilder
from kafka.record.util import calc_crc32c, encode_varint

from pipeline.sources import kafka_columnar
from pipeline.sources.kafka_columnar import (
    NO_TIMESTAMP,
    BatchBody,
    ColumnarPartitionRecords,
    RecordColumns,
    _varints,
    concat,
    read_batches,
)

TP = TopicPartition("clicks", 3)
CODECS = [DefaultRecordBase.CODEC_NONE, DefaultRecordBase.CODEC_GZIP, DefaultRecordBase.CODEC_LZ4]
CODECS += [DefaultRecordBase.CODEC_SNAPPY] if has_snappy() else []
CODECS += [DefaultRecordBase.CODEC_ZSTD] if has_zstd() else []


def record(i: int) -> tuple[int, bytes | None, bytes | None, list[tuple[str, bytes | None]]]:
    """A record of every shape: no key, no value, an empty value, headers, long values
    (multi-byte length varints), non-ASCII bytes, negative timestamp deltas."""
    key = None if i % 5 == 0 else f"Käse_{i}".encode()
    value = (None if i % 11 == 0 else b"" if i % 13 == 0
             else f'{{"id":{i},"curr":"{"x" * (i % 300)}"}}'.encode())
    headers = [("h", b"v"), ("n", None)] if i % 7 == 0 else []
    return 1_700_000_000_000 + (i * 37) % 1000 - 500, key, value, headers


def build(codec: int, base_offset: int, n: int, first: int = 0, magic: int = 2) -> bytes:
    builder = MemoryRecordsBuilder(magic, codec, batch_size=1 << 30, offset=base_offset)
    for i in range(first, first + n):
        ts, key, value, headers = record(i)
        assert builder.append(ts, key, value, headers if magic == 2 else None) is not None
    builder.close()
    return bytes(builder.buffer())


def control_batch(offset: int) -> bytes:
    """A one-record batch at ``offset`` marked as a transaction marker (CRC rewritten)."""
    data = bytearray(build(DefaultRecordBase.CODEC_NONE, offset, 1))
    at = DefaultRecordBase.ATTRIBUTES_OFFSET
    (attributes,) = struct.unpack_from(">h", data, at)
    struct.pack_into(">h", data, at, attributes | DefaultRecordBase.CONTROL_MASK)
    return with_crc(data)


def with_crc(data: bytearray) -> bytes:
    """One batch with its CRC-32C rewritten after an edit."""
    at = DefaultRecordBase.ATTRIBUTES_OFFSET
    struct.pack_into(">I", data, at - 4, calc_crc32c(bytes(data[at:])))
    return bytes(data)


def kafka_python(data: bytes, fetch_offset: int) -> RecordColumns:
    parts = Fetcher.PartitionRecords(fetch_offset, TP, MemoryRecords(data)).take()
    stamps = [NO_TIMESTAMP if r.timestamp is None else r.timestamp for r in parts]
    return RecordColumns(np.asarray([r.offset for r in parts], np.int64), np.asarray(stamps, np.int64),
                         [r.key for r in parts], [r.value for r in parts])


def columnar(data: bytes, fetch_offset: int) -> tuple[RecordColumns | None, int]:
    part = ColumnarPartitionRecords(fetch_offset, TP, MemoryRecords(data))
    taken = part.take()
    return (concat(taken) if taken else None), part.next_fetch_offset


def assert_same(got: RecordColumns | None, want: RecordColumns) -> None:
    assert got is not None and len(want)
    np.testing.assert_array_equal(got.offsets, want.offsets)
    np.testing.assert_array_equal(got.timestamps_ms, want.timestamps_ms)
    assert got.keys == want.keys
    assert got.values == want.values


@pytest.mark.parametrize("codec", CODECS)
def test_several_batches_read_like_kafka_python(codec: int) -> None:
    data = build(codec, 1000, 400) + build(codec, 1400, 1) + build(codec, 1401, 250, first=400)
    got, next_offset = columnar(data, 1000)
    assert_same(got, kafka_python(data, 1000))
    assert next_offset == 1651


def test_a_fetch_is_read_in_chunks_as_far_as_it_is_taken(monkeypatch) -> None:  # type: ignore[no-untyped-def]
    monkeypatch.setattr(kafka_columnar, "CHUNK_RECORDS", 100)
    data = b"".join(build(DefaultRecordBase.CODEC_LZ4, first, 60, first=first) for first in range(0, 600, 60))
    part = ColumnarPartitionRecords(30, TP, MemoryRecords(data))
    (first,) = part.take(1)
    assert (int(first.offsets[0]), len(first), part.next_fetch_offset) == (30, 90, 120)  # 2 batches
    second, third = part.take(2)
    assert (len(second), len(third), part.next_fetch_offset) == (120, 120, 360)
    rest = part.take()
    assert part.next_fetch_offset == 600
    assert_same(concat([first, second, third, *rest]), kafka_python(data, 30))


def test_a_fetch_offset_inside_a_batch_drops_the_records_before_it() -> None:
    data = build(DefaultRecordBase.CODEC_LZ4, 0, 300)
    got, next_offset = columnar(data, 123)
    assert got is not None and int(got.offsets[0]) == 123
    assert_same(got, kafka_python(data, 123))
    assert next_offset == 300


def test_a_partial_batch_at_the_end_of_a_fetch_is_left_for_the_next_fetch() -> None:
    whole = build(DefaultRecordBase.CODEC_NONE, 0, 50)
    data = whole + build(DefaultRecordBase.CODEC_NONE, 50, 50)[:-7]
    got, next_offset = columnar(data, 0)
    assert_same(got, kafka_python(whole, 0))
    assert next_offset == 50


def test_control_batches_are_skipped_and_their_offsets_passed() -> None:
    control = control_batch(10)
    data = build(DefaultRecordBase.CODEC_NONE, 0, 10) + control + build(DefaultRecordBase.CODEC_NONE, 11, 5)
    got, next_offset = columnar(data, 0)
    assert_same(got, kafka_python(data, 0))
    assert 10 not in got.offsets.tolist()  # type: ignore[union-attr]
    assert next_offset == 16


def test_only_a_control_batch_gives_nothing_but_moves_the_next_offset() -> None:
    assert columnar(control_batch(10), 10) == (None, 11)


@pytest.mark.parametrize("magic", [0, 1])
def test_old_message_formats_read_like_kafka_python(magic: int) -> None:
    data = (build(DefaultRecordBase.CODEC_GZIP, 0, 40, magic=magic)
            + build(DefaultRecordBase.CODEC_NONE, 40, 3, magic=magic))
    got, _ = columnar(data, 0)
    assert_same(got, kafka_python(data, 0))


def test_a_malformed_batch_names_its_partition_and_offset() -> None:
    data = bytearray(build(DefaultRecordBase.CODEC_NONE, 500, 20))
    body_at = DefaultRecordBase.HEADER_STRUCT.size
    data[body_at] = 0x7E  # the first record's Length varint now says 63 bytes
    with pytest.raises(CorruptRecordError, match=r"topic clicks partition 3: record batch at offset \d+: "
                       r"record 1 of 20 has a negative length"):
        columnar(with_crc(data), 500)


def body_of(data: bytes) -> bytes:
    return data[DefaultRecordBase.HEADER_STRUCT.size:]


@pytest.mark.parametrize("shape", ["extra bytes", "too few records"])
def test_read_batches_names_the_batch_whose_body_does_not_hold_its_records(shape: str) -> None:
    good = BatchBody(body_of(build(DefaultRecordBase.CODEC_NONE, 0, 3)), 3, 0, 0, 0, False)
    body = body_of(build(DefaultRecordBase.CODEC_NONE, 0, 3))
    bad = (BatchBody(body + b"\0", 3, 77, 0, 0, False) if shape == "extra bytes"
           else BatchBody(body, 4, 77, 0, 0, False))
    why = r"1 bytes left after 3" if shape == "extra bytes" else r"record 3 of 4 starts past"
    with pytest.raises(ValueError, match=rf"record batch at offset 77: {why}"):
        read_batches([good, bad])


def test_a_negative_record_length_is_malformed() -> None:
    body = bytearray(body_of(build(DefaultRecordBase.CODEC_NONE, 0, 2, first=1)))
    body[0] = 0x01  # zig-zag 1: a Length of -1
    with pytest.raises(ValueError, match=r"offset 9: record 0 of 2 has a negative length \(-1\)"):
        read_batches([BatchBody(bytes(body), 2, 9, 0, 0, False)])


def test_read_batches_rejects_a_value_running_past_its_record() -> None:
    body = bytearray(body_of(build(DefaultRecordBase.CODEC_NONE, 0, 1, first=1)))
    (value,) = read_batches([BatchBody(bytes(body), 1, 5, 0, 0, False)]).values
    assert value == record(1)[2]
    value_len_at = bytes(body).index(value) - 1  # a one-byte varint before the value
    body[value_len_at] += 2  # one byte longer: into the header count
    with pytest.raises(ValueError, match="offset 5: a key or value length is negative or runs past"):
        read_batches([BatchBody(bytes(body), 1, 5, 0, 0, False)])


def test_log_append_time_gives_every_record_its_batch_max_timestamp() -> None:
    body = body_of(build(DefaultRecordBase.CODEC_NONE, 0, 4))
    cols = read_batches([BatchBody(body, 4, 7, 100, 999, True), BatchBody(body, 4, 11, 100, 999, False)])
    assert cols.timestamps_ms.tolist()[:4] == [999] * 4
    assert cols.timestamps_ms.tolist()[4:] == [100 + record(i)[0] - record(0)[0] for i in range(4)]
    assert cols.offsets.tolist() == list(range(7, 15))


def test_varints_read_every_size_like_kafka_python() -> None:
    rng = random.Random(7)
    values = [0, 1, -1, 63, -64, 64, 300, -300, 2**31 - 1, -(2**31), 2**62, 2**63 - 1, -(2**63)]
    values += [rng.randint(-(2**63), 2**63 - 1) for _ in range(500)]
    values += [rng.randint(-5000, 5000) for _ in range(500)]
    buf = bytearray()
    starts = []
    for value in values:
        starts.append(len(buf))
        encode_varint(value, buf.append)
    got, sizes = _varints(np.frombuffer(bytes(buf) + bytes(10), np.uint8), np.asarray(starts))
    assert got.tolist() == values
    assert sizes.tolist() == np.diff([*starts, len(buf)]).tolist()


def test_a_varint_longer_than_ten_bytes_is_malformed() -> None:
    with pytest.raises(ValueError, match="longer than 10 bytes"):
        _varints(np.frombuffer(b"\xff" * 11 + bytes(10), np.uint8), np.asarray([0]))
