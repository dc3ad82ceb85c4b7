"""Send a click stream to Kafka (kafka-python, or confluent-kafka by
``settings.kafka_producer_client``: ``producer.confluent``) or to an in-process ``MemoryTopic``.

Both sinks share one record builder (``producer.encoding.build_records``), so the
embedded default sees exactly what Kafka sees: key = destination title
(``clickstream.events.record_key``), value = one click (``encode_click``'s bytes) or,
with ``clicks_per_record=K > 1``, a batch of up to K clicks of ONE destination
(``encode_batch``'s bytes) whose event times share one ``batch_wait_ms`` cell, so a
record spans less than ``batch_wait_ms`` of event time and batching delays a click by
at most that much (plus the stream's jitter). Records are built per chunk of clicks as
columns; ``expand_clicks``' result is taken chunk by chunk, any other click iterable is
chunked first.

Kafka delivery: ``acks='all'`` (the topic's ``min.insync.replicas`` replicas must have a
record), idempotent producer, retries within ``settings.kafka_delivery_timeout_ms``,
lz4, ``linger_ms=20``, 1 MiB batches, plus ``settings.kafka_client_options``. The
clicks topic and the dead-letter topic are created if missing
(``clickstream.topics.ensure_topics``). Each record goes to the partition Kafka's default
partitioner would pick (murmur2 of the key, computed once per destination and chunk).

Exactness: the records handed to the client are tracked in order, in slices (their
futures are kept until the slice is settled; at most ``MAX_PENDING_RECORDS`` records or
``MAX_PENDING_BYTES`` bytes unsettled, then the oldest slice is waited for: bounded
memory even when the broker is away). ``send_to_kafka`` blocks until every record is
acknowledged, or raises ``SendError`` at the first record that is not (after the
client's retries for ``kafka_delivery_timeout_ms``, or no metadata within
``kafka_max_block_ms``): it stops handing over records, waits for those in flight, and
its ``summary`` says exactly what was acknowledged and where a replay resumes
(``resume_click``: every click before it, in emission order, is acknowledged; the
``acked_after_resume_clicks`` after it that were acknowledged too would be sent again,
detectable by ``click_id``). Not idempotent across calls.

Pacing: ``rate_per_s`` caps clicks per second of wall time; ``speedup`` maps event time
to wall time (``speedup=60``: one event-minute per wall-second); with both, the slower
wins. Progress: a one-line bar on stderr when it is a terminal, otherwise a log line
every ``LOG_EVERY_S`` seconds.
"""

from __future__ import annotations

import contextlib
import logging
import sys
import time
from collections import deque
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from itertools import repeat
from operator import attrgetter
from typing import Any, TextIO

import numpy as np

from clickstream.events import Click
from clickstream.memory_topic import MemoryTopic
from clickstream.settings import Settings
from clickstream.topics import bootstrap_servers, client_config, ensure_topics
from producer.encoding import Records, build_records, chunks_of, murmur2_partitions

log = logging.getLogger(__name__)

LOG_EVERY_S = 10.0
MAX_ERROR_SAMPLES = 20
EARLY_S = 0.001  # pacing: a record may go out this much before it is due (no sleep that short)
SLICE_RECORDS = 8_192
MAX_PENDING_RECORDS = 1 << 17
MAX_PENDING_BYTES = 64 << 20

PRODUCER_CONFIG: dict[str, Any] = {
    "acks": "all",
    "enable_idempotence": True,
    "max_in_flight_requests_per_connection": 5,
    "compression_type": "lz4",
    "linger_ms": 20,
    "batch_size": 1 << 20,
    "max_request_size": 4 << 20,
}


