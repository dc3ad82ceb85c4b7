"""A SparkSession built from Settings: master, Cassandra connector, quiet logs.

The Cassandra connector (``CASSANDRA_CONNECTOR``) is added only when the job writes to
Cassandra. The first session resolves it from Maven Central (``spark.jars.packages``)
into an Ivy cache under ``settings.services_home_path / "spark-ivy"``; once the jars are
there, later sessions pass them as ``spark.jars`` and skip Ivy resolution entirely (about
10 s saved per start). A CI cache of that folder does the same across machines.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

from clickstream.settings import Settings

if TYPE_CHECKING:
    from pyspark.sql import SparkSession

CASSANDRA_CONNECTOR = "com.datastax.spark:spark-cassandra-connector_2.12:3.5.1"
LOCAL_SHUFFLE_PARTITIONS = 4


def ivy_dir(settings: Settings) -> Path:
    """Where Spark's Ivy keeps the resolved connector jars (cached between runs)."""
    return settings.services_home_path / "spark-ivy"


def cached_connector_jars(settings: Settings) -> list[Path]:
    """The connector and its dependencies from an earlier resolution, or [] if absent."""
    jars_dir = ivy_dir(settings) / "jars"
    group, artifact, version = CASSANDRA_CONNECTOR.split(":")
    if not (jars_dir / f"{group}_{artifact}-{version}.jar").is_file():
        return []
    return sorted(jars_dir.glob("*.jar"))


def spark_conf(settings: Settings, *, cassandra: bool, app_name: str = "clickstream"
               ) -> dict[str, str]:
    """The configuration ``build_session`` applies (pure, so it can be inspected and tested)."""
    conf: dict[str, str] = {
        "spark.app.name": app_name,
        "spark.master": settings.spark_master,
        "spark.ui.enabled": "false",
        "spark.ui.showConsoleProgress": "false",
        "spark.sql.session.timeZone": "UTC",
        # toPandas / createDataFrame(pandas) through Arrow: the embedded store's writes and
        # PageRank's edge list move as columns, not as pickled rows.
        "spark.sql.execution.arrow.pyspark.enabled": "true",
        "spark.driver.bindAddress": settings.bind_address,
        "spark.driver.host": settings.bind_address,
    }
    if settings.spark_master.startswith("local"):
        conf["spark.sql.shuffle.partitions"] = str(LOCAL_SHUFFLE_PARTITIONS)
        conf["spark.default.parallelism"] = str(LOCAL_SHUFFLE_PARTITIONS)
        conf["spark.driver.memory"] = "2g"
    if cassandra:
        cached = cached_connector_jars(settings)
        if cached:
            conf["spark.jars"] = ",".join(str(p) for p in cached)
        else:
            conf["spark.jars.packages"] = CASSANDRA_CONNECTOR
            conf["spark.jars.ivy"] = str(ivy_dir(settings))
        conf["spark.cassandra.connection.host"] = ",".join(settings.cassandra_contact_points)
        conf["spark.cassandra.connection.port"] = str(settings.cassandra_port)
        conf["spark.sql.extensions"] = "com.datastax.spark.connector.CassandraSparkExtensions"
        if settings.cassandra_username:
            conf["spark.cassandra.auth.username"] = settings.cassandra_username
            conf["spark.cassandra.auth.password"] = settings.cassandra_password
    return conf


def build_session(settings: Settings, *, cassandra: bool | None = None,
                  app_name: str = "clickstream") -> SparkSession:
    """Get or create the process's SparkSession (blocks until the JVM is up).

    ``cassandra`` defaults to ``settings.store_backend == "cassandra"``. Under spark-submit
    the master and packages given on the command line win over these defaults only where
    set there (``getOrCreate`` keeps an already running session's static settings).
    """
    from pyspark.sql import SparkSession

    if cassandra is None:
        cassandra = settings.store_backend == "cassandra"
    if cassandra:
        ivy_dir(settings).mkdir(parents=True, exist_ok=True)
    builder = SparkSession.builder
    for key, value in spark_conf(settings, cassandra=cassandra, app_name=app_name).items():
        builder = builder.config(key, value)
    spark = builder.getOrCreate()
    spark.sparkContext.setLogLevel("ERROR")
    return spark
