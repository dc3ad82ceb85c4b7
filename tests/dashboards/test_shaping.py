"""Unit tests of the dashboard's pure parts: row shaping, update plans, settings, escaping."""

from __future__ import annotations

import pytest

from clickstream.settings import Settings, SettingsError
from dashboards import shaping
from dashboards.runtime import settings_from_argv
from dashboards.server import websocket_origins

EVIL = "<img src=x onerror=alert(1)>"


def test_clicks_series_is_ascending_and_per_second() -> None:
    rows = [{"window_start_ms": 3000, "clicks": 20, "late_clicks": 1},
            {"window_start_ms": 2000, "clicks": 10, "late_clicks": 0}]
    assert shaping.clicks_series(rows, 1000) == {"x": [2000, 3000], "clicks_per_s": [10.0, 20.0],
                                                 "late_clicks": [0, 1]}
    assert shaping.clicks_series([{"window_start_ms": 0, "clicks": 50, "late_clicks": 0}],
                                 10_000)["clicks_per_s"] == [5.0]


def test_ranked_columns_pads_to_fixed_length_in_rank_order() -> None:
    rows = [{"rank": 2, "key": "b", "lift": 2.0}, {"rank": 1, "key": EVIL, "lift": 3.0}]
    cols = shaping.ranked_columns(rows, 4, value="lift")
    assert cols == {"slot": ["1", "2", "3", "4"], "label": [EVIL, "b", "", ""],
                    "value": [3.0, 2.0, 0.0, 0.0]}


def test_referrer_columns_fill_missing_classes_with_zero() -> None:
    cols = shaping.referrer_columns({20: {"search": 5}, 10: {"link": 3, "search": 1}})
    assert cols["x"] == [10, 20]
    assert cols["link"] == [3, 0]
    assert cols["search"] == [1, 5]
    assert cols["social"] == [0, 0]


def test_plan_update_streams_new_rows_and_patches_changed_ones() -> None:
    shown = {"x": [1, 2, 3], "y": [10, 20, 30]}
    new = {"x": [2, 3, 4, 5], "y": [20, 31, 40, 50]}
    update = shaping.plan_update(shown, new)
    assert update.reset is None
    assert update.patches == {"y": [(2, 31)]}
    assert update.stream == {"x": [4, 5], "y": [40, 50]}


def test_plan_update_is_empty_when_nothing_changed() -> None:
    shown = {"x": [1, 2], "y": [10, 20]}
    assert shaping.plan_update(shown, {"x": [1, 2], "y": [10, 20]}).empty


def test_plan_update_resets_when_store_goes_back_in_time_or_was_empty() -> None:
    shown = {"x": [100, 200], "y": [1, 2]}
    back = {"x": [1, 2], "y": [5, 6]}
    assert shaping.plan_update(shown, back).reset == back
    assert shaping.plan_update({"x": [], "y": []}, back).reset == back
    assert shaping.plan_update({"x": [], "y": []}, {"x": [], "y": []}).empty


def test_plan_fixed_patches_cells_or_resets_on_length_change() -> None:
    shown = {"label": ["a", "b"], "value": [1.0, 2.0]}
    update = shaping.plan_fixed(shown, {"label": ["b", "a"], "value": [1.0, 2.0]})
    assert update.patches == {"label": [(0, "b"), (1, "a")]}
    assert shaping.plan_fixed(shown, {"label": ["a"], "value": [1.0]}).reset == {"label": ["a"],
                                                                                 "value": [1.0]}


def test_referrer_shares_group_sources_by_class() -> None:
    rows = [{"source": "other-google", "clicks": 50}, {"source": "other-bing", "clicks": 25},
            {"source": EVIL, "clicks": 25}]
    cols = shaping.referrer_shares(rows)
    assert cols == {"link_type": ["link", "search"], "clicks": [25, 75], "share": [0.25, 0.75]}


def test_health_table_has_fixed_rows_readable_values_and_blanks_without_metrics() -> None:
    empty = shaping.health_table(None)
    assert empty["metric"] == [label for label, _ in shaping.HEALTH_ROWS]
    assert set(empty["value"]) == {""}
    row = {"clicks_per_s": 12_345.67, "lag_ms": 7, "latency_ms": 1500, "late_clicks": 1, "dead_letters": 2,
           "watermark_ms": 1_422_792_000_000, "clicks_in": 5000, "ts_ms": 1_422_792_090_500}
    shown = dict(zip(*shaping.health_table(row).values(), strict=True))
    assert shown == {"clicks in (last cycle)": "5,000", "clicks per second": "12,345.7",
                     "lag (newest record read)": "7 ms", "latency (log to store)": "1.5 s",
                     "late clicks (last cycle)": "1", "dead letters (last cycle)": "2",
                     "watermark (event time)": "2015-02-01 12:00:00 UTC", "watermark delay": "1 min 30 s",
                     "measured at": "2015-02-01 12:01:30 UTC"}


