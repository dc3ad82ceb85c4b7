"""Streaming peers (issue #16, item 5; ``python -m benchmarks streaming-peers``): our pipeline
against what a user would run instead, on one pre-filled 4-partition topic, in one run.

Topic: N one-click records (``fill_topic``: the producer, seed 7, 10 minutes of event time;
N = 1,000,000, ``--quick`` 200,000). Then, one after the other (never two at once):

- source (item 2): records/s of one process fetching every record of the topic as bytes, in
  the pipeline's ranges (``TASK_RECORDS`` per call), no decode: the pipeline's
  ``KafkaFetcher``, tuned kafka-python (``kafka_python_fetch_batch``) and confluent-kafka
  (``ConfluentFetcher``), each in a fresh process; target for adding the confluent source:
  >= 2x the tuned kafka-python fetch.
- (c) bare kafka-python consume + decode: 2 processes (as many as pipeline workers), each
  assigned 2 of the 4 partitions, tuned consumer (kafka-python's own parsing: a
  ``ConsumerRecord`` each), ``decode_record`` + a dict count per
  destination; rates (records / time from the first poll) summed. (d) the same with
  confluent-kafka ``consume(num_messages=...)``.
- (a) ``Pipeline.run(max_clicks=N)`` into Cassandra (keyspace ``clickstream_bench``) + Parquet
  on HDFS, from ``run`` to its end (the LocalCluster start is left out, as Spark's JVM start
  is); peak RSS of the driver and of each worker process (psutil, every 0.2 s); the
  driver's per-cycle phases (its DEBUG "cycle phases" lines, summed); the workers' Dask
  statistical profile; then the same run again on a fresh consumer group under cProfile
  (the driver's profile; that run is not timed). Then (a') the same pipeline with the
  confluent-kafka source (``stream_source_client``), a fresh consumer group: its ratio to
  (d) is the like-for-like one, and its ratio to (c) is shown beside it (the (a)/(c) target
  is judged on (a), the default kafka-python source).
- (b) Spark Structured Streaming doing the same work (``benchmarks.spark_streaming_peer``,
  its own process and JVM): query time, JVM start separately. Then the equal-work check:
  every window total (all sizes), the 60 s full counts and the 10 s / 60 s top-N of (a) and
  (b) compared row by row in Cassandra.
- (e) the pipeline on batch records of up to 100 clicks (``clicks_per_record=100``; 2,000,000
  clicks, ``--quick`` 500,000), a second topic whose clicks span ``BATCHED_SPAN_S``; (e')
  the same with the confluent-kafka source.
- latency (p50/p99 append -> store at half the sustained rate), ``benchmarks.latency``:
  with the kafka-python source at half of (a)'s rate, with the confluent-kafka source at
  half of (a')'s.

Targets (issue #16): a/b >= 2.0x, a/c >= 0.8x, e >= 1,000,000 clicks/s. The 2 cores are
shared: the load average is a row before and after each part.
"""

from __future__ import annotations

import cProfile
import io
import json
import logging
import multiprocessing
import pstats
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

import psutil

from benchmarks.common import (
    BENCH_PARTITIONS,
    Measurement,
    bench_settings,
    fill_topic,
    load_average,
)
from clickstream.events import EventError, decode_record
from clickstream.settings import Settings
from clickstream.store import cql
from clickstream.store.tables import Table
from pipeline import Pipeline
from pipeline.graph import TASK_RECORDS

SUITE = "streaming-peers"
WORKER_PROCESSES = 2
# (e)'s event-time span: a batch record holds one destination's clicks of at most the
# producer's batch_wait_ms (1 s), so over the other rows' 10 minutes most records would hold
# a few clicks; 60 s gives ~25 (500,000 clicks) to ~60 (2,000,000) clicks per record.
BATCHED_SPAN_S = 60
MB = 1024 * 1024
log = logging.getLogger(__name__)


# -- source and bare consumers, each in its own (spawned) process -----------------------------

KP_PIPELINE = "kafka-python, columnar (pipeline's KafkaFetcher)"
KP_STOCK = "kafka-python, tuned consumer, its own ConsumerRecord per record"
CONFLUENT = "confluent-kafka (ConfluentFetcher)"


