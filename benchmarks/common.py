"""What a benchmark reports, and the table the runner prints."""

from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import dataclass

from clickstream.settings import Settings
from producer.expand import expand_clicks
from producer.sender import SendSummary, ensure_topic, send_to_kafka
from producer.synthetic import generate_rows


@dataclass(frozen=True)
class Measurement:
    suite: str
    name: str
    value: float
    unit: str
    baseline: str = ""
    baseline_value: float | None = None
    target: str = ""  # e.g. ">= 0.9x" or "< 500 MB"; free text, checked by `met`
    met: bool | None = None

    @property
    def ratio(self) -> float | None:
        if self.baseline_value in (None, 0):
            return None
        return self.value / self.baseline_value  # type: ignore[operator]


def format_table(rows: Sequence[Measurement]) -> str:
    header = ("suite", "measurement", "value", "unit", "baseline", "baseline value", "ratio",
              "target", "met")
    lines = [header]
    for m in rows:
        lines.append((
            m.suite, m.name, f"{m.value:,.1f}", m.unit, m.baseline or "-",
            "-" if m.baseline_value is None else f"{m.baseline_value:,.1f}",
            "-" if m.ratio is None else f"{m.ratio:.2f}x", m.target or "-",
            "-" if m.met is None else ("yes" if m.met else "NO"),
        ))
    widths = [max(len(str(row[i])) for row in lines) for i in range(len(header))]
    out = []
    for i, row in enumerate(lines):
        out.append(" | ".join(str(v).ljust(w) for v, w in zip(row, widths, strict=True)))
        if i == 0:
            out.append("-+-".join("-" * w for w in widths))
    return "\n".join(out)


# -- shared by the streaming suites (pipeline, streaming-peers) ------------------------------

BENCH_PARTITIONS = 4
BENCH_KEYSPACE = "clickstream_bench"
BENCH_SPAN_S = 600  # event-time span of the generated clicks


def bench_settings(settings: Settings, topic: str) -> Settings:
    """Local-stack settings of a benchmark on ``topic``: its own consumer group and dead-letter
    topic, the Cassandra keyspace ``BENCH_KEYSPACE``, archive ``<hdfs>/benchmarks/<topic>``."""
    local = settings.replace(stack="local") if settings.stack != "local" else settings
    return local.replace(topic=topic, consumer_group=topic, dead_letter_topic=topic + "-dlq",
                         store="cassandra", cassandra_keyspace=BENCH_KEYSPACE,
                         archive_url=f"{local.hdfs_url}/benchmarks/{topic}")


def fill_topic(bench: Settings, n_clicks: int, clicks_per_record: int = 1,
               span_s: float = BENCH_SPAN_S) -> SendSummary:
    """Create ``bench.topic`` (``BENCH_PARTITIONS`` partitions) and send ``n_clicks`` generated
    clicks (seed 7, ``span_s`` of event time) with the producer; blocks until acknowledged.
    Sent with the librdkafka client (the same records on the same partitions, ~5x faster
    here): the fill is set-up, not what is measured."""
    ensure_topic(bench, bench.topic, BENCH_PARTITIONS)
    clicks = expand_clicks(generate_rows(12_000, seed=7, head_share=0.1), seed=7, span_s=span_s,
                           jitter_ms=200, limit=n_clicks)
    return send_to_kafka(clicks, bench.replace(kafka_producer_client="confluent-kafka"), topic=bench.topic,
                         progress=False, create_topic=False,
                         clicks_per_record=clicks_per_record)


def load_average(suite: str, when: str = "at the end") -> Measurement:
    """The machine's 1-minute load average now (the 2 cores are shared)."""
    return Measurement(suite, f"load average (1 min) {when}", os.getloadavg()[0], "runnable")
