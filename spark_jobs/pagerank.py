"""PageRank job: ``spark-submit spark_jobs/pagerank.py <archive URL> [--variant ..] [--other ..]``.

Spark scans the archive and aggregates clicks into distinct edges (prev, curr, clicks);
the edge list (a few bytes per edge, 5M edges ~ 0.3 GB) is collected to the driver, where
``spark_jobs.pagerank_math`` runs a vectorised scipy.sparse power iteration. The iteration
is not distributed: a sparse mat-vec over tens of millions of edges takes well under a
second per iteration on one core, far faster than a Spark join per iteration (see
``spark_jobs.baselines.rdd_pagerank``, the 2017 platform's loop, and benchmarks/spark.py).

Arrivals from outside Wikipedia (``other-*`` referrers: search engines, empty referrer,
other sites) are the teleport distribution by default (``--other teleport``): the random
surfer enters the graph where real readers enter it, and every clicked article is ranked,
including those reached only from outside (on the October 2024 sample of
shared/data/wikipedia-clickstream, ``--other exclude`` leaves 2,804 of its 9,820 clicked
articles unranked: benchmarks/RESULTS-cli.md). ``--other exclude`` is the 2017 platform's
graph: article -> article edges only, a uniform teleport.

Writes, per variant (``weighted``/``unweighted``, suffixed ``-exclude`` with
``--other exclude``) and run date:

- ``pagerank_runs``: iterations, converged (1/0), nodes, edges (upsert, idempotent). The
  command's exit status is ``EXIT_NOT_CONVERGED`` (4) when a variant did not converge
  within ``--max-iter`` (its scores are written all the same).
- ``pagerank_top``: the top ``--top-n`` titles; the (run_date, variant) partition is
  replaced whole, so a re-run leaves no stale ranks.
- every node's score to ``<archive>/pagerank/run_date=YYYY-MM-DD/variant=<v>/`` (Parquet,
  that folder overwritten).
"""

from __future__ import annotations

import argparse
import datetime as dt
import sys
import time
from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np

from clickstream.archive import PAGERANK_DIR, join
from clickstream.settings import Settings
from clickstream.store import open_store
from spark_jobs.entry import archive_and_range, submit_main
from spark_jobs.pagerank_math import (
    DEFAULT_DAMPING,
    DEFAULT_MAX_ITER,
    DEFAULT_TOL,
    OTHER_MODES,
    OTHER_TELEPORT,
    ClickGraph,
    PageRankResult,
    build_graph,
    graph_pagerank,
    top_n,
)
from spark_jobs.source import HourRange, JobInputError, read_clicks, spark_url

if TYPE_CHECKING:
    import pandas as pd
    from pyspark.sql import SparkSession

VARIANTS = ("weighted", "unweighted")
DEFAULT_TOP_N = 100
DEFAULT_OTHER = OTHER_TELEPORT
EXIT_NOT_CONVERGED = 4  # the exit status when a variant did not converge (README.md, `clickstream --help`)


@dataclass(frozen=True)
class PageRankRun:
    variant: str
    run_date: str
    graph: ClickGraph
    result: PageRankResult
    ranks_url: str


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--variant", choices=(*VARIANTS, "both"), default="both",
                        help="edge weights: clicks (weighted) or 1 per edge (unweighted, the 2017 "
                             "platform's); default both")
    parser.add_argument("--other", choices=OTHER_MODES, default=DEFAULT_OTHER,
                        help="other-* referrers (arrivals from outside Wikipedia): their clicks as the "
                             "teleport distribution (default), or excluded from the graph with a "
                             "uniform teleport (the 2017 platform's)")
    parser.add_argument("--damping", type=float, default=DEFAULT_DAMPING, help="damping factor (0.85)")
    parser.add_argument("--tol", type=float, default=DEFAULT_TOL,
                        help=f"stop when the L1 change < nodes * tol (default {DEFAULT_TOL})")
    parser.add_argument("--max-iter", type=int, default=DEFAULT_MAX_ITER,
                        help=f"iteration cap (default {DEFAULT_MAX_ITER})")
    parser.add_argument("--top-n", type=int, default=DEFAULT_TOP_N, help="titles kept in pagerank_top")
    parser.add_argument("--run-date", default=None, help="run date YYYY-MM-DD (default: today, UTC)")


def load_edges(spark: SparkSession, archive_url: str, hours: HourRange | None = None) -> pd.DataFrame:
    """Distinct (prev, curr, clicks) edges of the archive, aggregated by Spark, on the driver."""
    from pyspark.sql import functions as F

    edges = (read_clicks(spark, archive_url, hours).groupBy("prev", "curr")
             .agg(F.count(F.lit(1)).alias("clicks")))
    return edges.toPandas()


