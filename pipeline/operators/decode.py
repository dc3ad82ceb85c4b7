"""Decode and validate raw records (pure): clicks out, bad records with reasons aside."""

from __future__ import annotations

from collections.abc import Sequence

from clickstream.events import Click, EventError, decode_record
from pipeline.sources.base import RawRecord


def decode_batch(records: Sequence[RawRecord]) -> tuple[list[Click], list[tuple[RawRecord, str]]]:
    """(clicks in record order, [(bad record, reason), ...]). Never raises on bad input."""
    clicks: list[Click] = []
    dead: list[tuple[RawRecord, str]] = []
    for rec in records:
        try:
            clicks.extend(decode_record(rec.value))
        except EventError as exc:
            dead.append((rec, exc.reason))
    return clicks, dead
