"""``clickstream reconcile`` and ``pagerank`` exit statuses, and Spark's progress lines."""

from __future__ import annotations

import io
import time
from pathlib import Path

import pytest

from clickstream.settings import Settings
from clickstream.store import open_store
from launch.cli.main import main
from launch.progress import SparkProgress, StageTasks, progress_line

PAGERANK_NOT_CONVERGED = 4
RECONCILE_DIFFERENCES = 3


def test_progress_line_shows_the_oldest_stages() -> None:
    assert progress_line("batch", 3.2, []) is None
    stages = [StageTasks(7, 0, 4, 0), StageTasks(5, 41, 200, 2), StageTasks(6, 1, 2, 1),
              StageTasks(8, 0, 1, 0)]
    assert progress_line("batch", 12.4, stages) == (
        "batch:   12 s | stage 5: 41/200 tasks (2 running) | stage 6: 1/2 tasks (1 running) | "
        "stage 7: 0/4 tasks | 1 more stages")


@pytest.mark.integration
def test_spark_progress_prints_the_running_stage(spark: object) -> None:
    out = io.StringIO()
    progress = SparkProgress(out, label="test", every_s=0.2).start()
    try:
        rdd = spark.sparkContext.parallelize(range(4), 4)  # type: ignore[attr-defined]
        rdd.map(lambda x: time.sleep(1.0) or x).collect()
    finally:
        progress.stop()
    lines = out.getvalue().splitlines()
    assert lines and all(line.startswith("test: ") for line in lines)
    assert any("/4 tasks" in line for line in lines), lines


@pytest.mark.integration
def test_reconcile_dry_run_writes_nothing_and_exits_3_on_differences(
        spark: object, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from tests.spark_jobs.archive_builder import generate_clicks, write_archive

    url = (tmp_path / "archive").as_uri()
    write_archive(generate_clicks(300, seed=5, hours=1), url)  # no streamed windows: all differ
    base = ["reconcile", url, "--stack", "embedded", "--work-dir", str(tmp_path / "w"), "--no-progress"]
    assert main([*base, "--dry-run", "--run-id", "dry"]) == RECONCILE_DIFFERENCES
    assert "dry run: nothing corrected, differences not recorded" in capsys.readouterr().out
    store = open_store(_settings(tmp_path))
    try:
        assert store.select("reconcile_diffs", {"run_id": "dry"}) == []
        listed = store.select("reconcile_runs", {"pipeline": _settings(tmp_path).pipeline_id})
        assert [(r["run_id"], r["dry_run"], r["differences"] > 0) for r in listed] == [("dry", 1, True)]
    finally:
        store.close()
    assert main([*base, "--run-id", "fix"]) == RECONCILE_DIFFERENCES  # found, and corrected
    assert main([*base, "--run-id", "again"]) == 0
    assert "0 differed" in capsys.readouterr().out


def _settings(tmp_path: Path) -> Settings:
    return Settings(stack="embedded", work_dir=str(tmp_path / "w"))


@pytest.mark.integration
def test_pagerank_exits_4_when_not_converged(spark: object, tmp_path: Path,
                                            capsys: pytest.CaptureFixture[str]) -> None:
    from tests.spark_jobs.archive_builder import generate_clicks, write_archive

    url = (tmp_path / "archive").as_uri()
    write_archive(generate_clicks(2000, seed=8, hours=2), url)
    base = ["pagerank", url, "--stack", "embedded", "--work-dir", str(tmp_path),
            "--variant", "weighted", "--run-date", "2015-03-09", "--no-progress"]
    assert main([*base, "--max-iter", "2"]) == PAGERANK_NOT_CONVERGED
    captured = capsys.readouterr()
    assert "NOT converged" in captured.out and "not converged within --max-iter 2" in captured.err
    assert main(base) == 0
    assert "(converged)" in capsys.readouterr().out
