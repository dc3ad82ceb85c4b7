"""The dashboard document of one browser session: Live, Pipeline, Batch and Explorer tabs.

Each session owns its models and a periodic callback (``UPDATE_MS``) that compares the
poller's snapshot version with the one it last showed and pushes only the difference
(``ColumnDataSource.stream`` for new windows, ``patch`` for changed cells); it never
queries the store on a timer. The pipeline picker chooses which pipeline's live tables
the session shows (the poller reads each pipeline shown once per tick). Every plot has
a toolbar (hover values, zoom, pan, reset, save); times are shown in UTC. Every article
title reaches the browser as data of a plain-text glyph, table cell, tooltip field,
option or ``render_as_text`` Div, never as HTML.
"""

from __future__ import annotations

import html
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
    DatetimeRangeSlider,
    Div,
    FactorRange,
    HoverTool,
    Legend,
    NumberFormatter,
    Range1d,
    Select,
    TableColumn,
    TabPanel,
    Tabs,
    TextInput,
)
from bokeh.models.formatters import CONTEXTUAL_DATETIME_FORMATTER
from bokeh.palettes import Category10
from bokeh.plotting import figure

from clickstream import windows
from clickstream.referrers import REFERRER_CLASSES
from dashboards import shaping
from dashboards.poller import (
    CLICKS_SPAN_WINDOWS,
    CLICKS_WINDOW_MS,
    HEALTH_ROWS,
    MIX_SPAN_WINDOWS,
    LiveView,
    Snapshot,
)
from dashboards.runtime import Runtime

UPDATE_MS = 250
TOP_N = windows.TOP_N
BATCH_TOP_N = 20
FLOW_TOP_N = 10
RECONCILE_LIMIT = 1000
PIPELINE_TAB = 1  # the index of the Pipeline tab
# the most lagging partitions, one legend entry each (Category10 without its grey)
PARTITION_COLORS = tuple(c for c in Category10[10] if c != "#7f7f7f")[:8]
OTHER_PARTITIONS_COLOR = "#b0b0b0"  # every other partition, one shared legend entry
TOOLS = "pan,xwheel_zoom,box_zoom,reset,save"
TIME_TIP = ("time (UTC)", "@x{%F %T}")
STATUS_STYLES = {
    "ok": {"color": "#1b5e20", "background": "#e8f5e9"},
    "empty": {"color": "#6d4c00", "background": "#fff8e1"},
    "connecting": {"color": "#333", "background": "#eeeeee"},
    "unavailable": {"color": "#b71c1c", "background": "#ffebee"},
}
FLOW_COLORS = {"source": "#4c78a8", "destination": "#f58518", "article": "#54a24b"}


def apply_update(source: ColumnDataSource, update: shaping.Update, rollover: int | None = None) -> None:
    """Apply a planned update to a source: replace, or patch and stream."""
    if update.reset is not None:
        source.data = update.reset
        return
    if update.patches:
        source.patch(update.patches)
    if update.stream:
        source.stream(update.stream, rollover=rollover)


def _hover(fig: Any, tooltips: list[tuple[str, str]], renderers: list[Any] | None = None,
           mode: str = "mouse", name: str | None = None) -> HoverTool:
    """Add a hover tool; fields are escaped by Bokeh (never ``{safe}``), times shown in UTC."""
    tool = HoverTool(tooltips=tooltips, renderers=renderers or "auto", mode=mode, name=name,
                     formatters={"@x": "datetime", "@x_end": "datetime", "@watermark_ms": "datetime"})
    fig.add_tools(tool)
    return tool


def _time_figure(title: str, name: str, y_label: str, height: int = 260, **kw: Any) -> Any:
    fig = figure(title=title, height=height, x_axis_type="datetime", sizing_mode="stretch_width",
                 tools=TOOLS, toolbar_location="above", name=name, x_axis_label="UTC",
                 y_axis_label=y_label, **kw)
    fig.xaxis.formatter = CONTEXTUAL_DATETIME_FORMATTER()
    return fig