def _fetch_only(client: str, bootstrap: str, topic: str, ends: dict[int, int]) -> tuple[int, float]:
    """(records, seconds) to fetch every record of ``topic`` as bytes in ``TASK_RECORDS`` ranges."""
    from kafka import TopicPartition

    from pipeline.sources.confluent import ConfluentFetcher
    from pipeline.sources.kafka import KafkaFetcher
    from pipeline.sources.kafka_batch import tuned_consumer

    fetch: Callable[[int, int, int], Any]
    if client == KP_PIPELINE:
        fetch = KafkaFetcher(bootstrap, topic)
    elif client == KP_STOCK:
        consumer = tuned_consumer(bootstrap)

        def fetch(partition: int, start: int, end: int) -> list[bytes | None]:
            tp = TopicPartition(topic, partition)
            if consumer.assignment() != {tp}:
                consumer.assign([tp])
            consumer.seek(tp, start)
            values: list[bytes | None] = []
            while consumer.position(tp) < end:
                polled = consumer.poll(timeout_ms=500, max_records=end - start).get(tp, ())
                values += [r.value for r in polled]
            return values[:end - start]
    else:
        fetch = ConfluentFetcher(bootstrap, topic)
    fetch(0, 0, 1)  # connect and learn the metadata before the clock
    records = 0
    t0 = time.perf_counter()
    for partition, end in ends.items():
        for start in range(0, end, TASK_RECORDS):
            records += len(fetch(partition, start, min(end, start + TASK_RECORDS)))
    return records, time.perf_counter() - t0


def _consume_decode(client: str, bootstrap: str, topic: str, ends: dict[int, int]) -> tuple[int, float]:
    """(clicks, seconds from the first poll): every record of ``ends``' partitions consumed,
    ``decode_record``-ed and counted per destination."""
    counts: dict[str, int] = {}
    total = sum(ends.values())
    seen = clicks = 0

    def count(value: bytes | None) -> int:
        try:
            decoded = decode_record(value)
        except EventError:
            return 0  # the benchmark topic holds only valid records
        for click in decoded:
            counts[click.curr] = counts.get(click.curr, 0) + 1
        return len(decoded)

    if client == "kafka-python":
        from kafka import TopicPartition

        from pipeline.sources.kafka_batch import tuned_consumer

        consumer = tuned_consumer(bootstrap)
        tps = [TopicPartition(topic, p) for p in ends]
        consumer.assign(tps)
        consumer.seek_to_beginning(*tps)
        t0 = time.perf_counter()
        while seen < total:
            for recs in consumer.poll(timeout_ms=1000).values():
                seen += len(recs)
                for rec in recs:
                    clicks += count(rec.value)
    else:
        from confluent_kafka import Consumer, TopicPartition

        from pipeline.sources.confluent import consumer_config

        consumer = Consumer(consumer_config(bootstrap))
        consumer.assign([TopicPartition(topic, p, 0) for p in ends])
        t0 = time.perf_counter()
        while seen < total:
            # consume() returns when it has num_messages or at the timeout: never ask for more
            for msg in consumer.consume(num_messages=min(100_000, total - seen), timeout=1.0):
                if msg.error() is None:
                    seen += 1
                    clicks += count(msg.value())
    elapsed = time.perf_counter() - t0
    consumer.close()
    return clicks, elapsed


def _in_processes(fn: Callable[..., tuple[int, float]], jobs: list[tuple[Any, ...]],
                  ) -> list[tuple[int, float]]:
    """Run ``fn(*job)`` for every job at once, each in a fresh spawned process."""
    ctx = multiprocessing.get_context("spawn")
    with ctx.Pool(len(jobs)) as pool:
        return pool.starmap(fn, jobs)


def _end_offsets(bootstrap: str, topic: str) -> dict[int, int]:
    from kafka import KafkaConsumer, TopicPartition

    consumer = KafkaConsumer(bootstrap_servers=bootstrap, group_id=None)
    tps = [TopicPartition(topic, p) for p in range(BENCH_PARTITIONS)]
    ends = {tp.partition: int(o) for tp, o in consumer.end_offsets(tps).items()}
    consumer.close()
    return ends


