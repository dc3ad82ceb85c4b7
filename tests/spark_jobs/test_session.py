"""The Spark session's engine: Comet's configuration when its jar is fetched, Spark's own
engine (with a warning) when not, the spark-submit command that carries Comet, and the
test session's batch plan running natively on Comet."""

from __future__ import annotations

import logging
from pathlib import Path

import pytest

from clickstream.jars import lib_dir
from clickstream.settings import Settings
from spark_jobs.entry import submit_command
from spark_jobs.session import COMET_CONF, engine_jar, session_engine, spark_conf

# Most of these stand on Comet's jar, which the comet_settings fixture fetches with Maven.
pytestmark = pytest.mark.integration


def _comet_keys(conf: dict[str, str]) -> set[str]:
    return set(conf) & {*COMET_CONF, "spark.driver.extraClassPath", "spark.executor.extraClassPath"}


def test_comet_conf_puts_its_jar_on_both_classpaths(comet_settings: Settings) -> None:
    jar = engine_jar(comet_settings)
    assert jar is not None and jar.is_file() and jar.parent == lib_dir(comet_settings, "comet")
    conf = spark_conf(comet_settings, cassandra=False, comet=jar)
    assert {k: conf[k] for k in COMET_CONF} == COMET_CONF
    assert conf["spark.driver.extraClassPath"] == conf["spark.executor.extraClassPath"] == str(jar)
    assert conf["spark.jars"] == str(jar)


def test_comet_jar_joins_the_connector(comet_settings: Settings, tmp_path: Path) -> None:
    """With Cassandra and no cached connector: the connector is resolved by Ivy, Comet's jar
    is still in spark.jars."""
    settings = comet_settings.replace(services_home=str(tmp_path / "home"))
    conf = spark_conf(settings, cassandra=True, comet=engine_jar(comet_settings))
    assert conf["spark.jars.packages"].startswith("com.datastax.spark:spark-cassandra-connector")
    assert conf["spark.jars"] == str(engine_jar(comet_settings))


def test_spark_engine_sets_nothing_of_comet(comet_settings: Settings) -> None:
    settings = comet_settings.replace(spark_engine="spark")
    assert engine_jar(settings) is None
    assert not _comet_keys(spark_conf(settings, cassandra=False, comet=engine_jar(settings)))
    command = submit_command(settings, "batch", [], "jobs.zip")
    assert "--jars" not in command and "--driver-class-path" not in command
    assert not any(arg.startswith(tuple(COMET_CONF)) for arg in command)


def test_unfetched_comet_warns_and_falls_back(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    settings = Settings(work_dir=str(tmp_path / "work"), services_home=str(tmp_path / "home"))
    with caplog.at_level(logging.WARNING, logger="spark_jobs.session"):
        assert engine_jar(settings) is None
    assert "clickstream services fetch comet" in caplog.text
    assert str(lib_dir(settings, "comet")) in caplog.text
    assert not _comet_keys(spark_conf(settings, cassandra=False, comet=None))


def test_submit_command_carries_comet(comet_settings: Settings) -> None:
    jar = str(engine_jar(comet_settings))
    command = submit_command(comet_settings, "batch", ["file:///archive"], "jobs.zip")
    assert command[command.index("--jars") + 1] == jar
    assert command[command.index("--driver-class-path") + 1] == jar
    confs = {command[i + 1] for i, arg in enumerate(command) if arg == "--conf"}
    assert confs == {f"{k}={v}" for k, v in COMET_CONF.items()} | {f"spark.executor.extraClassPath={jar}"}
    assert command[-1] == "file:///archive" and command[-2].endswith("spark_jobs/batch.py")


def test_batch_tables_run_natively_on_comet(spark: object, shared_archive: Path) -> None:
    """The test session (the one every Spark test uses) runs on Comet, and the batch job's
    scans, aggregations, shuffles and sorts run in it (not Spark's fallbacks)."""
    from spark_jobs.batch_tables import compute_tables
    from spark_jobs.source import HourRange, read_clicks

    assert session_engine(spark) == "comet"  # type: ignore[arg-type]
    tables, persisted = compute_tables(read_clicks(spark, shared_archive.as_uri()), HourRange())  # type: ignore[arg-type]
    try:
        top = tables["top_destinations"]
        assert top.count() > 0
        plan = top._jdf.queryExecution().executedPlan().toString()
    finally:
        for df in persisted:
            df.unpersist()
    for operator in ("CometScan", "CometHashAggregate", "CometExchange", "CometSort"):
        assert operator in plan, f"{operator} not in the executed plan:\n{plan}"
