"""The shared store poller on the embedded store: snapshot contents, unavailable state, look-ups."""

from __future__ import annotations

import time
from collections import Counter
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import pytest

from clickstream import windows
from clickstream.settings import Settings
from clickstream.store import Store
from clickstream.store.embedded import EmbeddedStore
from dashboards import poller as poller_module
from dashboards.poller import LiveView, StorePoller, default_store_factory
from tests.dashboards.feeder import (
    ARTICLE,
    EVENT_START_MS,
    OTHER_PIPELINE,
    PARTITIONS,
    PIPELINE,
    Feeder,
    clicks_of,
    lag_of,
    reconcile_runs,
)


def wait_for(cond: Callable[[], bool], timeout_s: float = 10.0) -> None:
    deadline = time.monotonic() + timeout_s
    while not cond():
        if time.monotonic() > deadline:
            raise AssertionError("condition not met in time")
        time.sleep(0.02)


def settings_for(path: Path) -> Settings:
    return Settings(store="embedded", embedded_store_path=str(path), dashboard_poll_ms=20,
                    dashboard_pipeline=PIPELINE)


def test_snapshot_holds_the_stores_newest_windows(tmp_path: Path) -> None:
    store = EmbeddedStore(tmp_path / "store.sqlite")
    Feeder(store, backfill_s=25).start(run=False)
    poller = StorePoller(settings_for(tmp_path / "store.sqlite")).start()
    try:
        wait_for(lambda: poller.snapshot.status == "ok")
        snap = poller.snapshot
        assert list(snap.live) == [PIPELINE]
        view = snap.view(PIPELINE)
        assert isinstance(view, LiveView)
        assert view.watermark_ms == EVENT_START_MS
        starts = [r["window_start_ms"] for r in view.clicks]
        assert starts == [EVENT_START_MS - i * 1000 for i in range(1, 26)]
        assert [r["clicks"] for r in view.clicks] == [clicks_of(r["window_start_ms"]) for r in view.clicks]
        assert view.trending_start_ms == EVENT_START_MS - windows.TRENDING_WINDOW_MS
        assert [r["rank"] for r in view.trending] == list(range(1, 11))
        assert sorted(view.referrers) == [EVENT_START_MS - s for s in (30_000, 20_000, 10_000)]
        assert [r["pipeline"] for r in snap.pipelines] == [PIPELINE]
        assert snap.pagerank_runs["unweighted"][0]["run_date"] == "2015-02-28"
        assert len(snap.pagerank_top[("unweighted", "2015-02-28")]) == 12
        assert snap.top_articles[windows.METRIC_SOURCE][0]["rank"] == 1
    finally:
        poller.stop()
        store.close()


