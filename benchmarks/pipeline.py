"""Pipeline benchmark: sustained clicks/s from a pre-filled 4-partition topic to windows in
Cassandra and Parquet on HDFS, beside the bare kafka-python consume+decode rate.

- baseline, measured in the same run on the same topic: one process, a ``KafkaConsumer``
  assigned to the 4 partitions (no group, lz4, 32 MB partition fetches), ``decode_record``
  of every record and a dict count per destination: records/s.
- ``pipeline clicks/s``: ``Pipeline.run(max_clicks=N)`` on a Dask ``LocalCluster`` of
  ``settings.dask_workers`` processes (started before the clock), all sinks on (Cassandra
  keyspace ``clickstream_bench``, archive ``<hdfs>/benchmarks/<topic>``), from the first
  fetch to the last commit, including the clean stop's final windows.
- the machine's 1-minute load average at the end, since the 2 cores are shared (the
  ratio is meaningful, absolute rates only with the load beside them).

One click per record (the 80-byte JSON events the client rates in the notes were measured
on). N = 2,000,000 clicks (300,000 with ``--quick``) over a 10-minute event-time span.
"""

from __future__ import annotations

import time
import uuid

from kafka import KafkaConsumer, TopicPartition

from benchmarks.common import BENCH_PARTITIONS, Measurement, bench_settings, fill_topic, load_average
from clickstream.events import EventError, decode_record
from clickstream.settings import Settings
from pipeline import Pipeline
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
    from clickstream.store.cassandra import apply_schema

    n_clicks = 300_000 if quick else 2_000_000
    topic = f"bench-pipeline-{uuid.uuid4().hex[:8]}"
    bench = bench_settings(settings, topic)
    apply_schema(bench)
    sent = fill_topic(bench, n_clicks)
    bare_rate = _bare_consume(bench, topic, sent.sent_records)
    with Pipeline(bench) as pipe:
        summary = pipe.run(max_clicks=sent.sent_clicks)
    rate = summary.clicks / summary.elapsed_s
    target = 0.3
    return [
        Measurement(SUITE, f"pipeline clicks/s, {summary.clicks:,} clicks -> Cassandra + HDFS "
                    f"({bench.dask_workers} workers)", rate, "clicks/s",
                    "bare kafka-python consume+decode, 1 process", bare_rate, f">= {target}x",
                    rate >= target * bare_rate),
        load_average(SUITE),
    ]
