"""Click expansion: dump rows -> individual clicks in event-time order, deterministically.

Each row ``(prev, curr, type, n)`` becomes ``n`` clicks (``binomial(n, fraction)`` with
``fraction < 1``) with event times uniform over the replay span: the dump's month
(``month="2015-02"``) or, with ``span_s``, the first ``span_s`` seconds of it (a month
squeezed into minutes so a demo shows movement). The k-th click of row r (rows numbered
from 0 in input order) has ``click_id = (r << 32) | k``; the same rows, month, seed and
options always give the same clicks in the same order.

Order: clicks come out sorted by ``ts_ms + d`` where each click's delay ``d`` is uniform in
``[0, jitter_ms]``; so a click is never emitted after one whose event time exceeds its own
by more than ``jitter_ms`` (bounded out-of-order, like real collection delays). With
``jitter_ms=0`` the stream is in event-time order.

Bounded memory (two passes, external bucketing): the replay span is cut into ``SLICES``
equal time slices.

1. Pass 1 reads the rows once. Each row's strings go to a spool file (offsets in a
   second file); its clicks are dealt to slices (one uniform draw per click for small n,
   a multinomial for large n) and only per-(row, slice) counts ``(row, count, k_start)``
   are appended to that slice's spool (held in memory up to ``SPILL_BYTES`` in all, then
   in one file per slice; three uint32: 12 bytes per entry; at most ``min(n, SLICES)``
   entries per row, so about 12 bytes per click for rows with small n:
   a whole English month at full fraction needs tens of GB of spool, which is why
   ``fraction`` and ``span_s`` exist).
2. Pass 2 loads one slice at a time (split further into sub-slices of at most
   ``EMIT_CLICKS`` clicks by a multinomial split of the counts), draws each click's time
   in the slice, sorts, looks titles up in the memory-mapped string spool and yields.

Row strings are spooled length-delimited (three field offsets per row), never joined by
an in-band separator, so any title (NUL included) comes back exactly as it went in.

Output: ``expand_clicks`` returns ``ExpandedClicks``, an iterable of ``Click`` tuples
whose ``chunks()`` gives the same clicks as columns (``ClickChunk``: numpy ids and times,
a row index into per-chunk title lists), one per sub-slice, for senders that encode
without a Python object per click.

Memory is one chunk of rows in pass 1 and one (sub-)slice in pass 2, whatever the dump
size; the spool lives in a temporary directory (``spool_dir`` or the system's) that is
removed when the generator finishes or is closed. The first click comes out after pass 1
has read the whole input. ``limit`` stops after that many clicks (the earliest ones).

A ``Spike`` adds extra clicks to a few destinations in a short window (so "trending"
has something to show); they get row numbers after the dump's last row.
"""

from __future__ import annotations

import calendar
import functools
import math
import mmap
import re
import tempfile
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO

import numpy as np

from clickstream.events import Click
from clickstream.windows import DEFAULT_MONTH
from producer.readers import DumpRow

SLICES = 256
CHUNK_ROWS = 32_768
SMALL_N = 256
EMIT_CLICKS = 1 << 19
SPILL_BYTES = 64 << 20
_new_click = functools.partial(tuple.__new__, Click)
_MONTH_RE = re.compile(r"(?<!\d)(\d{4})[-_](\d{2})(?!\d)")


