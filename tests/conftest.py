"""Shared fixtures: the real servers (started once per session), settings, sample data.

Integration tests (marker ``integration``) get the servers from ``services_running``: it
reuses servers that already answer at the configured addresses (``CLICKSTREAM_*``
settings, e.g. a developer's ``clickstream services up``) and otherwise starts them with
``launch.services.up`` and stops what it started at the end of the session. If the
servers cannot start, the integration tests error; they are never skipped.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from clickstream.settings import Settings
from launch import services

REPO_ROOT = Path(__file__).resolve().parent.parent
SHARED_DATA_DIR = REPO_ROOT.parent / "shared" / "data" / "wikipedia-clickstream"
TEST_KEYSPACE = "clickstream_test"


@pytest.fixture(scope="session")
def local_settings() -> Settings:
    """Settings of the ``local`` stack (env may point at other servers)."""
    return Settings.from_sources({"stack": "local"}, os.environ)


@pytest.fixture(scope="session")
def services_running(local_settings: Settings) -> Iterator[Settings]:
    already = {st.name for st in services.status(local_settings) if st.healthy}
    to_start = [n for n in services.SERVER_NAMES if n not in already]
    if to_start:
        services.up(local_settings, to_start)
    yield local_settings
    if to_start:
        services.down(local_settings, to_start)


@pytest.fixture(scope="session")
def kafka_bootstrap(services_running: Settings) -> str:
    return services_running.kafka_bootstrap


@pytest.fixture(scope="session")
def hdfs_url(services_running: Settings) -> str:
    return services_running.hdfs_url


@pytest.fixture(scope="session")
def cassandra_settings(services_running: Settings) -> Settings:
    """Local-stack settings on a test keyspace whose schema has been applied."""
    from clickstream.store.cassandra import apply_schema

    settings = services_running.replace(cassandra_keyspace=TEST_KEYSPACE, store="cassandra")
    apply_schema(settings)
    return settings


@pytest.fixture
def cassandra_store(cassandra_settings: Settings) -> Iterator[object]:
    from clickstream.store.cassandra import CassandraStore

    store = CassandraStore(cassandra_settings)
    yield store
    store.close()


@pytest.fixture
def unique_name(request: pytest.FixtureRequest) -> str:
    """A name no other test uses (topics, keyspaces' partitions, archive folders)."""
    base = "".join(ch if ch.isalnum() else "-" for ch in request.node.name)[:40]
    return f"{base}-{uuid.uuid4().hex[:8]}"


@pytest.fixture(scope="session")
def shared_data_dir() -> Path:
    if not SHARED_DATA_DIR.is_dir():
        pytest.skip(f"real clickstream samples not found at {SHARED_DATA_DIR} (../shared is absent)")
    return SHARED_DATA_DIR


@pytest.fixture
def isolated_cassandra_settings(services_running: Settings, unique_name: str) -> Iterator[Settings]:
    """Settings on a fresh keyspace of its own (schema applied), dropped afterwards.

    Use it where a test asserts the exact contents of tables that other tests also write.
    """
    from clickstream.store.cassandra import apply_schema, connect

    keyspace = "t_" + "".join(ch if ch.isalnum() else "_" for ch in unique_name).lower()[-40:]
    settings = services_running.replace(cassandra_keyspace=keyspace, store="cassandra")
    apply_schema(settings)
    yield settings
    cluster, session = connect(settings)
    try:
        session.execute(f"DROP KEYSPACE IF EXISTS {keyspace}", timeout=60)
    finally:
        cluster.shutdown()


@pytest.fixture(scope="session")
def comet_settings(local_settings: Settings) -> Settings:
    """``local_settings`` once Comet's jar (the Spark sessions' default engine) is fetched,
    as ``clickstream services fetch`` does (a no-op when it has)."""
    services.fetch(local_settings, services.SPARK_PLUGIN_NAMES)
    return local_settings


@pytest.fixture(scope="session")
def spark(comet_settings: Settings) -> Iterator[object]:
    """The one local[2] SparkSession of the test process, with the Cassandra connector.

    One per process on purpose: PySpark keeps its JVM after ``stop()``, and a later
    session cannot add ``spark.jars.packages`` to a JVM that started without them. It runs
    on the default engine, Comet.
    """
    from spark_jobs.session import build_session

    session = build_session(comet_settings.replace(spark_master="local[2]"), cassandra=True,
                            app_name="clickstream-tests")
    yield session
    session.stop()
