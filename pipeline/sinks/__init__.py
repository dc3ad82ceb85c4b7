"""Sinks, each with ``add`` (buffer) and ``flush`` (write, block until durable), idempotent by key."""

from __future__ import annotations

from pipeline.sinks.archive import ArchiveSink
from pipeline.sinks.dead_letter import DeadLetterSink, FileDeadLetterSink, KafkaDeadLetterSink
from pipeline.sinks.metrics import CycleMetrics, MetricsSink, PartitionLag
from pipeline.sinks.store import StoreSink

__all__ = ["ArchiveSink", "CycleMetrics", "DeadLetterSink", "FileDeadLetterSink",
           "KafkaDeadLetterSink", "MetricsSink", "PartitionLag", "StoreSink"]
