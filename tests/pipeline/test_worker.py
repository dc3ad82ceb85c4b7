"""A worker's task: ranges alone or in a group give the same partials; a failure stays with its range."""

from __future__ import annotations

from pathlib import Path

import numpy as np
from distributed import get_task_stream

from clickstream.events import Click, encode_click
from clickstream.memory_topic import MemoryTopic
from clickstream.settings import Settings
from pipeline import Pipeline
from pipeline.graph import group_by_worker
from pipeline.operators.aggregate import BUILTIN_AGGREGATES
from pipeline.sources.base import RecordBatch
from pipeline.worker import BatchTask, Partial, process_batch, process_batches
from tests.pipeline.conftest import read_archive

T0 = 1_422_748_800_000  # 2015-02-01T00:00:00Z


def _task(partition: int, start: int, clicks: list[Click], archive_url: str, *, bad: int = 0,
          fetcher=None) -> BatchTask:
    values: list[bytes | None] = [encode_click(c) for c in clicks] + [b"{not json"] * bad
    n = len(values)
    records = RecordBatch(partition, start, start + n, np.arange(start, start + n, dtype=np.int64),
                          np.full(n, T0, dtype=np.int64), [b"k"] * n, values)
    return BatchTask("t", partition, start, start + n, 0, archive_url, BUILTIN_AGGREGATES, fetcher,
                     None if fetcher else records)


def _clicks(first_id: int, n: int) -> list[Click]:
    return [Click(first_id + i, T0 + (i * 7_919) % 900_000, ["A", "B", "other-search"][i % 3],
                  ["X", "Y", "Z", "W"][(i * 5) % 4], "link") for i in range(n)]


def _same(a: Partial, b: Partial) -> None:
    assert (a.partition, a.start_offset, a.end_offset, a.records, a.clicks, a.late_clicks, a.max_ts_ms) == \
        (b.partition, b.start_offset, b.end_offset, b.records, b.clicks, b.late_clicks, b.max_ts_ms)
    assert a.counts.sort_by([(c, "ascending") for c in a.counts.column_names]).equals(
        b.counts.sort_by([(c, "ascending") for c in b.counts.column_names]))
    assert [(r.offset, reason) for r, reason in a.dead] == [(r.offset, reason) for r, reason in b.dead]
    assert [Path(p).name for p in a.archived] == [Path(p).name for p in b.archived]


def test_a_group_gives_each_range_the_partial_it_gets_alone(tmp_path: Path) -> None:
    def tasks(url: str) -> list[BatchTask]:
        return [_task(0, 0, _clicks(0, 300), url), _task(1, 40, _clicks(300, 200), url, bad=3),
                _task(0, 300, _clicks(500, 250), url)]

    alone = [process_batch(t) for t in tasks((tmp_path / "alone").as_uri())]
    grouped = process_batches(tasks((tmp_path / "grouped").as_uri()))
    assert len(grouped) == 3 and all(p.error is None for p in grouped)
    for a, g in zip(alone, grouped, strict=True):
        _same(a, g)
    assert sum(len(p.dead) for p in grouped) == 3
    archived = read_archive((tmp_path / "grouped").as_uri())
    assert sorted(archived["click_id"]) == list(range(750))


def test_a_failing_range_fails_alone_and_the_others_are_written(tmp_path: Path) -> None:
    good_url = (tmp_path / "archive").as_uri()
    blocked = tmp_path / "not-a-folder"
    blocked.write_text("a file where the archive folder should be")

    def kafka_down(partition: int, start: int, end: int) -> RecordBatch:
        raise ConnectionRefusedError(f"broker down (partition {partition})")

    parts = process_batches([_task(0, 0, _clicks(0, 100), good_url),
                             _task(1, 0, _clicks(100, 100), good_url, fetcher=kafka_down),
                             _task(2, 0, _clicks(200, 100), blocked.as_uri()),
                             _task(3, 0, _clicks(300, 100), good_url)])
    assert [p.partition for p in parts] == [0, 1, 2, 3]
    assert parts[0].error is None and parts[3].error is None
    assert parts[1].retryable and "partition 1 offsets 0..100" in (parts[1].error or "")
    assert "ConnectionRefusedError" in (parts[1].error or "")
    assert parts[2].retryable and "partition 2 offsets 0..100" in (parts[2].error or "")
    assert parts[2].counts.num_rows == 0 and parts[2].clicks == 0  # nothing of a failed range is kept
    archived = read_archive(good_url)
    assert sorted(archived["click_id"]) == list(range(100)) + list(range(300, 400))


def test_each_partition_is_grouped_onto_the_same_worker_in_order() -> None:
    url = "file:///unused"
    tasks = [BatchTask("t", p, start, start + 10, 0, url, ())
             for p, start in [(2, 0), (0, 0), (1, 0), (3, 0), (0, 10), (2, 10)]]
    groups = group_by_worker(tasks, (0, 1, 2, 3), ("tcp://a", "tcp://b"))
    assert groups == {"tcp://a": (tasks[0], tasks[1], tasks[4], tasks[5]),  # partitions 0 and 2
                      "tcp://b": (tasks[2], tasks[3])}  # partitions 1 and 3
    assert group_by_worker(tasks, (0, 1, 2, 3), ()) == {None: tuple(tasks)}
    assert group_by_worker([], (0, 1), ("tcp://a",)) == {}


def test_a_caught_up_cycle_runs_one_dask_task_on_each_worker(dask_client, tmp_path: Path) -> None:
    topic = MemoryTopic("grouped", 4)
    for c in _clicks(0, 400):
        topic.append(str(c.click_id).encode(), encode_click(c))
    topic.close()
    settings = Settings(work_dir=str(tmp_path / "work"), archive_url=(tmp_path / "archive").as_uri(),
                        consumer_group="grouped")
    with get_task_stream(dask_client) as stream, Pipeline(settings, client=dask_client,
                                                           memory_topic=topic) as pipe:
        summary = pipe.run()
    assert summary.cycles == 1 and summary.clicks == 400
    batches = [t for t in stream.data if str(t["key"]).startswith("process_batches")]
    assert len(batches) == 2
    assert sorted(t["worker"] for t in batches) == sorted(dask_client.nthreads())
    assert sorted(read_archive(settings.archive)["click_id"]) == list(range(400))
