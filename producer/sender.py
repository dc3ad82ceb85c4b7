"""Send a click stream to Kafka (kafka-python) or to an in-process ``MemoryTopic``.

Both sinks share one record builder, so the embedded default sees exactly what Kafka
sees: key = destination title (``clickstream.events.record_key``), value = one click
(``encode_click``) or, with ``clicks_per_record=K > 1``, a batch of up to K clicks of ONE
destination (``encode_batch``). A batch is closed when it holds K clicks or before a
click more than ``batch_wait_ms`` of event time newer than its first click is passed on,
so a record spans at most ``batch_wait_ms`` (plus the stream's jitter) of event time and
batching delays a click by at most that much.

Kafka delivery: ``acks='all'``, idempotent producer, unlimited retries within
``delivery_timeout_ms``, lz4, ``linger_ms=20`` and 1 MiB batches (the measured best for
kafka-python here). Blocking: ``send_to_kafka`` blocks until every record is acknowledged
or has failed (``flush``). A record that still fails after the client's retries is
counted in ``SendSummary.failed_*`` and its error is logged and kept in
``SendSummary.errors`` (first few); nothing is dropped silently. A send that cannot even
be queued (buffer full for ``max_block_ms``) is retried ``QUEUE_RETRIES`` times, then
counted the same way. Not idempotent across calls: sending the same clicks twice gives
duplicates, which consumers detect by ``click_id``.

Pacing: ``rate_per_s`` caps clicks per second of wall time; ``speedup`` maps event time
to wall time (``speedup=60``: one event-minute per wall-second); with both, the slower
wins. Progress: a one-line bar on stderr when it is a terminal, otherwise a log line
every ``LOG_EVERY_S`` seconds.
"""

from __future__ import annotations

import logging
import sys
import time
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from typing import Any, TextIO

from clickstream.events import Click, encode_batch, encode_click, record_key
from clickstream.memory_topic import MemoryTopic
from clickstream.settings import Settings

log = logging.getLogger(__name__)

QUEUE_RETRIES = 3
LOG_EVERY_S = 10.0
MAX_OPEN_BATCHES = 100_000
MAX_ERROR_SAMPLES = 20

PRODUCER_CONFIG: dict[str, Any] = {
    "acks": "all",
    "enable_idempotence": True,
    "retries": 2**31 - 1,
    "delivery_timeout_ms": 120_000,
    "max_in_flight_requests_per_connection": 5,
    "compression_type": "lz4",
    "linger_ms": 20,
    "batch_size": 1 << 20,
    "max_request_size": 4 << 20,
}


@dataclass
class SendSummary:
    """What a send did: clicks and records acknowledged / failed, payload bytes, time."""

    sent_clicks: int = 0
    sent_records: int = 0
    failed_clicks: int = 0
    failed_records: int = 0
    bytes: int = 0
    elapsed_s: float = 0.0
    sending_s: float = 0.0  # from the first record handed over to the end (excludes pass 1)
    errors: list[str] = field(default_factory=list)

    @property
    def clicks_per_s(self) -> float:
        return self.sent_clicks / self.elapsed_s if self.elapsed_s > 0 else 0.0

    def line(self) -> str:
        return (f"sent {self.sent_clicks:,} clicks in {self.sent_records:,} records "
                f"({self.bytes / 1e6:,.1f} MB) in {self.elapsed_s:,.1f} s "
                f"= {self.clicks_per_s:,.0f} clicks/s; failed {self.failed_clicks:,} clicks "
                f"in {self.failed_records:,} records")

    def _error(self, message: str) -> None:
        if len(self.errors) < MAX_ERROR_SAMPLES:
            self.errors.append(message)


def records(clicks: Iterable[Click], clicks_per_record: int = 1,
            batch_wait_ms: int = 1000) -> Iterator[tuple[bytes, bytes, int, int]]:
    """(key, value, clicks in the record, event time of its first click) per record."""
    if clicks_per_record < 1:
        raise ValueError(f"clicks_per_record {clicks_per_record} must be >= 1")
    if clicks_per_record == 1:
        for c in clicks:
            yield c.curr.encode("utf-8"), encode_click(c), 1, c.ts_ms
        return
    open_batches: dict[str, list[Click]] = {}  # insertion order = order of first click
    deadline = None  # event time at which the oldest open batch must close
    for c in clicks:
        if deadline is not None and (c.ts_ms > deadline or len(open_batches) >= MAX_OPEN_BATCHES):
            while open_batches:
                curr, oldest = next(iter(open_batches.items()))
                if oldest[0].ts_ms + batch_wait_ms >= c.ts_ms and len(open_batches) < MAX_OPEN_BATCHES:
                    break
                del open_batches[curr]
                yield record_key(oldest[0]), encode_batch(oldest), len(oldest), oldest[0].ts_ms
            deadline = (next(iter(open_batches.values()))[0].ts_ms + batch_wait_ms
                        if open_batches else None)
        batch = open_batches.get(c.curr)
        if batch is None:
            open_batches[c.curr] = batch = []
            if deadline is None:
                deadline = c.ts_ms + batch_wait_ms
        batch.append(c)
        if len(batch) >= clicks_per_record:
            del open_batches[c.curr]
            yield record_key(c), encode_batch(batch), len(batch), batch[0].ts_ms
    for batch in open_batches.values():
        yield record_key(batch[0]), encode_batch(batch), len(batch), batch[0].ts_ms


