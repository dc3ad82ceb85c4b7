"""A test feeder that writes the store the way the pipeline and the Spark jobs do.

The live tables advance one 1 s event-time window per ``step_s`` of wall time from
``EVENT_START_MS`` (a replay of February 2015); the batch tables are written once.
Clicks of a window are a pure function of its start, so tests can recompute them.
"""

from __future__ import annotations

import math
import threading
import time
from typing import Any

from clickstream import windows
from clickstream.referrers import REFERRER_CLASSES
from clickstream.store import Store

EVENT_START_MS = 1_422_792_000_000  # 2015-02-01 12:00:00 UTC
EVIL_TITLE = "<img src=x onerror=alert(1)>"
ARTICLE = "London"
ONE_HOUR_ARTICLE = "Brand_new_article"  # batch rollups of a single hour (the explorer's edge case)
PIPELINE = "test-pipeline"
OTHER_PIPELINE = "other-group/other-topic"
OTHER_EXTRA_CLICKS = 1_000  # the second pipeline's windows hold this many clicks more
RECONCILE_RUN = "20150301T000000Z-abc123"
EVIL_RUN = "run <img src=x onerror=alert(3)>"  # run ids are user input (--run-id)
DRY_RUN = "20150302T000000Z-dry999"
PARTITIONS = 12  # more than the partition-lag legend lists one by one


def lag_of(start_ms: int, partition: int) -> int:
    """Records not read of one partition at the metrics row of the window at ``start_ms``:
    a wave per partition, higher partitions lagging more."""
    return int(30 * partition + 40 * (1 + math.sin(start_ms / 7_000 + partition)))


def reconcile_runs() -> list[dict[str, Any]]:
    """The listed runs of ``PIPELINE``, newest first (the dry run recorded no differences)."""
    return [
        {"pipeline": PIPELINE, "started_ms": EVENT_START_MS + 3 * 86_400_000, "run_id": DRY_RUN,
         "ended_ms": EVENT_START_MS + 3 * 86_400_000 + 9_000, "windows_compared": 500,
         "windows_differing": 4, "differences": 5, "dry_run": 1},
        {"pipeline": PIPELINE, "started_ms": EVENT_START_MS + 2 * 86_400_000, "run_id": EVIL_RUN,
         "ended_ms": EVENT_START_MS + 2 * 86_400_000 + 8_000, "windows_compared": 480,
         "windows_differing": 1, "differences": 1, "dry_run": 0},
        {"pipeline": PIPELINE, "started_ms": EVENT_START_MS + 86_400_000, "run_id": RECONCILE_RUN,
         "ended_ms": EVENT_START_MS + 86_400_000 + 7_000, "windows_compared": 470,
         "windows_differing": 2, "differences": 2, "dry_run": 0},
    ]


