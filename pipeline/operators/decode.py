"""Decode and validate a batch of raw record values as columns (pure, no I/O).

The hot path builds no Python object per click:

- one-click records (``{"id", "ts", "prev", "curr", "type"}``) are joined by newlines and
  parsed by pyarrow's JSON reader in one call, against an explicit schema;
- batch records as columns (``{"curr", "ids", "ts", "prevs", "types"}``, told apart by
  their first field) the same way, their lists then flattened (``curr`` repeated per
  click) and their lengths compared as columns;
- the older batch records (``{"clicks": [[id, ts, prev, curr, type], ...]}``) are parsed
  one record at a time (one ``orjson.loads`` per record, not per click) into column lists;
- validation is a handful of vectorised masks over the columns;
- which record is which kind (and which is no single ``{...}`` line) is found with numpy
  over the values joined once; those bytes are what the reader parses in the common case
  (every record of one kind).

Only what fails (a parse error in a block, a row a mask flags) goes through the
per-record path, ``clickstream.events.decode_record``, which names the reason for the
dead-letter topic. A record is good exactly when ``decode_record`` accepts it: the fast
path only decides which records need asking (``tests/pipeline/test_decode.py`` checks the
two agree on arbitrary input).
"""

from __future__ import annotations

import io
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np
import orjson
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.json as pa_json

from clickstream.events import (
    BATCH_FIELDS,
    LINK_TYPES,
    MAX_TITLE_BYTES,
    MAX_TS_MS,
    MIN_TS_MS,
    Click,
    EventError,
    decode_record,
)

WIRE_SCHEMA = pa.schema([("id", pa.int64()), ("ts", pa.int64()), ("prev", pa.string()),
                         ("curr", pa.string()), ("type", pa.string())])
CLICK_COLUMNS = ("click_id", "ts_ms", "prev", "curr", "link_type")
CLICK_SCHEMA = pa.schema([("click_id", pa.int64()), ("ts_ms", pa.int64()), ("prev", pa.string()),
                          ("curr", pa.string()), ("link_type", pa.string())])
BATCH_SCHEMA = pa.schema([("curr", pa.string()), ("ids", pa.list_(pa.int64())), ("ts", pa.list_(pa.int64())),
                          ("prevs", pa.list_(pa.string())), ("types", pa.list_(pa.string()))])
assert tuple(BATCH_SCHEMA.names) == BATCH_FIELDS
_PARSE = pa_json.ParseOptions(explicit_schema=WIRE_SCHEMA, unexpected_field_behavior="error")
_PARSE_BATCH = pa_json.ParseOptions(explicit_schema=BATCH_SCHEMA, unexpected_field_behavior="error")
_READ = pa_json.ReadOptions(use_threads=False, block_size=1 << 26)
_LINK_TYPES = pa.array(sorted(LINK_TYPES), pa.string())
_CONTROL = "[\\x00-\\x1f\\x7f]"
_ROWS_PREFIX = b'{"clicks"'
_COLUMNS_PREFIX = b'{"curr"'
SPLIT_BELOW = 32  # a failing block smaller than this is decoded record by record


@dataclass(frozen=True)
class DecodedBatch:
    """The good clicks of a batch as an Arrow table (``CLICK_SCHEMA``) and the bad records.

    ``dead`` holds ``(index of the record in the batch, reason)``, in index order. Clicks
    keep record order (a batch record's clicks stay together, in their order).
    """

    clicks: pa.Table
    dead: list[tuple[int, str]]


