"""Producer benchmarks: pacing accuracy, reader memory, Kafka throughput against baselines.

- ``rate 20000 clicks/s``: ``send_to_kafka(rate_per_s=20000, clicks_per_record=10)`` for
  10 s (2 s quick); clicks acknowledged / time from the first record to the last ack, vs
  the target, within 5%.
- ``read 5M-row dump peak RSS``: a child process reads a synthetic 5M-row dump
  (500k quick) with ``read_dump`` and reports its own peak RSS (``VmHWM``); the
  baseline is the dump's size on disk (what reading it whole would cost at least).
  A second child expands a 1M-row dump (``fraction=0.05``, first 200k clicks) and
  reports its peak RSS too.
- throughput, one click per record (#16 targets): ``send_to_kafka`` (reading a dump file,
  expanding, encoding, sending, counting acknowledgements) in records/s vs a plain
  kafka-python send loop over pre-encoded records with the same client settings
  (``make_producer``), in the same run: target >= 0.9x the plain loop AND >= 40,000
  records/s. Also the original platform's loop (``json.dumps`` one message per row,
  ``producer.send`` with default settings), for reference. Rounds are interleaved and the
  best round of each is kept, because the 2-core machine is shared.
- throughput with batch records of 100 clicks (``batch_wait_ms`` one hour, so records
  fill): clicks/s, target >= 1,000,000 clicks/s.
- the same two with ``kafka_producer_client="confluent-kafka"`` (librdkafka): against the
  plain kafka-python loop (the issue's baseline) and a plain confluent-kafka loop
  (``produce`` + ``poll(0)`` over the same pre-encoded records, the same delivery settings).

Every round's figures are printed (stderr) and the table keeps the best of each.

The load average is printed at the start and the end of the suite (stderr).

Every measurement uses a topic of its own (``bench-producer-<what>-<uuid>``).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path

from benchmarks.common import Measurement
from clickstream.events import encode_click, record_key
from clickstream.settings import Settings
from clickstream.topics import ensure_topics
from producer.expand import expand_clicks
from producer.readers import read_dump
from producer.sender import make_producer, send_to_kafka
from producer.synthetic import generate_dump

SUITE = "producer"
PARTITIONS = 4


def _topic(settings: Settings, what: str) -> str:
    topic = f"bench-producer-{what}-{uuid.uuid4().hex[:8]}"
    ensure_topics(settings, [topic], PARTITIONS)
    return topic


def _warm(producer: object, topic: str) -> None:
    producer.send(topic, key=b"warm", value=b"{}").get(timeout=30)  # type: ignore[attr-defined]


def _bare(settings: Settings, encoded: list[tuple[bytes, bytes]]) -> float:
    topic = _topic(settings, "bare")
    producer = make_producer(settings)
    try:
        _warm(producer, topic)
        t0 = time.perf_counter()
        for key, value in encoded:
            producer.send(topic, key=key, value=value)
        producer.flush()
        return len(encoded) / (time.perf_counter() - t0)
    finally:
        producer.close()


def _bare_confluent(settings: Settings, encoded: list[tuple[bytes, bytes]]) -> float:
    """A plain librdkafka loop with the replay's delivery settings (no per-record tracking)."""
    from confluent_kafka import Producer

    from producer.confluent import producer_config

    topic = _topic(settings, "bare-confluent")
    producer = Producer(producer_config(settings))
    producer.produce(topic, b"{}", b"warm")
    producer.flush(30)
    t0 = time.perf_counter()
    for key, value in encoded:
        while True:
            try:
                producer.produce(topic, value, key)
                break
            except BufferError:
                producer.poll(0.05)
        producer.poll(0)
    if producer.flush(120):
        raise RuntimeError("plain confluent loop: records left undelivered")
    return len(encoded) / (time.perf_counter() - t0)


