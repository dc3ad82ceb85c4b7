"""``clickstream produce``: replay a clickstream dump (or a synthetic month) as click events.

Reads ``--dump FILE`` (2015 or 2017+ layout, plain or .gz, or the CSV derivative) or
generates ``--synthetic-rows N`` rows, expands rows into clicks in event-time order
(``producer.expand``) and sends them to Kafka (``--stack local`` or
``--kafka-bootstrap-servers``; without either it is an error). ``--dry-run`` replays into
a throwaway in-process topic instead and reports what would have been sent.
``--generate-only OUT`` writes a synthetic dump file and stops.

Progress: the bar (or a log line every 10 s when stderr is not a terminal) has a total
whenever it can be known: ``--limit``, a synthetic month (counted first, without building
its rows) or a dump (counted in a first pass over the file, with a line every 2 s while
it reads; ``--no-progress`` skips that pass). ``--metrics-port N`` serves the replay's
progress as Prometheus metrics (``clickstream_produce_*``, see producer/README.md).
"""

from __future__ import annotations

import argparse
import logging
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Any

from clickstream.settings import Settings, add_settings_arguments
from clickstream.windows import DEFAULT_MONTH
from launch.cli import CliError

if TYPE_CHECKING:
    from producer.replay import Replay
    from producer.sender import Progress, SendSummary

log = logging.getLogger(__name__)

HELP = "replay a clickstream dump (or a synthetic month) into Kafka"


