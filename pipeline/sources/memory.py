"""The in-process source of the embedded default, over ``clickstream.memory_topic.MemoryTopic``.

The topic lives in the driver's memory, which Dask worker processes cannot reach, so
``fetcher()`` is None: the driver reads each raw batch and submits it to a worker
(records travel once, as one list per batch). Commits go to ``MemoryTopic.commit``.
"""

from __future__ import annotations

import time

import numpy as np

from clickstream.memory_topic import MemoryTopic
from pipeline.sources.base import Fetcher, RecordBatch


class MemorySource:
    def __init__(self, topic: MemoryTopic, group: str) -> None:
        self._topic = topic
        self._group = group
        self.topic = topic.name
        self.partitions = tuple(range(topic.partitions))

    def end_offsets(self) -> dict[int, int]:
        return {p: self._topic.end_offset(p) for p in self.partitions}

    def committed(self) -> dict[int, int]:
        done = self._topic.committed(self._group)
        return {p: done.get(p, 0) for p in self.partitions}

    def commit(self, offsets: dict[int, int]) -> None:
        self._topic.commit(self._group, offsets)

    def fetch(self, partition: int, start_offset: int, end_offset: int) -> RecordBatch:
        now_ms = int(time.time() * 1000)
        rows = self._topic.read(partition, start_offset, end_offset - start_offset)
        n = len(rows)
        return RecordBatch(partition, start_offset, start_offset + n,
                           np.arange(start_offset, start_offset + n, dtype=np.int64),
                           np.full(n, now_ms, dtype=np.int64), [k for k, _ in rows], [v for _, v in rows])

    def fetcher(self, *, pinned: bool = False) -> Fetcher | None:
        return None

    def wait_for_data(self, offsets: dict[int, int], timeout_s: float) -> bool:
        return self._topic.wait_for_data(offsets, timeout_s)

    def exhausted(self, offsets: dict[int, int]) -> bool:
        """True once the producer closed the topic and everything was read."""
        return self._topic.closed and all(offsets[p] >= self._topic.end_offset(p)
                                          for p in self.partitions)

    def close(self) -> None:
        return None
