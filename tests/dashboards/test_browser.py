"""The dashboard in headless Chromium against a store being written by a feeder thread.

Reads the Bokeh document's data sources in the page and compares them with the store;
saves one screenshot per page into test-artifacts/.
"""

from __future__ import annotations

import re
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
from dashboards.app import FLOW_TOP_N, OTHER_PARTITIONS_COLOR, PARTITION_COLORS
from dashboards.poller import CLICKS_SPAN_WINDOWS, HEALTH_ROWS, default_store_factory
from dashboards.server import DashboardHandle, start_dashboard
from tests.dashboards.feeder import (
    ARTICLE,
    DRY_RUN,
    EVENT_START_MS,
    EVIL_RUN,
    EVIL_TITLE,
    ONE_HOUR_ARTICLE,
    OTHER_PIPELINE,
    PARTITIONS,
    PIPELINE,
    RECONCILE_RUN,
    Feeder,
    lag_of,
    reconcile_runs,
)
from tests.dashboards.tcp_proxy import TcpProxy

pytestmark = [pytest.mark.browser, pytest.mark.integration]

LIVE_TABLES = {"window_totals", "trending", "window_topn", "pipeline_metrics", "partition_lag",
               "reconcile_runs"}
POLLER_THREAD = "clickstream-dashboard-poller"

DATA_JS = """(name) => {
  const m = Bokeh.documents[0].get_model_by_name(name);
  const d = m.data instanceof Map ? Object.fromEntries(m.data) : m.data;
  const out = {};
  const plain = (v) => (v !== null && typeof v === "object" && "length" in v) ? Array.from(v) : v;
  for (const k of Object.keys(d)) out[k] = Array.from(d[k], plain);
  return out;
}"""
TEXT_JS = "(name) => Bokeh.documents[0].get_model_by_name(name).text"
RANGE_JS = ("(name) => { const r = Bokeh.documents[0].get_model_by_name(name).x_range; "
            "return [r.start, r.end]; }")
SCREEN_JS = """([name, x, y]) => {
  const v = Bokeh.index.find_one(Bokeh.documents[0].get_model_by_name(name));
  v.el.scrollIntoView({block: "center"});
  const box = v.canvas_view.el.getBoundingClientRect();
  return [box.left + v.frame.x_scale.compute(x), box.top + v.frame.y_scale.compute(y)];
}"""
SELECT_JS = """(name) => { const m = Bokeh.documents[0].get_model_by_name(name);
  return [m.value, m.options.map(o => Array.isArray(o) ? o[0] : o)]; }"""
INPUT_JS = "(name) => Bokeh.documents[0].get_model_by_name(name).value"
TOOLS_JS = """(name) => Bokeh.documents[0].get_model_by_name(name).toolbar.tools
  .map(t => t.type ?? t.constructor.__name__)"""


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


def store_clicks_of(store: Store, pipeline: str, newest_ms: int) -> dict[str, list[Any]]:
    rows = store.select("window_totals", {"pipeline": pipeline, "window_ms": 1000,
                                          "day": windows.day_of(newest_ms)}, limit=CLICKS_SPAN_WINDOWS)
    return shaping.clicks_series(rows, 1000)


def newest_x(page: Any) -> int:
    xs = data(page, "clicks")["x"]
    return int(xs[-1]) if xs else 0


def click_tab(page: Any, title: str) -> None:
    page.locator(".bk-tab", has_text=title).first.click()


def select_of(page: Any, option_text: str) -> Any:
    """The one <select> holding an option with this text."""
    return page.locator("select").filter(has=page.locator("option", has_text=option_text))


def hover_text(page: Any, plot: str, x: float, y: float, expect: str) -> str:
    """Move the mouse over data point (x, y) of a plot; the tooltip's text once it shows ``expect``."""
    tooltip = page.locator(".bk-tooltip-content")

    def shown() -> bool:
        px, py = page.evaluate(SCREEN_JS, [plot, x, y])
        page.mouse.move(px, py)
        page.mouse.move(px + 1, py)
        return any(expect in t for t in tooltip.all_inner_texts())

    wait_for(shown, 20, f"hover tooltip on {plot} showing {expect!r}")
    return "\n".join(tooltip.all_inner_texts())


