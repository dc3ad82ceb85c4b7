"""Per-batch window aggregation (pure), run on the Dask workers.

A batch of clicks becomes one small columnar frame of partial counts per
``(metric, window_ms, window_start_ms, key)`` for the tumbling sizes, plus late counts per
window. Only these partials travel to the driver, where ``operators.windows`` merges them.

Lateness rule: a click is *late* when the watermark had already passed the end of its 1 s
window when its batch was read (``finalized_ms`` is what the driver had finalized at the
start of the cycle). A late click is counted in ``late_clicks`` of every window (all sizes,
sliding too) that holds it, in no window's ``clicks``, and archived with ``late=True``.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np
import pandas as pd

from clickstream.events import Click
from clickstream.referrers import classify
from clickstream.windows import (
    METRIC_DESTINATION,
    METRIC_LINK_TYPE,
    METRIC_REFERRER,
    METRIC_SOURCE,
    SLIDING_STEP_MS,
    SLIDING_WINDOW_MS,
    TUMBLING_WINDOWS_MS,
    sliding_starts_ms,
    window_start_ms,
)

KeyFunction = Callable[[pd.DataFrame], pd.Series]
COUNT_COLUMNS = ["metric", "window_ms", "window_start_ms", "key", "clicks"]
FINEST_WINDOW_MS = min(TUMBLING_WINDOWS_MS)


@dataclass(frozen=True)
class Aggregate:
    """A metric: its name (the ``metric`` column) and a key per click.

    ``key`` maps the clicks frame (columns click_id, ts_ms, prev, curr, link_type,
    referrer) to a string Series aligned with it. It runs on the workers, so it must be
    picklable (a module-level function or a lambda in a script both work with Dask).
    """

    name: str
    key: KeyFunction


def _destination(frame: pd.DataFrame) -> pd.Series:
    return frame["curr"]


def _source(frame: pd.DataFrame) -> pd.Series:
    return frame["prev"]


def _referrer(frame: pd.DataFrame) -> pd.Series:
    return frame["referrer"]


def _link_type(frame: pd.DataFrame) -> pd.Series:
    return frame["link_type"]


BUILTIN_AGGREGATES = (
    Aggregate(METRIC_DESTINATION, _destination),
    Aggregate(METRIC_SOURCE, _source),
    Aggregate(METRIC_REFERRER, _referrer),
    Aggregate(METRIC_LINK_TYPE, _link_type),
)


def clicks_frame(clicks: Sequence[Click]) -> pd.DataFrame:
    """The clicks as columns, with the referrer class of each ``prev``."""
    frame = pd.DataFrame.from_records(clicks, columns=list(Click._fields))
    if frame.empty:
        frame["referrer"] = pd.Series(dtype=object)
        return frame.astype({"click_id": "int64", "ts_ms": "int64"})
    uniq = frame["prev"].unique()
    frame["referrer"] = frame["prev"].map(dict(zip(uniq, (classify(p) for p in uniq), strict=True)))
    return frame


def late_mask(ts_ms: np.ndarray, finalized_ms: int) -> np.ndarray:
    """True where the click's finest window had ended by ``finalized_ms``."""
    return (ts_ms - ts_ms % FINEST_WINDOW_MS + FINEST_WINDOW_MS) <= finalized_ms


def window_counts(frame: pd.DataFrame, aggregates: Sequence[Aggregate],
                  windows_ms: Sequence[int] = TUMBLING_WINDOWS_MS) -> pd.DataFrame:
    """Partial counts of ``frame`` (on-time clicks) in COUNT_COLUMNS, one row per key and window."""
    if frame.empty:
        return empty_counts()
    ts = frame["ts_ms"].to_numpy(dtype=np.int64)
    keys = {a.name: pd.Series(a.key(frame), index=frame.index).astype(str).to_numpy() for a in aggregates}
    parts = []
    for window_ms in windows_ms:
        starts = ts - ts % window_ms
        for name, key in keys.items():
            vc = pd.DataFrame({"window_start_ms": starts, "key": key}).value_counts(sort=False)
            part = vc.rename("clicks").reset_index()
            part.insert(0, "window_ms", np.int64(window_ms))
            part.insert(0, "metric", name)
            parts.append(part)
    return pd.concat(parts, ignore_index=True)[COUNT_COLUMNS]


def empty_counts() -> pd.DataFrame:
    return pd.DataFrame({"metric": pd.Series(dtype=object), "window_ms": pd.Series(dtype="int64"),
                         "window_start_ms": pd.Series(dtype="int64"), "key": pd.Series(dtype=object),
                         "clicks": pd.Series(dtype="int64")})


def late_counts(ts_values: Sequence[int]) -> Counter[tuple[int, int]]:
    """Late clicks per ``(window_ms, window_start_ms)`` for every window holding them."""
    out: Counter[tuple[int, int]] = Counter()
    for ts in ts_values:
        for window_ms in TUMBLING_WINDOWS_MS:
            out[(window_ms, window_start_ms(ts, window_ms))] += 1
        for start in sliding_starts_ms(ts, SLIDING_WINDOW_MS, SLIDING_STEP_MS):
            out[(SLIDING_WINDOW_MS, start)] += 1
    return out


def max_window_end_ms(ts_ms: int) -> int:
    """The latest end of any window (tumbling or sliding) that holds ``ts_ms``."""
    ends = [window_start_ms(ts_ms, w) + w for w in TUMBLING_WINDOWS_MS]
    ends.append(window_start_ms(ts_ms, SLIDING_STEP_MS) + SLIDING_WINDOW_MS)
    return max(ends)
