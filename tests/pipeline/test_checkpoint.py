"""The checkpoints: the plan log in the store, and states written off the critical path.

- plans logged in either store come back in order after a state, and are pruned only once
  a newer state has landed;
- a Kafka commit never precedes the landing of the state that holds its offsets: the
  states are written to HDFS (each close ~0.5 s, so a write is still in flight while the
  next cycles run), and every commit the pipeline makes is checked against the newest
  state file at that moment.
"""

from __future__ import annotations

import shutil
import threading
import time
from collections.abc import Callable
from pathlib import Path

import pytest

from clickstream.memory_topic import MemoryTopic
from clickstream.settings import Settings
from clickstream.store.embedded import EmbeddedStore
from pipeline import Pipeline
from pipeline.checkpoint import (
    CheckpointError,
    Checkpoints,
    CyclePlan,
    FilePlans,
    PlanLog,
    Snapshot,
    StorePlans,
    decode,
    encode,
    is_cut_short,
)
from pipeline.graph import PipelineError
from pipeline.operators.windows import WindowState
from pipeline.sources.base import RecordBatch
from pipeline.sources.memory import MemorySource
from producer.sender import records
from tests.pipeline.conftest import COMPARED, assert_tables_equal, dump_sqlite, recount
from tests.pipeline.test_integration import make_clicks, remove_archive
from tests.pipeline.test_operators import T0, _clicks, _process


def _plan(cycle: int) -> CyclePlan:
    return CyclePlan(cycle, {0: (100 * cycle, 100 * cycle + 100), 3: (7, 9)}, {0: 10_000, 3: 9},
                     60_000 * cycle)


def _state(cycle: int) -> Snapshot:
    meta, tables = WindowState().snapshot()
    return Snapshot(cycle, {"window": meta, "next_offsets": {"0": 100 * cycle + 100}}, tables)


def plan_log_round_trip(checkpoint_url: str, pipeline_id: str, plans_of: Callable[[str], PlanLog]) -> None:
    """Plans 1..6 logged; states of cycles 2 and 4 saved: a restart from 4 runs 5 and 6, and
    the plans the oldest kept state (2) covers are gone; another pipeline's plans stay."""
    other = plans_of(pipeline_id + "/other")
    other.log(_plan(1))
    checkpoints = Checkpoints(checkpoint_url, pipeline_id, plans_of(pipeline_id))
    assert checkpoints.latest() is None and checkpoints.plans_after(0) == []
    for cycle in range(1, 7):
        checkpoints.log_plan(_plan(cycle))
    assert checkpoints.plans_after(0) == [_plan(c) for c in range(1, 7)]
    checkpoints.save(_state(2))
    assert checkpoints.plans_after(0) == [_plan(c) for c in range(3, 7)]  # 1, 2: in state 2
    checkpoints.save(_state(4))
    latest = checkpoints.latest()
    assert latest is not None and latest.cycle == 4 and latest.meta["next_offsets"] == {"0": 500}
    assert checkpoints.plans_after(latest.cycle) == [_plan(5), _plan(6)]
    assert checkpoints.plans_after(0) == [_plan(c) for c in range(3, 7)]  # state 2 is still kept
    checkpoints.plans.clear()
    assert checkpoints.plans_after(0) == []
    assert other.after(0) == [_plan(1)]


def test_plan_log_round_trip_in_the_embedded_store(tmp_path: Path) -> None:
    store = EmbeddedStore(tmp_path / "s.sqlite")
    try:
        plan_log_round_trip((tmp_path / "ckpt").as_uri(), "group/topic with space",
                            lambda pipeline_id: StorePlans(store, pipeline_id))
    finally:
        store.close()


@pytest.mark.integration
def test_plan_log_round_trip_in_cassandra(cassandra_store, tmp_path: Path, unique_name: str) -> None:
    plan_log_round_trip((tmp_path / "ckpt").as_uri(), unique_name,
                        lambda pipeline_id: StorePlans(cassandra_store, pipeline_id))