def decode_values(values: Sequence[bytes | None]) -> DecodedBatch:
    """Decode every value; never raises on bad input."""
    plain: Sequence[bytes] = [b"" if v is None else v for v in values] if None in values else values  # type: ignore[assignment]
    joined = b"\n".join(plain)
    single, columns, rows, slow_mask = _classify(joined, plain)
    slow = np.flatnonzero(slow_mask).tolist()
    parts: list[tuple[np.ndarray, pa.Table]] = []  # (record index per click, clicks)
    dead: list[tuple[int, str]] = []
    for index, parse, clicks_of in ((single, _PARSE, _single_clicks), (columns, _PARSE_BATCH, _batch_clicks)):
        if len(index):  # a block of every record (the common case) is the join made above
            whole = joined if len(index) == len(values) else None
            _decode_blocks(values, index, parse, clicks_of, parts, slow, whole)
    if len(rows):
        _decode_batches(values, rows.tolist(), parts, slow)
    for i in slow:
        try:
            clicks = decode_record(values[i])
        except EventError as exc:
            dead.append((i, exc.reason))
            continue
        parts.append((np.full(len(clicks), i, dtype=np.int64), _clicks_table(clicks)))
    dead.sort()
    return DecodedBatch(_in_record_order(parts), dead)


def _classify(joined: bytes, values: Sequence[bytes]) -> tuple[np.ndarray, ...]:
    """Indexes of the one-click, column-batch and row-batch records, and a mask of those
    for the per-record path (empty, not one ``{...}`` object, or a CR/LF inside: pyarrow's
    reader takes one object per line and crashed on a bare null), from ``joined`` (the
    values joined by newlines) with numpy, not a loop per record."""
    n = len(values)
    lengths = np.fromiter(map(len, values), np.int64, n)
    starts = np.cumsum(lengths + 1) - (lengths + 1)
    ends = starts + lengths
    if not joined:  # every value empty (or none)
        return (np.zeros(0, np.int64),) * 3 + (np.ones(n, dtype=bool),)
    buf = np.frombuffer(joined, dtype=np.uint8)  # not copied: reads are kept inside
    slow = ((lengths == 0) | (buf[np.minimum(starts, len(buf) - 1)] != ord("{"))
            | (buf[np.maximum(ends - 1, 0)] != ord("}")))
    # bytes.count and `in` run at memchr speed; the pass over every byte only when a CR or
    # LF is inside a record
    if joined.count(b"\n") != n - 1 or b"\r" in joined:
        inside = np.flatnonzero((buf == ord("\n")) | (buf == ord("\r")))
        inside = inside[~np.isin(inside, ends[:-1])]
        slow[np.searchsorted(starts, inside, side="right") - 1] = True
    columns = _starts_with(buf, starts, lengths, _COLUMNS_PREFIX) & ~slow
    rows = _starts_with(buf, starts, lengths, _ROWS_PREFIX) & ~slow & ~columns
    single = ~(slow | columns | rows)
    return np.flatnonzero(single), np.flatnonzero(columns), np.flatnonzero(rows), slow


def _starts_with(buf: np.ndarray, starts: np.ndarray, lengths: np.ndarray, prefix: bytes) -> np.ndarray:
    match = lengths >= len(prefix)
    if len(buf) < len(prefix):
        return match  # all False: no record is that long
    at = np.where(match, starts, 0)  # a shorter record (False already) reads the first bytes
    for k, byte in enumerate(prefix):
        match &= buf[at + k] == byte
    return match


def _in_record_order(parts: list[tuple[np.ndarray, pa.Table]]) -> pa.Table:
    if not parts:
        return CLICK_SCHEMA.empty_table()
    if len(parts) == 1:
        return parts[0][1]
    index = np.concatenate([p[0] for p in parts])
    table = pa.concat_tables([p[1] for p in parts])
    order = np.argsort(index, kind="stable")
    if np.all(order[1:] > order[:-1]):
        return table
    return table.take(pa.array(order))


