"""Pipeline benchmark: sustained clicks/s from a pre-filled 4-partition topic to windows in
Cassandra and Parquet on HDFS, beside the bare kafka-python consume+decode rate.

- baseline, measured in the same run on the same topic: one process, a ``KafkaConsumer``
  assigned to the 4 partitions (no group, lz4, 32 MB partition fetches), ``decode_record``
  of every record and a dict count per destination: records/s.
- ``pipeline clicks/s``: ``Pipeline.run(max_clicks=N)`` on a Dask ``LocalCluster`` (no
  dashboard) of ``settings.dask_workers`` processes (started before the clock), all sinks on
  (Cassandra keyspace ``clickstream_bench_<run>``, fresh and dropped at the end; archive
  ``<hdfs>/benchmarks/<topic>``), from the first fetch to the last commit, including the
  clean stop's final windows.
- scale-out: the same pipeline on 1 Dask worker against 2, same topic (its own consumer
  group, windows and archive per run). On this 2-core machine the driver, Kafka, Cassandra
  and HDFS share the cores with the workers, so a second worker can add at most the idle
  part of the second core; the ratio says how much the work spreads, not what 2 machines
  would give. (Two pipeline processes each given 2 of the partitions are not measured: the
  Kafka source reads every partition of its topic, and two pipelines would write two
  pipelines' windows, not one's.)
- the machine's 1-minute load average at the end, since the 2 cores are shared (the
  ratio is meaningful, absolute rates only with the load beside them).

One click per record (the 80-byte JSON events the client rates in the notes were measured
on). N = 2,000,000 clicks (300,000 with ``--quick``) over a 10-minute event-time span.
"""

from __future__ import annotations

import time
import uuid

from kafka import KafkaConsumer, TopicPartition

from benchmarks.common import (
    BENCH_KEYSPACE,
    BENCH_PARTITIONS,
    Measurement,
    bench_settings,
    fill_topic,
    load_average,
)
from clickstream.events import EventError, decode_record
from clickstream.settings import Settings
from pipeline import Pipeline, RunSummary
from pipeline.sources.base import FETCH_MAX_BYTES, MAX_PARTITION_FETCH_BYTES

SUITE = "pipeline"


def _bare_consume(settings: Settings, topic: str, total: int) -> float:
    consumer = KafkaConsumer(bootstrap_servers=settings.kafka_bootstrap, group_id=None,
                             enable_auto_commit=False, max_partition_fetch_bytes=MAX_PARTITION_FETCH_BYTES,
                             fetch_max_bytes=FETCH_MAX_BYTES, max_poll_records=100_000)
    tps = [TopicPartition(topic, p) for p in range(BENCH_PARTITIONS)]
    consumer.assign(tps)
    consumer.seek_to_beginning(*tps)
    counts: dict[str, int] = {}
    seen = 0
    t0 = time.perf_counter()
    while seen < total:
        for recs in consumer.poll(timeout_ms=1000).values():
            for rec in recs:
                try:
                    for click in decode_record(rec.value):
                        counts[click.curr] = counts.get(click.curr, 0) + 1
                except EventError:
                    pass  # the benchmark topic holds only valid records; counted via `seen`
                seen += 1
    elapsed = time.perf_counter() - t0
    consumer.close()
    return seen / elapsed


def run(settings: Settings, quick: bool) -> list[Measurement]:
    from clickstream.store.cassandra import apply_schema, connect

    n_clicks = 300_000 if quick else 2_000_000
    run_id = uuid.uuid4().hex[:8]
    topic = f"bench-pipeline-{run_id}"
    # a keyspace of the run's own (dropped at the end): the schema is always the current one
    bench = bench_settings(settings, topic).replace(cassandra_keyspace=f"{BENCH_KEYSPACE}_{run_id}")
    apply_schema(bench)
    try:
        return _measure(bench, n_clicks)
    finally:
        cluster, session = connect(bench)
        try:
            session.execute(f"DROP KEYSPACE IF EXISTS {bench.cassandra_keyspace}", timeout=120)
        finally:
            cluster.shutdown()


def _measure(bench: Settings, n_clicks: int) -> list[Measurement]:
    sent = fill_topic(bench, n_clicks)
    bare_rate = _bare_consume(bench, bench.topic, sent.sent_records)
    summary, rate = _pipeline_rate(bench, sent.sent_clicks)
    _one, one_worker_rate = _pipeline_rate(bench.replace(dask_workers=1), sent.sent_clicks, "-1w")
    target = 0.3
    return [
        Measurement(SUITE, f"pipeline clicks/s, {summary.clicks:,} clicks -> Cassandra + HDFS "
                    f"({bench.dask_workers} workers)", rate, "clicks/s",
                    "bare kafka-python consume+decode, 1 process", bare_rate, f">= {target}x",
                    rate >= target * bare_rate),
        Measurement(SUITE, f"pipeline clicks/s on {bench.dask_workers} Dask workers, {BENCH_PARTITIONS} "
                    "partitions (2 shared cores)", rate, "clicks/s", "the same on 1 Dask worker",
                    one_worker_rate),
        load_average(SUITE),
    ]


def _pipeline_rate(bench: Settings, n_clicks: int, suffix: str = "") -> tuple[RunSummary, float]:
    """One pipeline run over the whole topic (its own consumer group, windows and archive
    when ``suffix`` is given) on a LocalCluster of ``bench.dask_workers`` (started before
    the clock): its summary and clicks/s."""
    if suffix:
        bench = bench.replace(consumer_group=bench.consumer_group + suffix,
                              archive_url=bench.archive_url + suffix)
    with Pipeline(bench.replace(dask_dashboard_address="")) as pipe:  # as measured before it existed
        summary = pipe.run(max_clicks=n_clicks)
    return summary, summary.clicks / summary.elapsed_s
