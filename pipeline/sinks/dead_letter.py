"""Dead-letter sinks: rejected records with their reason, never dropped.

- ``KafkaDeadLetterSink``: the original key and value on ``settings.dead_letter_topic``,
  with headers ``reason``, ``source_topic``, ``source_partition``, ``source_offset``.
- ``FileDeadLetterSink`` (embedded stack): JSON lines (value base64-encoded) in a file
  under ``work_dir``.

``flush`` blocks until every added record is acknowledged (Kafka) or on disk. A replay of
the same offsets after a crash sends them again (the source offset headers identify them).
"""

from __future__ import annotations

import base64
from pathlib import Path
from typing import Protocol

import orjson
from kafka import KafkaProducer

from pipeline.sources.base import RawRecord


class DeadLetterSink(Protocol):
    def add(self, topic: str, partition: int, record: RawRecord, reason: str) -> None: ...

    def flush(self) -> int: ...

    def close(self) -> None: ...


class KafkaDeadLetterSink:
    def __init__(self, bootstrap: str, topic: str) -> None:
        self.topic = topic
        self._producer = KafkaProducer(bootstrap_servers=bootstrap, acks="all", linger_ms=20,
                                       client_id="clickstream-pipeline-dead-letter")
        self._futures: list = []

    def add(self, topic: str, partition: int, record: RawRecord, reason: str) -> None:
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

    def close(self) -> None:
        self._producer.close()


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
