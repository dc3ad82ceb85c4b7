"""The click event: its fields, its wire encoding, and validation errors with reasons.

A click is one follow of a link (or arrival from outside) at an event time:

- ``click_id``: identity that makes duplicates detectable; the producer sets it to
  ``(row_number << 32) | k`` for the k-th click expanded from a dump row, so replays of
  the same dump with the same seed give the same ids.
- ``ts_ms``: event time, milliseconds since the Unix epoch (UTC).
- ``prev``: source article title or an ``other-*`` pseudo referrer.
- ``curr``: destination article title.
- ``link_type``: the dump's ``type`` (link, external, other, redlink).

Wire format (UTF-8 JSON, one Kafka record):

- one click: ``{"id": 1, "ts": 1422748800000, "prev": "a", "curr": "b", "type": "link"}``
- a batch of clicks that share one destination (so the record key stays the
  destination), as columns: ``{"curr": "b", "ids": [1, 2], "ts": [t1, t2], "prevs":
  ["a", "c"], "types": ["link", "other"]}`` (``encode_batch``; the k-th click is the
  k-th value of every list; the lists are non-empty and of one length). Columns let a
  reader parse many records in one call without a Python object per click.
- the older batch form, still accepted (records already in topics):
  ``{"clicks": [[id, ts, prev, curr, type], ...]}``.

The record key is the destination title (UTF-8), so one article's clicks share a
partition. ``decode_record`` accepts every form and raises ``EventError`` naming what is
wrong; callers route such records to the dead-letter topic.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from typing import NamedTuple

import orjson

LINK_TYPES = frozenset({"link", "external", "other", "redlink"})
# Event times outside [2001-01-01, 2100-01-01) are rejected as nonsense.
MIN_TS_MS = 978_307_200_000
MAX_TS_MS = 4_102_444_800_000
MAX_TITLE_BYTES = 1024  # characters, despite the name (the dump's titles are at most 255 bytes)
MAX_ID = 2**63 - 1  # ids are stored as int64
WIRE_FIELDS = ("id", "ts", "prev", "curr", "type")
# A batch record's fields, in the encoder's order, and the list each click field is in.
BATCH_FIELDS = ("curr", "ids", "ts", "prevs", "types")
BATCH_LIST_OF = {"id": "ids", "ts": "ts", "prev": "prevs", "type": "types"}
# C0 controls and DEL never occur in a title; NUL or a newline there is hostile input.
CONTROL_CHARACTERS = re.compile("[\x00-\x1f\x7f]")


class EventError(ValueError):
    """A record that is not a valid click (or batch); ``reason`` says why."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


class Click(NamedTuple):
    click_id: int
    ts_ms: int
    prev: str
    curr: str
    link_type: str


def encode_click(click: Click) -> bytes:
    return orjson.dumps({"id": click.click_id, "ts": click.ts_ms, "prev": click.prev,
                         "curr": click.curr, "type": click.link_type})


def encode_batch(clicks: Sequence[Click]) -> bytes:
    """One record carrying one or more clicks as columns; all must share ``curr`` (the
    record key). The reference for ``producer.encoding.build_records``' bytes."""
    if not clicks:
        raise ValueError("a batch record holds at least one click")
    curr = clicks[0].curr
    if any(c.curr != curr for c in clicks):
        raise ValueError("a batch record must hold clicks of one destination (its key)")
    return orjson.dumps({"curr": curr, "ids": [c.click_id for c in clicks], "ts": [c.ts_ms for c in clicks],
                         "prevs": [c.prev for c in clicks], "types": [c.link_type for c in clicks]})


def record_key(click: Click) -> bytes:
    return click.curr.encode("utf-8")