class Pacer:
    """Sleeps so that clicks go out at ``rate_per_s`` and/or ``speedup`` x event time."""

    def __init__(self, rate_per_s: float | None, speedup: float | None) -> None:
        if rate_per_s is not None and rate_per_s <= 0:
            raise ValueError(f"rate_per_s {rate_per_s} must be > 0")
        if speedup is not None and speedup <= 0:
            raise ValueError(f"speedup {speedup} must be > 0")
        self.rate_per_s = rate_per_s
        self.speedup = speedup
        self.active = rate_per_s is not None or speedup is not None
        self.t0: float | None = None
        self.ts0: int | None = None

    def wait(self, clicks_done: int, ts_ms: int) -> None:
        """Block until the next record, whose first click is at ``ts_ms``, may go out.

        The clock starts at the first call (the first record), not at construction.
        """
        if self.t0 is None:
            self.t0 = time.perf_counter()
        due = 0.0
        if self.rate_per_s is not None:
            due = clicks_done / self.rate_per_s
        if self.speedup is not None:
            if self.ts0 is None:
                self.ts0 = ts_ms
            due = max(due, (ts_ms - self.ts0) / 1000.0 / self.speedup)
        ahead = due - (time.perf_counter() - self.t0)
        if ahead > 0.001:
            time.sleep(ahead)


class Progress:
    """A bar on a terminal (rate, sent, ETA), periodic log lines otherwise, or nothing."""

    def __init__(self, mode: bool | str = "auto", total: int | None = None,
                 stream: TextIO | None = None, label: str = "produce") -> None:
        self.stream = stream if stream is not None else sys.stderr
        tty = bool(getattr(self.stream, "isatty", lambda: False)())
        self.mode = ("bar" if tty else "log") if mode == "auto" else ("bar" if mode is True else
                                                                      "off" if not mode else str(mode))
        self.total = total
        self.label = label
        self.t0 = time.perf_counter()
        self.next_at = self.t0 + (0.2 if self.mode == "bar" else LOG_EVERY_S)

    def update(self, sent: int, failed: int) -> None:
        now = time.perf_counter()
        if self.mode == "off" or now < self.next_at:
            return
        self.next_at = now + (0.2 if self.mode == "bar" else LOG_EVERY_S)
        text = self._text(sent, failed, now)
        if self.mode == "bar":
            self.stream.write("\r" + text + "   ")
            self.stream.flush()
        else:
            log.info("%s", text)

    def _text(self, sent: int, failed: int, now: float) -> str:
        elapsed = max(now - self.t0, 1e-9)
        rate = sent / elapsed
        text = f"{self.label}: {sent:,} clicks, {rate:,.0f} clicks/s, {elapsed:,.0f} s"
        if self.total:
            pct = min(100.0, 100.0 * sent / self.total)
            width = 24
            fill = int(width * pct / 100)
            eta = (self.total - sent) / rate if rate > 0 else float("inf")
            eta_text = "?" if eta == float("inf") else time.strftime("%H:%M:%S", time.gmtime(eta))
            text = f"[{'#' * fill}{'.' * (width - fill)}] {pct:5.1f}% " + text + f", ETA {eta_text}"
        if failed:
            text += f", {failed:,} failed"
        return text

    def close(self, sent: int, failed: int) -> None:
        if self.mode == "bar":
            self.stream.write("\r" + self._text(sent, failed, time.perf_counter()) + "\n")
            self.stream.flush()


def ensure_topic(settings: Settings, topic: str, partitions: int | None = None) -> bool:
    """Create ``topic`` with ``partitions`` (default ``settings.topic_partitions``) if missing.

    Idempotent; returns True if it created the topic. An existing topic is left as it is.
    """
    from kafka.admin import KafkaAdminClient, NewTopic
    from kafka.errors import TopicAlreadyExistsError

    partitions = settings.topic_partitions if partitions is None else partitions
    admin = KafkaAdminClient(bootstrap_servers=_bootstrap(settings), client_id="clickstream-producer-admin")
    try:
        if topic in set(admin.list_topics()):
            return False
        try:
            admin.create_topics([NewTopic(topic, num_partitions=partitions, replication_factor=1)])
        except TopicAlreadyExistsError:
            return False
        return True
    finally:
        admin.close()


