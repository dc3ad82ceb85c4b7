"""``clickstream dashboard``: serve the Bokeh live dashboard until interrupted."""

from __future__ import annotations

import argparse
from typing import Any

from clickstream.settings import Settings, add_settings_arguments
from launch.cli import CliError

HELP = "serve the live dashboard (Bokeh) over the store"


def register(sub: Any) -> argparse.ArgumentParser:
    parser = sub.add_parser(
        "dashboard", help=HELP,
        description="Serve the Live, Batch and Explorer pages over the store the pipeline and the "
                    "Spark jobs write. Binds loopback unless --dashboard-address says otherwise; "
                    "the same app runs under `bokeh serve dashboards/clickstream_app --args ...`.")
    parser.add_argument("--run", metavar="latest|RUN_ID|FOLDER", default=None,
                        help="show a demo run's store and pipeline: 'latest' (the newest under "
                             "<work_dir>/demo/), a run id, or a run folder; works after the demo ended")
    add_settings_arguments(parser, ["general", "store", "dashboard"])
    return parser


def run(settings: Settings, args: argparse.Namespace) -> int:
    try:  # lazy: bokeh and tornado (about 2 s, an optional extra), which `--help` skips
        from dashboards.server import make_server, url_of
    except ImportError as exc:
        raise CliError(f"the dashboard needs the 'dashboard' extra (bokeh, tornado): {exc}") from None
    if args.run is not None:
        from launch.runs import RunNotFound, find_run, settings_for_run

        try:
            run_dir = find_run(settings, args.run)
        except RunNotFound as exc:
            raise CliError(str(exc)) from None
        settings = settings_for_run(settings, run_dir)
        print(f"dashboard: demo run {run_dir}", flush=True)
    try:
        server = make_server(settings)
    except OSError as exc:
        raise CliError(f"cannot listen on {settings.dashboard_address}:{settings.dashboard_port}: "
                       f"{exc}") from None
    server.start()
    store = (settings.embedded_store_file if settings.store_backend == "embedded" else
             f"Cassandra keyspace {settings.cassandra_keyspace}")
    print(f"dashboard: serving {url_of(server)} (store: {store}, pipeline "
          f"{settings.dashboard_pipeline or settings.pipeline_id}); Ctrl-C stops it", flush=True)
    try:
        server.io_loop.start()
    finally:
        server.stop()
    return 0
