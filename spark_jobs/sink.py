"""Writing job results to the store: the Spark Cassandra connector, or the embedded store.

- ``settings.store_backend == "cassandra"``: the connector's DataFrame writer
  (``org.apache.spark.sql.cassandra``); executors write in parallel, each row an upsert by
  primary key.
- otherwise: each table comes to the driver in one Arrow transfer and is upserted
  through ``clickstream.store`` (SQLite) in chunks.

Both are idempotent: writing the same DataFrame twice leaves the same rows.
``replace_ranked`` also removes ranks a previous run left behind (see its docstring).
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from typing import TYPE_CHECKING, Any

from clickstream.settings import Settings
from clickstream.store import open_store
from clickstream.store.tables import TABLES

if TYPE_CHECKING:
    import pandas as pd
    from pyspark.sql import DataFrame, SparkSession

log = logging.getLogger(__name__)
CASSANDRA_FORMAT = "org.apache.spark.sql.cassandra"
UPSERT_CHUNK_ROWS = 50_000


def conform(df: DataFrame, table_name: str) -> DataFrame:
    """The DataFrame's columns in table order, cast to the table's types."""
    from pyspark.sql import functions as F

    from spark_jobs.schemas import table_schema

    return df.select([F.col(f.name).cast(f.dataType).alias(f.name)
                      for f in table_schema(table_name).fields])


def _chunks(frame: pd.DataFrame) -> Iterator[list[tuple[Any, ...]]]:
    """A driver-side frame's rows in chunks of plain Python tuples (column-wise ``tolist``
    gives native Python values, as SQLite wants them)."""
    columns = [frame[name].tolist() for name in frame.columns]
    for i in range(0, len(frame), UPSERT_CHUNK_ROWS):
        yield list(zip(*(col[i:i + UPSERT_CHUNK_ROWS] for col in columns), strict=True))


def _upsert_frame(frame: pd.DataFrame, table_name: str, settings: Settings,
                  clear: list[dict[str, Any]] | None = None) -> int:
    store = open_store(settings)
    try:
        for partition in clear or []:
            store.delete_partition(table_name, partition)
        return sum(store.upsert(table_name, chunk) for chunk in _chunks(frame))
    finally:
        store.close()


def write_table(df: DataFrame, table_name: str, settings: Settings) -> int:
    """Upsert every row of ``df`` into the table; returns the row count. Blocks until durable."""
    df = conform(df, table_name)
    if settings.store_backend == "cassandra":
        df = df.cache()
        n_rows = df.count()
        (df.write.format(CASSANDRA_FORMAT)
         .options(keyspace=settings.cassandra_keyspace, table=table_name)
         .mode("append").save())
        df.unpersist()
        return n_rows
    # One Arrow transfer (Arrow is enabled in spark_jobs.session).
    return _upsert_frame(df.toPandas(), table_name, settings)


def replace_ranked(spark: SparkSession, df: DataFrame, table_name: str, settings: Settings, *,
                   drop_vanished: bool = True) -> int:
    """Write a table so that each of ``df``'s partitions holds exactly ``df``'s rows.

    A re-run on changed input can produce fewer rows for a partition (fewer ranks, a link
    type gone): the old rows would be stale. Partitions that would keep stale rows are
    deleted before the write (a reader may see such a partition empty for that moment):

    - Cassandra: the table's existing primary keys are read with the connector and
      anti-joined with the new ones; every partition with a leftover key is deleted,
      including partitions the new input no longer has when ``drop_vanished`` (top-N
      tables: they describe the last run's input), else only partitions ``df`` rewrites.
    - embedded: every partition present in ``df`` is deleted and rewritten; partitions the
      new input no longer has at all stay (the embedded store has no table scan).
    """
    t = TABLES[table_name]
    df = conform(df, table_name)
    if settings.store_backend != "cassandra":
        frame = df.toPandas()
        clear = frame[list(t.partition_names)].drop_duplicates().to_dict("records")
        log.info("%s: clearing %d partitions before rewriting", table_name, len(clear))
        return _upsert_frame(frame, table_name, settings, clear)
    df = df.cache()
    keys = list(t.partition_names) + list(t.clustering_names)
    existing = (spark.read.format(CASSANDRA_FORMAT)
                .options(keyspace=settings.cassandra_keyspace, table=table_name).load()
                .select(*keys))
    leftover = existing.join(df.select(*keys), on=keys, how="left_anti")
    if not drop_vanished:
        leftover = leftover.join(df.select(*t.partition_names).distinct(), on=list(t.partition_names),
                                 how="left_semi")
    stale = leftover.select(*t.partition_names).distinct().collect()
    if stale:
        store = open_store(settings)
        try:
            for row in stale:
                store.delete_partition(table_name, row.asDict())
        finally:
            store.close()
        log.info("%s: cleared %d partitions before rewriting", table_name, len(stale))
    n_rows = write_table(df, table_name, settings)
    df.unpersist()
    return n_rows