def assert_toolbar(page: Any, plot: str) -> None:
    tools = " ".join(page.evaluate(TOOLS_JS, plot))
    for tool in ("HoverTool", "SaveTool", "BoxZoomTool"):
        assert tool in tools, f"{plot} has no {tool}: {tools}"


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
        wait_for(lambda: data(page, "health_now") == shaping.health_table(metrics[0]), 3,
                 "health table shows the newest metrics, readable")
        shown_now = dict(zip(*data(page, "health_now").values(), strict=True))
        assert shown_now["watermark (event time)"] == shaping.format_utc(metrics[0]["watermark_ms"])
        assert shown_now["watermark (event time)"].startswith("2015-02-01 12:")
        for plot in ("clicks_plot", "trending_plot", "referrers_plot"):
            assert_toolbar(page, plot)
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
        feeder.pause()  # the batch and explorer views are checked (and drawn) against a still store

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
        assert_toolbar(page, "pagerank_bars_plot")
        select_of(page, "unweighted · 2015-02-27").select_option(label="unweighted · 2015-02-27")
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

        # ... its flows as a picture: source bars, the article, destination bars, sized by clicks.
        nodes, _ = shaping.flow_chart(ARTICLE, sources, dests, FLOW_TOP_N)
        flow = data(page, "flow_nodes")
        assert flow["title"] == [r["source"] for r in sources] + [r["destination"] for r in dests] + [ARTICLE]
        assert flow["clicks"] == [r["clicks"] for r in sources] + [r["clicks"] for r in dests] + [total]
        assert flow["top"] == pytest.approx(nodes["top"]) and flow["bottom"] == pytest.approx(nodes["bottom"])
        assert len(data(page, "flow_ribbons")["clicks"]) == len(sources) + len(dests)
        evil = flow["title"].index(EVIL_TITLE)
        tip = hover_text(page, "flow_plot", (flow["left"][evil] + flow["right"][evil]) / 2,
                         (flow["top"][evil] + flow["bottom"][evil]) / 2, EVIL_TITLE)
        assert f"{flow['clicks'][evil]:,}" in tip
        for plot in ("flow_plot", "explorer_series_plot"):
            assert_toolbar(page, plot)
        page.screenshot(path=str(artifacts_dir / "dashboard-explorer.png"), full_page=True)

        # ... and an article with one hour of rollups: its bar fills an axis of exactly that hour.
        box.fill(ONE_HOUR_ARTICLE)
        box.press("Enter")
        wait_for(lambda: data(page, "explorer_series")["x"] == [EVENT_START_MS], 5, "the one-hour series")
        assert data(page, "explorer_series")["clicks"] == [77]
        wait_for(lambda: page.evaluate(RANGE_JS, "explorer_series_plot")
                 == [EVENT_START_MS, EVENT_START_MS + windows.HOUR_MS], 5, "x axis spans the hour")
        assert page.evaluate(TEXT_JS, "explorer_total") == (
            f"77 clicks into {ONE_HOUR_ARTICLE} from 2015-02-01 12:00:00 UTC to 2015-02-01 13:00:00 UTC")
        tip = hover_text(page, "explorer_series_plot", EVENT_START_MS + windows.HOUR_MS / 2, 30, "77")
        assert "2015-02-01 12:00" in tip and "2015-02-01 13:00" in tip
        page.screenshot(path=str(artifacts_dir / "dashboard-explorer-one-hour.png"))

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


def store_health(store: Store, pipeline: str) -> list[dict[str, Any]]:
    today = windows.day_of(int(time.time() * 1000))
    return store.select("pipeline_metrics", {"pipeline": pipeline, "day": today}, limit=HEALTH_ROWS)


