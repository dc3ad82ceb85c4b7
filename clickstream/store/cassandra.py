"""Cassandra backend of the store (cassandra-driver, prepared statements only).

Writes group rows by partition into UNLOGGED batches (a big partition's rows a batch, so the
batch is applied atomically on one replica set without the logged-batch overhead; small
partitions packed ten a batch by replica set) and keep many batches in flight; measured here
at ~120k rows/s against ~7k for concurrent single-row writes. ``upsert`` returns once every
batch is acknowledged.

On a cluster: requests go token-aware to a replica in ``cassandra_local_datacenter``;
writes use ``cassandra_write_consistency``, reads ``cassandra_read_consistency``; the
protocol version is negotiated (Cassandra 3.x to 5.x, ScyllaDB). With ``window_ttl_s``
the streaming window tables expire rows and compact by time window.
"""

from __future__ import annotations

import logging
import math
import threading
from collections import defaultdict
from collections.abc import Mapping, Sequence
from typing import Any

from cassandra import AuthenticationFailed, ConsistencyLevel, InvalidRequest, Unauthorized
from cassandra.auth import PlainTextAuthProvider
from cassandra.cluster import EXEC_PROFILE_DEFAULT, Cluster, ExecutionProfile, NoHostAvailable, Session
from cassandra.policies import (
    DCAwareRoundRobinPolicy,
    ExponentialReconnectionPolicy,
    LoadBalancingPolicy,
    TokenAwarePolicy,
    WhiteListRoundRobinPolicy,
)
from cassandra.protocol import ConfigurationException, SyntaxException
from cassandra.query import BatchStatement, BatchType, PreparedStatement

from clickstream.settings import Settings
from clickstream.store import cql
from clickstream.store.base import Row, StoreError, as_tuple, partition_values, table
from clickstream.store.tables import TABLES

# What Cassandra answers to a request it refuses whatever the moment (waiting will not help).
REFUSALS = (InvalidRequest, Unauthorized, AuthenticationFailed, SyntaxException, ConfigurationException)
BATCH_ROWS = 500
# Partitions of at most PACK_MAX_ROWS rows (a top-N, or a table keyed per article such as
# key_series, which would otherwise cost one request per row) are packed with other partitions
# of the same replicas, at most PARTITIONS_PER_BATCH a batch: Cassandra's default
# unlogged_batch_across_partitions_warn_threshold, so no server warning. Measured here on
# 20,000 one-row partitions: 1.4k rows/s one partition a batch, 7.7-12k rows/s ten.
PACK_MAX_ROWS = 10
PARTITIONS_PER_BATCH = 10
RECONNECT_MAX_S = 5.0
IN_FLIGHT_BATCHES = 16
READ_PROFILE = "read"
# Streaming tables whose rows are per window (or per metrics tick): what window_ttl_s expires.
RETENTION_TABLES = ("window_counts", "window_topn", "key_series", "window_totals", "trending",
                    "pipeline_metrics", "partition_lag")
TWCS = "org.apache.cassandra.db.compaction.TimeWindowCompactionStrategy"


class _ProtocolDowngradeFilter(logging.Filter):
    """The driver starts at its newest protocol and steps down to the server's, warning at
    each step; negotiating is what we ask of it, so those warnings are dropped."""

    def filter(self, record: logging.LogRecord) -> bool:
        return not record.getMessage().startswith("Downgrading core protocol version")


_DOWNGRADE_FILTER = _ProtocolDowngradeFilter()


def consistency(name: str) -> int:
    """``ConsistencyLevel`` value of a settings name such as ``LOCAL_QUORUM``."""
    return ConsistencyLevel.name_to_value[name]


def connect(settings: Settings, keyspace: str | None = None, connect_timeout_s: float = 10.0,
            only_host: str | None = None) -> tuple[Cluster, Session]:
    """A cluster and session for the configured contact points (credentials never logged).

    Token-aware, DC-aware load balancing; the default profile writes at
    ``cassandra_write_consistency`` and ``READ_PROFILE`` reads at
    ``cassandra_read_consistency``; the protocol version is negotiated with the server.
    ``only_host``: talk to that node alone (a health check of one node).
    """
    auth = None
    if settings.cassandra_username:
        auth = PlainTextAuthProvider(settings.cassandra_username, settings.cassandra_password)

    def profile(level: str) -> ExecutionProfile:
        policy: LoadBalancingPolicy = TokenAwarePolicy(
            DCAwareRoundRobinPolicy(local_dc=settings.cassandra_local_datacenter))
        if only_host is not None:
            policy = WhiteListRoundRobinPolicy([only_host])
        return ExecutionProfile(load_balancing_policy=policy, consistency_level=consistency(level),
                                request_timeout=60)

    logging.getLogger("cassandra.cluster").addFilter(_DOWNGRADE_FILTER)  # the same filter once
    profiles = {EXEC_PROFILE_DEFAULT: profile(settings.cassandra_write_consistency),
                READ_PROFILE: profile(settings.cassandra_read_consistency)}
    cluster = Cluster(list(settings.cassandra_contact_points), port=settings.cassandra_port,
                      auth_provider=auth, execution_profiles=profiles, connect_timeout=connect_timeout_s,
                      compression=settings.cassandra_compression,
                      # a node back from an outage is found within seconds, not minutes
                      reconnection_policy=ExponentialReconnectionPolicy(0.5, RECONNECT_MAX_S))
    try:
        session = cluster.connect(keyspace)
    except NoHostAvailable as exc:
        cluster.shutdown()
        where = ",".join(settings.cassandra_contact_points)
        raise StoreError(f"Cassandra at {where}:{settings.cassandra_port} is unreachable: "
                         f"{_first_error(exc)}") from None
    except Exception as exc:
        cluster.shutdown()
        raise StoreError(f"Cassandra keyspace {keyspace!r}: {exc}") from None
    return cluster, session