@dataclass(frozen=True)
class Spike:
    """Extra clicks on a few destinations during ``[at_s, at_s + duration_s)`` of the span.

    ``titles`` empty: ``count`` destinations are picked from the input (deterministically).
    Each title gets ``clicks`` extra clicks from ``prev`` (type ``link_type``).
    """

    at_s: float
    duration_s: float
    clicks: int
    titles: tuple[str, ...] = ()
    count: int = 3
    prev: str = "other-external"
    link_type: str = "external"

    @classmethod
    def parse(cls, text: str) -> Spike:
        """``AT_S:DURATION_S:CLICKS[:TITLE,TITLE,...]``, e.g. ``600:60:5000`` or ``600:60:5000:Foo,Bar``."""
        parts = text.split(":", 3)
        if len(parts) < 3:
            raise ValueError(f"spike {text!r}: expected AT_S:DURATION_S:CLICKS[:TITLE,...]")
        try:
            at_s, duration_s, clicks = float(parts[0]), float(parts[1]), int(parts[2])
        except ValueError:
            raise ValueError(f"spike {text!r}: AT_S and DURATION_S are seconds, CLICKS an integer") from None
        titles = tuple(t for t in parts[3].split(",") if t) if len(parts) == 4 else ()
        if duration_s <= 0 or clicks < 0 or at_s < 0:
            raise ValueError(f"spike {text!r}: need AT_S >= 0, DURATION_S > 0, CLICKS >= 0")
        return cls(at_s, duration_s, clicks, titles)


def month_bounds(month: str) -> tuple[int, int]:
    """``"YYYY-MM"`` -> (first millisecond of the month UTC, the month's length in ms)."""
    m = re.fullmatch(r"(\d{4})-(\d{2})", month)
    if not m or not 1 <= int(m.group(2)) <= 12:
        raise ValueError(f"month {month!r}: expected YYYY-MM")
    year, mon = int(m.group(1)), int(m.group(2))
    days = calendar.monthrange(year, mon)[1]
    start_s = calendar.timegm((year, mon, 1, 0, 0, 0))
    return start_s * 1000, days * 86_400_000


def month_from_filename(path: str | Path) -> str | None:
    """The month a dump's file name carries (``clickstream-enwiki-2024-10.tsv.gz``,
    ``2015_02_en_clickstream.tsv``), or None."""
    m = _MONTH_RE.search(Path(path).name)
    if not m or not 1 <= int(m.group(2)) <= 12:
        return None
    return f"{m.group(1)}-{m.group(2)}"


class _Spool:
    """Pass 1's files: row strings + offsets, and the entries of each slice (held in
    memory up to ``SPILL_BYTES`` in all, then in one file per slice)."""

    def __init__(self, root: Path, slices: int) -> None:
        self.root = root
        self.slices = slices
        # Open for all of pass 1; ``finish`` closes them.
        self.strings: IO[bytes] = open(root / "strings.bin", "wb")  # noqa: SIM115
        self.offsets: IO[bytes] = open(root / "offsets.bin", "wb")  # noqa: SIM115
        self.held: list[list[bytes]] = [[] for _ in range(slices)]
        self.held_bytes = 0
        self.slice_files: list[IO[bytes]] = []
        self.pos = 0
        self.offsets.write(np.zeros(1, np.int64).tobytes())
        self.rows = 0

    def add_strings(self, rows: list[tuple[str, str, str]]) -> None:
        """Three length-delimited fields per row: offsets[3r .. 3r+3] bound row r's fields."""
        blobs = [f.encode("utf-8") for r in rows for f in r]
        ends = self.pos + np.cumsum(np.fromiter((len(b) for b in blobs), np.int64, len(blobs)))
        self.strings.write(b"".join(blobs))
        self.offsets.write(ends.tobytes())
        if len(ends):
            self.pos = int(ends[-1])
        self.rows += len(rows)

    def add_entries(self, slice_idx: np.ndarray, entries: np.ndarray) -> None:
        """``entries``: (E, 3) int64 rows of (row, count, k_start), one slice each."""
        order = np.argsort(slice_idx, kind="stable")
        slice_idx, entries = slice_idx[order], entries[order]
        bounds = np.searchsorted(slice_idx, np.arange(self.slices + 1))
        for s in np.flatnonzero(np.diff(bounds)):
            blob = entries[bounds[s]:bounds[s + 1]].astype(np.uint32).tobytes()
            self.held[s].append(blob)
            self.held_bytes += len(blob)
        if self.held_bytes > SPILL_BYTES:
            self._spill()

    def _spill(self) -> None:
        if not self.slice_files:
            self.slice_files = [open(self.root / f"slice-{s:04d}.bin", "wb")  # noqa: SIM115
                                for s in range(self.slices)]
        for f, held in zip(self.slice_files, self.held, strict=True):
            f.write(b"".join(held))
            held.clear()
        self.held_bytes = 0

    def finish(self) -> None:
        for f in (self.strings, self.offsets, *self.slice_files):
            f.close()

    def slice_entries(self, s: int) -> np.ndarray:
        spilled = (self.root / f"slice-{s:04d}.bin").read_bytes() if self.slice_files else b""
        data = spilled + b"".join(self.held[s])
        self.held[s] = []
        return np.frombuffer(data, dtype=np.uint32).reshape(-1, 3).astype(np.int64)


