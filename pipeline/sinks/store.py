"""Store sink: final windows to the store tables (``clickstream.store``), idempotent.

``add`` buffers rows; ``flush`` upserts them and blocks until the store acknowledged every
row. Every value is absolute (a window's clicks, its late clicks, its top-N), so replaying
the same windows rewrites the same rows. ``window_totals.written_ms`` is the wall time of
the write (the only column that differs between two runs over the same input).
"""

from __future__ import annotations

import time
from typing import Any

from clickstream.store import Store
from clickstream.windows import day_of
from pipeline.operators.windows import WindowRows


class StoreSink:
    def __init__(self, store: Store) -> None:
        self.store = store
        self._rows: dict[str, list[tuple[Any, ...]]] = {}

    def _put(self, table: str, rows: list[tuple[Any, ...]]) -> None:
        if rows:
            self._rows.setdefault(table, []).extend(rows)

    def add(self, rows: WindowRows, late_rewrites: list[tuple[int, int, int, int]] = ()) -> None:  # type: ignore[assignment]
        now_ms = int(time.time() * 1000)
        self._put("window_totals", [(w, day_of(s), s, c, late, now_ms)
                                    for w, s, c, late in [*rows.totals, *late_rewrites]])
        self._put("window_topn", list(rows.topn))
        self._put("window_counts", list(rows.counts))
        self._put("key_series", [(m, w, k, s, c) for m, w, s, k, c in rows.counts])
        self._put("trending", list(rows.trending))

    def add_rows(self, table: str, rows: list[tuple[Any, ...]]) -> None:
        self._put(table, rows)

    def pending(self) -> int:
        return sum(len(r) for r in self._rows.values())

    def flush(self) -> int:
        """Upsert everything added; returns rows written. Blocks until durable."""
        n = 0
        for table, rows in self._rows.items():
            n += self.store.upsert(table, rows)
        self._rows.clear()
        return n

    def stored_totals(self, keys: list[tuple[int, int]]) -> dict[tuple[int, int], tuple[int, int]]:
        """(clicks, late_clicks) of already written windows, for late-click rewrites."""
        out = {}
        for window_ms, start in keys:
            found = self.store.select("window_totals", {"window_ms": window_ms, "day": day_of(start)},
                                      start=start, end=start + 1)
            if found:
                out[(window_ms, start)] = (int(found[0]["clicks"]), int(found[0]["late_clicks"]))
        return out
