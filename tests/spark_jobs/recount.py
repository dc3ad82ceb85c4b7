"""Independent pandas recounts of an archive's clicks: what the Spark jobs must produce."""

from __future__ import annotations

from typing import Any

import pandas as pd

from clickstream.windows import DAY_MS, FULL_COUNT_WINDOWS_MS, HOUR_MS, METRICS, TUMBLING_WINDOWS_MS, day_of

# Restated on purpose (not clickstream.windows.METRIC_COLUMNS): the oracle checks that map too.
_METRIC_COLUMN = {"destination": "curr", "source": "prev", "referrer": "referrer_class",
                  "link_type": "link_type"}


def _rank(frame: pd.DataFrame, group: str | None, title: str, limit: int) -> pd.DataFrame:
    keys = ([group] if group else []) + ["clicks", title]
    frame = frame.sort_values(keys, ascending=[True] * bool(group) + [False, True])
    frame["rank"] = (frame.groupby(group).cumcount() if group else pd.Series(range(len(frame)),
                                                                               index=frame.index)) + 1
    return frame[frame["rank"] <= limit]


def batch_tables(clicks: pd.DataFrame, top_n: int, scope: str = "all",
                 whole_days: set[str] | None = None) -> dict[str, set[tuple[Any, ...]]]:
    """Every batch table's rows as sets of tuples in table column order."""
    edges = clicks.groupby(["prev", "curr"]).size().rename("clicks").reset_index()
    edges = edges.rename(columns={"prev": "source", "curr": "destination"})
    top_dest = _rank(edges.copy(), "source", "destination", top_n)
    top_src = _rank(edges.copy(), "destination", "source", top_n)
    sources = (edges[~edges["source"].str.startswith("other-")].groupby("source")["clicks"].sum()
               .rename_axis("title").reset_index())
    dests = edges.groupby("destination")["clicks"].sum().rename_axis("title").reset_index()
    top_articles = {("source", r.rank, r.title, r.clicks)
                    for r in _rank(sources, None, "title", 100).itertuples()}
    top_articles |= {("destination", r.rank, r.title, r.clicks)
                     for r in _rank(dests, None, "title", 100).itertuples()}

    frame = clicks.assign(hour_ms=clicks["ts_ms"] - clicks["ts_ms"] % HOUR_MS,
                          day_ms=clicks["ts_ms"] - clicks["ts_ms"] % DAY_MS)
    frame["day"] = [day_of(int(ms)) for ms in frame["day_ms"]]
    if whole_days is None:
        whole_days = set(frame["day"])
    daily = frame[frame["day"].isin(whole_days)]
    rollups: set[tuple[Any, ...]] = set()
    for metric, column in (("destination", "curr"), ("referrer", "referrer_class")):
        for (key, bucket), n in frame.groupby([column, "hour_ms"]).size().items():
            rollups.add((metric, "hour", key, int(bucket), int(n)))
        for (key, bucket), n in daily.groupby([column, "day_ms"]).size().items():
            rollups.add((metric, "day", key, int(bucket), int(n)))
    shares: set[tuple[Any, ...]] = set()
    scoped = ([(scope, frame)] + [(f"day:{d}", g) for d, g in daily.groupby("day")]
              + [(str(title), g) for title, g in frame.groupby("curr")])
    for scope_name, part in scoped:
        counts = part.groupby("link_type").size()
        for link_type, n in counts.items():
            shares.add((scope_name, link_type, int(n), int(n) / int(counts.sum())))
    return {
        "top_destinations": {(r.source, r.rank, r.destination, r.clicks) for r in top_dest.itertuples()},
        "top_sources": {(r.destination, r.rank, r.source, r.clicks) for r in top_src.itertuples()},
        "top_articles": top_articles,
        "rollups": rollups,
        "link_type_share": shares,
    }


def window_totals(clicks: pd.DataFrame) -> dict[tuple[int, str, int], tuple[int, int]]:
    """(window_ms, day, window_start_ms) -> (clicks, late_clicks) for every tumbling size."""
    out: dict[tuple[int, str, int], tuple[int, int]] = {}
    for window_ms in TUMBLING_WINDOWS_MS:
        starts = clicks["ts_ms"] - clicks["ts_ms"] % window_ms
        grouped = clicks.assign(start=starts).groupby("start")["late"].agg(["size", "sum"])
        for start, row in grouped.iterrows():
            out[(window_ms, day_of(int(start)), int(start))] = (int(row["size"]), int(row["sum"]))
    return out


def window_counts(clicks: pd.DataFrame) -> dict[tuple[str, int, int, str], int]:
    """(metric, window_ms, window_start_ms, key) -> clicks for the full-count windows."""
    out: dict[tuple[str, int, int, str], int] = {}
    for window_ms in FULL_COUNT_WINDOWS_MS:
        starts = clicks["ts_ms"] - clicks["ts_ms"] % window_ms
        for metric in METRICS:
            grouped = clicks.assign(start=starts).groupby(["start", _METRIC_COLUMN[metric]]).size()
            for (start, key), n in grouped.items():
                out[(metric, window_ms, int(start), key)] = int(n)
    return out
