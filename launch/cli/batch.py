"""``clickstream batch``: compute the batch tables from the archive with Spark.

Shared with the other Spark job commands: launch.cli.spark_job.
"""

from __future__ import annotations

import argparse
from typing import Any

from clickstream.settings import Settings
from launch.cli.spark_job import register_job, run_job

HELP = "compute the batch tables from the archive with Spark"


def register(sub: Any) -> argparse.ArgumentParser:
    return register_job(sub, "batch", HELP)


def run(settings: Settings, args: argparse.Namespace) -> int:
    return run_job("batch", settings, args)
