"""Batch tables job against a pandas recount, from file:// and hdfs://, into both stores."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest

from clickstream.archive import filesystem
from clickstream.settings import Settings
from spark_jobs.batch import run_batch
from spark_jobs.batch_tables import BATCH_TABLES, RANKED_TABLES
from spark_jobs.source import HourRange, JobInputError
from tests.spark_jobs.archive_builder import generate_clicks, write_archive
from tests.spark_jobs.recount import batch_tables
from tests.spark_jobs.tables_dump import dump_table

pytestmark = pytest.mark.integration
TOP_N = 5


def _archive(kind: str, tmp_path: Path, hdfs_url: str, unique_name: str) -> str:
    if kind == "file":
        return (tmp_path / "archive").as_uri()
    return f"{hdfs_url}/tests/spark_jobs/{unique_name}"


def _settings(backend: str, request: pytest.FixtureRequest) -> Settings:
    if backend == "cassandra":
        return request.getfixturevalue("isolated_cassandra_settings")
    return request.getfixturevalue("embedded_settings")


def _assert_tables(settings: Settings, expected: dict[str, set],
                   names: tuple[str, ...] = BATCH_TABLES) -> None:
    for name in names:
        got = dump_table(settings, name)
        assert got == expected[name], (f"{name}: {len(got - expected[name])} unexpected rows "
                                       f"{sorted(got - expected[name])[:3]}, {len(expected[name] - got)} "
                                       f"missing {sorted(expected[name] - got)[:3]}")


@pytest.mark.parametrize(("archive_kind", "backend"),
                         [("file", "embedded"), ("hdfs", "cassandra")])
def test_batch_tables_equal_pandas_recount(spark: object, request: pytest.FixtureRequest, tmp_path: Path,
                                           services_running: Settings, unique_name: str,
                                           archive_kind: str, backend: str) -> None:
    clicks = generate_clicks(4000, seed=11)
    url = _archive(archive_kind, tmp_path, services_running.hdfs_url, unique_name)
    write_archive(clicks, url)
    settings = _settings(backend, request)
    try:
        written = run_batch(spark, settings, url, HourRange(), top_n=TOP_N)
        expected = batch_tables(clicks, TOP_N)
        assert written == {name: len(rows) for name, rows in expected.items()}
        _assert_tables(settings, expected)
        run_batch(spark, settings, url, HourRange(), top_n=TOP_N)  # idempotent re-run
        _assert_tables(settings, expected)
    finally:
        if archive_kind == "hdfs":
            fs, path = filesystem(url)
            fs.rm(path, recursive=True)


@pytest.mark.parametrize("backend", ["embedded", "cassandra"])
def test_rerun_on_changed_input_leaves_no_stale_ranks(spark: object, request: pytest.FixtureRequest,
                                                      tmp_path: Path, backend: str) -> None:
    settings = _settings(backend, request)
    first = generate_clicks(3000, seed=5)
    write_archive(first, (tmp_path / "a").as_uri())
    run_batch(spark, settings, (tmp_path / "a").as_uri(), HourRange(), top_n=TOP_N)
    # Same titles, at most 2 clicks per source and per destination kept: most partitions
    # now have fewer than TOP_N neighbours.
    keep = first.groupby("prev").head(2).index.union(first.groupby("curr").head(2).index)
    second = first.loc[keep].reset_index(drop=True)
    if backend == "embedded":  # the embedded store cannot find partitions that vanished
        assert set(second["prev"]) == set(first["prev"]) and set(second["curr"]) == set(first["curr"])
    else:  # Cassandra removes partitions that vanished too
        second = second[second["prev"] != "Article_3"]
    write_archive(second, (tmp_path / "b").as_uri())
    run_batch(spark, settings, (tmp_path / "b").as_uri(), HourRange(), top_n=TOP_N)
    _assert_tables(settings, batch_tables(second, TOP_N), RANKED_TABLES)


def test_hour_range_reads_only_its_hours(spark: object, embedded_settings: Settings, tmp_path: Path) -> None:
    clicks = generate_clicks(3000, seed=9, hours=50)  # 2015-02-01T00 .. 2015-02-03T01
    url = (tmp_path / "archive").as_uri()
    write_archive(clicks, url)
    hours = HourRange.parse("2015-02-01T20", "2015-02-02")
    run_batch(spark, embedded_settings, url, hours, top_n=TOP_N)
    stamp = pd.to_datetime(clicks["ts_ms"], unit="ms", utc=True)
    inside = clicks[(stamp >= pd.Timestamp("2015-02-01T20:00Z"))
                    & (stamp < pd.Timestamp("2015-02-03T00:00Z"))]
    expected = batch_tables(inside, TOP_N, scope="2015-02-01T20..2015-02-02T23", whole_days={"2015-02-02"})
    _assert_tables(embedded_settings, expected)


def test_bad_range_and_missing_archive_are_named(spark: object, tmp_path: Path) -> None:
    with pytest.raises(JobInputError, match="--from"):
        HourRange.parse("2015-02-30", None)
    with pytest.raises(JobInputError, match="--to"):
        HourRange.parse(None, "2015-02-01T24")
    from spark_jobs.source import read_clicks
    with pytest.raises(JobInputError, match="cannot read"):
        read_clicks(spark, (tmp_path / "nothing").as_uri())  # type: ignore[arg-type]
