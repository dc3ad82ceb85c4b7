"""Reconciliation job: ``spark-submit spark_jobs/reconcile.py <archive URL> [--from] [--to] [--run-id]``.

The lambda architecture's batch layer correcting the speed layer: Spark recounts the
streaming windows from the archive (late clicks included; the archive keeps them with
``late=True``), compares them with what the pipeline stored, writes the exact numbers over
the streamed ones and records every difference in ``reconcile_diffs`` under a run id, then
lists the run in ``reconcile_runs`` (the dashboard's list of runs).

Recounted (see ``clickstream.windows``):

- ``window_totals`` for every size in ``TUMBLING_WINDOWS_MS`` (clicks and late clicks;
  diffs under ``metric='total'`` with ``key='clicks'`` / ``key='late_clicks'``);
- ``window_counts`` for every metric at every ``FULL_COUNT_WINDOWS_MS`` size; corrected
  windows also get their ``window_topn`` rebuilt and their keys' ``key_series`` points
  rewritten (a key the stream invented gets 0 there; ``window_counts`` drops it).

Windows are compared over the hours read: every window the archive has, plus every
window the stream stored in those hours (a window the archive lacks recounts to 0).
The store is read partition by partition through ``clickstream.store``; the recount is
collected to the driver, so reconcile a large archive in ``--from/--to`` slices.
Idempotent: a second run finds no differences and writes nothing but its (empty) report.

``--dry-run``: recount and compare only; the differences are printed, no correction and
no ``reconcile_diffs`` row is written, only the run's ``reconcile_runs`` row (marked
``dry_run = 1``, with its counts). Exit status ``EXIT_DIFFERENCES`` (3) when differences
were found (corrected, unless a dry run), 0 when none.

``reconcile_runs`` is keyed by pipeline, start time and run id and written last (after the
differences), so a listed run's differences are all in ``reconcile_diffs``; a run id used
twice is listed twice (its differences add up under that id).
"""

from __future__ import annotations

import argparse
import datetime as dt
import sys
import time
import uuid
from collections import defaultdict
from collections.abc import Iterable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, NamedTuple

from clickstream.settings import Settings
from clickstream.store import Store, open_store
from clickstream.windows import (
    DAY_MS,
    FULL_COUNT_WINDOWS_MS,
    HOUR_MS,
    METRIC_COLUMNS,
    METRICS,
    TOP_N,
    TUMBLING_WINDOWS_MS,
    day_of,
)
from spark_jobs.entry import archive_and_range, submit_main
from spark_jobs.source import HourRange, read_clicks

if TYPE_CHECKING:
    import pandas as pd
    from pyspark.sql import SparkSession

TOTAL_METRIC = "total"
EXIT_DIFFERENCES = 3  # the exit status when windows differed (documented in README.md, `clickstream --help`)


class WindowKey(NamedTuple):
    window_ms: int
    window_start_ms: int


class WindowTotal(NamedTuple):
    """A ``window_totals`` row's counts (field names are its column names)."""

    clicks: int
    late_clicks: int


NO_CLICKS = WindowTotal(0, 0)
READ_THREADS = 8


@dataclass
class ReconcileReport:
    run_id: str
    windows_compared: int = 0
    diffs: list[dict[str, Any]] = field(default_factory=list)
    dry_run: bool = False
    started_ms: int = 0
    ended_ms: int = 0

    @property
    def windows_differing(self) -> int:
        return len({(d["metric"], d["window_ms"], d["window_start_ms"]) for d in self.diffs})

    def summary(self) -> str:
        lines = [f"reconcile {self.run_id}: {self.windows_compared} windows compared, "
                 f"{self.windows_differing} differed ({len(self.diffs)} keys)"
                 + ("; dry run: nothing corrected, differences not recorded" if self.dry_run else "")]
        for d in self.diffs[:20]:
            lines.append(f"  {d['metric']} {d['window_ms']} ms @ {d['window_start_ms']} {d['key']!r}: "
                         f"streamed {d['streamed']}, recounted {d['recounted']}")
        if len(self.diffs) > 20:
            where = "" if self.dry_run else f" in reconcile_diffs run_id={self.run_id}"
            lines.append(f"  ... {len(self.diffs) - 20} more{where}")
        return "\n".join(lines)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--run-id", default=None, help="id of this run's report (default: time + random)")
    parser.add_argument("--dry-run", action="store_true",
                        help="report the differences only: write no corrections and no reconcile_diffs rows "
                             "(the run is still listed in reconcile_runs, marked as a dry run)")


