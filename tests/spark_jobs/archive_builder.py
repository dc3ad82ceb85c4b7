"""Small generated archives in the archive layout, written with pyarrow (test helper)."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

from clickstream.archive import CLICK_SCHEMA, filesystem, join, partition_dir
from clickstream.referrers import classify

BASE_TS_MS = 1_422_748_800_000  # 2015-02-01T00:00Z
ARTICLES = [f"Article_{i}" for i in range(60)] + ['"Weird_Al"_Yankovic', "Zürich", "Ångström"]
REFERRERS = ["other-search", "other-empty", "other-external", "other-internal", "other-google",
             "other-twitter", "other-other"]
LINK_TYPES = ["link", "external", "other", "redlink"]


def generate_clicks(n_clicks: int, seed: int = 7, hours: int = 30,
                    start_ms: int = BASE_TS_MS) -> pd.DataFrame:
    """Clicks over ``hours`` hours: Zipf-ish titles, ~30% from ``other-*``, ~5% late."""
    rng = np.random.default_rng(seed)
    weights = 1.0 / np.arange(1, len(ARTICLES) + 1) ** 1.1
    weights /= weights.sum()
    curr = rng.choice(ARTICLES, size=n_clicks, p=weights)
    from_article = rng.random(n_clicks) < 0.7
    prev = np.where(from_article, rng.choice(ARTICLES, size=n_clicks, p=weights),
                    rng.choice(REFERRERS, size=n_clicks))
    frame = pd.DataFrame({
        "click_id": np.arange(n_clicks, dtype=np.int64) + seed * 10_000_000,
        "ts_ms": start_ms + rng.integers(0, hours * 3_600_000, size=n_clicks, dtype=np.int64),
        "prev": prev.astype(object),
        "curr": curr.astype(object),
        "link_type": rng.choice(LINK_TYPES, size=n_clicks, p=[0.6, 0.2, 0.15, 0.05]).astype(object),
        "late": rng.random(n_clicks) < 0.05,
    })
    frame["referrer_class"] = [classify(p) for p in frame["prev"]]
    return frame[list(CLICK_SCHEMA.names)]


def write_archive(clicks: pd.DataFrame, archive_url: str, files_per_hour: int = 2) -> None:
    """Write clicks into ``<archive>/clicks/date=/hour=/part-K.parquet`` (any fsspec URL)."""
    fs, root = filesystem(archive_url)
    stamp = pd.to_datetime(clicks["ts_ms"], unit="ms", utc=True)
    keyed = clicks.assign(_date=stamp.dt.strftime("%Y-%m-%d"), _hour=stamp.dt.hour)
    for (date, hour), group in keyed.groupby(["_date", "_hour"], sort=True):
        folder = partition_dir(root, date, int(hour))
        fs.makedirs(folder, exist_ok=True)
        for k, part in enumerate(np.array_split(group.drop(columns=["_date", "_hour"]), files_per_hour)):
            table = pa.Table.from_pandas(part.reset_index(drop=True), schema=CLICK_SCHEMA,
                                         preserve_index=False)
            with fs.open(join(folder, f"part-{k}.parquet"), "wb") as fh:
                pq.write_table(table, fh)
