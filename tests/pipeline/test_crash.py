"""Exactly once through crashes: `clickstream stream` killed with SIGKILL again and again.

The stream processor (the CLI process and its Dask workers, one process group) is killed
at random moments, restarted each time, and finally run until idle. The oracle is
computed from the input alone: window rows == an independent recount, no late clicks (no
record was late in event time), archive rows == input clicks each once, no temporary file
left, dead letters == the bad records, each once.
"""

from __future__ import annotations

import os
import random
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from kafka import KafkaConsumer

from clickstream.archive import filesystem
from clickstream.settings import Settings
from clickstream.store.cassandra import CassandraStore
from pipeline.checkpoint import Checkpoints, StorePlans
from tests.pipeline.conftest import COMPARED, assert_tables_equal, dump_cassandra, read_archive, recount
from tests.pipeline.test_integration import (
    BAD_VALUES,
    make_clicks,
    produce,
    remove_archive,
)

pytestmark = pytest.mark.integration

REPO = Path(__file__).resolve().parents[2]
KILLS = 9  # 3 at start, 3 mid-work, 3 mid state write
N_CLICKS = 70_000
N_BAD = 200


def _stream_argv(settings: Settings, work: Path, *extra: str) -> list[str]:
    return [sys.executable, "-m", "launch.cli.main", "stream", "--stack", "local",
            "--topic", settings.topic, "--consumer-group", settings.consumer_group,
            "--dead-letter-topic", settings.dead_letter_topic,
            "--cassandra-keyspace", settings.cassandra_keyspace, "--archive-url", settings.archive,
            "--work-dir", str(work), "--dask-workers", "1", "--stream-batch-records", "1500",
            "--checkpoint-interval-s", "0.3", "--log-level", "WARNING",
            "--dask-dashboard-address", "", *extra]  # no dashboard: a faster start, more kills mid-work


def _newest_cycle(checkpoints: Checkpoints) -> int:
    """The newest cycle planned (logged) or checkpointed so far, -1 before the first."""
    snap = checkpoints.latest()
    logged = [p.cycle for p in checkpoints.plans_after(-1)]
    return max([-1, *logged, *([snap.cycle] if snap else [])])


def _dead_letters(settings: Settings, at_least: int) -> list:
    consumer = KafkaConsumer(settings.dead_letter_topic, bootstrap_servers=settings.kafka_bootstrap,
                             group_id=None, auto_offset_reset="earliest", consumer_timeout_ms=5_000)
    got = list(consumer)
    consumer.close()
    assert len(got) >= at_least
    return got


def writing_state(checkpoints: Checkpoints) -> bool:
    """A state file is being written (its temporary file is there, not renamed yet)."""
    fs, root = filesystem(checkpoints.url + "/state")
    return fs.exists(root) and any("_tmp-" in f for f in fs.ls(root, detail=False))