def _decode_blocks(values: Sequence[bytes | None], index: np.ndarray, parse: pa_json.ParseOptions,
                   clicks_of: Callable[[pa.Table], tuple[np.ndarray, pa.Table, np.ndarray]],
                   parts: list[tuple[np.ndarray, pa.Table]], slow: list[int],
                   joined: bytes | None = None) -> None:
    """Parse ``values[index]`` as one block; a block that fails is halved until small.

    ``joined``: ``values[index]`` joined by newlines already (the first block's bytes).
    ``clicks_of(table)`` gives the good clicks of a parsed block with the row (record in
    the block) of each, and a mask of the rows that need the per-record path."""
    pending = [index]
    while pending:
        block = pending.pop()
        if joined is not None:
            table, joined = _read_block(joined, len(block), parse), None
        else:
            table = _read_block(b"\n".join([values[i] for i in block]), len(block), parse)  # type: ignore[misc]
        if table is None:
            if len(block) < SPLIT_BELOW:
                slow.extend(block.tolist())
            else:
                half = len(block) // 2
                pending += [block[half:], block[:half]]
            continue
        row_of_click, clicks, bad = clicks_of(table)
        if bad.any():
            slow.extend(block[bad].tolist())
        parts.append((block[row_of_click], clicks))


def _single_clicks(table: pa.Table) -> tuple[np.ndarray, pa.Table, np.ndarray]:
    ok = _valid_mask(table["id"], table["ts"], table["prev"], table["curr"], table["type"])
    if not ok.all():
        table = table.filter(pa.array(ok))
    return np.flatnonzero(ok), table.rename_columns(list(CLICK_COLUMNS)), ~ok


def _batch_clicks(table: pa.Table) -> tuple[np.ndarray, pa.Table, np.ndarray]:
    """Rows whose lists are non-empty and of one length and whose ``curr`` is a valid
    title, flattened to clicks; a row with one invalid click fails whole."""
    lengths = [pc.fill_null(pc.list_value_length(table[name]), -1).to_numpy()
               for name in BATCH_FIELDS[1:]]
    n_clicks = lengths[0]
    ok = (n_clicks > 0) & _title_mask(table["curr"])
    for other in lengths[1:]:
        ok &= other == n_clicks
    good_rows = np.flatnonzero(ok)
    if len(good_rows) < table.num_rows:
        table = table.take(pa.array(good_rows))
    good_row_of_click = np.repeat(np.arange(len(good_rows)), n_clicks[good_rows])
    row_of_click = good_rows[good_row_of_click]
    ids, ts, prevs, types = (pc.list_flatten(table[name]) for name in BATCH_FIELDS[1:])
    click_ok = _click_mask(ids, ts, prevs, types)
    clicks = pa.table([ids, ts, prevs, table["curr"].take(good_row_of_click), types], schema=CLICK_SCHEMA)
    if not click_ok.all():
        bad_rows = np.unique(row_of_click[~click_ok])
        ok[bad_rows] = False
        keep = ~np.isin(row_of_click, bad_rows)
        clicks = clicks.filter(pa.array(keep))
        row_of_click = row_of_click[keep]
    return row_of_click, clicks, ~ok


def _read_block(joined: bytes, n_values: int, parse: pa_json.ParseOptions) -> pa.Table | None:
    """``n_values`` values joined by newlines, parsed as one table (None if it does not parse
    into exactly one row each)."""
    try:
        joined.decode("utf-8")  # pyarrow's reader lets some invalid UTF-8 through (a fuzz found it)
        table = pa_json.read_json(io.BytesIO(joined), read_options=_READ, parse_options=parse)
    except (pa.ArrowInvalid, UnicodeDecodeError):
        return None
    return table if table.num_rows == n_values else None  # a blank or doubled line


