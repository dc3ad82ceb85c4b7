"""The streamz graph on Dask that wires source -> operators -> sinks, and its run loop.

Graph (one node per role)::

    Stream (BatchTask per partition range)
      .scatter()                  tasks to the Dask workers
      .map(process_batch)         fetch + decode + window partials + archive, on a worker
      .buffer(n).gather()         partials (small counters) back to the driver
      .accumulate(absorb)         merged into the open windows (``WindowState``)
      .sink(arrived)              the cycle knows when its last partial is in

Each cycle plans one offset range per partition (``stream_batch_records`` at most), emits
them, waits for their partials, advances the watermark, finalizes windows, flushes the
sinks (dead letters, store incl. ``pipeline_state``; the archive was written by the tasks)
and only then commits offsets: per partition, up to the last batch whose windows are all
final and written.

Watermark: per partition, the max event time seen; the pipeline's watermark is the
minimum over partitions that still have unread records (caught-up partitions do not hold
it back) minus ``allowed_lateness_ms``; it never goes back.

Where a restart resumes: at the committed offsets. A clean stop (Ctrl-C, ``--until-idle-s``,
``--max-clicks``, ``stop()``) finalizes and writes every open window, records in
``pipeline_state`` the end of the latest window written, and commits all consumed
offsets; after a restart, clicks for windows that were already final count as late. After
a crash, the restart re-reads from the last commit (at-least-once): windows are rewritten
with the same absolute values, but the archive and the dead-letter topic may get
records again (same click_id / source offset) and late counts may be counted twice.
"""

from __future__ import annotations

import logging
import math
import threading
import time
from collections import deque
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from dask.distributed import Client, LocalCluster
from streamz import Stream

from clickstream.memory_topic import MemoryTopic
from clickstream.settings import Settings
from clickstream.store import Store, open_store
from pipeline.operators.aggregate import BUILTIN_AGGREGATES, Aggregate
from pipeline.operators.windows import WindowRows, WindowState
from pipeline.sinks.dead_letter import DeadLetterSink, FileDeadLetterSink, KafkaDeadLetterSink
from pipeline.sinks.metrics import CycleMetrics, MetricsSink
from pipeline.sinks.store import StoreSink
from pipeline.sources.base import BatchSource
from pipeline.sources.kafka import KafkaSource
from pipeline.sources.memory import MemorySource
from pipeline.worker import BatchTask, Partial, now_ms, process_batch

log = logging.getLogger("pipeline")


TASK_RECORDS = 25_000  # records per Dask task (one archive file per task and hour)


def _warm_worker() -> None:
    """Import the task's modules on a worker before the first batch (a first-cycle stall)."""
    import pyarrow.parquet  # noqa: F401

    import pipeline.worker  # noqa: F401


class PipelineError(RuntimeError):
    """The pipeline cannot go on (a source, sink or worker failed); the message says where."""


@dataclass
class RunSummary:
    """What one ``Pipeline.run`` did."""

    cycles: int = 0
    records: int = 0
    clicks: int = 0
    late_clicks: int = 0
    dead_letters: int = 0
    archived_files: int = 0
    rows_written: int = 0
    finalized_ms: int = 0
    committed: dict[int, int] = field(default_factory=dict)
    elapsed_s: float = 0.0


class _Cycle:
    """Partials of the cycle in flight (filled by the streamz accumulate on the client loop)."""

    def __init__(self) -> None:
        self.expected = 0
        self.partials: list[Partial] = []
        self.done = threading.Condition()

    def absorb(self, acc: _Cycle, partial: Partial) -> _Cycle:
        acc.partials.append(partial)
        return acc

    def arrived(self, acc: _Cycle) -> None:
        with self.done:
            self.done.notify_all()

    def wait(self, timeout_s: float) -> list[Partial]:
        with self.done:
            if not self.done.wait_for(lambda: len(self.partials) >= self.expected, timeout=timeout_s):
                raise PipelineError(f"cycle: only {len(self.partials)} of {self.expected} batches "
                                    f"came back within {timeout_s:.0f} s")
            out, self.partials = self.partials, []
            return out


