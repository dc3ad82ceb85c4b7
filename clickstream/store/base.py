"""The store contract shared by the Cassandra and embedded (SQLite) backends."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any, Protocol

from clickstream.store.tables import TABLES, Table

Row = Sequence[Any] | Mapping[str, Any]


class StoreError(RuntimeError):
    """The store cannot be reached or refused an operation; the message says which."""


class Store(Protocol):
    """Upserts and partition reads over the tables in ``clickstream.store.tables``.

    - ``upsert`` writes rows (tuples in ``table.column_names`` order, or mappings) and
      blocks until every row is durable in the backend; it is idempotent by primary key.
    - ``select`` reads one partition (all partition-key columns given), in clustering
      order (descending for tables declared so), optionally bounded on the first
      clustering column (``start`` inclusive, ``end`` exclusive) and by ``limit``.
    - ``delete_partition`` removes one partition whole (a batch table's stale ranks), or with
      ``end`` only its rows whose first clustering column is below ``end`` (one range
      tombstone on Cassandra: the pruned plans of ``pipeline_plans``).
    - ``ping`` raises ``StoreError`` when the backend cannot be reached; ``close`` frees it.
    """

    def upsert(self, table: str, rows: Sequence[Row]) -> int: ...

    def select(self, table: str, partition: Mapping[str, Any], *, start: Any = None,
               end: Any = None, limit: int | None = None) -> list[dict[str, Any]]: ...

    def delete_partition(self, table: str, partition: Mapping[str, Any], *, end: Any = None) -> None: ...

    def ping(self) -> None: ...

    def close(self) -> None: ...


def table(name: str) -> Table:
    try:
        return TABLES[name]
    except KeyError:
        raise StoreError(f"unknown table {name!r}; known: {', '.join(sorted(TABLES))}") from None


def as_tuple(t: Table, row: Row) -> tuple[Any, ...]:
    if type(row) is tuple and len(row) == len(t.column_names):  # the sinks' rows: no ABC check
        return row
    if isinstance(row, Mapping):
        try:
            return tuple(row[c] for c in t.column_names)
        except KeyError as exc:
            raise StoreError(f"{t.name}: row lacks column {exc.args[0]!r}") from None
    if len(row) != len(t.column_names):
        raise StoreError(f"{t.name}: row has {len(row)} values, table has {len(t.column_names)} columns")
    return tuple(row)


def partition_values(t: Table, partition: Mapping[str, Any]) -> tuple[Any, ...]:
    missing = [c for c in t.partition_names if c not in partition]
    if missing:
        raise StoreError(f"{t.name}: partition key needs {', '.join(missing)}")
    return tuple(partition[c] for c in t.partition_names)
