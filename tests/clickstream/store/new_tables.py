"""Round trips of the partition_lag and reconcile_runs tables, run on each backend."""

from __future__ import annotations

from clickstream.store import Store


def partition_lag_round_trip(store: Store, pipeline: str) -> None:
    """Rows of three cycles x four partitions: newest cycle first, its partitions in one read;
    a rewrite of a cycle (a retried flush) replaces its rows, it adds none."""
    day = "2026-11-29"
    rows = [{"pipeline": pipeline, "day": day, "ts_ms": ts, "partition_id": p,
             "lag_records": 100 * p + ts % 7, "next_offset": 1_000 + ts, "end_offset": 1_000 + ts + 100 * p
             + ts % 7} for ts in (10_000, 11_000, 12_000) for p in range(4)]
    store.upsert("partition_lag", rows)
    store.upsert("partition_lag", [{**r, "lag_records": 5} for r in rows if r["ts_ms"] == 11_000])
    part = {"pipeline": pipeline, "day": day}
    got = store.select("partition_lag", part)
    assert [(r["ts_ms"], r["partition_id"]) for r in got] == [
        (ts, p) for ts in (12_000, 11_000, 10_000) for p in (3, 2, 1, 0)]
    by_key = {(r["ts_ms"], r["partition_id"]): r for r in got}
    assert by_key[(12_000, 2)] == {**rows[10], "lag_records": 200 + 12_000 % 7}
    assert {by_key[(11_000, p)]["lag_records"] for p in range(4)} == {5}
    newest = store.select("partition_lag", part, limit=4)
    assert {r["ts_ms"] for r in newest} == {12_000} and len(newest) == 4
    since = store.select("partition_lag", part, start=11_000)
    assert sorted({r["ts_ms"] for r in since}) == [11_000, 12_000] and len(since) == 8
    assert store.select("partition_lag", {"pipeline": pipeline + "-other", "day": day}) == []


def reconcile_runs_round_trip(store: Store, pipeline: str) -> None:
    """Runs of one pipeline newest first, a dry run flagged, another pipeline's runs apart."""
    runs = [{"pipeline": pipeline, "started_ms": 1_000 * i, "run_id": f"run-{i}<b>",
             "ended_ms": 1_000 * i + 500, "windows_compared": 240 + i, "windows_differing": i,
             "differences": 2 * i, "dry_run": i % 2} for i in range(1, 6)]
    store.upsert("reconcile_runs", runs)
    store.upsert("reconcile_runs", runs[:2])
    store.upsert("reconcile_runs", [{**runs[0], "pipeline": pipeline + "-other"}])
    got = store.select("reconcile_runs", {"pipeline": pipeline})
    assert got == runs[::-1]
    assert store.select("reconcile_runs", {"pipeline": pipeline}, limit=2) == runs[::-1][:2]
    assert [r["run_id"] for r in store.select("reconcile_runs", {"pipeline": pipeline + "-other"})] == [
        "run-1<b>"]