def _first_error(exc: NoHostAvailable) -> str:
    errors = getattr(exc, "errors", None) or {}
    for err in errors.values():
        return str(err)
    return str(exc)


def apply_schema(settings: Settings) -> list[str]:
    """Create the keyspace and every table if missing (idempotent). Returns table names."""
    keyspace = settings.cassandra_keyspace
    if not keyspace.isidentifier():
        raise StoreError(f"cassandra_keyspace: {keyspace!r} is not a valid CQL identifier")
    if settings.cassandra_replication_class == "SimpleStrategy":
        ddl = cql.CREATE_KEYSPACE_SIMPLE.format(keyspace=keyspace,
                                                factor=int(settings.cassandra_replication_factor))
    else:
        dcs = ", ".join(f"'{dc}': {int(settings.cassandra_replication_factor)}"
                        for dc in settings.cassandra_datacenters if dc.replace("-", "_").isidentifier())
        ddl = cql.CREATE_KEYSPACE_NTS.format(keyspace=keyspace, datacenters=dcs)
    cluster, session = connect(settings)
    try:
        session.execute(ddl, timeout=60)
        for t in TABLES.values():
            session.execute(cql.create_table_cql(t, keyspace), timeout=60)
        _check_layout(session, keyspace)
        _apply_retention(session, keyspace, int(settings.window_ttl_s))
        cluster.control_connection.wait_for_schema_agreement()
    finally:
        cluster.shutdown()
    return list(TABLES)


def twcs_window(ttl_s: int) -> tuple[str, int]:
    """(compaction_window_unit, compaction_window_size) giving about 30 windows per TTL,
    as TimeWindowCompactionStrategy's guidance asks (at least one minute)."""
    minutes = max(1, math.ceil(ttl_s / 30 / 60))
    if minutes < 60:
        return "MINUTES", minutes
    hours = math.ceil(minutes / 60)
    if hours < 24:
        return "HOURS", hours
    return "DAYS", math.ceil(hours / 24)


SELECT_COLUMNS = "SELECT table_name, column_name FROM system_schema.columns WHERE keyspace_name = ?"


def _check_layout(session: Session, keyspace: str) -> None:
    """Tables made by an older version lack columns (``CREATE ... IF NOT EXISTS`` kept them):
    say which, rather than fail later on every write."""
    found: dict[str, set[str]] = {}
    for row in session.execute(session.prepare(SELECT_COLUMNS), (keyspace,), timeout=60):
        found.setdefault(row.table_name, set()).add(row.column_name)
    for t in TABLES.values():
        missing = [c for c in t.column_names if c not in found.get(t.name, set())]
        if missing:
            raise StoreError(f"keyspace {keyspace}: table {t.name} has an older layout (no column "
                             f"{', '.join(missing)}); drop the keyspace or use another "
                             "(cassandra_keyspace)")


SELECT_TABLE_OPTIONS = ("SELECT table_name, default_time_to_live, compaction FROM system_schema.tables "
                        "WHERE keyspace_name = ?")


def _apply_retention(session: Session, keyspace: str, ttl_s: int) -> None:
    """Give ``RETENTION_TABLES`` ``default_time_to_live = ttl_s`` and time-window compaction
    (``ttl_s`` > 0), or no TTL (0, compaction left as it is); alters only tables that differ."""
    current = {r.table_name: r for r in session.execute(session.prepare(SELECT_TABLE_OPTIONS),
                                                        [keyspace], timeout=60)}
    unit, size = twcs_window(ttl_s) if ttl_s else ("", 0)
    for name in RETENTION_TABLES:
        row = current[name]
        compaction = dict(row.compaction or {})
        if ttl_s == 0:
            if row.default_time_to_live:
                session.execute(f"ALTER TABLE {keyspace}.{name} WITH default_time_to_live = 0", timeout=60)
            continue
        if (row.default_time_to_live == ttl_s and compaction.get("class") == TWCS
                and compaction.get("compaction_window_unit") == unit
                and compaction.get("compaction_window_size") == str(size)):
            continue
        session.execute(
            f"ALTER TABLE {keyspace}.{name} WITH default_time_to_live = {int(ttl_s)} AND compaction = "
            f"{{'class': 'TimeWindowCompactionStrategy', 'compaction_window_unit': '{unit}', "
            f"'compaction_window_size': {int(size)}}}", timeout=60)


