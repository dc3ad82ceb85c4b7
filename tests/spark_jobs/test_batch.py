"""Batch tables job against a pandas recount, from file:// and hdfs://, into both stores;
the 2017-style JSON baseline computes the same tables; the job runs under spark-submit."""

from __future__ import annotations

import subprocess
from pathlib import Path
from typing import Any

import pandas as pd
import pytest

from clickstream.archive import filesystem
from clickstream.settings import Settings
from spark_jobs.batch import run_batch
from spark_jobs.batch_tables import BATCH_TABLES, RANKED_TABLES
from spark_jobs.source import HourRange, JobInputError
from tests.spark_jobs.archive_builder import write_archive
from tests.spark_jobs.conftest import spark_submit
from tests.spark_jobs.recount import batch_tables
from tests.spark_jobs.tables_dump import dump_table

pytestmark = pytest.mark.integration
TOP_N = 5
SHARED_WHOLE_DAYS = {"2015-02-02"}  # shared_clicks span 2015-02-01T00..2015-02-03T01
ALL_DAYS = {"2015-02-01", "2015-02-02", "2015-02-03"}


def _diff(name: str, got: set[Any], want: set[Any]) -> str:
    return (f"{name}: {len(got - want)} unexpected rows {sorted(got - want)[:3]}, "
            f"{len(want - got)} missing {sorted(want - got)[:3]}")


def _assert_tables(settings: Settings, expected: dict[str, set[Any]],
                   names: tuple[str, ...] = BATCH_TABLES) -> None:
    for name in names:
        got = dump_table(settings, name)
        assert got == expected[name], _diff(name, got, expected[name])


def _assert_rewritten_shares(settings: Settings, expected: set[Any]) -> None:
    """The link_type_share partitions (scopes) ``expected`` has hold exactly its rows."""
    scopes = {row[0] for row in expected}
    got = {row for row in dump_table(settings, "link_type_share") if row[0] in scopes}
    assert got == expected, _diff("link_type_share", got, expected)


def _changed_input(first: pd.DataFrame) -> pd.DataFrame:
    """At most 2 clicks kept per source and per destination: most partitions now have
    fewer than TOP_N neighbours (and some articles lose link types)."""
    keep = first.groupby("prev").head(2).index.union(first.groupby("curr").head(2).index)
    return first.loc[keep].reset_index(drop=True)


def test_file_archive_into_embedded_store(spark: object, embedded_settings: Settings, shared_archive: Path,
                                          shared_clicks: pd.DataFrame, tmp_path: Path) -> None:
    """Equal to the recount; a re-run is idempotent; changed input leaves no stale rows in
    the partitions it rewrites."""
    url = shared_archive.as_uri()
    expected = batch_tables(shared_clicks, TOP_N, whole_days=ALL_DAYS)
    written = run_batch(spark, embedded_settings, url, HourRange(), top_n=TOP_N)
    assert written == {name: len(rows) for name, rows in expected.items()}
    _assert_tables(embedded_settings, expected)
    run_batch(spark, embedded_settings, url, HourRange(), top_n=TOP_N)
    _assert_tables(embedded_settings, expected)

    second = _changed_input(shared_clicks)
    # The embedded store cannot find partitions that vanished: keep every title.
    assert set(second["prev"]) == set(shared_clicks["prev"])
    assert set(second["curr"]) == set(shared_clicks["curr"])
    write_archive(second, (tmp_path / "changed").as_uri())
    run_batch(spark, embedded_settings, (tmp_path / "changed").as_uri(), HourRange(), top_n=TOP_N)
    expected = batch_tables(second, TOP_N, whole_days=ALL_DAYS)
    _assert_tables(embedded_settings, expected, RANKED_TABLES)
    _assert_rewritten_shares(embedded_settings, expected["link_type_share"])


def test_hdfs_archive_into_cassandra(spark: object, isolated_cassandra_settings: Settings, hdfs_url: str,
                                     unique_name: str, shared_clicks: pd.DataFrame, tmp_path: Path) -> None:
    """Equal to the recount; on changed input, top-N partitions that vanished are deleted
    and rewritten partitions keep no stale rows."""
    settings = isolated_cassandra_settings
    first_url = f"{hdfs_url}/tests/spark_jobs/{unique_name}"
    second_url = (tmp_path / "changed").as_uri()  # each HDFS file costs ~0.5 s to write: one archive there
    # six hours across midnight (two days, six files on HDFS rather than fifty)
    stamp = pd.to_datetime(shared_clicks["ts_ms"], unit="ms", utc=True)
    clicks = shared_clicks[(stamp >= pd.Timestamp("2015-02-01T21:00Z"))
                           & (stamp < pd.Timestamp("2015-02-02T03:00Z"))].reset_index(drop=True)
    try:
        write_archive(clicks, first_url, files_per_hour=1)
        expected = batch_tables(clicks, TOP_N, whole_days=ALL_DAYS)
        written = run_batch(spark, settings, first_url, HourRange(), top_n=TOP_N)
        assert written == {name: len(rows) for name, rows in expected.items()}
        _assert_tables(settings, expected)

        second = _changed_input(clicks)
        assert (second["prev"] == "Article_3").any()  # a source whose top-N partition vanishes
        second = second[second["prev"] != "Article_3"]
        write_archive(second, second_url)
        run_batch(spark, settings, second_url, HourRange(), top_n=TOP_N)
        expected = batch_tables(second, TOP_N, whole_days=ALL_DAYS)
        _assert_tables(settings, expected, RANKED_TABLES)
        _assert_rewritten_shares(settings, expected["link_type_share"])
    finally:
        fs, path = filesystem(first_url)
        fs.rm(path, recursive=True)


