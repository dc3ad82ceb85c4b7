"""The narrow seam between the pipeline and a log of records.

A source has fixed partitions and reads an offset range of one partition as a batch of
raw records. Everything else (decoding, windows, sinks) sees only ``RecordBatch`` columns
(and ``RawRecord`` for a dead letter), so another client (say confluent-kafka) is one more
module here.

- ``fetch(partition, start, end)`` blocks until it returns records ``[start, end)``.
- ``fetcher(pinned=...)`` is a picklable callable with the same signature that Dask
  workers call themselves (so raw records never pass through the scheduler), or None when
  the log lives in the driver's memory (then the driver fetches and ships the batch).
  ``pinned=True`` says each partition's next range will be asked for on the same
  worker, right after this one (a caught-up pipeline): the source may keep a reader of
  the partition where the range ended.
- ``committed()`` is where a restart resumes: the group's committed next offsets, or the
  start of each partition when nothing was committed.
- ``commit(offsets)`` records the next offsets to read (called only after every sink
  flushed what the offsets cover).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import NamedTuple, Protocol

import numpy as np


class RawRecord(NamedTuple):
    offset: int
    key: bytes | None
    value: bytes | None
    timestamp_ms: int  # append (or create) time on the log, wall clock


# Fetch sizes of both Kafka clients (lz4 batches of 64 KiB-1 MiB; a range is read in few fetches).
MAX_PARTITION_FETCH_BYTES = 32 * 1024 * 1024
FETCH_MAX_BYTES = 64 * 1024 * 1024


class SourceError(RuntimeError):
    """The topic cannot be read; the message names the topic and broker."""


@dataclass(frozen=True)
class RecordBatch:
    """Records ``[start_offset, end_offset)`` of one partition as columns (no object per record).

    ``offsets`` and ``timestamps_ms`` are int64 arrays (append or create time, wall clock);
    ``keys`` and ``values`` are the raw bytes, ``None`` where the record has none. All four
    have one entry per record, in offset order; offsets may have gaps (compacted topics,
    transaction markers) but never leave ``[start_offset, end_offset)``.
    """

    partition: int
    start_offset: int
    end_offset: int
    offsets: np.ndarray
    timestamps_ms: np.ndarray
    keys: list[bytes | None]
    values: list[bytes | None]

    def __len__(self) -> int:
        return len(self.values)

    def record(self, i: int) -> RawRecord:
        """The i-th record as a ``RawRecord`` (for the rare per-record paths: dead letters)."""
        return RawRecord(int(self.offsets[i]), self.keys[i], self.values[i], int(self.timestamps_ms[i]))


Fetcher = Callable[[int, int, int], RecordBatch]


class BatchSource(Protocol):
    topic: str
    partitions: tuple[int, ...]

    def end_offsets(self) -> dict[int, int]: ...

    def committed(self) -> dict[int, int]: ...

    def commit(self, offsets: dict[int, int]) -> None: ...

    def fetch(self, partition: int, start_offset: int, end_offset: int) -> RecordBatch: ...

    def fetcher(self, *, pinned: bool = False) -> Fetcher | None: ...

    def wait_for_data(self, offsets: dict[int, int], timeout_s: float) -> bool: ...

    def exhausted(self, offsets: dict[int, int]) -> bool: ...

    def close(self) -> None: ...
