"""What one Dask task does with one partition's offset range (runs on a worker).

fetch (unless the driver shipped the records) -> decode -> late split -> window partials ->
archive (written and renamed here). Returns a ``Partial``: small per-window per-key
counters, late counts, the bad records and the archive paths; never the clicks.
"""

from __future__ import annotations

import time
import traceback
from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from pipeline.operators.aggregate import (
    Aggregate,
    clicks_frame,
    empty_counts,
    late_counts,
    late_mask,
    max_window_end_ms,
    window_counts,
)
from pipeline.operators.decode import decode_batch
from pipeline.sinks.archive import ArchiveSink
from pipeline.sources.base import Fetcher, RawRecord


@dataclass(frozen=True)
class BatchTask:
    topic: str
    partition: int
    start_offset: int
    end_offset: int
    finalized_ms: int
    archive_url: str
    aggregates: tuple[Aggregate, ...]
    fetcher: Fetcher | None = None
    records: tuple[RawRecord, ...] | None = None


@dataclass
class Partial:
    partition: int
    start_offset: int
    end_offset: int
    records: int = 0
    clicks: int = 0
    late_clicks: int = 0
    max_ts_ms: int | None = None
    max_window_end_ms: int | None = None
    counts: pd.DataFrame = field(default_factory=empty_counts)
    late: list[tuple[tuple[int, int], int]] = field(default_factory=list)
    dead: list[tuple[RawRecord, str]] = field(default_factory=list)
    archived: list[str] = field(default_factory=list)
    oldest_append_ms: int | None = None
    newest_append_ms: int | None = None
    error: str | None = None


def process_batch(task: BatchTask) -> Partial:
    """Never raises: a failure comes back as ``Partial.error`` (the driver stops on it)."""
    out = Partial(task.partition, task.start_offset, task.end_offset)
    try:
        _process(task, out)
    except Exception:
        out.error = (f"partition {task.partition} offsets {task.start_offset}..{task.end_offset}: "
                     + traceback.format_exc())
    return out


def _process(task: BatchTask, out: Partial) -> None:
    if task.records is not None:
        records = list(task.records)
    else:
        assert task.fetcher is not None, "a task needs records or a fetcher"
        records = task.fetcher(task.partition, task.start_offset, task.end_offset)
    out.records = len(records)
    if records:
        stamps = [r.timestamp_ms for r in records]
        out.oldest_append_ms, out.newest_append_ms = min(stamps), max(stamps)
    clicks, out.dead = decode_batch(records)
    out.clicks = len(clicks)
    if not clicks:
        return
    frame = clicks_frame(clicks)
    ts = frame["ts_ms"].to_numpy(dtype=np.int64)
    late = late_mask(ts, task.finalized_ms)
    frame["late"] = late
    out.late_clicks = int(late.sum())
    out.max_ts_ms = int(ts.max())
    out.max_window_end_ms = max_window_end_ms(out.max_ts_ms)
    on_time = frame[~late] if out.late_clicks else frame
    out.counts = window_counts(on_time, task.aggregates)
    if out.late_clicks:
        out.late = list(late_counts(ts[late].tolist()).items())
    archive = ArchiveSink(task.archive_url)
    archive.add(task.partition, records[0].offset, records[-1].offset, frame)
    out.archived = archive.flush()


def now_ms() -> int:
    return int(time.time() * 1000)