def _kill_again_and_again_then_finish(settings: Settings, checkpoints: Checkpoints, recs: list, kills: int,
                                      wait: Callable[[int, random.Random], None], tmp_path: Path) -> None:
    """Start ``clickstream stream``, SIGKILL its process group once ``wait(kill, rng)`` returns,
    and again, ``kills`` times; then run it until idle."""
    rng = random.Random(7)
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    work = tmp_path / "work"
    for kill in range(kills):
        proc = subprocess.Popen(_stream_argv(settings, work), cwd=REPO, env=env, start_new_session=True,
                                stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        wait(kill, rng)
        assert proc.poll() is None, f"run {kill} ended by itself: {proc.stderr.read().decode()[-2000:]}"
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait(30)
        proc.stderr.close()
    snap = checkpoints.latest()  # the kills landed while there was work: some, not all, checkpointed
    assert snap is not None and 0 < sum(snap.meta["next_offsets"].values()) < len(recs)
    done = subprocess.run(_stream_argv(settings, work, "--until-idle-s", "3"), cwd=REPO, env=env,
                          capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr[-3000:]


def _assert_exact_outputs(settings: Settings, clicks: list) -> None:
    stored = dump_cassandra(settings, COMPARED, pipeline=settings.pipeline_id)
    assert_tables_equal(stored, recount(clicks))  # late clicks: none (recount with no late ids)
    archived = read_archive(settings.archive)
    assert len(archived) == N_CLICKS and archived["click_id"].is_unique
    assert not archived["late"].any()
    fs, root = filesystem(settings.archive)
    assert [f for f in fs.find(root) if "_tmp-" in f] == []
    letters = _dead_letters(settings, N_BAD)
    sources = [(dict(r.headers)["source_partition"], dict(r.headers)["source_offset"]) for r in letters]
    assert len(sources) == len(set(sources)) == N_BAD
    assert {r.key for r in letters} == {f"bad-{i}".encode() for i in range(N_BAD)}


def _produce_input(settings: Settings) -> tuple[list, list]:
    clicks = make_clicks(1_500, seed=21, limit=N_CLICKS, span_s=240)
    from producer.sender import records

    recs = [(k, v) for k, v, _n, _t in records(clicks)]
    step = len(recs) // N_BAD
    for i in range(N_BAD):
        recs.insert(i * (step + 1) + step, (f"bad-{i}".encode(), BAD_VALUES[i % len(BAD_VALUES)]))
    produce(settings, settings.topic, recs)
    return clicks, recs


@pytest.fixture
def crash_settings(isolated_cassandra_settings: Settings, unique_name: str) -> Iterator[Settings]:
    settings = isolated_cassandra_settings.replace(
        topic=unique_name, consumer_group=unique_name, dead_letter_topic=unique_name + "-dlq",
        archive_url=f"{isolated_cassandra_settings.hdfs_url}/tests/{unique_name}")
    yield settings
    remove_archive(settings.archive)


@pytest.fixture
def checkpoints(crash_settings: Settings) -> Iterator[Checkpoints]:
    """The run's checkpoints as the CLI keeps them: states on HDFS, plans in Cassandra."""
    store = CassandraStore(crash_settings)
    yield Checkpoints(crash_settings.checkpoints, crash_settings.pipeline_id,
                      StorePlans(store, crash_settings.pipeline_id))
    store.close()


def _until(condition: Callable[[], bool], timeout_s: float = 120.0, poll_s: float = 0.05) -> bool:
    deadline = time.monotonic() + timeout_s
    while not condition():
        if time.monotonic() > deadline:
            return False
        time.sleep(poll_s)
    return True


def test_sigkill_nine_times_at_start_mid_work_and_mid_state_write_gives_exact_outputs(
        crash_settings: Settings, checkpoints: Checkpoints, tmp_path: Path) -> None:
    """Kills in turn: while the run starts (restores, runs logged cycles again); once it plans
    new cycles (mid-fetch, -flush, -checkpoint); while a state file is being written to
    HDFS (its temporary file seen) beside cycles that plan on."""
    clicks, recs = _produce_input(crash_settings)
    landed: dict[str, list[int]] = {"mid_work": [], "mid_write": []}

    def wait(kill: int, rng: random.Random) -> None:
        kind = kill % 3
        if kind == 0:  # the process starts in ~3 s (imports, its Dask worker), then restores
            time.sleep(rng.uniform(1.0, 5.0))
            return
        before = _newest_cycle(checkpoints)
        if kind == 1:
            if _until(lambda: _newest_cycle(checkpoints) > before):
                landed["mid_work"].append(kill)
            time.sleep(rng.uniform(0.0, 1.0))  # short: input must be left for the kills after
        elif _until(lambda: _newest_cycle(checkpoints) > before and writing_state(checkpoints),
                    poll_s=0.0):  # a state file is a temporary file for ~40 ms only
            landed["mid_write"].append(kill)

    _kill_again_and_again_then_finish(crash_settings, checkpoints, recs, KILLS, wait, tmp_path)
    assert landed == {"mid_work": list(range(1, KILLS, 3)), "mid_write": list(range(2, KILLS, 3))}
    _assert_exact_outputs(crash_settings, clicks)
