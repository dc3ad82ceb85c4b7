"""Per-partition lag rows: one per source partition with each metrics row, summing to the total."""

from __future__ import annotations

from collections import defaultdict
from pathlib import Path

from clickstream.memory_topic import MemoryTopic
from clickstream.settings import Settings
from pipeline import Pipeline
from producer.sender import records
from tests.pipeline.conftest import dump_sqlite
from tests.pipeline.test_integration import make_clicks

SIZES = (900, 500, 100)  # records per partition, all written before the run starts
BATCH = 200  # stream_batch_records: records per partition and cycle


def test_partition_lag_rows_sum_to_the_records_not_read(tmp_path: Path, dask_client) -> None:
    clicks = make_clicks(100, seed=7, limit=sum(SIZES), span_s=30)
    recs = [(key, value) for key, value, _n, _t in records(clicks)]
    assert len(recs) == sum(SIZES)
    topic = MemoryTopic("lagged", len(SIZES))
    it = iter(recs)
    for partition, size in enumerate(SIZES):
        for _ in range(size):
            key, value = next(it)
            topic.append(key, value, partition=partition)
    topic.close()
    settings = Settings(work_dir=str(tmp_path / "work"), embedded_store_path=str(tmp_path / "s.sqlite"),
                        archive_url=(tmp_path / "archive").as_uri(), topic="lagged",
                        stream_batch_records=BATCH)
    with Pipeline(settings, client=dask_client, memory_topic=topic) as pipe:
        pipe.run()
        progress = pipe.progress()
        pipeline_id = pipe.pipeline_id
    tables = ("pipeline_metrics", "partition_lag")
    stored = dump_sqlite(settings.embedded_store_file, tables, pipeline=pipeline_id)
    metrics_ts = sorted(row[1] for row in stored["pipeline_metrics"])  # (day, ts_ms, ...)
    lag: dict[int, dict[int, tuple[int, int, int]]] = defaultdict(dict)
    for _day, ts_ms, partition, lag_records, next_offset, end_offset in stored["partition_lag"]:
        lag[ts_ms][partition] = (lag_records, next_offset, end_offset)
    # One row per partition with every metrics row (same ts_ms), and none without one.
    assert sorted(lag) == metrics_ts
    assert len(metrics_ts) == -(-max(SIZES) // BATCH)
    for cycle, ts_ms in enumerate(metrics_ts, start=1):
        consumed = [min(size, cycle * BATCH) for size in SIZES]
        assert lag[ts_ms] == {p: (SIZES[p] - consumed[p], consumed[p], SIZES[p]) for p in range(len(SIZES))}
        # ... whose sum is the total lag: every record written and not read after the cycle.
        assert sum(r[0] for r in lag[ts_ms].values()) == sum(SIZES) - sum(consumed)
    assert lag[metrics_ts[0]][0][0] == 700 and lag[metrics_ts[-1]] == {0: (0, 900, 900), 1: (0, 500, 500),
                                                                      2: (0, 100, 100)}
    assert progress.lag_records == {p: row[0] for p, row in lag[metrics_ts[-1]].items()}
    assert [m.lag_records for m in pipe.metrics_history()] == [
        sum(r[0] for r in lag[ts].values()) for ts in metrics_ts]