def _deal_chunk(rng: np.random.Generator, first_row: int, n: np.ndarray, slices: int
                ) -> tuple[np.ndarray, np.ndarray]:
    """Deal each row's clicks to slices: (slice index per entry, (row, count, k_start) entries)."""
    local = np.arange(len(n))
    small = (n > 0) & (n <= SMALL_N)
    parts_s: list[np.ndarray] = []
    parts_e: list[np.ndarray] = []
    if small.any():
        reps = np.repeat(local[small], n[small])
        keys = reps * slices + rng.integers(0, slices, len(reps))
        keys, counts = np.unique(keys, return_counts=True)
        rows, sl = keys // slices, keys % slices
        cum = np.cumsum(counts)
        excl = cum - counts
        first = np.r_[True, rows[1:] != rows[:-1]]
        k_start = excl - np.maximum.accumulate(np.where(first, excl, 0))
        parts_s.append(sl)
        parts_e.append(np.column_stack([rows + first_row, counts, k_start]))
    big = np.flatnonzero(n > SMALL_N)
    if len(big):
        grid = rng.multinomial(n[big], np.full(slices, 1.0 / slices))
        k_grid = np.cumsum(grid, axis=1) - grid
        bi, sl = np.nonzero(grid)
        parts_s.append(sl)
        parts_e.append(np.column_stack([big[bi] + first_row, grid[bi, sl], k_grid[bi, sl]]))
    if not parts_s:
        return np.empty(0, np.int64), np.empty((0, 3), np.int64)
    return np.concatenate(parts_s), np.concatenate(parts_e).astype(np.int64)


@dataclass(frozen=True)
class ClickChunk:
    """Clicks in emission order as columns: click ``i`` is ``(click_id[i], ts_ms[i],
    prev[row[i]], curr[row[i]], link_type[row[i]])``; the title lists are per chunk."""

    click_id: np.ndarray  # int64
    ts_ms: np.ndarray  # int64
    row: np.ndarray  # intp, index into the title lists
    prev: list[str] = field(repr=False)
    curr: list[str] = field(repr=False)
    link_type: list[str] = field(repr=False)

    def __len__(self) -> int:
        return len(self.click_id)

    def head(self, n: int) -> ClickChunk:
        return ClickChunk(self.click_id[:n], self.ts_ms[:n], self.row[:n], self.prev, self.curr,
                          self.link_type)

    def clicks(self) -> Iterator[Click]:
        rows = self.row.tolist()
        # All in C: no Python-level call per click.
        return map(_new_click, zip(self.click_id.tolist(), self.ts_ms.tolist(),
                                   [self.prev[i] for i in rows], [self.curr[i] for i in rows],
                                   [self.link_type[i] for i in rows], strict=True))


class ExpandedClicks:
    """The clicks of ``expand_clicks``: iterate for ``Click`` tuples, or take ``chunks()``
    for columns. Either way, one pass; the spool is removed when it ends or is closed."""

    def __init__(self, chunks: Iterator[ClickChunk]) -> None:
        self._chunks = chunks

    def chunks(self) -> Iterator[ClickChunk]:
        return self._chunks

    def __iter__(self) -> Iterator[Click]:
        for chunk in self._chunks:
            yield from chunk.clicks()

    def close(self) -> None:
        close = getattr(self._chunks, "close", None)
        if close is not None:
            close()