def _bootstrap(settings: Settings) -> list[str]:
    bootstrap = settings.kafka_bootstrap
    if not bootstrap:
        raise ValueError("no Kafka bootstrap servers: set --kafka-bootstrap-servers or --stack local")
    return bootstrap.split(",")


def make_producer(settings: Settings, **overrides: Any) -> Any:
    """A KafkaProducer with ``PRODUCER_CONFIG`` (``overrides`` win)."""
    from kafka import KafkaProducer

    return KafkaProducer(bootstrap_servers=_bootstrap(settings), client_id="clickstream-producer",
                         **{**PRODUCER_CONFIG, **overrides})


def send_to_kafka(clicks: Iterable[Click], settings: Settings, *, topic: str | None = None,
                  rate_per_s: float | None = None, speedup: float | None = None,
                  clicks_per_record: int = 1, progress: bool | str = "auto",
                  total: int | None = None, batch_wait_ms: int = 1000,
                  create_topic: bool = True, producer: Any = None) -> SendSummary:
    """Send every click to ``topic`` (default ``settings.topic``); blocks until all are
    acknowledged or failed. Creates the topic (``settings.topic_partitions``) if missing."""
    from kafka.errors import KafkaError, KafkaTimeoutError

    topic = topic or settings.topic
    if create_topic:
        ensure_topic(settings, topic, settings.topic_partitions)
    own = producer is None
    producer = make_producer(settings) if own else producer
    summary = SendSummary()
    pacer = Pacer(rate_per_s, speedup)
    bar = Progress(progress, total)
    t0 = time.perf_counter()

    def failed(exc: BaseException, n: int) -> None:
        summary.failed_records += 1
        summary.failed_clicks += n
        message = f"record of {n} click(s) to {topic} failed: {exc!r}"
        if summary.failed_records <= MAX_ERROR_SAMPLES:
            log.error("%s", message)
        summary._error(message)

    def failed_one(exc: BaseException) -> None:
        failed(exc, 1)

    send = producer.send
    sent_records = sent_clicks = 0
    t_first: float | None = None
    try:
        for key, value, n, ts_ms in records(clicks, clicks_per_record, batch_wait_ms):
            if t_first is None:
                t_first = time.perf_counter()
            if pacer.active:
                pacer.wait(sent_clicks, ts_ms)
            for attempt in range(QUEUE_RETRIES + 1):
                try:
                    future = send(topic, key=key, value=value)
                    break
                except KafkaTimeoutError as exc:
                    if attempt == QUEUE_RETRIES:
                        failed(exc, n)
                        future = None
            if future is not None:
                if n == 1:  # no functools.partial in the common case (once per record)
                    future.add_errback(failed_one)
                else:
                    future.add_errback(failed, n)
                sent_records += 1
                sent_clicks += n
                summary.bytes += len(key) + len(value)
            if sent_records & 1023 == 0:
                bar.update(sent_clicks - summary.failed_clicks, summary.failed_clicks)
        producer.flush()
    except KafkaError as exc:
        raise RuntimeError(f"Kafka producer to {topic} stopped: {exc}") from exc
    finally:
        if own:
            producer.close()
    summary.sent_records = sent_records - summary.failed_records
    summary.sent_clicks = sent_clicks - summary.failed_clicks
    t_end = time.perf_counter()
    summary.elapsed_s = t_end - t0
    summary.sending_s = t_end - (t0 if t_first is None else t_first)
    bar.close(summary.sent_clicks, summary.failed_clicks)
    return summary


def send_to_memory(clicks: Iterable[Click], memory_topic: MemoryTopic, *, clicks_per_record: int = 1,
                   rate_per_s: float | None = None, speedup: float | None = None,
                   progress: bool | str = False, total: int | None = None,
                   batch_wait_ms: int = 1000, close: bool = True) -> SendSummary:
    """Append every click to ``memory_topic`` with the Kafka encoding and keys; blocks until
    done, then closes the topic (end of stream) unless ``close=False``."""
    summary = SendSummary()
    pacer = Pacer(rate_per_s, speedup)
    bar = Progress(progress, total, label=f"produce to memory topic {memory_topic.name}")
    t0 = time.perf_counter()
    t_first: float | None = None
    try:
        for key, value, n, ts_ms in records(clicks, clicks_per_record, batch_wait_ms):
            if t_first is None:
                t_first = time.perf_counter()
            if pacer.active:
                pacer.wait(summary.sent_clicks, ts_ms)
            memory_topic.append(key, value)
            summary.sent_records += 1
            summary.sent_clicks += n
            summary.bytes += len(key) + len(value)
            if summary.sent_records & 1023 == 0:
                bar.update(summary.sent_clicks, 0)
    finally:
        if close:
            memory_topic.close()
    t_end = time.perf_counter()
    summary.elapsed_s = t_end - t0
    summary.sending_s = t_end - (t0 if t_first is None else t_first)
    bar.close(summary.sent_clicks, 0)
    return summary
