"""The streamz graph on Dask that wires source -> operators -> sinks, and its cycle loop.

Graph::

    DaskStream (TaskGroups: one BatchTask per partition offset range of <= TASK_RECORDS
               records; a cycle behind sends each alone, anywhere; a caught-up cycle one
               group per worker, with the ranges of the partitions that worker reads)
      .map_on_worker(process_batches)  on its worker: fetch + decode + partials + archive
      .buffer(n).gather()      partials (small Arrow tables of counts) back to the driver
      .sink(arrived)           the cycle waits for its partials, retrying failed tasks

Cycle k, behind on the topic (throughput first: the workers never wait for the driver's
merge or store writes, only for planning)::

    wait for k's partials (the workers fetch, decode, count and archive k's ranges ...)
    advance: offsets, per-partition max event time, watermark  (cheap, no window state)
    collect a landed state: commit its offsets to Kafka (or raise its write's failure)
    plan k+1 (ranges, end offsets, lateness threshold) -> logged in the store (milliseconds)
    dispatch k+1's tasks                                -> the workers start on k+1 ...
    merge k's partials, finalize windows (vectorised)   ... while the driver merges k,
    flush k: dead letters, window rows, metrics         ... writes k's rows
    snapshot k (every checkpoint_interval_s)            ... and takes its state (encoded bytes),
                                                            handed to the writer thread

    k+1's lateness threshold is what finalizing k will set (the watermark after k, never
    lower than what was final before), known before k's counts are merged.

Cycle k, caught up (it read all its partitions held when planned; latency first): merge
and flush k right after advancing, then plan and dispatch k+1, then snapshot k if due (as
above, while the workers run k+1); the rows of k are in the store one merge and one flush
after its partials arrived.

    writer thread: state/<k>.ckpt written (retried like any step), then older states and
    the plans they cover pruned; at most one write in flight: a boundary that finds one
    still in flight (or landed but not collected) takes no snapshot, the next due one does

Watermark: per partition, the max event time seen; the pipeline's watermark is the
minimum over partitions that still had unread records when the cycle was planned
(caught-up partitions do not hold it back) minus ``allowed_lateness_ms``; it never goes back.

A clean stop (Ctrl-C, ``--until-idle-s``, ``--max-clicks``, ``stop()``) waits for the state
in flight, checkpoints and waits for that state to land, then writes every open window as
it stands; a restart reopens those windows (their rows are rewritten when final), so
stopping never makes a click late.

Exactly once (see ``pipeline.checkpoint``): a restart loads the newest state that landed
(window state, watermark, offsets, dead-letter position) and first runs again every cycle
logged after it, with the same plan, so window rows, late counts, archive files and dead
letters come out as if the process had never died. A state is taken only after every
output of the cycles it covers was flushed; while it is written the older state and the
plans after it stay, so a crash mid-write resumes from the older one. Offsets are committed
to Kafka once a state has landed (never before), for tools that watch the group; the
checkpoint is where a restart resumes. A state write that fails for good (after
``outage_timeout_s``) stops the pipeline with a ``PipelineError`` naming the state file.

Outages: a step that fails because Kafka, the store or the archive is unreachable is
retried with backoff (no new cycle starts meanwhile, so memory stays bounded) for up to
``outage_timeout_s``; ``status()`` says what it waits for. A state write is retried the
same way on the writer's thread while cycles go on (their plans stay in the log).
"""

from __future__ import annotations

import dataclasses
import logging
import math
import threading
import time
from collections import deque
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from functools import partial
from typing import Any, TypeVar

import numpy as np
from dask.distributed import Client, LocalCluster, default_client
from kafka.errors import TopicAuthorizationFailedError as KafkaTopicAuthorizationFailedError
from streamz.dask import DaskStream

from clickstream.memory_topic import MemoryTopic
from clickstream.settings import Settings
from clickstream.store import Store, open_store
from clickstream.store.cassandra import REFUSALS as CASSANDRA_REFUSALS
from pipeline.checkpoint import CheckpointError, Checkpoints, CyclePlan, Snapshot, StorePlans, encode
from pipeline.operators.aggregate import BUILTIN_AGGREGATES, Aggregate
from pipeline.operators.windows import WindowRows, WindowState
from pipeline.sinks.archive import remove_stale_tmp
from pipeline.sinks.dead_letter import DeadLetterSink, FileDeadLetterSink, KafkaDeadLetterSink
from pipeline.sinks.metrics import CycleMetrics, MetricsSink, PartitionLag
from pipeline.sinks.store import StoreSink
from pipeline.sources.base import BatchSource
from pipeline.sources.kafka import KafkaSource, SourceError
from pipeline.sources.memory import MemorySource
from pipeline.worker import BatchTask, Partial, now_ms, process_batches, start_reading

log = logging.getLogger("pipeline")
PERMANENT_SERVER_ERRORS = (*CASSANDRA_REFUSALS, KafkaTopicAuthorizationFailedError)

