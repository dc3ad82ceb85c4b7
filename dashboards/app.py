"""The dashboard document of one browser session: Live, Batch and Explorer tabs.

Each session owns its models and a periodic callback (``UPDATE_MS``) that compares the
poller's snapshot version with the one it last showed and pushes only the difference
(``ColumnDataSource.stream`` for new windows, ``patch`` for changed cells); it never
queries the store on a timer. Every article title reaches the browser as data of a
plain-text glyph, table cell, option or ``render_as_text`` Div, never as HTML.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable
from concurrent.futures import Future
from functools import partial
from typing import Any, NamedTuple

from bokeh.document import Document
from bokeh.layouts import column, row
from bokeh.models import (
    AutocompleteInput,
    ColumnDataSource,
    DataTable,
    DateRangeSlider,
    Div,
    FactorRange,
    NumberFormatter,
    Select,
    TableColumn,
    TabPanel,
    Tabs,
)
from bokeh.palettes import Category10
from bokeh.plotting import figure

from clickstream import windows
from clickstream.referrers import REFERRER_CLASSES
from dashboards import shaping
from dashboards.poller import CLICKS_SPAN_WINDOWS, CLICKS_WINDOW_MS, HEALTH_ROWS, MIX_SPAN_WINDOWS, Snapshot
from dashboards.runtime import Runtime

UPDATE_MS = 250
TOP_N = windows.TOP_N
BATCH_TOP_N = 20
STATUS_STYLES = {
    "ok": {"color": "#1b5e20", "background": "#e8f5e9"},
    "empty": {"color": "#6d4c00", "background": "#fff8e1"},
    "connecting": {"color": "#333", "background": "#eeeeee"},
    "unavailable": {"color": "#b71c1c", "background": "#ffebee"},
}


def _iso(ms: int | None) -> str:
    if ms is None:
        return "-"
    return dt.datetime.fromtimestamp(ms / 1000, tz=dt.UTC).strftime("%Y-%m-%d %H:%M:%S UTC")


def apply_update(source: ColumnDataSource, update: shaping.Update, rollover: int | None = None) -> None:
    """Apply a planned update to a source: replace, or patch and stream."""
    if update.reset is not None:
        source.data = update.reset
        return
    if update.patches:
        source.patch(update.patches)
    if update.stream:
        source.stream(update.stream, rollover=rollover)


def _ranked_bar(name: str, title: str, top_n: int, value_label: str) -> tuple[Any, ColumnDataSource]:
    source = ColumnDataSource(shaping.ranked_columns([], top_n), name=name)
    fig = figure(title=title, height=330, sizing_mode="stretch_width", toolbar_location=None,
                 y_range=FactorRange(factors=[str(i) for i in range(top_n, 0, -1)]),
                 x_axis_label=value_label, y_axis_label="rank")
    fig.hbar(y="slot", right="value", height=0.8, source=source, color="#4c78a8", alpha=0.45)
    fig.text(x=0, y="slot", text="label", source=source, text_baseline="middle",
             text_font_size="11px", x_offset=4)
    return fig, source


def _table(name: str, columns: list[tuple[str, str]],
           height: int = 280) -> tuple[DataTable, ColumnDataSource]:
    source = ColumnDataSource({c: [] for c, _ in columns}, name=name)
    cols = []
    for field, title in columns:
        fmt = NumberFormatter(format="0.0%") if field == "share" else None
        cols.append(TableColumn(field=field, title=title, formatter=fmt) if fmt
                    else TableColumn(field=field, title=title))
    table = DataTable(source=source, columns=cols, height=height, sizing_mode="stretch_width",
                      index_position=None, reorderable=False, name=name + "_table")
    return table, source


class ExplorerTables(NamedTuple):
    incoming: DataTable
    outgoing: DataTable
    shares: DataTable
    link_types: DataTable


class DashboardSession:
    """The models and callbacks of one browser session."""

    def __init__(self, doc: Document, runtime: Runtime) -> None:
        self.doc = doc
        self.poller = runtime.poller
        self.shown_version = -1
        self.pagerank_choice = ""  # "" follows the newest run
        self.article = ""

        self.status = Div(text="Connecting to the store…", render_as_text=True, name="status",
                          sizing_mode="stretch_width",
                          styles={"padding": "6px 10px", "border-radius": "4px", "font-size": "14px"})
        tabs = Tabs(tabs=[TabPanel(child=self._build_live(), title="Live"),
                          TabPanel(child=self._build_batch(), title="Batch"),
                          TabPanel(child=self._build_explorer(), title="Explorer")], name="tabs",
                    sizing_mode="stretch_width")
        doc.add_root(column(self.status, tabs, sizing_mode="stretch_width"))
        doc.title = "Clickstream"
        self.update()
        doc.add_periodic_callback(self.update, UPDATE_MS)

    # -- the pages' models -------------------------------------------------------------------
    def _build_live(self) -> Any:
        """Clicks per second, trending, the referrer mix and the pipeline's health."""
        self.clicks_source = ColumnDataSource(shaping.clicks_series([], CLICKS_WINDOW_MS), name="clicks")
        clicks_fig = figure(title="Clicks per second (1 s windows, event time)", height=280,
                            x_axis_type="datetime", sizing_mode="stretch_width", toolbar_location=None,
                            name="clicks_plot")
        clicks_fig.line(x="x", y="clicks_per_s", source=self.clicks_source, line_width=2)
        self.trending_fig, self.trending_source = _ranked_bar("trending", "Trending now (lift)", TOP_N,
                                                              "lift")
        self.trending_window = Div(text="", render_as_text=True, name="trending_window")
        self.referrer_source = ColumnDataSource(shaping.referrer_columns({}), name="referrers")
        mix_fig = figure(title="Referrer mix (clicks per 10 s window)", height=280, x_axis_type="datetime",
                         sizing_mode="stretch_width", toolbar_location=None)
        mix_fig.varea_stack(stackers=list(REFERRER_CLASSES), x="x", source=self.referrer_source,
                            color=Category10[len(REFERRER_CLASSES)], legend_label=list(REFERRER_CLASSES))
        mix_fig.legend.location = "top_left"
        mix_fig.legend.label_text_font_size = "9px"
        self.health_source = ColumnDataSource(shaping.health_columns([]), name="health")
        health_fig = figure(title="Pipeline lag and event→store latency (ms)", height=280,
                            x_axis_type="datetime", sizing_mode="stretch_width", toolbar_location=None)
        health_fig.line(x="x", y="lag_ms", source=self.health_source, color="#e45756", legend_label="lag")
        health_fig.line(x="x", y="latency_ms", source=self.health_source, color="#54a24b",
                        legend_label="latency")
        health_fig.legend.location = "top_left"
        health_table, self.health_table_source = _table("health_now", [("metric", "metric"),
                                                                       ("value", "now")], height=230)
        self.health_table_source.data = shaping.health_table(None)
        return column(
            row(clicks_fig, column(self.trending_fig, self.trending_window, sizing_mode="stretch_width"),
                sizing_mode="stretch_width"),
            row(mix_fig, column(health_fig, health_table, sizing_mode="stretch_width"),
                sizing_mode="stretch_width"),
            sizing_mode="stretch_width")

    def _build_batch(self) -> Any:
        """The PageRank runs and the all-time top sources and destinations."""
        self.pagerank_select = Select(title="PageRank run", options=[], value="", name="pagerank_run")
        self.pagerank_select.on_change("value", self._on_pagerank_choice)
        self.pagerank_fig, self.pagerank_bars = _ranked_bar("pagerank_bars", "PageRank top 20",
                                                            BATCH_TOP_N, "score")
        pr_table, self.pagerank_source = _table("pagerank", [("rank", "rank"), ("title", "article"),
                                                             ("score", "score")])
        src_table, self.top_sources_source = _table("top_sources", [("rank", "rank"), ("title", "source"),
                                                                    ("clicks", "clicks")])
        dst_table, self.top_destinations_source = _table(
            "top_destinations", [("rank", "rank"), ("title", "destination"), ("clicks", "clicks")])
        return column(
            self.pagerank_select,
            row(self.pagerank_fig, pr_table, sizing_mode="stretch_width"),
            row(column(Div(text="Top sources (all time)"), src_table, sizing_mode="stretch_width"),
                column(Div(text="Top destinations (all time)"), dst_table, sizing_mode="stretch_width"),
                sizing_mode="stretch_width"),
            sizing_mode="stretch_width")

    def _build_explorer(self) -> Any:
        """One article: its sources and destinations, their shares, and its clicks over time."""
        self.article_input = AutocompleteInput(title="Article (type or pick)", completions=[],
                                               name="article_input", min_characters=1, case_sensitive=False,
                                               search_strategy="includes", restrict=False)
        self.article_input.on_change("value", self._on_article)
        self.granularity = Select(title="Granularity", options=["hour", "day"], value="hour",
                                  name="granularity")
        self.granularity.on_change("value", lambda _a, _o, _n: self._lookup_article(self.article))
        self.explorer_message = Div(text="Pick an article to see where its readers come from and go.",
                                    render_as_text=True, name="explorer_message")
        tables = self._explorer_tables()
        self.explorer_series = ColumnDataSource({"x": [], "clicks": []}, name="explorer_series")
        self.series_fig = figure(title="Clicks into the article", height=250, x_axis_type="datetime",
                                 sizing_mode="stretch_width", toolbar_location=None)
        self.series_fig.step(x="x", y="clicks", source=self.explorer_series, mode="after")
        now_ms = 0.0
        self.range_slider = DateRangeSlider(title="Time range", start=now_ms, end=now_ms + 1,
                                            value=(now_ms, now_ms + 1), name="explorer_range",
                                            disabled=True, sizing_mode="stretch_width")
        self.range_slider.on_change("value", self._on_range)
        self.range_total = Div(text="", render_as_text=True, name="explorer_total")
        return column(
            row(self.article_input, self.granularity),
            self.explorer_message,
            row(column(Div(text="Incoming (top sources)"), tables.incoming, sizing_mode="stretch_width"),
                column(Div(text="Outgoing (top destinations)"), tables.outgoing,
                       sizing_mode="stretch_width"),
                sizing_mode="stretch_width"),
            row(tables.shares, tables.link_types, sizing_mode="stretch_width"),
            self.series_fig, self.range_slider, self.range_total,
            sizing_mode="stretch_width")

    def _explorer_tables(self) -> ExplorerTables:
        in_table, self.explorer_sources = _table(
            "explorer_sources", [("rank", "rank"), ("source", "source"), ("clicks", "clicks"),
                                 ("share", "share")])
        out_table, self.explorer_destinations = _table(
            "explorer_destinations", [("rank", "rank"), ("destination", "destination"),
                                      ("clicks", "clicks"), ("share", "share")])
        share_table, self.explorer_shares = _table(
            "explorer_shares", [("link_type", "incoming by referrer class"), ("clicks", "clicks"),
                                ("share", "share")], height=200)
        lt_table, self.explorer_link_types = _table(
            "explorer_link_types", [("link_type", "link type"), ("clicks", "clicks"), ("share", "share")],
            height=200)
        return ExplorerTables(in_table, out_table, share_table, lt_table)

    # -- periodic update from the shared snapshot ---------------------------------------
    def update(self) -> None:
        snap = self.poller.snapshot
        if snap.version == self.shown_version:
            return
        self.shown_version = snap.version
        self._show_status(snap)
        if snap.status not in ("ok", "empty"):
            return  # keep the last numbers on screen under the unavailable banner
        self._show_live(snap)
        self._show_batch(snap)

    def _show_status(self, snap: Snapshot) -> None:
        if snap.status == "ok":
            parts = [f"Store OK · event time {_iso(snap.watermark_ms)}"]
            if snap.live_empty:
                parts.append("no live windows yet")
            if snap.batch_empty:
                parts.append("no batch results yet")
            text = " · ".join(parts)
        else:
            text = snap.message
        if self.status.text != text:
            self.status.text = text
        styles = {**self.status.styles, **STATUS_STYLES.get(snap.status, {})}
        if self.status.styles != styles:
            self.status.styles = styles

    def _show_live(self, snap: Snapshot) -> None:
        apply_update(self.clicks_source,
                     shaping.plan_update(self.clicks_source.data,
                                         shaping.clicks_series(snap.clicks, CLICKS_WINDOW_MS)),
                     rollover=CLICKS_SPAN_WINDOWS)
        apply_update(self.trending_source,
                     shaping.plan_fixed(self.trending_source.data,
                                        shaping.ranked_columns(snap.trending, TOP_N, value="lift")))
        window_text = (f"Window starting {_iso(snap.trending_start_ms)}" if snap.trending_start_ms
                       else "No trending window yet")
        if self.trending_window.text != window_text:
            self.trending_window.text = window_text
        apply_update(self.referrer_source,
                     shaping.plan_update(self.referrer_source.data, shaping.referrer_columns(snap.referrers)),
                     rollover=MIX_SPAN_WINDOWS)
        apply_update(self.health_source,
                     shaping.plan_update(self.health_source.data, shaping.health_columns(snap.health)),
                     rollover=HEALTH_ROWS)
        apply_update(self.health_table_source,
                     shaping.plan_fixed(self.health_table_source.data,
                                        shaping.health_table(snap.health[0] if snap.health else None)))

    def _show_batch(self, snap: Snapshot) -> None:
        options = [(f"{variant}|{r['run_date']}", f"{variant} · {r['run_date']}")
                   for variant, runs in snap.pagerank_runs.items() for r in runs]
        if self.pagerank_select.options != options:
            self.pagerank_select.options = options
        newest = ""
        for variant, runs in snap.pagerank_runs.items():
            if runs:
                newest = f"{variant}|{runs[0]['run_date']}"
                break
        chosen = self.pagerank_choice or newest
        if chosen and self.pagerank_select.value != chosen:
            self.pagerank_select.value = chosen
        if chosen:
            variant, run_date = chosen.split("|", 1)
            rows = snap.pagerank_top.get((variant, run_date))
            if rows is not None:
                self._show_pagerank(rows)
            else:
                self._when_done(self.poller.lookup("pagerank_top", {"run_date": run_date, "variant": variant},
                                                   limit=100), self._show_pagerank)
        for kind, source in ((windows.METRIC_SOURCE, self.top_sources_source),
                             (windows.METRIC_DESTINATION, self.top_destinations_source)):
            cols = shaping.table_columns(snap.top_articles.get(kind, []), ("rank", "title", "clicks"))
            apply_update(source, shaping.plan_fixed(source.data, cols))
        titles = sorted({r["title"] for rows in snap.top_articles.values() for r in rows})
        if self.article_input.completions != titles:
            self.article_input.completions = titles

    def _show_pagerank(self, rows: list[dict[str, Any]]) -> None:
        cols = shaping.table_columns(rows, ("rank", "title", "score"))
        apply_update(self.pagerank_source, shaping.plan_fixed(self.pagerank_source.data, cols))
        bars = shaping.ranked_columns(rows, BATCH_TOP_N, value="score", label="title")
        apply_update(self.pagerank_bars, shaping.plan_fixed(self.pagerank_bars.data, bars))

    # -- user-driven look-ups ------------------------------------------------------------
    def _when_done(self, future: Future[Any], apply: Callable[[Any], None],
                   on_error: Callable[[BaseException], None] | None = None) -> None:
        def done(f: Future[Any]) -> None:
            exc = f.exception()
            if exc is not None:
                if on_error is not None:
                    self.doc.add_next_tick_callback(partial(on_error, exc))
                return
            self.doc.add_next_tick_callback(partial(apply, f.result()))
        future.add_done_callback(done)

    def _on_pagerank_choice(self, _attr: str, _old: str, new: str) -> None:
        newest = self.pagerank_select.options[0][0] if self.pagerank_select.options else ""
        self.pagerank_choice = "" if new == newest else new
        self.shown_version = -1  # re-apply the batch view on the next tick

    def _on_article(self, _attr: str, _old: str, new: str) -> None:
        self._lookup_article(new.strip())

    def _lookup_article(self, article: str) -> None:
        self.article = article
        if not article:
            return
        self.explorer_message.text = f"Loading {article}…"
        results: dict[str, list[dict[str, Any]]] = {}
        wanted = {
            "sources": self.poller.lookup("top_sources", {"destination": article}, limit=100),
            "destinations": self.poller.lookup("top_destinations", {"source": article}, limit=100),
            "link_types": self.poller.lookup("link_type_share", {"scope": article}),
            "series": self.poller.lookup("rollups", {"metric": windows.METRIC_DESTINATION,
                                                     "granularity": self.granularity.value,
                                                     "key": article}),
        }

        def got(name: str, rows: list[dict[str, Any]]) -> None:
            if self.article != article:
                return  # a newer pick superseded this one
            results[name] = rows
            if len(results) == len(wanted):
                self._show_article(article, results)

        def failed(exc: BaseException) -> None:
            if self.article == article:
                self.explorer_message.text = f"Look-up of {article} failed: {exc}"

        for name, future in wanted.items():
            self._when_done(future, partial(got, name), failed)

    def _show_article(self, article: str, r: dict[str, list[dict[str, Any]]]) -> None:
        def with_share(rows: list[dict[str, Any]], names: tuple[str, ...]) -> dict[str, list[Any]]:
            cols = shaping.table_columns(rows, names)
            total = sum(cols["clicks"]) or 1
            cols["share"] = [c / total for c in cols["clicks"]]
            return cols

        self.explorer_sources.data = with_share(r["sources"], ("rank", "source", "clicks"))
        self.explorer_destinations.data = with_share(r["destinations"], ("rank", "destination", "clicks"))
        self.explorer_shares.data = shaping.referrer_shares(r["sources"])
        self.explorer_link_types.data = shaping.table_columns(r["link_types"],
                                                              ("link_type", "clicks", "share"))
        series = {"x": [int(x["bucket_start_ms"]) for x in r["series"]],
                  "clicks": [int(x["clicks"]) for x in r["series"]]}
        self.explorer_series.data = series
        if series["x"]:
            step_ms = windows.HOUR_MS if self.granularity.value == "hour" else windows.DAY_MS
            start, end = series["x"][0], series["x"][-1] + step_ms
            self.range_slider.update(start=start, end=end, value=(start, end), disabled=False)
            self._on_range("value", None, (start, end))
        else:
            self.range_slider.disabled = True
            self.range_total.text = ""
        found = sum(len(v) for v in r.values())
        self.explorer_message.text = (f"Article: {article}" if found
                                      else f"No batch results for {article} (yet).")

    def _on_range(self, _attr: str, _old: Any, new: tuple[float, float]) -> None:
        lo, hi = new
        xs, ys = self.explorer_series.data["x"], self.explorer_series.data["clicks"]
        total = sum(c for x, c in zip(xs, ys, strict=True) if lo <= x < hi)
        self.series_fig.x_range.update(start=lo, end=hi)
        self.range_total.text = f"{total} clicks into {self.article} from {_iso(int(lo))} to {_iso(int(hi))}"


def build_document(doc: Document, runtime: Runtime) -> DashboardSession:
    """Fill a session's document (called by the app's main.py)."""
    return DashboardSession(doc, runtime)