class CassandraStore:
    """The store on a Cassandra keyspace (see ``clickstream.store.base.Store``)."""

    def __init__(self, settings: Settings) -> None:
        self._cluster, self._session = connect(settings, settings.cassandra_keyspace)
        self._keyspace = settings.cassandra_keyspace
        self._prepared: dict[tuple[Any, ...], PreparedStatement] = {}
        self._lock = threading.Lock()

    def _prepare(self, key: tuple[Any, ...], statement: str) -> PreparedStatement:
        with self._lock:
            prepared = self._prepared.get(key)
            if prepared is None:
                try:
                    prepared = self._prepared[key] = self._session.prepare(statement)
                except InvalidRequest as exc:
                    if not any(m in str(exc) for m in ("unconfigured table", "does not exist")):
                        raise
                    raise StoreError(f"keyspace {self._keyspace} has no table {key[1]} (made by an older "
                                     "version?): apply the schema with `clickstream schema`") from None
            return prepared

    def upsert(self, table_name: str, rows: Sequence[Row]) -> int:
        t = table(table_name)
        if not rows:
            return 0
        insert = self._prepare(("insert", t.name), cql.INSERT[t.name])
        n_key = len(t.partition_key)
        by_partition: dict[tuple[Any, ...], list[tuple[Any, ...]]] = defaultdict(list)
        for row in rows:
            values = as_tuple(t, row)
            by_partition[values[:n_key]].append(values)
        batches: list[BatchStatement] = []
        small: dict[tuple[str, ...], list[list[tuple[Any, ...]]]] = defaultdict(list)
        one_node = len(self._cluster.metadata.all_hosts()) <= 1  # one replica set for every partition
        for part_rows in by_partition.values():
            if len(part_rows) <= PACK_MAX_ROWS:
                small[() if one_node else self._replicas(insert, part_rows[0])].append(part_rows)
                continue
            for i in range(0, len(part_rows), BATCH_ROWS):
                batches.append(self._batch(insert, part_rows[i:i + BATCH_ROWS]))
        for parts in small.values():
            for i in range(0, len(parts), PARTITIONS_PER_BATCH):
                batches.append(self._batch(insert, [v for rows_ in parts[i:i + PARTITIONS_PER_BATCH]
                                                    for v in rows_]))
        self._run_in_flight(batches)
        return len(rows)

    def _replicas(self, insert: PreparedStatement, values: tuple[Any, ...]) -> tuple[str, ...]:
        """The addresses of the replicas of ``values``' partition (token-aware grouping)."""
        key = insert.bind(values).routing_key
        hosts = self._cluster.metadata.get_replicas(self._keyspace, key)
        return tuple(sorted(str(h.endpoint) for h in hosts))

    @staticmethod
    def _batch(insert: PreparedStatement, rows: Sequence[tuple[Any, ...]]) -> BatchStatement:
        """An UNLOGGED batch of ``rows``; the driver routes it by its first row's partition."""
        batch = BatchStatement(batch_type=BatchType.UNLOGGED)
        for values in rows:
            batch.add(insert, values)
        return batch

    def _run_in_flight(self, statements: Sequence[Any]) -> None:
        pending = []
        for stmt in statements:
            pending.append(self._session.execute_async(stmt, timeout=60))
            if len(pending) >= IN_FLIGHT_BATCHES:
                pending.pop(0).result()
        for future in pending:
            future.result()

    def select(self, table_name: str, partition: Mapping[str, Any], *, start: Any = None,
               end: Any = None, limit: int | None = None) -> list[dict[str, Any]]:
        t = table(table_name)
        key = ("select", t.name, start is not None, end is not None, limit is not None)
        stmt = self._prepare(key, cql.select_cql(t, with_start=start is not None,
                                                 with_end=end is not None,
                                                 with_limit=limit is not None))
        params: list[Any] = list(partition_values(t, partition))
        params += [v for v in (start, end) if v is not None]
        if limit is not None:
            params.append(int(limit))
        rows = self._session.execute(stmt, params, timeout=30, execution_profile=READ_PROFILE)
        return [dict(zip(t.column_names, row, strict=True)) for row in rows]

    def delete_partition(self, table_name: str, partition: Mapping[str, Any], *, end: Any = None) -> None:
        t = table(table_name)
        params: list[Any] = list(partition_values(t, partition))
        if end is not None and t.clustering:
            stmt = self._prepare(("delete before", t.name), cql.DELETE_BEFORE[t.name])
            params.append(end)
        else:
            stmt = self._prepare(("delete", t.name), cql.DELETE_PARTITION[t.name])
        self._session.execute(stmt, params, timeout=30)

    def ping(self) -> None:
        self._session.execute(cql.SELECT_RELEASE_VERSION, timeout=5, execution_profile=READ_PROFILE)

    def close(self) -> None:
        self._cluster.shutdown()