TASK_RECORDS = 25_000  # records per Dask task (one archive file per task and hour)
LATENCY_SAMPLES = 20_000  # append -> store latencies kept for progress() percentiles
STALL_S = 5.0  # a blocking step silent this long shows in status() as waiting
SLOW_SOURCE_S = 1.0  # an idle pipeline's call to the source this slow was an outage, not idleness
WORKERS_TTL_S = 5.0  # how long the list of Dask workers is reused (scale-out)
# Retries of an unreachable server wait 0.5 s, doubling to this: a server back is seen
# within about this long (a longer cap only delayed the resume after an outage).
RETRY_MAX_DELAY_S = 2.0
WARM_EVERY_S = 10.0  # an idle pipeline tells its workers where to be ready to read this often
T = TypeVar("T")


def _warm_worker() -> None:
    """Import the task's modules on a worker before the first batch (a first-cycle stall)."""
    import pyarrow.parquet  # noqa: F401

    import pipeline.worker  # noqa: F401


@dataclass(frozen=True)
class TaskGroup:
    """What flows through the graph: ranges for one Dask task, on ``worker`` if it is alive
    (None: any worker)."""

    tasks: tuple[BatchTask, ...]
    worker: str | None = None


@DaskStream.register_api()
class map_on_worker(DaskStream):  # (a streamz node: its API name is the class name)
    """``DaskStream.map`` for ``TaskGroup`` elements: ``func(group.tasks)`` is submitted on
    ``group.worker`` when it is alive, anywhere otherwise (a loose Dask restriction)."""

    def __init__(self, upstream: DaskStream, func: Callable[[tuple[BatchTask, ...]], Any]) -> None:
        self.func = func
        DaskStream.__init__(self, upstream)

    def update(self, x: TaskGroup, who: Any = None, metadata: Any = None) -> Any:
        client = default_client()
        if x.worker is None:
            future = client.submit(self.func, x.tasks)
        else:
            future = client.submit(self.func, x.tasks, workers=[x.worker], allow_other_workers=True)
        return self._emit(future, metadata=metadata)


class PipelineError(RuntimeError):
    """The pipeline cannot go on (a source, sink or worker failed); the message says where."""


@dataclass
class RunSummary:
    """What one ``Pipeline.run`` did (cycles run again after a restart count again)."""

    cycles: int = 0
    records: int = 0
    clicks: int = 0
    late_clicks: int = 0
    dead_letters: int = 0
    archived_files: int = 0
    rows_written: int = 0
    finalized_ms: int = 0
    committed: dict[int, int] = field(default_factory=dict)
    replayed_cycles: int = 0
    checkpoints: int = 0
    elapsed_s: float = 0.0


@dataclass(frozen=True)
class PipelineProgress:
    """A pipeline's progress now (``Pipeline.progress()``); times in seconds, ms where named.

    ``lag_records``: per partition, the end offset seen when the last cycle was planned minus
    the next offset to read. ``latency_p50_ms`` / ``latency_p99_ms``: from a record's append
    to the log to the store write that holds its clicks (running or final window totals),
    over a sample of up to 64 records per task of the last cycles; None before the first.
    """

    pipeline_id: str
    status: str
    cycles: int
    records: int
    clicks: int
    late_clicks: int
    dead_letters: int
    consumed_offsets: dict[int, int]
    lag_records: dict[int, int]
    watermark_ms: int
    max_event_ms: int
    cycle_s: float
    store_write_s: float
    archive_write_s: float
    checkpoint_s: float
    checkpoints: int
    latency_p50_ms: float | None
    latency_p99_ms: float | None


@dataclass
class _Finished:
    """A cycle merged on the driver whose rows are not written yet."""

    cycle: int
    rows: WindowRows
    metrics: CycleMetrics | None
    append_sample: list[int] = field(default_factory=list)


