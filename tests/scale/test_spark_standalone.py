"""The Spark jobs on a Spark standalone cluster started from pyspark's own distribution (a
master and one worker, loopback): ``spark-submit --master spark://127.0.0.1:<port>`` with
the project shipped as the ``--py-files`` zip and Comet's jar on the worker (the command
``clickstream batch --print-submit`` prints), giving the tables local runs give (the
recount and networkx the local-run tests check against), and the master's own JSON
listing the application each job says it ran as: a job that ran anywhere else fails."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from clickstream.settings import Settings
from clickstream.store import open_store
from spark_jobs.entry import submit_command
from spark_jobs.package import build_zip
from spark_jobs.pagerank_math import OTHER_TELEPORT, build_graph, graph_pagerank, top_n
from tests.scale.conftest import free_port, stop
from tests.spark_jobs.archive_builder import generate_clicks, write_archive
from tests.spark_jobs.conftest import spark_submit
from tests.spark_jobs.recount import batch_tables
from tests.spark_jobs.tables_dump import dump_table

pytestmark = pytest.mark.integration

TOP_N = 5
SHUFFLE_PARTITIONS = 2
RAN_AS = re.compile(r"(batch|pagerank): ran on master (\S+) as application (\S+) \(driver (\S+)\)")


class Standalone:
    """A standalone master and one worker (1 core, 2 GB) from pyspark's distribution."""

    def __init__(self, work: Path) -> None:
        import pyspark

        spark_class = Path(pyspark.__file__).parent / "bin" / "spark-class"
        self.master_url = f"spark://127.0.0.1:{free_port()}"
        self.webui = f"http://127.0.0.1:{free_port()}"
        deploy = "org.apache.spark.deploy"
        self.procs: list[subprocess.Popen] = []
        self._start(work / "master.log", [str(spark_class), f"{deploy}.master.Master", "--host", "127.0.0.1",
                                          "--port", self.master_url.rsplit(":", 1)[1],
                                          "--webui-port", self.webui.rsplit(":", 1)[1]])
        self._start(work / "worker.log", [str(spark_class), f"{deploy}.worker.Worker", self.master_url,
                                          "--host", "127.0.0.1", "--cores", "1", "--memory", "2g",
                                          "--webui-port", str(free_port()),
                                          "--work-dir", str(work / "worker")])

    def _start(self, log_path: Path, argv: list[str]) -> None:
        with open(log_path, "wb") as log:
            self.procs.append(subprocess.Popen(argv, stdout=log, stderr=subprocess.STDOUT,
                                               start_new_session=True,
                                               env={**os.environ, "PYSPARK_PYTHON": sys.executable}))

    def state(self) -> dict:
        """The master's JSON page: workers, active and completed applications."""
        with urllib.request.urlopen(f"{self.webui}/json", timeout=10) as page:
            return json.load(page)

    def wait_for_worker(self, timeout_s: float = 120) -> None:
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            try:
                if any(w["state"] == "ALIVE" for w in self.state()["workers"]):
                    return
            except OSError:
                pass
            assert all(p.poll() is None for p in self.procs), "the master or the worker exited"
            time.sleep(1)
        raise AssertionError(f"no worker registered with {self.master_url} in {timeout_s:.0f} s")

    def close(self) -> None:
        for proc in reversed(self.procs):
            stop(proc)


@pytest.fixture(scope="module")
def standalone(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Standalone]:
    cluster = Standalone(tmp_path_factory.mktemp("standalone"))
    try:
        cluster.wait_for_worker()
        yield cluster
    finally:
        cluster.close()


@pytest.fixture(scope="module")
def clicks() -> pd.DataFrame:
    return generate_clicks(4000, seed=13, hours=50)


@pytest.fixture(scope="module")
def archive(tmp_path_factory: pytest.TempPathFactory, clicks: pd.DataFrame) -> Path:
    root = tmp_path_factory.mktemp("standalone-archive") / "archive"
    write_archive(clicks, root.as_uri())
    return root


