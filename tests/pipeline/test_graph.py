"""Which failures the pipeline waits out (an outage) and which stop it at once; an outage
is not idle time."""

from __future__ import annotations

import threading
import time
from pathlib import Path

from cassandra import InvalidRequest, OperationTimedOut
from cassandra.cluster import NoHostAvailable
from kafka.errors import KafkaConnectionError

from clickstream.events import Click, encode_click
from clickstream.memory_topic import MemoryTopic
from clickstream.settings import Settings
from pipeline import Pipeline
from pipeline.checkpoint import CheckpointError
from pipeline.graph import is_transient
from pipeline.sources.base import SourceError
from pipeline.sources.memory import MemorySource

T0 = 1_422_748_800_000  # 2015-02-01T00:00:00Z


def test_unreachable_servers_are_waited_for() -> None:
    for exc in (NoHostAvailable("down", {}), OperationTimedOut(), KafkaConnectionError(),
                ConnectionRefusedError(), SourceError("topic t: not readable"), CheckpointError("hdfs")):
        assert is_transient(exc), exc


def test_refusals_and_bugs_stop_the_pipeline_at_once() -> None:
    for exc in (InvalidRequest("Undefined column name pipeline"), TypeError("bug"), KeyError("x")):
        assert not is_transient(exc), exc


class _StallingSource(MemorySource):
    """A memory topic whose end offsets stall once for ``stall_s`` (a broker away), on the
    ``stall_on``-th call."""

    def __init__(self, topic: MemoryTopic, stall_on: int, stall_s: float) -> None:
        super().__init__(topic, "stalling")
        self.calls = 0
        self._stall_on, self._stall_s = stall_on, stall_s

    def end_offsets(self) -> dict[int, int]:
        self.calls += 1
        if self.calls == self._stall_on:
            time.sleep(self._stall_s)
        return super().end_offsets()


def test_waiting_for_a_stalled_source_is_not_idle_time(dask_client, tmp_path: Path) -> None:
    topic = MemoryTopic("stalling", 2)
    first = [Click(i, T0 + i * 10, "A", "B", "link") for i in range(100)]
    later = [Click(100 + i, T0 + 5_000 + i * 10, "A", "C", "link") for i in range(50)]
    for c in first:
        topic.append(str(c.click_id).encode(), encode_click(c))
    source = _StallingSource(topic, stall_on=3, stall_s=4.0)  # idle from the 2nd call on
    settings = Settings(work_dir=str(tmp_path / "work"), archive_url=(tmp_path / "archive").as_uri(),
                        consumer_group="stalling", stream_poll_interval_s=0.05)
    # appended after the stall: only a pipeline that did not count the stall as idle reads them
    append_later = threading.Timer(5.0, lambda: [topic.append(str(c.click_id).encode(), encode_click(c))
                                                 for c in later])
    with Pipeline(settings, client=dask_client, source=source) as pipe:
        append_later.start()
        summary = pipe.run(until_idle_s=3.0)
    append_later.join()
    assert source.calls > 3
    assert summary.clicks == len(first) + len(later)