def recount(spark: SparkSession, archive_url: str, hours: HourRange) -> tuple[pd.DataFrame, pd.DataFrame]:
    """(totals, counts) recounted by Spark, on the driver.

    totals: window_ms, window_start_ms, clicks, late_clicks for every tumbling size;
    counts: metric, window_ms, window_start_ms, key, clicks for the full-count sizes.
    """
    from pyspark.sql import functions as F

    clicks = read_clicks(spark, archive_url, hours).select(
        "ts_ms", "late", *sorted(set(METRIC_COLUMNS.values()))).cache()
    try:
        totals = None
        for window_ms in TUMBLING_WINDOWS_MS:
            part = (clicks.groupBy((F.col("ts_ms") - F.col("ts_ms") % window_ms).alias("window_start_ms"))
                    .agg(F.count(F.lit(1)).alias("clicks"),
                         F.sum(F.col("late").cast("long")).alias("late_clicks"))
                    .withColumn("window_ms", F.lit(window_ms).cast("long")))
            totals = part if totals is None else totals.unionByName(part)
        counts = None
        for window_ms in FULL_COUNT_WINDOWS_MS:
            for metric in METRICS:
                part = (clicks.groupBy((F.col("ts_ms") - F.col("ts_ms") % window_ms).alias("window_start_ms"),
                                       F.col(METRIC_COLUMNS[metric]).alias("key"))
                        .agg(F.count(F.lit(1)).alias("clicks"))
                        .withColumn("window_ms", F.lit(window_ms).cast("long"))
                        .withColumn("metric", F.lit(metric)))
                counts = part if counts is None else counts.unionByName(part)
        assert totals is not None and counts is not None
        return totals.toPandas(), counts.toPandas()
    finally:
        clicks.unpersist()


def _day_bounds(hours: HourRange, day: str) -> tuple[int, int]:
    """[start, end) milliseconds of the part of ``day`` inside the hour range."""
    day_ms = int(dt.datetime.fromisoformat(day).replace(tzinfo=dt.UTC).timestamp() * 1000)
    start, end = day_ms, day_ms + DAY_MS
    if hours.first is not None and hours.first[0] == day:
        start = day_ms + hours.first[1] * HOUR_MS
    if hours.last is not None and hours.last[0] == day:
        end = day_ms + (hours.last[1] + 1) * HOUR_MS
    return start, end


def _parallel(fn: Any, items: Iterable[Any]) -> list[Any]:
    with ThreadPoolExecutor(READ_THREADS) as pool:
        return list(pool.map(fn, items))


def run_reconcile(spark: SparkSession, settings: Settings, archive_url: str, hours: HourRange,
                  run_id: str | None = None, *, dry_run: bool = False) -> ReconcileReport:
    """Recount, compare, overwrite and report (see the module docstring); ``dry_run``:
    compare and report only, write nothing."""
    started_ms = int(time.time() * 1000)
    run_id = run_id or f"{dt.datetime.now(dt.UTC):%Y%m%dT%H%M%SZ}-{uuid.uuid4().hex[:6]}"
    totals, counts = recount(spark, archive_url, hours)
    report = ReconcileReport(run_id, dry_run=dry_run, started_ms=started_ms)
    now_ms = int(time.time() * 1000)
    store = open_store(settings)
    try:
        streamed_starts = _reconcile_totals(store, settings.pipeline_id, totals, hours, report, now_ms)
        _reconcile_counts(store, settings.pipeline_id, counts, streamed_starts, report)
        if not dry_run:
            store.upsert("reconcile_diffs", [{"run_id": run_id, **d} for d in report.diffs])
        report.ended_ms = int(time.time() * 1000)
        store.upsert("reconcile_runs", [run_row(settings.pipeline_id, report)])
    finally:
        store.close()
    return report


def run_row(pipeline: str, report: ReconcileReport) -> dict[str, Any]:
    """The run's ``reconcile_runs`` row."""
    return {"pipeline": pipeline, "started_ms": report.started_ms, "run_id": report.run_id,
            "ended_ms": report.ended_ms, "windows_compared": report.windows_compared,
            "windows_differing": report.windows_differing, "differences": len(report.diffs),
            "dry_run": int(report.dry_run)}