def test_times_and_durations_read_as_people_write_them() -> None:
    assert shaping.format_utc(0) == "1970-01-01 00:00:00 UTC"
    assert shaping.format_utc(None) == "-"
    assert [shaping.format_duration_ms(ms) for ms in (0, 999, 1000, 59_949, 61_000, 3_600_000 + 120_000,
                                                      400 * 86_400_000 + 3 * 3_600_000, -2500)] == [
        "0 ms", "999 ms", "1.0 s", "59.9 s", "1 min 01 s", "1 h 02 min", "400 d 03 h", "-2.5 s"]


def test_health_columns_are_ascending_with_the_watermark_delay() -> None:
    rows = [{"ts_ms": 20_000, "clicks_in": 1, "clicks_per_s": 2.0, "lag_ms": 3, "latency_ms": 4,
             "late_clicks": 5, "dead_letters": 6, "watermark_ms": 15_000},
            {"ts_ms": 10_000, "clicks_in": 1, "clicks_per_s": 1.0, "lag_ms": 1, "latency_ms": 1,
             "late_clicks": 0, "dead_letters": 0, "watermark_ms": 9_500}]
    cols = shaping.health_columns(rows)
    assert cols["x"] == [10_000, 20_000]
    assert cols["watermark_delay_s"] == [0.5, 5.0]
    assert cols["dead_letters"] == [0, 6] and cols["clicks_per_s"] == [1.0, 2.0]


def test_pipeline_options_newest_first_with_the_default_even_before_it_wrote() -> None:
    rows = [{"pipeline": "a", "topic": "t1", "updated_ms": 10},
            {"pipeline": EVIL, "topic": "t2", "updated_ms": 30},
            {"pipeline": "b", "topic": "t3", "updated_ms": 20}]
    opts = shaping.pipeline_options(rows, "mine")
    assert [v for v, _ in opts] == [EVIL, "b", "a", "mine"]
    assert opts[0][1].startswith(EVIL + " · topic t2")
    assert [v for v, _ in shaping.pipeline_options(rows, "a")] == [EVIL, "b", "a"]


def test_reconcile_columns_biggest_difference_first_in_readable_units() -> None:
    rows = [{"metric": "total", "window_ms": 1000, "window_start_ms": 0, "key": "clicks", "streamed": 10,
             "recounted": 11},
            {"metric": "destination", "window_ms": 60_000, "window_start_ms": 60_000, "key": EVIL,
             "streamed": 50, "recounted": 40}]
    cols = shaping.reconcile_columns(rows)
    assert cols["key"] == [EVIL, "clicks"]
    assert cols["difference"] == [-10, 1]
    assert cols["window"] == ["1 min 00 s", "1.0 s"]
    assert cols["window_start"] == ["1970-01-01 00:01:00 UTC", "1970-01-01 00:00:00 UTC"]
    assert shaping.reconcile_summary("r1", cols, 1000) == ("Reconcile run r1: 2 differences, streamed 60 "
                                                           "vs recounted 51 clicks.")
    assert "no differences" in shaping.reconcile_summary("r2", shaping.reconcile_columns([]), 1000)
    assert "first 2 read" in shaping.reconcile_summary("r1", cols, 2)
    listed = {"run_id": "r1", "started_ms": 0, "windows_compared": 1234, "windows_differing": 2,
              "differences": 2, "dry_run": 0}
    assert shaping.reconcile_summary("r1", cols, 1000, listed) == (
        "Reconcile run r1: 2 differences in 1,234 windows compared, streamed 60 vs recounted 51 clicks.")
    dry = {**listed, "dry_run": 1, "differences": 7}
    assert shaping.reconcile_summary("r1", shaping.reconcile_columns([]), 1000, dry) == (
        "Reconcile run r1 was a dry run: 7 differences in 2 of 1,234 windows, not recorded (run it "
        "without --dry-run to correct and record them).")