def _ranked_bar(name: str, title: str, top_n: int, value_label: str,
                extra_tips: list[tuple[str, str]] | None = None) -> tuple[Any, ColumnDataSource]:
    source = ColumnDataSource(shaping.ranked_columns([], top_n), name=name)
    fig = figure(title=title, height=330, sizing_mode="stretch_width", tools=TOOLS, toolbar_location="above",
                 y_range=FactorRange(factors=[str(i) for i in range(top_n, 0, -1)]),
                 x_axis_label=value_label, y_axis_label="rank", name=name + "_plot")
    bars = fig.hbar(y="slot", right="value", height=0.8, source=source, color="#4c78a8", alpha=0.45)
    fig.text(x=0, y="slot", text="label", source=source, text_baseline="middle",
             text_font_size="11px", x_offset=4)
    _hover(fig, [("rank", "@slot"), ("article", "@label"), (value_label, "@value{0,0.000}"),
                 *(extra_tips or [])],
           renderers=[bars], mode="hline", name=name + "_hover")
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


def _text_line(name: str, text: str, height: int = 24, **kw: Any) -> Div:
    """A plain-text Div of fixed height: new text re-renders it alone, not the page's layout."""
    return Div(text=text, render_as_text=True, name=name, height=height, sizing_mode="stretch_width", **kw)


def _dask_link(url: str) -> Div:
    """A link to the Dask dashboard (an http(s) URL from the settings, escaped), or a note."""
    if not url:
        return Div(text="Dask dashboard: no link configured (--dashboard-dask-link).", render_as_text=True,
                   name="dask_link")
    href = html.escape(url, quote=True)
    return Div(text=f'<a href="{href}" target="_blank" rel="noopener noreferrer">Dask dashboard: {href}</a>',
               name="dask_link")


class ExplorerTables(NamedTuple):
    incoming: DataTable
    outgoing: DataTable
    shares: DataTable
    link_types: DataTable


