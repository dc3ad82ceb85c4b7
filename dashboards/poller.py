"""The process-wide store poller: one thread per server process reads the store each tick.

Browser sessions never query the store on a timer; they read ``StorePoller.snapshot``
(an immutable ``Snapshot`` replaced whole each tick) and push the difference to their
browser. Each tick reads the live tables once per pipeline being shown: the settings'
pipeline always, and any other pipeline of ``pipeline_registry`` that a session asked for
with ``watch`` within ``WATCH_TTL_S`` (so ten tabs on two pipelines cost two query sets).
A failed read marks the snapshot unavailable, closes the store and reopens it
with exponential backoff (``BACKOFF_S``), so the page recovers by itself. User-driven
look-ups (a PageRank date, an explorer article) go through ``lookup``: a small worker
pool with a short-lived cache shared by every session, so they never block the server's
event loop.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Mapping
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any, NamedTuple

from clickstream import windows
from clickstream.settings import Settings
from clickstream.store import Store, StoreError, open_store

log = logging.getLogger(__name__)

CLICKS_WINDOW_MS = 1_000
CLICKS_SPAN_WINDOWS = 300  # five minutes of 1 s windows
MIX_WINDOW_MS = 10_000
MIX_SPAN_WINDOWS = 30  # five minutes of 10 s windows
HEALTH_ROWS = 120
PARTITION_LAG_ROWS = 20_000  # partition_lag rows read per tick (HEALTH_ROWS cycles of up to 166 partitions)
RECONCILE_RUNS = 50  # newest reconcile_runs rows listed
BATCH_EVERY_TICKS = 8  # batch tables and pipeline_registry are read every this many ticks
WATCH_TTL_S = 5.0
BACKOFF_S = (0.25, 0.5, 1.0, 2.0, 4.0)
LOOKUP_TTL_S = 5.0

StoreFactory = Callable[[Settings], Store]


class CachedLookup(NamedTuple):
    at_s: float  # time.monotonic() of the read
    future: Future[Any]


@dataclass(frozen=True)
class LiveView:
    """One pipeline's live tables at one tick."""

    pipeline: str
    watermark_ms: int | None = None
    clicks: list[dict[str, Any]] = field(default_factory=list)  # window_totals, newest first
    trending_start_ms: int | None = None
    trending: list[dict[str, Any]] = field(default_factory=list)
    referrers: dict[int, dict[str, int]] = field(default_factory=dict)
    health: list[dict[str, Any]] = field(default_factory=list)  # pipeline_metrics, newest first
    partition_lag: list[dict[str, Any]] = field(default_factory=list)  # of the health rows' cycles
    reconcile_runs: list[dict[str, Any]] = field(default_factory=list)  # newest first

    @property
    def empty(self) -> bool:
        return not self.clicks and not self.health


@dataclass(frozen=True)
class Snapshot:
    """What the store held at one tick. ``status``: connecting | unavailable | empty | ok.

    ``live`` maps each pipeline read this tick to its ``LiveView``; ``pipelines`` are the
    ``pipeline_registry`` rows (every pipeline that wrote), newest update first.
    """

    version: int = 0
    status: str = "connecting"
    message: str = "Connecting to the store…"
    live: dict[str, LiveView] = field(default_factory=dict)
    pipelines: list[dict[str, Any]] = field(default_factory=list)
    top_articles: dict[str, list[dict[str, Any]]] = field(default_factory=dict)
    pagerank_runs: dict[str, list[dict[str, Any]]] = field(default_factory=dict)
    pagerank_top: dict[tuple[str, str], list[dict[str, Any]]] = field(default_factory=dict)

    def view(self, pipeline: str) -> LiveView | None:
        """The pipeline's live tables, or None when this tick did not read them (yet)."""
        return self.live.get(pipeline)

    @property
    def live_empty(self) -> bool:
        return all(v.empty for v in self.live.values())

    @property
    def batch_empty(self) -> bool:
        return not any(self.top_articles.values()) and not any(self.pagerank_runs.values())