@dataclass
class SendSummary:
    """What a send did: clicks and records acknowledged / not acknowledged, where a replay
    resumes, payload bytes, time."""

    sent_clicks: int = 0
    sent_records: int = 0
    failed_clicks: int = 0
    failed_records: int = 0
    bytes: int = 0
    elapsed_s: float = 0.0
    sending_s: float = 0.0  # from the first record handed over to the end (excludes pass 1)
    resume_click: int | None = None  # None: everything was acknowledged
    acked_after_resume_clicks: int = 0
    errors: list[str] = field(default_factory=list)

    @property
    def clicks_per_s(self) -> float:
        return self.sent_clicks / self.elapsed_s if self.elapsed_s > 0 else 0.0

    def line(self) -> str:
        text = (f"sent {self.sent_clicks:,} clicks in {self.sent_records:,} records "
                f"({self.bytes / 1e6:,.1f} MB) in {self.elapsed_s:,.1f} s "
                f"= {self.clicks_per_s:,.0f} clicks/s; failed {self.failed_clicks:,} clicks "
                f"in {self.failed_records:,} records")
        if self.resume_click is not None:
            text += (f"; a replay resumes at click #{self.resume_click:,} (every click before it "
                     f"acknowledged; {self.acked_after_resume_clicks:,} after it acknowledged too, "
                     "duplicates on replay, detectable by click_id)")
        return text

    def _error(self, message: str) -> None:
        if len(self.errors) < MAX_ERROR_SAMPLES:
            self.errors.append(message)


class SendError(RuntimeError):
    """The replay stopped because a record was not acknowledged; ``summary`` is exact."""

    def __init__(self, message: str, summary: SendSummary) -> None:
        super().__init__(message)
        self.summary = summary


def records(clicks: Iterable[Click], clicks_per_record: int = 1,
            batch_wait_ms: int = 1000) -> Iterator[tuple[bytes, bytes, int, int]]:
    """(key, value, clicks in the record, event time of its first click) per record."""
    if clicks_per_record < 1:
        raise ValueError(f"clicks_per_record {clicks_per_record} must be >= 1")
    for chunk in chunks_of(clicks):
        recs = build_records(chunk, clicks_per_record, batch_wait_ms)
        yield from zip(recs.keys, recs.values, recs.clicks.tolist(), recs.first_ts.tolist(), strict=True)


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
        if ahead > EARLY_S:
            time.sleep(ahead)

    def wait_for_burst(self, clicks_before: np.ndarray, latest_ts_ms: np.ndarray) -> int:
        """Block until the first of these records may go out (as ``wait``), then say how
        many of them, from the first, may go out now (at least 1; those due within
        ``EARLY_S``, as ``wait`` lets a record go that early): one clock read per burst
        instead of one per record.

        ``clicks_before[i]``: the clicks handed over before record i (nondecreasing);
        ``latest_ts_ms[i]``: the latest first-click event time of records 0..i (nondecreasing:
        a record never goes out before the ones ahead of it, ``np.maximum.accumulate``)."""
        self.wait(int(clicks_before[0]), int(latest_ts_ms[0]))
        assert self.t0 is not None
        elapsed_s = time.perf_counter() - self.t0 + EARLY_S
        n = len(clicks_before)
        if self.rate_per_s is not None:
            n = min(n, int(np.searchsorted(clicks_before, elapsed_s * self.rate_per_s, side="right")))
        if self.speedup is not None:
            assert self.ts0 is not None
            due_ts_ms = self.ts0 + elapsed_s * 1000.0 * self.speedup
            n = min(n, int(np.searchsorted(latest_ts_ms, due_ts_ms, side="right")))
        return max(n, 1)


