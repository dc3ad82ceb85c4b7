"""Hostile input: 10,000 fuzzed records mixed into a normal stream.

Invalid JSON and UTF-8, missing and extra fields, wrong types, far-past and far-future
timestamps, 1 MB values, control characters and NUL in titles. Every bad record must
reach the dead-letter topic once, with the reason the per-record decoder gives; every
good click must be counted exactly; nothing crashes.
"""

from __future__ import annotations

import random

import orjson
import pytest
from kafka import KafkaConsumer

from clickstream.events import EventError, decode_record
from clickstream.settings import Settings
from pipeline import Pipeline
from producer.sender import records
from tests.pipeline.conftest import COMPARED, assert_tables_equal, dump_cassandra, read_archive, recount
from tests.pipeline.test_integration import make_clicks, produce, remove_archive

pytestmark = pytest.mark.integration

N_FUZZED = 10_000
T = 1_422_748_800_000


def fuzzed(rng: random.Random, i: int) -> bytes:
    """A record value that is not a valid click (each kind of hostile input in turn)."""
    good = {"id": i, "ts": T + i, "prev": "A", "curr": "B", "type": "link"}
    kind = i % 12
    if kind == 0:
        return orjson.dumps(good)[: rng.randrange(1, 40)]  # cut short: invalid JSON
    if kind == 1:
        return b'{"id": 1, "ts": 1422748800000, "prev": "\xff\xfe", "curr": "B", "type": "link"}'
    if kind == 2:
        missing = rng.choice(list(good))
        return orjson.dumps({k: v for k, v in good.items() if k != missing})
    if kind == 3:
        return orjson.dumps({**good, rng.choice(["x", "clicks2", "ID"]): rng.random()})
    if kind == 4:
        field = rng.choice(list(good))
        wrong = [None, [], {}, 1.5, True] + (["7"] if field in ("id", "ts") else [7])
        return orjson.dumps({**good, field: rng.choice(wrong)})
    if kind == 5:
        return orjson.dumps({**good, "ts": rng.choice([0, 10**9, 5 * 10**12, -1])})  # far past/future
    if kind == 6:
        return orjson.dumps({**good, "prev": "Foo\x00Bar"})
    if kind == 7:
        return orjson.dumps({**good, "curr": "a\x1fb" if rng.random() < 0.5 else "tab\there"})
    if kind == 8:
        return orjson.dumps({"clicks": [[i, T, "A", "B", "link"], [i, T, "A", "B", "nope"]]})
    if kind == 9:
        return rng.randbytes(rng.randrange(0, 30))
    if kind == 10:
        return orjson.dumps(rng.choice([None, [], 5, "s", {"clicks": "x"}]))
    if i % 2000 == 11:  # a few 1 MB values (title far too long)
        return orjson.dumps({**good, "prev": "x" * 999_000})
    return orjson.dumps({**good, "type": rng.choice(["LINK", "", "portal", "link "])})


def test_ten_thousand_fuzzed_records_go_to_dead_letters_and_good_clicks_count_exactly(
        isolated_cassandra_settings: Settings, unique_name: str, dask_client) -> None:
    settings = isolated_cassandra_settings.replace(
        topic=unique_name, consumer_group=unique_name, dead_letter_topic=unique_name + "-dlq",
        archive_url=f"{isolated_cassandra_settings.hdfs_url}/tests/{unique_name}")
    rng = random.Random(17)
    clicks = make_clicks(600, seed=41, limit=40_000, span_s=120)
    good = [(k, v) for k, v, _n, _t in records(clicks)]
    bad: dict[bytes, tuple[bytes, str]] = {}
    for i in range(N_FUZZED):
        value = fuzzed(rng, i)
        try:
            decode_record(value)
        except EventError as exc:
            bad[f"fuzz-{i}".encode()] = (value, exc.reason)
        else:
            raise AssertionError(f"fuzz kind {i % 12} made a valid click: {value[:80]!r}")
    # bad records land between good ones anywhere; the good ones keep their (event-time) order
    at = sorted((rng.uniform(0, len(good)), key) for key in bad)
    mixed: list[tuple[bytes, bytes]] = []
    for n, rec in enumerate(good):
        while at and at[0][0] <= n:
            key = at.pop(0)[1]
            mixed.append((key, bad[key][0]))
        mixed.append(rec)
    mixed += [(key, bad[key][0]) for _pos, key in at]
    produce(settings, settings.topic, mixed)
    try:
        with Pipeline(settings, client=dask_client) as pipe:
            summary = pipe.run(until_idle_s=3)
        assert summary.clicks == len(clicks) and summary.dead_letters == N_FUZZED
        assert summary.late_clicks == 0
        stored = dump_cassandra(settings, COMPARED, pipeline=settings.pipeline_id)
        assert_tables_equal(stored, recount(clicks))
        archived = read_archive(settings.archive)
        assert len(archived) == len(clicks) and archived["click_id"].is_unique
        consumer = KafkaConsumer(settings.dead_letter_topic, bootstrap_servers=settings.kafka_bootstrap,
                                 group_id=None, auto_offset_reset="earliest", consumer_timeout_ms=10_000,
                                 fetch_max_bytes=64 << 20, max_partition_fetch_bytes=8 << 20)
        letters = list(consumer)
        consumer.close()
        assert len(letters) == N_FUZZED
        got = {r.key: (r.value, dict(r.headers)["reason"].decode()) for r in letters}
        assert got == bad
    finally:
        remove_archive(settings.archive)