def test_snapshot_holds_the_partition_lag_of_the_health_rows_and_the_reconcile_runs(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    store = EmbeddedStore(tmp_path / "store.sqlite")
    Feeder(store, backfill_s=25).start(run=False)
    poller = StorePoller(settings_for(tmp_path / "store.sqlite")).start()
    try:
        wait_for(lambda: poller.snapshot.status == "ok")
        view = poller.snapshot.view(PIPELINE)
        assert view is not None and view.health
        window_of = {r["ts_ms"]: r["watermark_ms"] - 1000 for r in view.health}  # the feeder's step
        assert {r["ts_ms"] for r in view.partition_lag} == set(window_of)
        assert len(view.partition_lag) == PARTITIONS * len(window_of)
        assert all(r["lag_records"] == lag_of(window_of[r["ts_ms"]], r["partition_id"])
                   for r in view.partition_lag)
        assert view.reconcile_runs == reconcile_runs()
    finally:
        poller.stop()
    # More rows than a tick reads: the newest cycles that fit whole, never a cut one.
    monkeypatch.setattr(poller_module, "PARTITION_LAG_ROWS", 2 * PARTITIONS + 5)
    poller = StorePoller(settings_for(tmp_path / "store.sqlite")).start()
    try:
        wait_for(lambda: poller.snapshot.status == "ok")
        view = poller.snapshot.view(PIPELINE)
        assert view is not None
        newest = sorted({r["ts_ms"] for r in view.health}, reverse=True)[:2]
        assert sorted({r["ts_ms"] for r in view.partition_lag}, reverse=True) == newest
        assert len(view.partition_lag) == 2 * PARTITIONS
    finally:
        poller.stop()
        store.close()


def test_missing_store_file_is_unavailable_and_recovers(tmp_path: Path) -> None:
    path = tmp_path / "store.sqlite"
    poller = StorePoller(settings_for(path)).start()
    try:
        wait_for(lambda: poller.snapshot.status == "unavailable")
        assert "does not exist" in poller.snapshot.message
        assert not path.exists()  # the dashboard never creates the pipeline's store
        store = EmbeddedStore(path)
        wait_for(lambda: poller.snapshot.status == "empty")
        assert "no data" in poller.snapshot.message
        Feeder(store, backfill_s=3).start(run=False)
        wait_for(lambda: poller.snapshot.status == "ok" and len(poller.snapshot.live[PIPELINE].clicks) == 3)
        store.close()
        path.unlink()
        wait_for(lambda: poller.snapshot.status == "unavailable")
    finally:
        poller.stop()


def test_lookups_share_one_query_per_key(tmp_path: Path) -> None:
    store = EmbeddedStore(tmp_path / "store.sqlite")
    Feeder(store, backfill_s=1).start(run=False)
    poller = StorePoller(settings_for(tmp_path / "store.sqlite").replace(dashboard_poll_ms=60_000))
    try:
        first = poller.lookup("top_sources", {"destination": ARTICLE}, limit=100)
        second = poller.lookup("top_sources", {"destination": ARTICLE}, limit=100)
        assert first is second
        assert [r["source"] for r in first.result(timeout=10)][:2] == ["other-google", "other-empty"]
        assert poller.queries == 1
    finally:
        poller.stop()
        store.close()


class CountingStore:
    """Wraps a store and counts selects per (table, pipeline)."""

    def __init__(self, inner: Store, counts: Counter[tuple[str, str]]) -> None:
        self._inner = inner
        self._counts = counts

    def select(self, table: str, partition: Mapping[str, Any], **kw: Any) -> list[dict[str, Any]]:
        self._counts[(table, str(partition.get("pipeline", "")))] += 1
        return self._inner.select(table, partition, **kw)

    def __getattr__(self, name: str) -> Any:
        return getattr(self._inner, name)


def test_watched_pipelines_get_one_query_set_per_tick_and_expire(tmp_path: Path,
                                                                  monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(poller_module, "WATCH_TTL_S", 0.5)
    store = EmbeddedStore(tmp_path / "store.sqlite")
    Feeder(store, backfill_s=12).start(run=False)
    Feeder(store, backfill_s=12, pipeline=OTHER_PIPELINE).start(run=False)  # registered last: newest
    counts: Counter[tuple[str, str]] = Counter()
    poller = StorePoller(settings_for(tmp_path / "store.sqlite"),
                         store_factory=lambda s: CountingStore(default_store_factory(s), counts)).start()
    try:
        wait_for(lambda: poller.snapshot.status == "ok")
        snap = poller.snapshot
        assert [r["pipeline"] for r in snap.pipelines] == [OTHER_PIPELINE, PIPELINE]
        assert list(snap.live) == [PIPELINE]  # only the settings' pipeline until someone watches another
        assert not poller.watch("never-wrote")  # not in the registry: never read
        assert poller.watch(OTHER_PIPELINE)
        wait_for(lambda: OTHER_PIPELINE in poller.snapshot.live)
        other = poller.snapshot.live[OTHER_PIPELINE]
        assert [r["clicks"] for r in other.clicks] == [clicks_of(r["window_start_ms"], OTHER_PIPELINE)
                                                       for r in other.clicks]
        assert other.clicks[0]["clicks"] != poller.snapshot.live[PIPELINE].clicks[0]["clicks"]
        ticks_before, counts_before = poller.ticks, Counter(counts)
        for _ in range(10):  # ten sessions on the other pipeline cost what one does
            poller.watch(OTHER_PIPELINE)
        time.sleep(0.3)
        ticks = poller.ticks - ticks_before + 2  # a tick may be under way at either end
        read = counts - counts_before
        for pipeline in (PIPELINE, OTHER_PIPELINE):
            assert 0 < read[("window_totals", pipeline)] <= 2 * ticks
            assert read[("pipeline_metrics", pipeline)] <= 3 * ticks
            assert read[("partition_lag", pipeline)] <= ticks
            assert read[("reconcile_runs", pipeline)] <= ticks // poller_module.BATCH_EVERY_TICKS + 2
        assert counts[("pipeline_metrics", "never-wrote")] == 0
        wait_for(lambda: list(poller.snapshot.live) == [PIPELINE], 5)  # unwatched: dropped after the TTL
    finally:
        poller.stop()
        store.close()
