"""``clickstream dashboard``'s flags reach Settings."""

from __future__ import annotations

from clickstream.settings import Settings
from launch.cli.main import build_parser


def test_dashboard_flags_build_settings() -> None:
    args = build_parser().parse_args(["dashboard", "--dashboard-address", "0.0.0.0", "--dashboard-port", "0",
                                      "--dashboard-allow-websocket-origin", "a.example:80,b.example:80"])
    s = Settings.from_args(args, environ={})
    assert (s.dashboard_address, s.dashboard_port) == ("0.0.0.0", 0)
    assert s.dashboard_allow_websocket_origin == ("a.example:80", "b.example:80")
    assert Settings.from_args(build_parser().parse_args(["dashboard"]), environ={}).dashboard_address \
        == "127.0.0.1"
