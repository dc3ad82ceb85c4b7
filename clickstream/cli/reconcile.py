"""``clickstream reconcile``: recount the streaming windows from the archive and correct the store.

Runs spark_jobs/reconcile.py locally. ``--print-submit`` prints the equivalent spark-submit
command instead (after building the --py-files zip, as ``python -m spark_jobs.package``).
"""

from __future__ import annotations

import argparse
import shlex
import sys
from typing import Any

from clickstream.cli.main import CliError
from clickstream.settings import Settings


def register(sub: Any) -> argparse.ArgumentParser:
    from spark_jobs import reconcile as job
    from spark_jobs.entry import add_common_arguments

    parser = sub.add_parser("reconcile",
                            help="recount the streaming windows from the archive and correct the store",
                            description=job.__doc__.split("\n\n")[0])
    add_common_arguments(parser, with_settings=True)
    job.add_arguments(parser)
    parser.add_argument("--print-submit", action="store_true",
                        help="build dist/clickstream-jobs.zip and print the spark-submit command")
    return parser


def run(settings: Settings, args: argparse.Namespace) -> int:
    from spark_jobs import reconcile as job
    from spark_jobs.entry import submit_command
    from spark_jobs.package import DEFAULT_OUT, build_zip
    from spark_jobs.source import JobInputError

    if args.print_submit:
        zip_path = build_zip(DEFAULT_OUT)
        passed = [a for a in sys.argv[2:] if a != "--print-submit"]
        print(shlex.join(submit_command(settings, "reconcile", passed, str(zip_path))))
        return 0
    try:
        return job.run(settings, args)
    except (JobInputError, ValueError) as exc:
        raise CliError(str(exc)) from None
