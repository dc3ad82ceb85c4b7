"""Demo run folders found again by ``clickstream dashboard --run`` (``launch.runs``)."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from clickstream.settings import Settings
from launch.runs import RunNotFound, find_run, reopen_command, settings_for_run, write_run_info


def _run(work: Path, run_id: str, mtime: float, settings: Settings | None = None) -> Path:
    folder = work / "demo" / run_id
    folder.mkdir(parents=True)
    run = (settings or Settings(work_dir=str(folder))).replace(dashboard_pipeline=f"g-{run_id}/t-{run_id}")
    path = write_run_info(run, folder, run_id)
    os.utime(path, (mtime, mtime))
    return folder


def test_latest_id_and_folder(tmp_path: Path) -> None:
    settings = Settings(work_dir=str(tmp_path))
    older = _run(tmp_path, "20261129-100000-aaaa", 1_000)
    newer = _run(tmp_path, "20261129-090000-bbbb", 2_000)  # written last, whatever its name
    (tmp_path / "demo" / "not-a-run").mkdir()
    assert find_run(settings, "latest") == newer
    assert find_run(settings, older.name) == older.resolve()
    assert find_run(settings, str(older)) == older.resolve()
    with pytest.raises(RunNotFound, match=r"no demo run .*nope"):
        find_run(settings, "nope")
    with pytest.raises(RunNotFound, match="--run latest: no demo run under"):
        find_run(Settings(work_dir=str(tmp_path / "empty")), "latest")


def test_settings_point_at_the_runs_store_and_pipeline(tmp_path: Path) -> None:
    folder = _run(tmp_path, "r1", 1)
    run = settings_for_run(Settings(work_dir=str(tmp_path), dashboard_port=0), folder)
    assert run.store_backend == "embedded" and run.embedded_store_file == folder.resolve() / "store.sqlite"
    assert run.dashboard_pipeline == "g-r1/t-r1" and run.dashboard_port == 0
    local = _run(tmp_path, "r2", 2, Settings(stack="local", cassandra_keyspace="ks_demo"))
    run = settings_for_run(Settings(work_dir=str(tmp_path)), local)
    assert (run.store_backend, run.cassandra_keyspace) == ("cassandra", "ks_demo")
    old = tmp_path / "demo" / "r0"  # from before run.json: its SQLite file, the default pipeline
    old.mkdir()
    (old / "store.sqlite").touch()
    run = settings_for_run(Settings(), old)
    assert run.embedded_store_file == old / "store.sqlite"
    assert run.dashboard_pipeline == Settings().pipeline_id


def test_reopen_command(tmp_path: Path) -> None:
    assert reopen_command(Settings(), Settings().work_path / "demo" / "r1", "r1") == \
        "clickstream dashboard --run r1"
    given = Settings(work_dir=str(tmp_path / "w d"), stack="local")
    assert reopen_command(given, given.work_path / "demo" / "r1", "r1") == \
        f"clickstream dashboard --run r1 --work-dir '{tmp_path / 'w d'}' --stack local"
    assert reopen_command(Settings(), tmp_path / "x", "r1") == f"clickstream dashboard --run {tmp_path / 'x'}"
