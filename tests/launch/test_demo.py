"""``clickstream demo`` end to end: the real CLI in a subprocess, its final summary checked
against the store it wrote, and its dashboard fetched over HTTP while it runs."""

from __future__ import annotations

import re
import subprocess
import sys
import threading
import time
import urllib.request
from pathlib import Path

import pytest

from clickstream.settings import Settings
from clickstream.store import open_store
from launch.demo import run_settings

CLICKS = 100_000
RUN_TIMEOUT_S = 480
DAY = "2015-02-01"  # the demo's event time starts at the synthetic month's first day


class DemoProcess:
    """``clickstream demo`` in a subprocess; stdout collected line by line on a thread."""

    def __init__(self, args: list[str]) -> None:
        self.proc = subprocess.Popen(
            # ``python -m``, not the console script: the checkout under test, wherever installed
            [sys.executable, "-m", "launch.cli.main", "demo", *args],
            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, bufsize=1)
        self.lines: list[str] = []
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()

    def _read(self) -> None:
        assert self.proc.stdout is not None
        for line in self.proc.stdout:
            self.lines.append(line.rstrip("\n"))

    def wait_for_line(self, pattern: str, timeout_s: float) -> re.Match[str]:
        deadline = time.monotonic() + timeout_s
        while True:
            for line in list(self.lines):
                match = re.search(pattern, line)
                if match:
                    return match
            ended = self.proc.poll() is not None and not self._reader.is_alive()
            if ended or time.monotonic() >= deadline:
                break
            time.sleep(0.1)
        raise AssertionError(f"no line matching {pattern!r}; output:\n" + "\n".join(self.lines))

    def finish(self) -> int:
        try:
            code = self.proc.wait(timeout=RUN_TIMEOUT_S)
        finally:
            if self.proc.poll() is None:
                self.proc.kill()
                self.proc.wait()
        self._reader.join(timeout=10)
        return code

    def summary_int(self, label: str) -> int:
        match = self.wait_for_line(rf"^\s+{label}:\s+([\d,]+)", 0)
        return int(match.group(1).replace(",", ""))


def fetch_while_running(demo: DemoProcess, url: str) -> int:
    """HTTP status of the dashboard page, fetched while the demo process is still running."""
    deadline = time.monotonic() + 60
    while True:
        assert demo.proc.poll() is None, "the demo ended before its dashboard was fetched"
        try:
            with urllib.request.urlopen(url, timeout=10) as response:
                status = response.status
            assert demo.proc.poll() is None, "the demo ended while its dashboard was fetched"
            return status
        except OSError:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.5)


def run_and_check(args: list[str], store_settings: Settings | None) -> tuple[DemoProcess, Settings]:
    demo = DemoProcess(["--clicks", str(CLICKS), "--rate", "0", "--dashboard-port", "0", *args])
    url = demo.wait_for_line(r"demo: dashboard at (http://\S+)", 120).group(1)
    assert fetch_while_running(demo, url) == 200
    code = demo.finish()
    output = "\n".join(demo.lines)
    assert code == 0, output
    assert "demo: final summary" in output and "(stopped early)" not in output
    run_dir = Path(demo.wait_for_line(r"^\s+run folder:\s+(\S+)", 0).group(1))
    assert (run_dir / "summary.json").is_file()
    if store_settings is None:  # embedded: the store file in the run folder
        store_file = run_dir / "store.sqlite"
        assert store_file.is_file(), output
        store_settings = Settings(embedded_store_path=str(store_file))
    generated = demo.summary_int("clicks generated")
    counted = demo.summary_int("clicks counted")
    assert generated == CLICKS
    assert counted == generated
    jobs = "--no-jobs" not in args
    if jobs:
        assert demo.summary_int("batch table rows") > 0
        assert demo.summary_int("pagerank rows") > 0

    # Independently, from the store the demo wrote:
    store = open_store(store_settings)
    try:
        pipeline = run_settings(store_settings, run_dir, run_dir.name).pipeline_id  # the demo's own
        minutes = store.select("window_totals", {"pipeline": pipeline, "window_ms": 60_000, "day": DAY})
        assert sum(r["clicks"] + r["late_clicks"] for r in minutes) == generated
        if not jobs:
            return demo, store_settings
        top_sources = store.select("top_articles", {"kind": "source"})
        top_destinations = store.select("top_articles", {"kind": "destination"})
        assert top_sources and top_destinations
        assert store.select("top_destinations", {"source": top_sources[0]["title"]})
        assert store.select("top_sources", {"destination": top_destinations[0]["title"]})
        shares = store.select("link_type_share", {"scope": "all"})
        assert sum(r["clicks"] for r in shares) == generated
        for variant in ("weighted", "unweighted"):
            runs = store.select("pagerank_runs", {"variant": variant})
            assert runs and runs[0]["nodes"] > 0
            assert store.select("pagerank_top", {"run_date": runs[0]["run_date"], "variant": variant})
    finally:
        store.close()
    return demo, store_settings


@pytest.mark.integration  # no servers, but it runs Spark (the marker's definition)
def test_demo_embedded_summary_matches_store(tmp_path: Path) -> None:
    demo, _ = run_and_check(["--stack", "embedded", "--work-dir", str(tmp_path)], None)
    assert any(line.startswith("demo: ") and " | clicks in " in line for line in demo.lines)
    run_dir = Path(demo.wait_for_line(r"^\s+run folder:\s+(\S+)", 0).group(1))
    command = demo.wait_for_line(r"demo: reopen this run's dashboard with: (.+)$", 0).group(1)
    assert command == f"clickstream dashboard --run {run_dir.name} --work-dir {tmp_path.resolve()}"
    reopen_dashboard_after_the_demo(tmp_path, run_dir)


