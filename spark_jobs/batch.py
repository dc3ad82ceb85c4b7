"""Batch tables job: ``spark-submit spark_jobs/batch.py <archive URL> [--from] [--to] [--top-n N]``.

Reads the archive's clicks (optionally an hour range), computes the tables of
``spark_jobs.batch_tables`` and writes them to the store (Cassandra through the
connector, or the embedded store). Idempotent: a re-run on the same input rewrites the
same rows; top-N partitions are replaced whole, so no stale ranks survive a change of
input (see ``spark_jobs.sink.replace_ranked``). Re-run from the start after a failure.

The tables are computed and written ``TABLE_WRITERS`` at a time (``write_tables``): each is
its own Spark job, so while one is being planned or runs a one-task stage, another keeps
the executors busy; on a cluster their store writes overlap too.
"""

from __future__ import annotations

import argparse
import logging
import sys
import time
from collections.abc import Callable, Mapping
from concurrent.futures import ThreadPoolExecutor
from typing import TYPE_CHECKING, TypeVar

from clickstream.settings import Settings
from spark_jobs.batch_tables import (
    BATCH_TABLES,
    DEFAULT_TOP_N,
    RANKED_TABLES,
    REPLACED_TABLES,
    START_ORDER,
    compute_tables,
)
from spark_jobs.entry import archive_and_range, submit_main
from spark_jobs.sink import replace_ranked, write_table
from spark_jobs.source import HourRange, read_clicks

if TYPE_CHECKING:
    from pyspark.sql import DataFrame, SparkSession

log = logging.getLogger(__name__)
TABLE_WRITERS = 2
Table = TypeVar("Table")


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--top-n", type=int, default=DEFAULT_TOP_N,
                        help=f"ranks kept per source / destination (default {DEFAULT_TOP_N})")


def run_batch(spark: SparkSession, settings: Settings, archive_url: str, hours: HourRange,
              top_n: int = DEFAULT_TOP_N) -> dict[str, int]:
    """Compute and write every batch table; returns rows written per table."""
    if top_n < 1:
        raise ValueError(f"top_n: {top_n} must be at least 1")
    tables, persisted = compute_tables(read_clicks(spark, archive_url, hours), hours, top_n)

    def write(name: str, table: DataFrame) -> int:
        if name in REPLACED_TABLES:
            return replace_ranked(spark, table, name, settings, drop_vanished=name in RANKED_TABLES)
        return write_table(table, name, settings)

    try:
        return write_tables(tables, write)
    finally:
        for df in persisted:
            df.unpersist()


def write_tables(tables: Mapping[str, Table], write: Callable[[str, Table], int],
                 writers: int = TABLE_WRITERS) -> dict[str, int]:
    """``write(name, tables[name])`` for every batch table, ``writers`` tables at a time,
    started in ``START_ORDER``; returns each call's result (rows written) by table name.

    Blocks until every table is written or has failed; then raises the first failure (in
    ``BATCH_TABLES`` order), after the other tables have been written.
    """
    with ThreadPoolExecutor(max_workers=writers, thread_name_prefix="batch-table") as pool:
        futures = {name: pool.submit(write, name, tables[name]) for name in START_ORDER}
    return {name: futures[name].result() for name in BATCH_TABLES}


def run(settings: Settings, args: argparse.Namespace) -> int:
    from spark_jobs.session import build_session, session_engine

    archive_url, hours = archive_and_range(settings, args)
    spark = build_session(settings, app_name="clickstream-batch")
    started = time.perf_counter()
    written = run_batch(spark, settings, archive_url, hours, args.top_n)
    elapsed_s = time.perf_counter() - started
    for name, n_rows in written.items():
        print(f"batch: {name}: {n_rows} rows")
    print(f"batch: {archive_url} ({hours.label()}) -> {settings.store_backend} store in {elapsed_s:.1f} s "
          f"(engine {session_engine(spark)})")
    return 0


if __name__ == "__main__":
    sys.exit(submit_main("batch", add_arguments, run))