def expand_clicks(rows: Iterable[DumpRow], *, month: str = DEFAULT_MONTH, seed: int = 0,
                  jitter_ms: int = 0, fraction: float = 1.0, limit: int | None = None,
                  span_s: float | None = None, spike: Spike | None = None,
                  spool_dir: str | Path | None = None) -> ExpandedClicks:
    """The rows' clicks (see the module docstring for order, identity and memory).

    Arguments are checked here; the rows are read when the first click is asked for."""
    if not 0.0 < fraction <= 1.0:
        raise ValueError(f"fraction {fraction} must be in (0, 1]")
    if jitter_ms < 0:
        raise ValueError(f"jitter_ms {jitter_ms} must be >= 0")
    if limit is not None and limit < 0:
        raise ValueError(f"limit {limit} must be >= 0")
    start_ms, month_ms = month_bounds(month)
    span_ms = month_ms if span_s is None else round(span_s * 1000)
    if span_ms < 1000:
        raise ValueError(f"span_s {span_s} must be at least 1 second")
    return ExpandedClicks(_expand_chunks(rows, start_ms, span_ms, seed, jitter_ms, fraction, limit,
                                         spike, spool_dir))


def _expand_chunks(rows: Iterable[DumpRow], start_ms: int, span_ms: int, seed: int, jitter_ms: int,
                   fraction: float, limit: int | None, spike: Spike | None,
                   spool_dir: str | Path | None) -> Iterator[ClickChunk]:
    left = limit
    if left == 0:
        return
    with tempfile.TemporaryDirectory(prefix="clickstream-expand-", dir=spool_dir) as tmp:
        spool = _Spool(Path(tmp), SLICES)
        try:
            picked = _pass1(spool, rows, seed, fraction, spike)
            spike_entries = _spike_entries(spool, spike, picked, span_ms, seed)
        finally:
            spool.finish()
        for chunk in _pass2(spool, start_ms, span_ms, seed, jitter_ms, spike_entries):
            if left is not None:
                if len(chunk) >= left:
                    yield chunk.head(left)
                    return
                left -= len(chunk)
            yield chunk


def _pass1(spool: _Spool, rows: Iterable[DumpRow], seed: int, fraction: float,
           spike: Spike | None) -> list[str]:
    """Spool every row; returns the destinations a spike without titles will hit."""
    want = spike.count if spike is not None and not spike.titles else 0
    pick_rng = np.random.default_rng([seed, 2])
    picked: list[str] = []
    chunk: list[DumpRow] = []
    chunk_no = 0

    def flush() -> None:
        nonlocal chunk_no
        n = np.fromiter((r.n for r in chunk), np.int64, len(chunk))
        rng = np.random.default_rng([seed, 0, chunk_no])
        if fraction < 1.0:
            n = rng.binomial(n, fraction)
        if (n >= 1 << 32).any():
            raise ValueError("a row with n >= 2**32 clicks cannot be numbered (click_id = row << 32 | k)")
        if spool.rows + len(chunk) >= 1 << 31:
            raise ValueError("more than 2**31 rows cannot be numbered (click_id = row << 32 | k)")
        first_row = spool.rows
        spool.add_strings([(r.prev, r.curr, r.link_type) for r in chunk])
        slice_idx, entries = _deal_chunk(rng, first_row, n, spool.slices)
        spool.add_entries(slice_idx, entries)
        chunk.clear()
        chunk_no += 1

    seen = 0
    for row in rows:
        if want:
            # Reservoir sampling over rows (deterministic for the seed).
            seen += 1
            if len(picked) < want:
                picked.append(row.curr)
            else:
                j = int(pick_rng.integers(0, seen))
                if j < want:
                    picked[j] = row.curr
        chunk.append(row)
        if len(chunk) >= CHUNK_ROWS:
            flush()
    if chunk:
        flush()
    return list(dict.fromkeys(picked))