def reopen_dashboard_after_the_demo(work_dir: Path, run_dir: Path) -> None:
    """``clickstream dashboard --run latest`` once the demo has ended: the run's store and pipeline."""
    proc = subprocess.Popen([sys.executable, "-m", "launch.cli.main", "dashboard", "--run", "latest",
                             "--work-dir", str(work_dir), "--dashboard-port", "0"],
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, bufsize=1)
    try:
        assert proc.stdout is not None
        lines = [proc.stdout.readline().strip()]
        while not lines[-1].startswith("dashboard: serving") and len(lines) < 30:  # past Bokeh's log lines
            lines.append(proc.stdout.readline().strip())
        assert lines[0] == f"dashboard: demo run {run_dir}", lines
        serving = re.match(r"dashboard: serving (http://\S+) \(store: (\S+), pipeline (\S+)\)", lines[-1])
        assert serving, lines
        assert Path(serving.group(2)) == run_dir / "store.sqlite"
        assert serving.group(3) == run_settings(Settings(), run_dir, run_dir.name).pipeline_id
        with urllib.request.urlopen(serving.group(1), timeout=30) as response:
            assert response.status == 200
    finally:
        proc.terminate()
        proc.wait(timeout=30)


@pytest.mark.integration
def test_demo_local_stack_summary_matches_store(tmp_path: Path, isolated_cassandra_settings: Settings,
                                               hdfs_url: str, unique_name: str) -> None:
    from clickstream.archive import filesystem

    archive = f"{hdfs_url}/tests/demo/{unique_name}"
    try:
        # the Spark jobs on the local stack are tests/spark_jobs' (HDFS archive -> Cassandra);
        # the demo's running of them is the embedded test's: here the servers' path alone
        demo, _ = run_and_check(
            ["--stack", "local", "--no-jobs", "--work-dir", str(tmp_path), "--topic", unique_name,
             "--cassandra-keyspace", isolated_cassandra_settings.cassandra_keyspace,
             "--archive-url", archive], isolated_cassandra_settings.replace(topic=unique_name))
        assert any(f"Kafka topic {unique_name}-demo-" in line for line in demo.lines)
        fs, path = filesystem(archive)
        assert fs.find(path), f"nothing archived under {archive}"
    finally:
        fs, path = filesystem(archive)
        if fs.exists(path):
            fs.rm(path, recursive=True)


def test_run_settings_isolate_each_run(tmp_path: Path) -> None:

    embedded = run_settings(Settings(work_dir=str(tmp_path)), tmp_path / "run1", "run1")
    assert embedded.embedded_store_file == (tmp_path / "run1" / "store.sqlite").resolve()
    assert embedded.archive == (tmp_path / "run1" / "archive").resolve().as_uri()
    local = run_settings(Settings(stack="local", topic="t", consumer_group="g"), tmp_path / "r", "r2")
    assert (local.topic, local.consumer_group, local.dashboard_pipeline) == ("t-demo-r2", "g-demo-r2",
                                                                             "g-demo-r2/t-demo-r2")
    assert local.archive == "hdfs://127.0.0.1:9000/clickstream/archive/demo/r2"
    given = run_settings(Settings(stack="local", archive_url="hdfs://h:1/x"), tmp_path / "r", "r3")
    assert given.archive == "hdfs://h:1/x"


def test_a_dump_gets_no_spike_unless_asked(tmp_path: Path, shared_data_dir: Path) -> None:
    import io

    from launch.demo import Demo, DemoOptions, plan_replay

    dump = shared_data_dir / "clickstream-enwiki-2015-02_head10k.tsv"
    scanned: list[tuple[int, int, bool]] = []
    for options, spike_text in ((DemoOptions(clicks=500, dump=dump), None),
                                (DemoOptions(clicks=500, dump=dump, spike="5:2:50:Foo"), "; spike on Foo"),
                                (DemoOptions(clicks=500), "; spike on 3 articles picked from the input")):
        replay = plan_replay(options, tmp_path, lambda *a: scanned.append(a))
        out = io.StringIO()
        Demo(Settings(work_dir=str(tmp_path)), options, out)._announce(replay)
        start_line = out.getvalue().splitlines()[0]
        assert start_line.startswith("demo: replaying 500 clicks")
        if spike_text is None:
            assert replay.spike is None and "spike" not in start_line
        else:
            assert start_line.endswith(spike_text)
    assert scanned[-1][2] and scanned[-1][0] == 9_999  # the first pass over the dump (a header + 9,999 rows)


def test_plan_replay_maps_the_options_to_the_paced_plan(tmp_path: Path) -> None:
    from launch.demo import DemoError, DemoOptions, plan_replay

    replay = plan_replay(DemoOptions(clicks=2_000, rate_per_s=200, spike="5:2:50:Foo,Bar"), tmp_path)
    clicks = list(replay.clicks)
    assert replay.planned == len(clicks) == 2_000 and replay.spike_titles == ("Foo", "Bar")
    assert 90_000 <= replay.span_ms <= 110_000
    assert not plan_replay(DemoOptions(clicks=100, spike=""), tmp_path).spike_titles
    with pytest.raises(DemoError, match="--spike: spike 'x'"):
        plan_replay(DemoOptions(spike="x"), tmp_path)
