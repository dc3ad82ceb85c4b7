"""Pure shaping of store rows into plot columns, and the stream/patch plan of an update.

Nothing here does I/O; every function takes rows (dicts as ``Store.select`` returns
them) and returns plain column dicts that a ``ColumnDataSource`` can take.
"""

from __future__ import annotations

import datetime as dt
import math
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from clickstream.referrers import REFERRER_CLASSES, classify

Columns = dict[str, list[Any]]


def clicks_series(rows_desc: Iterable[Mapping[str, Any]], window_ms: int) -> Columns:
    """``window_totals`` rows (newest first) -> ascending ``x`` (window start ms) and clicks/s."""
    rows = sorted(rows_desc, key=lambda r: r["window_start_ms"])
    return {
        "x": [int(r["window_start_ms"]) for r in rows],
        "clicks_per_s": [r["clicks"] * 1000.0 / window_ms for r in rows],
        "late_clicks": [int(r["late_clicks"]) for r in rows],
    }


def ranked_columns(rows: Iterable[Mapping[str, Any]], top_n: int, value: str = "clicks",
                   label: str = "key", extra: Sequence[str] = ()) -> Columns:
    """Ranked rows -> exactly ``top_n`` rows in rank order (padding with empty rows).

    The fixed length lets a re-ranked window be applied as one ``patch``; ``slot`` is the
    plot's categorical y (``"1"`` is the top) and ``label`` the text drawn on the bar.
    """
    ordered = sorted(rows, key=lambda r: r["rank"])[:top_n]
    out: Columns = {"slot": [str(i + 1) for i in range(top_n)], "label": [], "value": []}
    for name in extra:
        out[name] = []
    for i in range(top_n):
        row = ordered[i] if i < len(ordered) else None
        out["label"].append(str(row[label]) if row else "")
        out["value"].append(float(row[value]) if row else 0.0)
        for name in extra:
            out[name].append(row[name] if row else None)
    return out


def referrer_columns(windows: Mapping[int, Mapping[str, int]]) -> Columns:
    """{window start ms: {referrer class: clicks}} -> ascending ``x`` and one column per class."""
    starts = sorted(windows)
    out: Columns = {"x": starts}
    for cls in REFERRER_CLASSES:
        out[cls] = [int(windows[s].get(cls, 0)) for s in starts]
    return out


def format_utc(ms: int | float | None) -> str:
    """Epoch milliseconds -> ``2015-02-01 12:00:00 UTC`` ("-" for none)."""
    if ms is None:
        return "-"
    return dt.datetime.fromtimestamp(ms / 1000, tz=dt.UTC).strftime("%Y-%m-%d %H:%M:%S UTC")


