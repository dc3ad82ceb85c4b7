"""The 2017 platform's approaches, kept as benchmark baselines (not used by the jobs).

- ``rdd_pagerank``: the unweighted RDD join loop (Spark's classic example): every page
  starts at 1.0; each iteration joins links with ranks, spreads rank/outdegree along the
  links and sets rank = 0.15 + 0.85 * received. No dangling handling, a fixed iteration
  count (10), and a shuffle-heavy join per iteration.
- ``json_table_job``: one batch table computed the way that platform's batch jobs worked:
  one Spark job per table, each reading the raw JSON lines itself (``spark.read.json``
  with schema inference: one pass to infer, one to parse) and aggregating the raw clicks
  into just the counts its table needs (``batch_tables.aggregate_each``), then deriving
  the table as our job does. Each job caches the columns it parsed for its one to two
  aggregations (so no job parses the file twice), and computes exactly the rows of
  ``spark_jobs.batch_tables`` for the whole input (every day whole).
"""

from __future__ import annotations

from operator import add
from typing import TYPE_CHECKING

from spark_jobs.batch_tables import (
    CLICK_INPUT_COLUMNS,
    DEFAULT_TOP_N,
    TABLE_AGGREGATES,
    aggregate_each,
    derive_table,
)
from spark_jobs.source import HourRange

if TYPE_CHECKING:
    from collections.abc import Iterable

    from pyspark import RDD
    from pyspark.sql import DataFrame, SparkSession

ORIGINAL_ITERATIONS = 10


def rdd_pagerank(edges: DataFrame, iterations: int = ORIGINAL_ITERATIONS) -> dict[str, float]:
    """Ranks after ``iterations`` rounds of the RDD loop over distinct (prev, curr) edges."""
    links = rdd_links(edges)
    try:
        return dict(rdd_iterate(links, iterations).collect())
    finally:
        links.unpersist()


def rdd_links(edges: DataFrame) -> RDD[tuple[str, Iterable[str]]]:
    """The loop's input: page -> its distinct destinations, cached and materialised."""
    links = edges.select("prev", "curr").distinct().rdd.map(tuple).groupByKey().cache()
    links.count()
    return links


def rdd_iterate(links: RDD[tuple[str, Iterable[str]]], iterations: int) -> RDD[tuple[str, float]]:
    """``iterations`` rounds of the join loop from rank 1.0 everywhere (lazy)."""
    ranks = links.mapValues(lambda _: 1.0)
    for _ in range(iterations):
        contributions = links.join(ranks).flatMap(
            lambda page: [(dest, page[1][1] / len(page[1][0])) for dest in page[1][0]])
        ranks = contributions.reduceByKey(add).mapValues(lambda received: 0.15 + 0.85 * received)
    return ranks


def read_json_clicks(spark: SparkSession, path: str) -> DataFrame:
    """JSON-lines clicks (archive columns) with an inferred schema, as the 2017 platform read them."""
    return spark.read.json(path)


def json_table_job(spark: SparkSession, path: str, table_name: str, top_n: int = DEFAULT_TOP_N
                   ) -> tuple[DataFrame, DataFrame]:
    """One table's job over JSON-lines clicks: (the table, lazily; the cached parsed input
    to unpersist after writing it). Reads the file now (schema inference)."""
    parsed = read_json_clicks(spark, path).select(*CLICK_INPUT_COLUMNS).cache()
    aggregates = aggregate_each(parsed, TABLE_AGGREGATES[table_name])
    return derive_table(table_name, aggregates, "all", HourRange().whole_days_ms(), top_n), parsed
