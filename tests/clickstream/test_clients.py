"""Each real client against its real server: Kafka, Cassandra, HDFS (and file://), Spark."""

from __future__ import annotations

from collections import defaultdict

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from clickstream.archive import filesystem
from clickstream.memory_topic import partition_for

pytestmark = pytest.mark.integration


def test_kafka_produce_consume_with_keys_over_partitions(kafka_bootstrap: str, unique_name: str) -> None:
    from kafka import KafkaConsumer, KafkaProducer, TopicPartition
    from kafka.admin import KafkaAdminClient, NewTopic

    admin = KafkaAdminClient(bootstrap_servers=kafka_bootstrap)
    admin.create_topics([NewTopic(unique_name, num_partitions=4, replication_factor=1)])
    admin.close()
    producer = KafkaProducer(bootstrap_servers=kafka_bootstrap, acks="all", compression_type="lz4",
                             enable_idempotence=True)
    keys = [f"article-{i}".encode() for i in range(40)]
    for n in range(5):
        for key in keys:
            producer.send(unique_name, key=key, value=f"{key.decode()}:{n}".encode())
    producer.flush()
    producer.close()

    consumer = KafkaConsumer(bootstrap_servers=kafka_bootstrap, enable_auto_commit=False,
                             auto_offset_reset="earliest", consumer_timeout_ms=5000)
    parts = [TopicPartition(unique_name, p) for p in range(4)]
    consumer.assign(parts)
    consumer.seek_to_beginning(*parts)
    seen: dict[bytes, list[tuple[int, bytes]]] = defaultdict(list)
    for record in consumer:
        seen[record.key].append((record.partition, record.value))
        if sum(map(len, seen.values())) == 200:
            break
    consumer.close()
    assert sum(map(len, seen.values())) == 200
    assert len({p for values in seen.values() for p, _ in values}) > 1, "keys should spread over partitions"
    for key, values in seen.items():
        assert {p for p, _ in values} == {partition_for(key, 4)}
        assert [v for _, v in values] == [f"{key.decode()}:{n}".encode() for n in range(5)]


def test_cassandra_prepared_write_and_read(cassandra_store, unique_name: str) -> None:
    title = f'"Weird_Al"_Yankovic <{unique_name}>'
    rows = [(title, rank, f"dest-{rank}", 100 - rank) for rank in range(1, 1201)]
    cassandra_store.upsert("top_destinations", rows)
    got = cassandra_store.select("top_destinations", {"source": title}, start=3, end=6)
    assert [(r["rank"], r["destination"], r["clicks"]) for r in got] == [
        (3, "dest-3", 97), (4, "dest-4", 96), (5, "dest-5", 95)]
    assert len(cassandra_store.select("top_destinations", {"source": title})) == 1200
    cassandra_store.delete_partition("top_destinations", {"source": title})
    assert cassandra_store.select("top_destinations", {"source": title}) == []


def _write_and_read_parquet(url: str) -> pa.Table:
    """The one code path the archive uses: fsspec file system + pyarrow Parquet."""
    fs, root = filesystem(url)
    fs.makedirs(root, exist_ok=True)
    table = pa.table({"click_id": pa.array(range(1000), pa.int64()),
                      "curr": pa.array([f"title-{i % 7}" for i in range(1000)])})
    tmp, final = f"{root}/_tmp-part-0.parquet", f"{root}/part-0.parquet"
    with fs.open(tmp, "wb") as f:
        pq.write_table(table, f)
    fs.mv(tmp, final)
    with fs.open(final, "rb") as f:
        back = pq.read_table(f)
    assert fs.ls(root, detail=False) and not fs.exists(tmp)
    return back, table


@pytest.mark.parametrize("scheme", ["file", "hdfs"])
def test_parquet_write_read_through_fsspec(scheme: str, tmp_path, hdfs_url: str, unique_name: str) -> None:
    url = (tmp_path / unique_name).as_uri() if scheme == "file" else f"{hdfs_url}/tests/{unique_name}"
    back, written = _write_and_read_parquet(url)
    assert back.equals(written)


def test_spark_reads_parquet_from_hdfs(spark, hdfs_url: str, unique_name: str) -> None:
    url = f"{hdfs_url}/tests/{unique_name}"
    _write_and_read_parquet(url)
    df = spark.read.parquet(url)
    counts = {r["curr"]: r["count"] for r in df.groupBy("curr").count().collect()}
    assert sum(counts.values()) == 1000
    assert counts["title-0"] == 143
