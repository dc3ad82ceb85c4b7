from __future__ import annotations

import pytest

from clickstream.store.cassandra import apply_schema, connect
from clickstream.store.tables import TABLES
from tests.clickstream.store.new_tables import (
    partition_lag_round_trip,
    pipeline_plans_round_trip,
    reconcile_runs_round_trip,
)

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


def test_small_partitions_packed_together_are_all_written(cassandra_store, unique_name: str) -> None:
    """One-row partitions (key_series) and ten-row ones (a top-N) go out packed several
    partitions a batch; a partition of more rows than that goes alone. Every row lands."""
    from clickstream.store.cassandra import PACK_MAX_ROWS, PARTITIONS_PER_BATCH

    keys = [f"{unique_name}-{i}" for i in range(PARTITIONS_PER_BATCH * 3 + 7)]
    series = [{"pipeline": "p", "metric": "destination", "window_ms": 60_000, "key": k,
               "window_start_ms": 120_000, "clicks": i} for i, k in enumerate(keys)]
    big = [{"pipeline": "p", "metric": "destination", "window_ms": 60_000, "key": keys[0],
            "window_start_ms": t * 60_000, "clicks": t} for t in range(3, 3 + PACK_MAX_ROWS + 5)]
    topn = [{"pipeline": unique_name, "metric": "source", "window_ms": 1000, "window_start_ms": s,
             "rank": r, "key": f"k{r}", "clicks": 100 - r}
            for s in range(0, 25_000, 1000) for r in range(1, PACK_MAX_ROWS + 1)]
    assert cassandra_store.upsert("key_series", series + big) == len(series) + len(big)
    assert cassandra_store.upsert("window_topn", topn) == len(topn)
    for i, k in enumerate(keys):
        got = cassandra_store.select("key_series", {"pipeline": "p", "metric": "destination",
                                                    "window_ms": 60_000, "key": k})
        want = [120_000] + ([t * 60_000 for t in range(3, 3 + PACK_MAX_ROWS + 5)] if i == 0 else [])
        assert [r["window_start_ms"] for r in got] == want
        assert got[0]["clicks"] == i
    for s in range(0, 25_000, 1000):
        got = cassandra_store.select("window_topn", {"pipeline": unique_name, "metric": "source",
                                                     "window_ms": 1000, "window_start_ms": s})
        assert [(r["rank"], r["key"]) for r in got] == [(r, f"k{r}") for r in range(1, PACK_MAX_ROWS + 1)]


def test_client_negotiates_the_protocol_and_balances_by_token_and_datacenter(cassandra_settings) -> None:
    from cassandra import ConsistencyLevel
    from cassandra.cluster import EXEC_PROFILE_DEFAULT
    from cassandra.policies import DCAwareRoundRobinPolicy, TokenAwarePolicy

    from clickstream.store.cassandra import READ_PROFILE

    cluster, session = connect(cassandra_settings)
    try:
        assert session.execute("SELECT release_version FROM system.local").one()[0].startswith("5.")
        assert not cluster._protocol_version_explicit  # negotiated, not pinned
        assert cluster.protocol_version == 5  # the newest non-beta version Cassandra 5.0 speaks
        default = cluster.profile_manager.profiles[EXEC_PROFILE_DEFAULT]
        read = cluster.profile_manager.profiles[READ_PROFILE]
        for profile in (default, read):
            policy = profile.load_balancing_policy
            assert isinstance(policy, TokenAwarePolicy)
            assert isinstance(policy._child_policy, DCAwareRoundRobinPolicy)
            assert policy._child_policy.local_dc == "datacenter1"
        assert default.consistency_level == ConsistencyLevel.LOCAL_QUORUM
        assert read.consistency_level == ConsistencyLevel.LOCAL_ONE
    finally:
        cluster.shutdown()


@pytest.mark.parametrize("compression", [False, True])
def test_frame_compression_follows_its_setting_and_rows_round_trip(cassandra_settings, unique_name: str,
                                                                    compression: bool) -> None:
    from clickstream.store.cassandra import CassandraStore

    settings = cassandra_settings.replace(cassandra_compression=compression)
    store = CassandraStore(settings)
    try:
        pool = next(iter(store._session._pools.values()))
        connection = pool._connection
        assert (connection.compressor is not None) is compression
        part = {"pipeline": unique_name, "window_ms": 1000, "day": "2015-02-01"}
        rows = [{**part, "window_start_ms": t, "clicks": t, "late_clicks": 0, "written_ms": 1, "cycle": 1,
                 "final": 1} for t in range(300)]
        assert store.upsert("window_totals", rows) == 300
        assert sorted(r["clicks"] for r in store.select("window_totals", part)) == list(range(300))
    finally:
        store.close()
    assert type(cassandra_settings).from_sources({}, {}).cassandra_compression is False  # off by default


