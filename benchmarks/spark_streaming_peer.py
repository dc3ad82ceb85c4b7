"""The Spark Structured Streaming peer of the pipeline (``streaming-peers`` (b)), run in its own
process: ``python -m benchmarks.spark_streaming_peer --topic T --archive-url U --keyspace K``.

The job a user would write instead of ours, doing the pipeline's work on the same topic:

- source: spark-sql-kafka-0-10 (``KAFKA_PACKAGE``), ``startingOffsets=earliest``, trigger
  ``availableNow`` (every record present at the start, then stop); no
  ``maxOffsetsPerTrigger`` unless given, so all records are one micro-batch: exact counts
  (a window never spans two batches) and Spark's cheapest schedule;
- decode: ``from_json`` with the click schema (``clickstream.events`` wire format, one click
  per record), then the same validity rules as ``decode_record`` as column masks (invalid
  rows are dropped, not dead-lettered);
- referrer class: ``clickstream.referrers.classify`` as a map expression (no Python UDF);
- per micro-batch (``foreachBatch``): clicks per (metric, 1 s window, key) for the 4 metrics
  (``clickstream.windows.METRIC_COLUMNS``), rolled up to 10 s and 60 s; to Cassandra with
  the connector: 60 s full counts (``spark_window_counts`` and ``spark_key_series``, as the
  pipeline writes ``window_counts`` and ``key_series``), the top ``TOP_N`` keys of every
  window of every size and metric (``spark_window_topn``), every window's total
  (``spark_window_totals``); raw clicks as Parquet under ``<archive>/clicks/date=/hour=``.

Not done here but done by the pipeline: the 5-minute sliding window, trending, per-cycle
metrics rows, late-click accounting and dead letters, offsets committed to the consumer group.

Prints one JSON line: ``jvm_start_s`` (SparkSession up, incl. package resolution),
``query_s`` (``start()`` to the end of ``awaitTermination``), ``input_rows``, ``batches`` and
``s_<step>``: seconds in each step of the micro-batch function (read_decode is the Kafka
read + ``from_json`` + masks, materialized by the cache).
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import sys
import tempfile
import time
from typing import Any

from clickstream.events import LINK_TYPES, MAX_TITLE_BYTES, MAX_TS_MS, MIN_TS_MS
from clickstream.referrers import LINK, OTHER, OTHER_PREFIX, PSEUDO_REFERRER_CLASSES
from clickstream.settings import Settings
from clickstream.store.tables import KEY_SERIES, WINDOW_COUNTS, WINDOW_TOPN, WINDOW_TOTALS, Table
from clickstream.windows import FULL_COUNT_WINDOWS_MS, METRIC_COLUMNS, TOP_N, TUMBLING_WINDOWS_MS

KAFKA_PACKAGE = "org.apache.spark:spark-sql-kafka-0-10_2.12:3.5.7"
# Its own Ivy cache: spark_jobs.session passes every jar of the shared one to every session.
IVY_SUBDIR = "spark-ivy-streaming-peer"
SPARK_PREFIX = "spark_"
# The Spark job's tables: the pipeline's, renamed (created by the benchmark, same keys).
SPARK_TABLES: dict[str, Table] = {t.name: dataclasses.replace(t, name=SPARK_PREFIX + t.name)
                                  for t in (WINDOW_COUNTS, KEY_SERIES, WINDOW_TOPN, WINDOW_TOTALS)}


def _session(settings: Settings) -> Any:
    from spark_jobs.session import session_from_conf, spark_conf

    ivy = settings.services_home_path / IVY_SUBDIR
    ivy.mkdir(parents=True, exist_ok=True)
    conf = spark_conf(settings, cassandra=True, app_name="streaming-peer")
    packages = [p for p in (conf.get("spark.jars.packages"), KAFKA_PACKAGE) if p]
    conf["spark.jars.packages"] = ",".join(packages)
    conf["spark.jars.ivy"] = str(ivy)
    return session_from_conf(conf)


def _clicks(spark: Any, settings: Settings, topic: str, max_offsets: int | None) -> Any:
    """The streaming frame of valid clicks: click_id, ts_ms, prev, curr, link_type, referrer_class."""
    from pyspark.sql import functions as F
    from pyspark.sql.types import LongType, StringType, StructField, StructType

    schema = StructType([StructField("id", LongType()), StructField("ts", LongType()),
                         StructField("prev", StringType()), StructField("curr", StringType()),
                         StructField("type", StringType())])
    reader = (spark.readStream.format("kafka")
              .option("kafka.bootstrap.servers", settings.kafka_bootstrap)
              .option("subscribe", topic).option("startingOffsets", "earliest")
              .option("failOnDataLoss", "false"))
    if max_offsets:
        reader = reader.option("maxOffsetsPerTrigger", str(max_offsets))
    c = reader.load().select(F.from_json(F.col("value").cast("string"), schema).alias("c")).select("c.*")
    valid = (F.col("id").isNotNull() & (F.col("id") >= 0)
             & F.col("ts").between(MIN_TS_MS, MAX_TS_MS - 1)
             & F.col("type").isin(*sorted(LINK_TYPES)))
    for title in ("prev", "curr"):
        valid = valid & (F.length(title) > 0) & (F.length(title) <= MAX_TITLE_BYTES)
    pairs = [F.lit(x) for kv in sorted(PSEUDO_REFERRER_CLASSES.items()) for x in kv]
    referrer = (F.when(F.col("prev").startswith(OTHER_PREFIX),
                       F.coalesce(F.element_at(F.create_map(*pairs), F.col("prev")), F.lit(OTHER)))
                .otherwise(F.lit(LINK)))
    return c.where(valid).select(F.col("id").alias("click_id"), F.col("ts").alias("ts_ms"), "prev",
                                 "curr", F.col("type").alias("link_type"),
                                 referrer.alias("referrer_class"))


def _write_cassandra(df: Any, keyspace: str, name: str, pipeline: str) -> None:
    """Append ``df`` to the peer's copy of table ``name``, its rows keyed by ``pipeline``
    (every streaming table's first key column, as the pipeline writes them)."""
    from pyspark.sql import functions as F

    (df.withColumn("pipeline", F.lit(pipeline)).write.format("org.apache.spark.sql.cassandra")
     .options(keyspace=keyspace, table=SPARK_TABLES[name].name).mode("append").save())


def batch_writer(keyspace: str, pipeline: str, archive_url: str, stats: dict[str, Any]) -> Any:
    """The ``foreachBatch`` function: windows to Cassandra, raw clicks to Parquet; adds the
    seconds of each step (``s_<step>``) to ``stats``."""
    from pyspark.sql import Window
    from pyspark.sql import functions as F

    def write(batch: Any, batch_id: int) -> None:
        t = time.perf_counter()

        def step(name: str) -> None:  # seconds per step, summed over batches
            nonlocal t
            now = time.perf_counter()
            stats[f"s_{name}"] = stats.get(f"s_{name}", 0.0) + now - t
            t = now

        batch = batch.persist()
        rows = batch.count()
        step("read_decode")
        stats["batches"] += 1
        stats["input_rows"] += rows
        if rows == 0:
            batch.unpersist()
            return
        ts = F.col("ts_ms")
        day = lambda c: F.date_format(F.timestamp_millis(c), "yyyy-MM-dd")  # noqa: E731
        (batch.withColumn("late", F.lit(False)).withColumn("date", day(ts))
         .withColumn("hour", F.date_format(F.timestamp_millis(ts), "HH"))
         .write.mode("append").partitionBy("date", "hour").parquet(f"{archive_url}/clicks"))
        step("parquet")
        keyed = None
        for metric, column in METRIC_COLUMNS.items():
            one = batch.select(F.lit(metric).alias("metric"), F.col(column).alias("key"), ts)
            keyed = one if keyed is None else keyed.unionByName(one)
        finest = min(TUMBLING_WINDOWS_MS)
        fine = (keyed.groupBy("metric", "key", (ts - ts % finest).alias("window_start_ms"))
                .agg(F.count(F.lit(1)).alias("clicks")).persist())
        sized = []
        for window_ms in TUMBLING_WINDOWS_MS:
            start = F.col("window_start_ms") - F.col("window_start_ms") % window_ms
            sized.append(fine.groupBy("metric", "key", start.alias("window_start_ms"))
                         .agg(F.sum("clicks").alias("clicks"))
                         .withColumn("window_ms", F.lit(window_ms).cast("long")))
        counts = sized[0]
        for more in sized[1:]:
            counts = counts.unionByName(more)
        counts = counts.persist()
        counts.count()
        step("count_windows")
        full = counts.where(F.col("window_ms").isin(*FULL_COUNT_WINDOWS_MS))
        _write_cassandra(full, keyspace, "window_counts", pipeline)
        _write_cassandra(full, keyspace, "key_series", pipeline)
        step("cassandra_full_counts")
        order = Window.partitionBy("metric", "window_ms", "window_start_ms").orderBy(
            F.col("clicks").desc(), F.col("key").asc())
        topn = counts.withColumn("rank", F.row_number().over(order)).where(F.col("rank") <= TOP_N)
        _write_cassandra(topn.withColumn("rank", F.col("rank").cast("int")), keyspace, "window_topn",
                         pipeline)
        step("topn")
        totals = None
        for window_ms in TUMBLING_WINDOWS_MS:
            one = (batch.groupBy((ts - ts % window_ms).alias("window_start_ms"))
                   .agg(F.count(F.lit(1)).alias("clicks"))
                   .withColumn("window_ms", F.lit(window_ms).cast("long")))
            totals = one if totals is None else totals.unionByName(one)
        _write_cassandra(totals.withColumn("day", day(F.col("window_start_ms")))
                         .withColumn("late_clicks", F.lit(0).cast("long"))
                         .withColumn("written_ms", F.unix_millis(F.current_timestamp())),
                         keyspace, "window_totals", pipeline)
        step("totals")
        counts.unpersist()
        fine.unpersist()
        batch.unpersist()

    return write


def run(settings: Settings, topic: str, keyspace: str, pipeline: str, archive_url: str,
        max_offsets: int | None) -> dict[str, Any]:
    t0 = time.perf_counter()
    spark = _session(settings)
    jvm_start_s = time.perf_counter() - t0
    stats: dict[str, Any] = {"batches": 0, "input_rows": 0}
    with tempfile.TemporaryDirectory(prefix="spark-peer-ckpt-") as checkpoint:
        clicks = _clicks(spark, settings, topic, max_offsets)
        t1 = time.perf_counter()
        query = (clicks.writeStream.foreachBatch(batch_writer(keyspace, pipeline, archive_url, stats))
                 .option("checkpointLocation", checkpoint).trigger(availableNow=True).start())
        query.awaitTermination()
        query_s = time.perf_counter() - t1
    spark.stop()
    return {"jvm_start_s": jvm_start_s, "query_s": query_s, **stats}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.spark_streaming_peer", description=__doc__)
    parser.add_argument("--topic", required=True)
    parser.add_argument("--keyspace", required=True)
    parser.add_argument("--pipeline", required=True, help="the pipeline id its rows are keyed by")
    parser.add_argument("--archive-url", required=True)
    parser.add_argument("--max-offsets-per-trigger", type=int, default=None)
    args = parser.parse_args(argv)
    settings = Settings.from_sources({"stack": "local", "spark_engine": "spark",
                                      "cassandra_keyspace": args.keyspace}, os.environ)
    result = run(settings, args.topic, args.keyspace, args.pipeline, args.archive_url,
                 args.max_offsets_per_trigger)
    print(json.dumps(result), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
