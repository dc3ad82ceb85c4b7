from __future__ import annotations

import pytest

from clickstream.store.cassandra import apply_schema, connect
from clickstream.store.tables import TABLES

pytestmark = pytest.mark.integration


def test_schema_is_idempotent_and_has_every_table(cassandra_settings) -> None:
    assert apply_schema(cassandra_settings) == list(TABLES)
    cluster, session = connect(cassandra_settings)
    try:
        rows = session.execute(
            "SELECT table_name FROM system_schema.tables WHERE keyspace_name = %s",
            (cassandra_settings.cassandra_keyspace,))
        assert {r.table_name for r in rows} >= set(TABLES)
        ks = session.execute("SELECT replication FROM system_schema.keyspaces WHERE keyspace_name = %s",
                             (cassandra_settings.cassandra_keyspace,)).one()
        assert ks.replication["class"].endswith("SimpleStrategy")
        assert ks.replication["replication_factor"] == "1"
    finally:
        cluster.shutdown()


def test_same_queries_as_the_embedded_store(cassandra_store, tmp_path, unique_name: str) -> None:
    from clickstream.store.embedded import EmbeddedStore

    embedded = EmbeddedStore(tmp_path / "s.sqlite")
    rows = [{"pipeline": "p", "window_ms": 1000, "day": unique_name, "window_start_ms": t,
             "clicks": t // 10, "late_clicks": t % 3, "written_ms": 5, "cycle": 1, "final": 1}
            for t in range(0, 50_000, 1000)]
    for store in (cassandra_store, embedded):
        store.upsert("window_totals", rows)
        store.upsert("window_totals", rows[:5])
    part = {"pipeline": "p", "window_ms": 1000, "day": unique_name}
    for kwargs in ({}, {"limit": 7}, {"start": 10_000, "end": 20_000}):
        assert cassandra_store.select("window_totals", part, **kwargs) == \
            embedded.select("window_totals", part, **kwargs)
    embedded.close()
