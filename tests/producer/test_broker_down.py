"""The producer with the broker away: bounded retries, one clear error, an exact report.

The broker stopped mid-send is a Kafka of this test's own (other ports, a work dir under
the test's tmp dir), never the shared one on 9092.
"""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Iterator

import pytest

from clickstream.events import Click, decode_record
from clickstream.settings import Settings
from clickstream.topics import ensure_topics
from launch import services
from producer.expand import expand_clicks
from producer.sender import SendError, send_to_kafka
from producer.synthetic import generate_rows

OWN_KAFKA_PORT = 19092
OWN_CONTROLLER_PORT = 19093
CLIENTS = ("kafka-python", "confluent-kafka")  # settings.kafka_producer_client


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def _clicks(n: int) -> list[Click]:
    return list(expand_clicks(generate_rows(2_000, seed=5, head_share=0.2), seed=5, span_s=600, limit=n))


@pytest.mark.parametrize("client", CLIENTS)
def test_unreachable_broker_stops_at_once_with_nothing_sent(client: str) -> None:
    settings = Settings(kafka_bootstrap_servers=f"127.0.0.1:{_free_port()}", kafka_max_block_ms=2_000,
                        kafka_producer_client=client)
    t0 = time.monotonic()
    with pytest.raises(SendError, match="nothing sent, the broker is unreachable") as info:
        send_to_kafka(_clicks(100), settings, topic="t", progress=False, create_topic=False)
    assert time.monotonic() - t0 < 30
    summary = info.value.summary
    assert (summary.sent_clicks, summary.resume_click) == (0, 0)
    assert "\n" not in str(info.value)


@pytest.fixture(scope="module")
def own_kafka(local_settings: Settings, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Settings]:
    """A single KRaft broker of this module's own on ports 19092/19093, stopped at the end
    (each test stops it mid-send and starts it again before it returns)."""
    work_dir = tmp_path_factory.mktemp("own-kafka")
    settings = local_settings.replace(kafka_port=OWN_KAFKA_PORT, kafka_controller_port=OWN_CONTROLLER_PORT,
                                      kafka_bootstrap_servers="", work_dir=str(work_dir),
                                      kafka_delivery_timeout_ms=8_000, kafka_max_block_ms=5_000)
    services.up(settings, ["kafka"], log=lambda _line: None)
    try:
        yield settings
    finally:
        services.down(settings, ["kafka"], log=lambda _line: None)


def _topic_click_ids(settings: Settings, topic: str, partitions: int) -> list[int]:
    from kafka import KafkaConsumer, TopicPartition

    consumer = KafkaConsumer(bootstrap_servers=settings.kafka_bootstrap, enable_auto_commit=False,
                             group_id=None, consumer_timeout_ms=5_000)
    try:
        tps = [TopicPartition(topic, p) for p in range(partitions)]
        consumer.assign(tps)
        consumer.seek_to_beginning(*tps)
        want = sum(consumer.end_offsets(tps).values())
        ids: list[int] = []
        deadline = time.monotonic() + 60
        while len(ids) < want and time.monotonic() < deadline:
            for batch in consumer.poll(timeout_ms=1_000).values():
                ids.extend(c.click_id for r in batch for c in decode_record(r.value))
        assert len(ids) == want
        return ids
    finally:
        consumer.close()


@pytest.mark.integration
@pytest.mark.parametrize("client", CLIENTS)
def test_broker_stopped_mid_send_gives_an_exact_report(own_kafka: Settings, unique_name: str,
                                                       client: str) -> None:
    settings = own_kafka.replace(kafka_producer_client=client)
    topic = f"down-{unique_name}"
    ensure_topics(settings, [topic], 2)
    clicks = _clicks(40_000)
    stopper = threading.Timer(3.0, services.down, (settings, ["kafka"]), {"log": lambda _line: None})
    stopper.start()
    t0 = time.monotonic()
    try:
        with pytest.raises(SendError, match="replay stopped, a record was not acknowledged") as info:
            send_to_kafka(clicks, settings, topic=topic, rate_per_s=4_000, progress=False, create_topic=False)
    finally:
        stopper.join()
    took_s = time.monotonic() - t0
    summary = info.value.summary
    message = str(info.value)
    assert "\n" not in message and f"a replay resumes at click #{summary.resume_click:,}" in message
    # bounded: the delivery timeout (8 s) after the stop, not the whole 10 s replay plus minutes
    assert took_s < 3 + 8 + 30, took_s
    assert 0 < summary.sent_clicks < len(clicks)
    assert summary.resume_click is not None and 0 < summary.resume_click <= summary.sent_clicks
    assert summary.sent_clicks == summary.sent_records  # one click per record
    assert summary.acked_after_resume_clicks == summary.sent_clicks - summary.resume_click

    services.up(settings, ["kafka"], log=lambda _line: None)  # same data dir: the log is kept
    in_topic = _topic_click_ids(settings, topic, 2)
    assert len(in_topic) == len(set(in_topic))  # idempotent producer: no duplicates
    assert {c.click_id for c in clicks[:summary.resume_click]} <= set(in_topic)  # the prefix is there
    assert len(in_topic) >= summary.sent_clicks  # every acknowledged click is there
    assert set(in_topic) <= {c.click_id for c in clicks}