def _reconcile_totals(store: Store, pipeline: str, totals: pd.DataFrame, hours: HourRange,
                      report: ReconcileReport, now_ms: int) -> dict[int, set[int]]:
    """Compare/overwrite ``pipeline``'s window_totals; returns the streamed window starts per size."""
    recounted: dict[WindowKey, WindowTotal] = {
        WindowKey(int(r.window_ms), int(r.window_start_ms)): WindowTotal(int(r.clicks), int(r.late_clicks))
        for r in totals.itertuples()}
    days = sorted({day_of(key.window_start_ms) for key in recounted})
    partitions = [(w, d) for w in TUMBLING_WINDOWS_MS for d in days]

    def read(partition: tuple[int, str]) -> list[dict[str, Any]]:
        window_ms, day = partition
        start, end = _day_bounds(hours, day)
        return store.select("window_totals", {"pipeline": pipeline, "window_ms": window_ms, "day": day},
                            start=start, end=end)

    streamed: dict[WindowKey, WindowTotal] = {}
    cycles: dict[WindowKey, int] = {}
    for rows in _parallel(read, partitions):
        for row in rows:
            key = WindowKey(row["window_ms"], row["window_start_ms"])
            streamed[key] = WindowTotal(row["clicks"], row["late_clicks"])
            cycles[key] = int(row["cycle"] or 0)
    fixes = []
    for key in sorted(set(recounted) | set(streamed)):
        window_ms, start = key.window_ms, key.window_start_ms
        got, want = streamed.get(key, NO_CLICKS), recounted.get(key, NO_CLICKS)
        if got == want:
            continue
        for name in WindowTotal._fields:
            if getattr(got, name) != getattr(want, name):
                report.diffs.append({"metric": TOTAL_METRIC, "window_ms": window_ms, "window_start_ms": start,
                                     "key": name, "streamed": getattr(got, name),
                                     "recounted": getattr(want, name)})
        fixes.append({"pipeline": pipeline, "window_ms": window_ms, "day": day_of(start),
                      "window_start_ms": start, **want._asdict(), "written_ms": now_ms,
                      "cycle": cycles.get(key, 0), "final": 1})
    if not report.dry_run:
        store.upsert("window_totals", fixes)
    report.windows_compared += len(set(recounted) | set(streamed))
    starts: dict[int, set[int]] = defaultdict(set)
    for key in streamed:
        starts[key.window_ms].add(key.window_start_ms)
    return starts


def _reconcile_counts(store: Store, pipeline: str, counts: pd.DataFrame,
                      streamed_starts: dict[int, set[int]], report: ReconcileReport) -> None:
    recounted: dict[tuple[str, int, int], dict[str, int]] = defaultdict(dict)
    for r in counts.itertuples():
        recounted[(r.metric, int(r.window_ms), int(r.window_start_ms))][r.key] = int(r.clicks)
    windows = set(recounted)
    for window_ms in FULL_COUNT_WINDOWS_MS:
        windows |= {(m, window_ms, s) for m in METRICS for s in streamed_starts.get(window_ms, ())}
    ordered = sorted(windows)

    def read(window: tuple[str, int, int]) -> dict[str, int]:
        metric, window_ms, start = window
        rows = store.select("window_counts", {"pipeline": pipeline, "metric": metric,
                                              "window_ms": window_ms, "window_start_ms": start})
        return {row["key"]: row["clicks"] for row in rows}

    for window, streamed in zip(ordered, _parallel(read, ordered), strict=True):
        want = recounted.get(window, {})
        if streamed == want:
            continue
        metric, window_ms, start = window
        partition = {"pipeline": pipeline, "metric": metric, "window_ms": window_ms, "window_start_ms": start}
        series = []
        for key in sorted(set(streamed) | set(want)):
            if streamed.get(key, 0) != want.get(key, 0):
                report.diffs.append({**partition, "key": key, "streamed": streamed.get(key, 0),
                                     "recounted": want.get(key, 0)})
                series.append({"pipeline": pipeline, "metric": metric, "window_ms": window_ms, "key": key,
                               "window_start_ms": start, "clicks": want.get(key, 0)})
        if report.dry_run:
            continue
        if set(streamed) - set(want):
            store.delete_partition("window_counts", partition)
        store.upsert("window_counts", [{**partition, "key": k, "clicks": n} for k, n in want.items()])
        store.upsert("key_series", series)
        top = sorted(want.items(), key=lambda kv: (-kv[1], kv[0]))[:TOP_N]
        store.delete_partition("window_topn", partition)
        store.upsert("window_topn", [{**partition, "rank": i + 1, "key": k, "clicks": n}
                                     for i, (k, n) in enumerate(top)])
    report.windows_compared += len(ordered)


def run(settings: Settings, args: argparse.Namespace) -> int:
    from spark_jobs.session import build_session

    archive_url, hours = archive_and_range(settings, args)
    spark = build_session(settings, cassandra=False, app_name="clickstream-reconcile")
    report = run_reconcile(spark, settings, archive_url, hours, args.run_id, dry_run=args.dry_run)
    print(report.summary())
    return EXIT_DIFFERENCES if report.diffs else 0


if __name__ == "__main__":
    sys.exit(submit_main("reconcile", add_arguments, run))
