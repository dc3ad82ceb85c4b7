"""The demo: the whole platform in one process. This module is the COMPOSITION ROOT.

It imports every role (producer, pipeline, spark_jobs, dashboards) and wires them
together; the roles never import each other. It lives in the entry layer ``launch/``
(above the roles, see ARCHITECTURE.md) because ``clickstream demo`` (``launch/cli/demo.py``)
is its only caller, and it only uses the roles' public functions.

What ``run_demo`` does, in order:

1. A fresh run folder ``<work_dir>/demo/<run id>/`` (or ``--run-dir``): the embedded
   store file, the archive (embedded stack), dead letters and ``summary.json`` go there,
   so runs never mix. With a Kafka stack the topic and the consumer group get the run id
   as a suffix (a fresh topic; offsets start at 0) and a default ``hdfs://`` archive gets a
   ``demo/<run id>`` sub-folder; the Cassandra keyspace is shared (schema applied first):
   windows of an earlier run over the same event time are overwritten, so the final
   count reads only this run's event-time range.
   It writes ``run.json`` there (``launch.runs``): ``clickstream dashboard --run <run id>``
   (or ``--run latest``) reopens the run's dashboard after the demo ended.
2. Serves the dashboard (``dashboards.server.start_dashboard``) and prints its URL.
3. Starts the Spark session on a background thread (its JVM start overlaps the stream).
4. Replays clicks (a synthetic month or ``--dump``, event time squeezed into a short
   span, a spike on a few articles unless ``--dump`` without ``--spike``; a dump's clicks
   are counted first, with a line every 2 s) at ``rate_per_s`` from a producer thread into an
   in-process ``MemoryTopic`` or a Kafka topic, while the streaming pipeline runs on a
   Dask ``LocalCluster`` on another thread; prints a status line every few seconds.
5. When the replay ends (all clicks, ``duration_s`` or a stop request), the pipeline
   drains what was sent, finalizes every window, flushes and commits, and its Dask
   cluster is closed; then the Spark batch and PageRank jobs run on the archive (a line
   every 2 s on their stages' progress, ``launch.progress``).
6. Prints the final summary, read back from the store, writes ``summary.json``, and the
   command that reopens the run's dashboard.

Stopping: ``Demo.stop()`` (the CLI calls it on Ctrl-C) ends the replay, lets the pipeline
finish its cycle, finalize, flush and commit, cancels running Spark jobs, and skips the
jobs not yet started. ``close()`` stops the dashboard and Spark; it is idempotent.
"""

from __future__ import annotations

import datetime as dt
import json
import logging
import secrets
import threading
import time
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import Future
from concurrent.futures import TimeoutError as FutureTimeout
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, NamedTuple, TextIO, TypeVar

from clickstream.events import Click
from clickstream.memory_topic import MemoryTopic
from clickstream.settings import Settings
from clickstream.store import Store, open_store
from clickstream.store.cassandra import apply_schema
from clickstream.windows import SLIDING_WINDOW_MS, TUMBLING_WINDOWS_MS
from dashboards.server import start_dashboard
from launch.progress import ScanLines, SparkProgress
from launch.runs import reopen_command, write_run_info
from pipeline import Pipeline, PipelineError, RunSummary
from pipeline.sources.kafka import SourceError
from producer.expand import Spike
from producer.replay import (
    DEFAULT_CLICKS,
    DEFAULT_RATE_PER_S,
    Pace,
    Replay,
    ReplayError,
    ReplayRequest,
    ScanProgress,
    plan_paced_replay,
)
from producer.sender import SendSummary, ensure_topic, send_to_kafka, send_to_memory
from spark_jobs.batch import run_batch
from spark_jobs.pagerank import PageRankRun, run_pagerank
from spark_jobs.session import build_session
from spark_jobs.source import HourRange

if TYPE_CHECKING:
    from pyspark.sql import SparkSession

log = logging.getLogger(__name__)

T = TypeVar("T")
COUNT_WINDOW_MS = 60_000
DRAIN_STALL_S = 120.0


class DemoError(RuntimeError):
    """The demo cannot go on; the message names the step that failed."""


