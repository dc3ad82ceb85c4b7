"""Sources: read a partition's offset range as a batch of raw records (see ``base``)."""

from __future__ import annotations

from pipeline.sources.base import BatchSource, Fetcher, RawRecord, RecordBatch

__all__ = ["BatchSource", "Fetcher", "RawRecord", "RecordBatch"]