def _decode_batches(values: Sequence[bytes | None], batch: list[int],
                    parts: list[tuple[np.ndarray, pa.Table]], slow: list[int]) -> None:
    """Batch records of the older rows form: structure checked per record, types and
    values per column."""
    cols: list[list[object]] = [[], [], [], [], []]
    owners: list[int] = []
    sizes: list[int] = []
    for i in batch:
        try:
            obj = orjson.loads(values[i])  # type: ignore[arg-type]
            rows = obj["clicks"]
            if (len(obj) != 1 or type(rows) is not list or not rows
                    or not all(type(r) is list and len(r) == 5 for r in rows)):
                raise ValueError
        except (orjson.JSONDecodeError, TypeError, KeyError, ValueError):
            slow.append(i)
            continue
        for col, values_of_field in zip(cols, zip(*rows, strict=True), strict=True):
            col.extend(values_of_field)
        owners.append(i)
        sizes.append(len(rows))
    if not owners:
        return
    record_of_click = np.repeat(np.asarray(owners, dtype=np.int64), sizes)
    typed = [all(type(v) is int for v in cols[0]), all(type(v) is int for v in cols[1]),
             all(type(v) is str for v in cols[2]), all(type(v) is str for v in cols[3]),
             all(type(v) is str for v in cols[4])]
    if not all(typed):  # rare: find the records holding a wrong type, one by one
        _decode_batches_typed_slowly(values, owners, parts, slow)
        return
    try:
        table = pa.table([pa.array(cols[0], pa.int64()), pa.array(cols[1], pa.int64()),
                          pa.array(cols[2], pa.string()), pa.array(cols[3], pa.string()),
                          pa.array(cols[4], pa.string())], schema=CLICK_SCHEMA)
    except (OverflowError, pa.ArrowInvalid):  # an integer beyond int64
        _decode_batches_typed_slowly(values, owners, parts, slow)
        return
    ok = _valid_mask(*table.columns)
    if not ok.all():  # one bad click makes its whole record bad
        bad_records = np.unique(record_of_click[~ok])
        slow.extend(bad_records.tolist())
        keep = ~np.isin(record_of_click, bad_records)
        table = table.filter(pa.array(keep))
        record_of_click = record_of_click[keep]
    parts.append((record_of_click, table))


def _decode_batches_typed_slowly(values: Sequence[bytes | None], owners: list[int],
                                 parts: list[tuple[np.ndarray, pa.Table]], slow: list[int]) -> None:
    for i in owners:
        try:
            clicks = decode_record(values[i])
        except EventError:
            slow.append(i)  # decoded again there, for its reason
            continue
        parts.append((np.full(len(clicks), i, dtype=np.int64), _clicks_table(clicks)))


def _clicks_table(clicks: Sequence[Click]) -> pa.Table:
    columns = list(zip(*clicks, strict=True))
    return pa.table([pa.array(col, field.type) for col, field in zip(columns, CLICK_SCHEMA, strict=True)],
                    schema=CLICK_SCHEMA)


def _valid_mask(ids: pa.ChunkedArray | pa.Array, ts: pa.ChunkedArray | pa.Array,
                prev: pa.ChunkedArray | pa.Array, curr: pa.ChunkedArray | pa.Array,
                link_type: pa.ChunkedArray | pa.Array) -> np.ndarray:
    """True where a click passes every rule of ``clickstream.events`` (nulls fail)."""
    return _click_mask(ids, ts, prev, link_type) & _title_mask(curr)


def _click_mask(ids: pa.ChunkedArray | pa.Array, ts: pa.ChunkedArray | pa.Array,
                prev: pa.ChunkedArray | pa.Array, link_type: pa.ChunkedArray | pa.Array) -> np.ndarray:
    """The rules on everything but ``curr``."""
    ok = pc.and_kleene(pc.greater_equal(ids, 0),
                       pc.and_kleene(pc.greater_equal(ts, MIN_TS_MS), pc.less(ts, MAX_TS_MS)))
    ok = pc.and_kleene(ok, pc.is_in(link_type, value_set=_LINK_TYPES))
    return np.asarray(pc.fill_null(ok, False), dtype=bool) & _title_mask(prev)


def _title_mask(title: pa.ChunkedArray | pa.Array) -> np.ndarray:
    length = pc.utf8_length(title)
    ok = pc.and_kleene(pc.and_kleene(pc.greater(length, 0), pc.less_equal(length, MAX_TITLE_BYTES)),
                       pc.invert(pc.match_substring_regex(title, _CONTROL)))
    return np.asarray(pc.fill_null(ok, False), dtype=bool)