@dataclass
class _RunState:
    """What the loop carries between cycles; ``snapshot()`` is what a checkpoint saves."""

    state: WindowState
    cycle: int
    next_offsets: dict[int, int]
    max_ts: dict[int, int]
    watermark_ms: int
    replay: deque[CyclePlan]
    summary: RunSummary = field(default_factory=RunSummary)
    pending: list[_Finished] = field(default_factory=list)
    lag_records: dict[int, int] = field(default_factory=dict)
    last_checkpoint_s: float = 0.0
    checkpointed_cycle: int = -1


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
    The progress methods may be called from another thread while it runs.
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
        self.source, self.dead_letter = self._source_and_dead_letter(settings, memory_topic, source,
                                                                     dead_letter)
        self._owned += [self.source, self.dead_letter]
        self.pipeline_id = settings.pipeline_name or f"{settings.consumer_group}/{self.source.topic}"
        if store is None:
            store = open_store(settings)
            self._owned.append(store)
        self.store_sink = StoreSink(store, self.pipeline_id)
        self.metrics = MetricsSink(self.store_sink, self.pipeline_id)
        plans = StorePlans(store, self.pipeline_id) if settings.checkpoint_plan_log == "store" else None
        self.checkpoints = Checkpoints(settings.checkpoints, self.pipeline_id, plans)
        self._snapshots = _SnapshotWriter(self.checkpoints, settings.outage_timeout_s)
        self.client = client if client is not None else self._own_client(settings)
        self.client.run(_warm_worker)
        self._stop = threading.Event()
        self._consumed: dict[int, int] = {}
        self._status = "starting"
        self._run: _RunState | None = None
        self._step: tuple[str, float] | None = None  # the blocking step under way, since when
        self._timings = {"cycle_s": 0.0, "store_write_s": 0.0, "archive_write_s": 0.0, "checkpoint_s": 0.0}
        self._latencies_ms: deque[int] = deque(maxlen=LATENCY_SAMPLES)
        self._partials: dict[tuple[int, int], Partial] = {}
        self._arrivals = threading.Condition()
        self.stream = DaskStream(asynchronous=False)
        self._worker_list: tuple[float, tuple[str, ...]] = (-math.inf, ())  # (when asked, addresses)
        self._warmed: tuple[float, dict[int, int], list[Any]] = (-math.inf, {}, [])  # when, where, futures
        (self.stream.map_on_worker(process_batches)
         .buffer(4 * max(1, len(self.source.partitions))).gather()
         .sink(self._arrived))

    def _source_and_dead_letter(self, settings: Settings, memory_topic: MemoryTopic | None,
                                source: BatchSource | None, dead_letter: DeadLetterSink | None
                                ) -> tuple[BatchSource, DeadLetterSink]:
        def file_sink(topic: str) -> DeadLetterSink:
            return dead_letter or FileDeadLetterSink(settings.work_path / "dead-letter" / f"{topic}.jsonl")

        if source is not None:  # another client behind the same seam
            return source, file_sink(source.topic)
        if memory_topic is not None:
            return MemorySource(memory_topic, settings.consumer_group), file_sink(memory_topic.name)
        if settings.kafka_bootstrap:
            kafka = KafkaSource(settings.kafka_bootstrap, settings.topic, settings.consumer_group,
                                settings.stream_source_client)
            ensure_dead_letter_topic(settings, len(kafka.partitions))
            return kafka, dead_letter or KafkaDeadLetterSink(settings.kafka_bootstrap,
                                                             settings.dead_letter_topic)
        raise PipelineError("no source: set kafka_bootstrap_servers (or stack=local), or pass "
                            "memory_topic= for an in-process run")

    def _own_client(self, settings: Settings) -> Client:
        if settings.dask_scheduler_address:
            client = Client(settings.dask_scheduler_address)
        else:
            cluster = LocalCluster(n_workers=settings.dask_workers, threads_per_worker=1,
                                   processes=True, host="127.0.0.1",
                                   dashboard_address=settings.dask_dashboard_address or None,
                                   silence_logs=logging.WARNING)
            client = Client(cluster)
            self._owned.append(cluster)
        self._owned.append(client)  # closed first: its futures go before the workers
        return client

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
        return dict(self._consumed)

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

    def status(self) -> str:
        """``running``, ``idle``, ``waiting for <what>: <error or silence>`` or ``stopped``."""
        for step in (self._step, self._snapshots.step):
            if step is not None and time.monotonic() - step[1] >= STALL_S:
                return f"waiting for {step[0]}: no answer for {time.monotonic() - step[1]:.0f} s"
        if self._status.startswith("waiting") or self._snapshots.waiting is None:
            return self._status  # what the cycles wait for first, then what the state writer does
        return self._snapshots.waiting

    def progress(self) -> PipelineProgress:
        """Counters, lag, watermark, phase timings and latency of the current (or last) run."""
        run = self._run
        summary = run.summary if run else RunSummary()
        latencies = np.asarray(self._latencies_ms, dtype=np.float64)
        p50, p99 = ((float(np.percentile(latencies, 50)), float(np.percentile(latencies, 99)))
                    if latencies.size else (None, None))
        return PipelineProgress(
            self.pipeline_id, self._status, summary.cycles, summary.records, summary.clicks,
            summary.late_clicks, summary.dead_letters, dict(self._consumed),
            dict(run.lag_records) if run else {}, run.watermark_ms if run else 0,
            max(run.max_ts.values(), default=0) if run else 0, self._timings["cycle_s"],
            self._timings["store_write_s"], self._timings["archive_write_s"], self._timings["checkpoint_s"],
            summary.checkpoints, p50, p99)

    # -- the loop ------------------------------------------------------------------------
    def run(self, *, until_idle_s: float | None = None, max_clicks: int | None = None,
            cycle_timeout_s: float = 600.0) -> RunSummary:
        """Consume until stopped, idle for ``until_idle_s`` (waiting for an unreachable or
        stalled source is not idle time), past ``max_clicks`` clicks (checked
        per cycle; the last cycle is cut to about the remainder) or the in-process topic
        closed and read. Then finalize every open window, flush, checkpoint, commit. Blocks."""
        t0 = time.monotonic()
        run = self._run = self._restore()
        idle_since = time.monotonic()
        plan: CyclePlan | None = None  # dispatched, not yet merged
        tasks: list[BatchTask] = []
        started = 0.0
        while True:
            if plan is None:
                if self._stop.is_set() or self._remaining(run, max_clicks) == 0:
                    break
                asked = time.monotonic()
                plan = self._next_plan(run, self._remaining(run, max_clicks))
                if plan is None:
                    if time.monotonic() - asked >= SLOW_SOURCE_S:  # the source was away or stalled:
                        idle_since = time.monotonic()  # waiting for it is no idle time
                    self._flush(run, checkpoint=False)
                    self._status = "idle"
                    self._start_reading(run)
                    if self._retry("kafka", lambda: self.source.exhausted(run.next_offsets)):
                        break
                    if until_idle_s is not None and time.monotonic() - idle_since >= until_idle_s:
                        break
                    asked = time.monotonic()
                    self._retry("kafka", lambda: self.source.wait_for_data(
                        run.next_offsets, self.settings.stream_poll_interval_s))
                    if time.monotonic() - asked >= self.settings.stream_poll_interval_s + SLOW_SOURCE_S:
                        idle_since = time.monotonic()
                    continue
                self._status = "running"
                started = time.monotonic()
                tasks = self._dispatch(plan)
            flush_started = time.monotonic()
            self._flush(run, checkpoint=False)  # the cycle before, while the workers run this one
            flushed = time.monotonic()
            partials = self._gather(tasks, cycle_timeout_s)
            gathered = time.monotonic()
            self._advance(run, plan, partials)
            merge_s = flush_s = 0.0
            if plan.caught_up:  # latency first: this cycle's rows are written before the next plan
                self._merge(run, plan, partials, started)
                merged = time.monotonic()
                # a snapshot due is taken by the next turn's flush, after the next dispatch
                self._flush(run, checkpoint=False, when_due=False)
                merge_s, flush_s = merged - gathered, time.monotonic() - merged
            planning = time.monotonic()
            following: CyclePlan | None = None
            if not self._stop.is_set() and self._remaining(run, max_clicks) != 0:
                following = self._next_plan(run, self._remaining(run, max_clicks))
            following_started = time.monotonic()
            following_tasks = self._dispatch(following) if following is not None else []
            dispatched = time.monotonic()
            if not plan.caught_up:  # throughput first: merged while the workers run the next cycle
                self._merge(run, plan, partials, started)
                merge_s = time.monotonic() - dispatched
            idle_since = time.monotonic()
            # seconds: waiting for the workers after the flush, merge + finalize, the flush,
            # planning + dispatching the next cycle
            log.debug("cycle phases %.3f %.3f %.3f %.3f", gathered - flushed, merge_s,
                      flushed - flush_started + flush_s, dispatched - planning)
            plan, tasks, started = following, following_tasks, following_started
        return self._stop_cleanly(run, t0)

    def _stop_cleanly(self, run: _RunState, t0: float) -> RunSummary:
        """A checkpoint landed and all consumed offsets committed, then every open window written.

        The checkpoint is taken before the open windows are closed: a restart reopens them
        and rewrites their rows when they are final, so a clean stop makes no click late.
        """
        self._land_snapshot(run, wait=True)  # the write in flight, so that the last one is not skipped
        self._flush(run, checkpoint=True)
        self._land_snapshot(run, wait=True)
        rows = run.state.finalize_all()
        run.pending.append(_Finished(run.cycle, rows, None))
        run.checkpointed_cycle = run.cycle  # what finalize_all did is not to be checkpointed
        self._flush(run, checkpoint=False)
        self._status = "stopped"
        summary = run.summary
        summary.committed = dict(run.next_offsets)
        summary.finalized_ms = run.state.finalized_ms
        summary.elapsed_s = time.monotonic() - t0
        log.info("pipeline stopped: %d clicks, %d late, %d dead letters in %.1f s; committed %s",
                 summary.clicks, summary.late_clicks, summary.dead_letters, summary.elapsed_s,
                 summary.committed)
        return summary

    def _restore(self) -> _RunState:
        """The newest checkpoint (or a first one) and the cycles logged after it."""
        self._retry("archive", lambda: remove_stale_tmp(self.settings.archive, self.source.topic))
        self._retry("checkpoints", self.checkpoints.remove_stale_tmp)
        snap = self._retry("checkpoints", self.checkpoints.latest)
        if snap is None:
            offsets = self._retry("kafka", self.source.committed)
            run = _RunState(WindowState(), 0, dict(offsets), {}, 0, deque())
            # plans left by a removed checkpoint folder are no plans of this run
            self._retry(self.checkpoints.plans.step, self.checkpoints.plans.clear)
            self._land_snapshot(run, wait=True)  # (a write a failed run() left behind)
            self._checkpoint(run)  # what a crash before the first real checkpoint resumes from:
            self._land_snapshot(run, wait=True)  # landed before any cycle runs
            log.info("pipeline %s: topic %s from committed offsets %s (no checkpoint yet)",
                     self.pipeline_id, self.source.topic, offsets)
        else:
            meta = snap.meta
            run = _RunState(WindowState.restore(meta["window"], snap.tables), snap.cycle,
                            {int(p): int(o) for p, o in meta["next_offsets"].items()},
                            {int(p): int(t) for p, t in meta["max_ts_ms"].items()},
                            int(meta["watermark_ms"]),
                            deque(self._retry(self.checkpoints.plans.step,
                                              lambda: self.checkpoints.plans_after(snap.cycle))))
            run.checkpointed_cycle = snap.cycle
            self._retry("dead letters",
                        lambda: self.dead_letter.resume(meta["dead_letter"], self.source.topic))
            log.info("pipeline %s: restored cycle %d (offsets %s, windows final up to %d); "
                     "%d logged cycle(s) to run again", self.pipeline_id, snap.cycle,
                     run.next_offsets, run.state.finalized_ms, len(run.replay))
        run.last_checkpoint_s = time.monotonic()
        self._consumed = dict(run.next_offsets)
        return run

    @staticmethod
    def _remaining(run: _RunState, max_clicks: int | None) -> int | None:
        """Clicks still to read before ``max_clicks`` (0 when reached), None without a limit."""
        return None if max_clicks is None else max(0, max_clicks - run.summary.clicks)

    @staticmethod
    def _next_finalized_ms(run: _RunState) -> int:
        """The lateness threshold of the next cycle: what finalizing the last advanced cycle
        sets (``WindowState.finalize(watermark)`` never goes back), before it is merged."""
        return max(run.state.finalized_ms, run.watermark_ms)

    def _next_plan(self, run: _RunState, remaining: int | None) -> CyclePlan | None:
        """A logged cycle to run again, or a new plan (logged before it runs), or None.
        First commits the offsets of a snapshot that landed since (or raises its failure).
        Called after the last cycle was advanced (``_advance``), before or after its merge."""
        self._land_snapshot(run, wait=False)
        if run.replay:
            plan = run.replay.popleft()
            starts = {p: r[0] for p, r in plan.ranges.items()}
            if (plan.cycle != run.cycle + 1 or plan.finalized_ms != self._next_finalized_ms(run)
                    or any(run.next_offsets.get(p) != s for p, s in starts.items())):
                raise PipelineError(f"checkpoint {self.checkpoints.url}: logged cycle {plan.cycle} "
                                    f"({self.checkpoints.plans.where}) does not follow the restored "
                                    f"state (cycle {run.cycle})")
            run.summary.replayed_cycles += 1
            return plan
        ends = self._retry("kafka", self.source.end_offsets)
        batch = self.settings.stream_batch_records
        with_data = [p for p in self.source.partitions if ends[p] > run.next_offsets[p]]
        if not with_data:
            return None
        if remaining is not None:
            batch = max(1, min(batch, math.ceil(remaining / len(with_data))))
        plan = CyclePlan(run.cycle + 1,
                         {p: (run.next_offsets[p], min(ends[p], run.next_offsets[p] + batch))
                          for p in with_data},
                         dict(ends), self._next_finalized_ms(run))
        self._retry(self.checkpoints.plans.step, lambda: self.checkpoints.log_plan(plan))
        return plan

    def _tasks(self, plan: CyclePlan) -> list[BatchTask]:
        fetcher = self.source.fetcher(pinned=plan.caught_up)
        tasks = []
        for p, (first, end) in sorted(plan.ranges.items()):
            # a busy partition's range is cut into pieces, so that every worker shares it
            for start in range(first, end, TASK_RECORDS):
                stop = min(end, start + TASK_RECORDS)
                records = None
                if fetcher is None:
                    records = self._retry("source", lambda p=p, a=start, b=stop: self.source.fetch(p, a, b))
                tasks.append(BatchTask(self.source.topic, p, start, stop, plan.finalized_ms,
                                       self.settings.archive, self.aggregates, fetcher, records))
        return tasks

    def _dispatch(self, plan: CyclePlan) -> list[BatchTask]:
        tasks = self._tasks(plan)
        if plan.caught_up:  # each worker reads its own partitions, one Dask task per worker
            workers = self._workers()
            for worker, group in group_by_worker(tasks, self.source.partitions, workers).items():
                self.stream.emit(TaskGroup(group, worker))
        else:
            self._submit(tasks)
        return tasks

    def _submit(self, tasks: Sequence[BatchTask]) -> None:
        for task in tasks:
            self.stream.emit(TaskGroup((task,)))

    def _workers(self) -> tuple[str, ...]:
        """The Dask workers' addresses, sorted; asked again every WORKERS_TTL_S (scale-out)."""
        asked_at, workers = self._worker_list
        if time.monotonic() - asked_at >= WORKERS_TTL_S or not workers:
            workers = tuple(sorted(self.client.nthreads()))
            self._worker_list = (time.monotonic(), workers)
        return workers

    def _start_reading(self, run: _RunState) -> None:
        """Idle: each worker's readers of its partitions get ready at the next offsets, so the
        first caught-up cycle does not wait for a consumer to connect (``start_reading``
        tasks, not waited for; again every WARM_EVERY_S or when the offsets moved)."""
        fetcher = self.source.fetcher(pinned=True)
        warmed_at, offsets, _ = self._warmed
        if (fetcher is None or not hasattr(fetcher, "start_reading")
                or (offsets == run.next_offsets and time.monotonic() - warmed_at < WARM_EVERY_S)):
            return
        try:
            readers = partition_workers(self.source.partitions, self._workers())
        except (OSError, TimeoutError) as exc:  # a warm-up only: tried again in WARM_EVERY_S
            log.warning("pipeline: the Dask workers did not answer (%s); partition readers not opened", exc)
            self._warmed = (time.monotonic(), dict(run.next_offsets), [])
            return
        by_worker: dict[str, dict[int, int]] = {}
        for p, worker in readers.items():
            by_worker.setdefault(worker, {})[p] = run.next_offsets[p]
        futures = [self.client.submit(start_reading, fetcher, parts, workers=[w], pure=False)
                   for w, parts in by_worker.items()]  # kept, or Dask would drop the tasks
        self._warmed = (time.monotonic(), dict(run.next_offsets), futures)

    def _arrived(self, results: list[Partial]) -> None:
        with self._arrivals:
            for result in results:
                self._partials[(result.partition, result.start_offset)] = result
            self._arrivals.notify_all()

    def _all_arrived(self, keys: list[tuple[int, int]]) -> bool:
        return all(k in self._partials for k in keys)

    def _gather(self, tasks: list[BatchTask], timeout_s: float) -> list[Partial]:
        """Every task's partial; a task failed by an outage (or lost with a worker) runs again."""
        deadline = time.monotonic() + self.settings.outage_timeout_s
        delay_s = 0.5
        todo = {(t.partition, t.start_offset): t for t in tasks}
        done: dict[tuple[int, int], Partial] = {}
        while todo:
            self._step = ("the workers (fetch from Kafka, write to the archive)", time.monotonic())
            with self._arrivals:
                self._arrivals.wait_for(partial(self._all_arrived, list(todo)), timeout=timeout_s)
                arrived = {k: self._partials.pop(k) for k in list(todo) if k in self._partials}
            self._step = None
            failed: list[tuple[BatchTask, str]] = []
            for key, task in todo.items():
                part = arrived.get(key)
                if part is None:
                    failed.append((task, f"no result within {timeout_s:.0f} s (a worker lost?)"))
                elif part.error and not part.retryable:
                    raise PipelineError("a batch failed: " + part.error)
                elif part.error:
                    failed.append((task, part.error))
                else:
                    done[key] = part
            if not failed:
                break
            if time.monotonic() > deadline:
                raise PipelineError(f"gave up after {self.settings.outage_timeout_s:.0f} s: {failed[0][1]}")
            first = failed[0][1].splitlines()[0]
            self._status = f"waiting for source/archive: {first}"
            log.warning("pipeline: %d task(s) failed (%s); retrying in %.1f s", len(failed), first, delay_s)
            time.sleep(delay_s)
            delay_s = min(delay_s * 2, RETRY_MAX_DELAY_S)
            retry = [dataclasses.replace(t, attempt=t.attempt + 1) for t, _ in failed]
            todo = {(t.partition, t.start_offset): t for t in retry}
            self._submit(retry)
        self._status = "running"
        return [done[k] for k in sorted(done)]

    def _advance(self, run: _RunState, plan: CyclePlan, partials: list[Partial]) -> None:
        """Move the cycle's offsets, per-partition max event times and the watermark on (cheap:
        no window state), so that the next cycle can be planned before this one is merged."""
        summary = run.summary
        for part in partials:
            if part.max_ts_ms is not None:
                run.max_ts[part.partition] = max(run.max_ts.get(part.partition, part.max_ts_ms),
                                                 part.max_ts_ms)
            summary.records += part.records
            summary.clicks += part.clicks
        for p, (_, end) in plan.ranges.items():
            run.next_offsets[p] = end
        run.lag_records = {lag.partition: lag.lag_records for lag in self._positions(run, plan)}
        active = [run.max_ts[p] for p in run.max_ts if run.next_offsets[p] < plan.end_offsets.get(p, 0)]
        if not active:
            active = list(run.max_ts.values())
        if active:
            run.watermark_ms = max(run.watermark_ms, min(active) - self.settings.allowed_lateness_ms)
        run.cycle = plan.cycle
        summary.cycles += 1

    @staticmethod
    def _positions(run: _RunState, plan: CyclePlan) -> tuple[PartitionLag, ...]:
        return tuple(PartitionLag(p, run.next_offsets[p], plan.end_offsets.get(p, run.next_offsets[p]))
                     for p in sorted(run.next_offsets))

    def _merge(self, run: _RunState, plan: CyclePlan, partials: list[Partial], started: float) -> None:
        """Merge the advanced cycle's partials into the window state and finalize up to the
        watermark (driver side, pure); its rows wait in ``run.pending`` for the next flush."""
        state, summary = run.state, run.summary
        late = dead = clicks = 0
        oldest = newest = None
        sample: list[int] = []
        archive_s = 0.0
        for part in sorted(partials, key=lambda p: (p.partition, p.start_offset)):
            sample += part.append_sample
            archive_s += part.archive_s
            state.add_counts(part.counts)
            state.add_late(part.late)
            for record, reason in part.dead:
                self.dead_letter.add(self.source.topic, part.partition, record, reason)
            late += part.late_clicks
            dead += len(part.dead)
            clicks += part.clicks
            summary.archived_files += len(part.archived)
            if part.oldest_append_ms is not None:
                oldest = part.oldest_append_ms if oldest is None else min(oldest, part.oldest_append_ms)
                newest = part.newest_append_ms if newest is None else max(newest, part.newest_append_ms)
        expected_finalized_ms = self._next_finalized_ms(run)
        rows = state.finalize(run.watermark_ms)
        if state.finalized_ms != expected_finalized_ms:  # the next plan's threshold relies on it
            raise PipelineError(f"cycle {plan.cycle}: finalized up to {state.finalized_ms}, "
                                f"planned the next cycle with {expected_finalized_ms}")
        positions = self._positions(run, plan)
        now = now_ms()
        elapsed = max(time.monotonic() - started, 1e-6)
        metrics = CycleMetrics(now, clicks, clicks / elapsed, now - newest if newest is not None else 0,
                               now - oldest if oldest is not None else 0, late, dead, state.finalized_ms,
                               positions)
        run.pending.append(_Finished(plan.cycle, rows, metrics, sample))
        self._timings["cycle_s"] = time.monotonic() - started
        self._timings["archive_write_s"] = archive_s
        summary.late_clicks += late
        summary.dead_letters += dead
        self._consumed = dict(run.next_offsets)  # (the next cycle is not advanced before this)

    def _flush(self, run: _RunState, *, checkpoint: bool, when_due: bool = True) -> None:
        """Write what finished cycles produced, then checkpoint if asked (``checkpoint``) or
        due (``when_due`` and ``checkpoint_interval_s`` passed). Blocks."""
        state = run.state
        if run.pending:
            self._retry("dead letters", self.dead_letter.flush)
            sample: list[int] = []
            for done in run.pending:
                unknown = list(state.unknown_final())
                stored = (self._retry("store", lambda u=unknown: self.store_sink.stored_totals(u))
                          if unknown else {})
                self.store_sink.add(done.rows, state.take_late_rewrites(stored, done.cycle), done.cycle)
                if done.metrics is not None:
                    self.metrics.add(done.metrics)
                sample += done.append_sample
            self.store_sink.add_running(state.open_totals(), run.cycle)
            now = now_ms()
            self.store_sink.add_rows("pipeline_state", [(self.pipeline_id, self.source.topic,
                                                         state.finalized_ms, now)])
            self.store_sink.add_rows("pipeline_registry", [("all", self.pipeline_id, self.source.topic, now)])
            t0 = time.monotonic()
            run.summary.rows_written += self._retry("store", self.store_sink.flush)
            self._timings["store_write_s"] = time.monotonic() - t0
            written_ms = now_ms()
            self._latencies_ms.extend(written_ms - t for t in sample)
            run.pending.clear()
        due = when_due and time.monotonic() - run.last_checkpoint_s >= self.settings.checkpoint_interval_s
        if (checkpoint or due) and run.checkpointed_cycle != run.cycle and not run.replay:
            self._checkpoint(run)

    def _checkpoint(self, run: _RunState) -> None:
        """Snapshot the state at this cycle boundary and write it on the writer's thread.

        Taken here, synchronously: the window state, offsets, watermark and dead-letter
        position, encoded to bytes (a copy later cycles cannot touch). Written while the
        next cycles run; at most one write in flight: while the previous one is still being
        written this boundary is skipped (the next one takes the snapshot; waiting would put
        the write back on the critical path). Kafka commit and pruning follow the landing.
        """
        self._land_snapshot(run, wait=False)
        if self._snapshots.busy:
            return
        meta, tables = run.state.snapshot()
        snapshot = Snapshot(run.cycle, {
            "window": meta,
            "next_offsets": {str(p): o for p, o in run.next_offsets.items()},
            "max_ts_ms": {str(p): t for p, t in run.max_ts.items()},
            "watermark_ms": run.watermark_ms,
            "dead_letter": self._retry("dead letters", self.dead_letter.position),
            "topic": self.source.topic,
        }, tables)
        self._snapshots.start(run.cycle, encode(snapshot), dict(run.next_offsets))
        run.checkpointed_cycle = run.cycle
        run.last_checkpoint_s = time.monotonic()

    def _land_snapshot(self, run: _RunState, *, wait: bool) -> None:
        """If a snapshot landed (``wait``: once the one in flight has), commit its offsets to
        Kafka; a write that failed for good raises its ``PipelineError`` here."""
        landed = self._snapshots.collect(wait=wait)
        if landed is None:
            return
        self._timings["checkpoint_s"] = landed.write_s
        self._retry("kafka", lambda: self.source.commit(landed.offsets))
        run.summary.checkpoints += 1

    def _retry(self, what: str, step: Callable[[], T]) -> T:
        """Run ``step``; while it fails, wait (backoff) and run it again, up to ``outage_timeout_s``."""
        def attempt() -> T:
            self._step = (what, time.monotonic())
            try:
                return step()
            finally:
                self._step = None

        return retry_transient(what, attempt, self.settings.outage_timeout_s, self._set_waiting)

    def _set_waiting(self, status: str | None) -> None:
        if status is not None:
            self._status = status


