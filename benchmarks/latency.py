"""Append -> store latency of the streaming pipeline at a paced rate.

``measure_latency(bench, rate)``: a fresh topic; the pipeline runs (Dask LocalCluster,
Cassandra, HDFS: the bench settings) while a paced producer appends ``rate`` clicks/s for
``PACED_S`` seconds; the pipeline's own sample of (store write time - record append time)
gives p50 and p99 (``Pipeline.progress()``: up to 64 records per task, every cycle). A click
counts as in the store when the running or final totals of its windows were written.

The paced producer runs in a process of its own with the librdkafka client, as a site's
producers run elsewhere: in the driver's process its sending took the driver's GIL, and
kafka-python's CPU (5x librdkafka's per record here) was taken from the 2 cores the
pipeline is measured on. At 5,000 clicks/s (2026-11-29 22:57-22:58 UTC, single runs) the
p99 was 2.5 s with kafka-python in the driver's process, 1.7 s with librdkafka there and
1.2 s with librdkafka in a process of its own.
"""

from __future__ import annotations

import multiprocessing
import threading
import time
import uuid

from clickstream.settings import Settings
from pipeline import Pipeline
from producer.expand import expand_clicks
from producer.sender import ensure_topic, send_to_kafka
from producer.synthetic import generate_rows

PACED_S = 20.0
WARM_UP_S = 3.0


def measure_latency(bench: Settings, rate_clicks_per_s: float) -> tuple[float, float]:
    """(p50 ms, p99 ms) of append -> store while ``rate_clicks_per_s`` clicks/s are appended."""
    topic = f"bench-latency-{uuid.uuid4().hex[:8]}"
    settings = bench.replace(topic=topic, consumer_group=topic, dead_letter_topic=topic + "-dlq",
                             archive_url=f"{bench.hdfs_url}/benchmarks/{topic}")
    ensure_topic(settings, topic, 4)
    with Pipeline(settings) as pipe:
        runner = threading.Thread(target=pipe.run, daemon=True)
        runner.start()
        time.sleep(WARM_UP_S)  # the first cycle imports and connects; not what is measured
        spawn = multiprocessing.get_context("spawn")
        results = spawn.Queue()
        producer = spawn.Process(target=_send_paced, args=(settings, rate_clicks_per_s, results))
        producer.start()
        sent_records = results.get(timeout=PACED_S + 120)
        producer.join(30)
        deadline = time.monotonic() + 120
        while sum(pipe.consumed_offsets().values()) < sent_records and time.monotonic() < deadline:
            time.sleep(0.2)
        time.sleep(1.0)  # the last cycle's rows are written on the next turn of the loop
        pipe.stop()
        runner.join(600)
        progress = pipe.progress()
    if progress.latency_p50_ms is None or progress.latency_p99_ms is None:
        raise RuntimeError(f"latency: no click reached the store ({progress.status})")
    return progress.latency_p50_ms, progress.latency_p99_ms


def _send_paced(settings: Settings, rate_clicks_per_s: float, results: multiprocessing.Queue) -> None:
    """The producer's process: ``PACED_S`` seconds of clicks at the rate; puts the records sent."""
    n = int(rate_clicks_per_s * PACED_S)
    clicks = expand_clicks(generate_rows(4_000, seed=3, head_share=0.1), seed=3, span_s=PACED_S, limit=n)
    sent = send_to_kafka(clicks, settings.replace(kafka_producer_client="confluent-kafka"),
                         topic=settings.topic, progress=False, create_topic=False,
                         rate_per_s=rate_clicks_per_s)
    results.put(sent.sent_records)