@dataclass
class _LiveCache:
    """What the poller keeps between ticks for one pipeline."""

    mix: dict[int, dict[str, int]] = field(default_factory=dict)
    metrics_day: str | None = None
    reconcile_runs: list[dict[str, Any]] | None = None  # None: not read yet


def default_store_factory(settings: Settings) -> Store:
    """Open the configured store read-only in spirit: never create a missing SQLite file."""
    if settings.store_backend == "embedded" and not settings.embedded_store_file.exists():
        raise StoreError(f"embedded store file {settings.embedded_store_file} does not exist "
                         "(has the pipeline run?)")
    return open_store(settings)


class StorePoller:
    """Reads the live and batch tables every ``settings.dashboard_poll_ms`` on one thread.

    ``start`` returns at once; ``stop`` joins the thread and closes the store (idempotent).
    ``queries`` counts every store call the poller made, ``ticks`` the completed ticks.
    """

    def __init__(self, settings: Settings, store_factory: StoreFactory = default_store_factory,
                 clock_ms: Callable[[], int] = lambda: int(time.time() * 1000)) -> None:
        self.settings = settings
        self.default_pipeline = settings.dashboard_pipeline or settings.pipeline_id
        self._factory = store_factory
        self._clock_ms = clock_ms
        self._store: Store | None = None
        self._store_lock = threading.Lock()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._pool = ThreadPoolExecutor(max_workers=2, thread_name_prefix="clickstream-dashboard-lookup")
        self._cache: dict[tuple[Any, ...], CachedLookup] = {}
        self._cache_lock = threading.Lock()
        self.snapshot = Snapshot()
        self.queries = 0
        self.ticks = 0
        self._live_cache: dict[str, _LiveCache] = {}
        self._watched: dict[str, float] = {}  # pipeline -> time.monotonic() of the last watch
        self._watch_lock = threading.Lock()
        self._batch: dict[str, Any] = {}
        self._registry: list[dict[str, Any]] = []

    # -- lifecycle ---------------------------------------------------------------------
    def start(self) -> StorePoller:
        if self._thread is None:
            self._thread = threading.Thread(target=self._run, name="clickstream-dashboard-poller",
                                            daemon=True)
            self._thread.start()
        return self

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=30)
        self._pool.shutdown(wait=False, cancel_futures=True)
        self._close_store()

    def _close_store(self) -> None:
        with self._store_lock:
            store, self._store = self._store, None
        if store is not None:
            try:
                store.close()
            except Exception as exc:  # the connection is being dropped anyway
                log.debug("closing the store: %s", exc)

    def _run(self) -> None:
        period_s = self.settings.dashboard_poll_ms / 1000
        failures = 0
        while not self._stop.is_set():
            started = time.monotonic()
            try:
                self._publish(self._poll())
                failures = 0
                wait_s = period_s
            except Exception as exc:
                message = str(exc) if isinstance(exc, StoreError) else f"{type(exc).__name__}: {exc}"
                if failures == 0:
                    log.warning("dashboard: store unavailable: %s", message)
                self._close_store()
                self._publish(Snapshot(status="unavailable",
                                       message=f"The store is unavailable: {message}. Retrying…"))
                wait_s = BACKOFF_S[min(failures, len(BACKOFF_S) - 1)]
                failures += 1
            self.ticks += 1
            self._stop.wait(max(0.0, wait_s - (time.monotonic() - started)))

    def _publish(self, snap: Snapshot) -> None:
        self.snapshot = Snapshot(**{**snap.__dict__, "version": self.snapshot.version + 1})

    # -- store access --------------------------------------------------------------------
    def _get_store(self) -> Store:
        with self._store_lock:
            if self._store is None:
                self._store = self._factory(self.settings)
            return self._store

    def _select(self, table: str, partition: Mapping[str, Any], **kw: Any) -> list[dict[str, Any]]:
        self.queries += 1
        return self._get_store().select(table, partition, **kw)

    # -- which pipelines are read ---------------------------------------------------------
    def watch(self, pipeline: str) -> bool:
        """Ask for ``pipeline``'s live tables in the next ticks (a session calls this each update).

        Only the settings' pipeline and pipelines listed in ``pipeline_registry`` are read, so
        no client can make the poller query arbitrary partitions; returns whether it is read.
        """
        if pipeline != self.default_pipeline and pipeline not in {str(r["pipeline"]) for r in self._registry}:
            return False
        with self._watch_lock:
            self._watched[pipeline] = time.monotonic()
        return True

    def watched(self) -> list[str]:
        """The pipelines read this tick: the default first, then those watched within WATCH_TTL_S."""
        now = time.monotonic()
        with self._watch_lock:
            for p in [p for p, at in self._watched.items() if now - at > WATCH_TTL_S]:
                del self._watched[p]
            others = sorted(p for p in self._watched if p != self.default_pipeline)
        return [self.default_pipeline, *others]

    # -- one tick ------------------------------------------------------------------------
    def _poll(self) -> Snapshot:
        store = self._get_store()
        self.queries += 1
        store.ping()
        batch_due = self.ticks % BATCH_EVERY_TICKS == 0 or not self._batch
        if batch_due:
            self._registry = sorted(self._select("pipeline_registry", {"scope": "all"}),
                                    key=lambda r: -int(r["updated_ms"]))
        pipelines = self.watched()
        for gone in set(self._live_cache) - set(pipelines):
            del self._live_cache[gone]
        live = {p: self._read_live(p, self._live_cache.setdefault(p, _LiveCache()), batch_due)
                for p in pipelines}
        if batch_due:
            self._batch = self._read_batch()
        snap = Snapshot(status="ok", message="", live=live, pipelines=list(self._registry), **self._batch)
        if snap.live_empty and snap.batch_empty and not snap.pipelines:
            return Snapshot(**{**snap.__dict__, "status": "empty",
                               "message": "The store is reachable but holds no data yet."})
        return snap

    def _read_live(self, pipeline: str, cache: _LiveCache, batch_due: bool) -> LiveView:
        """One pipeline's query set: metrics and partition lag, then its newest windows, trending
        and mix; its reconcile runs with the batch tables (or when first shown)."""
        health = self._read_health(pipeline, cache)
        partition_lag = self._read_partition_lag(pipeline, cache, health)
        if batch_due or cache.reconcile_runs is None:
            cache.reconcile_runs = self._select("reconcile_runs", {"pipeline": pipeline},
                                                limit=RECONCILE_RUNS)
        watermark = int(health[0]["watermark_ms"]) if health else None
        clicks: list[dict[str, Any]] = []
        trending_start, trending = None, []
        if watermark is not None:
            clicks = self._read_clicks(pipeline, watermark)
        if clicks:
            newest = int(clicks[0]["window_start_ms"])
            trending_start, trending = self._read_trending(pipeline, newest)
            self._read_mix(pipeline, cache, newest)
        return LiveView(pipeline, watermark_ms=watermark, clicks=clicks, trending_start_ms=trending_start,
                        trending=trending, referrers=dict(cache.mix), health=health,
                        partition_lag=partition_lag, reconcile_runs=list(cache.reconcile_runs))

    def _read_health(self, pipeline: str, cache: _LiveCache) -> list[dict[str, Any]]:
        now = self._clock_ms()
        days = [windows.day_of(now), windows.day_of(now - windows.DAY_MS)]
        if cache.metrics_day and cache.metrics_day not in days:
            days.insert(0, cache.metrics_day)
        for day in days:
            rows = self._select("pipeline_metrics", {"pipeline": pipeline, "day": day}, limit=HEALTH_ROWS)
            if rows:
                cache.metrics_day = day
                return rows
        return []

    def _read_partition_lag(self, pipeline: str, cache: _LiveCache,
                            health: list[dict[str, Any]]) -> list[dict[str, Any]]:
        """The ``partition_lag`` rows of the health rows' cycles, newest first; when more than
        PARTITION_LAG_ROWS, the newest cycles that fit whole (the oldest one read may be cut)."""
        if not health or cache.metrics_day is None:
            return []
        oldest = min(int(r["ts_ms"]) for r in health)
        rows = self._select("partition_lag", {"pipeline": pipeline, "day": cache.metrics_day}, start=oldest,
                            limit=PARTITION_LAG_ROWS)
        if len(rows) == PARTITION_LAG_ROWS:
            cut = int(rows[-1]["ts_ms"])
            rows = [r for r in rows if int(r["ts_ms"]) != cut]
        return rows

    def _read_clicks(self, pipeline: str, watermark_ms: int) -> list[dict[str, Any]]:
        day = windows.day_of(watermark_ms)
        rows = self._select("window_totals",
                            {"pipeline": pipeline, "window_ms": CLICKS_WINDOW_MS, "day": day},
                            limit=CLICKS_SPAN_WINDOWS)
        span_start = watermark_ms - CLICKS_SPAN_WINDOWS * CLICKS_WINDOW_MS
        if len(rows) < CLICKS_SPAN_WINDOWS and windows.day_of(span_start) != day:
            rows += self._select("window_totals", {"pipeline": pipeline, "window_ms": CLICKS_WINDOW_MS,
                                                   "day": windows.day_of(span_start)},
                                 limit=CLICKS_SPAN_WINDOWS - len(rows))
        return rows

    def _read_trending(self, pipeline: str, newest_ms: int) -> tuple[int | None, list[dict[str, Any]]]:
        start = windows.window_start_ms(newest_ms, windows.TRENDING_WINDOW_MS)
        for s in (start, start - windows.TRENDING_WINDOW_MS):
            rows = self._select("trending", {"pipeline": pipeline, "window_ms": windows.TRENDING_WINDOW_MS,
                                             "window_start_ms": s})
            if rows:
                return s, rows
        return None, []

    def _read_mix(self, pipeline: str, cache: _LiveCache, newest_ms: int) -> None:
        """Referrer mix per 10 s window: the two newest re-read each tick, older ones cached."""
        newest = windows.window_start_ms(newest_ms, MIX_WINDOW_MS)
        starts = [newest - i * MIX_WINDOW_MS for i in range(MIX_SPAN_WINDOWS)]
        keep = set(starts)
        for s in [s for s in cache.mix if s not in keep]:
            del cache.mix[s]
        for i, s in enumerate(starts):
            if i >= 2 and s in cache.mix:
                continue
            rows = self._select("window_topn", {"pipeline": pipeline, "metric": windows.METRIC_REFERRER,
                                                "window_ms": MIX_WINDOW_MS, "window_start_ms": s})
            if rows:
                cache.mix[s] = {str(r["key"]): int(r["clicks"]) for r in rows}
            elif i >= 2:
                cache.mix.pop(s, None)

    def _read_batch(self) -> dict[str, Any]:
        top_articles = {kind: self._select("top_articles", {"kind": kind}, limit=100)
                        for kind in (windows.METRIC_SOURCE, windows.METRIC_DESTINATION)}
        runs: dict[str, list[dict[str, Any]]] = {}
        tops: dict[tuple[str, str], list[dict[str, Any]]] = {}
        for variant in self.settings.dashboard_pagerank_variants:
            runs[variant] = self._select("pagerank_runs", {"variant": variant}, limit=100)
            if runs[variant]:
                newest = str(runs[variant][0]["run_date"])
                tops[(variant, newest)] = self._select(
                    "pagerank_top", {"run_date": newest, "variant": variant}, limit=100)
        return {"top_articles": top_articles, "pagerank_runs": runs, "pagerank_top": tops}

    # -- user-driven look-ups --------------------------------------------------------------
    def lookup(self, table: str, partition: Mapping[str, Any], **kw: Any) -> Future[list[dict[str, Any]]]:
        """One partition read on the worker pool; equal reads within LOOKUP_TTL_S share a result."""
        key = (table, tuple(sorted(partition.items())), tuple(sorted(kw.items())))
        now = time.monotonic()
        with self._cache_lock:
            hit = self._cache.get(key)
            if hit and now - hit.at_s < LOOKUP_TTL_S and not (hit.future.done() and hit.future.exception()):
                return hit.future
            future = self._pool.submit(self._select, table, partition, **kw)
            self._cache[key] = CachedLookup(now, future)
            if len(self._cache) > 512:
                for k, entry in list(self._cache.items()):
                    if now - entry.at_s >= LOOKUP_TTL_S:
                        del self._cache[k]
        return future