class Progress:
    """A bar on a terminal (rate, sent, ETA when ``total`` is known), periodic log lines
    otherwise, or nothing. Its ``sent``, ``failed`` and ``done`` are the latest counts (read
    by ``clickstream produce``'s metrics endpoint from another thread)."""

    def __init__(self, mode: bool | str = "auto", total: int | None = None,
                 stream: TextIO | None = None, label: str = "produce") -> None:
        self.stream = stream if stream is not None else sys.stderr
        tty = bool(getattr(self.stream, "isatty", lambda: False)())
        self.mode = ("bar" if tty else "log") if mode == "auto" else ("bar" if mode is True else
                                                                      "off" if not mode else str(mode))
        self.total = total
        self.label = label
        self.sent = 0
        self.failed = 0
        self.done = False
        self.t0 = time.perf_counter()
        self.next_at = self.t0 + (0.2 if self.mode == "bar" else LOG_EVERY_S)

    @classmethod
    def of(cls, progress: bool | str | Progress, total: int | None, label: str = "produce") -> Progress:
        """``progress`` itself if it is a ``Progress`` (its total filled in if unset), else a new one."""
        if isinstance(progress, Progress):
            if progress.total is None:
                progress.total = total
            return progress
        return cls(progress, total, label=label)

    def elapsed_s(self) -> float:
        return time.perf_counter() - self.t0

    def update(self, sent: int, failed: int) -> None:
        self.sent, self.failed = sent, failed
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
            eta_text = "?" if eta == float("inf") else time.strftime("%H:%M:%S", time.gmtime(max(eta, 0)))
            text = (f"[{'#' * fill}{'.' * (width - fill)}] {pct:5.1f}% {self.label}: {sent:,} of "
                    f"{self.total:,} clicks, {rate:,.0f} clicks/s, {elapsed:,.0f} s, ETA {eta_text}")
        if failed:
            text += f", {failed:,} failed"
        return text

    def close(self, sent: int, failed: int) -> None:
        self.sent, self.failed, self.done = sent, failed, True
        if self.mode == "bar":
            self.stream.write("\r" + self._text(sent, failed, time.perf_counter()) + "\n")
            self.stream.flush()


def ensure_topic(settings: Settings, topic: str, partitions: int | None = None) -> None:
    """``clickstream.topics.ensure_topics`` for one topic (``partitions`` default
    ``settings.topic_partitions``); kept for existing callers."""
    ensure_topics(settings, [topic], settings.topic_partitions if partitions is None else partitions)


