"""``clickstream reconcile``: recount the streaming windows from the archive and correct the store.

Shared with the other Spark job commands: clickstream.cli.spark_job.
"""

from __future__ import annotations

import argparse
from typing import Any

from clickstream.cli.spark_job import register_job, run_job
from clickstream.settings import Settings


def register(sub: Any) -> argparse.ArgumentParser:
    return register_job(sub, "reconcile",
                        "recount the streaming windows from the archive and correct the store")


def run(settings: Settings, args: argparse.Namespace) -> int:
    return run_job("reconcile", settings, args)