def submit_job(standalone: Standalone, comet_settings: Settings, job: str, job_args: list[str],
               tmp_path: Path) -> tuple[str, str]:
    """``job`` submitted to the standalone master as ``--print-submit`` prints it (Comet's jar
    on the driver's and the executors' class paths); returns its stdout and its driver
    host. Fails unless the master lists the application the job says it ran as."""
    settings = Settings(services_home=str(comet_settings.services_home_path), spark_engine="comet",
                        spark_master=standalone.master_url)
    command = submit_command(settings, job, job_args, str(build_zip(tmp_path / "jobs.zip")))
    assert command[command.index("--master") + 1] == standalone.master_url
    assert "--driver-class-path" in command
    # a cluster runs with Spark's own 200 shuffle partitions unless told: 1 core wants few
    command[1:1] = ["--conf", f"spark.sql.shuffle.partitions={SHUFFLE_PARTITIONS}",
                    "--conf", f"spark.default.parallelism={SHUFFLE_PARTITIONS}"]
    done = spark_submit(command, tmp_path)
    assert "(engine comet)" in done.stdout, done.stdout
    [(_job, master, app_id, driver)] = RAN_AS.findall(done.stdout)
    assert master == standalone.master_url
    completed = {app["id"]: app for app in standalone.state()["completedapps"]}
    assert app_id in completed, f"{app_id} is not among the master's applications {sorted(completed)}"
    assert completed[app_id]["state"] == "FINISHED" and completed[app_id]["cores"] == 1
    return done.stdout, driver


def test_batch_on_the_standalone_master_gives_the_local_tables(standalone: Standalone,
                                                               comet_settings: Settings, archive: Path,
                                                               clicks: pd.DataFrame, tmp_path: Path) -> None:
    store = Settings(stack="embedded", work_dir=str(tmp_path / "work"), store="embedded")
    submit_job(standalone, comet_settings, "batch",
               [archive.as_uri(), "--top-n", str(TOP_N), "--stack", "embedded", "--store", "embedded",
                "--work-dir", store.work_dir], tmp_path)
    expected = batch_tables(clicks, TOP_N, whole_days={"2015-02-01", "2015-02-02", "2015-02-03"})
    for name, rows in expected.items():
        got = dump_table(store, name)
        assert got == rows, f"{name}: {len(got - rows)} unexpected, {len(rows - got)} missing"


def test_pagerank_on_the_standalone_master_gives_the_local_ranks(
        standalone: Standalone, comet_settings: Settings, archive: Path, clicks: pd.DataFrame,
        tmp_path: Path) -> None:
    """Also: the driver's address from settings (``--spark-driver-host``/``-bind-address``)."""
    store = Settings(stack="embedded", work_dir=str(tmp_path / "work"), store="embedded")
    _out, driver = submit_job(standalone, comet_settings, "pagerank",
                              [archive.as_uri(), "--tol", "1e-12", "--max-iter", "2000", "--top-n", "10",
                               "--run-date", "2015-03-02", "--stack", "embedded", "--store", "embedded",
                               "--work-dir", store.work_dir, "--spark-driver-host", "127.0.0.1",
                               "--spark-driver-bind-address", "127.0.0.1"], tmp_path)
    assert driver == "127.0.0.1"
    edges = clicks.groupby(["prev", "curr"]).size().rename("clicks").reset_index()
    opened = open_store(store)
    try:
        for variant, weighted in (("weighted", True), ("unweighted", False)):
            graph = build_graph(edges["prev"].to_numpy(), edges["curr"].to_numpy(),
                                edges["clicks"].to_numpy(), weighted=weighted,
                                other=OTHER_TELEPORT)  # the job's default
            expected = pd.Series(graph_pagerank(graph, tol=1e-12, max_iter=2000).scores, index=graph.titles)
            written = pd.read_parquet(archive / "pagerank" / "run_date=2015-03-02" / f"variant={variant}")
            written = written.set_index("title")["score"]
            assert set(written.index) == set(expected.index)
            assert np.abs(written.reindex(expected.index).to_numpy() - expected.to_numpy()).sum() < 1e-12
            top = opened.select("pagerank_top", {"run_date": "2015-03-02", "variant": variant})
            ranked = top_n(expected.to_numpy(), graph.titles, 10)
            assert [r["title"] for r in top] == [title for _, title, _ in ranked]
    finally:
        opened.close()