def register(sub: Any) -> argparse.ArgumentParser:
    parser = sub.add_parser(
        "produce", help=HELP,
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    src = parser.add_argument_group("input")
    src.add_argument("--dump", type=Path, help="dump file (.tsv or .tsv.gz; 2015 or 2017+ layout)")
    src.add_argument("--layout", default="auto", choices=("auto", "2015", "2017", "csv"),
                     help="dump layout (default: detected from the first line)")
    src.add_argument("--strict", action="store_true", help="stop at the first malformed line")
    src.add_argument("--synthetic-rows", type=int, help="generate this many synthetic dump rows instead")
    src.add_argument("--synthetic-layout", default="2017", choices=("2015", "2017"),
                     help="layout of generated dumps (default 2017)")
    src.add_argument("--head-share", type=float, default=0.6,
                     help="share of all clicks on the synthetic head pair other-empty -> Main_Page")
    src.add_argument("--gzip", action="store_true", help="gzip the file written by --generate-only")
    src.add_argument("--generate-only", type=Path, metavar="OUT",
                     help="write a synthetic dump (--synthetic-rows) to OUT and exit")
    ex = parser.add_argument_group("expansion")
    ex.add_argument("--month", help="YYYY-MM the clicks are spread over (default: from the dump's "
                                    f"file name, else {DEFAULT_MONTH})")
    ex.add_argument("--seed", type=int, default=0, help="random seed (same seed, same clicks)")
    ex.add_argument("--jitter-ms", type=int, default=0, help="bounded out-of-order delay of events")
    ex.add_argument("--fraction", type=float, default=1.0, help="keep each click with this probability")
    ex.add_argument("--limit", type=int, help="stop after this many clicks (the earliest ones)")
    ex.add_argument("--span-s", type=float, help="squeeze the month into this many seconds of event time")
    ex.add_argument("--spike", metavar="AT_S:DURATION_S:CLICKS[:TITLE,...]",
                    help="extra clicks on a few titles (picked from the dump if none given) in a "
                         "short window, seconds from the span's start")
    out = parser.add_argument_group("sending")
    out.add_argument("--rate", type=float, dest="rate_per_s", help="clicks per second (wall time)")
    out.add_argument("--speedup", type=float, help="event time / wall time (e.g. 60: a minute per second)")
    out.add_argument("--clicks-per-record", type=int, default=1,
                     help="clicks of one destination per Kafka record (default 1)")
    out.add_argument("--batch-wait-ms", type=int, default=1000,
                     help="event time a batch record may stay open (default 1000)")
    out.add_argument("--no-progress", action="store_true",
                     help="no progress bar or progress log lines (and no counting first pass over a dump)")
    out.add_argument("--dry-run", action="store_true",
                     help="replay into a throwaway in-process topic instead of Kafka and report what "
                          "would have been sent")
    add_settings_arguments(parser, ["general", "kafka", "metrics"])
    return parser


def run(settings: Settings, args: argparse.Namespace) -> int:
    # Lazy: the producer imports numpy, pyarrow and kafka, which `--help` skips.
    from kafka.errors import KafkaError

    from launch.progress import ScanLines
    from producer.expand import Spike
    from producer.readers import DumpFormatError
    from producer.replay import ReplayRequest, plan_replay

    if settings.log_level != "DEBUG":
        logging.getLogger("kafka").setLevel(logging.WARNING)  # its INFO is per connection
    if args.generate_only is not None:
        return _generate_only(args)
    if not settings.kafka_bootstrap and not args.dry_run:
        raise CliError("no Kafka bootstrap servers: use --stack local or --kafka-bootstrap-servers "
                       "(or --dry-run to replay into a throwaway in-process topic)")
    try:
        request = ReplayRequest(
            dump=args.dump, layout=args.layout, strict=args.strict, synthetic_rows=args.synthetic_rows,
            synthetic_layout=args.synthetic_layout, head_share=args.head_share, seed=args.seed,
            month=args.month, jitter_ms=args.jitter_ms, fraction=args.fraction, limit=args.limit,
            span_s=args.span_s, spike=Spike.parse(args.spike) if args.spike else None)
        count_first = not args.no_progress and args.limit is None
        replay = plan_replay(request, count_first=count_first, on_scan=ScanLines(sys.stderr, "produce"))
        summary, where = _send(replay, settings, args)
    except (DumpFormatError, ValueError, RuntimeError) as exc:
        raise CliError(str(exc)) from None
    except KafkaError as exc:
        raise CliError(f"Kafka at {settings.kafka_bootstrap}: {exc!r}") from None
    if args.dump is not None:
        report = replay.report
        print(f"produce: read {report.rows:,} rows of {args.dump} ({report.layout} layout), "
              f"{report.malformed:,} malformed lines skipped")
        for name, line, reason in report.samples:
            print(f"  {name}:{line}: {reason}")
    print(f"produce: month {replay.month}; {summary.line()} to {where}")
    for error in summary.errors:
        print(f"  {error}")
    return 1 if summary.failed_clicks else 0


def _generate_only(args: argparse.Namespace) -> int:
    from producer.synthetic import generate_dump

    if not args.synthetic_rows:
        raise CliError("--generate-only needs --synthetic-rows N")
    path = generate_dump(args.generate_only, args.synthetic_rows, seed=args.seed,
                         layout=args.synthetic_layout, gzip=args.gzip, head_share=args.head_share)
    print(f"produce: wrote {args.synthetic_rows:,} synthetic rows ({args.synthetic_layout} layout) "
          f"to {path}")
    return 0


def _send(replay: Replay, settings: Settings, args: argparse.Namespace) -> tuple[SendSummary, str]:
    """Send the clicks to Kafka, or with ``--dry-run`` to a throwaway in-process topic; the
    metrics endpoint (``metrics_port``) serves the progress meanwhile."""
    from clickstream.memory_topic import MemoryTopic
    from producer.sender import Progress, send_to_kafka, send_to_memory

    if args.dry_run:
        where = (f"a throwaway in-process topic {settings.topic} (--dry-run: nothing was sent to Kafka; "
                 "the records were dropped at exit)")
    else:
        where = f"Kafka topic {settings.topic} at {settings.kafka_bootstrap}"
    progress = Progress(False if args.no_progress else "auto", replay.planned,
                        label="produce (dry run)" if args.dry_run else "produce")
    metrics = _serve_metrics(settings, progress, where)
    try:
        if args.dry_run:
            topic = MemoryTopic(settings.topic, settings.topic_partitions)
            summary = send_to_memory(replay.clicks, topic, clicks_per_record=args.clicks_per_record,
                                     rate_per_s=args.rate_per_s, speedup=args.speedup, progress=progress,
                                     batch_wait_ms=args.batch_wait_ms)
        else:
            summary = send_to_kafka(replay.clicks, settings, rate_per_s=args.rate_per_s,
                                    speedup=args.speedup, clicks_per_record=args.clicks_per_record,
                                    progress=progress, batch_wait_ms=args.batch_wait_ms)
    finally:
        if metrics is not None:
            metrics.close()
    return summary, where


def _serve_metrics(settings: Settings, progress: Progress, where: str) -> Any:
    if not settings.metrics_port:
        return None
    from launch.metrics import ProduceCollector, serve_metrics  # lazy: prometheus_client

    try:
        server = serve_metrics(settings, ProduceCollector(progress, where))
    except OSError as exc:
        raise CliError(f"metrics endpoint {settings.metrics_listen_address}:{settings.metrics_port}: "
                       f"{exc}") from None
    print(f"produce: metrics at {server.url}", file=sys.stderr, flush=True)
    return server
