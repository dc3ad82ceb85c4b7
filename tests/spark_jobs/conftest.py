"""Fixtures of the Spark job tests (the ``spark`` session itself is in tests/conftest.py)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from clickstream.settings import Settings


@pytest.fixture
def embedded_settings(tmp_path: Any) -> Settings:
    """Settings on a fresh embedded (SQLite) store in tmp_path."""
    return Settings(stack="embedded", work_dir=str(tmp_path / "work"), store="embedded")


@pytest.fixture(scope="session")
def shared_clicks() -> Any:
    """One generated month-less archive's clicks (50 hours: 2015-02-01T00..2015-02-03T01, so
    one whole day and two partial ones), shared by the Spark tests that only read it."""
    from tests.spark_jobs.archive_builder import generate_clicks

    return generate_clicks(4000, seed=11, hours=50)


@pytest.fixture(scope="session")
def shared_archive(tmp_path_factory: pytest.TempPathFactory, shared_clicks: Any) -> Path:
    """``shared_clicks`` written once as a file:// archive (jobs may add their own output
    folders, e.g. PageRank's, but never touch ``clicks/``)."""
    from tests.spark_jobs.archive_builder import write_archive

    root = tmp_path_factory.mktemp("spark-shared") / "archive"
    write_archive(shared_clicks, root.as_uri())
    return root
