"""The query layer every role shares: tables, the store contract, and its two backends."""

from __future__ import annotations

from clickstream.settings import Settings
from clickstream.store.base import Store, StoreError
from clickstream.store.tables import TABLES, Table

__all__ = ["TABLES", "Store", "StoreError", "Table", "open_store"]


def open_store(settings: Settings) -> Store:
    """The store the settings choose: Cassandra (keyspace must exist) or embedded SQLite."""
    if settings.store_backend == "cassandra":
        from clickstream.store.cassandra import CassandraStore
        return CassandraStore(settings)
    from clickstream.store.embedded import EmbeddedStore
    return EmbeddedStore(settings.embedded_store_file)