# -- the pipeline, watched --------------------------------------------------------------------

class RssPeaks(threading.Thread):
    """Peak RSS of this process and of each descendant, sampled every ``interval_s``."""

    def __init__(self, interval_s: float = 0.2) -> None:
        super().__init__(daemon=True)
        self.interval_s = interval_s
        self.me = psutil.Process()
        self.driver_bytes = 0
        self.children_bytes: dict[int, int] = {}
        self.children_sum_bytes = 0
        self._halt = threading.Event()

    def run(self) -> None:
        while not self._halt.is_set():
            try:
                self.driver_bytes = max(self.driver_bytes, self.me.memory_info().rss)
                total = 0
                for child in self.me.children(recursive=True):
                    try:
                        rss = child.memory_info().rss
                    except psutil.Error:
                        continue
                    total += rss
                    self.children_bytes[child.pid] = max(self.children_bytes.get(child.pid, 0), rss)
                self.children_sum_bytes = max(self.children_sum_bytes, total)
            except psutil.Error:
                pass
            self._halt.wait(self.interval_s)

    def stop(self) -> None:
        self._halt.set()
        self.join()


class PhaseLog(logging.Handler):
    """Sums the pipeline's DEBUG "cycle phases" lines: seconds waiting for the workers after
    the driver's flush, merge + finalize (overlaps the next cycle's batches), the flush of the
    cycle before (overlaps this cycle's batches), planning + dispatching the next cycle."""

    def __init__(self) -> None:
        super().__init__(logging.DEBUG)
        self.cycles = 0
        self.seconds = [0.0, 0.0, 0.0, 0.0]

    def emit(self, record: logging.LogRecord) -> None:
        if record.getMessage().startswith("cycle phases") and isinstance(record.args, tuple):
            self.cycles += 1
            for i, value in enumerate(record.args[:4]):
                self.seconds[i] += float(value)


@contextmanager
def phase_log() -> Iterator[PhaseLog]:
    logger = logging.getLogger("pipeline")  # pipeline/graph.py's logger
    handler, level = PhaseLog(), logger.level
    logger.addHandler(handler)
    logger.setLevel(logging.DEBUG)
    try:
        yield handler
    finally:
        logger.removeHandler(handler)
        logger.setLevel(level)


@dataclass
class PipelineRun:
    clicks: int
    elapsed_s: float
    cycles: int
    rss: RssPeaks | None = None
    phases: PhaseLog | None = None
    worker_profile: list[tuple[str, float]] | None = None  # (function, share of samples)


def worker_profile_top(state: dict[str, Any], n: int = 12) -> list[tuple[str, float]]:
    """The functions with the most self samples in a Dask profile tree, with their share."""
    self_counts: dict[str, int] = {}
    stack = [state]
    while stack:
        node = stack.pop()
        children = list(node.get("children", {}).values())
        own = node.get("count", 0) - sum(c.get("count", 0) for c in children)
        d = node.get("description", {})
        if d.get("name"):
            where = "/".join(d.get("filename", "").split("/")[-2:])
            name = f"{d['name']} ({where}:{d.get('line_number', 0)})"
            self_counts[name] = self_counts.get(name, 0) + own
        stack.extend(children)
    total = max(1, state.get("count", 0))
    top = sorted(self_counts.items(), key=lambda kv: -kv[1])[:n]
    return [(name, count / total) for name, count in top]


def run_pipeline(bench: Settings, max_clicks: int, watch: bool) -> PipelineRun:
    """``Pipeline.run(max_clicks)``; with ``watch``, RSS peaks, phases and the workers' profile."""
    with Pipeline(bench) as pipe:
        if not watch:
            summary = pipe.run(max_clicks=max_clicks)
            return PipelineRun(summary.clicks, summary.elapsed_s, summary.cycles)
        rss = RssPeaks()
        rss.start()
        started = time.time()
        with phase_log() as phases:
            summary = pipe.run(max_clicks=max_clicks)
        rss.stop()
        profile = pipe.client.profile(start=started)
        return PipelineRun(summary.clicks, summary.elapsed_s, summary.cycles, rss, phases,
                           worker_profile_top(profile))


