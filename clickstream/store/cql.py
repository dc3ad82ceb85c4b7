"""CQL statements as named constants, generated once from the table declarations.

Every statement that carries data is prepared once per session and bound with
parameters; identifiers come only from ``tables.py`` (never from user input).
"""

from __future__ import annotations

from clickstream.store.tables import TABLES, Table

SELECT_RELEASE_VERSION = "SELECT release_version FROM system.local"

CREATE_KEYSPACE_SIMPLE = (
    "CREATE KEYSPACE IF NOT EXISTS {keyspace} WITH replication = "
    "{{'class': 'SimpleStrategy', 'replication_factor': {factor}}}"
)
CREATE_KEYSPACE_NTS = (
    "CREATE KEYSPACE IF NOT EXISTS {keyspace} WITH replication = "
    "{{'class': 'NetworkTopologyStrategy', {datacenters}}}"
)


def create_table_cql(t: Table, keyspace: str) -> str:
    cols = ", ".join(f"{c.name} {c.cql_type}" for c in t.columns)
    pk = "(" + ", ".join(t.partition_names) + ")"
    if t.clustering:
        pk += ", " + ", ".join(t.clustering_names)
    order = ""
    if t.clustering:
        direction = "DESC" if t.clustering_desc else "ASC"
        order = " WITH CLUSTERING ORDER BY (" + ", ".join(
            f"{c} {direction}" for c in t.clustering_names) + ")"
    return f"CREATE TABLE IF NOT EXISTS {keyspace}.{t.name} ({cols}, PRIMARY KEY ({pk})){order}"


def insert_cql(t: Table) -> str:
    names = ", ".join(t.column_names)
    marks = ", ".join("?" for _ in t.column_names)
    return f"INSERT INTO {t.name} ({names}) VALUES ({marks})"


def select_cql(t: Table, *, with_start: bool, with_end: bool, with_limit: bool) -> str:
    where = " AND ".join(f"{c} = ?" for c in t.partition_names)
    if t.clustering and with_start:
        where += f" AND {t.clustering_names[0]} >= ?"
    if t.clustering and with_end:
        where += f" AND {t.clustering_names[0]} < ?"
    limit = " LIMIT ?" if with_limit else ""
    return f"SELECT {', '.join(t.column_names)} FROM {t.name} WHERE {where}{limit}"


def delete_partition_cql(t: Table, *, with_end: bool = False) -> str:
    """Delete a partition whole, or (``with_end``) its rows below a first-clustering bound."""
    where = " AND ".join(f"{c} = ?" for c in t.partition_names)
    if with_end:
        where += f" AND {t.clustering_names[0]} < ?"
    return f"DELETE FROM {t.name} WHERE {where}"


INSERT: dict[str, str] = {name: insert_cql(t) for name, t in TABLES.items()}
DELETE_PARTITION: dict[str, str] = {name: delete_partition_cql(t) for name, t in TABLES.items()}
DELETE_BEFORE: dict[str, str] = {name: delete_partition_cql(t, with_end=True)
                                 for name, t in TABLES.items() if t.clustering}
