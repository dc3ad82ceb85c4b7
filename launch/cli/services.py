"""``clickstream services fetch|up|down|status``: the local Kafka, Cassandra and HDFS (and,
for ``fetch``, the Spark plugins' jars)."""

from __future__ import annotations

import argparse
from typing import Any

from clickstream.settings import Settings, add_settings_arguments
from launch.cli import CliError

HELP = "fetch, start, check or stop local Kafka, Cassandra and HDFS"


def register(sub: Any) -> argparse.ArgumentParser:
    parser = sub.add_parser(
        "services", help=HELP,
        description="Run Kafka (KRaft), Cassandra and HDFS as local JVM processes from their "
                    "Maven Central jars, bound to loopback unless --bind-address says otherwise.")
    parser.add_argument("action", choices=["fetch", "up", "down", "status"])
    parser.add_argument("servers", nargs="*", metavar="SERVER",
                        help="kafka, cassandra and/or hdfs (default: all three); fetch also takes "
                             "comet, Spark's native engine plugin (default: all four)")
    add_settings_arguments(parser, ["general", "services"])
    return parser


def run(settings: Settings, args: argparse.Namespace) -> int:
    from launch import services  # lazy: kafka, pyarrow and the Cassandra driver, which `--help` skips

    unknown = [name for name in args.servers if name not in services.FETCH_NAMES]
    if unknown:
        raise CliError(f"services {args.action}: unknown server {', '.join(unknown)} (choose from "
                       f"{', '.join(services.FETCH_NAMES)})")
    plugins = [name for name in args.servers if name in services.SPARK_PLUGIN_NAMES]
    if plugins and args.action != "fetch":
        raise CliError(f"services {args.action}: {', '.join(plugins)} is a Spark plugin, not a server; "
                       "only `fetch` takes it")
    names = args.servers or list(services.FETCH_NAMES if args.action == "fetch" else services.SERVER_NAMES)
    try:
        if args.action == "fetch":
            services.fetch(settings, names)
            for name in names:
                print(f"fetch {name}: {services.lib_dir(settings, name)}")
            return 0
        if args.action == "down":
            services.down(settings, names)
            return 0
        report = services.up(settings, names) if args.action == "up" else services.status(settings, names)
    except services.ServiceError as exc:
        raise CliError(str(exc)) from None
    for st in report:
        state = "healthy" if st.healthy else "DOWN"
        pid = f"pid {st.pid}" if st.pid else "not started by us"
        print(f"{st.label:<12} {st.address:<26} {state:<8} {pid:<18} {st.detail}")
    return 0 if all(st.healthy for st in report) else 1
