"""The dashboard in headless Chromium against a store being written by a feeder thread.

Reads the Bokeh document's data sources in the page and compares them with the store;
saves one screenshot per page into test-artifacts/.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator, Mapping
from pathlib import Path
from typing import Any

import pytest

from clickstream import windows
from clickstream.settings import Settings
from clickstream.store import Store, open_store
from clickstream.store.embedded import EmbeddedStore
from dashboards import shaping
from dashboards.poller import CLICKS_SPAN_WINDOWS, default_store_factory
from dashboards.server import DashboardHandle, start_dashboard
from tests.dashboards.feeder import ARTICLE, EVIL_TITLE, PIPELINE, Feeder
from tests.dashboards.tcp_proxy import TcpProxy

pytestmark = [pytest.mark.browser, pytest.mark.integration]

LIVE_TABLES = {"window_totals", "trending", "window_topn", "pipeline_metrics"}
POLLER_THREAD = "clickstream-dashboard-poller"

DATA_JS = """(name) => {
  const m = Bokeh.documents[0].get_model_by_name(name);
  const d = m.data instanceof Map ? Object.fromEntries(m.data) : m.data;
  const out = {};
  for (const k of Object.keys(d)) out[k] = Array.from(d[k]);
  return out;
}"""
TEXT_JS = "(name) => Bokeh.documents[0].get_model_by_name(name).text"


class CountingStore:
    """Wraps a store and records (thread name, table) of every select."""

    def __init__(self, inner: Store, log: list[tuple[str, str]]) -> None:
        self._inner = inner
        self._log = log

    def select(self, table: str, partition: Mapping[str, Any], **kw: Any) -> list[dict[str, Any]]:
        self._log.append((threading.current_thread().name, table))
        return self._inner.select(table, partition, **kw)

    def __getattr__(self, name: str) -> Any:
        return getattr(self._inner, name)


def wait_for(cond: Callable[[], bool], timeout_s: float, what: str) -> None:
    deadline = time.monotonic() + timeout_s
    while True:
        if cond():
            return
        if time.monotonic() > deadline:
            raise AssertionError(f"{what}: not within {timeout_s} s")
        time.sleep(0.05)


def open_page(browser: Any, url: str) -> tuple[Any, list[str]]:
    page = browser.new_page(viewport={"width": 1400, "height": 1000})
    dialogs: list[str] = []
    page.on("dialog", lambda d: (dialogs.append(d.message), d.dismiss()))
    page.goto(url)
    page.wait_for_function("() => window.Bokeh && Bokeh.documents.length > 0 && "
                           "Bokeh.documents[0].get_model_by_name('status') !== null", timeout=30_000)
    page.evaluate("() => { window.__not_reloaded = true; }")
    return page, dialogs


def data(page: Any, name: str) -> dict[str, list[Any]]:
    return page.evaluate(DATA_JS, name)


def status_text(page: Any) -> str:
    return page.evaluate(TEXT_JS, "status")


def store_clicks(store: Store, settings_day_ms: int) -> dict[str, list[Any]]:
    rows = store.select("window_totals", {"pipeline": PIPELINE, "window_ms": 1000,
                                          "day": windows.day_of(settings_day_ms)},
                        limit=CLICKS_SPAN_WINDOWS)
    return shaping.clicks_series(rows, 1000)


def newest_x(page: Any) -> int:
    xs = data(page, "clicks")["x"]
    return int(xs[-1]) if xs else 0


def click_tab(page: Any, title: str) -> None:
    page.locator(".bk-tab", has_text=title).first.click()


@pytest.fixture
def embedded(tmp_path: Path) -> Iterator[tuple[Settings, EmbeddedStore, Feeder]]:
    path = tmp_path / "store.sqlite"
    settings = Settings(store="embedded", embedded_store_path=str(path), dashboard_port=0,
                        dashboard_pipeline=PIPELINE)
    store = EmbeddedStore(path)
    feeder = Feeder(store).start()
    yield settings, store, feeder
    feeder.stop()
    store.close()


def test_pages_show_store_numbers_update_live_and_escape_titles(
        browser: Any, embedded: tuple[Settings, EmbeddedStore, Feeder], artifacts_dir: Path) -> None:
    settings, store, feeder = embedded
    selects: list[tuple[str, str]] = []
    handle: DashboardHandle = start_dashboard(
        settings, store_factory=lambda s: CountingStore(default_store_factory(s), selects))
    pages = []
    try:
        page, dialogs = open_page(browser, handle.url)
        other, other_dialogs = open_page(browser, handle.url)
        pages += [page, other]
        assert handle.url.startswith("http://127.0.0.1:")

        # Live: with the feeder held still, the page converges to exactly the store's numbers.
        feeder.pause()
        newest_in_store = feeder.next_start_ms - 1000
        wait_for(lambda: newest_x(page) == newest_in_store, 5, "live plot reaches the store's newest window")
        expected = store_clicks(store, newest_in_store)
        shown = data(page, "clicks")
        assert shown["x"] == expected["x"][-len(shown["x"]):]
        assert shown["clicks_per_s"] == expected["clicks_per_s"][-len(shown["x"]):]
        assert len(shown["x"]) == min(len(expected["x"]), CLICKS_SPAN_WINDOWS)
        trending_start = windows.window_start_ms(newest_in_store, windows.TRENDING_WINDOW_MS)
        rows = store.select("trending", {"pipeline": PIPELINE, "window_ms": windows.TRENDING_WINDOW_MS,
                                         "window_start_ms": trending_start})
        if not rows:
            trending_start -= windows.TRENDING_WINDOW_MS
            rows = store.select("trending", {"pipeline": PIPELINE, "window_ms": windows.TRENDING_WINDOW_MS,
                                             "window_start_ms": trending_start})
        wait_for(lambda: data(page, "trending")["label"] == [r["key"] for r in rows], 3, "trending ranks")
        assert data(page, "trending")["value"] == [r["lift"] for r in rows]
        metrics = store.select("pipeline_metrics", {"pipeline": PIPELINE,
                                                    "day": windows.day_of(int(time.time() * 1000))}, limit=1)
        wait_for(lambda: dict(zip(*data(page, "health_now").values(), strict=True))["lag_ms"]
                 == str(metrics[0]["lag_ms"]), 3, "health table shows the newest metrics")
        mix = data(page, "referrers")
        newest_mix = store.select("window_topn", {"pipeline": PIPELINE, "metric": "referrer",
                                                  "window_ms": 10_000,
                                                  "window_start_ms": int(mix["x"][-1])})
        assert newest_mix
        assert {r["key"]: r["clicks"] for r in newest_mix} == {r["key"]: mix[r["key"]][-1]
                                                                for r in newest_mix}
        # Each page polls on its own timer: the second one may be one poll behind for a moment.
        wait_for(lambda: data(other, "clicks") == data(page, "clicks"), 3,
                 "a second page shows the same live numbers")
        page.screenshot(path=str(artifacts_dir / "dashboard-live.png"))

        # ... and moves within 2 s of new windows reaching the store.
        before = newest_x(page)
        feeder.resume()
        wait_for(lambda: newest_x(page) > before, 2, "live plot changes after new windows")

        # Many sessions, one store query per tick: live tables are read only by the poller thread.
        live = [(thread, table) for thread, table in selects if table in LIVE_TABLES]
        assert live and {thread for thread, _ in live} == {POLLER_THREAD}
        ticks = handle.poller.ticks
        assert sum(1 for _, t in live if t == "window_totals") <= 2 * (ticks + 1)

        # Batch: PageRank of the newest run, the chosen run, and the top articles.
        click_tab(page, "Batch")
        newest_run = store.select("pagerank_runs", {"variant": "unweighted"})[0]["run_date"]
        pr = store.select("pagerank_top", {"run_date": newest_run, "variant": "unweighted"})
        wait_for(lambda: data(page, "pagerank")["score"] == [r["score"] for r in pr], 3, "pagerank table")
        assert data(page, "pagerank")["title"] == [r["title"] for r in pr]
        tops = store.select("top_articles", {"kind": windows.METRIC_SOURCE})
        assert data(page, "top_sources")["title"] == [r["title"] for r in tops]
        assert data(page, "top_sources")["clicks"] == [r["clicks"] for r in tops]
        evil_cells = page.get_by_text(EVIL_TITLE, exact=True)
        wait_for(lambda: evil_cells.count() > 0, 3, "the evil title as literal table text")
        assert evil_cells.first.is_visible()
        page.screenshot(path=str(artifacts_dir / "dashboard-batch.png"))
        page.locator("select").first.select_option(label="unweighted · 2015-02-27")
        older = store.select("pagerank_top", {"run_date": "2015-02-27", "variant": "unweighted"})
        wait_for(lambda: data(page, "pagerank")["score"] == [r["score"] for r in older], 5,
                 "pagerank of the chosen date")

        # Explorer: an article's incoming and outgoing clicks, shares and series.
        click_tab(page, "Explorer")
        box = page.locator("input[type=text]").last
        box.fill(ARTICLE)
        box.press("Enter")
        sources = store.select("top_sources", {"destination": ARTICLE})
        wait_for(lambda: data(page, "explorer_sources")["source"] == [r["source"] for r in sources], 5,
                 "explorer incoming sources")
        total = sum(r["clicks"] for r in sources)
        assert data(page, "explorer_sources")["share"] == pytest.approx([r["clicks"] / total
                                                                         for r in sources])
        dests = store.select("top_destinations", {"source": ARTICLE})
        assert data(page, "explorer_destinations")["destination"] == [r["destination"] for r in dests]
        assert data(page, "explorer_shares") == shaping.referrer_shares(sources)
        series = store.select("rollups", {"metric": "destination", "granularity": "hour", "key": ARTICLE})
        assert data(page, "explorer_series")["clicks"] == [r["clicks"] for r in series]
        assert page.get_by_text(EVIL_TITLE, exact=True).count() >= 2
        page.screenshot(path=str(artifacts_dir / "dashboard-explorer.png"))

        assert page.locator("img[src='x']").count() == 0
        assert dialogs == [] and other_dialogs == []

        # The store file goes away: a clear unavailable state, then recovery without a reload.
        click_tab(page, "Live")
        feeder.stop()
        store.close()
        for suffix in ("", "-wal", "-shm"):
            Path(str(settings.embedded_store_file) + suffix).unlink(missing_ok=True)
        wait_for(lambda: "unavailable" in status_text(page), 10, "unavailable state shown")
        assert "does not exist" in status_text(page)
        page.screenshot(path=str(artifacts_dir / "dashboard-unavailable.png"))
        revived = EmbeddedStore(settings.embedded_store_file)
        try:
            Feeder(revived, backfill_s=5).start(run=False)
            wait_for(lambda: status_text(page).startswith("Store OK"), 15, "recovered state shown")
            assert page.evaluate("() => window.__not_reloaded === true")
        finally:
            revived.close()
    finally:
        for p in pages:
            p.close()
        handle.stop()


def test_cassandra_cut_and_restored_through_proxy(
        browser: Any, isolated_cassandra_settings: Settings, artifacts_dir: Path) -> None:
    writer_settings = isolated_cassandra_settings
    store = open_store(writer_settings)
    feeder = Feeder(store, backfill_s=20).start()
    proxy = TcpProxy(("127.0.0.1", writer_settings.cassandra_port)).start()
    settings = writer_settings.replace(cassandra_port=proxy.port, cassandra_contact_points=("127.0.0.1",),
                                       dashboard_port=0, dashboard_pipeline=PIPELINE)
    handle = start_dashboard(settings)
    page = None
    try:
        page, dialogs = open_page(browser, handle.url)
        wait_for(lambda: status_text(page).startswith("Store OK") and newest_x(page) > 0, 20,
                 "live data through the proxy")
        feeder.pause()
        newest_in_store = feeder.next_start_ms - 1000
        wait_for(lambda: newest_x(page) == newest_in_store, 5, "the store's newest window")
        expected = store_clicks(store, newest_in_store)
        assert data(page, "clicks")["clicks_per_s"] == expected["clicks_per_s"]
        feeder.resume()

        proxy.cut()
        wait_for(lambda: "unavailable" in status_text(page), 30, "unavailable state after the cut")
        page.screenshot(path=str(artifacts_dir / "dashboard-cassandra-unavailable.png"))
        cut_at = newest_x(page)
        proxy.restore()
        wait_for(lambda: status_text(page).startswith("Store OK") and newest_x(page) > cut_at, 30,
                 "recovery after the store returns")
        assert page.evaluate("() => window.__not_reloaded === true")
        assert dialogs == []
    finally:
        if page is not None:
            page.close()
        handle.stop()
        proxy.close()
        feeder.stop()
        store.close()
