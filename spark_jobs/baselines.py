"""The 2017 platform's approaches, kept as benchmark baselines (not used by the jobs).

- ``rdd_pagerank``: the unweighted RDD join loop (Spark's classic example): every page
  starts at 1.0; each iteration joins links with ranks, spreads rank/outdegree along the
  links and sets rank = 0.15 + 0.85 * received. No dangling handling, a fixed iteration
  count (10), and a shuffle-heavy join per iteration.
- ``read_json_clicks``: the same events as JSON lines, read the way that platform did
  (``spark.read.json`` with schema inference), to run the same batch computations on.
"""

from __future__ import annotations

from operator import add
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from pyspark.sql import DataFrame, SparkSession

ORIGINAL_ITERATIONS = 10


def rdd_pagerank(edges: DataFrame, iterations: int = ORIGINAL_ITERATIONS) -> dict[str, float]:
    """Ranks after ``iterations`` rounds of the RDD loop over distinct (prev, curr) edges."""
    links = edges.select("prev", "curr").distinct().rdd.map(tuple).groupByKey().cache()
    ranks = links.mapValues(lambda _: 1.0)
    for _ in range(iterations):
        contributions = links.join(ranks).flatMap(
            lambda page: [(dest, page[1][1] / len(page[1][0])) for dest in page[1][0]])
        ranks = contributions.reduceByKey(add).mapValues(lambda received: 0.15 + 0.85 * received)
    result = dict(ranks.collect())
    links.unpersist()
    return result


def read_json_clicks(spark: SparkSession, path: str) -> DataFrame:
    """JSON-lines clicks (archive columns) with an inferred schema, as the 2017 platform read them."""
    return spark.read.json(path)
