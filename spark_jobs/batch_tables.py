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
- ``link_type_share``: per link type its clicks and share of all clicks, for
  ``scope=HourRange.label()`` (``all`` for the whole archive) and ``scope='day:YYYY-MM-DD'``
  for each whole day.
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


def hourly_base(clicks: DataFrame) -> DataFrame:
    """Clicks per (prev, curr, link_type, referrer_class, hour bucket, date): every table
    derives from this one aggregate, so the input is scanned once."""
    from pyspark.sql import functions as F

    return (clicks
            .withColumn("hour_ms", F.col("ts_ms") - F.col("ts_ms") % F.lit(HOUR_MS))
            .groupBy("prev", "curr", "link_type", "referrer_class", "hour_ms")
            .agg(F.count(F.lit(1)).alias("clicks")))


def _ranked(df: DataFrame, partition: str | None, title: str, limit: int) -> DataFrame:
    from pyspark.sql import Window
    from pyspark.sql import functions as F

    order: list[Column] = [F.col("clicks").desc(), F.col(title).asc()]
    window = (Window.partitionBy(partition) if partition else Window.partitionBy()).orderBy(*order)
    return df.withColumn("rank", F.row_number().over(window)).where(F.col("rank") <= limit)


def compute_tables(clicks: DataFrame, hours: HourRange, top_n: int = DEFAULT_TOP_N
                   ) -> dict[str, DataFrame]:
    """Every batch table (name -> DataFrame with the table's columns), lazily.

    The caller should cache ``hourly_base`` results if it evaluates several tables; this
    function caches the base aggregate itself and the caller unpersists via
    ``tables['_base']``.
    """
    from pyspark.sql import functions as F

    base = hourly_base(clicks).cache()
    edges = base.groupBy("prev", "curr").agg(F.sum("clicks").alias("clicks"))

    top_destinations = _ranked(edges.withColumnRenamed("prev", "source")
                               .withColumnRenamed("curr", "destination"),
                               "source", "destination", top_n)
    top_sources = _ranked(edges.withColumnRenamed("prev", "source")
                          .withColumnRenamed("curr", "destination"),
                          "destination", "source", top_n)

    sources = (edges.where(~F.col("prev").startswith(OTHER_PREFIX))
               .groupBy(F.col("prev").alias("title")).agg(F.sum("clicks").alias("clicks")))
    destinations = edges.groupBy(F.col("curr").alias("title")).agg(F.sum("clicks").alias("clicks"))
    top_articles = (_ranked(sources, None, "title", TOP_ARTICLES).withColumn("kind", F.lit("source"))
                    .unionByName(_ranked(destinations, None, "title", TOP_ARTICLES)
                                 .withColumn("kind", F.lit("destination"))))

    with_day = base.withColumn("day_ms", F.col("hour_ms") - F.col("hour_ms") % F.lit(DAY_MS)) \
                   .withColumn("day", F.date_format(F.timestamp_millis(F.col("day_ms")), "yyyy-MM-dd"))
    whole_days = [r.day for r in with_day.select("day").distinct().collect() if hours.covers_day(r.day)]
    daily = with_day.where(F.col("day").isin(whole_days)) if whole_days else None

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
    rollups = rollup_parts[0]
    for part in rollup_parts[1:]:
        rollups = rollups.unionByName(part)

    share_parts = [_shares(base, F.lit(hours.label()))]
    if daily is not None:
        share_parts.append(_shares(daily, F.concat(F.lit("day:"), F.col("day"))))
    link_type_share = share_parts[0]
    for part in share_parts[1:]:
        link_type_share = link_type_share.unionByName(part)

    return {"top_destinations": top_destinations, "top_sources": top_sources,
            "top_articles": top_articles, "rollups": rollups, "link_type_share": link_type_share,
            "_base": base}


def _shares(df: DataFrame, scope: Column) -> DataFrame:
    from pyspark.sql import Window
    from pyspark.sql import functions as F

    per_type = (df.withColumn("scope", scope).groupBy("scope", "link_type")
                .agg(F.sum("clicks").alias("clicks")))
    total = F.sum("clicks").over(Window.partitionBy("scope"))
    return per_type.withColumn("share", F.col("clicks") / total)
