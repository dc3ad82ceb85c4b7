"""Helpers of the pipeline tests: an independent recount, table dumps, a shared Dask cluster.

The recount is written here with pandas over the generated clicks and never calls
pipeline code, so it can catch the pipeline's mistakes.
"""

from __future__ import annotations

import datetime as dt
import io
import sqlite3
from collections.abc import Iterable, Iterator, Sequence
from pathlib import Path
from typing import Any

import pandas as pd
import pyarrow.parquet as pq
import pytest
from dask.distributed import Client, LocalCluster

from clickstream.archive import filesystem, read_until_whole
from clickstream.events import Click
from clickstream.referrers import classify
from clickstream.settings import Settings

TUMBLING = (1_000, 10_000, 60_000)
SLIDE_MS, STEP_MS = 300_000, 10_000
N_TOP = 10
COMPARED = ("window_totals", "window_topn", "window_counts", "key_series")


def day(ts_ms: int) -> str:
    return dt.datetime.fromtimestamp(ts_ms / 1000, tz=dt.UTC).strftime("%Y-%m-%d")


def _keys(df: pd.DataFrame) -> dict[str, pd.Series]:
    return {"destination": df["curr"], "source": df["prev"],
            "referrer": df["prev"].map(classify), "link_type": df["link_type"]}


def _topn_rows(metric: str, window_ms: int, counts: pd.DataFrame) -> set[tuple[Any, ...]]:
    """counts: columns start, key, n. Top N per start: n desc, key asc."""
    ordered = counts.sort_values(["start", "n", "key"], ascending=[True, False, True])
    out = set()
    for start, part in ordered.groupby("start", sort=False):
        for rank, (key, n) in enumerate(zip(part["key"][:N_TOP], part["n"][:N_TOP], strict=True), 1):
            out.add((metric, window_ms, int(start), rank, key, int(n)))
    return out


def recount(clicks: Sequence[Click], late_ids: Iterable[int] = ()) -> dict[str, set[tuple[Any, ...]]]:
    """Expected rows of the compared tables (window_totals without written_ms)."""
    df = pd.DataFrame(clicks, columns=["click_id", "ts_ms", "prev", "curr", "link_type"])
    late = df["click_id"].isin(set(late_ids))
    keys = _keys(df)
    ts = df["ts_ms"]
    out: dict[str, set[tuple[Any, ...]]] = {t: set() for t in COMPARED}
    totals: dict[tuple[int, int], list[int]] = {}
    for window_ms in TUMBLING:
        start = ts - ts % window_ms
        for (s, is_late), n in df.groupby([start, late]).size().items():
            totals.setdefault((window_ms, int(s)), [0, 0])[1 if is_late else 0] += int(n)
        for metric, key in keys.items():
            c = pd.DataFrame({"start": start[~late], "key": key[~late]}).value_counts().rename("n")
            c = c.reset_index()
            out["window_topn"] |= _topn_rows(metric, window_ms, c)
            if window_ms == 60_000:
                for s, k, n in zip(c["start"], c["key"], c["n"], strict=True):
                    out["window_counts"].add((metric, 60_000, int(s), k, int(n)))
                    out["key_series"].add((metric, 60_000, k, int(s), int(n)))
    bucket = ts - ts % STEP_MS
    for metric, key in keys.items():
        c = pd.DataFrame({"b": bucket[~late], "key": key[~late]}).value_counts().rename("n").reset_index()
        copies = [c.assign(start=c["b"] - j * STEP_MS) for j in range(SLIDE_MS // STEP_MS)]
        sl = pd.concat(copies).groupby(["start", "key"], as_index=False)["n"].sum()
        out["window_topn"] |= _topn_rows(metric, SLIDE_MS, sl)
    for j in range(SLIDE_MS // STEP_MS):
        for (s, is_late), n in df.groupby([bucket - j * STEP_MS, late]).size().items():
            totals.setdefault((SLIDE_MS, int(s)), [0, 0])[1 if is_late else 0] += int(n)
    out["window_totals"] = {(w, day(s), s, c, lt) for (w, s), (c, lt) in totals.items()}
    return out


def assert_tables_equal(got: dict[str, set], want: dict[str, set], tables: Sequence[str] = COMPARED
                        ) -> None:
    """Every table's rows equal; on failure, show a few rows missing and extra, sorted."""
    for name in tables:
        extra, missing = got[name] - want[name], want[name] - got[name]
        assert not extra and not missing, (
            f"{name}: {len(extra)} extra rows, e.g. {sorted(extra)[:5]}; "
            f"{len(missing)} missing rows, e.g. {sorted(missing)[:5]}")


NOT_COMPARED = ("pipeline", "written_ms", "cycle", "final")  # who wrote a row, when, which cycle


def _dump(rows_of: Any, tables: Sequence[str], pipeline: str | None) -> dict[str, set[tuple[Any, ...]]]:
    from clickstream.store.tables import TABLES

    out = {}
    for name in tables:
        names = TABLES[name].column_names
        keep = [i for i, c in enumerate(names) if c not in NOT_COMPARED]
        out[name] = {tuple(r[i] for i in keep) for r in rows_of(name, names)
                     if pipeline is None or r[0] == pipeline}
    return out


def dump_cassandra(settings: Settings, tables: Sequence[str] = COMPARED, pipeline: str | None = None
                   ) -> dict[str, set[tuple[Any, ...]]]:
    """Every row of ``tables`` (of one pipeline, when given) without NOT_COMPARED columns."""
    from clickstream.store.cassandra import connect

    cluster, session = connect(settings, settings.cassandra_keyspace)
    try:
        return _dump(lambda name, cols: session.execute(
            session.prepare(f"SELECT {', '.join(cols)} FROM {name}"), timeout=120), tables, pipeline)
    finally:
        cluster.shutdown()


def dump_sqlite(path: Path, tables: Sequence[str] = COMPARED, pipeline: str | None = None
                ) -> dict[str, set[tuple[Any, ...]]]:
    conn = sqlite3.connect(str(path))
    try:
        return _dump(lambda name, cols: list(conn.execute(f"SELECT {', '.join(cols)} FROM {name}")),
                     tables, pipeline)
    finally:
        conn.close()


PARQUET_MAGIC = b"PAR1"
PARQUET_WHOLE_WITHIN_S = 5.0


def read_archive(url: str) -> pd.DataFrame:
    fs, root = filesystem(url)
    files = [f for f in fs.find(root) if f.endswith(".parquet") and "/_tmp-" not in f]
    frames = []
    for f in files:
        def read(f: str = f) -> bytes:
            with fs.open(f, "rb") as src:
                return src.read()

        # a file the pipeline closed a moment ago may read short from HDFS: a Parquet file
        # is whole when it ends with its footer's magic
        raw = read_until_whole(read, lambda got: not got.endswith(PARQUET_MAGIC), PARQUET_WHOLE_WITHIN_S)
        frames.append(pq.read_table(io.BytesIO(raw)).to_pandas())
    return pd.concat(frames, ignore_index=True) if frames else pd.DataFrame()


@pytest.fixture(scope="module")
def dask_client() -> Iterator[Client]:
    """One LocalCluster of 2 worker processes per test module."""
    cluster = LocalCluster(n_workers=2, threads_per_worker=1, processes=True, host="127.0.0.1",
                           dashboard_address=None)
    client = Client(cluster)
    yield client
    client.close()
    cluster.close()