def test_plan_log_round_trip_in_files(tmp_path: Path) -> None:
    """``checkpoint_plan_log = files``: plans/<cycle>.json beside the states."""
    url = (tmp_path / "ckpt").as_uri()
    plan_log_round_trip(url, "group/topic", lambda pipeline_id: FilePlans(Checkpoints(url, pipeline_id)))
    assert sorted(p.name for p in (tmp_path / "ckpt" / "group~2ftopic~2fother" / "plans").iterdir()) == [
        "000000000001.json"]


class _CheckedCommits(MemorySource):
    """The in-process source; each commit is compared with the newest state file then."""

    def __init__(self, topic: MemoryTopic, group: str, checkpoints: Checkpoints) -> None:
        super().__init__(topic, group)
        self._checkpoints = checkpoints
        self.commits: list[tuple[dict[int, int], dict[int, int] | None]] = []
        self.fetched_beside_a_write = 0  # batches read for a cycle while a state was being written

    def fetch(self, partition: int, start_offset: int, end_offset: int) -> RecordBatch:
        self.fetched_beside_a_write += any(t.name.startswith("checkpoint-") for t in threading.enumerate())
        return super().fetch(partition, start_offset, end_offset)

    def commit(self, offsets: dict[int, int]) -> None:
        snap = self._checkpoints.latest()
        landed = None if snap is None else {int(p): o for p, o in snap.meta["next_offsets"].items()}
        self.commits.append((dict(offsets), landed))
        super().commit(offsets)


@pytest.mark.integration
def test_no_kafka_commit_precedes_the_landing_of_its_state(hdfs_url: str, tmp_path: Path, dask_client,
                                                           unique_name: str,
                                                           monkeypatch: pytest.MonkeyPatch) -> None:
    """Commits follow the state's landing, and the state writes (on HDFS, each held back
    0.3 s, as a slow or busy HDFS would) run beside the cycles, which do not wait for them."""
    write_state = Checkpoints.write_state

    def slow_write_state(self: Checkpoints, cycle: int, body: bytes) -> None:
        time.sleep(0.3)
        write_state(self, cycle, body)

    monkeypatch.setattr(Checkpoints, "write_state", slow_write_state)
    clicks = make_clicks(300, seed=5, limit=40_000, span_s=120)
    topic = MemoryTopic(unique_name, 4)
    for key, value, _n, _t in records(clicks):
        topic.append(key, value)
    topic.close()
    store_file = tmp_path / "s.sqlite"
    settings = Settings(work_dir=str(tmp_path / "work"), embedded_store_path=str(store_file),
                        archive_url=(tmp_path / "archive").as_uri(), topic=unique_name,
                        checkpoint_url=f"{hdfs_url}/tests/{unique_name}", checkpoint_interval_s=0.0,
                        stream_batch_records=400)
    checkpoints = Checkpoints(settings.checkpoints, settings.pipeline_id)
    source = _CheckedCommits(topic, settings.consumer_group, checkpoints)
    try:
        with Pipeline(settings, client=dask_client, source=source) as pipe:
            summary = pipe.run()
        offsets = [c for c, _ in source.commits]
        assert [c == landed for c, landed in source.commits] == [True] * len(source.commits), source.commits
        assert offsets[-1] == {p: topic.end_offset(p) for p in range(4)}
        assert summary.checkpoints == len(offsets) >= 3
        assert source.fetched_beside_a_write > 0  # the writes overlapped cycles
        assert_tables_equal(dump_sqlite(store_file, COMPARED, pipeline=settings.pipeline_id), recount(clicks))
    finally:
        remove_archive(settings.checkpoints)


