"""Add your own aggregate to the streaming pipeline, without touching the package.

Clicks per first letter of the destination title flow through the same event-time
windows (1 s, 10 s, 60 s tumbling; 5 min sliding) and into the same tables as the built-in
metrics, under ``metric = 'first_letter'``.

    python examples/custom_aggregate.py                      # in-process topic, SQLite store
    python examples/custom_aggregate.py --stack local        # Kafka topic -> Cassandra, HDFS
    python examples/custom_aggregate.py --scheduler tcp://127.0.0.1:8786
"""

from __future__ import annotations

import argparse
import os

import pandas as pd
from dask.distributed import Client, LocalCluster

from clickstream.settings import Settings
from clickstream.store import open_store
from pipeline import Aggregate, Pipeline


def first_letter(clicks: pd.DataFrame) -> pd.Series:
    """One key per click (columns: click_id, ts_ms, prev, curr, link_type, referrer_class)."""
    return clicks["curr"].str[0].str.upper()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--stack", default=None, help="embedded (default) or local")
    parser.add_argument("--work-dir", default=None, help="where the embedded store and archive go")
    parser.add_argument("--scheduler", default=None, help="a Dask scheduler address (default: LocalCluster)")
    parser.add_argument("--clicks", type=int, default=50_000, help="synthetic clicks (embedded stack)")
    args = parser.parse_args()
    settings = Settings.from_sources({"stack": args.stack, "work_dir": args.work_dir}, os.environ)

    cluster = None
    if args.scheduler:
        client = Client(args.scheduler)
    else:
        cluster = LocalCluster(n_workers=2, threads_per_worker=1, dashboard_address=None)
        client = Client(cluster)

    memory_topic = None
    if not settings.kafka_bootstrap:  # embedded: replay a synthetic month into an in-process topic
        from clickstream.memory_topic import MemoryTopic
        from producer.expand import expand_clicks
        from producer.sender import send_to_memory
        from producer.synthetic import generate_rows

        memory_topic = MemoryTopic(settings.topic, settings.topic_partitions)
        clicks = expand_clicks(generate_rows(2_000, seed=1, head_share=0.1), seed=1, span_s=120,
                               limit=args.clicks)
        send_to_memory(clicks, memory_topic)  # closes the topic: the run ends when it is read

    aggregates = [Aggregate("first_letter", first_letter)]
    with Pipeline(settings, client=client, memory_topic=memory_topic, aggregates=aggregates) as pipe:
        summary = pipe.run(until_idle_s=5)
    print(f"{summary.clicks} clicks, {summary.late_clicks} late, {summary.dead_letters} dead letters")

    store = open_store(settings)
    rows = store.select("window_totals", {"pipeline": pipe.pipeline_id, "window_ms": 60_000,
                                         "day": "2015-02-01"}, limit=1)
    if rows:
        start = rows[0]["window_start_ms"]
        top = store.select("window_topn", {"pipeline": pipe.pipeline_id, "metric": "first_letter",
                                           "window_ms": 60_000, "window_start_ms": start})
        print("top first letters, latest minute:", [(r["key"], r["clicks"]) for r in top])
    store.close()
    client.close()
    if cluster is not None:
        cluster.close()


if __name__ == "__main__":
    main()
