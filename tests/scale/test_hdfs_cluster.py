"""HDFS with 3 DataNodes (one JVM, ports of its own): a written file has 3 replicas."""

from __future__ import annotations

import time
import urllib.request
from pathlib import Path
from xml.etree import ElementTree

import pytest
from hdfs_native import Client

from launch import services
from tests.scale.conftest import cluster_settings

pytestmark = pytest.mark.integration


def test_three_datanodes_keep_three_replicas(tmp_path: Path) -> None:
    settings = cluster_settings(tmp_path, hdfs_datanodes=3)
    assert settings.hdfs_replication_factor == 3
    t0 = time.monotonic()
    try:
        report = services.up(settings, ["hdfs"], log=print)
        print(f"hdfs with 3 DataNodes up in {time.monotonic() - t0:.1f} s")
        assert [(s.name, s.healthy) for s in report] == [("hdfs", True)], report
        assert services.hdfs_live_datanodes(settings) == 3
        client = Client(settings.hdfs_url)
        with client.create("/scale/three.bin") as f:
            f.write(b"x" * 300_000)
        info = client.get_file_info("/scale/three.bin")
        assert (info.length, info.replication) == (300_000, 3)
        # the NameNode's own default, which clients that do not choose (fsspec, Spark) get
        conf_url = f"http://127.0.0.1:{settings.hdfs_http_port}/conf?name=dfs.replication"
        with urllib.request.urlopen(conf_url, timeout=30) as resp:
            conf = ElementTree.fromstring(resp.read())
        assert [p.findtext("value") for p in conf.iter("property")
                if p.findtext("name") == "dfs.replication"] == ["3"]
    finally:
        services.down(settings, ["hdfs"], log=print)
