"""``clickstream reconcile``: recount the streaming windows from the archive and correct the store.

Shared with the other Spark job commands: launch.cli.spark_job.
"""

from __future__ import annotations

import argparse
from typing import Any

from clickstream.settings import Settings
from launch.cli.spark_job import register_job, run_job

HELP = "recount the streaming windows from the archive and correct the store"


def register(sub: Any) -> argparse.ArgumentParser:
    return register_job(sub, "reconcile", HELP)


def run(settings: Settings, args: argparse.Namespace) -> int:
    return run_job("reconcile", settings, args)