def confluent_source(bench: Settings) -> Settings:
    """The same pipeline reading with confluent-kafka: a consumer group and archive of its own."""
    return bench.replace(consumer_group=bench.consumer_group + "-confluent",
                         archive_url=bench.archive_url + "-confluent", stream_source_client="confluent-kafka")


def driver_profile(bench: Settings, max_clicks: int, top: int = 25) -> str:
    """The driver's cProfile (cumulative, top ``top``) of one more run of the same topic."""
    again = bench.replace(consumer_group=bench.consumer_group + "-profile",
                          archive_url=bench.archive_url + "-profile")
    with Pipeline(again) as pipe:
        profiler = cProfile.Profile()
        profiler.enable()
        summary = pipe.run(max_clicks=max_clicks)
        profiler.disable()
    out = io.StringIO()
    out.write(f"driver cProfile of a second run ({summary.clicks:,} clicks in {summary.elapsed_s:.1f} s "
              f"under the profiler), main thread:\n")
    pstats.Stats(profiler, stream=out).sort_stats("cumulative").print_stats(top)
    pstats.Stats(profiler, stream=out).sort_stats("tottime").print_stats(top)
    return out.getvalue()


# -- Spark and the equal-work check -----------------------------------------------------------

def run_spark(bench: Settings, archive_url: str) -> tuple[dict[str, Any], int]:
    """The Spark peer in its own process: (its JSON result, peak RSS of its process tree)."""
    cmd = [sys.executable, "-m", "benchmarks.spark_streaming_peer", "--topic", bench.topic,
           "--keyspace", bench.cassandra_keyspace, "--pipeline", bench.pipeline_id,
           "--archive-url", archive_url]
    rss = RssPeaks()
    rss.start()
    done = subprocess.run(cmd, capture_output=True, text=True, check=False)
    rss.stop()
    if done.returncode != 0:
        raise RuntimeError(f"Spark peer failed ({done.returncode}):\n{done.stderr[-4000:]}")
    return json.loads(done.stdout.strip().splitlines()[-1]), rss.children_sum_bytes


def create_spark_tables(bench: Settings) -> None:
    """The Spark peer's tables in the bench keyspace, created if missing and emptied."""
    from benchmarks.spark_streaming_peer import SPARK_TABLES
    from clickstream.store.cassandra import connect

    cluster, session = connect(bench, bench.cassandra_keyspace)
    try:
        for t in SPARK_TABLES.values():
            session.execute(session.prepare(cql.create_table_cql(t, bench.cassandra_keyspace)), timeout=60)
        cluster.control_connection.wait_for_schema_agreement()
        for t in SPARK_TABLES.values():
            session.execute(session.prepare(f"TRUNCATE {t.name}"), timeout=120)
    finally:
        cluster.shutdown()


