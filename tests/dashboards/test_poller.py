"""The shared store poller on the embedded store: snapshot contents, unavailable state, look-ups."""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path

from clickstream import windows
from clickstream.settings import Settings
from clickstream.store.embedded import EmbeddedStore
from dashboards.poller import Snapshot, StorePoller
from tests.dashboards.feeder import ARTICLE, EVENT_START_MS, PIPELINE, Feeder, clicks_of


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
        snap: Snapshot = poller.snapshot
        assert snap.watermark_ms == EVENT_START_MS
        starts = [r["window_start_ms"] for r in snap.clicks]
        assert starts == [EVENT_START_MS - i * 1000 for i in range(1, 26)]
        assert [r["clicks"] for r in snap.clicks] == [clicks_of(r["window_start_ms"]) for r in snap.clicks]
        assert snap.trending_start_ms == EVENT_START_MS - windows.TRENDING_WINDOW_MS
        assert [r["rank"] for r in snap.trending] == list(range(1, 11))
        assert sorted(snap.referrers) == [EVENT_START_MS - s for s in (30_000, 20_000, 10_000)]
        assert snap.pagerank_runs["unweighted"][0]["run_date"] == "2015-02-28"
        assert len(snap.pagerank_top[("unweighted", "2015-02-28")]) == 12
        assert snap.top_articles[windows.METRIC_SOURCE][0]["rank"] == 1
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
        wait_for(lambda: poller.snapshot.status == "ok" and len(poller.snapshot.clicks) == 3)
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