# A spike entry: (row, count, k_start, lo_ms, hi_ms) with times relative to the span start.
_SpikeEntries = dict[int, list[tuple[int, int, int, int, int]]]


def _spike_entries(spool: _Spool, spike: Spike | None, picked: list[str], span_ms: int,
                   seed: int) -> _SpikeEntries:
    out: _SpikeEntries = {}
    if spike is None or spike.clicks == 0:
        return out
    titles = spike.titles or tuple(picked)
    lo = min(round(spike.at_s * 1000), span_ms - 1)
    hi = min(lo + max(1, round(spike.duration_s * 1000)), span_ms)
    bounds = [(s * span_ms) // spool.slices for s in range(spool.slices + 1)]
    windows = [(s, max(lo, bounds[s]), min(hi, bounds[s + 1])) for s in range(spool.slices)]
    windows = [w for w in windows if w[2] > w[1]]
    weights = np.array([w[2] - w[1] for w in windows], float)
    rng = np.random.default_rng([seed, 3])
    first_row = spool.rows
    spool.add_strings([(spike.prev, t, spike.link_type) for t in titles])
    for i in range(len(titles)):
        counts = rng.multinomial(spike.clicks, weights / weights.sum())
        k = 0
        for (s, w_lo, w_hi), c in zip(windows, counts.tolist(), strict=True):
            if c:
                out.setdefault(s, []).append((first_row + i, c, k, w_lo, w_hi))
                k += c
    return out


def _pass2(spool: _Spool, start_ms: int, span_ms: int, seed: int, jitter_ms: int,
           spike_entries: _SpikeEntries) -> Iterator[ClickChunk]:
    offsets = np.fromfile(spool.root / "offsets.bin", dtype=np.int64)
    with open(spool.root / "strings.bin", "rb") as f:
        size = offsets[-1]
        data: bytes | mmap.mmap = mmap.mmap(f.fileno(), 0, access=mmap.ACCESS_READ) if size else b""
        # Consecutive sub-slices are merged up to EMIT_CLICKS clicks per chunk, so a row's
        # titles are decoded once per chunk, not once per sub-slice.
        parts: list[tuple[np.ndarray, np.ndarray, np.ndarray]] = []
        held = 0
        try:
            for s in range(spool.slices):
                a = start_ms + (s * span_ms) // spool.slices
                b = start_ms + ((s + 1) * span_ms) // spool.slices
                entries = spool.slice_entries(s)
                extra = spike_entries.get(s, [])
                total = int(entries[:, 1].sum()) + sum(e[1] for e in extra)
                if total == 0:
                    continue
                rng = np.random.default_rng([seed, 1, s])
                for sub in _sub_slices(rng, entries, extra, a, b, total, start_ms):
                    if len(sub):
                        parts.append(_emit(rng, sub, jitter_ms))
                        held += len(parts[-1][0])
                        if held >= EMIT_CLICKS:
                            yield _chunk(parts, data, offsets)
                            parts, held = [], 0
            if parts:
                yield _chunk(parts, data, offsets)
        finally:
            if isinstance(data, mmap.mmap):
                data.close()


def _sub_slices(rng: np.random.Generator, entries: np.ndarray, extra: list[tuple[int, int, int, int, int]],
                a: int, b: int, total: int, start_ms: int) -> Iterator[np.ndarray]:
    """(E, 5) arrays (row, count, k_start, lo_ms, hi_ms), in time order, each <= EMIT_CLICKS clicks."""
    m = max(1, min(b - a, math.ceil(total / EMIT_CLICKS)))
    edges = [a + ((b - a) * j) // m for j in range(m + 1)]
    spikes = np.array([(r, c, k, start_ms + lo, start_ms + hi) for r, c, k, lo, hi in extra],
                      dtype=np.int64).reshape(-1, 5)
    if m == 1:
        base = np.column_stack([entries, np.full(len(entries), a), np.full(len(entries), b)])
        yield np.concatenate([base.astype(np.int64), spikes])
        return
    grid = rng.multinomial(entries[:, 1], np.full(m, 1.0 / m)) if len(entries) else np.zeros((0, m), np.int64)
    k_grid = entries[:, 2:3] + np.cumsum(grid, axis=1) - grid
    spike_parts: list[list[tuple[int, int, int, int, int]]] = [[] for _ in range(m)]
    for r, c, k, lo, hi in spikes.tolist():
        w = np.array([max(0, min(hi, edges[j + 1]) - max(lo, edges[j])) for j in range(m)], float)
        counts = rng.multinomial(c, w / w.sum())
        for j in np.flatnonzero(counts):
            spike_parts[j].append((r, int(counts[j]), k, max(lo, edges[j]), min(hi, edges[j + 1])))
            k += int(counts[j])
    for j in range(m):
        keep = grid[:, j] > 0
        e = np.column_stack([entries[keep, 0], grid[keep, j], k_grid[keep, j],
                             np.full(int(keep.sum()), edges[j]), np.full(int(keep.sum()), edges[j + 1])])
        yield np.concatenate([e.astype(np.int64), np.array(spike_parts[j], np.int64).reshape(-1, 5)])


def _emit(rng: np.random.Generator, sub: np.ndarray, jitter_ms: int
          ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """A sub-slice's clicks in emission order: (click_id, ts_ms, row)."""
    counts = sub[:, 1]
    total = int(counts.sum())
    row = np.repeat(sub[:, 0], counts)
    first = np.cumsum(counts) - counts
    k = np.repeat(sub[:, 2] - first, counts) + np.arange(total)
    lo = np.repeat(sub[:, 3], counts)
    width = np.repeat(sub[:, 4] - sub[:, 3], counts)
    ts = lo + np.floor(rng.random(total) * width).astype(np.int64)
    click_id = (row << 32) | k
    key = ts + rng.integers(0, jitter_ms + 1, total) if jitter_ms else ts
    # Sorted by (key, click_id). An entry's clicks have ascending ids, so with each row in one
    # entry (always so) the clicks in id order come from sorting the entries, and one
    # stable sort by key finishes it (np.lexsort over both costs ~3x more).
    by_row = np.argsort(sub[:, 0], kind="stable")
    rows_in_order = sub[by_row, 0]
    if bool(np.all(rows_in_order[1:] > rows_in_order[:-1])):
        lengths = counts[by_row]
        by_id = np.repeat(first[by_row] - (np.cumsum(lengths) - lengths), lengths) + np.arange(total)
        order = by_id[stable_argsort(key[by_id])]
    else:
        order = np.lexsort((click_id, key))
    return click_id[order], ts[order], row[order]


def stable_argsort(key: np.ndarray) -> np.ndarray:
    """``np.argsort(key, kind="stable")`` for an integer key; a key whose range fits in 16
    bits is shifted to uint16 first, which numpy sorts by radix (~5x faster than int64)."""
    if len(key) and int(key.max()) - int(key.min()) < 1 << 16:
        key = (key - key.min()).astype(np.uint16)
    return np.argsort(key, kind="stable")


def _chunk(parts: list[tuple[np.ndarray, np.ndarray, np.ndarray]], data: bytes | mmap.mmap,
           offsets: np.ndarray) -> ClickChunk:
    rows = len(offsets) // 3
    """Consecutive sub-slices as one chunk; each distinct row's titles decoded once."""
    click_id, ts, row = (np.concatenate(cols) for cols in zip(*parts, strict=True))
    if rows <= 8 * len(row):  # few rows: a dense map, no sort
        seen = np.zeros(rows, bool)
        seen[row] = True
        uniq = np.flatnonzero(seen)
        inv = (np.cumsum(seen) - 1)[row]
    else:
        uniq, inv = np.unique(row, return_inverse=True)
    bounds = offsets[(3 * uniq)[:, None] + np.arange(4)].tolist()
    fields = [[data[r[j]:r[j + 1]].decode("utf-8") for r in bounds] for j in range(3)]
    return ClickChunk(click_id, ts, inv, *fields)
