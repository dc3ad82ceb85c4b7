"""Reconciliation: zero differences after a clean stream, every corrupted window found and fixed."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest

from clickstream.settings import Settings
from clickstream.store import open_store
from spark_jobs.reconcile import run_reconcile
from spark_jobs.source import HourRange
from tests.spark_jobs.archive_builder import BASE_TS_MS, generate_clicks, write_archive
from tests.spark_jobs.recount import window_counts, window_totals
from tests.spark_jobs.tables_dump import dump_table

pytestmark = pytest.mark.integration


def _write_streaming_tables(settings: Settings, clicks: pd.DataFrame) -> None:
    """What a correct pipeline would have stored, from an independent pandas recount."""
    store = open_store(settings)
    try:
        store.upsert("window_totals", [
            {"pipeline": settings.pipeline_id, "window_ms": w, "day": day, "window_start_ms": s,
             "clicks": c, "late_clicks": late, "written_ms": 1, "cycle": 1, "final": 1}
            for (w, day, s), (c, late) in window_totals(clicks).items()])
        store.upsert("window_counts", [
            {"pipeline": settings.pipeline_id, "metric": m, "window_ms": w, "window_start_ms": s,
             "key": k, "clicks": n} for (m, w, s, k), n in window_counts(clicks).items()])
    finally:
        store.close()


@pytest.mark.parametrize("backend", ["embedded", "cassandra"])
def test_clean_run_has_no_diffs_and_corruption_is_found_and_fixed(
        spark: object, request: pytest.FixtureRequest, tmp_path: Path, backend: str) -> None:
    settings = request.getfixturevalue("embedded_settings" if backend == "embedded"
                                       else "isolated_cassandra_settings")
    clicks = generate_clicks(1500, seed=13, hours=1)
    url = (tmp_path / "archive").as_uri()
    write_archive(clicks, url)
    _write_streaming_tables(settings, clicks)

    clean = run_reconcile(spark, settings, url, HourRange(), run_id="clean")
    assert clean.diffs == []
    assert clean.windows_compared == len(window_totals(clicks)) + 4 * 60

    counts = window_counts(clicks)
    (metric, w, start, key), n = next(iter(sorted(counts.items())))
    minute = BASE_TS_MS + 17 * 60_000
    second = BASE_TS_MS + 1_000 * 1234
    totals = window_totals(clicks)
    store = open_store(settings)
    try:
        store.upsert("window_totals", [{"pipeline": settings.pipeline_id, "window_ms": 1_000,
                                        "day": "2015-02-01", "window_start_ms": second,
                                        "clicks": 999, "late_clicks": 0, "written_ms": 1, "cycle": 1,
                                        "final": 1}])
        store.upsert("window_counts", [
            {"pipeline": settings.pipeline_id, "metric": metric, "window_ms": w, "window_start_ms": start,
             "key": key, "clicks": n + 5},
            {"pipeline": settings.pipeline_id, "metric": "referrer", "window_ms": 60_000,
             "window_start_ms": minute, "key": "invented",
             "clicks": 3}])
    finally:
        store.close()

    dry = run_reconcile(spark, settings, url, HourRange(), run_id="dry", dry_run=True)
    report = run_reconcile(spark, settings, url, HourRange(), run_id="corrupted")
    got = {(d["metric"], d["window_ms"], d["window_start_ms"], d["key"], d["streamed"], d["recounted"])
           for d in report.diffs}
    want_second = totals.get((1_000, "2015-02-01", second), (0, 0))
    expected = {(metric, w, start, key, n + 5, n), ("referrer", 60_000, minute, "invented", 3, 0),
                ("total", 1_000, second, "clicks", 999, want_second[0])}
    if want_second[1]:
        expected.add(("total", 1_000, second, "late_clicks", 0, want_second[1]))
    assert got == expected
    # the dry run before found the same differences and wrote neither fixes nor differences
    assert {(d["metric"], d["window_ms"], d["window_start_ms"], d["key"], d["streamed"], d["recounted"])
            for d in dry.diffs} == expected
    assert "dry run: nothing corrected, differences not recorded" in dry.summary()
    assert not [row for row in dump_table(settings, "reconcile_diffs") if row[0] == "dry"]
    assert {row[1:] for row in dump_table(settings, "reconcile_diffs") if row[0] == "corrupted"} == expected
    assert "3 differed" in report.summary()

    again = run_reconcile(spark, settings, url, HourRange(), run_id="after")
    assert again.diffs == []
    assert {row[1:5] for row in dump_table(settings, "window_counts")} == {
        (m, w_, s, k) for (m, w_, s, k) in counts}

    # Every run is listed for the dashboard, newest first, with its counts; the dry run flagged.
    store = open_store(settings)
    try:
        listed = store.select("reconcile_runs", {"pipeline": settings.pipeline_id})
    finally:
        store.close()
    assert [(r["run_id"], r["windows_compared"], r["windows_differing"], r["differences"], r["dry_run"])
            for r in listed] == [("after", again.windows_compared, 0, 0, 0),
                                 ("corrupted", report.windows_compared, 3, len(expected), 0),
                                 ("dry", dry.windows_compared, 3, len(expected), 1),
                                 ("clean", clean.windows_compared, 0, 0, 0)]
    assert all(r["started_ms"] <= r["ended_ms"] for r in listed)
    assert [r["started_ms"] for r in listed] == sorted((r["started_ms"] for r in listed), reverse=True)
