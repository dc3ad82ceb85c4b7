"""The pipeline's own LocalCluster prints a Dask dashboard link that answers.

(``clickstream stream`` on a cluster of ``dask scheduler`` and ``dask worker`` processes, with
a worker killed mid-run, is in ``test_full_cluster.py``.)"""

from __future__ import annotations

import subprocess
import urllib.request
from pathlib import Path

import pytest

from clickstream.settings import Settings
from producer.sender import records
from tests.pipeline.test_integration import make_clicks, produce, remove_archive
from tests.scale.conftest import ENV, REPO, own_topic, stop, stream_argv

pytestmark = pytest.mark.integration


def test_own_local_cluster_prints_a_dashboard_link(isolated_cassandra_settings: Settings, unique_name: str,
                                                   tmp_path: Path) -> None:
    settings = own_topic(isolated_cassandra_settings, unique_name)
    clicks = make_clicks(200, seed=32, limit=2_000, span_s=60)
    produce(settings, settings.topic, [(k, v) for k, v, _n, _t in records(clicks)])
    proc = subprocess.Popen(stream_argv(settings, tmp_path / "work", "--dask-workers", "1",
                                        "--dask-dashboard-address", "127.0.0.1:0", "--until-idle-s", "4"),
                            cwd=REPO, env=ENV, start_new_session=True, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)
    try:
        link = None
        assert proc.stdout is not None
        for line in proc.stdout:
            if line.startswith("stream: Dask dashboard at "):
                link = line.split(" at ", 1)[1].strip()
                break
        assert link and link.startswith("http://127.0.0.1:"), proc.communicate(timeout=120)[1][-3000:]
        with urllib.request.urlopen(link, timeout=30) as page:  # the pipeline is still running
            assert page.status == 200
        out, err = proc.communicate(timeout=120)
        assert proc.returncode == 0, err[-3000:]
        assert "stream: 2000 clicks" in out
    finally:
        stop(proc)
        remove_archive(settings.archive)