def test_json_baseline_computes_the_same_tables(spark: Any, shared_clicks: pd.DataFrame,
                                                tmp_path: Path) -> None:
    """The benchmark's 2017-style baseline (one JSON job per table) is a fair comparison:
    it produces exactly the job's rows."""
    from spark_jobs.baselines import json_table_job
    from spark_jobs.sink import conform

    json_path = tmp_path / "clicks.jsonl"
    shared_clicks.to_json(json_path, orient="records", lines=True)
    expected = batch_tables(shared_clicks, TOP_N, whole_days=ALL_DAYS)
    for name in BATCH_TABLES:
        table, parsed = json_table_job(spark, json_path.as_uri(), name, top_n=TOP_N)
        got = {tuple(row) for row in conform(table, name).collect()}
        parsed.unpersist()
        assert got == expected[name], _diff(name, got, expected[name])


def _spark_submit(command: list[str], tmp_path: Path) -> subprocess.CompletedProcess[str]:
    done = spark_submit(command, tmp_path)
    assert "batch: top_destinations:" in done.stdout
    return done


def _assert_hour_range_tables(settings: Settings, shared_clicks: pd.DataFrame) -> None:
    """The store holds the tables of shared_clicks' 2015-02-01T20..2015-02-02T23."""
    stamp = pd.to_datetime(shared_clicks["ts_ms"], unit="ms", utc=True)
    inside = shared_clicks[(stamp >= pd.Timestamp("2015-02-01T20:00Z"))
                           & (stamp < pd.Timestamp("2015-02-03T00:00Z"))]
    assert 0 < len(inside) < len(shared_clicks)
    _assert_tables(settings, batch_tables(inside, TOP_N, scope="2015-02-01T20..2015-02-02T23",
                                          whole_days=SHARED_WHOLE_DAYS))


def _job_arguments(archive: Path, settings: Settings) -> list[str]:
    return [archive.as_uri(), "--from", "2015-02-01T20", "--to", "2015-02-02", "--top-n", str(TOP_N),
            "--stack", "embedded", "--store", "embedded", "--work-dir", settings.work_dir]


def test_spark_submit_with_py_files_and_hour_range(shared_archive: Path, shared_clicks: pd.DataFrame,
                                                   tmp_path: Path) -> None:
    """spark_jobs/batch.py through spark-submit by hand, the code shipped as the --py-files
    zip, an hour range, into a fresh embedded store: Spark's own engine (no Comet flags on
    the command line; the job cannot add Comet's plugin to spark-submit's JVM)."""
    from spark_jobs.package import build_zip

    settings = Settings(stack="embedded", work_dir=str(tmp_path / "work"), store="embedded")
    job = Path(__file__).resolve().parents[2] / "spark_jobs" / "batch.py"
    done = _spark_submit(["spark-submit", "--master", "local[2]", "--conf", "spark.ui.enabled=false",
                          "--py-files", str(build_zip(tmp_path / "jobs.zip")), str(job),
                          *_job_arguments(shared_archive, settings)], tmp_path)
    assert "(engine spark)" in done.stdout
    _assert_hour_range_tables(settings, shared_clicks)


def test_spark_submit_command_runs_on_comet(comet_settings: Settings, shared_archive: Path,
                                            shared_clicks: pd.DataFrame, tmp_path: Path) -> None:
    """The command ``clickstream batch --print-submit`` prints (``submit_command``) carries
    Comet's jar and settings: the job runs on Comet under spark-submit, same tables."""
    from spark_jobs.entry import submit_command
    from spark_jobs.package import build_zip

    settings = Settings(stack="embedded", work_dir=str(tmp_path / "work"), store="embedded",
                        services_home=str(comet_settings.services_home_path), spark_engine="comet")
    command = submit_command(settings, "batch", _job_arguments(shared_archive, settings),
                             str(build_zip(tmp_path / "jobs.zip")))
    assert "--driver-class-path" in command
    done = _spark_submit(command, tmp_path)
    assert "(engine comet)" in done.stdout
    _assert_hour_range_tables(settings, shared_clicks)


def test_missing_archive_is_named(spark: object, tmp_path: Path) -> None:
    """(Bad hour ranges: tests/spark_jobs/test_source.py.)"""
    from spark_jobs.source import read_clicks

    with pytest.raises(JobInputError, match="cannot read"):
        read_clicks(spark, (tmp_path / "nothing").as_uri())  # type: ignore[arg-type]
