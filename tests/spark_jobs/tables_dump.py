"""Whole-table reads for assertions (tests only; the store API reads by partition)."""

from __future__ import annotations

import sqlite3
from typing import Any

from clickstream.settings import Settings
from clickstream.store.tables import TABLES


def dump_table(settings: Settings, table_name: str) -> set[tuple[Any, ...]]:
    """Every row of a table as tuples in column order."""
    columns = ", ".join(TABLES[table_name].column_names)
    if settings.store_backend == "cassandra":
        from clickstream.store.cassandra import connect

        cluster, session = connect(settings, settings.cassandra_keyspace)
        try:
            return {tuple(row) for row in session.execute(f"SELECT {columns} FROM {table_name}", timeout=60)}
        finally:
            cluster.shutdown()
    with sqlite3.connect(settings.embedded_store_file) as conn:
        return {tuple(row) for row in conn.execute(f"SELECT {columns} FROM {table_name}")}
