"""``clickstream schema``: create the store's keyspace and tables (idempotent)."""

from __future__ import annotations

import argparse
from typing import Any

from clickstream.settings import Settings, add_settings_arguments
from clickstream.store import StoreError, open_store
from launch.cli import CliError

HELP = "apply the store schema (Cassandra keyspace and tables, or SQLite)"


def register(sub: Any) -> argparse.ArgumentParser:
    parser = sub.add_parser(
        "schema", help=HELP,
        description="Create the keyspace (with its replication settings) and every table if "
                    "missing. Safe to run again.")
    add_settings_arguments(parser, ["general", "store"])
    return parser


def run(settings: Settings, args: argparse.Namespace) -> int:
    try:
        if settings.store_backend == "cassandra":
            from clickstream.store.cassandra import apply_schema  # lazy: the driver, which `--help` skips

            tables = apply_schema(settings)
            print(f"schema: keyspace {settings.cassandra_keyspace} "
                  f"({settings.cassandra_replication_class}, factor "
                  f"{settings.cassandra_replication_factor}) with {len(tables)} tables")
        else:
            store = open_store(settings)
            store.close()
            print(f"schema: embedded store {settings.embedded_store_file}")
    except StoreError as exc:
        raise CliError(str(exc)) from None
    return 0
