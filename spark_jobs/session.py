"""A SparkSession built from Settings: master, engine, Cassandra connector, quiet logs.

Engine (``settings.spark_engine``): ``comet`` (default) loads Apache DataFusion Comet
(``COMET_CONF``), which runs Parquet scans, aggregations, sorts and shuffles natively
(the batch job at 2M clicks: about 0.6x the time on Spark's own engine, see
benchmarks/RESULTS-spark.md) and leaves what it cannot run (windows, the in-memory
cache, JSON) to Spark. Its jar is fetched like the servers' (``clickstream services
fetch``, ``services/comet/pom.xml``); without it the session runs on Spark's own engine
and logs a warning. Comet's shuffle manager is read when the JVM starts, so it applies
only to a JVM this process launches; under spark-submit the command line carries it
(``spark_jobs.entry.submit_command``). On a cluster, every worker needs the jar at the
same path as the driver (``spark.executor.extraClassPath``), or use ``spark_engine=spark``.

Master and driver address (``LAUNCHER_KEYS``): whatever launched the JVM decides first
(spark-submit's ``--master`` / ``--conf``, ``spark-defaults.conf``, Spark's ``MASTER``
variable, ``PYSPARK_SUBMIT_ARGS``); ``settings.spark_master``, ``spark_driver_host`` and
``spark_driver_bind_address`` fill only what it left unset. The JVM this process starts
itself comes through spark-submit too, and its fallback master ``local[*]`` counts as unset.

The Cassandra connector (``clickstream.jars.CASSANDRA_CONNECTOR``) is added only when the job writes to
Cassandra. The first session resolves it from Maven Central (``spark.jars.packages``)
into an Ivy cache (``clickstream.jars.ivy_dir``); once the jars are
there, later sessions pass them as ``spark.jars`` and skip Ivy resolution entirely (about
10 s saved per start). A CI cache of that folder does the same across machines.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING

from clickstream.jars import CASSANDRA_CONNECTOR, cached_connector_jars, comet_jar, ivy_dir, lib_dir
from clickstream.settings import Settings

if TYPE_CHECKING:
    from pyspark.sql import SparkSession

log = logging.getLogger(__name__)

LOCAL_SHUFFLE_PARTITIONS = 4
# What a launcher may have decided before our settings; never passed when we start the JVM.
LAUNCHER_KEYS = ("spark.master", "spark.driver.host", "spark.driver.bindAddress",
                 "spark.sql.shuffle.partitions", "spark.default.parallelism")
SPARK_SUBMIT_FALLBACK_MASTER = "local[*]"  # spark-submit's master when nothing names one
COMET_PLUGIN = "org.apache.spark.CometPlugin"
COMET_CONF = {
    "spark.plugins": COMET_PLUGIN,
    "spark.shuffle.manager": "org.apache.spark.sql.comet.execution.shuffle.CometShuffleManager",
    "spark.comet.enabled": "true",
    "spark.comet.exec.enabled": "true",
    "spark.comet.exec.shuffle.enabled": "true",
    # Comet's operators allocate off-heap (per executor).
    "spark.memory.offHeap.enabled": "true",
    "spark.memory.offHeap.size": "2g",
    # Comet has no native WindowGroupLimit (the partial top-N before a window's shuffle):
    # without one, the sort and the shuffle under each ranking run natively.
    "spark.sql.optimizer.windowGroupLimitThreshold": "-1",
}


def engine_jar(settings: Settings) -> Path | None:
    """Comet's jar, as ``clickstream services fetch`` left it, if ``settings.spark_engine`` is
    ``comet``; else None: Spark's own engine (with a warning when Comet was asked for but is
    not fetched)."""
    if settings.spark_engine != "comet":
        return None
    jar = comet_jar(settings)
    if jar is None:
        log.warning("spark_engine comet: its jar is not fetched into %s (run `clickstream services "
                    "fetch comet`); this session runs on Spark's own engine", lib_dir(settings, "comet"))
    return jar


def driver_addresses(settings: Settings, master: str) -> dict[str, str]:
    """``spark.driver.host`` / ``spark.driver.bindAddress`` from settings; Spark's own choice
    (none set) unless given, except on the local stack or a ``local[...]`` master, where the
    driver stays on ``settings.bind_address`` (loopback by default)."""
    host, bind = settings.spark_driver_host, settings.spark_driver_bind_address
    if not host and not bind and (settings.stack == "local" or master.startswith("local")):
        host = bind = settings.bind_address
    out = {}
    if host:
        out["spark.driver.host"] = host
    if bind:
        out["spark.driver.bindAddress"] = bind
    return out


def spark_conf(settings: Settings, *, cassandra: bool, app_name: str = "clickstream",
               comet: Path | None = None, launcher: Mapping[str, str] | None = None) -> dict[str, str]:
    """The configuration ``build_session`` applies (pure, so it can be inspected and tested);
    ``comet``: Comet's jar, to run on Comet (``COMET_CONF``); ``launcher``: the ``LAUNCHER_KEYS``
    the JVM's launcher already set (``launcher_conf``), which win over the settings."""
    launcher = {k: v for k, v in (launcher or {}).items() if k in LAUNCHER_KEYS and v}
    master = launcher.get("spark.master") or settings.spark_master
    conf: dict[str, str] = {
        "spark.app.name": app_name,
        "spark.master": master,
        "spark.ui.enabled": "false",
        "spark.ui.showConsoleProgress": "false",
        "spark.sql.session.timeZone": "UTC",
        # toPandas / createDataFrame(pandas) through Arrow: the embedded store's writes and
        # PageRank's edge list move as columns, not as pickled rows.
        "spark.sql.execution.arrow.pyspark.enabled": "true",
        **driver_addresses(settings, master),
    }
    if master.startswith("local"):
        conf["spark.sql.shuffle.partitions"] = str(LOCAL_SHUFFLE_PARTITIONS)
        conf["spark.default.parallelism"] = str(LOCAL_SHUFFLE_PARTITIONS)
        conf["spark.driver.memory"] = "2g"
    jars: list[Path] = []
    if comet is not None:
        jars.append(comet)
        conf |= COMET_CONF
        conf["spark.driver.extraClassPath"] = str(comet)
        conf["spark.executor.extraClassPath"] = str(comet)
    if cassandra:
        cached = cached_connector_jars(settings)
        if cached:
            jars += cached
        else:
            conf["spark.jars.packages"] = CASSANDRA_CONNECTOR
            conf["spark.jars.ivy"] = str(ivy_dir(settings))
        conf["spark.cassandra.connection.host"] = ",".join(settings.cassandra_contact_points)
        conf["spark.cassandra.connection.port"] = str(settings.cassandra_port)
        conf["spark.sql.extensions"] = "com.datastax.spark.connector.CassandraSparkExtensions"
        if settings.cassandra_username:
            conf["spark.cassandra.auth.username"] = settings.cassandra_username
            conf["spark.cassandra.auth.password"] = settings.cassandra_password
    if jars:
        conf["spark.jars"] = ",".join(str(p) for p in jars)
    return conf | launcher


