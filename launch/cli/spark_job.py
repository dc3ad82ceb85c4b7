"""What ``clickstream batch``, ``pagerank`` and ``reconcile`` share: one Spark job each.

Each runs ``spark_jobs/<name>.py`` in this process (Spark ``settings.spark_master`` unless
``spark-defaults.conf`` or ``MASTER`` names one; see ``spark_jobs.session``), or with
``--print-submit`` builds the ``--py-files`` zip (as ``python -m spark_jobs.package``) and
prints the equivalent spark-submit command instead.
"""

from __future__ import annotations

import argparse
import importlib
import shlex
import sys
from typing import Any

from clickstream.settings import Settings
from launch.cli import CliError
from spark_jobs.entry import add_common_arguments, submit_command, where_it_ran
from spark_jobs.package import DEFAULT_OUT, build_zip
from spark_jobs.source import JobInputError


def register_job(sub: Any, name: str, help: str) -> argparse.ArgumentParser:
    job = importlib.import_module(f"spark_jobs.{name}")
    parser = sub.add_parser(name, help=help, description=(job.__doc__ or help).split("\n\n")[0])
    add_common_arguments(parser, with_settings=True)
    job.add_arguments(parser)
    parser.add_argument("--print-submit", action="store_true",
                        help="build dist/clickstream-jobs.zip and print the spark-submit command")
    return parser


def run_job(name: str, settings: Settings, args: argparse.Namespace) -> int:
    if args.print_submit:
        zip_path = build_zip(DEFAULT_OUT)
        passed = [a for a in sys.argv[2:] if a != "--print-submit"]
        print(shlex.join(submit_command(settings, name, passed, str(zip_path))))
        return 0
    job = importlib.import_module(f"spark_jobs.{name}")
    try:
        status = int(job.run(settings, args))
    except (JobInputError, ValueError) as exc:
        raise CliError(str(exc)) from None
    print(f"{name}: {where_it_ran()}")
    return status
