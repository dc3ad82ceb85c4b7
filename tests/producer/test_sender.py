"""Senders: record building (single and batch), the memory topic, and Kafka end to end."""

from __future__ import annotations

import io
import uuid
from collections import Counter

import pytest

from clickstream.events import Click, decode_record
from clickstream.memory_topic import MemoryTopic, partition_for
from clickstream.settings import Settings
from producer.expand import expand_clicks
from producer.sender import Progress, records, send_to_kafka, send_to_memory
from producer.synthetic import generate_rows


def _clicks(limit: int, jitter_ms: int = 0, seed: int = 1) -> list[Click]:
    rows = generate_rows(2_000, seed=seed, head_share=0.3)
    return list(expand_clicks(rows, seed=seed, jitter_ms=jitter_ms, span_s=3_600, limit=limit))


def test_batch_records_hold_one_destination_and_every_click() -> None:
    clicks = _clicks(20_000)
    out = list(records(clicks, clicks_per_record=8, batch_wait_ms=500))
    seen: list[Click] = []
    for key, value, n, first_ts in out:
        batch = decode_record(value)
        assert len(batch) == n <= 8
        assert {c.curr.encode() for c in batch} == {key}
        assert first_ts == batch[0].ts_ms
        assert batch[-1].ts_ms - batch[0].ts_ms <= 500
        seen.extend(batch)
    assert sorted(seen) == sorted(clicks)
    assert len(out) < len(clicks) / 2  # batching actually groups


def test_batch_wait_bounds_event_time_span_of_a_record() -> None:
    clicks = _clicks(20_000)
    for _key, value, _n, _ts in records(clicks, clicks_per_record=1_000, batch_wait_ms=2_000):
        batch = decode_record(value)
        assert batch[-1].ts_ms - batch[0].ts_ms <= 2_000


def test_send_to_memory_keys_partitions_and_decoding() -> None:
    clicks = _clicks(10_000)
    topic = MemoryTopic("t", 4)
    summary = send_to_memory(clicks, topic, clicks_per_record=1)
    assert topic.closed
    assert summary.sent_clicks == summary.sent_records == len(clicks) and summary.failed_clicks == 0
    got: list[Click] = []
    for p in range(4):
        for key, value in topic.read(p, 0, topic.end_offset(p)):
            assert partition_for(key, 4) == p
            (click,) = decode_record(value)
            assert click.curr.encode() == key
            got.append(click)
    assert sorted(got) == sorted(clicks)
    batched = MemoryTopic("b", 4)
    summary = send_to_memory(clicks, batched, clicks_per_record=16)
    assert summary.sent_clicks == len(clicks) and summary.sent_records < len(clicks)
    back = [c for p in range(4) for _, v in batched.read(p, 0, batched.end_offset(p))
            for c in decode_record(v)]
    assert Counter(back) == Counter(clicks)


def test_progress_bar_and_log_modes() -> None:
    stream = io.StringIO()
    bar = Progress("bar", total=100, stream=stream)
    bar.next_at = 0.0
    bar.update(50, 2)
    bar.close(100, 2)
    text = stream.getvalue()
    assert "50.0%" in text and "ETA" in text and "2 failed" in text and text.endswith("\n")
    assert Progress("auto", stream=io.StringIO()).mode == "log"  # not a terminal


@pytest.mark.integration
@pytest.mark.parametrize("client", ["kafka-python", "confluent-kafka"])
def test_kafka_roundtrip_200k(services_running: Settings, unique_name: str, client: str) -> None:
    """Every click once, keyed by destination, on murmur2's partition, whichever client sends."""
    from kafka import KafkaConsumer, TopicPartition

    n_clicks = 200_000
    jitter_ms = 250
    partitions = 4
    settings = services_running.replace(topic_partitions=partitions, kafka_producer_client=client)
    topic = f"produce-{unique_name}"
    clicks = expand_clicks(generate_rows(5_000, seed=11, head_share=0.3), seed=11,
                           jitter_ms=jitter_ms, span_s=3_600, limit=n_clicks)
    summary = send_to_kafka(clicks, settings, topic=topic, progress=False)
    assert summary.sent_clicks == n_clicks and summary.failed_clicks == 0, summary.errors

    consumer = KafkaConsumer(bootstrap_servers=settings.kafka_bootstrap, enable_auto_commit=False,
                             group_id=None, consumer_timeout_ms=5_000, max_poll_records=50_000,
                             fetch_max_bytes=64 << 20, max_partition_fetch_bytes=16 << 20)
    try:
        tps = [TopicPartition(topic, p) for p in range(partitions)]
        assert consumer.partitions_for_topic(topic) == set(range(partitions))
        consumer.assign(tps)
        consumer.seek_to_beginning(*tps)
        ends = consumer.end_offsets(tps)
        assert sum(ends.values()) == n_clicks
        ids: list[int] = []
        newest: dict[int, int] = {}
        worst_lateness = 0
        empty_polls = 0
        while len(ids) < n_clicks and empty_polls < 10:
            batches = consumer.poll(timeout_ms=1_000, max_records=50_000)
            empty_polls = 0 if batches else empty_polls + 1
            for tp, batch in batches.items():
                top = newest.get(tp.partition)
                for record in batch:
                    (click,) = decode_record(record.value)
                    assert record.key == click.curr.encode("utf-8")
                    assert partition_for(record.key, partitions) == tp.partition == record.partition
                    ids.append(click.click_id)
                    if top is None or click.ts_ms > top:
                        top = click.ts_ms
                    else:
                        worst_lateness = max(worst_lateness, top - click.ts_ms)
                newest[tp.partition] = top
    finally:
        consumer.close()
    assert len(ids) == n_clicks
    assert len(set(ids)) == n_clicks
    assert 0 < worst_lateness <= jitter_ms  # jitter reorders, but never by more
    assert len(newest) == partitions  # keys spread over every partition


def test_memory_and_kafka_share_one_encoding() -> None:
    clicks = _clicks(100)
    topic = MemoryTopic(f"m-{uuid.uuid4().hex[:6]}", 2)
    send_to_memory(clicks, topic)
    values = [v for p in range(2) for _, v in topic.read(p, 0, topic.end_offset(p))]
    built = {v for _, v, _, _ in records(clicks)}
    assert set(values) == built
