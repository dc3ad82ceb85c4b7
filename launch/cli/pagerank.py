"""``clickstream pagerank``: rank articles by click-weighted PageRank with Spark + scipy.

Shared with the other Spark job commands: launch.cli.spark_job.
"""

from __future__ import annotations

import argparse
from typing import Any

from clickstream.settings import Settings
from launch.cli.spark_job import register_job, run_job

HELP = "rank articles by click-weighted PageRank with Spark + scipy"


def register(sub: Any) -> argparse.ArgumentParser:
    return register_job(sub, "pagerank", HELP)


def run(settings: Settings, args: argparse.Namespace) -> int:
    return run_job("pagerank", settings, args)