class DashboardSession:
    """The models and callbacks of one browser session."""

    def __init__(self, doc: Document, runtime: Runtime) -> None:
        self.doc = doc
        self.settings = runtime.settings
        self.poller = runtime.poller
        self.pipeline = self.poller.default_pipeline
        self.shown_version = -1
        self.pagerank_choice = ""  # "" follows the newest run
        self.article = ""
        self.series_step_ms = windows.HOUR_MS

        self.status = _text_line("status", "Connecting to the store…", height=34,
                                 styles={"padding": "6px 10px", "border-radius": "4px", "font-size": "14px"})
        self.pipeline_select = Select(title="Pipeline", options=[(self.pipeline, self.pipeline)],
                                      value=self.pipeline, name="pipeline_picker", width=420)
        self.pipeline_select.on_change("value", self._on_pipeline)
        self.tabs = tabs = Tabs(tabs=[TabPanel(child=self._build_live(), title="Live"),
                                      TabPanel(child=self._build_pipeline(), title="Pipeline"),
                                      TabPanel(child=self._build_batch(), title="Batch"),
                                      TabPanel(child=self._build_explorer(), title="Explorer")],
                                name="tabs", sizing_mode="stretch_width")
        tabs.on_change("active", self._on_tab)
        doc.add_root(column(row(self.pipeline_select, column(Div(text=""), self.status,
                                                             sizing_mode="stretch_width"),
                                sizing_mode="stretch_width"),
                            tabs, sizing_mode="stretch_width"))
        doc.title = "Clickstream"
        self.update()
        doc.add_periodic_callback(self.update, UPDATE_MS)
        if self.reconcile_input.value:
            self._lookup_reconcile(self.reconcile_input.value)

    # -- the pages' models -------------------------------------------------------------------
    def _build_live(self) -> Any:
        """Clicks per second, trending, the referrer mix and the pipeline's numbers now."""
        self.clicks_source = ColumnDataSource(shaping.clicks_series([], CLICKS_WINDOW_MS), name="clicks")
        clicks_fig = _time_figure("Clicks per second (1 s windows, event time)", "clicks_plot", "clicks/s",
                                  height=280)
        line = clicks_fig.line(x="x", y="clicks_per_s", source=self.clicks_source, line_width=2)
        _hover(clicks_fig, [("window start (UTC)", "@x{%F %T}"), ("clicks/s", "@clicks_per_s{0,0.0}"),
                            ("late clicks", "@late_clicks{0,0}")], renderers=[line], mode="vline",
               name="clicks_hover")
        self.trending_fig, self.trending_source = _ranked_bar(
            "trending", "Trending now (lift over the baseline, newest 10 s window)", TOP_N, "lift",
            extra_tips=[("window start", "@window")])
        self.trending_source.data = {**self.trending_source.data, "window": [""] * TOP_N}
        self.referrer_source = ColumnDataSource(shaping.referrer_columns({}), name="referrers")
        mix_fig = _time_figure("Referrer mix (clicks per 10 s window)", "referrers_plot", "clicks",
                               height=280)
        mix_fig.varea_stack(stackers=list(REFERRER_CLASSES), x="x", source=self.referrer_source,
                            color=Category10[len(REFERRER_CLASSES)], legend_label=list(REFERRER_CLASSES))
        probe = mix_fig.line(x="x", y=REFERRER_CLASSES[0], source=self.referrer_source, alpha=0)
        _hover(mix_fig, [("window start (UTC)", "@x{%F %T}")]
               + [(cls, f"@{{{cls}}}{{0,0}}") for cls in REFERRER_CLASSES],
               renderers=[probe], mode="vline", name="referrers_hover")
        mix_fig.legend.location = "top_left"
        mix_fig.legend.label_text_font_size = "9px"
        self.health_source = ColumnDataSource(shaping.health_columns([]), name="health")
        health_table, self.health_table_source = _table("health_now", [("metric", "metric"),
                                                                       ("value", "now")], height=260)
        self.health_table_source.data = shaping.health_table(None)
        return column(
            row(clicks_fig, self.trending_fig, sizing_mode="stretch_width"),
            row(mix_fig, column(Div(text="Pipeline now"), health_table, sizing_mode="stretch_width"),
                sizing_mode="stretch_width"),
            sizing_mode="stretch_width")

    def _build_pipeline(self) -> Any:
        """The chosen pipeline's health over time, the reconcile differences, the Dask link."""
        src = self.health_source
        rate = _time_figure("Throughput (clicks per second, per cycle)", "rate_plot", "clicks/s")
        r = rate.line(x="x", y="clicks_per_s", source=src, line_width=2)
        _hover(rate, [TIME_TIP, ("clicks/s", "@clicks_per_s{0,0.0}")], [r], "vline", "rate_hover")
        lag = _time_figure("Lag and log→store latency (ms)", "lag_plot", "ms", x_range=rate.x_range)
        lr = lag.line(x="x", y="lag_ms", source=src, color="#e45756", legend_label="lag", line_width=2)
        lag.line(x="x", y="latency_ms", source=src, color="#54a24b", legend_label="latency", line_width=2)
        _hover(lag, [TIME_TIP, ("lag", "@lag_ms{0,0} ms"), ("latency", "@latency_ms{0,0} ms")], [lr],
               "vline", "lag_hover")
        delay = _time_figure("Watermark delay (wall clock − watermark, s)", "watermark_plot", "s",
                             x_range=rate.x_range)
        d = delay.line(x="x", y="watermark_delay_s", source=src, color="#b279a2", line_width=2)
        _hover(delay, [TIME_TIP, ("watermark (UTC)", "@watermark_ms{%F %T}"),
                       ("delay", "@watermark_delay_s{0,0.0} s")], [d], "vline", "watermark_hover")
        late = _time_figure("Late clicks and dead letters (per cycle)", "late_plot", "records",
                            x_range=rate.x_range)
        lt = late.line(x="x", y="late_clicks", source=src, color="#f58518", legend_label="late clicks",
                       line_width=2)
        late.line(x="x", y="dead_letters", source=src, color="#9d755d", legend_label="dead letters",
                  line_width=2)
        _hover(late, [TIME_TIP, ("late clicks", "@late_clicks{0,0}"), ("dead letters", "@dead_letters{0,0}")],
               [lt], "vline", "late_hover")
        for fig in (lag, late):
            fig.legend.location = "top_left"
        now_table, self.pipeline_now_source = _table("pipeline_now", [("metric", "metric"), ("value", "now")],
                                                     height=300)
        self.pipeline_now_source.data = shaping.pipeline_now_table(None, [])
        return column(
            _dask_link(self.settings.dashboard_dask_link),
            row(rate, lag, sizing_mode="stretch_width"),
            row(delay, late, sizing_mode="stretch_width"),
            row(self._partition_lag_figure(rate.x_range),
                column(Div(text="Pipeline now"), now_table, sizing_mode="stretch_width"),
                sizing_mode="stretch_width"),
            self._reconcile_view(),
            sizing_mode="stretch_width")

    def _partition_lag_figure(self, x_range: Any) -> Any:
        """Records not read per partition over time: one line each, a legend for the most lagging."""
        self.partition_lag_source = ColumnDataSource(
            shaping.partition_lag_lines([], PARTITION_COLORS, OTHER_PARTITIONS_COLOR), name="partition_lag")
        self.partition_lag_points = ColumnDataSource(shaping.partition_lag_points([]),
                                                     name="partition_lag_points")
        fig = _time_figure("Lag per partition (records not read, per cycle)", "partition_lag_plot", "records",
                           height=300, x_range=x_range)
        fig.add_layout(Legend(label_text_font_size="9px", spacing=0, padding=4), "right")
        fig.multi_line(xs="xs", ys="ys", source=self.partition_lag_source, line_color="color",
                       line_width=2, legend_field="label")
        # invisible points at every (cycle, partition): what the hover reads, exact values
        points = fig.scatter(x="x", y="lag_records", source=self.partition_lag_points, size=8, alpha=0)
        _hover(fig, [("partition", "@partition"), TIME_TIP, ("records not read", "@lag_records{0,0}")],
               [points], "mouse", "partition_lag_hover")
        return fig

    def _reconcile_view(self) -> Any:
        """The listed reconcile runs (or a typed run id) and the chosen run's differences."""
        self.reconcile_runs: dict[str, dict[str, Any]] = {}
        self.reconcile_shown: tuple[str, dict[str, Any] | None] | None = None  # run id, its listing row
        self.reconcile_runs_select = Select(title="Reconcile runs (newest first)", name="reconcile_runs",
                                            options=shaping.reconcile_run_options([]), value="", width=620)
        self.reconcile_runs_select.on_change("value", self._on_reconcile_run)
        self.reconcile_input = TextInput(title="… or a reconcile run id", name="reconcile_run", width=420,
                                         value=self.settings.dashboard_reconcile_run)
        self.reconcile_input.on_change("value", lambda _a, _o, new: self._lookup_reconcile(new.strip()))
        self.reconcile_summary = _text_line("reconcile_summary", shaping.reconcile_summary(
            "", {"difference": []}, RECONCILE_LIMIT), height=44)
        reconcile_table, self.reconcile_source = _table(
            "reconcile", [("metric", "metric"), ("window", "window"), ("window_start", "window start"),
                          ("key", "key"), ("streamed", "streamed"), ("recounted", "recounted"),
                          ("difference", "recounted − streamed")], height=240)
        return column(row(self.reconcile_runs_select, self.reconcile_input), self.reconcile_summary,
                      reconcile_table, sizing_mode="stretch_width")

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
        """One article: its flows as a picture and tables, shares, and its clicks over time."""
        self.article_input = AutocompleteInput(title="Article (type or pick)", completions=[],
                                               name="article_input", min_characters=1, case_sensitive=False,
                                               search_strategy="includes", restrict=False)
        self.article_input.on_change("value", self._on_article)
        self.granularity = Select(title="Granularity", options=["hour", "day"], value="hour",
                                  name="granularity")
        self.granularity.on_change("value", lambda _a, _o, _n: self._lookup_article(self.article))
        self.explorer_message = _text_line("explorer_message",
                                           "Pick an article to see where its readers come from and go.")
        tables = self._explorer_tables()
        flow_fig = self._flow_figure()
        self.explorer_series = ColumnDataSource(shaping.series_columns([], windows.HOUR_MS),
                                                name="explorer_series")
        self.series_fig = _time_figure("Clicks into the article (batch rollups)", "explorer_series_plot",
                                       "clicks", height=250, x_range=Range1d(0, windows.HOUR_MS))
        bars = self.series_fig.quad(left="x", right="x_end", bottom=0, top="clicks",
                                    source=self.explorer_series, color="#4c78a8", alpha=0.6,
                                    line_color="white")
        _hover(self.series_fig, [("from (UTC)", "@x{%F %H:%M}"), ("to (UTC)", "@x_end{%F %H:%M}"),
                                 ("clicks", "@clicks{0,0}")], [bars], "mouse", "explorer_series_hover")
        self.range_slider = DatetimeRangeSlider(title="Time range (UTC)", start=0, end=windows.HOUR_MS,
                                                value=(0, windows.HOUR_MS), step=windows.HOUR_MS,
                                                format="%Y-%m-%d %H:%M", name="explorer_range",
                                                disabled=True, sizing_mode="stretch_width")
        self.range_slider.on_change("value", self._on_range)
        self.range_total = _text_line("explorer_total", "")
        return column(
            row(self.article_input, self.granularity),
            self.explorer_message,
            row(column(Div(text="Incoming (top sources)"), tables.incoming,
                       Div(text="Outgoing (top destinations)"), tables.outgoing, sizing_mode="stretch_width"),
                flow_fig, sizing_mode="stretch_width"),
            row(tables.shares, tables.link_types, sizing_mode="stretch_width"),
            self.series_fig, self.range_slider, self.range_total,
            sizing_mode="stretch_width")

    def _flow_figure(self) -> Any:
        """Top sources -> article -> top destinations: ribbons and bars sized by clicks."""
        nodes, ribbons = shaping.flow_chart("", [], [], FLOW_TOP_N)
        self.flow_nodes = ColumnDataSource({**nodes, "color": []}, name="flow_nodes")
        self.flow_ribbons = ColumnDataSource({**ribbons, "color": []}, name="flow_ribbons")
        fig = figure(title="Where readers come from and go (top sources → article → top destinations)",
                     height=560, sizing_mode="stretch_width", tools="pan,wheel_zoom,box_zoom,reset,save",
                     toolbar_location="above", x_range=Range1d(-2.1, 2.1), y_range=Range1d(-0.06, 1.08),
                     name="flow_plot")
        fig.axis.visible = False
        fig.grid.visible = False
        rib = fig.patches(xs="xs", ys="ys", source=self.flow_ribbons, fill_color="color", fill_alpha=0.35,
                          line_color="color", line_alpha=0.5)
        quads = fig.quad(left="left", right="right", bottom="bottom", top="top", source=self.flow_nodes,
                         fill_color="color", line_color="color")
        fig.text(x="label_x", y="label_y", text="label", text_align="align", text_baseline="middle",
                 text_font_size="11px", source=self.flow_nodes)
        _hover(fig, [("", "@side"), ("title", "@title"), ("clicks", "@clicks{0,0}"),
                     ("share", "@share{0.0%}")], [rib, quads], "mouse", "flow_hover")
        return fig

    def _explorer_tables(self) -> ExplorerTables:
        in_table, self.explorer_sources = _table(
            "explorer_sources", [("rank", "rank"), ("source", "source"), ("clicks", "clicks"),
                                 ("share", "share")], height=250)
        out_table, self.explorer_destinations = _table(
            "explorer_destinations", [("rank", "rank"), ("destination", "destination"),
                                      ("clicks", "clicks"), ("share", "share")], height=250)
        share_table, self.explorer_shares = _table(
            "explorer_shares", [("link_type", "incoming by referrer class"), ("clicks", "clicks"),
                                ("share", "share")], height=200)
        lt_table, self.explorer_link_types = _table(
            "explorer_link_types", [("link_type", "link type"), ("clicks", "clicks"), ("share", "share")],
            height=200)
        return ExplorerTables(in_table, out_table, share_table, lt_table)

    # -- periodic update from the shared snapshot ---------------------------------------
    def update(self) -> None:
        self.poller.watch(self.pipeline)
        snap = self.poller.snapshot
        if snap.version == self.shown_version:
            return
        self._show_pipelines(snap)
        view = snap.view(self.pipeline)
        if view is None and snap.status == "ok":
            return  # a pipeline just picked: the next tick reads it
        self.shown_version = snap.version
        self._show_status(snap, view)
        if snap.status not in ("ok", "empty"):
            return  # keep the last numbers on screen under the unavailable banner
        self._show_live(view or LiveView(self.pipeline))
        self._show_batch(snap)

    def _show_pipelines(self, snap: Snapshot) -> None:
        """The picker lists the registry, newest first when a pipeline appears; order kept after."""
        options = shaping.pipeline_options(snap.pipelines, self.poller.default_pipeline)
        if {v for v, _ in options} != {v for v, _ in self.pipeline_select.options}:
            self.pipeline_select.options = options

    def _show_status(self, snap: Snapshot, view: LiveView | None) -> None:
        if snap.status == "ok":  # no per-tick numbers here: a new text re-lays out the whole page
            parts = [f"Store OK · pipeline {self.pipeline}"]
            if view is None or view.empty:
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

    def _show_live(self, view: LiveView) -> None:
        apply_update(self.clicks_source,
                     shaping.plan_update(self.clicks_source.data,
                                         shaping.clicks_series(view.clicks, CLICKS_WINDOW_MS)),
                     rollover=CLICKS_SPAN_WINDOWS)
        trending = shaping.ranked_columns(view.trending, TOP_N, value="lift")
        trending["window"] = [shaping.format_utc(view.trending_start_ms)] * TOP_N
        apply_update(self.trending_source, shaping.plan_fixed(self.trending_source.data, trending))
        apply_update(self.referrer_source,
                     shaping.plan_update(self.referrer_source.data, shaping.referrer_columns(view.referrers)),
                     rollover=MIX_SPAN_WINDOWS)
        apply_update(self.health_source,
                     shaping.plan_update(self.health_source.data, shaping.health_columns(view.health)),
                     rollover=HEALTH_ROWS)
        latest = view.health[0] if view.health else None
        apply_update(self.health_table_source,
                     shaping.plan_fixed(self.health_table_source.data, shaping.health_table(latest)))
        if self.tabs.active == PIPELINE_TAB:
            self._show_partition_lag(view)
        apply_update(self.pipeline_now_source,
                     shaping.plan_fixed(self.pipeline_now_source.data,
                                        shaping.pipeline_now_table(latest,
                                                                   shaping.partition_lag_now(view.partition_lag))))
        self._show_reconcile_runs(view.reconcile_runs)

    def _show_partition_lag(self, view: LiveView) -> None:
        """The lines are replaced whole at each new cycle (their points stream): done only while
        the Pipeline tab is shown, so sessions on other tabs do not pay for them."""
        lines = shaping.partition_lag_lines(view.partition_lag, PARTITION_COLORS, OTHER_PARTITIONS_COLOR)
        if dict(self.partition_lag_source.data) != lines:
            self.partition_lag_source.data = lines
        points = shaping.partition_lag_points(view.partition_lag)
        apply_update(self.partition_lag_points, shaping.plan_append(self.partition_lag_points.data, points),
                     rollover=len(points["x"]))

    def _on_tab(self, _attr: str, _old: int, new: int) -> None:
        if new == PIPELINE_TAB:
            self.shown_version = -1  # bring the partition lag up to date on the next update

    def _show_reconcile_runs(self, runs: list[dict[str, Any]]) -> None:
        """List the runs (newest first); the Select follows the run id shown when it is listed."""
        self.reconcile_runs = {str(r["run_id"]): r for r in reversed(runs)}  # a reused id: its newest row
        options = shaping.reconcile_run_options(runs)
        if self.reconcile_runs_select.options != options:
            self.reconcile_runs_select.options = options
        typed = self.reconcile_input.value.strip()
        chosen = typed if typed in self.reconcile_runs else ""
        if self.reconcile_runs_select.value != chosen:
            self.reconcile_runs_select.value = chosen
        if self.reconcile_shown is not None and self.reconcile_shown[0] == typed \
                and self.reconcile_shown[1] != self.reconcile_runs.get(typed):
            self._show_reconcile(typed, self.reconcile_source.data)  # listed (or changed) since shown

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

    def _on_pipeline(self, _attr: str, _old: str, new: str) -> None:
        """Show another pipeline: clear the live views, then fill them from its next tick."""
        if new == self.pipeline:
            return
        if not self.poller.watch(new):  # not in the registry: keep showing the current one
            self.pipeline_select.value = self.pipeline
            return
        self.pipeline = new
        for source, empty in ((self.clicks_source, shaping.clicks_series([], CLICKS_WINDOW_MS)),
                              (self.referrer_source, shaping.referrer_columns({})),
                              (self.health_source, shaping.health_columns([])),
                              (self.partition_lag_source,
                               shaping.partition_lag_lines([], PARTITION_COLORS, OTHER_PARTITIONS_COLOR)),
                              (self.partition_lag_points, shaping.partition_lag_points([]))):
            source.data = empty
        self.shown_version = -1

    def _on_pagerank_choice(self, _attr: str, _old: str, new: str) -> None:
        newest = self.pagerank_select.options[0][0] if self.pagerank_select.options else ""
        self.pagerank_choice = "" if new == newest else new
        self.shown_version = -1  # re-apply the batch view on the next tick

    def _on_reconcile_run(self, _attr: str, _old: str, new: str) -> None:
        """A listed run chosen: it becomes the run id shown (whose change loads its differences)."""
        if new and self.reconcile_input.value.strip() != new:
            self.reconcile_input.value = new

    def _show_reconcile(self, run_id: str, cols: Any) -> None:
        run = self.reconcile_runs.get(run_id)
        self.reconcile_shown = (run_id, run)
        self.reconcile_summary.text = shaping.reconcile_summary(run_id, cols, RECONCILE_LIMIT, run)

    def _lookup_reconcile(self, run_id: str) -> None:
        if self.reconcile_runs_select.value != (run_id if run_id in self.reconcile_runs else ""):
            self.reconcile_runs_select.value = run_id if run_id in self.reconcile_runs else ""

        def show(rows: list[dict[str, Any]]) -> None:
            if self.reconcile_input.value.strip() != run_id:
                return  # a newer run id superseded this one
            cols = shaping.reconcile_columns(rows)
            self.reconcile_source.data = cols
            self._show_reconcile(run_id, cols)

        def failed(exc: BaseException) -> None:
            self.reconcile_summary.text = f"Look-up of reconcile run {run_id} failed: {exc}"

        if not run_id:
            show([])
            return
        self.reconcile_summary.text = f"Loading reconcile run {run_id}…"
        self._when_done(self.poller.lookup("reconcile_diffs", {"run_id": run_id}, limit=RECONCILE_LIMIT),
                        show, failed)

    def _on_article(self, _attr: str, _old: str, new: str) -> None:
        self._lookup_article(new.strip())

    def _lookup_article(self, article: str) -> None:
        self.article = article
        if not article:
            return
        self.explorer_message.text = f"Loading {article}…"
        results: dict[str, list[dict[str, Any]]] = {}
        granularity = self.granularity.value
        wanted = {
            "sources": self.poller.lookup("top_sources", {"destination": article}, limit=100),
            "destinations": self.poller.lookup("top_destinations", {"source": article}, limit=100),
            "link_types": self.poller.lookup("link_type_share", {"scope": article}),
            "series": self.poller.lookup("rollups", {"metric": windows.METRIC_DESTINATION,
                                                     "granularity": granularity, "key": article}),
        }

        def got(name: str, rows: list[dict[str, Any]]) -> None:
            if self.article != article or self.granularity.value != granularity:
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
        nodes, ribbons = shaping.flow_chart(article, r["sources"], r["destinations"], FLOW_TOP_N)
        self.flow_nodes.data = {**nodes, "color": [FLOW_COLORS[s] for s in nodes["side"]]}
        self.flow_ribbons.data = {**ribbons, "color": [FLOW_COLORS[s] for s in ribbons["side"]]}
        self.series_step_ms = windows.HOUR_MS if self.granularity.value == "hour" else windows.DAY_MS
        series = shaping.series_columns(r["series"], self.series_step_ms)
        self.explorer_series.data = series
        bounds = shaping.series_bounds(series["x"], self.series_step_ms)
        if bounds is not None:
            self.range_slider.update(start=bounds[0], end=bounds[1], value=bounds, step=self.series_step_ms,
                                     disabled=False)
            self._on_range("value", None, bounds)
        else:
            self.range_slider.disabled = True
            self.range_total.text = ""
        found = sum(len(v) for v in r.values())
        self.explorer_message.text = (f"Article: {article}" if found
                                      else f"No batch results for {article} (yet).")

    def _on_range(self, _attr: str, _old: Any, new: tuple[float, float]) -> None:
        xs, ys = self.explorer_series.data["x"], self.explorer_series.data["clicks"]
        bounds = shaping.series_bounds(xs, self.series_step_ms)
        if bounds is None:
            return
        lo, hi = shaping.snap_range(new[0], new[1], bounds, self.series_step_ms)
        self.series_fig.x_range.update(start=lo, end=hi)
        total = shaping.range_total(xs, ys, lo, hi)
        self.range_total.text = (f"{total:,} clicks into {self.article} from {shaping.format_utc(lo)} "
                                 f"to {shaping.format_utc(hi)}")


def build_document(doc: Document, runtime: Runtime) -> DashboardSession:
    """Fill a session's document (called by the app's main.py)."""
    return DashboardSession(doc, runtime)
