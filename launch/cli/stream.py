"""``clickstream stream``: run the streaming pipeline (Kafka -> Dask -> store + archive).

Runs until Ctrl-C (a clean stop: every open window is finalized and written, then the
consumed offsets are committed) or until ``--until-idle-s`` / ``--max-clicks``.
``--metrics-port N`` serves the pipeline's progress as Prometheus metrics
(``launch.metrics``; names in pipeline/README.md).
"""

from __future__ import annotations

import argparse
import logging
import signal
import sys
import urllib.request
from typing import Any

from clickstream.settings import Settings, add_settings_arguments
from clickstream.store import StoreError
from launch.cli import CliError

HELP = "run the streaming pipeline (windows into the store, clicks to the archive)"


def register(sub: Any) -> argparse.ArgumentParser:
    parser = sub.add_parser(
        "stream", help=HELP,
        description="Consume the click topic with streamz on Dask, write exact event-time window "
                    "aggregates to the store and raw clicks to the Parquet archive. Resumes at the "
                    "consumer group's committed offsets. Ctrl-C stops cleanly (flush, then commit).")
    parser.add_argument("--until-idle-s", type=float, default=None,
                        help="stop cleanly after this many seconds without new records")
    parser.add_argument("--max-clicks", type=int, default=None,
                        help="stop cleanly after about this many clicks (checked per cycle)")
    add_settings_arguments(parser, ["general", "kafka", "store", "archive", "compute", "stream", "metrics"])
    return parser


def run(settings: Settings, args: argparse.Namespace) -> int:
    # Lazy: the pipeline imports dask, distributed and streamz (about 3 s), which `--help` skips.
    from pipeline import Pipeline, PipelineError
    from pipeline.sources.kafka import SourceError

    if settings.log_level == "INFO":
        for chatty in ("kafka", "distributed"):  # per-connection and per-worker chatter
            logging.getLogger(chatty).setLevel(logging.WARNING)
    if not settings.kafka_bootstrap:
        raise CliError("no Kafka bootstrap servers: use --stack local or --kafka-bootstrap-servers "
                       "(the embedded stack's in-process topic is reachable only from Python: "
                       "pipeline.Pipeline(settings, memory_topic=...))")
    try:
        pipe = Pipeline(settings)
    except (PipelineError, SourceError, StoreError) as exc:
        raise CliError(str(exc)) from None
    print(f"stream: Dask scheduler {pipe.client.scheduler.address}, "
          f"{len(pipe.client.scheduler_info(n_workers=-1)['workers'])} workers", flush=True)
    link = dashboard_link(pipe.client)
    if link:
        print(f"stream: Dask dashboard at {link}", flush=True)
    metrics = None
    previous = signal.signal(signal.SIGINT, lambda *_: pipe.stop())
    try:
        metrics = _serve_metrics(settings, pipe)
        summary = pipe.run(until_idle_s=args.until_idle_s, max_clicks=args.max_clicks)
    except (PipelineError, SourceError, StoreError) as exc:
        raise CliError(str(exc)) from None
    finally:
        signal.signal(signal.SIGINT, previous)
        if metrics is not None:
            metrics.close()
        pipe.close()
    print(f"stream: {summary.clicks} clicks ({summary.late_clicks} late, {summary.dead_letters} dead "
          f"letters) in {summary.elapsed_s:.1f} s; committed {summary.committed}")
    return 0


def dashboard_link(client: Any) -> str:
    """The Dask dashboard's URL, or '' when the scheduler serves none: its HTTP server (health,
    metrics) runs and is reported even then (``dask scheduler --no-dashboard``,
    ``dask_dashboard_address`` empty), so the page itself is asked for."""
    try:
        link = client.dashboard_link or ""
    except KeyError:  # a scheduler without an HTTP server
        return ""
    try:
        with urllib.request.urlopen(link, timeout=10) as page:
            return link if page.status == 200 else ""
    except (OSError, ValueError):  # 404 without the dashboard, or unreachable from here
        return ""


def _serve_metrics(settings: Settings, pipe: Any) -> Any:
    """The Prometheus endpoint over ``pipe``'s public progress (None when metrics_port is 0)."""
    if not settings.metrics_port:
        return None
    from launch.metrics import StreamCollector, serve_metrics  # lazy: prometheus_client

    try:
        server = serve_metrics(settings, StreamCollector(pipe.progress, pipe.status, pipe.source_kind()))
    except OSError as exc:
        raise CliError(f"metrics endpoint {settings.metrics_listen_address}:{settings.metrics_port}: "
                       f"{exc}") from None
    print(f"stream: metrics at {server.url}", file=sys.stderr, flush=True)
    return server
