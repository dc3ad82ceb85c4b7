"""An in-process, partitioned, append-only log with Kafka's shape, for no-server runs.

The producer appends ``(key, value)`` records exactly as it would send them to Kafka, and
the pipeline's in-process source reads offset ranges of a partition, so the embedded
default exercises the same encoding, partitioning, decoding and offset-commit logic as
the real stack. Partition choice is Kafka's default (murmur2 of the key), so a key maps
to the same partition number here and in Kafka for the same partition count.

Thread-safe. ``read`` never blocks; ``wait_for_data`` blocks up to a timeout. ``close``
marks the end of the stream (the producer is done); readers see ``closed`` once they
have read everything.
"""

from __future__ import annotations

import threading

from kafka.partitioner.default import murmur2


def partition_for(key: bytes, partitions: int) -> int:
    """Kafka's default partitioner (positive murmur2 of the key, modulo the count)."""
    return (murmur2(key) & 0x7FFFFFFF) % partitions


class MemoryTopic:
    def __init__(self, name: str, partitions: int) -> None:
        if partitions < 1:
            raise ValueError(f"topic {name}: partitions must be >= 1, got {partitions}")
        self.name = name
        self.partitions = partitions
        self._logs: list[list[tuple[bytes, bytes]]] = [[] for _ in range(partitions)]
        self._committed: dict[str, dict[int, int]] = {}
        self._cond = threading.Condition()
        self._closed = False

    def append(self, key: bytes, value: bytes, partition: int | None = None) -> tuple[int, int]:
        """Append one record; returns (partition, offset)."""
        p = partition_for(key, self.partitions) if partition is None else partition
        with self._cond:
            if self._closed:
                raise RuntimeError(f"topic {self.name} is closed")
            log = self._logs[p]
            log.append((key, value))
            self._cond.notify_all()
            return p, len(log) - 1

    def end_offset(self, partition: int) -> int:
        with self._cond:
            return len(self._logs[partition])

    def read(self, partition: int, start_offset: int, max_records: int) -> list[tuple[bytes, bytes]]:
        """Records [start_offset, start_offset + max_records) of a partition (fewer at the end)."""
        with self._cond:
            return self._logs[partition][start_offset:start_offset + max_records]

    def wait_for_data(self, offsets: dict[int, int], timeout_s: float) -> bool:
        """Block until some partition has records past ``offsets`` or the topic is closed."""
        def ready() -> bool:
            return self._closed or any(len(self._logs[p]) > o for p, o in offsets.items())
        with self._cond:
            return self._cond.wait_for(ready, timeout=timeout_s)

    def close(self) -> None:
        with self._cond:
            self._closed = True
            self._cond.notify_all()

    @property
    def closed(self) -> bool:
        with self._cond:
            return self._closed

    def commit(self, group: str, offsets: dict[int, int]) -> None:
        """Record a group's next offsets to read (what Kafka's commit means)."""
        with self._cond:
            self._committed.setdefault(group, {}).update(offsets)

    def committed(self, group: str) -> dict[int, int]:
        with self._cond:
            return dict(self._committed.get(group, {}))