def clicks_of(start_ms: int, pipeline: str = PIPELINE) -> int:
    extra = OTHER_EXTRA_CLICKS if pipeline == OTHER_PIPELINE else 0
    return 100 + (start_ms // 1000) % 37 + extra


def trending_keys(start_ms: int) -> list[str]:
    """Ten keys re-ranked every window; the evil title is always among them."""
    base = [EVIL_TITLE, "Main_Page", 'Quote_"and"_&_amp', "London", "Paris"]
    base += [f"Article_{i}" for i in range(5)]
    shift = (start_ms // windows.TRENDING_WINDOW_MS) % len(base)
    return base[shift:] + base[:shift]


def write_batch(store: Store) -> None:
    titles = [EVIL_TITLE, "London", "Main_Page", 'Quote_"and"_&_amp'] + [f"Article_{i}" for i in range(8)]
    for kind in (windows.METRIC_SOURCE, windows.METRIC_DESTINATION):
        store.upsert("top_articles", [{"kind": kind, "rank": i + 1, "title": t, "clicks": 10_000 - i * 100}
                                      for i, t in enumerate(titles)])
    for variant, dates in (("unweighted", ("2015-02-27", "2015-02-28")),):
        store.upsert("pagerank_runs", [{"variant": variant, "run_date": d, "iterations": 10, "converged": 1,
                                        "nodes": 1000, "edges": 5000} for d in dates])
        for d in dates:
            bonus = 0.5 if d.endswith("28") else 0.0
            store.upsert("pagerank_top", [{"run_date": d, "variant": variant, "rank": i + 1, "title": t,
                                           "score": round(1.0 / (i + 1) + bonus, 6)}
                                          for i, t in enumerate(titles)])
    sources = ["other-google", "other-empty", "Main_Page", EVIL_TITLE, "other-twitter"]
    store.upsert("top_sources", [{"destination": ARTICLE, "rank": i + 1, "source": s, "clicks": 500 - i * 90}
                                 for i, s in enumerate(sources)])
    store.upsert("top_destinations", [{"source": ARTICLE, "rank": i + 1, "destination": d,
                                       "clicks": 300 - i * 50}
                                      for i, d in enumerate(["Paris", EVIL_TITLE, "River_Thames"])])
    store.upsert("link_type_share", [{"scope": ARTICLE, "link_type": lt, "clicks": c, "share": c / 1000}
                                     for lt, c in (("link", 600), ("external", 350), ("other", 50))])
    store.upsert("rollups", [{"metric": windows.METRIC_DESTINATION, "granularity": "hour", "key": ARTICLE,
                              "bucket_start_ms": EVENT_START_MS - h * 3_600_000, "clicks": 40 + h}
                             for h in range(24)])
    store.upsert("rollups", [{"metric": windows.METRIC_DESTINATION, "granularity": "hour",
                              "key": ONE_HOUR_ARTICLE, "bucket_start_ms": EVENT_START_MS, "clicks": 77}])
    store.upsert("top_sources", [{"destination": ONE_HOUR_ARTICLE, "rank": 1, "source": "other-google",
                                  "clicks": 77}])
    store.upsert("reconcile_diffs", [
        {"run_id": RECONCILE_RUN, "metric": "destination", "window_ms": 60_000,
         "window_start_ms": EVENT_START_MS - 60_000, "key": EVIL_TITLE, "streamed": 40, "recounted": 42},
        {"run_id": RECONCILE_RUN, "metric": "total", "window_ms": 1_000,
         "window_start_ms": EVENT_START_MS - 5_000, "key": "clicks", "streamed": 130, "recounted": 125},
    ])
    store.upsert("reconcile_diffs", [
        {"run_id": EVIL_RUN, "metric": "source", "window_ms": 60_000, "window_start_ms": EVENT_START_MS,
         "key": "London", "streamed": 7, "recounted": 9}])
    store.upsert("reconcile_runs", reconcile_runs())


class Feeder:
    """Writes the live tables on a thread; ``pause``/``resume`` hold and release the clock."""

    def __init__(self, store: Store, step_s: float = 0.2, backfill_s: int = 60,
                 pipeline: str = PIPELINE) -> None:
        self.store = store
        self.pipeline = pipeline
        self.step_s = step_s
        self.next_start_ms = EVENT_START_MS - backfill_s * 1000
        self.written_windows = 0
        self._stop = threading.Event()
        self._running = threading.Event()
        self._running.set()
        self._lock = threading.Lock()
        self._thread = threading.Thread(target=self._run, name="test-feeder", daemon=True)
        self.errors: list[BaseException] = []

    def start(self, backfill: bool = True, run: bool = True) -> Feeder:
        """Write the batch tables and the backfill; ``run`` then advances on a thread."""
        write_batch(self.store)
        while backfill and self.next_start_ms < EVENT_START_MS:
            self.step()
        if run:
            self._thread.start()
        return self

    def stop(self) -> None:
        self._stop.set()
        self._running.set()
        if self._thread.is_alive():
            self._thread.join(timeout=10)

    def pause(self) -> None:
        """Stop advancing; returns once no write is in progress."""
        self._running.clear()
        with self._lock:
            pass

    def resume(self) -> None:
        self._running.set()

    def _run(self) -> None:
        while not self._stop.is_set():
            self._running.wait()
            if self._stop.is_set():
                return
            try:
                with self._lock:
                    if self._running.is_set():
                        self.step()
            except Exception as exc:  # a store cut by the test: keep trying, remember why
                self.errors.append(exc)
            self._stop.wait(self.step_s)

    def step(self) -> None:
        """Write one 1 s window (and the 10 s windows it closes) plus a metrics row and its
        per-partition lag rows."""
        start = self.next_start_ms
        day = windows.day_of(start)
        now_ms = int(time.time() * 1000)
        self.store.upsert("window_totals", [{"pipeline": self.pipeline, "window_ms": 1000, "day": day,
                                             "window_start_ms": start,
                                             "clicks": clicks_of(start, self.pipeline),
                                             "late_clicks": start // 1000 % 3, "written_ms": now_ms,
                                             "cycle": 1, "final": 1}])
        end = start + 1000
        if end % windows.TRENDING_WINDOW_MS == 0:
            self._close_ten_seconds(end - windows.TRENDING_WINDOW_MS, now_ms)
        self.store.upsert("pipeline_metrics", [{
            "pipeline": self.pipeline, "day": windows.day_of(now_ms), "ts_ms": now_ms, "clicks_in": 1000,
            "clicks_per_s": float(clicks_of(start, self.pipeline)), "lag_ms": 100 + start // 1000 % 50,
            "latency_ms": 40 + start // 1000 % 20, "late_clicks": 3, "dead_letters": 1,
            "watermark_ms": end}])
        self.store.upsert("partition_lag", [{
            "pipeline": self.pipeline, "day": windows.day_of(now_ms), "ts_ms": now_ms, "partition_id": p,
            "lag_records": lag_of(start, p), "next_offset": start // 1000 * 10,
            "end_offset": start // 1000 * 10 + lag_of(start, p)} for p in range(PARTITIONS)])
        self.store.upsert("pipeline_registry", [{"scope": "all", "pipeline": self.pipeline,
                                                 "topic": f"topic-of-{self.pipeline}", "updated_ms": now_ms}])
        self.next_start_ms = end
        self.written_windows += 1

    def _close_ten_seconds(self, s: int, now_ms: int) -> None:
        day = windows.day_of(s)
        total = sum(clicks_of(s + i * 1000, self.pipeline) for i in range(10))
        self.store.upsert("window_totals", [{"pipeline": self.pipeline, "window_ms": 10_000, "day": day,
                                             "window_start_ms": s, "clicks": total, "late_clicks": 0,
                                             "written_ms": now_ms, "cycle": 1, "final": 1}])
        rows: list[dict[str, Any]] = []
        for rank, key in enumerate(trending_keys(s), start=1):
            rows.append({"pipeline": self.pipeline, "window_ms": windows.TRENDING_WINDOW_MS,
                         "window_start_ms": s, "rank": rank,
                         "key": key, "clicks": 50 - rank, "baseline": 5.0, "lift": (50 - rank) / 5.0})
        self.store.upsert("trending", rows)
        mix = {cls: (i + 1) * 10 + (s // 10_000) % 7 for i, cls in enumerate(REFERRER_CLASSES)}
        ranked = sorted(mix.items(), key=lambda kv: (-kv[1], kv[0]))
        self.store.upsert("window_topn", [{"pipeline": self.pipeline, "metric": windows.METRIC_REFERRER,
                                           "window_ms": 10_000,
                                           "window_start_ms": s, "rank": r, "key": k, "clicks": c}
                                          for r, (k, c) in enumerate(ranked, start=1)])