def partition_workers(partitions: Sequence[int], workers: Sequence[str]) -> dict[int, str]:
    """Which worker reads which partition while caught up: the i-th partition (sorted) is
    read by ``workers[i % len(workers)]``; {} without workers."""
    return {p: workers[i % len(workers)] for i, p in enumerate(sorted(partitions))} if workers else {}


def group_by_worker(tasks: Sequence[BatchTask], partitions: Sequence[int], workers: Sequence[str]
                    ) -> dict[str | None, tuple[BatchTask, ...]]:
    """``tasks`` grouped by the worker that reads their partition (``partition_workers``;
    None for a partition without one); each group keeps the tasks' order. The same
    partition lands on the same worker cycle after cycle, so that worker's reader of it
    goes on where the last range ended (``BatchSource.fetcher(pinned=True)``)."""
    readers = partition_workers(partitions, workers)
    groups: dict[str | None, list[BatchTask]] = {}
    for task in tasks:
        groups.setdefault(readers.get(task.partition), []).append(task)
    return {w: tuple(g) for w, g in groups.items()}


def retry_transient(what: str, step: Callable[[], T], timeout_s: float,
                    waiting: Callable[[str | None], None]) -> T:
    """Run ``step``; while it fails transiently (``is_transient``), tell ``waiting`` why, wait
    (backoff 0.5 s doubling to ``RETRY_MAX_DELAY_S``) and run it again, up to ``timeout_s``; then, or for a
    permanent error, raise ``PipelineError``. ``waiting(None)`` once it succeeded after a wait."""
    deadline = time.monotonic() + timeout_s
    delay_s = 0.5
    while True:
        try:
            out = step()
        except Exception as exc:
            if not is_transient(exc) or time.monotonic() > deadline:
                raise PipelineError(f"{what}: gave up after {timeout_s:.0f} s: "
                                    f"{type(exc).__name__}: {exc}") from exc
            waiting(f"waiting for {what}: {type(exc).__name__}: {exc}")
            log.warning("pipeline: %s unreachable (%s: %s); retrying in %.1f s", what,
                        type(exc).__name__, str(exc).splitlines()[0] if str(exc) else "", delay_s)
            time.sleep(delay_s)
            delay_s = min(delay_s * 2, RETRY_MAX_DELAY_S)
        else:
            if delay_s > 0.5:
                waiting(None)
            return out