def test_reconcile_run_options_newest_first_once_per_run_id() -> None:
    def run(run_id: str, started_ms: int, differences: int, dry_run: int = 0) -> dict[str, object]:
        return {"run_id": run_id, "started_ms": started_ms, "windows_compared": 1500,
                "windows_differing": differences // 2, "differences": differences, "dry_run": dry_run}

    options = shaping.reconcile_run_options([run(EVIL, 120_000, 4, dry_run=1), run("b", 60_000, 1200),
                                             run(EVIL, 0, 9)])
    assert options == [
        ("", "choose a reconcile run…"),
        (EVIL, f"{EVIL} · 1970-01-01 00:02:00 UTC · 4 differences in 2 of 1,500 windows · dry run, "
               "not recorded"),
        ("b", "b · 1970-01-01 00:01:00 UTC · 1,200 differences in 600 of 1,500 windows")]
    assert shaping.reconcile_run_options([]) == [("", "choose a reconcile run…")]


def lag_rows(lags: dict[int, list[int]]) -> list[dict[str, int]]:
    """partition_lag rows, newest first, of cycles at ts 1000, 2000, ... with these lags."""
    n = len(next(iter(lags.values())))
    return [{"ts_ms": 1000 * (i + 1), "partition_id": p, "lag_records": lags[p][i]}
            for i in reversed(range(n)) for p in sorted(lags, reverse=True)]


def test_partition_lag_one_line_per_partition_legend_for_the_most_lagging() -> None:
    rows = lag_rows({0: [5, 1], 1: [9, 7], 2: [0, 7], 3: [3, 30], 4: [2, 0]})
    assert shaping.partition_lag_now(rows) == [(3, 30), (1, 7), (2, 7), (0, 1), (4, 0)]
    lines = shaping.partition_lag_lines(rows, ["red", "blue"], "grey")
    assert lines == {  # the two most lagging in partition order, then the others most lagging first
        "partition": [1, 3, 2, 0, 4],
        "xs": [[1000, 2000]] * 5,
        "ys": [[9, 7], [3, 30], [0, 7], [5, 1], [2, 0]],
        "lag_now": [7, 30, 7, 1, 0],
        "label": ["partition 1", "partition 3", "3 other partitions", "3 other partitions",
                  "3 other partitions"],
        "color": ["red", "blue", "grey", "grey", "grey"],
    }
    points = shaping.partition_lag_points(rows)
    assert points["x"] == [1000] * 5 + [2000] * 5
    assert points["partition"] == [0, 1, 2, 3, 4] * 2
    assert points["lag_records"] == [5, 9, 0, 3, 2, 1, 7, 7, 30, 0]
    assert shaping.partition_lag_lines([], ["red"], "grey") == {k: [] for k in lines}


def test_pipeline_now_table_adds_the_records_not_read() -> None:
    assert shaping.pipeline_now_table(None, []) == shaping.health_table(None)
    table = shaping.pipeline_now_table(None, [(3, 30_000), (1, 7)])
    n = len(shaping.HEALTH_ROWS)
    assert table["metric"][n:] == ["records not read (all partitions)", "records not read, partition 3",
                                   "records not read, partition 1"]
    assert table["value"][n:] == ["30,007", "30,000", "7"]


HOUR = 3_600_000
T0 = 1_422_792_000_000


def test_explorer_series_of_one_hour_spans_that_hour() -> None:
    cols = shaping.series_columns([{"bucket_start_ms": T0, "clicks": 77}], HOUR)
    assert cols == {"x": [T0], "x_end": [T0 + HOUR], "clicks": [77]}
    bounds = shaping.series_bounds(cols["x"], HOUR)
    assert bounds == (T0, T0 + HOUR)
    assert shaping.snap_range(*bounds, bounds, HOUR) == (T0, T0 + HOUR)
    # a slider that collapsed the range (the old day-step bug: start == end) still shows the hour
    assert shaping.snap_range(T0, T0, bounds, HOUR) == (T0, T0 + HOUR)
    assert shaping.range_total(cols["x"], cols["clicks"], T0, T0 + HOUR) == 77
    assert shaping.series_bounds([], HOUR) is None


def test_explorer_range_snaps_to_whole_buckets_inside_the_data() -> None:
    rows = [{"bucket_start_ms": T0 + h * HOUR, "clicks": h + 1} for h in range(24)][::-1]
    cols = shaping.series_columns(rows, HOUR)
    assert cols["x"] == sorted(cols["x"])
    bounds = shaping.series_bounds(cols["x"], HOUR)
    assert bounds == (T0, T0 + 24 * HOUR)
    lo, hi = shaping.snap_range(T0 + 2.5 * HOUR, T0 + 4.2 * HOUR, bounds, HOUR)
    assert (lo, hi) == (T0 + 2 * HOUR, T0 + 5 * HOUR)
    assert shaping.range_total(cols["x"], cols["clicks"], lo, hi) == 3 + 4 + 5
    assert shaping.snap_range(T0 - 99 * HOUR, T0 + 99 * HOUR, bounds, HOUR) == bounds
    assert shaping.snap_range(T0 + 30 * HOUR, T0 + 31 * HOUR, bounds, HOUR) == (T0 + 23 * HOUR,
                                                                              T0 + 24 * HOUR)
    days = shaping.series_bounds([T0, T0 + 86_400_000], 86_400_000)
    assert shaping.snap_range(T0 + 1, T0 + 2, days, 86_400_000) == (T0, T0 + 86_400_000)


def test_flow_chart_sizes_nodes_and_ribbons_by_clicks_and_keeps_titles_as_data() -> None:
    sources = [{"rank": 2, "source": "other-google", "clicks": 100},
               {"rank": 1, "source": EVIL, "clicks": 300}]
    dests = [{"rank": 1, "destination": "Paris", "clicks": 200}]
    nodes, ribbons = shaping.flow_chart("London", sources, dests, top_n=10)
    assert nodes["title"] == [EVIL, "other-google", "Paris", "London"]
    assert nodes["side"] == ["source", "source", "destination", "article"]
    heights = [t - b for t, b in zip(nodes["top"], nodes["bottom"], strict=True)]
    assert heights[0] == pytest.approx(3 * heights[1])  # sized by clicks on one scale
    assert heights[2] == pytest.approx(2 * heights[1])
    assert heights[3] == pytest.approx(heights[0] + heights[1])  # the article: the busier side
    assert nodes["share"][:3] == [0.75, 0.25, 1.0]
    assert nodes["top"][0] > nodes["top"][1]  # rank 1 on top
    assert ribbons["clicks"] == [300, 100, 200]
    for i in range(3):  # each ribbon leaves its node at the node's full height
        xs, ys = ribbons["xs"][i], ribbons["ys"][i]
        outer = [y for x, y in zip(xs, ys, strict=True) if x in (-0.94, 0.94)]
        assert sorted(outer) == pytest.approx([nodes["bottom"][i], nodes["top"][i]])
    long = "A" * 80
    assert shaping.flow_chart(long, [{"rank": 1, "source": long, "clicks": 1}], [], 10)[0]["label"][0] == (
        "A" * (shaping.FLOW_LABEL_CHARS - 1) + "…")
    assert shaping.flow_chart("x", [], [], 10) == ({k: [] for k in nodes}, {k: [] for k in ribbons})


def test_settings_from_bokeh_args_override_env() -> None:
    env = {"CLICKSTREAM_DASHBOARD_PORT": "6000", "CLICKSTREAM_STORE": "cassandra"}
    s = settings_from_argv(["--dashboard-port", "7000", "--cassandra-port", "19042"], env)
    assert (s.dashboard_port, s.store_backend, s.cassandra_port) == (7000, "cassandra", 19042)
    assert s.dashboard_address == "127.0.0.1"


def test_websocket_origins_include_listener_and_extra_hosts() -> None:
    s = Settings(dashboard_address="0.0.0.0", dashboard_allow_websocket_origin=("dash.example:80",))
    origins = websocket_origins(s, 5006)
    assert "0.0.0.0:5006" in origins and "localhost:5006" in origins and "dash.example:80" in origins


def test_dask_link_must_be_an_http_url() -> None:
    assert Settings(dashboard_dask_link="http://127.0.0.1:8787/status").dashboard_dask_link
    with pytest.raises(SettingsError, match="dashboard_dask_link"):
        Settings(dashboard_dask_link="javascript:alert(1)")


def test_plan_append_streams_new_rows_and_resets_on_anything_else() -> None:
    shown = {"x": [1, 1, 2, 2], "p": [0, 1, 0, 1], "v": [5, 6, 7, 8]}
    moved = {"x": [2, 2, 3, 3], "p": [0, 1, 0, 1], "v": [7, 8, 9, 10]}
    update = shaping.plan_append(shown, moved)
    assert update.reset is None and update.stream == {"x": [3, 3], "p": [0, 1], "v": [9, 10]}
    grown = {k: [*v, w] for (k, v), w in zip(shown.items(), (3, 0, 9), strict=True)}
    assert shaping.plan_append(shown, grown).stream == {"x": [3], "p": [0], "v": [9]}
    assert shaping.plan_append(shown, dict(shown)).empty
    changed = {**moved, "v": [7, 99, 9, 10]}  # a shown row rewritten
    assert shaping.plan_append(shown, changed).reset == changed
    shrunk = {k: v[2:] for k, v in shown.items()}  # rows gone, none new
    assert shaping.plan_append(shown, shrunk).reset == shrunk
    elsewhere = {"x": [7], "p": [0], "v": [1]}
    assert shaping.plan_append(shown, elsewhere).reset == elsewhere
    assert shaping.plan_append({"x": [], "p": [], "v": []}, shown).reset == shown
    assert shaping.plan_append(shown, {"x": [], "p": [], "v": []}).reset == {"x": [], "p": [], "v": []}
