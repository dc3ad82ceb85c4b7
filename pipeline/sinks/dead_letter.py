"""Dead-letter sinks: rejected records with their reason, never dropped.

- ``KafkaDeadLetterSink``: the original key and value on ``settings.dead_letter_topic``,
  with headers ``reason``, ``source_topic``, ``source_partition``, ``source_offset``.
- ``FileDeadLetterSink`` (embedded stack): JSON lines (value base64-encoded) in a file
  under ``work_dir``.

``flush`` blocks until every added record is acknowledged (Kafka) or on disk.

Exactly once: ``position()`` says where the output stands (the file's size, the topic's
end offsets) and goes into every checkpoint. After a crash, ``resume(position)`` makes the
cycles run again from that checkpoint write nothing twice: the file is cut back to its
size at the checkpoint; on Kafka the records written since are read back and ``add``
skips any whose source partition and offset are among them.
"""

from __future__ import annotations

import base64
from pathlib import Path
from typing import Any, Protocol

import orjson
from kafka import KafkaConsumer, KafkaProducer, TopicPartition

from pipeline.sources.base import RawRecord


class DeadLetterSink(Protocol):
    def add(self, topic: str, partition: int, record: RawRecord, reason: str) -> None: ...

    def flush(self) -> int: ...

    def position(self) -> dict[str, Any]: ...

    def resume(self, position: dict[str, Any], source_topic: str) -> None: ...

    def close(self) -> None: ...


class KafkaDeadLetterSink:
    def __init__(self, bootstrap: str, topic: str, client_options: dict[str, Any] | None = None) -> None:
        self.topic = topic
        self._bootstrap = bootstrap
        self._options = dict(client_options or {})
        self._producer = KafkaProducer(bootstrap_servers=bootstrap, acks="all", linger_ms=20,
                                       client_id="clickstream-pipeline-dead-letter", **self._options)
        self._futures: list = []
        self._already: set[tuple[str, int, int]] = set()
        self._ends_reader: KafkaConsumer | None = None  # kept: a new one per checkpoint cost ~0.2 s

    def add(self, topic: str, partition: int, record: RawRecord, reason: str) -> None:
        if (topic, partition, record.offset) in self._already:
            return
        headers = [("reason", reason.encode("utf-8")), ("source_topic", topic.encode("utf-8")),
                   ("source_partition", str(partition).encode()),
                   ("source_offset", str(record.offset).encode())]
        self._futures.append(self._producer.send(self.topic, key=record.key,
                                                 value=record.value or b"", headers=headers))

    def flush(self) -> int:
        self._producer.flush()
        n = len(self._futures)
        for future in self._futures:
            future.get(timeout=60)
        self._futures.clear()
        return n

    def position(self) -> dict[str, Any]:
        """The topic's end offsets (asked of the brokers at each call, over one kept consumer)."""
        if self._ends_reader is None:
            self._ends_reader = self._reader()
        tps = self._partitions(self._ends_reader)
        return {"end_offsets": {str(tp.partition): int(o)
                                for tp, o in self._ends_reader.end_offsets(tps).items()}}

    def resume(self, position: dict[str, Any], source_topic: str) -> None:
        """Remember which dead letters of ``source_topic`` were written after ``position``."""
        consumer = self._reader()
        try:
            tps = self._partitions(consumer)
            ends = consumer.end_offsets(tps)
            starts = position.get("end_offsets", {})
            consumer.assign(tps)
            for tp in tps:
                consumer.seek(tp, int(starts.get(str(tp.partition), 0)))
            remaining = {tp for tp in tps if consumer.position(tp) < ends[tp]}
            while remaining:
                for records in consumer.poll(timeout_ms=1000).values():
                    for rec in records:
                        h = {k: v.decode("utf-8") for k, v in rec.headers}
                        if h.get("source_topic") == source_topic:
                            self._already.add((source_topic, int(h["source_partition"]),
                                               int(h["source_offset"])))
                remaining = {tp for tp in remaining if consumer.position(tp) < ends[tp]}
        finally:
            consumer.close()

    def _reader(self) -> KafkaConsumer:
        return KafkaConsumer(bootstrap_servers=self._bootstrap, group_id=None, enable_auto_commit=False,
                             client_id="clickstream-pipeline-dead-letter-check", **self._options)

    def _partitions(self, consumer: KafkaConsumer) -> list[TopicPartition]:
        parts = consumer.partitions_for_topic(self.topic) or set()
        return [TopicPartition(self.topic, p) for p in sorted(parts)]

    def close(self) -> None:
        self._producer.close()
        if self._ends_reader is not None:
            self._ends_reader.close()


class FileDeadLetterSink:
    def __init__(self, path: Path) -> None:
        self.path = path
        self._lines: list[bytes] = []

    def add(self, topic: str, partition: int, record: RawRecord, reason: str) -> None:
        self._lines.append(orjson.dumps({
            "reason": reason, "source_topic": topic, "source_partition": partition,
            "source_offset": record.offset,
            "key": base64.b64encode(record.key or b"").decode(),
            "value": base64.b64encode(record.value or b"").decode(),
        }) + b"\n")

    def flush(self) -> int:
        if not self._lines:
            return 0
        self.path.parent.mkdir(parents=True, exist_ok=True)
        with self.path.open("ab") as out:
            out.writelines(self._lines)
        n = len(self._lines)
        self._lines.clear()
        return n

    def position(self) -> dict[str, Any]:
        return {"size": self.path.stat().st_size if self.path.exists() else 0}

    def resume(self, position: dict[str, Any], source_topic: str) -> None:
        """Cut the file back to its size at the checkpoint (what came after is written again)."""
        if self.path.exists():
            with self.path.open("r+b") as out:
                out.truncate(int(position.get("size", 0)))

    def close(self) -> None:
        return None


def read_dead_letter_file(path: Path) -> list[dict]:
    """The records of a file dead-letter sink (value and key decoded back to bytes)."""
    out = []
    if not path.exists():
        return out
    for line in path.read_bytes().splitlines():
        row = orjson.loads(line)
        row["key"] = base64.b64decode(row["key"])
        row["value"] = base64.b64decode(row["value"])
        out.append(row)
    return out
