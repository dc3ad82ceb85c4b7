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
from pathlib import Path

import pytest
from kafka import KafkaConsumer

from clickstream.archive import filesystem
from clickstream.settings import Settings
from pipeline.checkpoint import Checkpoints
from tests.pipeline.conftest import COMPARED, assert_tables_equal, dump_cassandra, read_archive, recount
from tests.pipeline.test_integration import (
    BAD_VALUES,
    make_clicks,
    produce,
    remove_archive,
)

pytestmark = pytest.mark.integration

REPO = Path(__file__).resolve().parents[2]
KILLS = 10
N_CLICKS = 60_000
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


def test_sigkill_ten_times_then_finish_gives_exact_outputs(isolated_cassandra_settings: Settings,
                                                           unique_name: str, tmp_path: Path) -> None:
    settings = isolated_cassandra_settings.replace(
        topic=unique_name, consumer_group=unique_name, dead_letter_topic=unique_name + "-dlq",
        archive_url=f"{isolated_cassandra_settings.hdfs_url}/tests/{unique_name}")
    clicks = make_clicks(1_500, seed=21, limit=N_CLICKS, span_s=240)
    from producer.sender import records

    recs = [(k, v) for k, v, _n, _t in records(clicks)]
    step = len(recs) // N_BAD
    for i in range(N_BAD):
        recs.insert(i * (step + 1) + step, (f"bad-{i}".encode(), BAD_VALUES[i % len(BAD_VALUES)]))
    produce(settings, settings.topic, recs)
    rng = random.Random(7)
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    work = tmp_path / "work"
    checkpoints = Checkpoints(settings.checkpoints, settings.pipeline_id)
    mid_work = 0  # kills that landed after the run planned a new cycle
    try:
        for kill in range(KILLS):
            before = _newest_cycle(checkpoints)
            proc = subprocess.Popen(_stream_argv(settings, work), cwd=REPO, env=env, start_new_session=True,
                                    stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
            if kill % 2:  # while it starts, restores or runs logged cycles again
                time.sleep(rng.uniform(1.0, 8.0))
            else:  # once it plans new cycles: mid-fetch, mid-flush, mid-checkpoint
                deadline = time.monotonic() + 120
                while _newest_cycle(checkpoints) <= before and time.monotonic() < deadline:
                    time.sleep(0.2)
                mid_work += _newest_cycle(checkpoints) > before
                time.sleep(rng.uniform(0.0, 3.0))
            assert proc.poll() is None, f"run {kill} ended by itself: {proc.stderr.read().decode()[-2000:]}"
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait(30)
            proc.stderr.close()
        # the kills landed while there was work: some, not all, records are checkpointed
        assert mid_work == KILLS // 2
        snap = checkpoints.latest()
        assert snap is not None and 0 < sum(snap.meta["next_offsets"].values()) < len(recs)
        done = subprocess.run(_stream_argv(settings, work, "--until-idle-s", "3"), cwd=REPO, env=env,
                              capture_output=True, text=True, timeout=600)
        assert done.returncode == 0, done.stderr[-3000:]
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
    finally:
        remove_archive(settings.archive)