class Pipeline:
    """The streaming pipeline, built from settings.

    - ``client``: a Dask client to run on (yours); default: ``settings.dask_scheduler_address``
      or a ``LocalCluster`` of ``settings.dask_workers`` processes (closed by ``close()``).
    - ``memory_topic``: read this in-process topic instead of Kafka (embedded stack).
    - ``source`` / ``dead_letter``: any ``BatchSource`` (another Kafka client) and its
      dead-letter sink, instead of the ones the settings choose.
    - ``aggregates``: extra metrics, each flowing into the same windows and tables as the
      built-in ones (``metric`` column = its name).
    - ``store``: the store to write (default ``open_store(settings)``, closed by ``close()``).

    ``run()`` blocks until a stop condition, then stops cleanly (see the module docstring).
    """

    def __init__(self, settings: Settings, *, client: Client | None = None,
                 memory_topic: MemoryTopic | None = None, aggregates: Sequence[Aggregate] = (),
                 store: Store | None = None, source: BatchSource | None = None,
                 dead_letter: DeadLetterSink | None = None) -> None:
        self.settings = settings
        self.aggregates = tuple(BUILTIN_AGGREGATES) + tuple(aggregates)
        names = [a.name for a in self.aggregates]
        if len(set(names)) != len(names):
            raise PipelineError(f"aggregates: metric names must be unique, got {names}")
        self._owned: list[Any] = []
        self.source: BatchSource
        if source is not None:  # another client behind the same seam
            self.source = source
            self.dead_letter: DeadLetterSink = dead_letter or FileDeadLetterSink(
                settings.work_path / "dead-letter" / f"{source.topic}.jsonl")
        elif memory_topic is not None:
            self.source = MemorySource(memory_topic, settings.consumer_group)
            self.dead_letter = dead_letter or FileDeadLetterSink(
                settings.work_path / "dead-letter" / f"{memory_topic.name}.jsonl")
        elif settings.kafka_bootstrap:
            self.source = KafkaSource(settings.kafka_bootstrap, settings.topic, settings.consumer_group)
            self.dead_letter = dead_letter or KafkaDeadLetterSink(settings.kafka_bootstrap,
                                                                  settings.dead_letter_topic)
        else:
            raise PipelineError("no source: set kafka_bootstrap_servers (or stack=local), or pass "
                                "memory_topic= for an in-process run")
        self._owned += [self.source, self.dead_letter]
        if store is None:
            store = open_store(settings)
            self._owned.append(store)
        self.store_sink = StoreSink(store)
        self.metrics = MetricsSink(self.store_sink, settings.consumer_group)
        if client is None:
            if settings.dask_scheduler_address:
                client = Client(settings.dask_scheduler_address)
            else:
                cluster = LocalCluster(n_workers=settings.dask_workers, threads_per_worker=1,
                                       processes=True, host="127.0.0.1", dashboard_address=None,
                                       silence_logs=logging.WARNING)
                client = Client(cluster)
                self._owned.append(cluster)
            self._owned.append(client)  # closed first: its scattered data goes before the workers
        self.client = client
        client.run(_warm_worker)
        self._stop = threading.Event()
        self.consumed: dict[int, int] = {}  # next offset to read per partition (progress)
        self._cycle = _Cycle()
        self.stream = Stream(asynchronous=False)
        (self.stream.scatter().map(process_batch)
         .buffer(2 * len(self.source.partitions)).gather()
         .accumulate(self._cycle.absorb, start=self._cycle)
         .sink(self._cycle.arrived))

    # -- control -------------------------------------------------------------------------
    def stop(self) -> None:
        """Ask ``run`` to stop cleanly after the cycle in flight (safe from a signal handler)."""
        self._stop.set()

    def close(self) -> None:
        """Release what the pipeline opened (its Dask cluster, store, Kafka clients)."""
        for thing in reversed(self._owned):
            thing.close()
        self._owned.clear()

    def __enter__(self) -> Pipeline:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- progress (safe to call from another thread while ``run`` blocks) ------------------
    def consumed_offsets(self) -> dict[int, int]:
        """Per partition, the next offset to read after the last finished cycle (a copy)."""
        return dict(self.consumed)

    def metrics_history(self) -> list[CycleMetrics]:
        """Every cycle's metrics of this run, oldest first (a copy)."""
        return list(self.metrics.history)

    def source_kind(self) -> str:
        """``kafka`` for a Kafka topic, ``memory`` for the in-process topic, else the class name."""
        if isinstance(self.source, KafkaSource):
            return "kafka"
        if isinstance(self.source, MemorySource):
            return "memory"
        return type(self.source).__name__

    # -- the loop ------------------------------------------------------------------------
    def _load_finalized_ms(self) -> int:
        rows = self.store_sink.store.select("pipeline_state", {"pipeline": self.settings.consumer_group})
        for row in rows:
            if row["topic"] == self.source.topic:
                return int(row["finalized_ms"])
        return 0

    def run(self, *, until_idle_s: float | None = None, max_clicks: int | None = None,
            cycle_timeout_s: float = 600.0) -> RunSummary:
        """Consume until stopped, idle for ``until_idle_s``, past ``max_clicks`` clicks (checked
        per cycle; the last cycle is cut to about the remainder) or the in-process topic
        closed and read. Then finalize every open window, flush, commit. Blocks."""
        s = self.settings
        t0 = time.monotonic()
        summary = RunSummary()
        state = WindowState(self._load_finalized_ms())
        next_offsets = self.source.committed()
        max_ts: dict[int, int] = {}
        pending: dict[int, deque[tuple[int, int | None]]] = {p: deque() for p in self.source.partitions}
        committed = dict(next_offsets)
        watermark = state.finalized_ms
        idle_since = time.monotonic()
        log.info("pipeline: topic %s from offsets %s, windows final up to %d",
                 self.source.topic, next_offsets, state.finalized_ms)
        while not self._stop.is_set():
            ends = self.source.end_offsets()
            remaining = None if max_clicks is None else max_clicks - summary.clicks
            if remaining is not None and remaining <= 0:
                break
            tasks = self._plan(next_offsets, ends, state.finalized_ms, remaining)
            if not tasks:
                if self.source.exhausted(next_offsets):
                    break
                if until_idle_s is not None and time.monotonic() - idle_since >= until_idle_s:
                    break
                self.source.wait_for_data(next_offsets, s.stream_poll_interval_s)
                continue
            started = time.monotonic()
            self._cycle.expected = len(tasks)
            for task in tasks:
                self.stream.emit(task)
            partials = self._cycle.wait(cycle_timeout_s)
            errors = [p.error for p in partials if p.error]
            if errors:
                raise PipelineError("a batch failed: " + errors[0])
            partials.sort(key=lambda p: (p.partition, p.start_offset))
            late = dead = clicks = 0
            oldest = newest = None
            for part in partials:
                state.add_counts(part.counts)
                state.add_late(part.late)
                for record, reason in part.dead:
                    self.dead_letter.add(self.source.topic, part.partition, record, reason)
                next_offsets[part.partition] = part.end_offset
                pending[part.partition].append((part.end_offset, part.max_window_end_ms))
                if part.max_ts_ms is not None:
                    max_ts[part.partition] = max(max_ts.get(part.partition, part.max_ts_ms), part.max_ts_ms)
                late += part.late_clicks
                dead += len(part.dead)
                clicks += part.clicks
                summary.records += part.records
                summary.archived_files += len(part.archived)
                if part.oldest_append_ms is not None:
                    oldest = part.oldest_append_ms if oldest is None else min(oldest, part.oldest_append_ms)
                    newest = part.newest_append_ms if newest is None else max(newest, part.newest_append_ms)
            active = [max_ts[p] for p in max_ts if next_offsets[p] < ends[p]]
            if not active:
                active = list(max_ts.values())
            if active:
                watermark = max(watermark, min(active) - s.allowed_lateness_ms)
            t_merge = time.monotonic()
            rows = state.finalize(watermark)
            t_final = time.monotonic()
            self._flush(state, rows)
            now = now_ms()
            elapsed = max(time.monotonic() - started, 1e-6)
            self.metrics.add(CycleMetrics(now, clicks, clicks / elapsed,
                                          now - newest if newest is not None else 0,
                                          now - oldest if oldest is not None else 0,
                                          late, dead, state.finalized_ms))
            summary.rows_written += self.store_sink.flush()
            log.debug("cycle phases: batches %.2f s, finalize %.2f s, flush %.2f s",
                      t_merge - started, t_final - t_merge, time.monotonic() - t_final)
            summary.cycles += 1
            summary.clicks += clicks
            summary.late_clicks += late
            summary.dead_letters += dead
            safe = self._safe_offsets(pending, state.finalized_ms, committed)
            if safe != committed:
                self.source.commit(safe)
                committed = safe
            self.consumed = dict(next_offsets)
            idle_since = time.monotonic()
        # clean stop: every open window final and written, then commit all consumed offsets
        rows = state.finalize_all()
        self._flush(state, rows)
        summary.rows_written += self.store_sink.flush()
        self.source.commit(next_offsets)
        summary.committed = dict(next_offsets)
        summary.finalized_ms = state.finalized_ms
        summary.elapsed_s = time.monotonic() - t0
        log.info("pipeline stopped: %d clicks, %d late, %d dead letters in %.1f s; committed %s",
                 summary.clicks, summary.late_clicks, summary.dead_letters, summary.elapsed_s,
                 summary.committed)
        return summary

    def _plan(self, next_offsets: dict[int, int], ends: dict[int, int], finalized_ms: int,
              remaining: int | None) -> list[BatchTask]:
        batch = self.settings.stream_batch_records
        with_data = [p for p in self.source.partitions if ends[p] > next_offsets[p]]
        if remaining is not None and with_data:
            batch = max(1, min(batch, math.ceil(remaining / len(with_data))))
        fetcher = self.source.fetcher()
        tasks = []
        for p in with_data:
            end = min(ends[p], next_offsets[p] + batch)
            # a busy partition's range is cut into pieces, so that every worker shares it
            for start in range(next_offsets[p], end, TASK_RECORDS):
                stop = min(end, start + TASK_RECORDS)
                records = None if fetcher is not None else tuple(self.source.fetch(p, start, stop))
                tasks.append(BatchTask(self.source.topic, p, start, stop, finalized_ms,
                                       self.settings.archive, self.aggregates, fetcher, records))
        return tasks

    def _flush(self, state: WindowState, rows: WindowRows) -> None:
        """Dead letters, then windows (+ late rewrites, metrics, pipeline_state), blocking."""
        self.dead_letter.flush()
        unknown = list(state.unknown_final())
        stored = self.store_sink.stored_totals(unknown) if unknown else {}
        self.store_sink.add(rows, state.take_late_rewrites(stored))
        self.store_sink.add_rows("pipeline_state", [(self.settings.consumer_group, self.source.topic,
                                                     state.finalized_ms, now_ms())])

    @staticmethod
    def _safe_offsets(pending: dict[int, deque[tuple[int, int | None]]], finalized_ms: int,
                      committed: dict[int, int]) -> dict[int, int]:
        """Per partition, the end of the last batch whose windows are all final."""
        safe = dict(committed)
        for p, queue in pending.items():
            while queue and (queue[0][1] is None or queue[0][1] <= finalized_ms):
                safe[p] = queue.popleft()[0]
        return safe
