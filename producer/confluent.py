"""The replay's second Kafka client: confluent-kafka (librdkafka) behind kafka-python's
producer surface, so ``producer.sender`` drives either one unchanged.

Selected by ``settings.kafka_producer_client = "confluent-kafka"`` (the ``confluent``
extra). kafka-python stays the default: the platform's specification names it, and its
send loop tops out near 17k records/s on this machine kind (benchmarks/RESULTS-producer.md),
where librdkafka sends from its own C threads.

What ``producer.sender`` relies on, and how it maps:

- ``send(topic, value, key, headers, partition)`` returns a ``Delivery`` (kafka-python's
  future: ``is_done``, ``exception``, ``get(timeout)``). The sender always names the
  partition (murmur2 of the key, as Kafka's Java client and kafka-python place it), so
  both clients put a record on the same partition.
- Delivery reports arrive only while the client is polled: ``send`` polls without
  waiting every ``POLL_EVERY_RECORDS`` records, ``Delivery.get`` and ``flush`` poll until
  answered.
- A full local queue (``BufferError``) is waited out by polling, up to
  ``kafka_max_block_ms``, then ``KafkaTimeoutError``: kafka-python's ``max_block_ms``.
- Errors come out as kafka-python's ``kafka.errors`` types, the one vocabulary the
  sender and the CLI catch: a record's failure is ``Delivery.exception``
  (``KafkaError`` naming librdkafka's error), no metadata is ``KafkaTimeoutError``.

Delivery settings are ``PRODUCER_CONFIG``'s in librdkafka's names: acks=all, idempotent,
lz4, linger 20 ms, 1 MiB batches, ``delivery.timeout.ms`` from the settings.
``kafka_client_options`` are kafka-python option names, so they are refused here with a
message that says so, rather than silently dropped (a SASL setting dropped would send
in the clear or not at all).
"""

from __future__ import annotations

import time
from functools import partial
from typing import Any

from clickstream.settings import Settings

POLL_S = 0.05
POLL_EVERY_RECORDS = 1_024  # serve delivery reports this often while sending
QUEUE_MAX_RECORDS = 500_000


def producer_config(settings: Settings) -> dict[str, Any]:
    """librdkafka's settings for the replay (see the module docstring)."""
    return {
        "bootstrap.servers": settings.kafka_bootstrap,
        "client.id": "clickstream-producer",
        "acks": "all",
        "enable.idempotence": True,
        "max.in.flight.requests.per.connection": 5,
        "compression.type": "lz4",
        "linger.ms": 20,
        "batch.size": 1 << 20,
        "queue.buffering.max.messages": QUEUE_MAX_RECORDS,
        "delivery.timeout.ms": settings.kafka_delivery_timeout_ms,
        "request.timeout.ms": min(30_000, settings.kafka_delivery_timeout_ms // 2),
    }


class Delivery:
    """One record's outcome, set by librdkafka's delivery report (kafka-python's future)."""

    __slots__ = ("_client", "exception", "is_done")

    def __init__(self, client: Any) -> None:
        self._client = client
        self.is_done = False
        self.exception: BaseException | None = None

    def settle(self, err: Any, _msg: Any) -> None:
        if err is not None:
            from kafka.errors import KafkaError

            self.exception = KafkaError(f"librdkafka: {err.name()}: {err.str()}")
        self.is_done = True

    def get(self, timeout: float | None = None) -> None:
        """Block (polling the client) until answered or ``timeout`` s; raise its error if any."""
        from kafka.errors import KafkaTimeoutError

        deadline = None if timeout is None else time.monotonic() + timeout
        while not self.is_done:
            left = POLL_S if deadline is None else min(POLL_S, deadline - time.monotonic())
            if left <= 0:
                raise KafkaTimeoutError(f"no delivery report within {timeout} s")
            self._client.poll(left)
        if self.exception is not None:
            raise self.exception


class ConfluentProducer:
    """A librdkafka producer with the calls ``producer.sender`` makes of kafka-python's."""

    def __init__(self, settings: Settings) -> None:
        from confluent_kafka import Producer

        if settings.kafka_client_options:
            raise ValueError("kafka_client_options are kafka-python option names; the confluent-kafka "
                             "producer does not take them: use kafka_producer_client=kafka-python")
        self._client = Producer(producer_config(settings))
        self._unpolled = 0
        self._max_block_s = settings.kafka_max_block_ms / 1000
        self._where = f"Kafka at {settings.kafka_bootstrap}"

    def send(self, topic: str, value: bytes, key: bytes | None = None, headers: Any = None,
             partition: int | None = None) -> Delivery:
        """Queue one record; blocks only while librdkafka's queue is full (<= max_block_ms)."""
        delivery = Delivery(self._client)
        at = -1 if partition is None else partition
        try:
            self._client.produce(topic, value, key, at, on_delivery=delivery.settle, headers=headers)
        except BufferError:
            self._wait_for_room(partial(self._client.produce, topic, value, key, at,
                                        on_delivery=delivery.settle, headers=headers))
        self._unpolled += 1
        if self._unpolled >= POLL_EVERY_RECORDS:
            self._unpolled = 0
            self._client.poll(0)
        return delivery

    def _wait_for_room(self, produce: Any) -> None:
        from kafka.errors import KafkaTimeoutError

        deadline = time.monotonic() + self._max_block_s
        while True:
            self._client.poll(POLL_S)
            try:
                produce()
                return
            except BufferError:
                if time.monotonic() > deadline:
                    raise KafkaTimeoutError(f"{self._where}: the send queue stayed full for "
                                            f"{self._max_block_s:.0f} s (max_block_ms)") from None

    def partitions_for(self, topic: str) -> set[int]:
        """The topic's partition ids; ``KafkaTimeoutError`` when no broker answers in max_block_ms."""
        from confluent_kafka import KafkaException
        from kafka.errors import KafkaTimeoutError

        try:
            meta = self._client.list_topics(topic, timeout=self._max_block_s)
        except KafkaException as exc:
            raise KafkaTimeoutError(f"{self._where}: no metadata for topic {topic}: {exc}") from None
        found = meta.topics.get(topic)
        if found is None or found.error is not None or not found.partitions:
            raise KafkaTimeoutError(f"{self._where}: no metadata for topic {topic}: "
                                    f"{found.error if found is not None else 'unknown topic'}")
        return set(found.partitions)

    def flush(self, timeout: float | None = None) -> None:
        """Deliver or fail everything queued, waiting at most ``timeout`` s (all, if None)."""
        self._client.flush(-1 if timeout is None else timeout)

    def close(self, timeout: float | None = None) -> None:
        """librdkafka has no close: flush what is queued (the client is freed when dropped)."""
        self._client.flush(5 if timeout is None else timeout)