def launcher_conf() -> dict[str, str]:
    """The ``LAUNCHER_KEYS`` this process's JVM was started with (started or attached to
    first if need be): spark-submit's, when it launched this process, or what
    ``spark-defaults.conf``, ``MASTER`` and ``PYSPARK_SUBMIT_ARGS`` gave the JVM we started,
    less spark-submit's fallback master."""
    from pyspark import SparkConf, SparkContext

    SparkContext._ensure_initialized()  # a no-op once the gateway is up
    jvm_conf = dict(SparkConf().getAll())  # the JVM's spark.* system properties
    found = {k: jvm_conf[k] for k in LAUNCHER_KEYS if jvm_conf.get(k)}
    ours = getattr(SparkContext._gateway, "proc", None) is not None  # None: spark-submit started it
    if ours and found.get("spark.master") == SPARK_SUBMIT_FALLBACK_MASTER:
        del found["spark.master"]
    return found


def build_session(settings: Settings, *, cassandra: bool | None = None,
                  app_name: str = "clickstream") -> SparkSession:
    """Get or create the process's SparkSession (blocks until the JVM is up).

    ``cassandra`` defaults to ``settings.store_backend == "cassandra"``. A JVM not yet running
    is started with everything but ``LAUNCHER_KEYS``; then the launcher's values of those win
    (``launcher_conf``) and the settings fill the rest. ``getOrCreate`` keeps an already
    running session's static settings.
    """
    from pyspark import SparkConf, SparkContext

    if cassandra is None:
        cassandra = settings.store_backend == "cassandra"
    if cassandra:
        ivy_dir(settings).mkdir(parents=True, exist_ok=True)
    comet = engine_jar(settings)
    conf = spark_conf(settings, cassandra=cassandra, app_name=app_name, comet=comet)
    if SparkContext._gateway is None:  # start the JVM (or attach to spark-submit's) without them
        SparkContext._ensure_initialized(conf=SparkConf(loadDefaults=False).setAll(
            [(k, v) for k, v in conf.items() if k not in LAUNCHER_KEYS]))
    conf = spark_conf(settings, cassandra=cassandra, app_name=app_name, comet=comet, launcher=launcher_conf())
    return session_from_conf(conf)


def session_from_conf(conf: dict[str, str]) -> SparkSession:
    """Get or create the process's SparkSession with ``conf`` (Spark's own logging at ERROR)."""
    from pyspark.sql import SparkSession  # lazy, like every pyspark import here: the CLI's --help

    builder = SparkSession.builder
    for key, value in conf.items():
        builder = builder.config(key, value)
    spark = builder.getOrCreate()
    spark.sparkContext.setLogLevel("ERROR")
    return spark


def session_engine(spark: SparkSession) -> str:
    """``comet`` if the session runs with Comet's plugin, else ``spark``."""
    return "comet" if COMET_PLUGIN in (spark.sparkContext.getConf().get("spark.plugins") or "") else "spark"
