"""Kafka records from click chunks, built as columns (no Python object per click).

``build_records(chunk, clicks_per_record, batch_wait_ms)`` turns one ``ClickChunk`` into
records with exactly the bytes of ``clickstream.events.encode_click`` /
``encode_batch``: each distinct row's titles are JSON-encoded once (orjson), and the
per-click parts (id, time) are cast and joined by pyarrow compute kernels; a batch
record's lists are joined per record (``binary_join`` over list arrays cut at the
records' bounds), then with the field names around them.

- One click per record: records in the chunk's click order.
- ``clicks_per_record = K > 1``: a record holds up to K clicks of ONE destination whose
  event times fall in one ``batch_wait_ms`` cell of a fixed grid (``ts_ms //
  batch_wait_ms``), in click order; a record goes out right after its last click (records
  ordered by the position of their last click), so batching delays a click by less
  than ``batch_wait_ms`` of event time plus the stream's jitter. Records never span
  chunks (a chunk's open batches close at its end).

``murmur2_partitions`` is Kafka's default partitioner (positive murmur2 of the key modulo
the partition count), vectorised with numpy: the same numbers as
``kafka.partitioner.default`` and ``clickstream.memory_topic.partition_for``.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from itertools import islice

import numpy as np
import orjson
import pyarrow as pa
import pyarrow.compute as pc

from clickstream.events import Click
from producer.expand import ClickChunk, stable_argsort

GENERIC_CHUNK_CLICKS = 8_192
_M = np.uint32(0x5BD1E995)
_SEED = np.uint32(0x9747B28C)
_BIN = pa.large_binary()


@dataclass(frozen=True)
class Records:
    """One chunk's records in send order: ``keys[i]``/``values[i]`` hold ``clicks[i]``
    clicks, the first at event time ``first_ts[i]``; ``key_index[i]`` indexes
    ``unique_keys`` (the chunk's distinct destinations)."""

    keys: list[bytes]
    values: list[bytes]
    clicks: np.ndarray  # int64
    first_ts: np.ndarray  # int64
    key_index: np.ndarray  # intp
    unique_keys: list[bytes]

    def __len__(self) -> int:
        return len(self.values)


def _lit(data: bytes) -> pa.Scalar:
    return pa.scalar(data, _BIN)


def _digits(values: np.ndarray) -> pa.Array:
    return pc.cast(pc.cast(pa.array(values, pa.int64()), pa.large_string()), _BIN)


def _join(*parts: pa.Array | pa.Scalar) -> pa.Array:
    return pc.binary_join_element_wise(*parts, _lit(b""))


def _to_bytes(array: pa.Array) -> list[bytes]:
    return array.to_numpy(zero_copy_only=False).tolist()


def build_records(chunk: ClickChunk, clicks_per_record: int = 1, batch_wait_ms: int = 1000) -> Records:
    """The chunk's records (see the module docstring for grouping and order)."""
    if clicks_per_record < 1:
        raise ValueError(f"clicks_per_record {clicks_per_record} must be >= 1")
    if batch_wait_ms < 1:
        raise ValueError(f"batch_wait_ms {batch_wait_ms} must be >= 1")
    index: dict[str, int] = {}
    code_u = np.array([index.setdefault(c, len(index)) for c in chunk.curr], np.intp)
    unique_keys = [c.encode("utf-8") for c in index]
    if len(chunk) == 0:
        empty = np.empty(0, np.int64)
        return Records([], [], empty, empty, empty.astype(np.intp), unique_keys)
    dumps = orjson.dumps
    code = code_u[chunk.row]
    if clicks_per_record == 1:
        tails = [b',"prev":' + dumps(p) + b',"curr":' + dumps(c) + b',"type":' + dumps(t) + b"}"
                 for p, c, t in zip(chunk.prev, chunk.curr, chunk.link_type, strict=True)]
        values = _to_bytes(_join(_lit(b'{"id":'), _digits(chunk.click_id), _lit(b',"ts":'),
                                 _digits(chunk.ts_ms), pa.array(tails, _BIN).take(pa.array(chunk.row))))
        code_list = code.tolist()
        keys = [unique_keys[i] for i in code_list]
        return Records(keys, values, np.ones(len(values), np.int64), chunk.ts_ms, code, unique_keys)
    cell = chunk.ts_ms // batch_wait_ms
    by_cell = stable_argsort(cell)
    order = by_cell[stable_argsort(code[by_cell])]  # by (destination, cell), click order within
    n = len(order)
    code_s, cell_s = code[order], cell[order]
    new_group = np.r_[True, (code_s[1:] != code_s[:-1]) | (cell_s[1:] != cell_s[:-1])]
    position = np.arange(n)
    seq = position - np.maximum.accumulate(np.where(new_group, position, 0))
    starts = np.flatnonzero(seq % clicks_per_record == 0)
    send_order = np.argsort(np.maximum.reduceat(order, starts))  # by last click; no ties
    # The clicks regrouped record by record in send order, so the values need no reordering.
    lengths = np.diff(np.r_[starts, n])[send_order]
    bounds = np.r_[0, np.cumsum(lengths)]
    order = order[np.repeat(starts[send_order] - bounds[:-1], lengths) + position]
    first = order[bounds[:-1]]
    key_index = code[first]
    row_s = pa.array(chunk.row[order])
    offsets = pa.array(bounds, pa.int64())

    def listed(items: pa.Array) -> pa.Array:
        return pc.binary_join(pa.LargeListArray.from_arrays(offsets, items), _lit(b","))

    def per_row(titles: list[str]) -> pa.Array:
        return pa.array([dumps(t) for t in titles], _BIN).take(row_s)

    curr = pa.array([dumps(c) for c in index], _BIN).take(pa.array(key_index))
    joined = _join(_lit(b'{"curr":'), curr, _lit(b',"ids":['), listed(_digits(chunk.click_id[order])),
                   _lit(b'],"ts":['), listed(_digits(chunk.ts_ms[order])),
                   _lit(b'],"prevs":['), listed(per_row(chunk.prev)),
                   _lit(b'],"types":['), listed(per_row(chunk.link_type)), _lit(b"]}"))
    keys = [unique_keys[i] for i in key_index.tolist()]
    return Records(keys, _to_bytes(joined), lengths, chunk.ts_ms[first], key_index, unique_keys)


def chunks_of(clicks: Iterable[Click], size: int = GENERIC_CHUNK_CLICKS) -> Iterator[ClickChunk]:
    """Any click iterable as chunks of at most ``size`` clicks (the chunks of
    ``expand_clicks``' result are taken as they are)."""
    chunks = getattr(clicks, "chunks", None)
    if chunks is not None:
        yield from chunks()
        return
    it = iter(clicks)
    while True:
        batch = list(islice(it, size))
        if not batch:
            return
        rows: dict[tuple[str, str, str], int] = {}
        row = np.array([rows.setdefault((c.prev, c.curr, c.link_type), len(rows)) for c in batch], np.intp)
        titles = list(zip(*rows, strict=True))
        yield ClickChunk(np.array([c.click_id for c in batch], np.int64),
                         np.array([c.ts_ms for c in batch], np.int64), row,
                         list(titles[0]), list(titles[1]), list(titles[2]))


def murmur2_partitions(keys: Sequence[bytes], partitions: int) -> np.ndarray:
    """Kafka's default partition of each key (murmur2, as kafka-python's DefaultPartitioner)."""
    n = len(keys)
    if n == 0:
        return np.empty(0, np.int64)
    lengths = np.fromiter(map(len, keys), np.int64, n)
    buf = np.frombuffer(b"".join(keys) + b"\0\0\0\0", np.uint8).astype(np.uint32)
    offsets = np.r_[0, np.cumsum(lengths)[:-1]]
    h = _SEED ^ lengths.astype(np.uint32)
    words = lengths // 4
    for j in range(int(words.max())):
        act = np.flatnonzero(words > j)
        p = offsets[act] + 4 * j
        k = buf[p] | (buf[p + 1] << 8) | (buf[p + 2] << 16) | (buf[p + 3] << 24)
        k = k * _M
        k ^= k >> 24
        k = k * _M
        h[act] = (h[act] * _M) ^ k
    extra = lengths % 4
    tail = offsets + (lengths & ~3)
    for size, shift in ((3, 16), (2, 8), (1, 0)):
        idx = np.flatnonzero(extra >= size)
        h[idx] ^= buf[tail[idx] + size - 1] << shift
    idx = np.flatnonzero(extra >= 1)
    h[idx] = h[idx] * _M
    h ^= h >> 13
    h = h * _M
    h ^= h >> 15
    return ((h & np.uint32(0x7FFFFFFF)) % partitions).astype(np.int64)