@dataclass(frozen=True)
class DemoOptions:
    """What to replay and how; ``None`` means the demo's default."""

    clicks: int | None = None  # exact number of clicks to replay (the earliest ones)
    duration_s: float | None = None  # stop replaying after this many wall seconds
    rate_per_s: float = DEFAULT_RATE_PER_S  # 0: as fast as possible
    dump: Path | None = None
    layout: str = "auto"
    synthetic_rows: int | None = None
    seed: int = 0
    span_s: float | None = None  # event-time span of the replay (default: from rate and clicks)
    spike: str | None = None  # AT_S:DURATION_S:CLICKS[:TITLE,...]; None: picked (none with a dump); "": none
    jitter_ms: int = 500
    run_dir: Path | None = None
    status_every_s: float = 2.0
    run_jobs: bool = True
    wait_at_end: bool = False  # keep serving the dashboard after the summary until stop()


@dataclass
class DemoSummary:
    run_dir: str
    dashboard_url: str
    store: str
    archive: str
    topic: str
    clicks_generated: int = 0
    clicks_counted: int = 0
    clicks_on_time: int = 0
    clicks_late: int = 0
    windows_written: int = 0
    dead_letters: int = 0
    pipeline_clicks: int = 0
    batch_rows_written: dict[str, int] = field(default_factory=dict)
    batch_rows_in_store: int = 0
    pagerank_rows_in_store: int = 0
    pagerank_variants: list[str] = field(default_factory=list)
    replay_s: float = 0.0
    elapsed_s: float = 0.0
    stopped_early: bool = False
    jobs: str = "not run"

    @property
    def batch_rows(self) -> int:
        return sum(self.batch_rows_written.values())

    def lines(self) -> list[str]:
        tables = ", ".join(f"{k} {v:,}" for k, v in self.batch_rows_written.items()) or "-"
        return [
            "demo: final summary" + (" (stopped early)" if self.stopped_early else ""),
            f"  clicks generated:  {self.clicks_generated:,}",
            f"  clicks counted:    {self.clicks_counted:,} (store window_totals at 60 s: "
            f"{self.clicks_on_time:,} on time + {self.clicks_late:,} late)",
            f"  windows written:   {self.windows_written:,}",
            f"  dead letters:      {self.dead_letters:,}",
            f"  batch table rows:  {self.batch_rows:,} ({tables}); "
            f"read back from the store's global partitions {self.batch_rows_in_store:,}",
            f"  pagerank rows:     {self.pagerank_rows_in_store:,} "
            f"({', '.join(self.pagerank_variants) or '-'})",
            f"  spark jobs:        {self.jobs}",
            f"  elapsed:           {self.elapsed_s:.1f} s (replay {self.replay_s:.1f} s)",
            f"  run folder:        {self.run_dir}",
        ]

    def to_json(self) -> dict[str, Any]:
        out = asdict(self)
        out["batch_rows"] = self.batch_rows
        return out


def new_run_id() -> str:
    return dt.datetime.now(dt.UTC).strftime("%Y%m%d-%H%M%S-") + secrets.token_hex(2)


def run_settings(settings: Settings, run_dir: Path, run_id: str) -> Settings:
    """Settings of one demo run: its own folder, and a fresh topic/group/archive on Kafka."""
    changes: dict[str, Any] = {"work_dir": str(run_dir)}
    if settings.kafka_bootstrap:
        changes["topic"] = f"{settings.topic}-demo-{run_id}"
        changes["consumer_group"] = f"{settings.consumer_group}-demo-{run_id}"
        if not settings.archive_url:
            changes["archive_url"] = f"{settings.archive}/demo/{run_id}"
    run = settings.replace(**changes)
    return run if settings.dashboard_pipeline else run.replace(dashboard_pipeline=run.pipeline_id)


# -- the clicks ------------------------------------------------------------------------
def plan_replay(options: DemoOptions, spool_dir: Path, on_scan: ScanProgress | None = None) -> Replay:
    """The demo's clicks: ``producer.replay.plan_paced_replay`` of the options. A default
    spike only on a synthetic month: a real dump's clicks are replayed as they are."""
    try:
        spike = Spike.parse(options.spike) if options.spike else None
    except ValueError as exc:
        raise DemoError(f"--spike: {exc}") from None
    request = ReplayRequest(dump=options.dump, layout=options.layout, synthetic_rows=options.synthetic_rows,
                            seed=options.seed, jitter_ms=options.jitter_ms, span_s=options.span_s,
                            spike=spike)
    pace = Pace(clicks=options.clicks, duration_s=options.duration_s, rate_per_s=options.rate_per_s,
                auto_spike=options.spike is None and options.dump is None)
    try:
        return plan_paced_replay(request, pace, spool_dir, on_scan)
    except ReplayError as exc:
        raise DemoError(str(exc)) from None