def variant_name(weighted: bool, other: str) -> str:
    """``weighted``/``unweighted`` for the default ``other`` mode, suffixed ``-<mode>`` otherwise."""
    return ("weighted" if weighted else "unweighted") + ("" if other == DEFAULT_OTHER else f"-{other}")


def run_pagerank(spark: SparkSession, settings: Settings, archive_url: str, hours: HourRange, *,
                 variants: tuple[str, ...] = VARIANTS, other: str = DEFAULT_OTHER,
                 damping: float = DEFAULT_DAMPING, tol: float = DEFAULT_TOL,
                 max_iter: int = DEFAULT_MAX_ITER, top: int = DEFAULT_TOP_N,
                 run_date: str | None = None) -> list[PageRankRun]:
    """Rank the archive's click graph for each variant and write the results (see module doc)."""
    run_date = run_date or dt.datetime.now(dt.UTC).strftime("%Y-%m-%d")
    try:
        dt.date.fromisoformat(run_date)
    except ValueError:
        raise JobInputError(f"--run-date: {run_date!r} is not YYYY-MM-DD") from None
    edges = load_edges(spark, archive_url, hours)
    if edges.empty:
        raise JobInputError(f"archive {archive_url} ({hours.label()}): no clicks to rank")
    runs = []
    for weighting in variants:
        graph = build_graph(edges["prev"].to_numpy(), edges["curr"].to_numpy(), edges["clicks"].to_numpy(),
                            weighted=weighting == "weighted", other=other)
        result = graph_pagerank(graph, damping=damping, tol=tol, max_iter=max_iter)
        name = variant_name(weighting == "weighted", other)
        ranks_url = write_ranks(spark, archive_url, run_date, name, graph, result)
        write_store(settings, run_date, name, graph, result, top)
        runs.append(PageRankRun(name, run_date, graph, result, ranks_url))
    return runs


def write_ranks(spark: SparkSession, archive_url: str, run_date: str, variant: str, graph: ClickGraph,
                result: PageRankResult) -> str:
    """Every node's (title, score) to the archive's pagerank folder (overwritten)."""
    import pandas as pd

    url = join(spark_url(archive_url), PAGERANK_DIR, f"run_date={run_date}", f"variant={variant}")
    frame = pd.DataFrame({"title": graph.titles.astype(str), "score": result.scores})
    spark.createDataFrame(frame).coalesce(1).write.mode("overwrite").parquet(url)
    return url


def write_store(settings: Settings, run_date: str, variant: str, graph: ClickGraph, result: PageRankResult,
                top: int) -> None:
    store = open_store(settings)
    try:
        partition = {"run_date": run_date, "variant": variant}
        store.delete_partition("pagerank_top", partition)
        store.upsert("pagerank_top", [{**partition, "rank": rank, "title": title, "score": score}
                                      for rank, title, score in top_n(result.scores, graph.titles, top)])
        store.upsert("pagerank_runs", [{
            "variant": variant, "run_date": run_date, "iterations": result.iterations,
            "converged": int(result.converged), "nodes": graph.n_nodes, "edges": graph.n_edges}])
    finally:
        store.close()


def run(settings: Settings, args: argparse.Namespace) -> int:
    from spark_jobs.session import build_session, session_engine

    archive_url, hours = archive_and_range(settings, args)
    spark = build_session(settings, cassandra=False, app_name="clickstream-pagerank")
    started = time.perf_counter()
    variants = VARIANTS if args.variant == "both" else (args.variant,)
    runs = run_pagerank(spark, settings, archive_url, hours, variants=variants, other=args.other,
                        damping=args.damping, tol=args.tol, max_iter=args.max_iter, top=args.top_n,
                        run_date=args.run_date)
    for r in runs:
        best = r.graph.titles[int(np.argmax(r.result.scores))] if r.graph.n_nodes else "-"
        print(f"pagerank {r.variant} {r.run_date}: {r.graph.n_nodes} nodes, {r.graph.n_edges} edges, "
              f"{r.result.iterations} iterations ({'converged' if r.result.converged else 'NOT converged'}), "
              f"top {best}; all ranks in {r.ranks_url}")
    print(f"pagerank: done in {time.perf_counter() - started:.1f} s (engine {session_engine(spark)})")
    if not all(r.result.converged for r in runs):
        print(f"pagerank: not converged within --max-iter {args.max_iter} (exit {EXIT_NOT_CONVERGED})",
              file=sys.stderr)
        return EXIT_NOT_CONVERGED
    return 0


if __name__ == "__main__":
    sys.exit(submit_main("pagerank", add_arguments, run))
