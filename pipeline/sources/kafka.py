"""Kafka source: the driver plans and commits, Dask workers fetch their own ranges.

The driver's kafka-python consumer joins no group rebalance (``assign()``), reads the
group's committed offsets at start and commits explicit offsets at every checkpoint.
Workers call a picklable fetcher with one cached consumer per worker process: kafka-python
(``KafkaFetcher``, the default: the platform's specification names it) or confluent-kafka
(``pipeline.sources.confluent.ConfluentFetcher``, ``stream_source_client``), which fetched
3.3x faster here (benchmarks/RESULTS-streaming-peers.md, "source").
"""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass

from kafka import KafkaConsumer, TopicPartition
from kafka.structs import OffsetAndMetadata

from pipeline.sources.base import RecordBatch, SourceError
from pipeline.sources.confluent import ConfluentFetcher
from pipeline.sources.kafka_batch import columnar_consumer, kafka_python_fetch_batch
from pipeline.sources.kafka_partition_reader import partition_reader

KAFKA_CLIENTS = ("kafka-python", "confluent-kafka")
# kafka-python's default (305 s) would hide a broker outage; the pipeline retries instead.
# Short: a request sent just before a restarted broker is back fails in this time, and the
# retry (to the broker now up) goes through (15 s held the resume back by ~10 s).
DRIVER_REQUEST_TIMEOUT_MS = 5_000
# How often an idle pipeline asks for the end offsets (one small request to each leader): a
# click appended while it waits is planned at most this much later.
END_OFFSETS_POLL_S = 0.05


def _consumer(bootstrap: str, group: str | None) -> KafkaConsumer:
    return KafkaConsumer(bootstrap_servers=bootstrap, group_id=group, enable_auto_commit=False,
                         auto_offset_reset="earliest", client_id=f"clickstream-pipeline-{group or 'fetch'}",
                         request_timeout_ms=DRIVER_REQUEST_TIMEOUT_MS)


_CACHE: dict[str, KafkaConsumer] = {}
_CACHE_LOCK = threading.Lock()


@dataclass(frozen=True)
class KafkaFetcher:
    """Reads ``[start, end)`` of a partition with kafka-python (one tuned consumer per worker
    process and bootstrap address); blocks until all are read or ``timeout_s``.
    ``pinned``: with the partition's own ``PartitionReader`` instead, left where the range
    ended (when the ranges of a partition follow one another on this worker: a caught-up
    pipeline)."""

    bootstrap: str
    topic: str
    timeout_s: float = 15.0
    pinned: bool = False

    def __call__(self, partition: int, start_offset: int, end_offset: int) -> RecordBatch:
        if self.pinned:
            return partition_reader(self.bootstrap, self.topic, partition).take(start_offset, end_offset,
                                                                                 self.timeout_s)
        with _CACHE_LOCK:
            consumer = _CACHE.get(self.bootstrap)
            if consumer is None:
                consumer = _CACHE[self.bootstrap] = columnar_consumer(self.bootstrap)
            return kafka_python_fetch_batch(consumer, self.topic, partition, start_offset, end_offset,
                                            self.timeout_s)

    def start_reading(self, partition: int, start_offset: int) -> None:
        """With ``pinned``: this worker's reader of the partition is made (connected) and set
        at ``start_offset``, so an idle pipeline's first caught-up range waits for no
        connection. Does not wait for records."""
        if self.pinned:
            partition_reader(self.bootstrap, self.topic, partition).start_at(start_offset)


class KafkaSource:
    """A topic's partitions on a Kafka cluster, read for consumer group ``group``."""

    def __init__(self, bootstrap: str, topic: str, group: str, client: str = "kafka-python") -> None:
        if client not in KAFKA_CLIENTS:
            raise SourceError(f"stream_source_client: {client!r} is not one of {', '.join(KAFKA_CLIENTS)}")
        self.client = client
        self.topic = topic
        self._bootstrap = bootstrap
        self._group = group
        try:
            self._consumer = _consumer(bootstrap, group)
        except Exception as exc:
            raise SourceError(f"Kafka at {bootstrap}: {exc}") from None
        parts = self._consumer.partitions_for_topic(topic)
        if not parts:
            self._consumer.close()
            raise SourceError(f"topic {topic!r} does not exist on Kafka at {bootstrap}")
        self.partitions = tuple(sorted(parts))
        self._tps = [TopicPartition(topic, p) for p in self.partitions]
        self._consumer.assign(self._tps)

    def end_offsets(self) -> dict[int, int]:
        ends = self._consumer.end_offsets(self._tps)
        return {tp.partition: int(o) for tp, o in ends.items()}

    def committed(self) -> dict[int, int]:
        begin = self._consumer.beginning_offsets(self._tps)
        out = {}
        for tp in self._tps:
            done = self._consumer.committed(tp)
            out[tp.partition] = int(done) if done is not None else int(begin[tp])
        return out

    def commit(self, offsets: dict[int, int]) -> None:
        self._consumer.commit({TopicPartition(self.topic, p): OffsetAndMetadata(o, "", -1)
                               for p, o in offsets.items()})

    def fetch(self, partition: int, start_offset: int, end_offset: int) -> RecordBatch:
        return self.fetcher()(partition, start_offset, end_offset)

    def fetcher(self, *, pinned: bool = False) -> KafkaFetcher | ConfluentFetcher:
        """What the workers read with: kafka-python, or confluent-kafka (``client``; librdkafka
        reads ahead on its own threads, so ``pinned`` changes nothing there)."""
        if self.client == "confluent-kafka":
            return ConfluentFetcher(self._bootstrap, self.topic, timeout_s=15.0)
        return KafkaFetcher(self._bootstrap, self.topic, pinned=pinned)

    def wait_for_data(self, offsets: dict[int, int], timeout_s: float) -> bool:
        deadline = time.monotonic() + timeout_s
        while True:
            ends = self.end_offsets()
            if any(ends[p] > o for p, o in offsets.items()):
                return True
            if time.monotonic() >= deadline:
                return False
            time.sleep(min(END_OFFSETS_POLL_S, timeout_s))

    def exhausted(self, offsets: dict[int, int]) -> bool:
        return False  # a Kafka topic never ends; callers stop on idleness or a count

    def close(self) -> None:
        self._consumer.close()
