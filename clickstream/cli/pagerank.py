"""``clickstream pagerank``: rank articles by click-weighted PageRank with Spark + scipy.

Shared with the other Spark job commands: clickstream.cli.spark_job.
"""

from __future__ import annotations

import argparse
from typing import Any

from clickstream.cli.spark_job import register_job, run_job
from clickstream.settings import Settings


def register(sub: Any) -> argparse.ArgumentParser:
    return register_job(sub, "pagerank", "rank articles by click-weighted PageRank with Spark + scipy")


def run(settings: Settings, args: argparse.Namespace) -> int:
    return run_job("pagerank", settings, args)
