"""Store sink: final windows to the store tables (``clickstream.store``), idempotent.

``add`` buffers rows; ``flush`` upserts them and blocks until the store acknowledged every
row. Every value is absolute (a window's clicks, its late clicks, its top-N) and keyed by
the pipeline's id, so running the same cycle again rewrites the same rows and two
pipelines never touch each other's. ``window_totals.written_ms`` is the wall time of the
write and ``cycle`` the cycle that wrote it (see ``WindowState.take_late_rewrites``).
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from typing import Any

from clickstream.store import Store
from clickstream.windows import day_of
from pipeline.operators.windows import StoredTotals, TotalsKey, TotalsRow, WindowRows


class StoreSink:
    def __init__(self, store: Store, pipeline_id: str) -> None:
        self.store = store
        self.pipeline_id = pipeline_id
        self._rows: dict[str, list[tuple[Any, ...]]] = {}

    def _put(self, table: str, rows: list[tuple[Any, ...]]) -> None:
        if rows:
            self._rows.setdefault(table, []).extend(rows)

    def add(self, rows: WindowRows, late_rewrites: Sequence[TotalsRow], cycle: int) -> None:
        now_ms = int(time.time() * 1000)
        p = self.pipeline_id
        self._put("window_totals", [(p, t.window_ms, day_of(t.window_start_ms), t.window_start_ms,
                                     t.clicks, t.late_clicks, now_ms, cycle, 1)
                                    for t in [*rows.totals, *late_rewrites]])
        self._put("window_topn", [(p, *r) for r in rows.topn])
        self._put("window_counts", [(p, *r) for r in rows.counts])
        self._put("key_series", [(p, r.metric, r.window_ms, r.key, r.window_start_ms, r.clicks)
                                 for r in rows.counts])
        self._put("trending", [(p, *r) for r in rows.trending])

    def add_running(self, totals: Sequence[TotalsRow], cycle: int) -> None:
        """Running totals of open windows (``final = 0``); the final row overwrites them."""
        now_ms = int(time.time() * 1000)
        self._put("window_totals", [(self.pipeline_id, t.window_ms, day_of(t.window_start_ms),
                                     t.window_start_ms, t.clicks, t.late_clicks, now_ms, cycle, 0)
                                    for t in totals])

    def add_rows(self, table: str, rows: list[tuple[Any, ...]]) -> None:
        """Rows of another table, in its column order (metrics, pipeline state)."""
        self._put(table, rows)

    def flush(self) -> int:
        """Upsert everything added; returns rows written. Blocks until durable.

        A table whose write failed keeps its rows (and the ones after it), so a retry
        after an outage writes them again (upserts: no harm done to the ones that landed).
        """
        n = 0
        for table in list(self._rows):
            n += self.store.upsert(table, self._rows[table])
            del self._rows[table]
        return n

    def stored_totals(self, keys: Sequence[TotalsKey]) -> dict[TotalsKey, StoredTotals]:
        """The stored ``window_totals`` of windows, for late-click rewrites."""
        out = {}
        for window_ms, start in keys:
            found = self.store.select("window_totals", {"pipeline": self.pipeline_id, "window_ms": window_ms,
                                                        "day": day_of(start)}, start=start, end=start + 1)
            if found:
                row = found[0]
                out[(window_ms, start)] = StoredTotals(int(row["clicks"]), int(row["late_clicks"]),
                                                       int(row["cycle"] or 0))
        return out