def compare_outputs(bench: Settings) -> tuple[int, int]:
    """(rows compared, rows that differ) between the pipeline's tables and the Spark peer's:
    every window total, the 60 s full counts, the 10 s and 60 s top-N."""
    from benchmarks.spark_streaming_peer import SPARK_TABLES
    from clickstream.store.cassandra import connect
    from clickstream.store.tables import TABLES
    from clickstream.windows import FULL_COUNT_WINDOWS_MS, METRICS

    cluster, session = connect(bench, bench.cassandra_keyspace)
    prepared: dict[tuple[str, str], Any] = {}

    def rows(t: Table, where: str, values: tuple[Any, ...], columns: str) -> set[tuple[Any, ...]]:
        stmt = prepared.get((t.name, where))
        if stmt is None:
            stmt = session.prepare(f"SELECT {columns} FROM {t.name} WHERE {where}")
            prepared[(t.name, where)] = stmt
        return {tuple(r) for r in session.execute(stmt, values, timeout=30)}

    compared = differ = 0
    try:
        spark_totals, ours_totals = SPARK_TABLES["window_totals"], TABLES["window_totals"]
        parts = list(session.execute(session.prepare(
            f"SELECT DISTINCT pipeline, window_ms, day FROM {spark_totals.name}"), timeout=30))
        starts: dict[int, list[int]] = {}
        pipeline = bench.pipeline_id
        for window_ms, day in [(w, d) for p, w, d in parts if p == pipeline]:
            where = "pipeline = ? AND window_ms = ? AND day = ?"
            a = rows(ours_totals, where, (pipeline, window_ms, day), "window_start_ms, clicks")
            b = rows(spark_totals, where, (pipeline, window_ms, day), "window_start_ms, clicks")
            compared += len(a | b)
            differ += len(a ^ b)
            starts.setdefault(window_ms, []).extend(s for s, _ in b)
        where = "pipeline = ? AND metric = ? AND window_ms = ? AND window_start_ms = ?"
        for name, sizes, columns in (("window_counts", FULL_COUNT_WINDOWS_MS, "key, clicks"),
                                     ("window_topn", (10_000, 60_000), "rank, key, clicks")):
            for window_ms in sizes:
                for start in starts.get(window_ms, []):
                    for metric in METRICS:
                        key = (pipeline, metric, window_ms, start)
                        a = rows(TABLES[name], where, key, columns)
                        b = rows(SPARK_TABLES[name], where, key, columns)
                        compared += len(a | b)
                        differ += len(a ^ b)
    finally:
        cluster.shutdown()
    return compared, differ


def latency_rows(bench: Settings, sustained_clicks_per_s: float, source: str) -> list[Measurement]:
    """p50/p99 append -> store at half ``sustained_clicks_per_s`` with ``source`` (the
    ``stream_source_client`` whose run measured that rate):
    ``benchmarks.latency.measure_latency(settings, rate_clicks_per_s) -> (p50_ms, p99_ms)``."""
    rate = sustained_clicks_per_s / 2
    from benchmarks.latency import measure_latency
    p50_ms, p99_ms = measure_latency(bench.replace(stream_source_client=source), rate)
    what = f"append->store at {rate:,.0f} clicks/s, {source} source"
    return [Measurement(SUITE, f"latency p50 {what}", p50_ms, "ms"),
            Measurement(SUITE, f"latency p99 {what}", p99_ms, "ms", target="<= 1,000 ms", met=p99_ms <= 1000)]


# -- the suite --------------------------------------------------------------------------------

def _say(text: str) -> None:
    print(f"[streaming-peers {time.strftime('%H:%M:%S')}] {text}", file=sys.stderr, flush=True)