def format_duration_ms(ms: int | float | None) -> str:
    """A duration for people: ``850 ms``, ``12.3 s``, ``5 min 03 s``, ``3 h 02 min``, ``3,978 d 01 h``."""
    if ms is None:
        return "-"
    sign, ms = ("-" if ms < 0 else ""), abs(ms)
    if ms < 1000:
        return f"{sign}{ms:.0f} ms"
    if ms < 60_000:
        return f"{sign}{ms / 1000:.1f} s"
    whole = int(ms // 1000)
    if whole < 3600:
        return f"{sign}{whole // 60} min {whole % 60:02d} s"
    if whole < 86_400:
        return f"{sign}{whole // 3600} h {whole % 3600 // 60:02d} min"
    return f"{sign}{whole // 86_400:,} d {whole % 86_400 // 3600:02d} h"


def health_columns(rows_desc: Iterable[Mapping[str, Any]]) -> Columns:
    """``pipeline_metrics`` rows (newest first) -> ascending series for the health plots.

    ``watermark_delay_s`` is the wall time of the row minus its watermark (event time): how
    far the final windows trail the clock (a replay of an old month trails by its age).
    """
    rows = sorted(rows_desc, key=lambda r: r["ts_ms"])
    return {
        "x": [int(r["ts_ms"]) for r in rows],
        "clicks_per_s": [float(r["clicks_per_s"]) for r in rows],
        "lag_ms": [int(r["lag_ms"]) for r in rows],
        "latency_ms": [int(r["latency_ms"]) for r in rows],
        "late_clicks": [int(r["late_clicks"]) for r in rows],
        "dead_letters": [int(r["dead_letters"]) for r in rows],
        "watermark_ms": [int(r["watermark_ms"]) for r in rows],
        "watermark_delay_s": [(int(r["ts_ms"]) - int(r["watermark_ms"])) / 1000 for r in rows],
    }


HEALTH_ROWS: tuple[tuple[str, Callable[[Mapping[str, Any]], str]], ...] = (
    ("clicks in (last cycle)", lambda r: f"{int(r['clicks_in']):,}"),
    ("clicks per second", lambda r: f"{float(r['clicks_per_s']):,.1f}"),
    ("lag (newest record read)", lambda r: format_duration_ms(r["lag_ms"])),
    ("latency (log to store)", lambda r: format_duration_ms(r["latency_ms"])),
    ("late clicks (last cycle)", lambda r: f"{int(r['late_clicks']):,}"),
    ("dead letters (last cycle)", lambda r: f"{int(r['dead_letters']):,}"),
    ("watermark (event time)", lambda r: format_utc(r["watermark_ms"])),
    ("watermark delay", lambda r: format_duration_ms(int(r["ts_ms"]) - int(r["watermark_ms"]))),
    ("measured at", lambda r: format_utc(r["ts_ms"])),
)


def health_table(latest: Mapping[str, Any] | None) -> Columns:
    """The newest ``pipeline_metrics`` row as a two-column table (fixed rows, patchable)."""
    return {"metric": [label for label, _ in HEALTH_ROWS],
            "value": [show(latest) if latest else "" for _, show in HEALTH_ROWS]}


def partition_lag_now(rows_desc: Iterable[Mapping[str, Any]]) -> list[tuple[int, int]]:
    """``partition_lag`` rows -> (partition, its newest lag in records), most lagging first
    (ties: lower partition first)."""
    newest: dict[int, tuple[int, int]] = {}
    for r in rows_desc:
        p, ts = int(r["partition_id"]), int(r["ts_ms"])
        if p not in newest or ts > newest[p][0]:
            newest[p] = (ts, int(r["lag_records"]))
    return sorted(((p, lag) for p, (_ts, lag) in newest.items()), key=lambda pl: (-pl[1], pl[0]))


def partition_lag_lines(rows_desc: Iterable[Mapping[str, Any]], palette: Sequence[str],
                        other_color: str) -> Columns:
    """``partition_lag`` rows (newest first) -> one line per partition, the most lagging first.

    ``xs`` (``ts_ms``, ascending) and ``ys`` (records not read) per partition, ``lag_now`` its
    newest lag. The ``len(palette)`` most lagging partitions come first, in partition order
    (so a partition keeps its colour while it stays among them), with a colour and a legend
    ``label`` each; the others follow in ``other_color`` under one shared label, so the legend
    stays short whatever the partition count.
    """
    rows = list(rows_desc)
    series: dict[int, list[tuple[int, int]]] = {}
    for r in rows:
        series.setdefault(int(r["partition_id"]), []).append((int(r["ts_ms"]), int(r["lag_records"])))
    ranked = partition_lag_now(rows)
    top, rest = sorted(ranked[:len(palette)]), ranked[len(palette):]
    out: Columns = {k: [] for k in ("partition", "xs", "ys", "lag_now", "label", "color")}
    for i, (p, lag) in enumerate(top + rest):
        points = sorted(series[p])
        named = i < len(top)
        for k, v in zip(out, (p, [x for x, _ in points], [y for _, y in points], lag,
                              f"partition {p}" if named else f"{len(rest)} other partitions",
                              palette[i] if named else other_color), strict=True):
            out[k].append(v)
    return out


def partition_lag_points(rows_desc: Iterable[Mapping[str, Any]]) -> Columns:
    """``partition_lag`` rows -> one point per partition and cycle (what the hover reads),
    ascending by time, then partition."""
    rows = sorted(rows_desc, key=lambda r: (int(r["ts_ms"]), int(r["partition_id"])))
    return {"x": [int(r["ts_ms"]) for r in rows], "lag_records": [int(r["lag_records"]) for r in rows],
            "partition": [int(r["partition_id"]) for r in rows]}


def pipeline_now_table(latest: Mapping[str, Any] | None, lag_now: Sequence[tuple[int, int]]) -> Columns:
    """``health_table`` plus the records not read now: in total, then per partition (most first)."""
    out = health_table(latest)
    if lag_now:
        out["metric"].append("records not read (all partitions)")
        out["value"].append(f"{sum(lag for _, lag in lag_now):,}")
        for p, lag in lag_now:
            out["metric"].append(f"records not read, partition {p}")
            out["value"].append(f"{lag:,}")
    return out


def reconcile_run_options(runs_desc: Iterable[Mapping[str, Any]]) -> list[tuple[str, str]]:
    """``reconcile_runs`` rows (newest first) -> Select options (run id, label), newest first;
    a run id listed twice keeps its newest row. Labels are plain text (run ids are user input)."""
    options: list[tuple[str, str]] = [("", "choose a reconcile run…")]
    seen = set()
    for r in runs_desc:
        run_id = str(r["run_id"])
        if run_id in seen:
            continue
        seen.add(run_id)
        dry = " · dry run, not recorded" if int(r["dry_run"]) else ""
        options.append((run_id, f"{run_id} · {format_utc(int(r['started_ms']))} · "
                                f"{int(r['differences']):,} differences in {int(r['windows_differing']):,} "
                                f"of {int(r['windows_compared']):,} windows{dry}"))
    return options


def pipeline_options(registry_rows: Iterable[Mapping[str, Any]], default: str) -> list[tuple[str, str]]:
    """``pipeline_registry`` rows -> Select options (value, label), newest update first.

    ``default`` (the settings' pipeline) is listed even before it has written anything.
    """
    rows = sorted(registry_rows, key=lambda r: (-int(r["updated_ms"]), str(r["pipeline"])))
    options = [(str(r["pipeline"]), f"{r['pipeline']} · topic {r['topic']}") for r in rows]
    if default and default not in {value for value, _ in options}:
        options.append((default, f"{default} · nothing written yet"))
    return options


def reconcile_columns(rows: Iterable[Mapping[str, Any]]) -> Columns:
    """``reconcile_diffs`` rows -> table columns, biggest absolute difference first."""
    ordered = sorted(rows, key=lambda r: (-abs(int(r["recounted"]) - int(r["streamed"])),
                                          str(r["metric"]), int(r["window_ms"]),
                                          int(r["window_start_ms"]), str(r["key"])))
    return {
        "metric": [str(r["metric"]) for r in ordered],
        "window": [format_duration_ms(int(r["window_ms"])) for r in ordered],
        "window_start": [format_utc(int(r["window_start_ms"])) for r in ordered],
        "key": [str(r["key"]) for r in ordered],
        "streamed": [int(r["streamed"]) for r in ordered],
        "recounted": [int(r["recounted"]) for r in ordered],
        "difference": [int(r["recounted"]) - int(r["streamed"]) for r in ordered],
    }


def reconcile_summary(run_id: str, cols: Mapping[str, Sequence[Any]], limit: int,
                      run: Mapping[str, Any] | None = None) -> str:
    """One line about a reconcile run's differences (plain text); ``run``: its ``reconcile_runs``
    row when listed (a dry run recorded no differences: its counts are said instead)."""
    if not run_id:
        return ("Choose a reconcile run, or enter a run id (printed by `clickstream reconcile`), "
                "to see its differences.")
    if run is not None and int(run["dry_run"]):
        return (f"Reconcile run {run_id} was a dry run: {int(run['differences']):,} differences in "
                f"{int(run['windows_differing']):,} of {int(run['windows_compared']):,} windows, "
                "not recorded (run it without --dry-run to correct and record them).")
    n = len(cols["difference"])
    if n == 0:
        return f"Reconcile run {run_id}: no differences recorded (or no such run)."
    more = f" (the first {limit} read)" if n >= limit else ""
    windows = f" in {int(run['windows_compared']):,} windows compared" if run is not None else ""
    return (f"Reconcile run {run_id}: {n:,} differences{more}{windows}, streamed {sum(cols['streamed']):,} "
            f"vs recounted {sum(cols['recounted']):,} clicks.")


def table_columns(rows: Iterable[Mapping[str, Any]], names: Sequence[str]) -> Columns:
    rows = list(rows)
    return {n: [r[n] for r in rows] for n in names}


def referrer_shares(source_rows: Iterable[Mapping[str, Any]]) -> Columns:
    """An article's top incoming sources -> clicks and share per referrer class.

    Shares are of the listed sources' clicks (the top-N), in ``REFERRER_CLASSES`` order,
    classes without clicks left out.
    """
    by_class: dict[str, int] = {}
    for r in source_rows:
        cls = classify(str(r["source"]))
        by_class[cls] = by_class.get(cls, 0) + int(r["clicks"])
    total = sum(by_class.values())
    classes = [c for c in REFERRER_CLASSES if by_class.get(c)]
    return {
        "link_type": classes,
        "clicks": [by_class[c] for c in classes],
        "share": [by_class[c] / total for c in classes],
    }


def series_columns(rows: Iterable[Mapping[str, Any]], step_ms: int) -> Columns:
    """``rollups`` rows -> one bar per bucket: ``x`` (start), ``x_end`` (start + step), clicks."""
    ordered = sorted(rows, key=lambda r: int(r["bucket_start_ms"]))
    xs = [int(r["bucket_start_ms"]) for r in ordered]
    return {"x": xs, "x_end": [x + step_ms for x in xs], "clicks": [int(r["clicks"]) for r in ordered]}


def series_bounds(xs: Sequence[int], step_ms: int) -> tuple[int, int] | None:
    """The span the buckets cover, ``[first start, last start + step)``; None without buckets."""
    if not xs:
        return None
    return min(xs), max(xs) + step_ms


def snap_range(lo: float, hi: float, bounds: tuple[int, int], step_ms: int) -> tuple[int, int]:
    """A chosen ``[lo, hi)`` snapped out to whole buckets, kept inside ``bounds``, at least one bucket.

    ``bounds`` start on a bucket boundary (``series_bounds``), so the result does too.
    """
    first, end = bounds
    lo_i = max(first, min(int(lo), end - step_ms))
    start = first + (lo_i - first) // step_ms * step_ms
    hi_i = min(end, max(math.ceil(hi), start + step_ms))
    stop = first + -(-(hi_i - first) // step_ms) * step_ms
    return start, min(stop, end)


def range_total(xs: Sequence[int], clicks: Sequence[int], lo: int, hi: int) -> int:
    """Clicks of the buckets starting in ``[lo, hi)``."""
    return sum(c for x, c in zip(xs, clicks, strict=True) if lo <= x < hi)


FLOW_GAP = 0.02  # between two nodes of one side, as a share of the chart's height
FLOW_NODE_X = (-1.0, -0.94, -0.03, 0.03, 0.94, 1.0)  # source | article | destination node edges
FLOW_RIBBON_POINTS = 24
FLOW_LABEL_CHARS = 34


def short_label(title: str, chars: int = FLOW_LABEL_CHARS) -> str:
    return title if len(title) <= chars else title[: chars - 1] + "…"


def _smooth(a: float, b: float, n: int) -> list[float]:
    """``n`` points easing from ``a`` to ``b`` (smoothstep), the ribbon's edge."""
    return [a + (b - a) * (3 * u * u - 2 * u * u * u) for u in (i / (n - 1) for i in range(n))]


def flow_chart(article: str, sources: Iterable[Mapping[str, Any]],
               destinations: Iterable[Mapping[str, Any]], top_n: int) -> tuple[Columns, Columns]:
    """Top sources -> article -> top destinations as (nodes, ribbons) columns, sized by clicks.

    Nodes are quads (``left right bottom top``) with a label position; ribbons are patches
    (``xs ys``) whose height at each end is the clicks they carry. Heights are shares of the
    busier side, so both sides share one scale. ``share`` is of the side's listed clicks.
    Titles stay data (``title`` full, ``label`` shortened): they are drawn as canvas text.
    """
    sides = {"source": sorted(sources, key=lambda r: r["rank"])[:top_n],
             "destination": sorted(destinations, key=lambda r: r["rank"])[:top_n]}
    totals = {k: sum(int(r["clicks"]) for r in rows) for k, rows in sides.items()}
    scale = (1.0 - FLOW_GAP * (top_n - 1)) / max(max(totals.values()), 1)
    nodes: Columns = {k: [] for k in ("left", "right", "bottom", "top", "title", "label", "clicks",
                                      "share", "side", "label_x", "label_y", "align")}
    ribbons: Columns = {k: [] for k in ("xs", "ys", "title", "clicks", "share", "side")}

    def node(left: float, right: float, bottom: float, top: float, title: str, clicks: int, share: float,
             side: str, label_x: float, label_y: float, align: str) -> None:
        for k, v in zip(nodes, (left, right, bottom, top, title, short_label(title), clicks, share, side,
                                label_x, label_y, align), strict=True):
            nodes[k].append(v)

    centre = 0.5
    article_half = max(totals.values()) * scale / 2
    for side, rows in sides.items():
        heights = [int(r["clicks"]) * scale for r in rows]
        span = sum(heights) + FLOW_GAP * max(len(rows) - 1, 0)
        outer_top, inner_top = centre + span / 2, centre + sum(heights) / 2
        x_outer = (FLOW_NODE_X[0], FLOW_NODE_X[1]) if side == "source" else (FLOW_NODE_X[4], FLOW_NODE_X[5])
        x_from, x_to = (x_outer[1], FLOW_NODE_X[2]) if side == "source" else (FLOW_NODE_X[3], x_outer[0])
        for r, h in zip(rows, heights, strict=True):
            title = str(r["source" if side == "source" else "destination"])
            clicks = int(r["clicks"])
            share = clicks / totals[side] if totals[side] else 0.0
            label_x = x_outer[0] - 0.02 if side == "source" else x_outer[1] + 0.02
            node(x_outer[0], x_outer[1], outer_top - h, outer_top, title, clicks, share, side,
                 label_x, outer_top - h / 2, "right" if side == "source" else "left")
            if side == "source":
                ends = ((outer_top, inner_top), (outer_top - h, inner_top - h))
            else:
                ends = ((inner_top, outer_top), (inner_top - h, outer_top - h))
            xs = _smooth(x_from, x_to, FLOW_RIBBON_POINTS)
            top_edge = _smooth(ends[0][0], ends[0][1], FLOW_RIBBON_POINTS)
            bottom_edge = _smooth(ends[1][0], ends[1][1], FLOW_RIBBON_POINTS)
            for k, v in zip(ribbons, (xs + xs[::-1], top_edge + bottom_edge[::-1], title, clicks, share,
                                      side), strict=True):
                ribbons[k].append(v)
            outer_top -= h + FLOW_GAP
            inner_top -= h
    if sides["source"] or sides["destination"]:
        node(FLOW_NODE_X[2], FLOW_NODE_X[3], centre - article_half, centre + article_half, article,
             totals["source"], 1.0, "article", 0.0, centre + article_half + 0.04, "center")
    return nodes, ribbons


@dataclass
class Update:
    """How to bring a shown source up to date: replace, or patch then stream."""

    reset: Columns | None = None
    patches: dict[str, list[tuple[int, Any]]] = field(default_factory=dict)
    stream: Columns | None = None

    @property
    def empty(self) -> bool:
        return self.reset is None and not self.patches and self.stream is None


def plan_update(shown: Mapping[str, Sequence[Any]], new: Mapping[str, Sequence[Any]],
                x: str = "x") -> Update:
    """Diff two ascending-by-``x`` column sets into patches of changed rows and new rows.

    Rows newer than the last shown ``x`` are streamed, rows shown and changed are patched
    (their index in ``shown``); rows that fell off the front are left for ``rollover``. A
    store that went back in time (a new replay) or a change of columns resets.
    """
    shown_x = list(shown.get(x, ()))
    new_x = list(new.get(x, ()))
    if set(shown) != set(new) or not shown_x:
        return Update(reset=None if not shown_x and not new_x else {k: list(v) for k, v in new.items()})
    if not new_x or new_x[-1] < shown_x[-1]:
        return Update(reset={k: list(v) for k, v in new.items()})
    index = {v: i for i, v in enumerate(shown_x)}
    last = shown_x[-1]
    update = Update()
    first_new = len(new_x)
    for j, xv in enumerate(new_x):
        if xv > last:
            first_new = j
            break
        i = index.get(xv)
        if i is None:
            continue
        for col, values in new.items():
            if col != x and shown[col][i] != values[j]:
                update.patches.setdefault(col, []).append((i, values[j]))
    if first_new < len(new_x):
        update.stream = {k: list(v[first_new:]) for k, v in new.items()}
    return update


def plan_append(shown: Mapping[str, Sequence[Any]], new: Mapping[str, Sequence[Any]]) -> Update:
    """Diff two column sets of distinct rows that only leave at the front and arrive at the
    back (a window of cycles): stream the new rows (apply with ``rollover`` = the new length);
    anything else (a changed row, rows gone without new ones, other columns) resets."""
    if set(shown) != set(new):
        return Update(reset={k: list(v) for k, v in new.items()})
    names = list(new)
    old_rows = list(zip(*(shown[k] for k in names), strict=True))
    new_rows = list(zip(*(new[k] for k in names), strict=True))
    if old_rows == new_rows:
        return Update()
    try:
        dropped = old_rows.index(new_rows[0]) if new_rows else -1
    except ValueError:
        dropped = -1
    kept = len(old_rows) - dropped
    if dropped < 0 or old_rows[dropped:] != new_rows[:kept] or kept == len(new_rows):
        return Update(reset={k: list(v) for k, v in new.items()})
    return Update(stream={k: list(v[kept:]) for k, v in new.items()})


def plan_fixed(shown: Mapping[str, Sequence[Any]], new: Mapping[str, Sequence[Any]]) -> Update:
    """Diff two same-length column sets (ranked lists, tables) into per-cell patches."""
    if set(shown) != set(new) or any(len(shown[k]) != len(new[k]) for k in new):
        return Update(reset={k: list(v) for k, v in new.items()})
    update = Update()
    for col, values in new.items():
        for i, v in enumerate(values):
            if shown[col][i] != v:
                update.patches.setdefault(col, []).append((i, v))
    return update
