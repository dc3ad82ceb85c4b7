"""The batch tables as DataFrame transformations of the clicks (no I/O here).

Every click in the input counts, late ones included (the archive keeps them with
``late=True``). Ranks start at 1 and follow one tie rule everywhere: clicks descending,
then title ascending (byte order of UTF-8, Spark's string order).

- ``top_destinations``: per source (article or ``other-*``), its ``top_n`` destinations.
- ``top_sources``: per destination, its ``top_n`` sources (``other-*`` included).
- ``top_articles``: ``kind='source'`` (articles only; ``other-*`` are not articles, their
  totals are the ``referrer`` rollups) and ``kind='destination'``, top ``TOP_ARTICLES``.
- ``rollups``: clicks per hour and per day (UTC buckets, ``bucket_start_ms``) for
  ``metric='destination'`` (key: the article) and ``metric='referrer'`` (key: referrer
  class). Daily rows only for days wholly inside the hour range, so a partial run never
  writes a partial day over a whole one.
- ``link_type_share``: per link type its clicks and share of the scope's clicks, for
  ``scope=HourRange.label()`` (``all`` for the whole archive, else e.g.
  ``2015-02-01T20..2015-02-02T23``), ``scope='day:YYYY-MM-DD'`` for each whole day, and
  ``scope=<title>`` for each destination article (its incoming clicks in the range; the
  dashboard's Explorer reads this partition). Wikipedia titles start with a capital or a
  digit and never contain ``..``, so the three kinds of scope cannot collide.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from clickstream.referrers import OTHER_PREFIX
from clickstream.windows import METRIC_DESTINATION, METRIC_REFERRER
from spark_jobs.source import DAY_MS, HOUR_MS, HourRange

if TYPE_CHECKING:
    from pyspark.sql import Column, DataFrame

TOP_ARTICLES = 100
DEFAULT_TOP_N = 20
RANKED_TABLES = ("top_destinations", "top_sources", "top_articles")
BATCH_TABLES = (*RANKED_TABLES, "rollups", "link_type_share")
# Tables whose partitions a run replaces whole (no stale ranks or link types survive).
REPLACED_TABLES = (*RANKED_TABLES, "link_type_share")
BASE_INPUT_COLUMNS = ("ts_ms", "prev", "curr", "link_type", "referrer_class")
DAY_SCOPE_PREFIX = "day:"


def hourly_base(clicks: DataFrame) -> DataFrame:
    """Clicks per (prev, curr, link_type, referrer_class, hour bucket): every table derives
    from this one aggregate, so the input is scanned once, and only the columns in
    ``BASE_INPUT_COLUMNS`` are read (Parquet column pruning)."""
    from pyspark.sql import functions as F

    return (clicks.select(*BASE_INPUT_COLUMNS)
            .withColumn("hour_ms", F.col("ts_ms") - F.col("ts_ms") % F.lit(HOUR_MS))
            .groupBy("prev", "curr", "link_type", "referrer_class", "hour_ms")
            .agg(F.count(F.lit(1)).alias("clicks")))


def _ranked(df: DataFrame, partition: str | None, title: str, limit: int) -> DataFrame:
    from pyspark.sql import Window
    from pyspark.sql import functions as F

    order: list[Column] = [F.col("clicks").desc(), F.col(title).asc()]
    window = (Window.partitionBy(partition) if partition else Window.partitionBy()).orderBy(*order)
    return df.withColumn("rank", F.row_number().over(window)).where(F.col("rank") <= limit)


def _union(parts: list[DataFrame]) -> DataFrame:
    out = parts[0]
    for part in parts[1:]:
        out = out.unionByName(part)
    return out


def compute_tables(clicks: DataFrame, hours: HourRange, top_n: int = DEFAULT_TOP_N
                   ) -> tuple[dict[str, DataFrame], list[DataFrame]]:
    """Every batch table (name -> DataFrame with the table's columns), and what was persisted.

    Runs one Spark job now: the input scan and the hourly base aggregate, persisted
    (memory, spilling to disk), as are the (prev, curr) edge totals three tables share
    (filled by the first table that needs them). The returned tables are lazy plans over
    those; the caller unpersists the second element when the tables are written.
    """
    from pyspark import StorageLevel
    from pyspark.sql import functions as F

    base = with_day(hourly_base(clicks)).persist(StorageLevel.MEMORY_AND_DISK)
    # This collect is the scan: it fills the persisted base.
    whole_days = sorted(r.day for r in base.select("day").distinct().collect() if hours.covers_day(r.day))
    edges = (base.groupBy("prev", "curr").agg(F.sum("clicks").alias("clicks"))
             .persist(StorageLevel.MEMORY_AND_DISK))
    return derive_tables(base, edges, hours.label(), whole_days, top_n), [base, edges]


def with_day(base: DataFrame) -> DataFrame:
    """``base`` with its UTC day as ``day`` (``YYYY-MM-DD``), from ``hour_ms``."""
    from pyspark.sql import functions as F

    return base.withColumn("day", F.date_format(F.timestamp_millis(
        F.col("hour_ms") - F.col("hour_ms") % F.lit(DAY_MS)), "yyyy-MM-dd"))


def derive_tables(base: DataFrame, edges: DataFrame, range_label: str, whole_days: list[str] | None,
                  top_n: int) -> dict[str, DataFrame]:
    """The tables from the hourly base (``hourly_base`` + ``with_day``; any frame with those
    columns and a ``clicks`` count works) and its (prev, curr) totals ``edges``; daily rows
    only for ``whole_days`` (None: every day is whole). Lazy."""
    from pyspark.sql import functions as F

    day_ms = F.col("hour_ms") - F.col("hour_ms") % F.lit(DAY_MS)
    if whole_days is None:
        daily: DataFrame | None = base.withColumn("day_ms", day_ms)
    elif whole_days:
        daily = base.where(F.col("day").isin(whole_days)).withColumn("day_ms", day_ms)
    else:
        daily = None
    pairs = edges.select(F.col("prev").alias("source"), F.col("curr").alias("destination"), "clicks")
    top_destinations = _ranked(pairs, "source", "destination", top_n)
    top_sources = _ranked(pairs, "destination", "source", top_n)

    sources = (edges.where(~F.col("prev").startswith(OTHER_PREFIX))
               .groupBy(F.col("prev").alias("title")).agg(F.sum("clicks").alias("clicks")))
    destinations = edges.groupBy(F.col("curr").alias("title")).agg(F.sum("clicks").alias("clicks"))
    top_articles = _union([_ranked(sources, None, "title", TOP_ARTICLES).withColumn("kind", F.lit("source")),
                           _ranked(destinations, None, "title", TOP_ARTICLES)
                           .withColumn("kind", F.lit("destination"))])

    rollup_parts = []
    for metric, key in ((METRIC_DESTINATION, "curr"), (METRIC_REFERRER, "referrer_class")):
        rollup_parts.append(base.groupBy(F.col(key).alias("key"), F.col("hour_ms").alias("bucket_start_ms"))
                            .agg(F.sum("clicks").alias("clicks"))
                            .withColumn("metric", F.lit(metric)).withColumn("granularity", F.lit("hour")))
        if daily is not None:
            rollup_parts.append(daily.groupBy(F.col(key).alias("key"),
                                              F.col("day_ms").alias("bucket_start_ms"))
                                .agg(F.sum("clicks").alias("clicks"))
                                .withColumn("metric", F.lit(metric)).withColumn("granularity", F.lit("day")))

    share_parts = [_shares(base, F.lit(range_label)), _shares(base, F.col("curr"))]
    if daily is not None:
        share_parts.append(_shares(daily, F.concat(F.lit(DAY_SCOPE_PREFIX), F.col("day"))))

    return {"top_destinations": top_destinations, "top_sources": top_sources,
            "top_articles": top_articles, "rollups": _union(rollup_parts),
            "link_type_share": _union(share_parts)}


def _shares(df: DataFrame, scope: Column) -> DataFrame:
    from pyspark.sql import Window
    from pyspark.sql import functions as F

    per_type = (df.withColumn("scope", scope).groupBy("scope", "link_type")
                .agg(F.sum("clicks").alias("clicks")))
    total = F.sum("clicks").over(Window.partitionBy("scope"))
    return per_type.withColumn("share", F.col("clicks") / total)