def run(settings: Settings, quick: bool) -> list[Measurement]:
    from benchmarks.spark_streaming_peer import SPARK_TABLES  # noqa: F401  (fail early without it)
    from clickstream.store.cassandra import apply_schema

    n_clicks = 200_000 if quick else 1_000_000
    n_batched = 500_000 if quick else 2_000_000
    tag = uuid.uuid4().hex[:8]
    bench = bench_settings(settings, f"bench-peers-{tag}")
    apply_schema(bench)
    create_spark_tables(bench)
    rows: list[Measurement] = [load_average(SUITE, "at the start")]
    sent = fill_topic(bench, n_clicks)
    _say(sent.line())
    bootstrap = bench.kafka_bootstrap
    ends = _end_offsets(bootstrap, bench.topic)
    n = sum(ends.values())

    # item 2: the fetch alone, one process, each client in turn
    fetch_rates: dict[str, float] = {}
    for client in (KP_PIPELINE, KP_STOCK, CONFLUENT):
        [(records, elapsed)] = _in_processes(_fetch_only, [(client, bootstrap, bench.topic, ends)])
        fetch_rates[client] = records / elapsed
        _say(f"fetch {client}: {records:,} records in {elapsed:.2f} s")
    ours = fetch_rates[KP_PIPELINE]
    for client, rate in fetch_rates.items():
        rows.append(Measurement(SUITE, f"source: fetch only, 1 process, bytes, {client}", rate, "records/s",
                                "" if client == KP_PIPELINE else KP_PIPELINE,
                                None if client == KP_PIPELINE else ours,
                                ">= 2.0x (adds the confluent source)" if client == CONFLUENT else "",
                                rate >= 2 * ours if client == CONFLUENT else None))
    rows.append(load_average(SUITE, "after the source rows"))

    # (c), (d): bare consume + decode, WORKER_PROCESSES processes of 2 partitions each
    split = [dict(list(ends.items())[i::WORKER_PROCESSES]) for i in range(WORKER_PROCESSES)]
    bare: dict[str, float] = {}
    for client in ("kafka-python", "confluent-kafka"):
        results = _in_processes(_consume_decode, [(client, bootstrap, bench.topic, part) for part in split])
        bare[client] = sum(c / e for c, e in results)
        _say(f"bare {client} consume+decode: " + ", ".join(f"{c:,} in {e:.2f} s" for c, e in results))
    rows.append(load_average(SUITE, "after (c), (d)"))

    # (a): our pipeline
    a = run_pipeline(bench, sent.sent_clicks, watch=True)
    a_rate = a.clicks / a.elapsed_s
    _say(f"(a) pipeline: {a.clicks:,} clicks in {a.elapsed_s:.2f} s, {a.cycles} cycles")
    rows.append(load_average(SUITE, "after (a)"))
    a2 = run_pipeline(confluent_source(bench), sent.sent_clicks, watch=False)
    a2_rate = a2.clicks / a2.elapsed_s
    _say(f"(a') pipeline, confluent-kafka source: {a2.clicks:,} clicks in {a2.elapsed_s:.2f} s, "
         f"{a2.cycles} cycles")
    rows.append(load_average(SUITE, "after (a')"))

    # (b): Spark Structured Streaming, same topic, its own process
    spark, spark_rss = run_spark(bench, f"{bench.hdfs_url}/benchmarks/{bench.topic}-spark")
    b_rate = n / spark["query_s"]
    _say(f"(b) spark: {spark}")
    rows.append(load_average(SUITE, "after (b)"))
    compared, differ = compare_outputs(bench)
    _say(f"equal work: {compared:,} rows compared, {differ:,} differ")

    profile_text = driver_profile(bench, sent.sent_clicks)

    # (e): batch records of 100 clicks, a second topic
    batched = bench_settings(settings, f"bench-peers-batch100-{tag}")
    sent_e = fill_topic(batched, n_batched, clicks_per_record=100, span_s=BATCHED_SPAN_S)
    _say(sent_e.line())
    e = run_pipeline(batched, sent_e.sent_clicks, watch=False)
    e_rate = e.clicks / e.elapsed_s
    _say(f"(e) pipeline, 100 clicks/record: {e.clicks:,} clicks in {e.elapsed_s:.2f} s")
    e2 = run_pipeline(confluent_source(batched), sent_e.sent_clicks, watch=False)
    e2_rate = e2.clicks / e2.elapsed_s
    _say(f"(e') the same, confluent-kafka source: {e2.clicks:,} clicks in {e2.elapsed_s:.2f} s")

    name_a = (f"(a) pipeline, {a.clicks:,} one-click records -> Cassandra + HDFS "
              f"({bench.dask_workers} workers)")
    rows += [
        Measurement(SUITE, name_a, a_rate, "clicks/s", "(b) Spark Structured Streaming", b_rate,
                    ">= 2.0x", a_rate >= 2.0 * b_rate),
        Measurement(SUITE, name_a, a_rate, "clicks/s", f"(c) bare kafka-python consume+decode, "
                    f"{WORKER_PROCESSES} processes summed", bare["kafka-python"], ">= 0.8x",
                    a_rate >= 0.8 * bare["kafka-python"]),
        Measurement(SUITE, name_a, a_rate, "clicks/s", f"(d) bare confluent-kafka consume+decode, "
                    f"{WORKER_PROCESSES} processes summed", bare["confluent-kafka"]),
        Measurement(SUITE, f"(a') the same, confluent-kafka source ({a2.clicks:,} clicks)", a2_rate,
                    "clicks/s", f"(d) bare confluent-kafka consume+decode, {WORKER_PROCESSES} processes "
                    "summed", bare["confluent-kafka"], ">= 0.8x (like for like)",
                    a2_rate >= 0.8 * bare["confluent-kafka"]),
        Measurement(SUITE, f"(a') the same, confluent-kafka source ({a2.clicks:,} clicks)", a2_rate,
                    "clicks/s", f"(c) bare kafka-python consume+decode, {WORKER_PROCESSES} processes "
                    "summed", bare["kafka-python"]),
        Measurement(SUITE, f"(b) Spark Structured Streaming, local[2], availableNow, {spark['batches']} "
                    f"micro-batch(es), {spark['input_rows']:,} rows in", b_rate, "clicks/s"),
        Measurement(SUITE, "(b) Spark query time (start -> end)", spark["query_s"], "s"),
        Measurement(SUITE, "(b) Spark JVM start (session up, incl. package resolution)",
                    spark["jvm_start_s"], "s"),
        Measurement(SUITE, "(b) Spark peak RSS (python + JVM)", spark_rss / MB, "MB"),
        *(Measurement(SUITE, f"(b) Spark micro-batch step: {k[2:]}", v, "s")
          for k, v in spark.items() if k.startswith("s_")),
        Measurement(SUITE, "equal work: (a) vs (b) rows that differ (totals, 60 s counts, 10/60 s top-N)",
                    differ, "rows", f"of {compared:,} compared", None, "= 0", differ == 0),
        Measurement(SUITE, f"(c) bare kafka-python consume+decode, {WORKER_PROCESSES} processes summed",
                    bare["kafka-python"], "clicks/s"),
        Measurement(SUITE, f"(d) bare confluent-kafka consume+decode, {WORKER_PROCESSES} processes summed",
                    bare["confluent-kafka"], "clicks/s"),
        Measurement(SUITE, f"(e) pipeline, {e.clicks:,} clicks in {sent_e.sent_records:,} records "
                    f"(<= 100 clicks each, mean {e.clicks / max(1, sent_e.sent_records):.1f})",
                    e_rate, "clicks/s",
                    target=">= 1,000,000", met=e_rate >= 1_000_000),
        Measurement(SUITE, "(e') the same, confluent-kafka source", e2_rate, "clicks/s",
                    target=">= 1,000,000", met=e2_rate >= 1_000_000),
    ]
    assert a.rss is not None and a.phases is not None and a.worker_profile is not None
    workers = sorted(a.rss.children_bytes.values(), reverse=True)
    rows += [
        Measurement(SUITE, "(a) peak RSS, driver (this process)", a.rss.driver_bytes / MB, "MB"),
        Measurement(SUITE, "(a) peak RSS, largest child process (a Dask worker)",
                    (workers[0] if workers else 0) / MB, "MB"),
        Measurement(SUITE, f"(a) peak RSS, all {len(workers)} child processes together",
                    a.rss.children_sum_bytes / MB, "MB"),
    ]
    for phase, seconds in zip(("waiting for the workers' batches after the flush",
                               "merge + finalize (driver; overlaps the next cycle's batches)",
                               "flush of the cycle before (driver: store writes, checkpoint; "
                               "overlaps the batches)",
                               "planning + dispatching the next cycle (driver)"),
                              a.phases.seconds, strict=True):
        rows.append(Measurement(SUITE, f"(a) driver phase over {a.phases.cycles} cycles: {phase}",
                                seconds, "s"))
    rows.append(Measurement(SUITE, "(a) the rest: the first plan, idle polls, the clean stop's "
                                   "finalize_all + flush",
                            a.elapsed_s - sum(a.phases.seconds), "s"))
    rows += latency_rows(bench, a_rate, "kafka-python")
    rows += latency_rows(bench, a2_rate, "confluent-kafka")
    rows.append(load_average(SUITE))
    print("\n(a) Dask workers' statistical profile, self time (share of samples):")
    for name, share in a.worker_profile:
        print(f"  {share:6.1%}  {name}")
    print()
    print(profile_text)
    return rows
