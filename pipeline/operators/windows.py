"""Merging partial counts into final windows (driver side; pure, no I/O).

``WindowState`` absorbs the workers' partials, and ``finalize(until_ms)`` closes every
window whose end is at or before ``until_ms`` (the watermark), returning the rows to
store. A window's on-time clicks never change after it is final; clicks that arrive later
only raise its ``late_clicks`` (see ``operators.aggregate`` for the lateness rule).

Top-N tie rule (window_topn, sliding and tumbling): clicks descending, then key ascending.
Trending (per ``TRENDING_WINDOW_MS`` window of destinations): lift = (clicks + 1) /
(baseline + 1), where baseline is the EWMA (``TRENDING_ALPHA``) of the key's clicks in the
earlier windows (empty windows decay it); ranked by lift desc, clicks desc, key asc.
"""

from __future__ import annotations

import heapq
from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any, NamedTuple

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc

from clickstream.windows import (
    FULL_COUNT_WINDOWS_MS,
    METRIC_DESTINATION,
    METRIC_LINK_TYPE,
    SLIDING_STEP_MS,
    SLIDING_WINDOW_MS,
    TOP_N,
    TRENDING_WINDOW_MS,
)
from pipeline.operators.aggregate import COUNT_COLUMNS, COUNT_SCHEMA

TRENDING_ALPHA = 0.3
BASELINE_FLOOR = 1e-3

TotalsKey = tuple[int, int]  # (window_ms, window_start_ms)
# Totals of final windows kept in memory (and checkpoints) this long after they closed, so
# late clicks for them are added without reading the store.
FINAL_TOTALS_HORIZON_MS = 15 * 60_000
# an open window's partial tables are summed into one when there are more than this many
COMPACT_FRAMES = 32


class StoredTotals(NamedTuple):
    """A ``window_totals`` row as read back from the store."""

    clicks: int
    late_clicks: int
    cycle: int


class TotalsRow(NamedTuple):
    window_ms: int
    window_start_ms: int
    clicks: int
    late_clicks: int


class TopNRow(NamedTuple):
    metric: str
    window_ms: int
    window_start_ms: int
    rank: int
    key: str
    clicks: int


class CountRow(NamedTuple):
    metric: str
    window_ms: int
    window_start_ms: int
    key: str
    clicks: int


class TrendingRow(NamedTuple):
    window_ms: int
    window_start_ms: int
    rank: int
    key: str
    clicks: int
    baseline: float
    lift: float


def _summed(counts: pa.Table) -> pa.Table:
    """Partial counts (``COUNT_SCHEMA``) summed per ``(metric, window_ms, window_start_ms, key)``."""
    summed = counts.group_by(COUNT_COLUMNS[:-1], use_threads=False).aggregate([("clicks", "sum")])
    return pa.table([summed[c] for c in (*COUNT_COLUMNS[:-1], "clicks_sum")], names=COUNT_COLUMNS)


def empty_counts() -> pd.DataFrame:
    return COUNT_SCHEMA.empty_table().to_pandas()


@dataclass
class WindowRows:
    """Rows produced by one finalization (the store sink maps them to tables)."""

    totals: list[TotalsRow] = field(default_factory=list)
    topn: list[TopNRow] = field(default_factory=list)
    counts: list[CountRow] = field(default_factory=list)
    trending: list[TrendingRow] = field(default_factory=list)

    def __len__(self) -> int:
        return len(self.totals) + len(self.topn) + len(self.counts) + len(self.trending)


def top_n(counts: dict[str, int], n: int = TOP_N) -> list[tuple[str, int]]:
    """The n (key, clicks) with most clicks, ties by key ascending."""
    return heapq.nsmallest(n, counts.items(), key=lambda kv: (-kv[1], kv[0]))