@dataclass(frozen=True)
class _Landed:
    """A snapshot whose state file is whole (and the older states and plans pruned)."""

    cycle: int
    offsets: dict[int, int]
    write_s: float


class _SnapshotWriter:
    """Writes one encoded snapshot at a time on its own thread (``Checkpoints.write_state``,
    then ``prune``), retrying transient failures as ``Pipeline._retry`` does; ``waiting`` /
    ``step`` say what it waits for, for ``Pipeline.status``. The driver collects the outcome
    (``collect``) at a cycle boundary."""

    def __init__(self, checkpoints: Checkpoints, outage_timeout_s: float) -> None:
        self._checkpoints = checkpoints
        self._timeout_s = outage_timeout_s
        self._thread: threading.Thread | None = None
        self._landed: _Landed | None = None
        self._error: PipelineError | None = None
        self.waiting: str | None = None
        self.step: tuple[str, float] | None = None

    @property
    def busy(self) -> bool:
        """A write started and not collected yet (in flight, or landed since the last look)."""
        return self._thread is not None

    def start(self, cycle: int, body: bytes, offsets: dict[int, int]) -> None:
        if self._thread is not None:
            raise RuntimeError("a snapshot is started before the previous one was collected")
        self._thread = threading.Thread(target=self._write, args=(cycle, body, offsets),
                                        name=f"checkpoint-{cycle}", daemon=True)
        self._thread.start()

    def _write(self, cycle: int, body: bytes, offsets: dict[int, int]) -> None:
        path = self._checkpoints.state_path(cycle)
        plans = self._checkpoints.plans.step
        t0 = time.monotonic()
        failed = f"checkpoint {path} not written"
        try:
            self._retry("checkpoints", f"checkpoints (writing {path})",
                        partial(self._checkpoints.write_state, cycle, body))
            failed = f"checkpoint {path} written, but pruning the states and plans before it failed"
            self._retry(plans, f"{plans} (pruning)", self._checkpoints.prune)
            self._landed = _Landed(cycle, offsets, time.monotonic() - t0)
        except Exception as exc:
            self._error = PipelineError(f"{failed}: {exc}")
        finally:
            self.waiting = None

    def _retry(self, what: str, doing: str, step: Callable[[], None]) -> None:
        def attempt() -> None:
            self.step = (doing, time.monotonic())
            try:
                step()
            finally:
                self.step = None

        retry_transient(what, attempt, self._timeout_s, self._set_waiting)

    def _set_waiting(self, status: str | None) -> None:
        self.waiting = status

    def collect(self, *, wait: bool) -> _Landed | None:
        """The snapshot that landed since the last call; None while one is in flight (unless
        ``wait``) or when none was started. Raises the ``PipelineError`` of a failed write."""
        thread = self._thread
        if thread is None or (thread.is_alive() and not wait):
            return None
        thread.join()
        self._thread = None
        landed, error, self._landed, self._error = self._landed, self._error, None, None
        if error is not None:
            raise error
        return landed


def is_transient(exc: BaseException) -> bool:
    """An error of an unreachable or overloaded server (worth waiting for), not of our code
    nor of a request the server refuses whatever the moment (a missing column, bad auth)."""
    if isinstance(exc, PERMANENT_SERVER_ERRORS):
        return False
    if isinstance(exc, (OSError, TimeoutError, ConnectionError, SourceError, CheckpointError)):
        return True
    return (type(exc).__module__ or "").split(".")[0] in ("kafka", "cassandra", "hdfs_native")


def ensure_dead_letter_topic(settings: Settings, partitions: int) -> None:
    """Create the dead-letter topic if the broker lacks it (brokers need not auto-create)."""
    from clickstream.topics import ensure_topics

    ensure_topics(settings, [settings.dead_letter_topic], partitions)
