"""Spark jobs: the batch job on Parquet vs JSON lines; PageRank vs the RDD loop and networkx.

- batch: ``spark_jobs.batch_tables.compute_tables`` over the same clicks read from the
  Parquet archive vs from JSON lines (``spark.read.json``, as the 2017 platform did); every
  table is fully computed (written to Spark's ``noop`` sink), the store write is left out
  so the comparison is about the input. Target: Parquet >= 5x faster.
- pagerank: our job's path (Spark edge aggregation from the archive, collect, scipy power
  iteration to tol 1e-8) vs the 2017 RDD join loop (10 iterations; at large sizes only
  ``RDD_ITERATIONS_CAP`` are run and the time is scaled to 10, named "scaled" in the table)
  vs networkx (pandas read + aggregate, DiGraph, ``nx.pagerank`` tol 1e-8). Targets: >= 10x
  the RDD loop, no slower than networkx end to end.
"""

from __future__ import annotations

import tempfile
import time
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

from benchmarks.common import Measurement
from clickstream.archive import CLICK_SCHEMA, partition_dir
from clickstream.referrers import classify
from clickstream.settings import Settings

SUITE = "spark"
RDD_ITERATIONS_CAP = 2
BENCH_TOL = 1e-8


def _clicks(n_clicks: int, n_titles: int, seed: int, hours: int = 24) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    titles = np.array([f"Article_{i}" for i in range(n_titles)], dtype=object)
    referrers = np.array(["other-search", "other-empty", "other-external", "other-internal"], dtype=object)
    curr = titles[rng.zipf(1.3, n_clicks) % n_titles]
    prev = titles[rng.integers(0, n_titles, n_clicks)]
    prev = np.where(rng.random(n_clicks) < 0.3, referrers[rng.integers(0, 4, n_clicks)], prev)
    frame = pd.DataFrame({
        "click_id": np.arange(n_clicks, dtype=np.int64),
        "ts_ms": 1_422_748_800_000 + rng.integers(0, hours * 3_600_000, n_clicks),
        "prev": prev, "curr": curr,
        "link_type": np.array(["link", "external", "other", "redlink"],
                              dtype=object)[rng.integers(0, 4, n_clicks)],
    })
    classes = {p: classify(p) for p in referrers}
    frame["referrer_class"] = [classes.get(p, "link") for p in frame["prev"]]
    frame["late"] = rng.random(n_clicks) < 0.02
    return frame[list(CLICK_SCHEMA.names)]


def _write_parquet_archive(frame: pd.DataFrame, root: Path) -> None:
    hours = (frame["ts_ms"] - 1_422_748_800_000) // 3_600_000
    for hour, part in frame.groupby(hours):
        folder = Path(partition_dir(str(root), "2015-02-01", int(hour)))
        folder.mkdir(parents=True, exist_ok=True)
        pq.write_table(pa.Table.from_pandas(part, schema=CLICK_SCHEMA, preserve_index=False),
                       folder / "part-0.parquet")


def _timed(fn: object) -> float:
    started = time.perf_counter()
    fn()  # type: ignore[operator]
    return time.perf_counter() - started


def _batch(spark: object, root: Path, frame: pd.DataFrame, label: str) -> list[Measurement]:
    from spark_jobs.baselines import read_json_clicks
    from spark_jobs.batch_tables import BATCH_TABLES, compute_tables
    from spark_jobs.source import HourRange, read_clicks

    archive = root / "archive"
    _write_parquet_archive(frame, archive)
    json_path = root / "clicks.jsonl"
    frame.to_json(json_path, orient="records", lines=True)

    def run_on(clicks: object) -> None:
        tables = compute_tables(clicks, HourRange())  # type: ignore[arg-type]
        for name in BATCH_TABLES:
            tables[name].write.format("noop").mode("overwrite").save()
        tables["_base"].unpersist()

    run_on(read_clicks(spark, archive.as_uri()))  # type: ignore[arg-type]  # warm-up (JIT, caches)
    parquet_s = _timed(lambda: run_on(read_clicks(spark, archive.as_uri())))  # type: ignore[arg-type]
    json_s = _timed(lambda: run_on(read_json_clicks(spark, json_path.as_uri())))  # type: ignore[arg-type]
    return [Measurement(SUITE, f"batch tables, Parquet archive, {label}", parquet_s, "s",
                        "same job on JSON lines", json_s, "<= 0.2x", parquet_s <= 0.2 * json_s)]


