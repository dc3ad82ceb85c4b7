"""Prometheus endpoints of ``clickstream stream`` and ``clickstream produce``.

``--metrics-port N`` (setting ``metrics_port``, 0: off) serves ``http://<address>:N/metrics``
on ``metrics_address`` (default ``bind_address``, loopback) from a daemon thread of
``prometheus_client``. The values are read at scrape time from the running work's public
progress: ``Pipeline.progress()`` / ``Pipeline.status()`` for the stream, the producer's
``producer.sender.Progress`` for a replay. Nothing runs in the pipeline's or the sender's
loop. The names and units are listed in ``pipeline/README.md`` (Metrics) and
``producer/README.md``.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

from prometheus_client import CollectorRegistry, start_http_server
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, InfoMetricFamily, Metric
from prometheus_client.registry import Collector

from clickstream.settings import Settings

STREAM_STATES = ("starting", "running", "idle", "waiting", "stopped")
PRODUCE_STATES = ("sending", "done")


def stream_state(status: str) -> str:
    """One of ``STREAM_STATES`` for ``Pipeline.status()`` (``waiting for kafka: ...`` -> waiting)."""
    word = status.split(" ", 1)[0]
    return word if word in STREAM_STATES else "waiting"


def _states(name: str, doc: str, states: tuple[str, ...], current: str) -> GaugeMetricFamily:
    """A state set as gauges ``name{state=...}`` 1 for the current state, 0 for the others."""
    family = GaugeMetricFamily(name, doc, labels=["state"])
    for state in states:
        family.add_metric([state], 1.0 if state == current else 0.0)
    return family


class StreamCollector(Collector):
    """The pipeline's progress as Prometheus metrics (``progress`` and ``status`` are called
    at each scrape: pass ``pipe.progress`` and ``pipe.status``)."""

    def __init__(self, progress: Callable[[], Any], status: Callable[[], str], source: str) -> None:
        self._progress = progress
        self._status = status
        self._source = source

    def collect(self) -> Iterator[Metric]:
        p = self._progress()
        prefix = "clickstream_stream_"
        info = InfoMetricFamily(prefix + "pipeline", "the pipeline's id and source kind")
        info.add_metric([], {"pipeline_id": p.pipeline_id, "source": self._source})
        yield info
        yield _states(prefix + "status", "the pipeline's state (1 for the current one)", STREAM_STATES,
                      stream_state(self._status()))
        for name, value, doc in (
                ("clicks", p.clicks, "clicks counted into windows"),
                ("records", p.records, "log records read (a record holds one or more clicks)"),
                ("late_clicks", p.late_clicks, "clicks that arrived after their window was final"),
                ("dead_letters", p.dead_letters, "records rejected to the dead-letter sink"),
                ("cycles", p.cycles, "pipeline cycles run"),
                ("checkpoints", p.checkpoints, "state checkpoints written")):
            yield CounterMetricFamily(prefix + name, doc, value=value)
        lag = GaugeMetricFamily(prefix + "lag_records", "records in the log not read yet, per partition",
                                labels=["partition"])
        offsets = GaugeMetricFamily(prefix + "consumed_offset", "next offset to read, per partition",
                                    labels=["partition"])
        for partition, value in sorted(p.lag_records.items()):
            lag.add_metric([str(partition)], value)
        for partition, value in sorted(p.consumed_offsets.items()):
            offsets.add_metric([str(partition)], value)
        yield lag
        yield offsets
        delay_s = (p.max_event_ms - p.watermark_ms) / 1000 if p.watermark_ms else 0.0
        yield GaugeMetricFamily(prefix + "watermark_delay_seconds",
                                "newest event time read minus the watermark", value=delay_s)
        yield GaugeMetricFamily(prefix + "watermark_timestamp_seconds",
                                "the watermark (event time up to which windows are final)",
                                value=p.watermark_ms / 1000)
        for name, value, doc in (
                ("cycle_seconds", p.cycle_s, "wall time of the last cycle"),
                ("store_write_seconds", p.store_write_s, "the last store write"),
                ("archive_write_seconds", p.archive_write_s, "the last archive (Parquet) write"),
                ("checkpoint_seconds", p.checkpoint_s, "the last checkpoint")):
            yield GaugeMetricFamily(prefix + name, doc, value=value)
        latency = GaugeMetricFamily(prefix + "append_to_store_latency_seconds",
                                    "from a record's append to the log to the store write holding its "
                                    "clicks, over the last cycles' sample", labels=["quantile"])
        for quantile, value_ms in (("0.5", p.latency_p50_ms), ("0.99", p.latency_p99_ms)):
            if value_ms is not None:
                latency.add_metric([quantile], value_ms / 1000)
        yield latency


class ProduceCollector(Collector):
    """A replay's progress (``producer.sender.Progress``: ``sent``, ``failed``, ``total``,
    ``elapsed_s()``, ``done``) as Prometheus metrics."""

    def __init__(self, progress: Any, target: str) -> None:
        self._progress = progress
        self._target = target

    def collect(self) -> Iterator[Metric]:
        p = self._progress
        prefix = "clickstream_produce_"
        info = InfoMetricFamily(prefix + "target", "where the clicks go")
        info.add_metric([], {"target": self._target})
        yield info
        yield _states(prefix + "status", "the replay's state (1 for the current one)", PRODUCE_STATES,
                      "done" if p.done else "sending")
        yield CounterMetricFamily(prefix + "clicks", "clicks handed to the topic", value=p.sent)
        yield CounterMetricFamily(prefix + "failed_clicks", "clicks not acknowledged", value=p.failed)
        if p.total:
            yield GaugeMetricFamily(prefix + "planned_clicks", "clicks the replay will send", value=p.total)
        yield GaugeMetricFamily(prefix + "elapsed_seconds", "time since the replay started",
                                value=p.elapsed_s())


@dataclass
class MetricsServer:
    """A running endpoint; ``close()`` stops it."""

    url: str
    _server: Any

    def close(self) -> None:
        self._server.shutdown()
        self._server.server_close()


def serve_metrics(settings: Settings, collector: Collector) -> MetricsServer | None:
    """Serve ``collector`` on ``settings.metrics_port`` (None when the port is 0: off).
    Raises OSError when the port is taken."""
    if not settings.metrics_port:
        return None
    registry = CollectorRegistry(auto_describe=False)
    registry.register(collector)
    address = settings.metrics_listen_address
    server, _thread = start_http_server(settings.metrics_port, addr=address, registry=registry)
    host = f"[{address}]" if ":" in address else address
    return MetricsServer(f"http://{host}:{server.server_port}/metrics", server)