def test_a_state_that_cannot_be_written_stops_the_pipeline_naming_the_file(tmp_path: Path,
                                                                             dask_client) -> None:
    """Once the first state landed the state folder turns into a file: every later write
    fails (retried, ``status()`` says so) until ``outage_timeout_s``, then ``run`` raises."""
    clicks = make_clicks(300, seed=6, limit=30_000, span_s=120)
    topic = MemoryTopic("t", 4)
    for key, value, _n, _t in records(clicks):
        topic.append(key, value)
    topic.close()
    settings = Settings(work_dir=str(tmp_path / "work"), embedded_store_path=str(tmp_path / "s.sqlite"),
                        archive_url=(tmp_path / "archive").as_uri(), topic="t",
                        checkpoint_url=(tmp_path / "ckpt").as_uri(), checkpoint_interval_s=0.0,
                        stream_batch_records=200, outage_timeout_s=2.0)
    folder = tmp_path / "ckpt" / "clickstream-pipeline~2ft" / "state"
    statuses: list[str] = []

    class BlockedStates(MemorySource):
        def commit(self, offsets: dict[int, int]) -> None:
            super().commit(offsets)
            if folder.is_dir():  # after the first state landed
                shutil.rmtree(folder)
                folder.write_text("not a folder")

    with Pipeline(settings, client=dask_client, source=BlockedStates(topic, settings.consumer_group)) as pipe:
        watcher = threading.Thread(target=lambda: [statuses.append(pipe.status()) or time.sleep(0.05)
                                                   for _ in range(100)], daemon=True)
        watcher.start()
        with pytest.raises(PipelineError, match=r"checkpoint .*/state/\d{12}\.ckpt not written: "
                                                r"checkpoints: gave up after 2 s"):
            pipe.run()
    assert any(s.startswith("waiting for checkpoints: CheckpointError") for s in statuses), set(statuses)


def test_an_encoded_state_is_a_copy_later_cycles_cannot_change(tmp_path: Path) -> None:
    """The bytes handed to the writer thread restore the state as it was when they were
    taken, however the live state changes while they wait to be written."""
    clicks = _clicks()
    live, twin = WindowState(), WindowState()
    for state in (live, twin):
        state.add_counts(_process(clicks[:200], tmp_path).counts)
        state.finalize(T0 + 350_000)
    meta, tables = live.snapshot()
    body = encode(Snapshot(7, {"window": meta}, tables))
    live.add_counts(_process(clicks[200:], tmp_path, finalized_ms=live.finalized_ms, start=200).counts)
    live.finalize(T0 + 500_000)
    live.snapshot()  # merges its count frames again
    saved = decode(body, "test")
    assert WindowState.restore(saved.meta["window"], saved.tables).finalize_all() == twin.finalize_all()


def test_only_a_beginning_of_a_state_file_is_cut_short(tmp_path: Path) -> None:
    """Every proper beginning of a state's bytes asks for more (the restart reads again);
    the whole file and bytes that are no state file at all do not (decode names those)."""
    state = WindowState()
    state.add_counts(_process(_clicks()[:200], tmp_path).counts)
    meta, tables = state.snapshot()
    body = encode(Snapshot(3, {"window": meta}, tables))
    assert len(tables) >= 1
    assert all(is_cut_short(body[:n]) for n in range(0, len(body), max(1, len(body) // 500)))
    assert is_cut_short(body[:-1]) and not is_cut_short(body)
    assert not is_cut_short(b"PAR1" + body) and not is_cut_short(b"{}")
    with pytest.raises(CheckpointError, match="cut short"):
        decode(body[:-1], "test")


def test_a_state_file_that_reads_short_at_first_is_read_again(tmp_path: Path,
                                                              monkeypatch: pytest.MonkeyPatch) -> None:
    """As HDFS can answer right after a close: the newest state reads empty, then whole."""
    checkpoints = Checkpoints((tmp_path / "ck").as_uri(), "p")
    checkpoints.save(_state(4))
    real_open = checkpoints._fs.open
    reads = []

    def open_short_at_first(path: str, mode: str = "rb"):
        reads.append(path)
        f = real_open(path, mode)
        if len(reads) == 1:
            f.read()  # at its end: the first read returns no bytes
        return f

    monkeypatch.setattr(checkpoints._fs, "open", open_short_at_first)
    latest = checkpoints.latest()
    assert latest is not None and latest.cycle == 4 and len(reads) == 2