def make_producer(settings: Settings, **overrides: Any) -> Any:
    """The producer of ``settings.kafka_producer_client``: a KafkaProducer with
    ``PRODUCER_CONFIG``, the settings' timeouts and client options (``overrides`` win), or
    ``producer.confluent.ConfluentProducer`` (the same delivery settings; no overrides)."""
    if settings.kafka_producer_client == "confluent-kafka":
        from producer.confluent import ConfluentProducer

        if overrides:
            raise ValueError(f"make_producer: overrides {sorted(overrides)} are kafka-python options")
        return ConfluentProducer(settings)
    from kafka import KafkaProducer

    config = {**PRODUCER_CONFIG, "delivery_timeout_ms": settings.kafka_delivery_timeout_ms,
              "request_timeout_ms": min(30_000, settings.kafka_delivery_timeout_ms // 2),
              "max_block_ms": settings.kafka_max_block_ms,
              "bootstrap_timeout_ms": settings.kafka_max_block_ms,
              **client_config(settings, KafkaProducer), **overrides}
    return KafkaProducer(bootstrap_servers=bootstrap_servers(settings), client_id="clickstream-producer",
                         **config)


_is_done = attrgetter("is_done")
_exception = attrgetter("exception")


class _Ledger:
    """The records handed to the client, in emission order, settled slice by slice (see
    the module docstring): counts what was acknowledged and the first click that was not."""

    def __init__(self, summary: SendSummary, wait_s: float) -> None:
        self.summary = summary
        self.wait_s = wait_s
        self.pending: deque[tuple[int, np.ndarray, list[Any], int]] = deque()
        self.pending_records = 0
        self.pending_bytes = 0
        self.handed_clicks = 0
        self.first_error: BaseException | None = None

    def add(self, clicks: np.ndarray, futures: list[Any], nbytes: int) -> None:
        self.pending.append((self.handed_clicks, clicks, futures, nbytes))
        self.handed_clicks += int(clicks.sum())
        self.pending_records += len(futures)
        self.pending_bytes += nbytes
        self.summary.bytes += nbytes
        while self.pending and (self.pending_records > MAX_PENDING_RECORDS
                                or self.pending_bytes > MAX_PENDING_BYTES
                                or all(map(_is_done, self.pending[0][2]))):
            self._settle_oldest(time.monotonic() + self.wait_s)  # waits only when the window is full
        if self.first_error is None and self.pending:
            # A failure stops the replay early, before its slice is settled.
            self.first_error = next(filter(None, map(_exception, self.pending[0][2])), None)

    def settle_all(self) -> None:
        """Settle everything handed over, waiting at most ``wait_s`` in all (after a flush,
        what has not answered by then is counted as not acknowledged)."""
        deadline = time.monotonic() + self.wait_s
        while self.pending:
            self._settle_oldest(deadline)

    def _settle_oldest(self, deadline: float) -> None:
        first_click, clicks, futures, nbytes = self.pending.popleft()
        self.pending_records -= len(futures)
        self.pending_bytes -= nbytes
        if not all(map(_is_done, futures)):
            for f in futures:
                left = deadline - time.monotonic()
                if not f.is_done and left > 0:
                    with contextlib.suppress(Exception):  # read back below, record by record
                        f.get(left)
        summary = self.summary
        if all(map(_is_done, futures)) and not any(map(_exception, futures)):
            summary.sent_records += len(futures)
            summary.sent_clicks += int(clicks.sum())
            return
        bad = np.array([i for i, f in enumerate(futures) if not f.is_done or f.exception is not None],
                       np.intp)
        bad_clicks = int(clicks[bad].sum())
        summary.failed_records += len(bad)
        summary.failed_clicks += bad_clicks
        summary.sent_records += len(futures) - len(bad)
        summary.sent_clicks += int(clicks.sum()) - bad_clicks
        self.stop_at(first_click + int(clicks[:bad[0]].sum()))
        for i in bad[:MAX_ERROR_SAMPLES].tolist():
            f = futures[i]
            exc = f.exception if f.is_done else TimeoutError("no answer from the broker in time")
            if self.first_error is None:
                self.first_error = exc
            summary._error(f"record #{i} of the slice starting at click #{first_click:,} "
                           f"({int(clicks[i])} click(s)) not acknowledged: {exc!r}")

    def stop_at(self, click_index: int) -> None:
        """No click at or after ``click_index`` counts as part of the acknowledged prefix."""
        summary = self.summary
        if summary.resume_click is None or click_index < summary.resume_click:
            summary.resume_click = click_index

    def finish(self) -> None:
        summary = self.summary
        if summary.resume_click is not None:
            summary.acked_after_resume_clicks = summary.sent_clicks - summary.resume_click


def send_to_kafka(clicks: Iterable[Click], settings: Settings, *, topic: str | None = None,
                  rate_per_s: float | None = None, speedup: float | None = None,
                  clicks_per_record: int = 1, progress: bool | str | Progress = "auto",
                  total: int | None = None, batch_wait_ms: int = 1000,
                  create_topic: bool = True, producer: Any = None) -> SendSummary:
    """Send every click to ``topic`` (default ``settings.topic``); blocks until all are
    acknowledged, else raises ``SendError`` with the exact ``summary`` (module docstring).
    Creates the topic and ``settings.dead_letter_topic`` if missing (``create_topic``)."""
    from kafka.errors import KafkaError

    topic = topic or settings.topic
    if create_topic:
        ensure_topics(settings, [topic, settings.dead_letter_topic], settings.topic_partitions)
    summary = SendSummary()
    wait_s = settings.kafka_delivery_timeout_ms / 1000 + 10
    ledger = _Ledger(summary, wait_s)
    pacer = Pacer(rate_per_s, speedup)
    bar = Progress.of(progress, total)
    where = f"Kafka at {settings.kafka_bootstrap}, topic {topic}"
    t0 = time.perf_counter()
    t_first: float | None = None
    stopped: BaseException | None = None
    own = producer is None
    try:
        try:
            producer = make_producer(settings) if own else producer
            partitions = np.array(sorted(producer.partitions_for(topic)), np.int64)
        except KafkaError as exc:
            ledger.stop_at(0)
            raise SendError(f"{where}: nothing sent, the broker is unreachable or the topic "
                            f"has no metadata: {exc!r}", summary) from None
        send = producer.send
        for chunk in chunks_of(clicks):
            recs = build_records(chunk, clicks_per_record, batch_wait_ms)
            if t_first is None:
                t_first = time.perf_counter()
            part = partitions[murmur2_partitions(recs.unique_keys, len(partitions))][recs.key_index].tolist()
            stopped = _hand_over(recs, part, topic, send, pacer, ledger, bar)
            if stopped is not None or ledger.first_error is not None:
                break
        with contextlib.suppress(KafkaError):  # what did not make it shows in the futures
            producer.flush(timeout=wait_s)
        ledger.wait_s = 1.0  # flushed: what has not answered now is not acknowledged
        ledger.settle_all()
    finally:
        if own and producer is not None:
            _close(producer)
    if stopped is not None:
        ledger.stop_at(ledger.handed_clicks)
    ledger.finish()
    t_end = time.perf_counter()
    summary.elapsed_s = t_end - t0
    summary.sending_s = t_end - (t0 if t_first is None else t_first)
    bar.close(summary.sent_clicks, summary.failed_clicks)
    cause = ledger.first_error or stopped
    if cause is not None or summary.resume_click is not None:
        raise SendError(f"{where}: replay stopped, a record was not acknowledged ({cause!r}); "
                        f"{summary.line()}", summary)
    return summary


def _close(producer: Any) -> None:
    from kafka.errors import KafkaError

    try:
        producer.close(timeout=5)
    except KafkaError:
        # kafka-python 3.0.12's close() raises while batches are incomplete (broker away)
        # before it force-closes its I/O thread: take that step ourselves.
        sender = getattr(producer, "_sender", None)
        if sender is not None and sender.is_alive():
            sender.force_close()


def _hand_over(recs: Records, partition: list[int], topic: str, send: Any, pacer: Pacer,
               ledger: _Ledger, bar: Progress) -> BaseException | None:
    """Hand one chunk's records to the client slice by slice; the error that stopped it."""
    from kafka.errors import KafkaError

    counts = recs.clicks
    for lo in range(0, len(recs), SLICE_RECORDS):
        hi = min(lo + SLICE_RECORDS, len(recs))
        values, keys = recs.values[lo:hi], recs.keys[lo:hi]
        futures: list[Any] = []
        stopped: BaseException | None = None
        try:
            if pacer.active:  # in bursts of the records due when the clock is read
                clicks_before = ledger.handed_clicks + np.cumsum(counts[lo:hi]) - counts[lo:hi]
                latest_ts_ms = np.maximum.accumulate(recs.first_ts[lo:hi])
                i = 0
                while i < hi - lo:
                    k = i + pacer.wait_for_burst(clicks_before[i:], latest_ts_ms[i:])
                    futures.extend(map(send, repeat(topic), values[i:k], keys[i:k], repeat(None),
                                       partition[lo + i:lo + k]))
                    i = k
            else:  # no Python-level step per record on our side
                futures.extend(map(send, repeat(topic), values, keys, repeat(None), partition[lo:hi]))
        except KafkaError as exc:
            stopped = exc
        handed = len(futures)
        ledger.add(counts[lo:lo + handed], futures,
                   sum(map(len, values[:handed])) + sum(map(len, keys[:handed])))
        bar.update(ledger.handed_clicks, ledger.summary.failed_clicks)
        if stopped is not None or ledger.first_error is not None:
            return stopped
    return None


def send_to_memory(clicks: Iterable[Click], memory_topic: MemoryTopic, *, clicks_per_record: int = 1,
                   rate_per_s: float | None = None, speedup: float | None = None,
                   progress: bool | str | Progress = False, total: int | None = None,
                   batch_wait_ms: int = 1000, close: bool = True) -> SendSummary:
    """Append every click to ``memory_topic`` with the Kafka encoding and keys; blocks until
    done, then closes the topic (end of stream) unless ``close=False``."""
    summary = SendSummary()
    pacer = Pacer(rate_per_s, speedup)
    bar = Progress.of(progress, total, label=f"produce to memory topic {memory_topic.name}")
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