def _naive(settings: Settings, dump: Path, n: int) -> float:
    """The 2017 platform's loop: one json.dumps message per row, default producer settings."""
    from kafka import KafkaProducer

    topic = _topic(settings, "naive")
    producer = KafkaProducer(bootstrap_servers=settings.kafka_bootstrap)
    try:
        _warm(producer, topic)
        rows = []
        for row in read_dump(dump):
            rows.append(row)
            if len(rows) == n:
                break
        while len(rows) < n:
            rows.extend(rows[: n - len(rows)])
        t0 = time.perf_counter()
        for row in rows:
            message = json.dumps({"prev": row.prev, "curr": row.curr, "type": row.link_type, "n": row.n,
                                  "ts": time.time()})
            producer.send(topic, value=message.encode("utf-8"))
        producer.flush()
        return n / (time.perf_counter() - t0)
    finally:
        producer.close()


def _ours(settings: Settings, dump: Path, n: int, clicks_per_record: int) -> float:
    """send_to_kafka from the dump file (clicks/s); batches may wait an hour of event time."""
    topic = _topic(settings, f"ours{clicks_per_record}")
    producer = make_producer(settings)
    try:
        _warm(producer, topic)
        clicks = expand_clicks(read_dump(dump), seed=1, limit=n, span_s=3_600)
        summary = send_to_kafka(clicks, settings, topic=topic, clicks_per_record=clicks_per_record,
                                progress=False, create_topic=False, producer=producer,
                                batch_wait_ms=3_600_000)
        if summary.failed_clicks or summary.sent_clicks != n:
            raise RuntimeError(f"benchmark send lost clicks: {summary.line()}")
        return summary.clicks_per_s
    finally:
        producer.close()


# Peak RSS from /proc/self/status VmHWM: unlike ru_maxrss it is not inherited from the
# parent across fork+exec, so it is the child's own peak.
_PEAK = "int(next(l.split()[1] for l in open('/proc/self/status') if l.startswith('VmHWM')))"
_CHILD_READ = f"""
import sys
from producer.readers import read_dump
n = sum(1 for _ in read_dump(sys.argv[1]))
print(n, {_PEAK})
"""

_CHILD_EXPAND = f"""
import sys
from producer.expand import expand_clicks
from producer.readers import read_dump
n = sum(1 for _ in expand_clicks(read_dump(sys.argv[1]), fraction=0.05, limit=200_000))
print(n, {_PEAK})
"""


def _child_rss_mb(code: str, path: Path) -> tuple[int, float]:
    out = subprocess.run([sys.executable, "-c", code, str(path)], check=True, capture_output=True,
                         text=True).stdout.split()
    return int(out[0]), int(out[1]) / 1024.0


