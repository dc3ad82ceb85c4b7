"""Fixtures of the Spark job tests (the ``spark`` session itself is in tests/conftest.py)."""

from __future__ import annotations

import os
import subprocess
import sys
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


def spark_submit(command: list[str], tmp_path: Path) -> subprocess.CompletedProcess[str]:
    """``command`` (a spark-submit command line) through pyspark's own bin/spark-submit, with
    the checkout's editable install hidden from every Python process (so the --py-files zip
    alone must hold the code) and no CLICKSTREAM_* env; fails unless it exits 0."""
    import pyspark

    hide = tmp_path / "hide-editable-install"
    hide.mkdir(exist_ok=True)
    # Runs in every Python process after site-packages' .pth files (which install the finder).
    (hide / "sitecustomize.py").write_text(
        "import sys\n"
        "sys.meta_path[:] = [f for f in sys.meta_path\n"
        "                    if 'EditableFinder' not in getattr(f, '__name__', '')]\n"
        "print('editable install hidden', file=sys.stderr)\n")
    env = {k: v for k, v in os.environ.items() if not k.startswith("CLICKSTREAM_")}
    env |= {"PYSPARK_PYTHON": sys.executable, "PYSPARK_DRIVER_PYTHON": sys.executable,
            "PYTHONPATH": str(hide)}
    submit = Path(pyspark.__file__).parent / "bin" / "spark-submit"
    done = subprocess.run([str(submit), *command[1:]], cwd=tmp_path, env=env, capture_output=True,
                          text=True, timeout=600)
    assert done.returncode == 0, done.stderr[-3000:]
    assert "editable install hidden" in done.stdout + done.stderr  # spark-submit merges them
    return done