def test_consistency_settings_reach_reads_and_writes(cassandra_settings, unique_name: str) -> None:
    """On one node, THREE cannot be met: a read (or write) at THREE fails, so the setting is used."""
    from cassandra.cluster import NoHostAvailable

    from clickstream.store.cassandra import CassandraStore

    part = {"pipeline": unique_name, "window_ms": 1000, "day": "2015-02-01"}
    row = {**part, "window_start_ms": 0, "clicks": 1, "late_clicks": 0, "written_ms": 1, "cycle": 1,
           "final": 1}
    store = CassandraStore(cassandra_settings.replace(cassandra_read_consistency="THREE"))
    try:
        assert store.upsert("window_totals", [row]) == 1  # writes: LOCAL_QUORUM, met by one node
        with pytest.raises(NoHostAvailable, match="Cannot achieve consistency level THREE"):
            store.select("window_totals", part)
    finally:
        store.close()
    store = CassandraStore(cassandra_settings.replace(cassandra_write_consistency="THREE"))
    try:
        assert store.select("window_totals", part)[0]["clicks"] == 1  # reads: LOCAL_ONE
        with pytest.raises(NoHostAvailable, match="Cannot achieve consistency level THREE"):
            store.upsert("window_totals", [row])
    finally:
        store.close()


def test_window_ttl_gives_retention_and_time_window_compaction(isolated_cassandra_settings) -> None:
    from clickstream.store.cassandra import RETENTION_TABLES, TWCS, CassandraStore

    settings = isolated_cassandra_settings.replace(window_ttl_s=7 * 86400)
    ks = settings.cassandra_keyspace

    def options() -> dict[str, tuple[int, str, str | None]]:
        cluster, session = connect(settings)
        try:
            rows = session.execute("SELECT table_name, default_time_to_live, compaction FROM "
                                   "system_schema.tables WHERE keyspace_name = %s", (ks,))
            return {r.table_name: (r.default_time_to_live, r.compaction["class"],
                                   r.compaction.get("compaction_window_size")) for r in rows}
        finally:
            cluster.shutdown()

    apply_schema(settings)
    got = options()
    for name in RETENTION_TABLES:
        assert got[name] == (7 * 86400, TWCS, "6"), name  # 7 days / 30 -> 6-hour windows
    assert all(ttl == 0 for name, (ttl, _c, _w) in got.items() if name not in RETENTION_TABLES)
    store = CassandraStore(settings)
    try:
        store.upsert("window_totals", [{"pipeline": "p", "window_ms": 1000, "day": "d", "window_start_ms": 0,
                                        "clicks": 1, "late_clicks": 0, "written_ms": 1, "cycle": 1,
                                        "final": 1}])
    finally:
        store.close()
    cluster, session = connect(settings, ks)
    try:
        ttl = session.execute("SELECT TTL(clicks) FROM window_totals WHERE pipeline = 'p' AND "
                              "window_ms = 1000 AND day = 'd'").one()[0]
        assert 7 * 86400 - 60 < ttl <= 7 * 86400
    finally:
        cluster.shutdown()
    apply_schema(settings.replace(window_ttl_s=0))  # back to forever; compaction left as it is
    assert all(ttl == 0 for ttl, _c, _w in options().values())


def test_partition_lag_round_trip(cassandra_store, unique_name: str) -> None:
    partition_lag_round_trip(cassandra_store, unique_name)


def test_reconcile_runs_round_trip(cassandra_store, unique_name: str) -> None:
    reconcile_runs_round_trip(cassandra_store, unique_name)


def test_pipeline_plans_round_trip(cassandra_store, unique_name: str) -> None:
    pipeline_plans_round_trip(cassandra_store, unique_name)


def test_a_table_missing_from_an_older_keyspace_is_named_with_the_fix(isolated_cassandra_settings) -> None:
    from clickstream.store import StoreError
    from clickstream.store.cassandra import CassandraStore

    cluster, session = connect(isolated_cassandra_settings, isolated_cassandra_settings.cassandra_keyspace)
    try:
        session.execute("DROP TABLE pipeline_plans", timeout=60)
    finally:
        cluster.shutdown()
    store = CassandraStore(isolated_cassandra_settings)
    try:
        with pytest.raises(StoreError, match=r"has no table pipeline_plans .*clickstream schema"):
            store.select("pipeline_plans", {"pipeline": "p"})
    finally:
        store.close()
