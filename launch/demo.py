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
2. Serves the dashboard (``dashboards.server.start_dashboard``) and prints its URL.
3. Starts the Spark session on a background thread (its JVM start overlaps the stream).
4. Replays clicks (a synthetic month or ``--dump``, event time squeezed into a short
   span, a spike on a few articles) at ``rate_per_s`` from a producer thread into an
   in-process ``MemoryTopic`` or a Kafka topic, while the streaming pipeline runs on a
   Dask ``LocalCluster`` on another thread; prints a status line every few seconds.
5. When the replay ends (all clicks, ``duration_s`` or a stop request), the pipeline
   drains what was sent, finalizes every window, flushes and commits, and its Dask
   cluster is closed; then the Spark batch and PageRank jobs run on the archive.
6. Prints the final summary, read back from the store, and writes ``summary.json``.

Stopping: ``Demo.stop()`` (the CLI calls it on Ctrl-C) ends the replay, lets the pipeline
finish its cycle, finalize, flush and commit, cancels running Spark jobs, and skips the
jobs not yet started. ``close()`` stops the dashboard and Spark; it is idempotent.
"""

from __future__ import annotations

import datetime as dt
import json
import logging
import math
import secrets
import threading
import time
from collections.abc import Callable, Iterable, Iterator
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, TextIO

from clickstream.events import Click
from clickstream.settings import Settings
from clickstream.store import Store, open_store
from clickstream.windows import SLIDING_WINDOW_MS, TUMBLING_WINDOWS_MS

log = logging.getLogger(__name__)

DEFAULT_RATE_PER_S = 20_000.0
DEFAULT_CLICKS = 1_500_000
EVENT_SPEEDUP = 10.0  # event seconds per wall second at the nominal rate: 10 s windows move
CLICKS_PER_ROW = 100  # sizing only: about 4x the rows needed, so the graph is not tiny
SPIKE_TITLES = 3
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
    spike: str | None = None  # AT_S:DURATION_S:CLICKS[:TITLE,...]; default: picked; "" none
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
    if not settings.dashboard_pipeline:
        changes["dashboard_pipeline"] = changes.get("consumer_group", settings.consumer_group)
    return settings.replace(**changes)


# -- the clicks ------------------------------------------------------------------------
@dataclass(frozen=True)
class Replay:
    """The clicks to send (lazy) and what the summary needs to know about them."""

    clicks: Iterator[Click]
    planned: int  # clicks the iterator yields unless stopped
    start_ms: int  # event time of the span's start
    span_ms: int  # event time the planned clicks cover (the whole input may span more)
    spike_titles: tuple[str, ...]
    source: str


def plan_replay(options: DemoOptions, spool_dir: Path) -> Replay:
    """Rows (synthetic or ``options.dump``), expanded into clicks over a short event span.

    The span defaults to ``EVENT_SPEEDUP`` event seconds per wall second at the rate, so
    the dashboard's 10 s windows move every second; the spike is placed a third into it.
    """
    from producer.expand import Spike, expand_clicks, month_bounds, month_from_filename
    from producer.readers import read_dump
    from producer.synthetic import generate_rows

    nominal_rate = options.rate_per_s or DEFAULT_RATE_PER_S
    wanted = options.clicks
    if wanted is None and options.duration_s is not None and options.rate_per_s:
        wanted = math.ceil(options.duration_s * options.rate_per_s)
    if wanted is None and options.dump is None and options.synthetic_rows is None:
        wanted = DEFAULT_CLICKS  # the in-process topic keeps every record in memory
    if options.dump is not None:
        if not options.dump.is_file():
            raise DemoError(f"--dump {options.dump}: no such file")
        month = month_from_filename(options.dump) or "2015-02"
        rows_total = sum(r.n for r in read_dump(options.dump, layout=options.layout))
        make_rows: Callable[[], Iterable[Any]] = lambda: read_dump(options.dump, layout=options.layout)  # type: ignore[arg-type]  # noqa: E731
        source = f"dump {options.dump}"
    else:
        month = "2015-02"
        target = wanted or DEFAULT_CLICKS
        n_rows = options.synthetic_rows or max(200, math.ceil(1.5 * target / CLICKS_PER_ROW))
        while True:
            rows = list(generate_rows(n_rows, seed=options.seed))
            rows_total = sum(r.n for r in rows)
            if rows_total >= target or options.synthetic_rows:
                break
            n_rows *= 2
        make_rows = lambda: rows  # noqa: E731
        source = f"synthetic month of {len(rows):,} rows"
    if rows_total == 0:
        raise DemoError(f"{source}: no clicks to replay")
    planned_base = rows_total if wanted is None else min(wanted, rows_total)
    if options.span_s is not None:
        span_played_s = options.span_s
    else:
        span_played_s = max(10.0, planned_base / nominal_rate * EVENT_SPEEDUP)
    # ``limit`` keeps the earliest clicks: spread the whole input over a span whose first
    # ``span_played_s`` seconds hold the clicks played.
    full_span_s = max(span_played_s * rows_total / planned_base, 1.0)
    spike: Spike | None = None
    if options.spike is None:
        per_title = max(300, planned_base // 200)
        spike = Spike(at_s=span_played_s / 3, duration_s=max(2.0, span_played_s / 15),
                      clicks=per_title, count=SPIKE_TITLES)
    elif options.spike:
        try:
            spike = Spike.parse(options.spike)
        except ValueError as exc:
            raise DemoError(f"--spike: {exc}") from None
    spike_total = 0 if spike is None else spike.clicks * (len(spike.titles) or spike.count)
    total = rows_total + spike_total
    planned = total if wanted is None else min(wanted, total)
    clicks = expand_clicks(make_rows(), month=month, seed=options.seed, jitter_ms=options.jitter_ms,
                           limit=wanted, span_s=full_span_s, spike=spike, spool_dir=spool_dir)
    start_ms, _ = month_bounds(month)
    played_span_ms = math.ceil(full_span_s * 1000 * min(1.0, planned / max(total, 1)))
    return Replay(clicks, planned, start_ms, played_span_ms,
                  spike.titles if spike else (), source)


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


# -- reading the store back --------------------------------------------------------------
def _days(start_ms: int, end_ms: int) -> list[str]:
    first = dt.datetime.fromtimestamp(start_ms / 1000, tz=dt.UTC).date()
    last = dt.datetime.fromtimestamp(max(start_ms, end_ms) / 1000, tz=dt.UTC).date()
    return [(first + dt.timedelta(days=i)).isoformat() for i in range((last - first).days + 1)]


def count_windows(store: Store, start_ms: int, end_ms: int) -> tuple[int, int, int]:
    """(windows of every size, on-time clicks, late clicks at 60 s) in ``[start_ms, end_ms)``.

    Only windows starting in the range count (an earlier run in a shared keyspace may have
    written others). Sliding windows start up to their length before the first click."""
    windows = on_time = late = 0
    for window_ms in (*TUMBLING_WINDOWS_MS, SLIDING_WINDOW_MS):
        lo = start_ms - (SLIDING_WINDOW_MS if window_ms == SLIDING_WINDOW_MS else 0)
        for day in _days(lo, end_ms):
            rows = store.select("window_totals", {"window_ms": window_ms, "day": day},
                                start=lo, end=end_ms)
            windows += len(rows)
            if window_ms == COUNT_WINDOW_MS:
                on_time += sum(int(r["clicks"]) for r in rows)
                late += sum(int(r["late_clicks"]) for r in rows)
    return windows, on_time, late


def count_batch_rows(store: Store, pagerank_runs: Iterable[tuple[str, str]]) -> tuple[int, int]:
    """Rows in the store of the batch tables' global partitions, and of the PageRank runs."""
    batch = sum(len(store.select("top_articles", {"kind": kind})) for kind in ("source", "destination"))
    batch += len(store.select("link_type_share", {"scope": "all"}))
    pagerank = 0
    for variant, run_date in pagerank_runs:
        pagerank += len(store.select("pagerank_runs", {"variant": variant}, start=run_date,
                                     end=run_date + "\x00"))
        pagerank += len(store.select("pagerank_top", {"run_date": run_date, "variant": variant}))
    return batch, pagerank