def store_partition_lag(store: Store, pipeline: str, health: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The partition_lag rows of the health rows' cycles."""
    today = windows.day_of(int(time.time() * 1000))
    return store.select("partition_lag", {"pipeline": pipeline, "day": today},
                        start=min(r["ts_ms"] for r in health))


def test_pipeline_view_reconcile_dask_link_and_picker(browser: Any, tmp_path: Path,
                                                      artifacts_dir: Path) -> None:
    path = tmp_path / "store.sqlite"
    dask_link = "http://127.0.0.1:8787/status"
    settings = Settings(store="embedded", embedded_store_path=str(path), dashboard_port=0,
                        dashboard_pipeline=PIPELINE, dashboard_dask_link=dask_link,
                        dashboard_reconcile_run=RECONCILE_RUN)
    store = EmbeddedStore(path)
    other = Feeder(store, backfill_s=30, pipeline=OTHER_PIPELINE).start(run=False)  # wrote once, earlier
    feeder = Feeder(store).start()
    selects: list[tuple[str, str]] = []
    handle = start_dashboard(settings,
                             store_factory=lambda s: CountingStore(default_store_factory(s), selects))
    pages: list[Any] = []
    try:
        page, dialogs = open_page(browser, handle.url)
        watcher, _ = open_page(browser, handle.url)  # stays on the default pipeline throughout
        pages += [page, watcher]
        click_tab(page, "Pipeline")

        # The health series and the numbers now are the store's pipeline_metrics of the default pipeline.
        feeder.pause()
        rows = store_health(store, PIPELINE)
        wait_for(lambda: data(page, "health") == shaping.health_columns(rows), 5, "health series = store")
        delay_s = (rows[0]["ts_ms"] - rows[0]["watermark_ms"]) / 1000
        assert data(page, "health")["watermark_delay_s"][-1] == delay_s
        wait_for(lambda: data(page, "health_now") == shaping.health_table(rows[0]), 3, "health now = store")
        for plot in ("rate_plot", "lag_plot", "watermark_plot", "late_plot"):
            assert_toolbar(page, plot)
        shown = data(page, "health")
        i = len(shown["x"]) // 2
        tip = hover_text(page, "watermark_plot", shown["x"][i], shown["watermark_delay_s"][i],
                         shaping.format_utc(shown["watermark_ms"][i])[:19])
        assert f"{shown['watermark_delay_s'][i]:,.1f} s" in tip

        # Lag per partition: one series per partition holding the stored values (the feeder's
        # lag_of of the window each metrics row closed), the 8 most lagging named in the legend.
        lag_rows = store_partition_lag(store, PIPELINE, rows)
        wait_for(lambda: data(page, "partition_lag") == shaping.partition_lag_lines(
            lag_rows, PARTITION_COLORS, OTHER_PARTITIONS_COLOR), 5, "partition lag series = store")
        window_of = {r["ts_ms"]: r["watermark_ms"] - 1000 for r in rows}
        series = data(page, "partition_lag")
        assert sorted(series["partition"]) == list(range(PARTITIONS))
        for p, xs, ys in zip(series["partition"], series["xs"], series["ys"], strict=True):
            assert xs == sorted(window_of)
            assert ys == [lag_of(window_of[x], p) for x in xs]
        newest_ts = max(window_of)
        lag_now = sorted(((p, lag_of(window_of[newest_ts], p)) for p in range(PARTITIONS)),
                         key=lambda pl: (-pl[1], pl[0]))
        assert sorted(series["lag_now"], reverse=True) == [lag for _, lag in lag_now]
        assert series["label"][:8] == [f"partition {p}" for p in sorted(p for p, _ in lag_now[:8])]
        assert set(series["label"][8:]) == {f"{PARTITIONS - 8} other partitions"}
        assert len(data(page, "partition_lag_points")["x"]) == PARTITIONS * len(window_of)
        # ... and the records not read now, per partition, in the tab's table.
        wait_for(lambda: data(page, "pipeline_now") == shaping.pipeline_now_table(rows[0], lag_now), 3,
                 "pipeline now table with the lag per partition")
        now_cells = dict(zip(*data(page, "pipeline_now").values(), strict=True))
        assert now_cells["records not read (all partitions)"] == f"{sum(lag for _, lag in lag_now):,}"
        top_p, top_lag = lag_now[0]
        assert now_cells[f"records not read, partition {top_p}"] == f"{top_lag:,}"
        assert_toolbar(page, "partition_lag_plot")
        when = shaping.format_utc(newest_ts)[:19]
        tip = hover_text(page, "partition_lag_plot", newest_ts, top_lag, when)
        assert re.search(rf"partition:\s*{top_p}\s+time \(UTC\):\s*{when}\s+records not read:\s*{top_lag:,}",
                         tip), tip
        page.mouse.move(0, 0)

        # The reconcile runs listed newest first; the settings' run chosen, its differences shown.
        runs = {r["run_id"]: r for r in reconcile_runs()}
        options = shaping.reconcile_run_options(reconcile_runs())
        assert [v for v, _ in options] == ["", DRY_RUN, EVIL_RUN, RECONCILE_RUN]
        listed = [RECONCILE_RUN, [v for v, _ in options]]
        wait_for(lambda: page.evaluate(SELECT_JS, "reconcile_runs") == listed, 5,
                 "reconcile runs listed, the settings' run chosen")
        diffs = store.select("reconcile_diffs", {"run_id": RECONCILE_RUN})
        wait_for(lambda: data(page, "reconcile") == shaping.reconcile_columns(diffs), 5, "reconcile table")
        wait_for(lambda: page.evaluate(TEXT_JS, "reconcile_summary") == shaping.reconcile_summary(
            RECONCILE_RUN, shaping.reconcile_columns(diffs), 1000, runs[RECONCILE_RUN]), 3,
                 "reconcile summary")
        wait_for(lambda: page.get_by_text(EVIL_TITLE, exact=True).count() > 0, 3, "the evil key as text")
        link = page.locator("a", has_text="Dask dashboard")
        assert link.get_attribute("href") == dask_link
        page.screenshot(path=str(artifacts_dir / "dashboard-pipeline.png"), full_page=True)

        # Choosing another listed run (an id with markup, shown as text) loads its differences.
        evil_label = dict(options)[EVIL_RUN]
        assert page.locator("option", has_text=evil_label).count() == 1
        select_of(page, evil_label).select_option(label=evil_label)
        evil_diffs = store.select("reconcile_diffs", {"run_id": EVIL_RUN})
        assert len(evil_diffs) == 1
        wait_for(lambda: data(page, "reconcile") == shaping.reconcile_columns(evil_diffs), 5,
                 "differences of the chosen run")
        assert page.evaluate(INPUT_JS, "reconcile_run") == EVIL_RUN
        wait_for(lambda: page.evaluate(TEXT_JS, "reconcile_summary") == shaping.reconcile_summary(
            EVIL_RUN, shaping.reconcile_columns(evil_diffs), 1000, runs[EVIL_RUN]), 3, "its summary")
        assert data(page, "reconcile")["difference"] == [2]
        # ... a dry run recorded no differences: its counts are said instead.
        dry_label = dict(options)[DRY_RUN]
        select_of(page, dry_label).select_option(label=dry_label)
        wait_for(lambda: page.evaluate(TEXT_JS, "reconcile_summary").startswith(
            f"Reconcile run {DRY_RUN} was a dry run: 5 differences in 4 of 500 windows"), 5, "the dry run")
        assert data(page, "reconcile")["key"] == []
        # ... and a listed run id entered in the input (set in the page, as typing does) moves the list.
        page.evaluate("(v) => { Bokeh.documents[0].get_model_by_name('reconcile_run').value = v; }",
                      RECONCILE_RUN)
        wait_for(lambda: page.evaluate(SELECT_JS, "reconcile_runs")[0] == RECONCILE_RUN, 5,
                 "the list follows the typed run id")
        wait_for(lambda: data(page, "reconcile") == shaping.reconcile_columns(diffs), 5,
                 "reconcile table again")

        # The picker lists the registry, newest first, and starts on the settings' pipeline.
        registry = sorted(store.select("pipeline_registry", {"scope": "all"}), key=lambda r: -r["updated_ms"])
        assert [r["pipeline"] for r in registry] == [PIPELINE, OTHER_PIPELINE]
        picker = "() => { const m = Bokeh.documents[0].get_model_by_name('pipeline_picker');" \
                 " return [m.value, m.options.map(o => Array.isArray(o) ? o[0] : o)]; }"
        wait_for(lambda: page.evaluate(picker) == [PIPELINE, [PIPELINE, OTHER_PIPELINE]], 5, "picker options")

        # Switching: the live views read the other pipeline; the other page stays where it was.
        other_label = dict(shaping.pipeline_options(registry, PIPELINE))[OTHER_PIPELINE]
        select_of(page, other_label).select_option(label=other_label)
        other_clicks = store_clicks_of(store, OTHER_PIPELINE, other.next_start_ms - 1000)
        wait_for(lambda: data(page, "clicks") == other_clicks, 5, "clicks of the picked pipeline")
        other_rows = store_health(store, OTHER_PIPELINE)
        other_health = shaping.health_columns(other_rows)
        wait_for(lambda: data(page, "health") == other_health, 5, "health of the picked pipeline")
        other_lag = shaping.partition_lag_lines(store_partition_lag(store, OTHER_PIPELINE, other_rows),
                                                PARTITION_COLORS, OTHER_PARTITIONS_COLOR)
        wait_for(lambda: data(page, "partition_lag") == other_lag, 5, "partition lag of the picked pipeline")
        wait_for(lambda: page.evaluate(SELECT_JS, "reconcile_runs")[1] == [""], 5,
                 "the picked pipeline has no reconcile runs")
        assert status_text(page).startswith(f"Store OK · pipeline {OTHER_PIPELINE}")
        mine = store_clicks_of(store, PIPELINE, feeder.next_start_ms - 1000)
        wait_for(lambda: data(watcher, "clicks") == mine, 5, "the other page keeps the default pipeline")
        assert data(page, "clicks")["clicks_per_s"] != data(watcher, "clicks")["clicks_per_s"]
        click_tab(page, "Live")
        page.screenshot(path=str(artifacts_dir / "dashboard-live-picked.png"))

        # Two pipelines shown: two query sets per tick, all on the poller's thread.
        ticks_before = handle.poller.ticks
        feeder.resume()
        time.sleep(2)
        assert handle.poller.ticks > ticks_before
        live = [(thread, table) for thread, table in selects if table in LIVE_TABLES]
        assert {thread for thread, _ in live} == {POLLER_THREAD}
        assert sum(1 for _, t in live if t == "window_totals") <= 2 * 2 * (handle.poller.ticks + 1)
        assert page.locator("img[src='x']").count() == 0 and dialogs == []
    finally:
        for p in pages:
            p.close()
        handle.stop()
        feeder.stop()
        store.close()


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
