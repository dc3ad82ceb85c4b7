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


def pipeline_plans_round_trip(store: Store, pipeline: str) -> None:
    """Plans by cycle ascending, read from a cycle on; a range delete drops the cycles below
    its bound and no other pipeline's; a partition delete drops the rest."""
    rows = [{"pipeline": pipeline, "cycle": c, "plan": f'{{"cycle": {c}, "k": "<b>\'"}}', "logged_ms": 10 * c}
            for c in range(1, 8)]
    store.upsert("pipeline_plans", rows)
    other = {"pipeline": pipeline + "-other"}
    store.upsert("pipeline_plans", [{**rows[0], **other}])
    part = {"pipeline": pipeline}
    assert store.select("pipeline_plans", part) == rows
    assert [r["cycle"] for r in store.select("pipeline_plans", part, start=5)] == [5, 6, 7]
    store.delete_partition("pipeline_plans", part, end=4)
    assert store.select("pipeline_plans", part) == rows[3:]
    store.delete_partition("pipeline_plans", part, end=2)  # an older bound deletes nothing more
    store.upsert("pipeline_plans", [rows[0]])  # a row written after the delete is there
    assert [r["cycle"] for r in store.select("pipeline_plans", part)] == [1, 4, 5, 6, 7]
    store.delete_partition("pipeline_plans", part)
    assert store.select("pipeline_plans", part) == []
    assert [r["cycle"] for r in store.select("pipeline_plans", other)] == [1]
