from __future__ import annotations

import threading

from kafka.partitioner.default import murmur2

from clickstream.memory_topic import MemoryTopic, partition_for


def test_partitioning_matches_kafkas_default_partitioner() -> None:
    for key in (b"London", b"Main_Page", "\u00c9cole".encode()):
        assert partition_for(key, 4) == (murmur2(key) & 0x7FFFFFFF) % 4


def test_read_ranges_and_commits() -> None:
    topic = MemoryTopic("t", 2)
    for i in range(10):
        topic.append(b"k", str(i).encode())
    p = partition_for(b"k", 2)
    assert topic.end_offset(p) == 10
    assert [v for _, v in topic.read(p, 3, 4)] == [b"3", b"4", b"5", b"6"]
    topic.commit("g", {p: 7})
    assert topic.committed("g") == {p: 7}
    assert topic.committed("other") == {}


def test_wait_for_data_wakes_on_append_and_on_close() -> None:
    topic = MemoryTopic("t", 1)
    threading.Timer(0.05, lambda: topic.append(b"k", b"v")).start()
    assert topic.wait_for_data({0: 0}, timeout_s=5)
    threading.Timer(0.05, topic.close).start()
    assert topic.wait_for_data({0: 1}, timeout_s=5)
    assert topic.closed
