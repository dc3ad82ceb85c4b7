"""Metrics sink: one ``pipeline_metrics`` row per cycle, also logged at INFO, and one
``partition_lag`` row per source partition with the same ``ts_ms`` (the two join).

- clicks_in / clicks_per_s: clicks decoded in the cycle and their rate over its wall time
- lag_ms: wall time since the newest consumed record was appended to the log
- latency_ms: wall time from the oldest record of the cycle's append to the store write
- late_clicks / dead_letters: counted in the cycle
- watermark_ms: the event time up to which windows are final
- partition_lag: per partition, the end offset seen when the cycle was planned minus the
  next offset to read after it (records not read yet; their sum is the total lag)

Rows are keyed by pipeline, day and ``ts_ms`` (and partition): writing a cycle's metrics
again (a retried flush) rewrites the same rows; a cycle run again after a crash writes its
rows at its new ``ts_ms``, with the same offsets (they come from the logged plan).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

from clickstream.windows import day_of
from pipeline.sinks.store import StoreSink

log = logging.getLogger("pipeline.metrics")


@dataclass(frozen=True)
class PartitionLag:
    """One source partition's position after a cycle."""

    partition: int
    next_offset: int
    end_offset: int

    @property
    def lag_records(self) -> int:
        return max(0, self.end_offset - self.next_offset)


@dataclass(frozen=True)
class CycleMetrics:
    ts_ms: int
    clicks_in: int
    clicks_per_s: float
    lag_ms: int
    latency_ms: int
    late_clicks: int
    dead_letters: int
    watermark_ms: int
    partitions: tuple[PartitionLag, ...] = ()

    @property
    def lag_records(self) -> int:
        """Records not read yet over every partition."""
        return sum(p.lag_records for p in self.partitions)


class MetricsSink:
    def __init__(self, store_sink: StoreSink, pipeline_id: str) -> None:
        self._store = store_sink
        self.pipeline_id = pipeline_id
        self.history: list[CycleMetrics] = []

    def add(self, m: CycleMetrics) -> None:
        self.history.append(m)
        self._store.add_rows("pipeline_metrics", [(
            self.pipeline_id, day_of(m.ts_ms), m.ts_ms, m.clicks_in, m.clicks_per_s, m.lag_ms,
            m.latency_ms, m.late_clicks, m.dead_letters, m.watermark_ms)])
        self._store.add_rows("partition_lag", [
            (self.pipeline_id, day_of(m.ts_ms), m.ts_ms, p.partition, p.lag_records, p.next_offset,
             p.end_offset) for p in m.partitions])
        log.info("cycle: %d clicks (%.0f/s), lag %d ms (%d records), latency %d ms, late %d, "
                 "dead letters %d, watermark %d", m.clicks_in, m.clicks_per_s, m.lag_ms, m.lag_records,
                 m.latency_ms, m.late_clicks, m.dead_letters, m.watermark_ms)

    def flush(self) -> int:
        return 0  # rows travel with the store sink's flush
