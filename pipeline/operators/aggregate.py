"""Per-batch window aggregation (pure, columnar), run on the Dask workers.

A batch of clicks (an Arrow table) becomes one small Arrow table of partial counts per
``(metric, window_ms, window_start_ms, key)`` for the tumbling sizes, plus late counts per
window. Only these partials travel to the driver, where ``operators.windows`` merges them.

Lateness rule: a click is *late* when the watermark had already passed the end of its 1 s
window when its batch was planned (``finalized_ms`` of the cycle's plan, which is what
the driver had finalized before it). A late click is counted in ``late_clicks`` of every
window (all sizes, sliding too) that holds it, in no window's ``clicks``, and archived
with ``late=True``. The plan is logged before the batch runs, so a batch re-run after a
crash classes the same clicks late (see ``pipeline.checkpoint``).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc

from clickstream.referrers import classify
from clickstream.windows import (
    METRIC_COLUMNS,
    METRIC_DESTINATION,
    METRIC_LINK_TYPE,
    METRIC_REFERRER,
    METRIC_SOURCE,
    REFERRER_CLASS_COLUMN,
    SLIDING_STEP_MS,
    SLIDING_WINDOW_MS,
    TUMBLING_WINDOWS_MS,
    window_start_ms,
)

KeyFunction = Callable[[pd.DataFrame], pd.Series]
COUNT_COLUMNS = ["metric", "window_ms", "window_start_ms", "key", "clicks"]
COUNT_SCHEMA = pa.schema([("metric", pa.string()), ("window_ms", pa.int64()),
                          ("window_start_ms", pa.int64()), ("key", pa.string()),
                          ("clicks", pa.int64())])
FINEST_WINDOW_MS = min(TUMBLING_WINDOWS_MS)


@dataclass(frozen=True)
class Aggregate:
    """A metric: its name (the ``metric`` column) and a key per click.

    Either ``column``, a column of the click table (the built-ins: no Python per click), or
    ``key``, a function from the clicks as a pandas frame (columns click_id, ts_ms, prev,
    curr, link_type, referrer_class) to a Series aligned with it. ``key`` runs on the
    workers, so it must be picklable (a module-level function or a lambda in a script both
    work with Dask).
    """

    name: str
    key: KeyFunction | None = None
    column: str | None = None

    def __post_init__(self) -> None:
        if (self.key is None) == (self.column is None):
            raise ValueError(f"aggregate {self.name!r}: give exactly one of key= or column=")

    def keys_of(self, clicks: pa.Table, frame: Callable[[], pd.DataFrame]) -> pa.Array | pa.ChunkedArray:
        if self.column is not None:
            return clicks[self.column]
        assert self.key is not None
        series = pd.Series(self.key(frame()), index=frame().index)
        return pa.array(series.astype(str).to_numpy(dtype=object), pa.string())


BUILTIN_AGGREGATES = tuple(Aggregate(metric, column=METRIC_COLUMNS[metric])
                           for metric in (METRIC_DESTINATION, METRIC_SOURCE, METRIC_REFERRER,
                                          METRIC_LINK_TYPE))


def with_referrer_class(clicks: pa.Table) -> pa.Table:
    """The clicks with ``referrer_class`` of each ``prev`` (classified once per distinct prev)."""
    uniq = pc.unique(clicks["prev"])
    classes = pa.array([classify(p) for p in uniq.to_pylist()], pa.string())
    return clicks.append_column(REFERRER_CLASS_COLUMN,
                                pc.take(classes, pc.index_in(clicks["prev"], value_set=uniq)))


def late_mask(ts_ms: np.ndarray, finalized_ms: int) -> np.ndarray:
    """True where the click's finest window had ended by ``finalized_ms``."""
    return (ts_ms - ts_ms % FINEST_WINDOW_MS + FINEST_WINDOW_MS) <= finalized_ms


def window_counts(clicks: pa.Table, aggregates: Sequence[Aggregate],
                  windows_ms: Sequence[int] = TUMBLING_WINDOWS_MS) -> pa.Table:
    """Partial counts of ``clicks`` (on-time) in ``COUNT_SCHEMA``, one row per key and window.

    Counted once at the finest size by a hash group-by, coarser sizes from those counts.
    """
    if clicks.num_rows == 0:
        return COUNT_SCHEMA.empty_table()
    ts = clicks["ts_ms"].to_numpy()
    finest = min(windows_ms)
    starts = pa.array(ts - ts % finest)
    cached: list[pd.DataFrame] = []

    def frame() -> pd.DataFrame:
        if not cached:
            cached.append(clicks.to_pandas())
        return cached[0]

    parts = []
    for agg in aggregates:
        keys = agg.keys_of(clicks, frame)
        fine = (pa.table({"window_start_ms": starts, "key": keys})
                .group_by(["window_start_ms", "key"], use_threads=False)
                .aggregate([([], "count_all")]).rename_columns(["window_start_ms", "key", "clicks"]))
        for window_ms in windows_ms:
            if window_ms == finest:
                sized = fine
            else:
                fine_starts = fine["window_start_ms"].to_numpy()
                sized = (pa.table({"window_start_ms": pa.array(fine_starts - fine_starts % window_ms),
                                   "key": fine["key"], "clicks": fine["clicks"]})
                         .group_by(["window_start_ms", "key"], use_threads=False)
                         .aggregate([("clicks", "sum")])
                         .rename_columns(["window_start_ms", "key", "clicks"]))
            n = sized.num_rows
            parts.append(pa.table([pa.array([agg.name] * n, pa.string()),
                                   pa.array(np.full(n, window_ms, dtype=np.int64)),
                                   sized["window_start_ms"], sized["key"].cast(pa.string()),
                                   sized["clicks"]], schema=COUNT_SCHEMA))
    return pa.concat_tables(parts)


def late_counts(ts_ms: np.ndarray) -> list[tuple[int, int, int]]:
    """Late clicks per ``(window_ms, window_start_ms)`` for every window holding them."""
    out: list[tuple[int, int, int]] = []
    if ts_ms.size == 0:
        return out
    for window_ms in TUMBLING_WINDOWS_MS:
        starts, n = np.unique(ts_ms - ts_ms % window_ms, return_counts=True)
        out += [(window_ms, int(s), int(c)) for s, c in zip(starts, n, strict=True)]
    last = ts_ms - ts_ms % SLIDING_STEP_MS
    offsets = np.arange(0, SLIDING_WINDOW_MS, SLIDING_STEP_MS, dtype=np.int64)
    starts, n = np.unique((last[:, None] - offsets[None, :]).ravel(), return_counts=True)
    out += [(SLIDING_WINDOW_MS, int(s), int(c)) for s, c in zip(starts, n, strict=True)]
    return out


def max_window_end_ms(ts_ms: int) -> int:
    """The latest end of any window (tumbling or sliding) that holds ``ts_ms``."""
    ends = [window_start_ms(ts_ms, w) + w for w in TUMBLING_WINDOWS_MS]
    ends.append(window_start_ms(ts_ms, SLIDING_STEP_MS) + SLIDING_WINDOW_MS)
    return max(ends)
