"""What ``clickstream batch``, ``pagerank`` and ``reconcile`` share: one Spark job each.

Each runs ``spark_jobs/<name>.py`` in this process (Spark ``settings.spark_master`` unless
``spark-defaults.conf`` or ``MASTER`` names one; see ``spark_jobs.session``), or with
``--print-submit`` builds the ``--py-files`` zip (as ``python -m spark_jobs.package``) and
prints the equivalent spark-submit command instead. While a job runs, a line every few
seconds tells its Spark stages' progress (``launch.progress``); the job's own exit
status is the command's (reconcile 3 on differences, pagerank 4 when not converged).
"""

from __future__ import annotations

import argparse
import importlib
import shlex
import sys
from typing import Any

from clickstream.settings import Settings
from launch.cli import CliError


def register_job(sub: Any, name: str, help: str) -> argparse.ArgumentParser:
    # Lazy (called only for the subcommand on the command line): the job modules import
    # numpy, scipy and pyarrow, which `clickstream --help` skips.
    from spark_jobs.entry import add_common_arguments

    job = importlib.import_module(f"spark_jobs.{name}")
    parser = sub.add_parser(name, help=help, description=(job.__doc__ or help).split("\n\n")[0])
    add_common_arguments(parser, with_settings=True)
    job.add_arguments(parser)
    parser.add_argument("--print-submit", action="store_true",
                        help="build dist/clickstream-jobs.zip and print the spark-submit command")
    parser.add_argument("--no-progress", action="store_true",
                        help="no Spark stage progress lines while the job runs")
    return parser


def run_job(name: str, settings: Settings, args: argparse.Namespace) -> int:
    from launch.progress import SparkProgress
    from spark_jobs.entry import submit_command, where_it_ran
    from spark_jobs.package import DEFAULT_OUT, build_zip
    from spark_jobs.source import JobInputError

    if args.print_submit:
        zip_path = build_zip(DEFAULT_OUT)
        passed = [a for a in sys.argv[2:] if a not in ("--print-submit", "--no-progress")]
        print(shlex.join(submit_command(settings, name, passed, str(zip_path))))
        return 0
    job = importlib.import_module(f"spark_jobs.{name}")
    progress = None if args.no_progress else SparkProgress(sys.stderr, label=name).start()
    try:
        status = int(job.run(settings, args))
    except (JobInputError, ValueError) as exc:
        raise CliError(str(exc)) from None
    finally:
        if progress is not None:
            progress.stop()
    print(f"{name}: {where_it_ran()}")
    return status
