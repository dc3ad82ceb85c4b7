"""What the streaming aggregates are, shared by the pipeline, the reconcile job and the dashboard.

Metrics (the ``metric`` column of the window tables) and what their keys are:

- ``destination``: the clicked article (``curr``)
- ``source``: the referring article or ``other-*`` (``prev``)
- ``referrer``: the referrer class (``clickstream.referrers.classify(prev)``)
- ``link_type``: the dump's type (link, external, other, redlink)

Windows are event-time, aligned to the Unix epoch, ``[start_ms, start_ms + window_ms)``.
Tumbling windows of ``TUMBLING_WINDOWS_MS``; one sliding window of ``SLIDING_WINDOW_MS``
advancing by ``SLIDING_STEP_MS`` (its window_ms in the tables is SLIDING_WINDOW_MS).

What is stored (every stored number is exact; writes are absolute values, idempotent):

- ``window_totals``: every window of every size (clicks and late clicks).
- ``window_counts`` + ``key_series``: full per-key counts, only for ``FULL_COUNT_WINDOWS_MS``
  (a full per-article count of every 1 s window could outnumber the clicks themselves).
- ``window_topn``: the top ``TOP_N`` keys of every window of every size and metric.
- ``trending``: top ``TOP_N`` destinations by lift over an EWMA baseline, per
  ``TRENDING_WINDOW_MS`` window.

The ``day`` partition column is ``day_of(ms)`` ("YYYY-MM-DD", UTC): of the window start
(event time) in ``window_totals``, of ``ts_ms`` in ``pipeline_metrics``.
"""

from __future__ import annotations

import datetime as _dt

METRIC_DESTINATION = "destination"
METRIC_SOURCE = "source"
METRIC_REFERRER = "referrer"
METRIC_LINK_TYPE = "link_type"
METRICS = (METRIC_DESTINATION, METRIC_SOURCE, METRIC_REFERRER, METRIC_LINK_TYPE)

# The column of a click (the pipeline's click table, the Parquet archive) each metric counts.
REFERRER_CLASS_COLUMN = "referrer_class"
METRIC_COLUMNS = {METRIC_DESTINATION: "curr", METRIC_SOURCE: "prev",
                  METRIC_REFERRER: REFERRER_CLASS_COLUMN, METRIC_LINK_TYPE: "link_type"}

SECOND_MS = 1_000
HOUR_MS = 3_600_000
DAY_MS = 86_400_000
# The month a replay's event times fall in when neither the dump's name nor a flag says.
DEFAULT_MONTH = "2015-02"

TUMBLING_WINDOWS_MS = (1_000, 10_000, 60_000)
SLIDING_WINDOW_MS = 300_000
SLIDING_STEP_MS = 10_000
FULL_COUNT_WINDOWS_MS = (60_000,)
TRENDING_WINDOW_MS = 10_000
TOP_N = 10


def window_start_ms(ts_ms: int, window_ms: int) -> int:
    """Start of the tumbling window of size ``window_ms`` holding ``ts_ms``."""
    return ts_ms - ts_ms % window_ms


def sliding_starts_ms(ts_ms: int, window_ms: int = SLIDING_WINDOW_MS,
                      step_ms: int = SLIDING_STEP_MS) -> range:
    """Starts of every sliding window ``[s, s + window_ms)`` (s a multiple of step) holding ts."""
    last = ts_ms - ts_ms % step_ms
    return range(last - window_ms + step_ms, last + 1, step_ms)


def day_of(ts_ms: int) -> str:
    """The ``day`` partition value ("YYYY-MM-DD", UTC) of a time in epoch milliseconds."""
    return _dt.datetime.fromtimestamp(ts_ms / 1000, tz=_dt.UTC).strftime("%Y-%m-%d")
