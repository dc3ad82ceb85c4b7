"""One SparkSession (local, with the Cassandra connector) for all Spark tests."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest

from clickstream.settings import Settings


@pytest.fixture(scope="session")
def spark(local_settings: Settings) -> Iterator[Any]:
    """A local[2] SparkSession with the connector on the classpath; stopped at session end."""
    from spark_jobs.session import build_session

    session = build_session(local_settings.replace(spark_master="local[2]"), cassandra=True,
                            app_name="clickstream-tests")
    yield session
    session.stop()


@pytest.fixture
def embedded_settings(tmp_path: Any) -> Settings:
    """Settings on a fresh embedded (SQLite) store in tmp_path."""
    return Settings(stack="embedded", work_dir=str(tmp_path / "work"), store="embedded")