class SlidingCounts:
    """Per-key counts of sliding windows built from final step-sized tumbling buckets."""

    def __init__(self, window_ms: int = SLIDING_WINDOW_MS, step_ms: int = SLIDING_STEP_MS) -> None:
        self.window_ms = window_ms
        self.step_ms = step_ms
        self.buckets: dict[int, dict[str, int]] = {}
        self.running: dict[str, int] = {}
        self.next_start: int | None = None

    def add_bucket(self, start_ms: int, counts: dict[str, int]) -> None:
        if self.next_start is not None and start_ms < self.next_start + self.window_ms - self.step_ms:
            raise ValueError(f"sliding bucket {start_ms} arrived after its windows were emitted")
        self.buckets[start_ms] = counts
        if self.next_start is None:
            self.next_start = start_ms - self.window_ms + self.step_ms

    def finalize(self, until_ms: int) -> list[tuple[int, dict[str, int]]]:
        """Every sliding window ``[s, s + window)`` with ``s + window <= until_ms`` that holds clicks."""
        out = []
        while self.next_start is not None and self.next_start + self.window_ms <= until_ms:
            s = self.next_start
            entering = self.buckets.get(s + self.window_ms - self.step_ms)
            if entering:
                for k, v in entering.items():
                    self.running[k] = self.running.get(k, 0) + v
            if self.running:
                out.append((s, dict(self.running)))
            leaving = self.buckets.pop(s, None)
            if leaving:
                for k, v in leaving.items():
                    left = self.running[k] - v
                    if left:
                        self.running[k] = left
                    else:
                        del self.running[k]
            self.next_start = s + self.step_ms
            if not self.running:
                if not self.buckets:
                    self.next_start = None
                else:
                    self.next_start = max(self.next_start,
                                          min(self.buckets) - self.window_ms + self.step_ms)
        return out


class Trending:
    """EWMA baselines of destinations per trending window (state survives only the run)."""

    def __init__(self, window_ms: int = TRENDING_WINDOW_MS, alpha: float = TRENDING_ALPHA) -> None:
        self.window_ms = window_ms
        self.alpha = alpha
        self.baseline: dict[str, float] = {}
        self.last_start: int | None = None

    def step(self, start_ms: int, counts: dict[str, int], n: int = TOP_N
             ) -> list[tuple[str, int, float, float]]:
        """Top n (key, clicks, baseline, lift) of the window at ``start_ms``, then learn it."""
        if self.last_start is not None:
            gap = (start_ms - self.last_start) // self.window_ms - 1
            if gap > 0:
                self._decay((1 - self.alpha) ** gap)
        scored = []
        for key, clicks in counts.items():
            base = self.baseline.get(key, 0.0)
            scored.append((key, clicks, base, (clicks + 1) / (base + 1)))
        best = heapq.nsmallest(n, scored, key=lambda r: (-r[3], -r[1], r[0]))
        self._decay(1 - self.alpha)
        for key, clicks in counts.items():
            self.baseline[key] = self.baseline.get(key, 0.0) + self.alpha * clicks
        self.last_start = start_ms
        return best

    def _decay(self, factor: float) -> None:
        self.baseline = {k: v * factor for k, v in self.baseline.items() if v * factor >= BASELINE_FLOOR}


