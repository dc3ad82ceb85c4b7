"""What one Dask task does with its offset ranges (runs on a worker).

Per range (a ``BatchTask``): fetch (unless the driver shipped the records) -> columnar
decode -> late split -> window partials -> archive (written and renamed here). Each range
gives a ``Partial``: small per-window per-key counters as an Arrow table, late counts, the
bad records and the archive paths; never the clicks.

``process_batches`` runs several ranges in one Dask task (the driver sends a caught-up
cycle's small ranges as one group per worker: the ranges of the partitions that worker
reads): the ranges are counted one after the other while their archive files are
written on a helper thread, so HDFS round trips overlap the next range's fetch and decode
instead of adding to the cycle.

Idempotent: the same task (same offsets, same ``finalized_ms``) gives the same partial and
rewrites the same archive files, so Dask may run it again on another worker and the
driver may retry it after an outage.
"""

from __future__ import annotations

import time
import traceback
from collections.abc import Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field

import numpy as np
import pyarrow as pa

from pipeline.operators.aggregate import (
    COUNT_SCHEMA,
    Aggregate,
    late_counts,
    late_mask,
    max_window_end_ms,
    window_counts,
    with_referrer_class,
)
from pipeline.operators.decode import decode_values
from pipeline.sinks.archive import ArchiveSink
from pipeline.sources.base import Fetcher, RawRecord, RecordBatch


@dataclass(frozen=True)
class BatchTask:
    """One partition's offset range of one cycle; ``records`` when the driver fetched them."""

    topic: str
    partition: int
    start_offset: int
    end_offset: int
    finalized_ms: int
    archive_url: str
    aggregates: tuple[Aggregate, ...]
    fetcher: Fetcher | None = None
    records: RecordBatch | None = None
    attempt: int = 0  # a retry is a new Dask task, not the cached result of the failed one


@dataclass
class Partial:
    """What a task sends back. ``error`` set means it failed (``retryable``: an outage)."""

    partition: int
    start_offset: int
    end_offset: int
    records: int = 0
    clicks: int = 0
    late_clicks: int = 0
    max_ts_ms: int | None = None
    max_window_end_ms: int | None = None
    counts: pa.Table = field(default_factory=COUNT_SCHEMA.empty_table)
    late: list[tuple[int, int, int]] = field(default_factory=list)  # (window_ms, start, clicks)
    dead: list[tuple[RawRecord, str]] = field(default_factory=list)
    archived: list[str] = field(default_factory=list)
    oldest_append_ms: int | None = None
    newest_append_ms: int | None = None
    append_sample: list[int] = field(default_factory=list)  # <= SAMPLE append times, spread evenly
    archive_s: float = 0.0
    error: str | None = None
    retryable: bool = False


SAMPLE = 64  # append times a partial carries back, for the append -> store latency
# Errors of the servers a task talks to (Kafka, HDFS): the driver waits and retries them.
RETRYABLE = (OSError, TimeoutError, ConnectionError)


def process_batch(task: BatchTask) -> Partial:
    """One range. Never raises: a failure comes back as ``Partial.error`` (the driver
    retries or stops)."""
    return process_batches((task,))[0]


def process_batches(tasks: Sequence[BatchTask]) -> list[Partial]:
    """Several ranges, one ``Partial`` each, in the order given. Never raises (as
    ``process_batch``); a range that failed does not stop the others.

    Each range is counted on this thread while the archive of the range before is written
    on one helper thread (pyarrow and the HDFS client release the GIL while they wait).
    Blocks until every archive file is written (or failed).
    """
    outs: list[Partial] = []
    writes: list[tuple[int, Future[None]]] = []
    with ThreadPoolExecutor(max_workers=1, thread_name_prefix="archive") as writer:
        for i, task in enumerate(tasks):
            out = Partial(task.partition, task.start_offset, task.end_offset)
            try:
                archive = _count(task, out)
            except Exception as exc:
                out = _failed(task, exc)
                archive = None
            outs.append(out)
            if archive is not None:
                writes.append((i, writer.submit(_write_archive, archive, out)))
        for i, write in writes:
            exc = write.exception()
            if exc is not None:
                outs[i] = _failed(tasks[i], exc)
    return outs


def _failed(task: BatchTask, exc: BaseException) -> Partial:
    out = Partial(task.partition, task.start_offset, task.end_offset)
    out.retryable = _is_retryable(exc)
    out.error = (f"partition {task.partition} offsets {task.start_offset}..{task.end_offset}: "
                 + "".join(traceback.format_exception_only(type(exc), exc)).strip()
                 + ("" if out.retryable else "\n" + "".join(traceback.format_exception(exc))))
    return out


def _is_retryable(exc: BaseException) -> bool:
    if isinstance(exc, RETRYABLE):
        return True
    module = type(exc).__module__ or ""
    return module.startswith(("kafka", "hdfs_native", "pipeline.sources"))


def _count(task: BatchTask, out: Partial) -> ArchiveSink | None:
    """Fetch, decode and count the range into ``out``; the archive still to write (None
    when the range holds no click)."""
    if task.records is not None:
        batch = task.records
    else:
        assert task.fetcher is not None, "a task needs records or a fetcher"
        batch = task.fetcher(task.partition, task.start_offset, task.end_offset)
    out.records = len(batch)
    if not len(batch):
        return None
    stamps = np.sort(batch.timestamps_ms)
    out.oldest_append_ms, out.newest_append_ms = int(stamps[0]), int(stamps[-1])
    out.append_sample = stamps[np.linspace(0, len(stamps) - 1, min(len(stamps), SAMPLE)).astype(int)].tolist()
    decoded = decode_values(batch.values)
    out.dead = [(batch.record(i), reason) for i, reason in decoded.dead]
    clicks = decoded.clicks
    out.clicks = clicks.num_rows
    if not out.clicks:
        return None
    clicks = with_referrer_class(clicks)
    ts = clicks["ts_ms"].to_numpy()
    late = late_mask(ts, task.finalized_ms)
    out.late_clicks = int(late.sum())
    out.max_ts_ms = int(ts.max())
    out.max_window_end_ms = max_window_end_ms(out.max_ts_ms)
    on_time = clicks.filter(pa.array(~late)) if out.late_clicks else clicks
    out.counts = window_counts(on_time, task.aggregates)
    if out.late_clicks:
        out.late = late_counts(ts[late])
    archive = ArchiveSink(task.archive_url, task.topic)
    archive.add(task.partition, int(batch.offsets[0]), int(batch.offsets[-1]),
                clicks.append_column("late", pa.array(late)))
    return archive


def _write_archive(archive: ArchiveSink, out: Partial) -> None:
    t0 = time.perf_counter()
    out.archived = archive.flush()
    out.archive_s = time.perf_counter() - t0


def start_reading(fetcher: Fetcher, offsets: dict[int, int]) -> None:
    """Let this worker's ``fetcher`` read the partitions ahead from ``offsets`` (an idle
    pipeline's warm-up; a fetcher without ``start_reading`` has nothing to do). Does not block."""
    start = getattr(fetcher, "start_reading", None)
    if start is not None:
        for partition, offset in offsets.items():
            start(partition, offset)


def now_ms() -> int:
    return int(time.time() * 1000)

