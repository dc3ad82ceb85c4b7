from __future__ import annotations

import pytest

from clickstream.store import StoreError
from clickstream.store.embedded import EmbeddedStore
from tests.clickstream.store.new_tables import (
    partition_lag_round_trip,
    pipeline_plans_round_trip,
    reconcile_runs_round_trip,
)


@pytest.fixture
def store(tmp_path):
    s = EmbeddedStore(tmp_path / "s.sqlite")
    yield s
    s.close()


def test_upsert_is_idempotent_by_primary_key(store: EmbeddedStore) -> None:
    rows = [("p", "destination", 60_000, 0, "A", 3), ("p", "destination", 60_000, 0, "B", 5)]
    store.upsert("window_counts", rows)
    store.upsert("window_counts", rows)
    store.upsert("window_counts", [("p", "destination", 60_000, 0, "A", 4)])
    got = store.select("window_counts", {"pipeline": "p", "metric": "destination", "window_ms": 60_000,
                                         "window_start_ms": 0})
    assert [(r["key"], r["clicks"]) for r in got] == [("A", 4), ("B", 5)]


def test_select_orders_bounds_and_limits(store: EmbeddedStore) -> None:
    store.upsert("window_totals", [
        {"pipeline": "p", "window_ms": 1000, "day": "2015-02-01", "window_start_ms": t, "clicks": t,
         "late_clicks": 0, "written_ms": 1, "cycle": 1, "final": 1} for t in range(0, 10_000, 1000)])
    part = {"pipeline": "p", "window_ms": 1000, "day": "2015-02-01"}
    newest = store.select("window_totals", part, limit=3)
    assert [r["window_start_ms"] for r in newest] == [9000, 8000, 7000]
    bounded = store.select("window_totals", part, start=2000, end=5000)
    assert [r["window_start_ms"] for r in bounded] == [4000, 3000, 2000]


def test_titles_are_data_not_sql(store: EmbeddedStore) -> None:
    title = "Robert'); DROP TABLE top_sources;--"
    store.upsert("top_sources", [(title, 1, "<img src=x onerror=alert(1)>", 9)])
    assert store.select("top_sources", {"destination": title})[0]["source"] == "<img src=x onerror=alert(1)>"


def test_errors_name_the_table_and_the_problem(store: EmbeddedStore) -> None:
    with pytest.raises(StoreError, match="unknown table 'nope'"):
        store.upsert("nope", [(1,)])
    with pytest.raises(StoreError, match="top_sources: row has 2 values, table has 4 columns"):
        store.upsert("top_sources", [("a", 1)])
    with pytest.raises(StoreError, match="partition key needs destination"):
        store.select("top_sources", {})


def test_partition_lag_round_trip(store: EmbeddedStore) -> None:
    partition_lag_round_trip(store, "p")


def test_reconcile_runs_round_trip(store: EmbeddedStore) -> None:
    reconcile_runs_round_trip(store, "p")


def test_pipeline_plans_round_trip(store: EmbeddedStore) -> None:
    pipeline_plans_round_trip(store, "p")
