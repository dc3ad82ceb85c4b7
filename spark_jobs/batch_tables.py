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
  class). Daily rows only for days wholly inside the hour range
  (``HourRange.whole_days_ms``), so a partial run never writes a partial day over a whole one.
- ``link_type_share``: per link type its clicks and share of the scope's clicks, for
  ``scope=HourRange.label()`` (``all`` for the whole archive, else e.g.
  ``2015-02-01T20..2015-02-02T23``), ``scope='day:YYYY-MM-DD'`` for each whole day, and
  ``scope=<title>`` for each destination article (its incoming clicks in the range; the
  dashboard's Explorer reads this partition). Wikipedia titles start with a capital or a
  digit and never contain ``..``, so the three kinds of scope cannot collide.

How: every table derives from a few click counts (``AGGREGATES``: per edge, per source,
per destination and hour, ...), each a plain ``groupBy`` over the clicks
(``aggregate_each``): over the Parquet archive each one scans just its own columns, and its
keys stay narrow. ``compute_tables`` persists the aggregates that more than one table reads
(the edges, which two tables rank) and ``derive_table`` turns the aggregates into each table.
The rankings are windows partitioned by a hash of the title and the title (``_ranked``).
One ``GROUPING SETS`` aggregation of all of them (one scan, one shuffle, its result
persisted) was slower (benchmarks/RESULTS-spark.md): its expanded rows are wide and its one
hash map large, while a pruned Parquet scan is cheap.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import TYPE_CHECKING

from clickstream.referrers import OTHER_PREFIX
from clickstream.windows import DAY_MS, HOUR_MS, METRIC_DESTINATION, METRIC_REFERRER, REFERRER_CLASS_COLUMN
from spark_jobs.source import DayBounds, HourRange

if TYPE_CHECKING:
    from pyspark.sql import Column, DataFrame

TOP_ARTICLES = 100
DEFAULT_TOP_N = 20
RANKED_TABLES = ("top_destinations", "top_sources", "top_articles")
BATCH_TABLES = (*RANKED_TABLES, "rollups", "link_type_share")
# Tables whose partitions a run replaces whole (no stale ranks or link types survive).
REPLACED_TABLES = (*RANKED_TABLES, "link_type_share")
CLICK_INPUT_COLUMNS = ("ts_ms", "prev", "curr", "link_type", REFERRER_CLASS_COLUMN)
DAY_SCOPE_PREFIX = "day:"

# The click counts the tables derive from: name -> grouping columns (each with ``clicks``).
AGGREGATES: dict[str, tuple[str, ...]] = {
    "edges": ("prev", "curr"),
    "sources": ("prev",),
    "destinations": ("curr",),
    "destination_hours": ("curr", "hour_ms"),
    "referrer_hours": (REFERRER_CLASS_COLUMN, "hour_ms"),
    "destination_link_types": ("curr", "link_type"),
    "link_type_hours": ("link_type", "hour_ms"),
}
TABLE_AGGREGATES: dict[str, tuple[str, ...]] = {
    "top_destinations": ("edges",),
    "top_sources": ("edges",),
    "top_articles": ("sources", "destinations"),
    "rollups": ("destination_hours", "referrer_hours"),
    "link_type_share": ("link_type_hours", "destination_link_types"),
}
# The aggregates more than one table reads: computed once and persisted by compute_tables.
SHARED_AGGREGATES = tuple(name for name in AGGREGATES
                          if sum(name in needed for needed in TABLE_AGGREGATES.values()) > 1)
# The order a job starts its tables in when it computes several at once: the first reader
# of each shared aggregate (in BATCH_TABLES order) fills it, the tables that read none come
# next, and the other readers start last and find it filled.
_SHARED_READERS = [name for name in BATCH_TABLES
                   if any(aggregate in SHARED_AGGREGATES for aggregate in TABLE_AGGREGATES[name])]
_FIRST_READERS = list(dict.fromkeys(next(name for name in BATCH_TABLES if aggregate in TABLE_AGGREGATES[name])
                                    for aggregate in SHARED_AGGREGATES))
START_ORDER = (*_FIRST_READERS, *(name for name in BATCH_TABLES if name not in _SHARED_READERS),
               *(name for name in _SHARED_READERS if name not in _FIRST_READERS))


def with_hour(clicks: DataFrame) -> DataFrame:
    """``clicks``' ``CLICK_INPUT_COLUMNS`` (only those are read: Parquet column pruning)
    and its UTC hour bucket ``hour_ms``."""
    from pyspark.sql import functions as F

    return (clicks.select(*CLICK_INPUT_COLUMNS)
            .withColumn("hour_ms", F.col("ts_ms") - F.col("ts_ms") % F.lit(HOUR_MS)))


def aggregate_each(clicks: DataFrame, names: Iterable[str]) -> dict[str, DataFrame]:
    """The named aggregates, each its own ``groupBy`` over ``clicks`` (lazy)."""
    from pyspark.sql import functions as F

    rows = with_hour(clicks)
    return {name: rows.groupBy(*AGGREGATES[name]).agg(F.count(F.lit(1)).alias("clicks"))
            for name in names}


def compute_tables(clicks: DataFrame, hours: HourRange, top_n: int = DEFAULT_TOP_N
                   ) -> tuple[dict[str, DataFrame], list[DataFrame]]:
    """Every batch table (name -> DataFrame with the table's columns, lazy), and what they
    read persisted: the aggregates that more than one table reads (memory, spilling to
    disk), filled by the first table written. The caller unpersists the second element when
    the tables are written.
    """
    from pyspark import StorageLevel

    aggregates = aggregate_each(clicks, AGGREGATES)
    persisted = [aggregates[name].persist(StorageLevel.MEMORY_AND_DISK) for name in SHARED_AGGREGATES]
    range_label, whole_days_ms = hours.label(), hours.whole_days_ms()
    tables = {name: derive_table(name, aggregates, range_label, whole_days_ms, top_n)
              for name in BATCH_TABLES}
    return tables, persisted


def derive_table(name: str, aggregates: dict[str, DataFrame], range_label: str,
                 whole_days_ms: DayBounds, top_n: int) -> DataFrame:
    """Batch table ``name`` from the aggregates it needs (``TABLE_AGGREGATES[name]``);
    daily rows only for the days inside ``whole_days_ms`` (``HourRange.whole_days_ms``:
    first and last day start, inclusive, None where open). Lazy."""
    from pyspark.sql import functions as F

    if name in ("top_destinations", "top_sources"):
        pairs = aggregates["edges"].select(F.col("prev").alias("source"),
                                           F.col("curr").alias("destination"), "clicks")
        if name == "top_destinations":
            return _ranked(pairs, "source", "destination", top_n)
        return _ranked(pairs, "destination", "source", top_n)
    if name == "top_articles":
        return _top_articles(aggregates)
    if name == "rollups":
        return _rollups(aggregates, whole_days_ms)
    if name == "link_type_share":
        return _link_type_share(aggregates, range_label, whole_days_ms)
    raise ValueError(f"table {name!r}: not one of {', '.join(BATCH_TABLES)}")


def _top_articles(aggregates: dict[str, DataFrame]) -> DataFrame:
    from pyspark.sql import functions as F

    sources = (aggregates["sources"].where(~F.col("prev").startswith(OTHER_PREFIX))
               .select(F.col("prev").alias("title"), "clicks"))
    destinations = aggregates["destinations"].select(F.col("curr").alias("title"), "clicks")
    return _union([_ranked(sources, None, "title", TOP_ARTICLES).withColumn("kind", F.lit("source")),
                   _ranked(destinations, None, "title", TOP_ARTICLES)
                   .withColumn("kind", F.lit("destination"))])


def _rollups(aggregates: dict[str, DataFrame], whole_days_ms: DayBounds) -> DataFrame:
    """Hourly rows straight from the aggregates; daily ones summed in one shuffle."""
    from pyspark.sql import functions as F

    sources = ((METRIC_DESTINATION, "destination_hours", "curr"),
               (METRIC_REFERRER, "referrer_hours", REFERRER_CLASS_COLUMN))
    hourly = _union([aggregates[aggregate].select(F.lit(metric).alias("metric"), F.col(key).alias("key"),
                                                  "hour_ms", "clicks")
                     for metric, aggregate, key in sources])
    parts = [hourly.select("metric", "key", F.col("hour_ms").alias("bucket_start_ms"), "clicks",
                           F.lit("hour").alias("granularity"))]
    daily = _days(hourly, whole_days_ms)
    if daily is not None:
        parts.append(daily.groupBy("metric", "key", F.col("day_ms").alias("bucket_start_ms"))
                     .agg(F.sum("clicks").alias("clicks")).withColumn("granularity", F.lit("day")))
    return _union(parts)


def _link_type_share(aggregates: dict[str, DataFrame], range_label: str,
                     whole_days_ms: DayBounds) -> DataFrame:
    """Every scope's counts in one frame, partitioned by scope once: the per-type sums and
    the per-scope totals then need no further shuffle."""
    from pyspark.sql import Window
    from pyspark.sql import functions as F

    per_hour = aggregates["link_type_hours"]
    parts = [per_hour.select(F.lit(range_label).alias("scope"), "link_type", "clicks"),
             aggregates["destination_link_types"].select(F.col("curr").alias("scope"), "link_type", "clicks")]
    daily = _days(per_hour, whole_days_ms)
    if daily is not None:
        parts.append(daily.select(F.concat(F.lit(DAY_SCOPE_PREFIX), F.col("day")).alias("scope"),
                                  "link_type", "clicks"))
    per_type = (_union(parts).repartition("scope").groupBy("scope", "link_type")
                .agg(F.sum("clicks").alias("clicks")))
    return per_type.withColumn("share", F.col("clicks") / F.sum("clicks").over(Window.partitionBy("scope")))


def _days(hourly: DataFrame, whole_days_ms: DayBounds) -> DataFrame | None:
    """``hourly`` (with ``hour_ms``) restricted to the whole days, with ``day_ms`` and
    ``day`` (``YYYY-MM-DD``); None when no day is whole."""
    from pyspark.sql import functions as F

    first_ms, last_ms = whole_days_ms
    if first_ms is not None and last_ms is not None and first_ms > last_ms:
        return None
    daily = hourly.withColumn("day_ms", F.col("hour_ms") - F.col("hour_ms") % F.lit(DAY_MS))
    if first_ms is not None:
        daily = daily.where(F.col("day_ms") >= F.lit(first_ms))
    if last_ms is not None:
        daily = daily.where(F.col("day_ms") <= F.lit(last_ms))
    return daily.withColumn("day", F.date_format(F.timestamp_millis(F.col("day_ms")), "yyyy-MM-dd"))


def _ranked(df: DataFrame, partition: str | None, title: str, limit: int) -> DataFrame:
    from pyspark.sql import Window
    from pyspark.sql import functions as F

    order: list[Column] = [F.col("clicks").desc(), F.col(title).asc()]
    if partition is None:
        window = Window.partitionBy().orderBy(*order)
    else:
        # The window sorts by its partition first, and Spark's sort prefix (a key's first 8
        # bytes) cannot tell titles such as List_of_... apart: a 64-bit hash ahead of the
        # title can, so most comparisons end there. Grouping by both stays exact.
        window = Window.partitionBy(F.xxhash64(partition), partition).orderBy(*order)
    return df.withColumn("rank", F.row_number().over(window)).where(F.col("rank") <= limit)


def _union(parts: list[DataFrame]) -> DataFrame:
    out = parts[0]
    for part in parts[1:]:
        out = out.unionByName(part)
    return out
