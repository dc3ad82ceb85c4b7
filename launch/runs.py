"""The demo's run folders, found again after the demo ended (``clickstream dashboard --run``).

Each demo run writes ``run.json`` into its folder ``<work_dir>/demo/<run id>/`` when it
starts: the store it writes (backend, SQLite file or Cassandra keyspace) and the pipeline
id its rows are keyed by. ``settings_for_run`` turns settings into that run's, so the
dashboard reads the run's store and pipeline; contact points, ports and credentials stay
the caller's. ``--run`` takes ``latest`` (the newest run under ``<work_dir>/demo/``), a
run id, or a run folder's path (for ``demo --run-dir``).

A folder from before ``run.json`` existed (an embedded run with ``store.sqlite``) is read
with the demo's defaults of the time: its own SQLite file and the default pipeline id.
"""

from __future__ import annotations

import json
import shlex
from pathlib import Path
from typing import Any

from clickstream.settings import Settings

RUN_INFO = "run.json"
RUNS_DIR = "demo"


class RunNotFound(LookupError):
    """No such run; the message says where it looked."""


def write_run_info(settings: Settings, run_dir: Path, run_id: str) -> Path:
    """Write ``run.json`` of a run whose (run) ``settings`` are given; returns its path."""
    info: dict[str, Any] = {"run_id": run_id, "pipeline": settings.dashboard_pipeline or settings.pipeline_id,
                            "store": settings.store_backend}
    if settings.store_backend == "embedded":
        info["embedded_store_path"] = str(settings.embedded_store_file)
    else:
        info["cassandra_keyspace"] = settings.cassandra_keyspace
    path = run_dir / RUN_INFO
    path.write_text(json.dumps(info, indent=2) + "\n", encoding="utf-8")
    return path


def _is_run(folder: Path) -> bool:
    return (folder / RUN_INFO).is_file() or (folder / "store.sqlite").is_file()


def find_run(settings: Settings, run: str) -> Path:
    """The folder of run ``run``: ``latest``, a run id under ``<work_dir>/demo/``, or a path."""
    runs_dir = settings.work_path / RUNS_DIR
    if run == "latest":
        found = sorted((p for p in runs_dir.glob("*") if p.is_dir() and _is_run(p)),
                       key=lambda p: (p / RUN_INFO).stat().st_mtime if (p / RUN_INFO).is_file() else
                       p.stat().st_mtime)
        if not found:
            raise RunNotFound(f"--run latest: no demo run under {runs_dir} (run `clickstream demo` first, "
                              "or give --work-dir)")
        return found[-1]
    for folder in (runs_dir / run, Path(run).expanduser()):
        if folder.is_dir() and _is_run(folder):
            return folder.resolve()
    raise RunNotFound(f"--run {run}: no demo run {runs_dir / run} (nor a run folder {run}); "
                      f"`clickstream dashboard --run latest` opens the newest")


def settings_for_run(settings: Settings, run_dir: Path) -> Settings:
    """``settings`` pointed at the run's store and pipeline (see the module docstring)."""
    path = run_dir / RUN_INFO
    if not path.is_file():  # an embedded run from before run.json
        return settings.replace(store="embedded", embedded_store_path=str(run_dir / "store.sqlite"),
                                dashboard_pipeline=Settings().pipeline_id)
    info = json.loads(path.read_text(encoding="utf-8"))
    changes: dict[str, Any] = {"store": info["store"], "dashboard_pipeline": info["pipeline"]}
    if info["store"] == "embedded":
        changes["embedded_store_path"] = info["embedded_store_path"]
    else:
        changes["cassandra_keyspace"] = info["cassandra_keyspace"]
    return settings.replace(**changes)


def reopen_command(settings: Settings, run_dir: Path, run_id: str) -> str:
    """The command that reopens this run's dashboard later (``settings``: the caller's, not the run's)."""
    if run_dir.resolve() == (settings.work_path / RUNS_DIR / run_id).resolve():
        default = settings.work_dir == Settings().work_dir
        where = run_id if default else f"{run_id} --work-dir {shlex.quote(str(settings.work_path))}"
    else:
        where = shlex.quote(str(run_dir))
    stack = " --stack local" if settings.stack == "local" else ""
    return f"clickstream dashboard --run {where}{stack}"
