"""The Prometheus endpoints: the collectors' names and values, the producer's endpoint over a
replay, and ``clickstream stream --metrics-port`` scraped over HTTP while it consumes a real
Kafka topic, its values checked against the input and the store."""

from __future__ import annotations

import socket
import subprocess
import sys
import time
import urllib.request
from collections import Counter
from pathlib import Path

import pytest
from prometheus_client.parser import text_string_to_metric_families

from clickstream.memory_topic import MemoryTopic
from clickstream.settings import Settings
from launch.metrics import ProduceCollector, StreamCollector, serve_metrics, stream_state
from pipeline.graph import PipelineProgress
from producer.expand import expand_clicks
from producer.sender import Progress, make_producer, send_to_kafka, send_to_memory
from producer.synthetic import generate_rows

Samples = dict[tuple[str, tuple[tuple[str, str], ...]], float]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def scrape(url: str) -> Samples:
    """Every sample of the endpoint, keyed by (name, sorted labels)."""
    with urllib.request.urlopen(url, timeout=10) as response:
        assert response.status == 200
        text = response.read().decode()
    return {(s.name, tuple(sorted(s.labels.items()))): s.value
            for family in text_string_to_metric_families(text) for s in family.samples}


def value(samples: Samples, name: str, **labels: str) -> float:
    return samples[(name, tuple(sorted(labels.items())))]


def test_stream_collector_names_units_and_values() -> None:
    progress = PipelineProgress(
        "g/t", "waiting for kafka: refused", cycles=3, records=90, clicks=120, late_clicks=2, dead_letters=1,
        consumed_offsets={0: 50, 1: 40}, lag_records={0: 5, 1: 0}, watermark_ms=1_000_000,
        max_event_ms=1_006_500, cycle_s=0.25, store_write_s=0.05, archive_write_s=0.08, checkpoint_s=0.01,
        checkpoints=2, latency_p50_ms=120.0, latency_p99_ms=900.0)
    settings = Settings(metrics_port=free_port())
    server = serve_metrics(settings, StreamCollector(lambda: progress, lambda: progress.status, "kafka"))
    assert server is not None and server.url.startswith("http://127.0.0.1:")
    try:
        got = scrape(server.url)
    finally:
        server.close()
    p = "clickstream_stream_"
    assert value(got, p + "clicks_total") == 120 and value(got, p + "records_total") == 90
    assert value(got, p + "late_clicks_total") == 2 and value(got, p + "dead_letters_total") == 1
    assert [value(got, p + "lag_records", partition=str(i)) for i in (0, 1)] == [5, 0]
    assert value(got, p + "consumed_offset", partition="0") == 50
    assert value(got, p + "watermark_delay_seconds") == 6.5
    assert value(got, p + "cycle_seconds") == 0.25 and value(got, p + "archive_write_seconds") == 0.08
    assert value(got, p + "append_to_store_latency_seconds", quantile="0.99") == 0.9
    assert value(got, p + "status", state="waiting") == 1 and value(got, p + "status", state="running") == 0
    assert value(got, p + "pipeline_info", pipeline_id="g/t", source="kafka") == 1
    assert stream_state("idle") == "idle" and stream_state("stopped") == "stopped"


def test_metrics_off_by_default() -> None:
    assert serve_metrics(Settings(), StreamCollector(lambda: None, lambda: "idle", "memory")) is None


def test_produce_endpoint_counts_what_the_replay_sent() -> None:
    clicks = list(expand_clicks(generate_rows(100, seed=2, head_share=0.1), seed=2, span_s=60, limit=3_000))
    topic = MemoryTopic("m", 2)
    progress = Progress(False, total=len(clicks))
    server = serve_metrics(Settings(metrics_port=free_port()), ProduceCollector(progress, "memory topic m"))
    assert server is not None
    try:
        before = scrape(server.url)
        summary = send_to_memory(clicks, topic, progress=progress)
        after = scrape(server.url)
    finally:
        server.close()
    p = "clickstream_produce_"
    assert value(before, p + "status", state="sending") == 1 and value(before, p + "clicks_total") == 0
    assert value(after, p + "clicks_total") == summary.sent_clicks == len(clicks) == 3_000
    assert value(after, p + "planned_clicks") == 3_000 and value(after, p + "failed_clicks_total") == 0
    assert value(after, p + "status", state="done") == 1


