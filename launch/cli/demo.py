"""``clickstream demo``: the whole platform in one command (see ``launch/demo.py``).

Replays a synthetic month (or ``--dump FILE``) at ``--rate`` clicks/s through the
in-process topic (or Kafka with ``--stack local``), streams it on a Dask LocalCluster into
the store and the archive, serves the dashboard, then runs the Spark batch and PageRank
jobs on the archive and prints a final summary read back from the store.

Without ``--clicks`` / ``--duration`` it plays a default month, then keeps the dashboard
up until Ctrl-C. At the end it prints the command that reopens this run's dashboard
later (``clickstream dashboard --run <run id>``, or ``--run latest``). Ctrl-C stops
cleanly at any time (the pipeline finalizes, flushes and commits; running Spark jobs are
cancelled). Exit status 1 if the clicks counted in the
store differ from the clicks generated.
"""

from __future__ import annotations

import argparse
import logging
import signal
import sys
from pathlib import Path
from typing import Any

from clickstream.settings import Settings, add_settings_arguments
from clickstream.store import StoreError
from launch.cli import CliError

HELP = "replay, stream, batch jobs, PageRank and the dashboard in one command"


def register(sub: Any) -> argparse.ArgumentParser:
    from producer.replay import DEFAULT_CLICKS, DEFAULT_RATE_PER_S  # lazy: numpy and pyarrow

    parser = sub.add_parser(
        "demo", help=HELP,
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    run = parser.add_argument_group("run")
    run.add_argument("--clicks", type=int, default=None,
                     help=f"replay exactly this many clicks, then finish (default: "
                          f"{DEFAULT_CLICKS:,} and keep the dashboard up until Ctrl-C)")
    run.add_argument("--duration", type=float, default=None, dest="duration_s", metavar="S",
                     help="replay for at most S seconds, then finish (drain, jobs, summary)")
    run.add_argument("--rate", type=float, default=DEFAULT_RATE_PER_S, dest="rate_per_s",
                     help=f"clicks per second of wall time (default {DEFAULT_RATE_PER_S:,.0f}; "
                          "0: as fast as possible)")
    run.add_argument("--run-dir", type=Path, default=None,
                     help="folder of this run (default: a fresh <work_dir>/demo/<run id>)")
    run.add_argument("--status-every-s", type=float, default=2.0,
                     help="seconds between status lines (default 2)")
    run.add_argument("--no-jobs", action="store_true", help="skip the Spark batch and PageRank jobs")
    src = parser.add_argument_group("input")
    src.add_argument("--dump", type=Path, help="replay this dump (2015 or 2017+ layout, .tsv[.gz])")
    src.add_argument("--layout", default="auto", choices=("auto", "2015", "2017", "csv"),
                     help="dump layout (default: detected)")
    src.add_argument("--synthetic-rows", type=int, default=None,
                     help="rows of the synthetic month (default: sized to the clicks)")
    src.add_argument("--seed", type=int, default=0, help="random seed (same seed, same clicks)")
    src.add_argument("--span-s", type=float, default=None,
                     help="event-time span of the replayed clicks (default: 10 event seconds "
                          "per wall second at the rate)")
    src.add_argument("--spike", metavar="AT_S:DURATION_S:CLICKS[:TITLE,...]", default=None,
                     help="extra clicks on a few titles (default: 3 titles a third into the span of a "
                          "synthetic month; none with --dump)")
    src.add_argument("--no-spike", action="store_true", help="no spike")
    src.add_argument("--jitter-ms", type=int, default=500, help="bounded out-of-order delay (default 500)")
    add_settings_arguments(parser, ["general", "kafka", "store", "archive", "compute", "stream",
                                    "dashboard"])
    return parser


def run(settings: Settings, args: argparse.Namespace) -> int:
    from launch.demo import Demo, DemoError, DemoOptions, run_demo

    if settings.log_level == "INFO":
        import distributed  # noqa: F401  (its import sets its loggers' levels: set ours after)

        for name in ("kafka", "distributed", "bokeh", "tornado", "py4j", "spark_jobs"):
            logging.getLogger(name).setLevel(logging.WARNING)
        logging.getLogger("cassandra").setLevel(logging.ERROR)  # per-statement server warnings
        logging.getLogger("pipeline").setLevel(logging.WARNING)  # per-cycle lines; we print status
    for flag, value in (("--clicks", args.clicks), ("--duration", args.duration_s)):
        if value is not None and value <= 0:
            raise CliError(f"{flag}: {value} must be positive")
    if args.rate_per_s < 0:
        raise CliError(f"--rate: {args.rate_per_s} must be >= 0 (0: as fast as possible)")
    if args.spike and args.no_spike:
        raise CliError("give --spike or --no-spike, not both")
    options = DemoOptions(
        clicks=args.clicks, duration_s=args.duration_s, rate_per_s=args.rate_per_s, dump=args.dump,
        layout=args.layout, synthetic_rows=args.synthetic_rows, seed=args.seed, span_s=args.span_s,
        spike="" if args.no_spike else args.spike, jitter_ms=args.jitter_ms, run_dir=args.run_dir,
        status_every_s=args.status_every_s, run_jobs=not args.no_jobs,
        wait_at_end=args.clicks is None and args.duration_s is None)

    previous = signal.getsignal(signal.SIGINT)

    def wire(demo: Demo) -> None:
        def on_sigint(signum: int, frame: Any) -> None:
            print("demo: stopping (Ctrl-C again to abort)", file=sys.stderr, flush=True)
            signal.signal(signal.SIGINT, signal.default_int_handler)
            demo.stop()
        signal.signal(signal.SIGINT, on_sigint)

    try:
        summary = run_demo(settings, options, sys.stdout, on_start=wire)
    except (DemoError, StoreError) as exc:
        raise CliError(str(exc)) from None
    finally:
        signal.signal(signal.SIGINT, previous)
    if summary.stopped_early:
        return 0
    if summary.clicks_counted != summary.clicks_generated:
        print(f"demo: error: the store counts {summary.clicks_counted:,} clicks, "
              f"{summary.clicks_generated:,} were generated", file=sys.stderr)
        return 1
    return 0
