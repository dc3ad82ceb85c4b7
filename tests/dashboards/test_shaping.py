"""Unit tests of the dashboard's pure parts: row shaping, update plans, settings, escaping."""

from __future__ import annotations

from clickstream.settings import Settings
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


def test_health_table_has_fixed_rows_and_blank_values_without_metrics() -> None:
    empty = shaping.health_table(None)
    assert empty["metric"] == list(shaping.HEALTH_FIELDS)
    assert set(empty["value"]) == {""}
    row = {"clicks_per_s": 12.345, "lag_ms": 7, "latency_ms": 3, "late_clicks": 1, "dead_letters": 2,
           "watermark_ms": 99, "clicks_in": 5}
    assert shaping.health_table(row)["value"] == ["12.3", "7", "3", "1", "2", "99", "5"]


def test_settings_from_bokeh_args_override_env() -> None:
    env = {"CLICKSTREAM_DASHBOARD_PORT": "6000", "CLICKSTREAM_STORE": "cassandra"}
    s = settings_from_argv(["--dashboard-port", "7000", "--cassandra-port", "19042"], env)
    assert (s.dashboard_port, s.store_backend, s.cassandra_port) == (7000, "cassandra", 19042)
    assert s.dashboard_address == "127.0.0.1"


def test_websocket_origins_include_listener_and_extra_hosts() -> None:
    s = Settings(dashboard_address="0.0.0.0", dashboard_allow_websocket_origin=("dash.example:80",))
    origins = websocket_origins(s, 5006)
    assert "0.0.0.0:5006" in origins and "localhost:5006" in origins and "dash.example:80" in origins
