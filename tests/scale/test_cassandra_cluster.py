"""A 2-node Cassandra cluster on 127.0.0.1 and 127.0.0.2 (ports of its own): a keyspace with
replication factor 2 and a window retention, and the pipeline's run exactly as on one node.

The pipeline reads a topic of its own on the shared Kafka and writes a file:// archive;
the oracle is ``tests.pipeline.conftest.recount`` of the input.
"""

from __future__ import annotations

import time
from pathlib import Path

import pytest
from dask.distributed import Client

from clickstream.settings import Settings
from clickstream.store.cassandra import RETENTION_TABLES, apply_schema, connect
from launch import services
from pipeline import Pipeline
from tests.pipeline.conftest import COMPARED, assert_tables_equal, dump_cassandra, recount
from tests.pipeline.test_integration import make_clicks, produce
from tests.scale.conftest import cluster_settings

pytestmark = pytest.mark.integration

N_CLICKS = 30_000
TTL_S = 3 * 86400


def test_two_nodes_with_replication_two_give_the_single_node_numbers(
        tmp_path: Path, services_running: Settings, unique_name: str,
        dask_client: Client) -> None:
    nodes = cluster_settings(tmp_path, cassandra_nodes=2)
    keyspace = "t_" + "".join(ch if ch.isalnum() else "_" for ch in unique_name).lower()[-40:]
    settings = services_running.replace(
        store="cassandra", cassandra_port=nodes.cassandra_port, cassandra_keyspace=keyspace,
        cassandra_replication_factor=2, window_ttl_s=TTL_S, topic=unique_name,
        consumer_group=unique_name, dead_letter_topic=unique_name + "-dlq",
        archive_url=(tmp_path / "archive").as_uri(), work_dir=str(tmp_path / "run"),
        stream_batch_records=5_000)
    clicks = make_clicks(1_500, seed=41, limit=N_CLICKS, span_s=240)
    from producer.sender import records

    produce(settings, settings.topic, [(k, v) for k, v, _n, _t in records(clicks)])
    t0 = time.monotonic()
    try:
        services.up(nodes, ["cassandra"], log=print)
        print(f"2 Cassandra nodes up in {time.monotonic() - t0:.1f} s")
        report = services.status(nodes, ["cassandra"])
        assert [(s.label, s.address, s.healthy) for s in report] == [
            ("cassandra-1", f"127.0.0.1:{nodes.cassandra_port}", True),
            ("cassandra-2", f"127.0.0.2:{nodes.cassandra_port}", True)], report
        assert all("2 of 2 nodes in the ring" in s.detail for s in report)
        apply_schema(settings)
        cluster, session = connect(settings, keyspace)
        try:
            hosts = {h.address for h in cluster.metadata.all_hosts() if h.is_up}
            assert hosts == {"127.0.0.1", "127.0.0.2"}
            replication = session.execute("SELECT replication FROM system_schema.keyspaces "
                                          "WHERE keyspace_name = %s", (keyspace,)).one()[0]
            assert replication["replication_factor"] == "2"
            ttls = {r.table_name: r.default_time_to_live for r in session.execute(
                "SELECT table_name, default_time_to_live FROM system_schema.tables "
                "WHERE keyspace_name = %s", (keyspace,))}
            assert {t: ttls[t] for t in RETENTION_TABLES} == dict.fromkeys(RETENTION_TABLES, TTL_S)
        finally:
            cluster.shutdown()

        with Pipeline(settings, client=dask_client) as pipe:
            summary = pipe.run(max_clicks=N_CLICKS)
        assert summary.clicks == N_CLICKS and summary.late_clicks == 0
        expected = recount(clicks)
        assert_tables_equal(dump_cassandra(settings, COMPARED, pipeline=settings.pipeline_id), expected)
        # every row is on both nodes: read at ALL (both replicas must answer)
        at_all = settings.replace(cassandra_write_consistency="ALL")  # dump_cassandra's default profile
        stored = dump_cassandra(at_all, ("window_totals",), pipeline=settings.pipeline_id)
        assert stored["window_totals"] == expected["window_totals"]
        print(f"whole test {time.monotonic() - t0:.1f} s")
    finally:
        services.down(nodes, ["cassandra"], log=print)
