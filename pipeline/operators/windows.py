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

import pandas as pd

from clickstream.windows import (
    FULL_COUNT_WINDOWS_MS,
    METRIC_DESTINATION,
    METRIC_LINK_TYPE,
    SLIDING_STEP_MS,
    SLIDING_WINDOW_MS,
    TOP_N,
    TRENDING_WINDOW_MS,
)
from pipeline.operators.aggregate import empty_counts

TRENDING_ALPHA = 0.3
BASELINE_FLOOR = 1e-3

TotalsKey = tuple[int, int]  # (window_ms, window_start_ms)


@dataclass
class WindowRows:
    """Rows produced by one finalization (store sink maps them to tables)."""

    totals: list[tuple[int, int, int, int]] = field(default_factory=list)  # ms, start, clicks, late
    topn: list[tuple[str, int, int, int, str, int]] = field(default_factory=list)
    counts: list[tuple[str, int, int, str, int]] = field(default_factory=list)
    trending: list[tuple[int, int, int, str, int, float, float]] = field(default_factory=list)

    def extend(self, other: WindowRows) -> None:
        self.totals += other.totals
        self.topn += other.topn
        self.counts += other.counts
        self.trending += other.trending

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

    ``finalized_ms``: every window ending at or before it is final (restored from the store
    at start, so a restart knows which windows are closed).
    """

    def __init__(self, finalized_ms: int = 0) -> None:
        self.finalized_ms = finalized_ms
        self.max_end_finalized_ms = finalized_ms
        self._frames: list[pd.DataFrame] = []
        self._open_late: Counter[TotalsKey] = Counter()
        self.late_rewrites: Counter[TotalsKey] = Counter()
        self.final_totals: dict[TotalsKey, list[int]] = {}
        self._sliding: dict[str, SlidingCounts] = {}
        self._sliding_late_only: set[int] = set()
        self.trending = Trending()

    # -- absorbing partials --------------------------------------------------------------
    def add_counts(self, counts: pd.DataFrame) -> None:
        if not counts.empty:
            self._frames.append(counts)

    def add_late(self, late: Iterable[tuple[TotalsKey, int]]) -> None:
        for (window_ms, start), n in late:
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
        counts = pd.concat(self._frames, ignore_index=True) if self._frames else empty_counts()
        closed_mask = (counts["window_start_ms"] + counts["window_ms"]) <= until_ms
        closed = counts[closed_mask]
        rest = counts[~closed_mask]
        if not rest.empty:
            rest = rest.groupby(["metric", "window_ms", "window_start_ms", "key"], sort=False,
                                as_index=False)["clicks"].sum()
        self._frames = [rest] if not rest.empty else []
        final = closed.groupby(["metric", "window_ms", "window_start_ms", "key"], as_index=False,
                               sort=False)["clicks"].sum()
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
                    rows.trending.append((TRENDING_WINDOW_MS, int(start), rank, key, clicks, base, lift))
        self._late_only_rows(until_ms, rows)
        for window_ms, start, clicks, late in rows.totals:
            self.final_totals[(window_ms, start)] = [clicks, late]
            self.max_end_finalized_ms = max(self.max_end_finalized_ms, start + window_ms)
        self.finalized_ms = until_ms
        return rows

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
        rows.topn += [(m, int(w), int(s), int(r), k, int(c)) for m, w, s, k, c, r in zip(
            head["metric"], head["window_ms"], head["window_start_ms"], head["key"], head["clicks"],
            ranks, strict=True)]
        full = final[final["window_ms"].isin(FULL_COUNT_WINDOWS_MS)]
        rows.counts += [(m, int(w), int(s), k, int(c)) for m, w, s, k, c in zip(
            full["metric"], full["window_ms"], full["window_start_ms"], full["key"], full["clicks"],
            strict=True)]
        by_type = final[final["metric"] == METRIC_LINK_TYPE]
        totals = by_type.groupby(["window_ms", "window_start_ms"], sort=True)["clicks"].sum()
        for (window_ms, start), clicks in totals.items():
            late = self._open_late.pop((int(window_ms), int(start)), 0)
            rows.totals.append((int(window_ms), int(start), int(clicks), late))

    def _sliding_rows(self, until_ms: int, rows: WindowRows) -> None:
        totals: dict[int, int] = {}
        for metric in sorted(self._sliding):
            for start, counts in self._sliding[metric].finalize(until_ms):
                for rank, (key, clicks) in enumerate(top_n(counts), 1):
                    rows.topn.append((metric, SLIDING_WINDOW_MS, start, rank, key, clicks))
                if metric == METRIC_LINK_TYPE:
                    totals[start] = sum(counts.values())
        for start in sorted(totals):
            late = self._open_late.pop((SLIDING_WINDOW_MS, start), 0)
            rows.totals.append((SLIDING_WINDOW_MS, start, totals[start], late))

    def _late_only_rows(self, until_ms: int, rows: WindowRows) -> None:
        for key in sorted(k for k in self._open_late if k[0] + k[1] <= until_ms):
            rows.totals.append((key[0], key[1], 0, self._open_late.pop(key)))

    def take_late_rewrites(self, stored: dict[TotalsKey, tuple[int, int]]) -> list[tuple[int, int, int, int]]:
        """Rows rewriting final windows that got late clicks; ``stored`` has (clicks, late)
        of those not finalized in this run (read from the store)."""
        out = []
        for key in sorted(self.late_rewrites):
            known = self.final_totals.get(key)
            if known is None:
                clicks, late = stored.get(key, (0, 0))
                known = self.final_totals[key] = [clicks, late]
            known[1] += self.late_rewrites[key]
            out.append((key[0], key[1], known[0], known[1]))
        self.late_rewrites.clear()
        return out

    def unknown_final(self) -> Sequence[TotalsKey]:
        """Final windows with late clicks pending whose totals must be read from the store."""
        return [k for k in self.late_rewrites if k not in self.final_totals]