def _validated(click_id: object, ts: object, prev: object, curr: object, link_type: object) -> Click:
    if type(click_id) is not int or not 0 <= click_id <= MAX_ID:
        raise EventError(f"id: expected a non-negative integer below 2**63, got {click_id!r}")
    if type(ts) is not int:
        raise EventError(f"ts: expected integer milliseconds, got {ts!r}")
    if not MIN_TS_MS <= ts < MAX_TS_MS:
        raise EventError(f"ts: {ts} is outside 2001..2100")
    for name, title in (("prev", prev), ("curr", curr)):
        if type(title) is not str or not title:
            raise EventError(f"{name}: expected a non-empty title, got {title!r}")
        if len(title) > MAX_TITLE_BYTES:
            raise EventError(f"{name}: title longer than {MAX_TITLE_BYTES} characters")
        if CONTROL_CHARACTERS.search(title):
            raise EventError(f"{name}: title holds a control character")
    if type(link_type) is not str or link_type not in LINK_TYPES:
        raise EventError(f"type: {link_type!r} is not one of {sorted(LINK_TYPES)}")
    return Click(click_id, ts, prev, curr, link_type)  # type: ignore[arg-type]


def decode_record(value: bytes | None) -> list[Click]:
    """Clicks in one record (any form). Raises ``EventError`` with the reason."""
    if value is None:
        raise EventError("empty record (null value)")
    try:
        obj = orjson.loads(value)
    except orjson.JSONDecodeError as exc:
        raise EventError(f"not JSON: {exc}") from None
    if not isinstance(obj, dict):
        raise EventError(f"expected a JSON object, got {type(obj).__name__}")
    if "clicks" in obj:
        return _decode_rows(obj)
    if "ids" in obj:
        return _decode_columns(obj)
    _check_fields(obj, WIRE_FIELDS, "")
    return [_validated(obj["id"], obj["ts"], obj["prev"], obj["curr"], obj["type"])]


def _check_fields(obj: dict, fields: tuple[str, ...], what: str) -> None:
    missing = [k for k in fields if k not in obj]
    if missing:
        raise EventError(f"missing field(s){what}: {', '.join(missing)}")
    if len(obj) != len(fields):
        extra = sorted(k for k in obj if k not in fields)
        raise EventError(f"unexpected field(s){what}: {', '.join(extra)}")


def _decode_columns(obj: dict) -> list[Click]:
    """The batch form ``{"curr", "ids", "ts", "prevs", "types"}``."""
    _check_fields(obj, BATCH_FIELDS, " of a batch record")
    curr = obj["curr"]
    lists = {name: obj[name] for name in BATCH_FIELDS[1:]}
    for name, values in lists.items():
        if type(values) is not list or not values:
            raise EventError(f"{name}: expected a non-empty list")
    n = len(lists["ids"])
    for name, values in lists.items():
        if len(values) != n:
            raise EventError(f"{name}: {len(values)} values where ids has {n}")
    out = []
    for i, (click_id, ts, prev, link_type) in enumerate(zip(*lists.values(), strict=True)):
        try:
            out.append(_validated(click_id, ts, prev, curr, link_type))
        except EventError as exc:
            field, _, rest = exc.reason.partition(": ")
            raise EventError(f"{BATCH_LIST_OF[field]}[{i}]: {rest}" if field in BATCH_LIST_OF
                             else exc.reason) from None
    return out


def _decode_rows(obj: dict) -> list[Click]:
    """The older batch form ``{"clicks": [[id, ts, prev, curr, type], ...]}``."""
    if len(obj) != 1:
        extra = ", ".join(sorted(k for k in obj if k != "clicks"))
        raise EventError(f"unexpected field(s) beside clicks: {extra}")
    rows = obj["clicks"]
    if not isinstance(rows, list) or not rows:
        raise EventError("clicks: expected a non-empty list")
    out = []
    for i, row in enumerate(rows):
        if not isinstance(row, list) or len(row) != 5:
            raise EventError(f"clicks[{i}]: expected [id, ts, prev, curr, type]")
        try:
            out.append(_validated(*row))
        except EventError as exc:
            raise EventError(f"clicks[{i}].{exc.reason}") from None
    return out