class WindowState:
    """Open windows of every metric and size; finalizes them as the watermark passes.

    ``finalized_ms``: every window ending at or before it is final. ``snapshot()`` and
    ``restore()`` carry everything that must survive a restart (the open windows' partial
    counts, late counts of open windows, the sliding buckets, the trending baselines and
    the totals of windows final within ``FINAL_TOTALS_HORIZON_MS``); ``pipeline.checkpoint``
    saves them with the offsets they cover.
    """

    def __init__(self, finalized_ms: int = 0) -> None:
        self.finalized_ms = finalized_ms
        self.max_end_finalized_ms = finalized_ms
        # open tumbling windows' partial counts, by window end: a cycle touches only the
        # partials it adds and the windows it closes, never the whole open state
        self._open: dict[int, list[pa.Table]] = {}
        self._running: Counter[TotalsKey] = Counter()  # on-time clicks of each open window
        self._open_late: Counter[TotalsKey] = Counter()
        self.late_rewrites: Counter[TotalsKey] = Counter()
        self.final_totals: dict[TotalsKey, list[int]] = {}
        self._sliding: dict[str, SlidingCounts] = {}
        self.trending = Trending()

    # -- absorbing partials --------------------------------------------------------------
    def add_counts(self, counts: pa.Table) -> None:
        """Absorb a partial (``COUNT_SCHEMA``); costs O(its rows), not O(the open state)."""
        if not counts.num_rows:
            return
        if counts.schema != COUNT_SCHEMA:  # (concatenated with the others)
            counts = counts.cast(COUNT_SCHEMA)
        ends = pc.add(counts["window_start_ms"], counts["window_ms"])
        order = pc.sort_indices(ends)
        counts, ends_sorted = counts.take(order), ends.take(order).to_numpy()
        cuts = np.flatnonzero(ends_sorted[1:] != ends_sorted[:-1]) + 1
        for lo, hi in zip([0, *cuts.tolist()], [*cuts.tolist(), len(ends_sorted)], strict=True):
            end = int(ends_sorted[lo])
            bucket = self._open.setdefault(end, [])
            bucket.append(counts.slice(lo, hi - lo))  # zero-copy
            if len(bucket) > COMPACT_FRAMES:
                self._open[end] = [_summed(pa.concat_tables(bucket))]
        by_type = counts.filter(pc.equal(counts["metric"], METRIC_LINK_TYPE))
        if by_type.num_rows:
            totals = by_type.group_by(["window_ms", "window_start_ms"], use_threads=False).aggregate(
                [("clicks", "sum")])
            for window_ms, start, clicks in zip(totals["window_ms"].to_pylist(),
                                                totals["window_start_ms"].to_pylist(),
                                                totals["clicks_sum"].to_pylist(), strict=True):
                self._running[(window_ms, start)] += clicks

    def add_late(self, late: Iterable[tuple[int, int, int]]) -> None:
        """``(window_ms, window_start_ms, late clicks)`` of every window holding late clicks."""
        for window_ms, start, n in late:
            if start + window_ms <= self.finalized_ms:
                self.late_rewrites[(window_ms, start)] += n
            else:
                self._open_late[(window_ms, start)] += n

    # -- closing windows -----------------------------------------------------------------
    def finalize(self, until_ms: int) -> WindowRows:
        """Close every window ending at or before ``until_ms`` and return its rows."""
        rows = WindowRows()
        if until_ms <= self.finalized_ms:
            return rows
        closing = [table for end in sorted(e for e in self._open if e <= until_ms)
                   for table in self._open.pop(end)]
        for key in [k for k in self._running if k[0] + k[1] <= until_ms]:
            del self._running[key]
        final = (_summed(pa.concat_tables(closing)).to_pandas() if closing else empty_counts())
        self._tumbling_rows(final, rows)
        ten = final[final["window_ms"] == SLIDING_STEP_MS]
        for metric, frame in ten.groupby("metric", sort=True):
            sliding = self._sliding.setdefault(str(metric), SlidingCounts())
            for start, part in frame.groupby("window_start_ms", sort=True):
                sliding.add_bucket(int(start), dict(zip(part["key"], part["clicks"].astype(int),
                                                        strict=True)))
        self._sliding_rows(until_ms, rows)
        if not ten.empty:
            dest = ten[ten["metric"] == METRIC_DESTINATION]
            for start, part in dest.groupby("window_start_ms", sort=True):
                counts_by_key = dict(zip(part["key"], part["clicks"].astype(int), strict=True))
                for rank, (key, clicks, base, lift) in enumerate(self.trending.step(int(start),
                                                                                    counts_by_key), 1):
                    rows.trending.append(TrendingRow(TRENDING_WINDOW_MS, int(start), rank, key, clicks,
                                                     base, lift))
        self._late_only_rows(until_ms, rows)
        for window_ms, start, clicks, late in rows.totals:
            self.final_totals[(window_ms, start)] = [clicks, late]
            self.max_end_finalized_ms = max(self.max_end_finalized_ms, start + window_ms)
        self.finalized_ms = until_ms
        horizon = min(until_ms, self.max_end_finalized_ms) - FINAL_TOTALS_HORIZON_MS
        for key in [k for k in self.final_totals if k[0] + k[1] < horizon]:
            del self.final_totals[key]
        return rows

    def open_totals(self) -> list[TotalsRow]:
        """Running totals of the open tumbling windows (on-time clicks so far, late so far)."""
        return [TotalsRow(w, s, c, self._open_late.get((w, s), 0))
                for (w, s), c in sorted(self._running.items())]

    def finalize_all(self) -> WindowRows:
        """Close every open window (clean stop); ``finalized_ms`` becomes the latest end closed."""
        rows = self.finalize(2**62)
        self.finalized_ms = self.max_end_finalized_ms
        return rows

    def _tumbling_rows(self, final: pd.DataFrame, rows: WindowRows) -> None:
        if final.empty:
            return
        ordered = final.sort_values(["metric", "window_ms", "window_start_ms", "clicks", "key"],
                                    ascending=[True, True, True, False, True], kind="mergesort")
        head = ordered.groupby(["metric", "window_ms", "window_start_ms"], sort=False).head(TOP_N)
        ranks = head.groupby(["metric", "window_ms", "window_start_ms"], sort=False).cumcount() + 1
        rows.topn += [TopNRow(m, int(w), int(s), int(r), k, int(c)) for m, w, s, k, c, r in zip(
            head["metric"], head["window_ms"], head["window_start_ms"], head["key"], head["clicks"],
            ranks, strict=True)]
        full = final[final["window_ms"].isin(FULL_COUNT_WINDOWS_MS)]
        rows.counts += [CountRow(m, int(w), int(s), k, int(c)) for m, w, s, k, c in zip(
            full["metric"], full["window_ms"], full["window_start_ms"], full["key"], full["clicks"],
            strict=True)]
        by_type = final[final["metric"] == METRIC_LINK_TYPE]
        totals = by_type.groupby(["window_ms", "window_start_ms"], sort=True)["clicks"].sum()
        for (window_ms, start), clicks in totals.items():
            late = self._open_late.pop((int(window_ms), int(start)), 0)
            rows.totals.append(TotalsRow(int(window_ms), int(start), int(clicks), late))

    def _sliding_rows(self, until_ms: int, rows: WindowRows) -> None:
        totals: dict[int, int] = {}
        for metric in sorted(self._sliding):
            for start, counts in self._sliding[metric].finalize(until_ms):
                for rank, (key, clicks) in enumerate(top_n(counts), 1):
                    rows.topn.append(TopNRow(metric, SLIDING_WINDOW_MS, start, rank, key, clicks))
                if metric == METRIC_LINK_TYPE:
                    totals[start] = sum(counts.values())
        for start in sorted(totals):
            late = self._open_late.pop((SLIDING_WINDOW_MS, start), 0)
            rows.totals.append(TotalsRow(SLIDING_WINDOW_MS, start, totals[start], late))

    def _late_only_rows(self, until_ms: int, rows: WindowRows) -> None:
        for key in sorted(k for k in self._open_late if k[0] + k[1] <= until_ms):
            rows.totals.append(TotalsRow(key[0], key[1], 0, self._open_late.pop(key)))

    def take_late_rewrites(self, stored: dict[TotalsKey, StoredTotals], cycle: int) -> list[TotalsRow]:
        """Rows rewriting final windows that got late clicks, as absolute values.

        ``stored`` has the store's row of each window in ``unknown_final()`` (older than the
        horizon kept in memory). A row already written by this very ``cycle`` (a cycle run
        again after a crash) holds this cycle's late clicks already: they are not added twice.
        """
        out = []
        for key in sorted(self.late_rewrites):
            n = self.late_rewrites[key]
            known = self.final_totals.get(key)
            if known is None:
                row = stored.get(key)
                if row is None:
                    known = [0, 0]
                elif row.cycle >= cycle:
                    known = [row.clicks, row.late_clicks - n]
                else:
                    known = [row.clicks, row.late_clicks]
                self.final_totals[key] = known
            known[1] += n
            out.append(TotalsRow(key[0], key[1], known[0], known[1]))
        self.late_rewrites.clear()
        return out

    def unknown_final(self) -> Sequence[TotalsKey]:
        """Final windows with late clicks pending whose totals must be read from the store."""
        return [k for k in self.late_rewrites if k not in self.final_totals]

    # -- checkpoints -----------------------------------------------------------------------
    def snapshot(self) -> tuple[dict[str, Any], dict[str, pa.Table]]:
        """Everything a restart needs, as JSON-able metadata and Arrow tables."""
        if self.late_rewrites:
            raise RuntimeError("snapshot with late rewrites not yet written (flush first)")
        tables = [table for end in sorted(self._open) for table in self._open[end]]
        counts = _summed(pa.concat_tables(tables)) if tables else COUNT_SCHEMA.empty_table()
        metrics: list[str] = []
        starts: list[int] = []
        keys: list[str] = []
        clicks: list[int] = []
        for metric, sc in sorted(self._sliding.items()):  # whole columns at a time, no row tuples
            for start, bucket in sorted(sc.buckets.items()):
                metrics += [metric] * len(bucket)
                starts += [start] * len(bucket)
                keys += bucket.keys()
                clicks += bucket.values()
        sliding = pa.table({"metric": pa.array(metrics, pa.string()),
                            "window_start_ms": pa.array(starts, pa.int64()),
                            "key": pa.array(keys, pa.string()), "clicks": pa.array(clicks, pa.int64())})
        trending = pa.table({"key": pa.array(list(self.trending.baseline), pa.string()),
                             "baseline": pa.array(list(self.trending.baseline.values()), pa.float64())})
        meta = {
            "finalized_ms": self.finalized_ms,
            "max_end_finalized_ms": self.max_end_finalized_ms,
            "open_late": [[w, s, n] for (w, s), n in sorted(self._open_late.items())],
            "final_totals": [[w, s, c, lt] for (w, s), (c, lt) in sorted(self.final_totals.items())],
            "sliding_next_start_ms": {m: sc.next_start for m, sc in sorted(self._sliding.items())},
            "trending_last_start_ms": self.trending.last_start,
        }
        tables = {"open_counts": counts,
                  "sliding_buckets": sliding, "trending_baseline": trending}
        return meta, tables

    @classmethod
    def restore(cls, meta: dict[str, Any], tables: dict[str, pa.Table]) -> WindowState:
        """The state ``snapshot()`` described."""
        state = cls(int(meta["finalized_ms"]))
        state.max_end_finalized_ms = int(meta["max_end_finalized_ms"])
        state.add_counts(tables["open_counts"])
        state._open_late = Counter({(int(w), int(s)): int(n) for w, s, n in meta["open_late"]})
        state.final_totals = {(int(w), int(s)): [int(c), int(lt)] for w, s, c, lt in meta["final_totals"]}
        buckets = tables["sliding_buckets"].to_pandas()
        for metric, next_start in meta["sliding_next_start_ms"].items():
            sc = state._sliding[metric] = SlidingCounts()
            mine = buckets[buckets["metric"] == metric]
            for start, part in mine.groupby("window_start_ms", sort=True):
                sc.buckets[int(start)] = dict(zip(part["key"], part["clicks"].astype(int), strict=True))
            sc.next_start = None if next_start is None else int(next_start)
            if sc.next_start is not None:  # the buckets already entered the window at next_start
                for start, bucket in sc.buckets.items():
                    if start < sc.next_start + sc.window_ms - sc.step_ms:
                        for key, n in bucket.items():
                            sc.running[key] = sc.running.get(key, 0) + n
        trend = tables["trending_baseline"]
        state.trending.baseline = dict(zip(trend["key"].to_pylist(), trend["baseline"].to_pylist(),
                                           strict=True))
        last = meta["trending_last_start_ms"]
        state.trending.last_start = None if last is None else int(last)
        return state
