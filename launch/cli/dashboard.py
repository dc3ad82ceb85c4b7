"""``clickstream dashboard``: serve the Bokeh live dashboard until interrupted."""

from __future__ import annotations

import argparse
from typing import Any

from clickstream.settings import Settings, add_settings_arguments
from launch.cli import CliError


def register(sub: Any) -> argparse.ArgumentParser:
    parser = sub.add_parser(
        "dashboard", help="serve the live dashboard (Bokeh) over the store",
        description="Serve the Live, Batch and Explorer pages over the store the pipeline and the "
                    "Spark jobs write. Binds loopback unless --dashboard-address says otherwise; "
                    "the same app runs under `bokeh serve dashboards/clickstream_app --args ...`.")
    add_settings_arguments(parser, ["general", "store", "dashboard"])
    return parser


def run(settings: Settings, args: argparse.Namespace) -> int:
    try:  # lazy: bokeh and tornado (about 2 s, an optional extra), which `--help` skips
        from dashboards.server import make_server, url_of
    except ImportError as exc:
        raise CliError(f"the dashboard needs the 'dashboard' extra (bokeh, tornado): {exc}") from None
    try:
        server = make_server(settings)
    except OSError as exc:
        raise CliError(f"cannot listen on {settings.dashboard_address}:{settings.dashboard_port}: "
                       f"{exc}") from None
    server.start()
    print(f"dashboard: serving {url_of(server)} (store: {settings.store_backend}); Ctrl-C stops it",
          flush=True)
    try:
        server.io_loop.start()
    finally:
        server.stop()
    return 0