# -- the run -----------------------------------------------------------------------------
class Demo:
    """One demo run (see the module docstring). ``run()`` blocks; ``stop()`` is thread-safe."""

    def __init__(self, settings: Settings, options: DemoOptions, out: TextIO) -> None:
        self.options = options
        self.out = out
        self.run_id = new_run_id()
        base = settings.work_path / "demo"
        self.run_dir = (options.run_dir or base / self.run_id).expanduser().resolve()
        self.settings = run_settings(settings, self.run_dir, self.run_id)
        self._stop = threading.Event()
        self._end_replay = threading.Event()
        self._replay_done = threading.Event()
        self._closers: list[tuple[str, Callable[[], None]]] = []
        self._spark: Any = None
        self._spark_error: BaseException | None = None
        self._spark_thread: threading.Thread | None = None
        self._pipeline: Any = None
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
        spark = self._spark
        if spark is not None:
            threading.Thread(target=_cancel_spark_jobs, args=(spark,), daemon=True).start()

    def close(self) -> None:
        """Stop the dashboard and Spark, close the store (reverse order of start)."""
        if self._closed:
            return
        self._closed = True
        if self._spark_thread is not None:
            self._spark_thread.join(timeout=120)
            if self._spark is not None:
                self._closers.append(("spark", self._spark.stop))
        for name, closer in reversed(self._closers):
            try:
                closer()
            except Exception:
                log.exception("demo: closing %s failed", name)
        self._closers.clear()

    def say(self, text: str) -> None:
        print(text, file=self.out, flush=True)

    # -- steps -------------------------------------------------------------------------------
    def _prepare_store(self) -> Store:
        s = self.settings
        if s.store_backend == "cassandra":
            from clickstream.store.cassandra import apply_schema
            apply_schema(s)
            where = f"Cassandra keyspace {s.cassandra_keyspace}"
        else:
            where = f"embedded store {s.embedded_store_file}"
        store = open_store(s)
        self._closers.append(("store", store.close))
        self.say(f"demo: store: {where}")
        return store

    def _start_dashboard(self) -> str:
        from dashboards.server import start_dashboard

        try:
            handle = start_dashboard(self.settings)
        except OSError as exc:  # the port is taken (e.g. another dashboard): any free port
            log.warning("dashboard port %d: %s; using a free port", self.settings.dashboard_port, exc)
            handle = start_dashboard(self.settings.replace(dashboard_port=0))
        self._closers.append(("dashboard", handle.stop))
        self.say(f"demo: dashboard at {handle.url}")
        return handle.url

    def _start_spark(self) -> None:
        from spark_jobs.session import build_session

        def build() -> None:
            try:
                self._spark = build_session(self.settings, app_name="clickstream-demo")
            except BaseException as exc:
                self._spark_error = exc

        # Built off the main thread, PySpark leaves our SIGINT handler in place.
        self._spark_thread = threading.Thread(target=build, name="demo-spark-start", daemon=True)
        self._spark_thread.start()

    def _send(self, clicks: CountingClicks, topic: Any, box: dict[str, Any]) -> None:
        from producer.sender import send_to_kafka, send_to_memory

        rate = self.options.rate_per_s or None
        try:
            if topic is not None:
                box["summary"] = send_to_memory(clicks, topic, rate_per_s=rate, progress=False)
            else:
                box["summary"] = send_to_kafka(clicks, self.settings, rate_per_s=rate, progress=False)
        except BaseException as exc:
            box["error"] = exc
            if topic is not None:
                topic.close()
        finally:
            box["t_end"] = time.monotonic()
            self._replay_done.set()

    def _stream(self, box: dict[str, Any]) -> None:
        try:
            box["summary"] = self._pipeline.run()
        except BaseException as exc:
            box["error"] = exc

    def run(self) -> DemoSummary:
        """The whole demo (blocks); returns the final summary, also printed."""
        from clickstream.memory_topic import MemoryTopic
        from pipeline import Pipeline, PipelineError
        from pipeline.sources.kafka import SourceError

        t0 = time.monotonic()
        s = self.settings
        o = self.options
        self.run_dir.mkdir(parents=True, exist_ok=True)
        self.say(f"demo: run {self.run_id} in {self.run_dir}")
        store = self._prepare_store()
        url = self._start_dashboard()
        summary = DemoSummary(str(self.run_dir), url, str(s.embedded_store_file)
                              if s.store_backend == "embedded" else s.cassandra_keyspace,
                              s.archive, s.topic)
        if o.run_jobs:
            self._start_spark()
        replay = plan_replay(o, self.run_dir)
        where = f"Kafka topic {s.topic} at {s.kafka_bootstrap}" if s.kafka_bootstrap else \
            f"in-process topic {s.topic}"
        rate_text = f"{o.rate_per_s:,.0f} clicks/s" if o.rate_per_s else "as fast as possible"
        self.say(f"demo: replaying {replay.planned:,} clicks ({replay.source}) at {rate_text} "
                 f"into {where}; event time {replay.span_ms / 1000:,.0f} s from "
                 f"{dt.datetime.fromtimestamp(replay.start_ms / 1000, tz=dt.UTC):%Y-%m-%d %H:%M}"
                 + (f"; spike on {', '.join(replay.spike_titles)}" if replay.spike_titles else
                    "; spike on a few articles"))
        self.say(f"demo: archive {s.archive}")
        memory_topic = None if s.kafka_bootstrap else MemoryTopic(s.topic, s.topic_partitions)
        try:
            if s.kafka_bootstrap:
                from producer.sender import ensure_topic
                ensure_topic(s, s.topic, s.topic_partitions)
            self._pipeline = pipe = Pipeline(s, memory_topic=memory_topic, store=store)
        except (PipelineError, SourceError) as exc:
            raise DemoError(f"starting the pipeline: {exc}") from None
        self._closers.append(("pipeline and Dask cluster", pipe.close))
        if self._stop.is_set():
            pipe.stop()
        self.say("demo: streaming pipeline on a Dask LocalCluster of "
                 f"{s.dask_workers} workers; Ctrl-C stops cleanly")
        clicks = CountingClicks(replay.clicks, self._end_replay)
        send_box: dict[str, Any] = {}
        stream_box: dict[str, Any] = {}
        t_replay = time.monotonic()
        sender = threading.Thread(target=self._send, args=(clicks, memory_topic, send_box),
                                  name="demo-producer", daemon=True)
        streamer = threading.Thread(target=self._stream, args=(stream_box,), name="demo-pipeline",
                                    daemon=True)
        sender.start()
        streamer.start()
        self._watch(clicks, pipe, sender, streamer, store, replay, t_replay, send_box)
        sender.join()
        streamer.join()
        summary.replay_s = send_box.get("t_end", time.monotonic()) - t_replay
        if "error" in send_box:
            raise DemoError(f"replay into {where} failed: {send_box['error']}") from send_box["error"]
        if "error" in stream_box:
            raise DemoError(f"streaming pipeline failed: {stream_box['error']}") from stream_box["error"]
        run_summary = stream_box["summary"]
        summary.clicks_generated = send_box["summary"].sent_clicks
        summary.pipeline_clicks = run_summary.clicks
        summary.dead_letters = run_summary.dead_letters
        summary.stopped_early = self._stop.is_set()
        self.say(f"demo: pipeline done: {run_summary.clicks:,} clicks, {run_summary.late_clicks:,} "
                 f"late, {run_summary.dead_letters:,} dead letters; committed {run_summary.committed}")
        self._closers.remove(("pipeline and Dask cluster", pipe.close))
        pipe.close()  # frees the Dask workers' cores and memory for Spark
        end_ms = max(clicks.max_ts_ms + 1, replay.start_ms + 1)
        runs: list[tuple[str, str]] = []
        if o.run_jobs and not self._stop.is_set():
            runs = self._jobs(summary)
        elif o.run_jobs:
            summary.jobs = "skipped (stopped)"
        summary.windows_written, summary.clicks_on_time, summary.clicks_late = count_windows(
            store, replay.start_ms, end_ms)
        summary.clicks_counted = summary.clicks_on_time + summary.clicks_late
        summary.batch_rows_in_store, summary.pagerank_rows_in_store = count_batch_rows(store, runs)
        summary.pagerank_variants = [v for v, _ in runs]
        summary.elapsed_s = time.monotonic() - t0
        for line in summary.lines():
            self.say(line)
        (self.run_dir / "summary.json").write_text(json.dumps(summary.to_json(), indent=2) + "\n")
        if o.wait_at_end and not self._stop.is_set():
            self.say(f"demo: done; the dashboard stays at {url} until Ctrl-C")
            self._stop.wait()
        return summary

    def _watch(self, clicks: CountingClicks, pipe: Any, sender: threading.Thread,
               streamer: threading.Thread, store: Store, replay: Replay, t_replay: float,
               send_box: dict[str, Any]) -> None:
        """Status lines until the pipeline has consumed everything sent (or a stop)."""
        o = self.options
        next_status = time.monotonic() + o.status_every_s
        last_progress = (time.monotonic(), -1)
        while streamer.is_alive():
            now = time.monotonic()
            if o.duration_s is not None and now - t_replay >= o.duration_s and not self._replay_done.is_set():
                self._end_replay.set()  # ends the replay only; the pipeline drains what was sent
            consumed = sum(pipe.consumed.values())
            if self._replay_done.is_set() and reads_kafka(pipe):
                sent = send_box["summary"].sent_records if "summary" in send_box else None
                if sent is None or consumed >= sent:
                    pipe.stop()
                elif consumed != last_progress[1]:
                    last_progress = (now, consumed)
                elif now - last_progress[0] > DRAIN_STALL_S:
                    log.error("demo: pipeline made no progress for %.0f s (%d of %d records); stopping",
                              DRAIN_STALL_S, consumed, sent)
                    pipe.stop()
            if now >= next_status:
                next_status = now + o.status_every_s
                self.say(self._status_line(clicks, pipe, store, replay, now - t_replay))
            streamer.join(timeout=0.2)

    def _status_line(self, clicks: CountingClicks, pipe: Any, store: Store, replay: Replay,
                     elapsed_s: float) -> str:
        history = list(pipe.metrics.history)
        counted = sum(m.clicks_in for m in history)
        lag_ms = history[-1].lag_ms if history else 0
        watermark = history[-1].watermark_ms if history else 0
        try:
            windows, _, _ = count_windows(store, replay.start_ms, max(clicks.max_ts_ms + 1, replay.start_ms))
        except Exception as exc:  # the status line must not stop the demo
            log.warning("demo: reading window_totals failed: %s", exc)
            windows = -1
        wm_text = (f"{dt.datetime.fromtimestamp(watermark / 1000, tz=dt.UTC):%H:%M:%S}"
                   if watermark else "-")
        return (f"demo: {elapsed_s:5.0f} s | clicks in {clicks.count:,} "
                f"({clicks.count / max(elapsed_s, 1e-9):,.0f}/s) | counted {counted:,} | "
                f"windows written {windows:,} | lag {clicks.count - counted:,} clicks, "
                f"{lag_ms / 1000:.1f} s | watermark {wm_text}")

    def _jobs(self, summary: DemoSummary) -> list[tuple[str, str]]:
        from spark_jobs.batch import run_batch
        from spark_jobs.pagerank import run_pagerank
        from spark_jobs.source import HourRange

        if self._spark is None:
            self.say("demo: waiting for Spark to start")
        assert self._spark_thread is not None
        while self._spark_thread.is_alive() and not self._stop.is_set():
            self._spark_thread.join(timeout=0.5)
        if self._stop.is_set():
            summary.jobs = "skipped (stopped)"
            return []
        if self._spark_error is not None:
            raise DemoError(f"Spark did not start: {self._spark_error}") from self._spark_error
        spark = self._spark
        archive = self.settings.archive
        hours = HourRange.parse(None, None)
        runs: list[tuple[str, str]] = []
        pagerank_box: dict[str, Any] = {}

        def pagerank() -> None:  # concurrent with the batch job: Spark takes both jobs' tasks
            t = time.monotonic()
            try:
                pagerank_box["runs"] = run_pagerank(spark, self.settings, archive, hours)
            except BaseException as exc:
                pagerank_box["error"] = exc
            pagerank_box["s"] = time.monotonic() - t

        self.say(f"demo: Spark batch tables and PageRank jobs on {archive}")
        pagerank_thread = threading.Thread(target=pagerank, name="demo-pagerank", daemon=True)
        pagerank_thread.start()
        try:
            t = time.monotonic()
            try:
                summary.batch_rows_written = run_batch(spark, self.settings, archive, hours)
            finally:
                t_batch = time.monotonic() - t
                pagerank_thread.join()
            self.say(f"demo: batch tables written in {t_batch:.1f} s")
            if "error" in pagerank_box:
                raise pagerank_box["error"]
            for r in pagerank_box["runs"]:
                runs.append((r.variant, r.run_date))
                self.say(f"demo: pagerank {r.variant}: {r.graph.n_nodes:,} nodes, "
                         f"{r.graph.n_edges:,} edges, {r.result.iterations} iterations")
            summary.jobs = f"batch {t_batch:.1f} s, pagerank {pagerank_box['s']:.1f} s (concurrent)"
        except Exception as exc:
            if self._stop.is_set():
                summary.jobs = "cancelled (stopped)"
                return runs
            raise DemoError(f"Spark job failed: {exc}") from exc
        return runs


def reads_kafka(pipe: Any) -> bool:
    """True when the pipeline reads Kafka: it cannot see the end of the stream by itself."""
    from pipeline.sources.kafka import KafkaSource

    return isinstance(pipe.source, KafkaSource)


def _cancel_spark_jobs(spark: Any) -> None:
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


__all__ = ["Demo", "DemoError", "DemoOptions", "DemoSummary", "run_demo"]
