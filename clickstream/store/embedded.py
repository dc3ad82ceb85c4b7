"""Embedded store: the same tables and queries on SQLite (WAL mode), for no-server runs.

One file, safe for one writer process and many readers (the dashboard). ``upsert`` is
``INSERT OR REPLACE`` by primary key, committed before it returns.
"""

from __future__ import annotations

import sqlite3
import threading
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from clickstream.store.base import Row, StoreError, as_tuple, partition_values, table
from clickstream.store.tables import TABLES, Table

_SQL_TYPES = {"text": "TEXT", "bigint": "INTEGER", "int": "INTEGER", "double": "REAL"}


def create_table_sql(t: Table) -> str:
    cols = ", ".join(f"{c.name} {_SQL_TYPES[c.cql_type]} NOT NULL" for c in t.columns)
    pk = ", ".join(t.partition_names + t.clustering_names)
    return f"CREATE TABLE IF NOT EXISTS {t.name} ({cols}, PRIMARY KEY ({pk})) WITHOUT ROWID"


class EmbeddedStore:
    """The store in one SQLite file (see ``clickstream.store.base.Store``)."""

    def __init__(self, path: Path | str, busy_timeout_ms: int = 30_000) -> None:
        self.path = Path(path)
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            self._conn = sqlite3.connect(str(self.path), timeout=busy_timeout_ms / 1000,
                                         check_same_thread=False, isolation_level=None)
            self._conn.execute("PRAGMA journal_mode=WAL")
            self._conn.execute("PRAGMA synchronous=NORMAL")
            for t in TABLES.values():
                self._conn.execute(create_table_sql(t))
        except (OSError, sqlite3.Error) as exc:
            raise StoreError(f"embedded store at {self.path}: {exc}") from None
        self._lock = threading.Lock()

    def upsert(self, table_name: str, rows: Sequence[Row]) -> int:
        t = table(table_name)
        if not rows:
            return 0
        values = [as_tuple(t, r) for r in rows]
        sql = (f"INSERT OR REPLACE INTO {t.name} ({', '.join(t.column_names)}) "
               f"VALUES ({', '.join('?' for _ in t.column_names)})")
        with self._lock:
            try:
                self._conn.execute("BEGIN IMMEDIATE")
                self._conn.executemany(sql, values)
                self._conn.execute("COMMIT")
            except sqlite3.Error as exc:
                if self._conn.in_transaction:
                    self._conn.execute("ROLLBACK")
                raise StoreError(f"embedded store {self.path}, table {t.name}: {exc}") from None
        return len(values)

    def select(self, table_name: str, partition: Mapping[str, Any], *, start: Any = None,
               end: Any = None, limit: int | None = None) -> list[dict[str, Any]]:
        t = table(table_name)
        params: list[Any] = list(partition_values(t, partition))
        where = " AND ".join(f"{c} = ?" for c in t.partition_names)
        if t.clustering and start is not None:
            where += f" AND {t.clustering_names[0]} >= ?"
            params.append(start)
        if t.clustering and end is not None:
            where += f" AND {t.clustering_names[0]} < ?"
            params.append(end)
        order = ""
        if t.clustering:
            direction = "DESC" if t.clustering_desc else "ASC"
            order = " ORDER BY " + ", ".join(f"{c} {direction}" for c in t.clustering_names)
        sql = f"SELECT {', '.join(t.column_names)} FROM {t.name} WHERE {where}{order}"
        if limit is not None:
            sql += " LIMIT ?"
            params.append(int(limit))
        with self._lock:
            try:
                cur = self._conn.execute(sql, params)
                return [dict(zip(t.column_names, row, strict=True)) for row in cur.fetchall()]
            except sqlite3.Error as exc:
                raise StoreError(f"embedded store {self.path}, table {t.name}: {exc}") from None

    def delete_partition(self, table_name: str, partition: Mapping[str, Any], *, end: Any = None) -> None:
        t = table(table_name)
        where = " AND ".join(f"{c} = ?" for c in t.partition_names)
        params: list[Any] = list(partition_values(t, partition))
        if end is not None and t.clustering:
            where += f" AND {t.clustering_names[0]} < ?"
            params.append(end)
        with self._lock:
            try:
                self._conn.execute(f"DELETE FROM {t.name} WHERE {where}", params)
            except sqlite3.Error as exc:
                raise StoreError(f"embedded store {self.path}, table {t.name}: {exc}") from None

    def ping(self) -> None:
        if not self.path.exists():
            raise StoreError(f"embedded store file {self.path} does not exist (removed while open)")
        with self._lock:
            self._conn.execute("SELECT 1")

    def close(self) -> None:
        with self._lock:
            self._conn.close()
