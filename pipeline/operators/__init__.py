"""Operators: pure functions over batches (decode, window partials, window merging)."""

from __future__ import annotations

from pipeline.operators.aggregate import BUILTIN_AGGREGATES, Aggregate
from pipeline.operators.decode import DecodedBatch, decode_values
from pipeline.operators.windows import WindowRows, WindowState, top_n

__all__ = ["BUILTIN_AGGREGATES", "Aggregate", "DecodedBatch", "WindowRows", "WindowState", "decode_values",
           "top_n"]