class CountingClicks:
    """Wraps the click iterator: counts what was handed to the sender, stops on request."""

    def __init__(self, clicks: Iterator[Click], stop: threading.Event) -> None:
        self._clicks = clicks
        self._stop = stop
        self.count = 0
        self.max_ts_ms = 0

    def __iter__(self) -> Iterator[Click]:
        for click in self._clicks:
            if self._stop.is_set():
                break
            self.count += 1
            if click.ts_ms > self.max_ts_ms:
                self.max_ts_ms = click.ts_ms
            yield click
        close = getattr(self._clicks, "close", None)
        if close is not None:
            close()  # removes the expansion's spool now, not at garbage collection


def in_thread(name: str, work: Callable[[], T]) -> Future[T]:
    """Run ``work`` on a daemon thread; its result or exception arrives in the future."""
    future: Future[T] = Future()

    def target() -> None:
        try:
            future.set_result(work())
        except BaseException as exc:
            future.set_exception(exc)

    threading.Thread(target=target, name=name, daemon=True).start()
    return future


# -- reading the store back --------------------------------------------------------------
def _days(start_ms: int, end_ms: int) -> list[str]:
    first = dt.datetime.fromtimestamp(start_ms / 1000, tz=dt.UTC).date()
    last = dt.datetime.fromtimestamp(max(start_ms, end_ms) / 1000, tz=dt.UTC).date()
    return [(first + dt.timedelta(days=i)).isoformat() for i in range((last - first).days + 1)]


class WindowCounts(NamedTuple):
    windows: int  # windows of every size
    on_time: int  # clicks at COUNT_WINDOW_MS
    late: int  # late clicks at COUNT_WINDOW_MS


class StoredBatchRows(NamedTuple):
    batch: int  # rows of the batch tables' global partitions
    pagerank: int  # rows of the PageRank runs


class PageRankKey(NamedTuple):
    variant: str
    run_date: str


def count_windows(store: Store, pipeline: str, start_ms: int, end_ms: int) -> WindowCounts:
    """Windows of every size, on-time and late clicks at 60 s, in ``[start_ms, end_ms)``.

    Only windows starting in the range count (an earlier run in a shared keyspace may have
    written others). Sliding windows start up to their length before the first click."""
    windows = on_time = late = 0
    for window_ms in (*TUMBLING_WINDOWS_MS, SLIDING_WINDOW_MS):
        lo = start_ms - (SLIDING_WINDOW_MS if window_ms == SLIDING_WINDOW_MS else 0)
        for day in _days(lo, end_ms):
            rows = store.select("window_totals", {"pipeline": pipeline, "window_ms": window_ms, "day": day},
                                start=lo, end=end_ms)
            windows += len(rows)
            if window_ms == COUNT_WINDOW_MS:
                on_time += sum(int(r["clicks"]) for r in rows)
                late += sum(int(r["late_clicks"]) for r in rows)
    return WindowCounts(windows, on_time, late)


def count_batch_rows(store: Store, pagerank_runs: Iterable[PageRankKey]) -> StoredBatchRows:
    """Rows in the store of the batch tables' global partitions, and of the PageRank runs."""
    batch = sum(len(store.select("top_articles", {"kind": kind})) for kind in ("source", "destination"))
    batch += len(store.select("link_type_share", {"scope": "all"}))
    pagerank = 0
    for run in pagerank_runs:
        pagerank += len(store.select("pagerank_runs", {"variant": run.variant}, start=run.run_date,
                                     end=run.run_date + "\x00"))
        pagerank += len(store.select("pagerank_top", {"run_date": run.run_date, "variant": run.variant}))
    return StoredBatchRows(batch, pagerank)


