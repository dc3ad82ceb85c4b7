"""How the batch job schedules its table writes (pure orchestration: no Spark here)."""

from __future__ import annotations

import threading
from typing import Any

import pytest

from spark_jobs.batch import write_tables
from spark_jobs.batch_tables import BATCH_TABLES, SHARED_AGGREGATES, START_ORDER, TABLE_AGGREGATES


def test_start_order_lets_the_first_reader_fill_each_shared_aggregate() -> None:
    assert sorted(START_ORDER) == sorted(BATCH_TABLES)
    for aggregate in SHARED_AGGREGATES:
        readers = [name for name in START_ORDER if aggregate in TABLE_AGGREGATES[name]]
        later_readers = {START_ORDER.index(name) for name in readers[1:]}
        others = {START_ORDER.index(name) for name in START_ORDER if name not in readers}
        assert readers[0] == START_ORDER[0], aggregate
        assert min(later_readers) > max(others), aggregate


def test_every_table_written_once_two_at_a_time() -> None:
    lock = threading.Lock()
    both_running = threading.Barrier(2, timeout=10)
    calls: list[tuple[str, object]] = []
    tables: dict[str, Any] = {name: object() for name in BATCH_TABLES}

    def write(name: str, table: object) -> int:
        with lock:
            calls.append((name, table))
        if name in START_ORDER[:2]:
            both_running.wait()  # fails (BrokenBarrierError) unless the first two overlap
        return len(name)

    written = write_tables(tables, write, writers=2)
    assert written == {name: len(name) for name in BATCH_TABLES}
    assert list(written) == list(BATCH_TABLES)
    assert sorted(calls, key=lambda call: call[0]) == sorted(tables.items())


def test_a_failed_table_is_raised_after_the_others_are_written() -> None:
    written: list[str] = []

    def write(name: str, table: object) -> int:
        if name == START_ORDER[0]:
            raise RuntimeError(f"{name}: store unavailable")
        written.append(name)
        return 1

    with pytest.raises(RuntimeError, match=f"{START_ORDER[0]}: store unavailable"):
        write_tables({name: object() for name in BATCH_TABLES}, write)
    assert sorted(written) == sorted(START_ORDER[1:])