def _pagerank(spark: object, settings: Settings, root: Path, n_edges: int, label: str) -> list[Measurement]:
    import networkx as nx

    from spark_jobs.baselines import ORIGINAL_ITERATIONS, rdd_pagerank
    from spark_jobs.pagerank import load_edges
    from spark_jobs.pagerank_math import build_graph, graph_pagerank
    from spark_jobs.source import HourRange, read_clicks

    rng = np.random.default_rng(5)
    n_nodes = max(n_edges // 5, 10)
    titles = np.array([f"Page_{i}" for i in range(n_nodes)], dtype=object)
    frame = pd.DataFrame({"click_id": np.arange(n_edges, dtype=np.int64),
                          "ts_ms": 1_422_748_800_000 + rng.integers(0, 3_600_000, n_edges),
                          "prev": titles[rng.integers(0, n_nodes, n_edges)],
                          "curr": titles[rng.zipf(1.5, n_edges) % n_nodes],
                          "link_type": "link", "referrer_class": "link", "late": False})
    archive = root / f"pr-{n_edges}"
    _write_parquet_archive(frame, archive)

    def ours() -> None:
        edges = load_edges(spark, archive.as_uri(), HourRange())  # type: ignore[arg-type]
        graph = build_graph(edges["prev"].to_numpy(), edges["curr"].to_numpy(), edges["clicks"].to_numpy())
        graph_pagerank(graph, tol=BENCH_TOL, max_iter=1000)

    def networkx_run() -> None:
        clicks = pd.read_parquet(archive / "clicks", columns=["prev", "curr"])
        edges = clicks.groupby(["prev", "curr"], sort=False).size().reset_index(name="clicks")
        graph = nx.from_pandas_edgelist(edges, "prev", "curr", edge_attr="clicks", create_using=nx.DiGraph)
        nx.pagerank(graph, alpha=0.85, tol=BENCH_TOL, max_iter=1000, weight="clicks")

    iterations = ORIGINAL_ITERATIONS if n_edges <= 1_000_000 else RDD_ITERATIONS_CAP
    ours_s = _timed(ours)
    rdd_s = _timed(lambda: rdd_pagerank(read_clicks(spark, archive.as_uri()), iterations))  # type: ignore[arg-type]
    rdd_name = "RDD join loop, 10 iterations"
    if iterations != ORIGINAL_ITERATIONS:
        rdd_s *= ORIGINAL_ITERATIONS / iterations
        rdd_name = f"RDD join loop, {iterations} iterations scaled to 10"
    nx_s = _timed(networkx_run)
    return [
        Measurement(SUITE, f"pagerank load+rank, {label}", ours_s, "s", rdd_name, rdd_s, "<= 0.1x",
                    ours_s <= 0.1 * rdd_s),
        Measurement(SUITE, f"pagerank load+rank, {label}", ours_s, "s", "networkx load+rank", nx_s,
                    "<= 1.0x", ours_s <= nx_s),
    ]


def run(settings: Settings, quick: bool) -> list[Measurement]:
    from spark_jobs.session import build_session

    spark = build_session(settings, cassandra=False, app_name="benchmark-spark")
    rows: list[Measurement] = []
    try:
        with tempfile.TemporaryDirectory(prefix="bench-spark-") as tmp:
            root = Path(tmp)
            n_clicks = 300_000 if quick else 3_000_000
            rows += _batch(spark, root, _clicks(n_clicks, 50_000, seed=1), f"{n_clicks:,} clicks")
            for n_edges in ((100_000,) if quick else (1_000_000, 5_000_000)):
                rows += _pagerank(spark, settings, root, n_edges, f"{n_edges:,} edges")
    finally:
        spark.stop()
    return rows