# -- the run -----------------------------------------------------------------------------
class Progress(NamedTuple):
    """The pipeline's drain progress: when ``consumed`` (records) last changed."""

    at_s: float
    consumed: int


@dataclass(frozen=True)
class Sent:
    """What the producer thread hands back."""

    summary: SendSummary
    replay_s: float  # wall time from the start of the replay to its end


class Demo:
    """One demo run (see the module docstring). ``run()`` blocks; ``stop()`` is thread-safe."""

    def __init__(self, settings: Settings, options: DemoOptions, out: TextIO) -> None:
        self.options = options
        self.out = out
        self.run_id = new_run_id()
        base = settings.work_path / "demo"
        self.run_dir = (options.run_dir or base / self.run_id).expanduser().resolve()
        self.settings = run_settings(settings, self.run_dir, self.run_id)
        self._given_settings = settings
        self._stop = threading.Event()
        self._end_replay = threading.Event()
        self._replay_done = threading.Event()
        self._closers: list[tuple[str, Callable[[], None]]] = []
        self._spark: Future[SparkSession] | None = None
        self._pipeline: Pipeline | None = None
        self._closed = False

    # -- control ---------------------------------------------------------------------------
    def stop(self) -> None:
        """End the replay and the pipeline cleanly; cancel running Spark jobs. Idempotent."""
        if self._stop.is_set():
            return
        self._stop.set()
        self._end_replay.set()
        if self._pipeline is not None:
            self._pipeline.stop()
        spark = self._started_spark()
        if spark is not None:
            threading.Thread(target=_cancel_spark_jobs, args=(spark,), daemon=True).start()

    def close(self) -> None:
        """Stop the dashboard and Spark, close the store (reverse order of start)."""
        if self._closed:
            return
        self._closed = True
        spark = self._spark
        if spark is not None and _wait(spark, 120) and spark.exception() is None:
            self._closers.append(("spark", spark.result().stop))
        for name, closer in reversed(self._closers):
            try:
                closer()
            except Exception:
                log.exception("demo: closing %s failed", name)
        self._closers.clear()

    def say(self, text: str) -> None:
        print(text, file=self.out, flush=True)

    def _started_spark(self) -> SparkSession | None:
        """The Spark session if it is up, else None (never waits)."""
        spark = self._spark
        if spark is None or not spark.done() or spark.exception() is not None:
            return None
        return spark.result()

    # -- the whole run, in named steps -----------------------------------------------------
    def run(self) -> DemoSummary:
        """The whole demo (blocks); returns the final summary, also printed."""
        t0 = time.monotonic()
        self.run_dir.mkdir(parents=True, exist_ok=True)
        self.say(f"demo: run {self.run_id} in {self.run_dir}")
        write_run_info(self.settings, self.run_dir, self.run_id)
        store = self._prepare_store()
        summary = self._new_summary(self._start_dashboard())
        if self.options.run_jobs:
            self._start_spark()
        replay = plan_replay(self.options, self.run_dir, ScanLines(self.out, "demo"))
        self._announce(replay)
        memory_topic = None if self.settings.kafka_bootstrap else MemoryTopic(
            self.settings.topic, self.settings.topic_partitions)
        pipe = self._start_pipeline(store, memory_topic)
        clicks = CountingClicks(replay.clicks, self._end_replay)
        self._replay_and_stream(clicks, memory_topic, pipe, store, replay, summary)
        runs = self._run_jobs_unless_stopped(summary)
        self._read_back(store, replay, clicks, runs, summary)
        summary.elapsed_s = time.monotonic() - t0
        self._report(summary)
        reopen = reopen_command(self._given_settings, self.run_dir, self.run_id)
        if self.options.wait_at_end and not self._stop.is_set():
            self.say(f"demo: done; the dashboard stays at {summary.dashboard_url} until Ctrl-C; "
                     f"reopen it later with: {reopen}")
            self._stop.wait()
        else:
            self.say(f"demo: reopen this run's dashboard with: {reopen}")
        return summary

    def _prepare_store(self) -> Store:
        s = self.settings
        if s.store_backend == "cassandra":
            apply_schema(s)
            where = f"Cassandra keyspace {s.cassandra_keyspace}"
        else:
            where = f"embedded store {s.embedded_store_file}"
        store = open_store(s)
        self._closers.append(("store", store.close))
        self.say(f"demo: store: {where}")
        return store

    def _start_dashboard(self) -> str:
        try:
            handle = start_dashboard(self.settings)
        except OSError as exc:  # the port is taken (e.g. another dashboard): any free port
            log.warning("dashboard port %d: %s; using a free port", self.settings.dashboard_port, exc)
            handle = start_dashboard(self.settings.replace(dashboard_port=0))
        self._closers.append(("dashboard", handle.stop))
        self.say(f"demo: dashboard at {handle.url}")
        return handle.url

    def _new_summary(self, dashboard_url: str) -> DemoSummary:
        s = self.settings
        store = str(s.embedded_store_file) if s.store_backend == "embedded" else s.cassandra_keyspace
        return DemoSummary(str(self.run_dir), dashboard_url, store, s.archive, s.topic)

    def _start_spark(self) -> None:
        # Built off the main thread, PySpark leaves our SIGINT handler in place.
        self._spark = in_thread("demo-spark-start",
                                lambda: build_session(self.settings, app_name="clickstream-demo"))

    def _topic_text(self) -> str:
        s = self.settings
        return f"Kafka topic {s.topic} at {s.kafka_bootstrap}" if s.kafka_bootstrap else \
            f"in-process topic {s.topic}"

    def _announce(self, replay: Replay) -> None:
        o = self.options
        rate_text = f"{o.rate_per_s:,.0f} clicks/s" if o.rate_per_s else "as fast as possible"
        spike = replay.spike
        if spike is None:
            spike_text = ""
        elif spike.titles:
            spike_text = f"; spike on {', '.join(spike.titles)}"
        else:
            spike_text = f"; spike on {spike.count} articles picked from the input"
        self.say(f"demo: replaying {replay.planned:,} clicks ({replay.source}) at {rate_text} "
                 f"into {self._topic_text()}; event time {replay.span_ms / 1000:,.0f} s from "
                 f"{dt.datetime.fromtimestamp(replay.start_ms / 1000, tz=dt.UTC):%Y-%m-%d %H:%M}"
                 + spike_text)
        self.say(f"demo: archive {self.settings.archive}")

    def _start_pipeline(self, store: Store, memory_topic: MemoryTopic | None) -> Pipeline:
        s = self.settings
        try:
            if s.kafka_bootstrap:
                ensure_topic(s, s.topic, s.topic_partitions)
            self._pipeline = pipe = Pipeline(s, memory_topic=memory_topic, store=store)
        except (PipelineError, SourceError) as exc:
            raise DemoError(f"starting the pipeline: {exc}") from None
        self._closers.append(("pipeline and Dask cluster", pipe.close))
        if self._stop.is_set():
            pipe.stop()
        self.say("demo: streaming pipeline on a Dask LocalCluster of "
                 f"{s.dask_workers} workers; Ctrl-C stops cleanly")
        return pipe

    def _send(self, clicks: CountingClicks, topic: MemoryTopic | None, t_replay: float) -> Sent:
        rate = self.options.rate_per_s or None
        try:
            if topic is not None:
                summary = send_to_memory(clicks, topic, rate_per_s=rate, progress=False)
            else:
                summary = send_to_kafka(clicks, self.settings, rate_per_s=rate, progress=False)
        except BaseException:
            if topic is not None:
                topic.close()
            raise
        return Sent(summary, time.monotonic() - t_replay)

    def _replay_and_stream(self, clicks: CountingClicks, memory_topic: MemoryTopic | None, pipe: Pipeline,
                           store: Store, replay: Replay, summary: DemoSummary) -> None:
        """Replay on one thread, stream on another, status lines here; then close the
        pipeline (its Dask workers' cores and memory go to Spark)."""
        t_replay = time.monotonic()
        sent = in_thread("demo-producer", lambda: self._send(clicks, memory_topic, t_replay))
        sent.add_done_callback(lambda _: self._replay_done.set())  # once its result can be read
        streamed = in_thread("demo-pipeline", pipe.run)
        self._watch(clicks, pipe, sent, streamed, store, replay, t_replay)
        try:
            result = sent.result()
        except BaseException as exc:
            raise DemoError(f"replay into {self._topic_text()} failed: {exc}") from exc
        summary.replay_s = result.replay_s
        try:
            run_summary: RunSummary = streamed.result()
        except BaseException as exc:
            raise DemoError(f"streaming pipeline failed: {exc}") from exc
        summary.clicks_generated = result.summary.sent_clicks
        summary.pipeline_clicks = run_summary.clicks
        summary.dead_letters = run_summary.dead_letters
        summary.stopped_early = self._stop.is_set()
        self.say(f"demo: pipeline done: {run_summary.clicks:,} clicks, {run_summary.late_clicks:,} "
                 f"late, {run_summary.dead_letters:,} dead letters; committed {run_summary.committed}")
        self._closers.remove(("pipeline and Dask cluster", pipe.close))
        pipe.close()  # frees the Dask workers' cores and memory for Spark

    def _watch(self, clicks: CountingClicks, pipe: Pipeline, sent: Future[Sent],
               streamed: Future[RunSummary], store: Store, replay: Replay, t_replay: float) -> None:
        """Status lines until the pipeline has consumed everything sent (or a stop)."""
        o = self.options
        next_status = time.monotonic() + o.status_every_s
        last_progress = Progress(time.monotonic(), -1)
        reads_kafka = pipe.source_kind() == "kafka"  # Kafka has no end: stop once all is read
        while not streamed.done():
            now = time.monotonic()
            if o.duration_s is not None and now - t_replay >= o.duration_s and not self._replay_done.is_set():
                self._end_replay.set()  # ends the replay only; the pipeline drains what was sent
            if self._replay_done.is_set() and reads_kafka:
                last_progress = self._drain_step(pipe, sent, now, last_progress)
            if now >= next_status:
                next_status = now + o.status_every_s
                self.say(self._status_line(clicks, pipe, store, replay, now - t_replay))
            _wait(streamed, 0.2)

    @staticmethod
    def _drain_step(pipe: Pipeline, sent: Future[Sent], now: float, last_progress: Progress) -> Progress:
        """After the replay: stop the pipeline once it consumed every record sent, or when it
        made no progress for ``DRAIN_STALL_S``; returns the last (time, consumed) progress."""
        consumed = sum(pipe.consumed_offsets().values())
        total = None
        if sent.done() and sent.exception() is None:
            total = sent.result().summary.sent_records
        if total is None or consumed >= total:
            pipe.stop()
        elif consumed != last_progress.consumed:
            return Progress(now, consumed)
        elif now - last_progress.at_s > DRAIN_STALL_S:
            log.error("demo: pipeline made no progress for %.0f s (%d of %d records); stopping",
                      DRAIN_STALL_S, consumed, total)
            pipe.stop()
        return last_progress

    def _status_line(self, clicks: CountingClicks, pipe: Pipeline, store: Store, replay: Replay,
                     elapsed_s: float) -> str:
        history = pipe.metrics_history()
        counted = sum(m.clicks_in for m in history)
        lag_ms = history[-1].lag_ms if history else 0
        watermark = history[-1].watermark_ms if history else 0
        try:
            windows = count_windows(store, self.settings.pipeline_id, replay.start_ms,
                                    max(clicks.max_ts_ms + 1, replay.start_ms)).windows
        except Exception as exc:  # the status line must not stop the demo
            log.warning("demo: reading window_totals failed: %s", exc)
            windows = -1
        wm_text = (f"{dt.datetime.fromtimestamp(watermark / 1000, tz=dt.UTC):%H:%M:%S}"
                   if watermark else "-")
        return (f"demo: {elapsed_s:5.0f} s | clicks in {clicks.count:,} "
                f"({clicks.count / max(elapsed_s, 1e-9):,.0f}/s) | counted {counted:,} | "
                f"windows written {windows:,} | lag {clicks.count - counted:,} clicks, "
                f"{lag_ms / 1000:.1f} s | watermark {wm_text}")

    def _run_jobs_unless_stopped(self, summary: DemoSummary) -> list[PageRankKey]:
        if not self.options.run_jobs:
            return []
        if self._stop.is_set():
            summary.jobs = "skipped (stopped)"
            return []
        return self._jobs(summary)

    def _wait_for_spark(self) -> SparkSession | None:
        """The Spark session once started; None if the demo is stopped meanwhile."""
        assert self._spark is not None
        if not self._spark.done():
            self.say("demo: waiting for Spark to start")
        while not _wait(self._spark, 0.5) and not self._stop.is_set():
            pass
        if self._stop.is_set():
            return None
        try:
            return self._spark.result()
        except BaseException as exc:
            raise DemoError(f"Spark did not start: {exc}") from exc

    def _jobs(self, summary: DemoSummary) -> list[PageRankKey]:
        """The batch tables and PageRank, concurrently (Spark takes both jobs' tasks)."""
        spark = self._wait_for_spark()
        if spark is None:
            summary.jobs = "skipped (stopped)"
            return []
        archive = self.settings.archive
        hours = HourRange.parse(None, None)
        runs: list[PageRankKey] = []

        def pagerank() -> tuple[list[PageRankRun], float]:
            t = time.monotonic()
            return run_pagerank(spark, self.settings, archive, hours), time.monotonic() - t

        self.say(f"demo: Spark batch tables and PageRank jobs on {archive}")
        progress = SparkProgress(self.out, label="demo: spark").start()
        ranked = in_thread("demo-pagerank", pagerank)
        try:
            t = time.monotonic()
            try:
                summary.batch_rows_written = run_batch(spark, self.settings, archive, hours)
            finally:
                t_batch = time.monotonic() - t
                _wait(ranked, None)
            self.say(f"demo: batch tables written in {t_batch:.1f} s")
            pagerank_runs, t_pagerank = ranked.result()
            for r in pagerank_runs:
                runs.append(PageRankKey(r.variant, r.run_date))
                self.say(f"demo: pagerank {r.variant}: {r.graph.n_nodes:,} nodes, "
                         f"{r.graph.n_edges:,} edges, {r.result.iterations} iterations")
            summary.jobs = f"batch {t_batch:.1f} s, pagerank {t_pagerank:.1f} s (concurrent)"
        except Exception as exc:
            if self._stop.is_set():
                summary.jobs = "cancelled (stopped)"
                return runs
            raise DemoError(f"Spark job failed: {exc}") from exc
        finally:
            progress.stop()
        return runs

    def _read_back(self, store: Store, replay: Replay, clicks: CountingClicks, runs: list[PageRankKey],
                   summary: DemoSummary) -> None:
        """The final counts, read back from the store (this run's event-time range only)."""
        end_ms = max(clicks.max_ts_ms + 1, replay.start_ms + 1)
        counts = count_windows(store, self.settings.pipeline_id, replay.start_ms, end_ms)
        summary.windows_written, summary.clicks_on_time, summary.clicks_late = counts
        summary.clicks_counted = counts.on_time + counts.late
        stored = count_batch_rows(store, runs)
        summary.batch_rows_in_store, summary.pagerank_rows_in_store = stored
        summary.pagerank_variants = [r.variant for r in runs]

    def _report(self, summary: DemoSummary) -> None:
        for line in summary.lines():
            self.say(line)
        (self.run_dir / "summary.json").write_text(json.dumps(summary.to_json(), indent=2) + "\n")


def _wait(future: Future[Any], timeout_s: float | None) -> bool:
    """True once ``future`` is done (result or exception), waiting at most ``timeout_s``."""
    try:
        future.exception(timeout=timeout_s)
    except FutureTimeout:
        return False
    return True


def _cancel_spark_jobs(spark: SparkSession) -> None:
    try:
        spark.sparkContext.cancelAllJobs()
    except Exception as exc:
        log.warning("demo: cancelling Spark jobs failed: %s", exc)


def run_demo(settings: Settings, options: DemoOptions, out: TextIO,
             on_start: Callable[[Demo], None] | None = None) -> DemoSummary:
    """Run one demo to its end; ``on_start`` gets the ``Demo`` (e.g. to wire Ctrl-C to stop)."""
    demo = Demo(settings, options, out)
    if on_start is not None:
        on_start(demo)
    try:
        return demo.run()
    finally:
        demo.close()


__all__ = ["DEFAULT_CLICKS", "DEFAULT_RATE_PER_S", "Demo", "DemoError", "DemoOptions", "DemoSummary",
           "run_demo"]
