"""What every job's spark-submit entry point shares: arguments, settings, the session.

``spark-submit spark_jobs/<job>.py <archive URL> [--from ..] [--to ..] [job options]
[settings flags]``: the settings come from those flags over ``CLICKSTREAM_*`` env (built
here, once, as at every entry point). The ``clickstream <job>`` subcommands add the same
arguments to their parsers and call the job's ``run`` with the CLI's settings.
"""

from __future__ import annotations

import argparse
import logging
import os
import sys
from collections.abc import Callable, Sequence
from pathlib import Path

from clickstream.settings import Settings, SettingsError, add_settings_arguments
from spark_jobs.source import HourRange, JobInputError

SETTINGS_GROUPS = ("general", "store", "archive", "compute")


def add_common_arguments(parser: argparse.ArgumentParser, *, with_settings: bool) -> None:
    parser.add_argument("archive", nargs="?", default=None,
                        help="archive URL (file:///abs/path or hdfs://host:port/path); "
                             "default: the archive setting")
    parser.add_argument("--from", dest="range_from", default=None, metavar="YYYY-MM-DD[THH]",
                        help="first archive hour to read (inclusive; a bare date: its hour 00)")
    parser.add_argument("--to", dest="range_to", default=None, metavar="YYYY-MM-DD[THH]",
                        help="last archive hour to read (inclusive; a bare date: its hour 23)")
    if with_settings:
        add_settings_arguments(parser, SETTINGS_GROUPS)


def archive_and_range(settings: Settings, args: argparse.Namespace) -> tuple[str, HourRange]:
    return (args.archive or settings.archive), HourRange.parse(args.range_from, args.range_to)


def submit_main(job: str, add_arguments: Callable[[argparse.ArgumentParser], None],
                run: Callable[[Settings, argparse.Namespace], int],
                argv: Sequence[str] | None = None) -> int:
    """The ``__main__`` of a job file under spark-submit."""
    parser = argparse.ArgumentParser(prog=f"spark-submit spark_jobs/{job}.py")
    add_common_arguments(parser, with_settings=True)
    add_arguments(parser)
    args = parser.parse_args(argv)
    try:
        settings = Settings.from_args(args, os.environ)
    except SettingsError as exc:
        print(f"{job}: error: {exc}", file=sys.stderr)
        return 2
    if "PYSPARK_GATEWAY_PORT" in os.environ:
        # spark-submit started the driver's JVM before Python: its command line decides
        # whether Comet runs (submit_command); a session can no longer load the plugin. (It
        # decides the master and the driver's address too: spark_jobs.session.launcher_conf.)
        settings = settings.replace(spark_engine="spark")
    logging.basicConfig(level=settings.log_level,
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    try:
        status = run(settings, args)
    except JobInputError as exc:
        print(f"{job}: error: {exc}", file=sys.stderr)
        return 1
    print(f"{job}: {where_it_ran()}")
    return status


def where_it_ran() -> str:
    """The master and application id of the process's SparkContext (what the master's UI lists)."""
    from pyspark import SparkContext

    sc = SparkContext._active_spark_context
    if sc is None:
        return "no Spark session"
    return (f"ran on master {sc.master} as application {sc.applicationId} "
            f"(driver {sc.getConf().get('spark.driver.host')})")


def submit_command(settings: Settings, job: str, job_args: Sequence[str], py_files_zip: str) -> list[str]:
    """The spark-submit command line that runs ``job`` on ``settings.spark_master``, on Comet
    when ``settings.spark_engine`` says so and its jar is fetched."""
    from spark_jobs.session import CASSANDRA_CONNECTOR, COMET_CONF, engine_jar

    job_file = Path(__file__).resolve().parent / f"{job}.py"
    command = ["spark-submit", "--master", settings.spark_master, "--py-files", py_files_zip]
    comet = engine_jar(settings)
    if comet is not None:
        command += ["--jars", str(comet), "--driver-class-path", str(comet),
                    "--conf", f"spark.executor.extraClassPath={comet}"]
        for key, value in COMET_CONF.items():
            command += ["--conf", f"{key}={value}"]
    if settings.store_backend == "cassandra":
        command += ["--packages", CASSANDRA_CONNECTOR]
    return [*command, str(job_file), *job_args]