@pytest.mark.integration
def test_stream_endpoint_scraped_while_it_runs(services_running: Settings, unique_name: str,
                                               tmp_path: Path) -> None:
    clicks = list(expand_clicks(generate_rows(200, seed=7, head_share=0.1), seed=7, span_s=60, limit=4_000))
    settings = services_running.replace(topic_partitions=2, dead_letter_topic=f"{unique_name}-dl")
    send_to_kafka(clicks, settings, topic=unique_name, progress=False)
    bad = 3
    producer = make_producer(settings)
    try:
        for i in range(bad):
            producer.send(unique_name, value=b"not a click %d" % i, key=b"Bad_key")
        producer.flush(timeout=30)
    finally:
        producer.close(timeout=5)

    port = free_port()
    url = f"http://127.0.0.1:{port}/metrics"
    store_file = tmp_path / "s.sqlite"
    proc = subprocess.Popen(
        [sys.executable, "-m", "launch.cli.main", "stream", "--stack", "local", "--topic", unique_name,
         "--consumer-group", unique_name, "--dead-letter-topic", f"{unique_name}-dl",
         "--store", "embedded", "--embedded-store-path", str(store_file),
         "--archive-url", (tmp_path / "archive").as_uri(), "--work-dir", str(tmp_path),
         "--dask-workers", "1", "--until-idle-s", "8", "--metrics-port", str(port)],
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    p = "clickstream_stream_"
    seen: list[Samples] = []
    try:
        deadline = time.monotonic() + 180
        while time.monotonic() < deadline and proc.poll() is None:
            try:
                samples = scrape(url)
            except OSError:  # not listening yet
                time.sleep(0.3)
                continue
            seen.append(samples)
            if value(samples, p + "clicks_total") == len(clicks) and value(samples, p + "status",
                                                                           state="idle") == 1:
                break
            time.sleep(0.3)
        out, _ = proc.communicate(timeout=120)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert proc.returncode == 0, out
    assert seen, f"the endpoint never answered; output:\n{out}"
    last = seen[-1]
    assert value(last, p + "clicks_total") == len(clicks) == 4_000, out
    assert value(last, p + "dead_letters_total") == bad
    assert value(last, p + "records_total") == len(clicks) + bad
    assert all(value(last, p + "lag_records", partition=str(i)) == 0 for i in range(2))
    assert sum(value(last, p + "consumed_offset", partition=str(i)) for i in range(2)) == len(clicks) + bad
    assert value(last, p + "cycles_total") >= 1 and value(last, p + "cycle_seconds") > 0
    assert value(last, p + "watermark_delay_seconds") >= 0
    assert (p + "append_to_store_latency_seconds", (("quantile", "0.5"),)) in last
    counts = [value(s, p + "clicks_total") for s in seen]
    assert counts == sorted(counts), "a counter went down"
    # the store the run wrote holds exactly the clicks the endpoint counted
    from clickstream.store.embedded import EmbeddedStore

    store = EmbeddedStore(store_file)
    try:
        minutes = Counter(c.ts_ms - c.ts_ms % 60_000 for c in clicks)
        rows = store.select("window_totals", {"pipeline": f"{unique_name}/{unique_name}", "window_ms": 60_000,
                                              "day": "2015-02-01"})
        assert sum(r["clicks"] + r["late_clicks"] for r in rows) == value(last, p + "clicks_total")
        assert {r["window_start_ms"] for r in rows} == set(minutes)
    finally:
        store.close()