def run(settings: Settings, quick: bool) -> list[Measurement]:
    print(f"producer: load average at start {os.getloadavg()}", file=sys.stderr)
    results: list[Measurement] = []
    n_clicks = 60_000 if quick else 200_000
    rounds = 1 if quick else 3
    with tempfile.TemporaryDirectory(prefix="bench-producer-") as tmp_dir:
        tmp = Path(tmp_dir)

        # -- reader memory --------------------------------------------------------------
        big_rows = 500_000 if quick else 5_000_000
        t0 = time.perf_counter()
        big = generate_dump(tmp / "big.tsv", big_rows, seed=3)
        gen_s = time.perf_counter() - t0
        print(f"producer: generated {big_rows:,} rows in {gen_s:.1f} s "
              f"({big_rows / gen_s:,.0f} rows/s, {big.stat().st_size / 1e6:,.0f} MB)", file=sys.stderr)
        rows_read, rss_mb = _child_rss_mb(_CHILD_READ, big)
        assert rows_read == big_rows, (rows_read, big_rows)
        results.append(Measurement(SUITE, f"read {big_rows:,}-row dump: peak RSS", rss_mb, "MB",
                                   "dump size on disk", big.stat().st_size / 1e6, "< 500 MB",
                                   rss_mb < 500))
        mid = generate_dump(tmp / "mid.tsv", 100_000 if quick else 1_000_000, seed=4)
        emitted, rss_mb = _child_rss_mb(_CHILD_EXPAND, mid)
        results.append(Measurement(SUITE, f"expand {'100k' if quick else '1M'}-row dump "
                                          f"(fraction 0.05, {emitted:,} clicks): peak RSS", rss_mb, "MB",
                                   "dump size on disk", mid.stat().st_size / 1e6, "< 500 MB",
                                   rss_mb < 500))
        big.unlink()
        mid.unlink()

        # -- pacing ---------------------------------------------------------------------
        # Batch records (10 clicks of one destination): one click per record cannot reach
        # 20k/s with kafka-python on this shared 2-core machine (see the bare loop below).
        dump = generate_dump(tmp / "small.tsv", 3_000, seed=1, head_share=0.3)
        target = 20_000.0
        seconds = 2 if quick else 10
        topic = _topic(settings, "rate")
        clicks = expand_clicks(read_dump(dump), seed=2, limit=int(target * seconds), span_s=3_600)
        summary = send_to_kafka(clicks, settings, topic=topic, rate_per_s=target, progress=False,
                                create_topic=False, clicks_per_record=10, batch_wait_ms=60_000)
        rate = summary.sent_clicks / summary.sending_s
        results.append(Measurement(SUITE, f"--rate 20000 (10 clicks/record) over {summary.sending_s:.1f} s",
                                   rate, "clicks/s", "target rate", target, "within 5%",
                                   abs(rate / target - 1) <= 0.05))

        # -- throughput -----------------------------------------------------------------
        encoded = [(record_key(c), encode_click(c))
                   for c in expand_clicks(read_dump(dump), seed=1, limit=n_clicks, span_s=3_600)]
        batch_dump = generate_dump(tmp / "batch.tsv", 9_000, seed=1, head_share=0.3)
        batch_clicks = 400_000 if quick else 2_000_000
        conf = settings.replace(kafka_producer_client="confluent-kafka")
        steps = {"bare": lambda: _bare(settings, encoded),
                 "ours1": lambda: _ours(settings, dump, n_clicks, 1),
                 "naive": lambda: _naive(settings, dump, n_clicks),
                 "ours100": lambda: _ours(settings, batch_dump, batch_clicks, 100),
                 "bare_confluent": lambda: _bare_confluent(conf, encoded),
                 "confluent1": lambda: _ours(conf, dump, n_clicks, 1),
                 "confluent100": lambda: _ours(conf, batch_dump, batch_clicks, 100)}
        best = dict.fromkeys(steps, 0.0)
        for k in range(rounds):
            got = {name: step() for name, step in steps.items()}
            print(f"producer: round {k + 1} of {rounds}: "
                  + ", ".join(f"{name} {value:,.0f}" for name, value in got.items())
                  + f"; load average {os.getloadavg()}", file=sys.stderr)
            best = {name: max(best[name], got[name]) for name in steps}
        ok1 = best["ours1"] >= 0.9 * best["bare"] and best["ours1"] >= 40_000
        results.append(Measurement(SUITE, "send_to_kafka, 1 click/record (read+expand+encode+send)",
                                   best["ours1"], "records/s", "plain kafka-python send loop, same settings",
                                   best["bare"], ">= 0.9x and >= 40,000/s", ok1))
        results.append(Measurement(SUITE, "send_to_kafka, 1 click/record", best["ours1"], "records/s",
                                   "2017 loop (json.dumps per row, default producer)", best["naive"]))
        results.append(Measurement(SUITE, "send_to_kafka, 100 clicks/record (batch records)",
                                   best["ours100"], "clicks/s", "", None, ">= 1,000,000 clicks/s",
                                   best["ours100"] >= 1_000_000))
        conf1 = "send_to_kafka --kafka-producer-client confluent-kafka, 1 click/record"
        ok_conf = best["confluent1"] >= 0.9 * best["bare"] and best["confluent1"] >= 40_000
        results.append(Measurement(SUITE, conf1, best["confluent1"], "records/s",
                                   "plain kafka-python send loop, same settings", best["bare"],
                                   ">= 0.9x and >= 40,000/s", ok_conf))
        results.append(Measurement(SUITE, conf1, best["confluent1"], "records/s",
                                   "plain confluent-kafka loop, same settings", best["bare_confluent"]))
        results.append(Measurement(SUITE, "send_to_kafka --kafka-producer-client confluent-kafka, "
                                          "100 clicks/record",
                                   best["confluent100"], "clicks/s", "", None, ">= 1,000,000 clicks/s",
                                   best["confluent100"] >= 1_000_000))
    return results
