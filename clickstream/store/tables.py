"""The store's tables, declared once and shared by Cassandra and the embedded store.

Every table is keyed the Cassandra way: a partition key (what a query must name) and
clustering columns (the order inside a partition). Each table serves a query the
dashboard or a job makes, and every write is an upsert by the full primary key, so
writing the same result twice leaves the same row (idempotent).

Streaming tables (written by ``pipeline``), each keyed first by ``pipeline`` (the
pipeline's id, ``Settings.pipeline_id``), so two pipelines on one keyspace never touch
each other's rows:

- ``window_counts``: exact clicks per key in one window, for the coarse windows that
  store full counts (see pipeline docs for which).
- ``window_topn``: top-N keys of one window by clicks (ties by key ascending).
- ``key_series``: one key's clicks over windows (the explorer's time series).
- ``window_totals``: total clicks and late clicks per window, newest first per day.
- ``trending``: top destinations by lift over their EWMA baseline, per window.
- ``pipeline_metrics``: throughput, lag, latency, late and dead-letter counts.
- ``partition_lag``: per source partition, the records not read yet at each metrics row
  (``ts_ms`` is that row's, so the two join; the rows of one ``ts_ms`` sum to the total lag).
- ``pipeline_state``: per pipeline and topic, the event time up to which every window is
  final and written (what the dashboard shows as the watermark).
- ``pipeline_plans``: per pipeline, its cycle plans by cycle (``plan``: the JSON of
  ``pipeline.checkpoint.CyclePlan``), each logged before its cycle runs and deleted once a
  state snapshot after it has landed; a restart runs again the plans after its snapshot.
- ``pipeline_registry``: every pipeline that wrote (``scope = 'all'``), newest update per
  pipeline, so a reader can list them and pick one.
- ``window_totals.final``: 1 once the watermark passed the window's end; 0 for the
  running totals of an open tumbling window, rewritten every cycle (early results: a
  click is in the store within a cycle, not only when its window closes).
- ``window_totals.cycle``: the pipeline cycle that wrote the row (a cycle run again after
  a crash recognises its own late-click rewrite and does not add it twice).

Batch tables (written by ``spark_jobs``):

- ``top_destinations`` / ``top_sources``: per article, its top neighbours by clicks.
- ``top_articles``: global top 100 sources and destinations.
- ``rollups``: hourly and daily clicks per article and per referrer class.
- ``link_type_share``: clicks and share of each link type.
- ``pagerank_runs`` / ``pagerank_top``: PageRank runs by date and their top-N.
- ``reconcile_diffs``: windows where the stream and the archive recount differed.
- ``reconcile_runs``: one row per reconcile run of a pipeline, newest first: when, windows
  compared, windows and keys that differed, and whether it was a dry run (nothing
  corrected, no ``reconcile_diffs`` rows).
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import cached_property


@dataclass(frozen=True)
class Column:
    name: str
    cql_type: str  # text | bigint | int | double


@dataclass(frozen=True)
class Table:
    name: str
    partition_key: tuple[Column, ...]
    clustering: tuple[Column, ...]
    values: tuple[Column, ...]
    clustering_desc: bool = False

    @property
    def columns(self) -> tuple[Column, ...]:
        return self.partition_key + self.clustering + self.values

    @cached_property
    def column_names(self) -> tuple[str, ...]:
        """(Cached: read once per row written.)"""
        return tuple(c.name for c in self.columns)

    @property
    def partition_names(self) -> tuple[str, ...]:
        return tuple(c.name for c in self.partition_key)

    @property
    def clustering_names(self) -> tuple[str, ...]:
        return tuple(c.name for c in self.clustering)


def _cols(spec: str) -> tuple[Column, ...]:
    """'a:text b:bigint' -> columns."""
    out = []
    for part in spec.split():
        name, cql_type = part.split(":")
        out.append(Column(name, cql_type))
    return tuple(out)


def _table(name: str, partition: str, clustering: str, values: str, desc: bool = False) -> Table:
    return Table(name, _cols(partition), _cols(clustering), _cols(values), desc)


WINDOW_COUNTS = _table("window_counts", "pipeline:text metric:text window_ms:bigint window_start_ms:bigint",
                       "key:text", "clicks:bigint")
WINDOW_TOPN = _table("window_topn", "pipeline:text metric:text window_ms:bigint window_start_ms:bigint",
                     "rank:int", "key:text clicks:bigint")
KEY_SERIES = _table("key_series", "pipeline:text metric:text window_ms:bigint key:text",
                    "window_start_ms:bigint", "clicks:bigint")
WINDOW_TOTALS = _table("window_totals", "pipeline:text window_ms:bigint day:text", "window_start_ms:bigint",
                       "clicks:bigint late_clicks:bigint written_ms:bigint cycle:bigint final:int",
                       desc=True)
TRENDING = _table("trending", "pipeline:text window_ms:bigint window_start_ms:bigint", "rank:int",
                  "key:text clicks:bigint baseline:double lift:double")
PIPELINE_METRICS = _table("pipeline_metrics", "pipeline:text day:text", "ts_ms:bigint",
                          "clicks_in:bigint clicks_per_s:double lag_ms:bigint latency_ms:bigint "
                          "late_clicks:bigint dead_letters:bigint watermark_ms:bigint", desc=True)
PARTITION_LAG = _table("partition_lag", "pipeline:text day:text", "ts_ms:bigint partition_id:int",
                       "lag_records:bigint next_offset:bigint end_offset:bigint", desc=True)
PIPELINE_STATE = _table("pipeline_state", "pipeline:text", "topic:text",
                        "finalized_ms:bigint updated_ms:bigint")
PIPELINE_PLANS = _table("pipeline_plans", "pipeline:text", "cycle:bigint", "plan:text logged_ms:bigint")
PIPELINE_REGISTRY = _table("pipeline_registry", "scope:text", "pipeline:text",
                           "topic:text updated_ms:bigint")

TOP_DESTINATIONS = _table("top_destinations", "source:text", "rank:int",
                          "destination:text clicks:bigint")
TOP_SOURCES = _table("top_sources", "destination:text", "rank:int", "source:text clicks:bigint")
TOP_ARTICLES = _table("top_articles", "kind:text", "rank:int", "title:text clicks:bigint")
ROLLUPS = _table("rollups", "metric:text granularity:text key:text", "bucket_start_ms:bigint",
                 "clicks:bigint")
LINK_TYPE_SHARE = _table("link_type_share", "scope:text", "link_type:text",
                         "clicks:bigint share:double")
PAGERANK_RUNS = _table("pagerank_runs", "variant:text", "run_date:text",
                       "iterations:int converged:int nodes:bigint edges:bigint", desc=True)
PAGERANK_TOP = _table("pagerank_top", "run_date:text variant:text", "rank:int",
                      "title:text score:double")
RECONCILE_DIFFS = _table("reconcile_diffs", "run_id:text",
                         "metric:text window_ms:bigint window_start_ms:bigint key:text",
                         "streamed:bigint recounted:bigint")
RECONCILE_RUNS = _table("reconcile_runs", "pipeline:text", "started_ms:bigint run_id:text",
                        "ended_ms:bigint windows_compared:bigint windows_differing:bigint "
                        "differences:bigint dry_run:int", desc=True)

TABLES: dict[str, Table] = {t.name: t for t in (
    WINDOW_COUNTS, WINDOW_TOPN, KEY_SERIES, WINDOW_TOTALS, TRENDING, PIPELINE_METRICS, PARTITION_LAG,
    PIPELINE_STATE, PIPELINE_PLANS, PIPELINE_REGISTRY,
    TOP_DESTINATIONS, TOP_SOURCES, TOP_ARTICLES, ROLLUPS, LINK_TYPE_SHARE, PAGERANK_RUNS,
    PAGERANK_TOP, RECONCILE_DIFFS, RECONCILE_RUNS,
)}
