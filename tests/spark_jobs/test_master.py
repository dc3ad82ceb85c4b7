"""Who decides the Spark master and the driver's address: the launcher (spark-submit's
``--master``/``--conf``, ``spark-defaults.conf``, ``MASTER``) first, then the settings."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from clickstream.settings import Settings
from spark_jobs.package import build_zip
from spark_jobs.session import LOCAL_SHUFFLE_PARTITIONS, spark_conf
from tests.spark_jobs.conftest import spark_submit

REPO = Path(__file__).resolve().parents[2]
# What build_session made of it, printed by a driver of its own (a fresh JVM each).
PROBE = """
from clickstream.settings import Settings
from spark_jobs.session import build_session
conf = build_session(Settings(spark_engine="spark"), cassandra=False).sparkContext.getConf()
print("probe:", conf.get("spark.master"), conf.get("spark.sql.shuffle.partitions"),
      conf.get("spark.driver.host", "-"))
"""


def _conf(settings: Settings, **launcher: str) -> dict[str, str]:
    named = {key.replace("_", "."): value for key, value in launcher.items()}
    return spark_conf(settings, cassandra=False, launcher=named)


def test_settings_decide_when_nothing_else_did() -> None:
    conf = _conf(Settings())
    assert conf["spark.master"] == "local[2]"
    assert conf["spark.driver.host"] == conf["spark.driver.bindAddress"] == "127.0.0.1"
    assert conf["spark.sql.shuffle.partitions"] == str(LOCAL_SHUFFLE_PARTITIONS)
    assert _conf(Settings(spark_master="spark://m:7077"))["spark.master"] == "spark://m:7077"


def test_the_launchers_master_wins() -> None:
    """spark-submit --master local[3] (or spark-defaults.conf) over the settings' local[2]."""
    assert _conf(Settings(), spark_master="local[3]")["spark.master"] == "local[3]"
    conf = _conf(Settings(spark_master="local[2]"), spark_master="spark://m:7077")
    assert conf["spark.master"] == "spark://m:7077"
    # a cluster master: Spark's own choice of the driver's address and of the partitions
    assert not {"spark.driver.host", "spark.driver.bindAddress", "spark.sql.shuffle.partitions",
                "spark.driver.memory"} & set(conf)


def test_driver_address_settings() -> None:
    conf = _conf(Settings(spark_master="spark://m:7077", spark_driver_host="10.1.2.3"))
    assert conf["spark.driver.host"] == "10.1.2.3" and "spark.driver.bindAddress" not in conf
    conf = _conf(Settings(spark_master="spark://m:7077", spark_driver_host="10.1.2.3",
                          spark_driver_bind_address="0.0.0.0"))
    assert (conf["spark.driver.host"], conf["spark.driver.bindAddress"]) == ("10.1.2.3", "0.0.0.0")
    # the local stack keeps the driver on the servers' (loopback) address, whatever the master
    conf = _conf(Settings(stack="local", spark_master="spark://127.0.0.1:7077"))
    assert conf["spark.driver.host"] == conf["spark.driver.bindAddress"] == "127.0.0.1"
    # a launcher's --conf spark.driver.host wins; keys it may not decide are ignored
    conf = _conf(Settings(spark_driver_host="10.1.2.3"), spark_driver_host="10.9.9.9", spark_app_name="x")
    assert conf["spark.driver.host"] == "10.9.9.9" and conf["spark.app.name"] == "clickstream"


@pytest.mark.integration
def test_spark_submit_master_and_spark_defaults_win(tmp_path: Path) -> None:
    """The real launchers: ``spark-submit --master local[3]``, and ``spark-defaults.conf`` in
    ``SPARK_CONF_DIR`` for the JVM a plain Python process (``clickstream batch``) starts."""
    probe = tmp_path / "probe.py"
    probe.write_text(PROBE)
    jobs_zip = str(build_zip(tmp_path / "jobs.zip"))
    done = spark_submit(["spark-submit", "--master", "local[3]", "--py-files", jobs_zip, str(probe)],
                        tmp_path)
    assert "probe: local[3] 4 127.0.0.1" in done.stdout, done.stdout

    conf_dir = tmp_path / "conf"
    conf_dir.mkdir()
    (conf_dir / "spark-defaults.conf").write_text("spark.master local[3]\nspark.sql.shuffle.partitions 6\n")
    env = {k: v for k, v in os.environ.items() if not k.startswith("CLICKSTREAM_")}
    done = subprocess.run([sys.executable, str(probe)], cwd=REPO, capture_output=True, text=True, timeout=600,
                          env=env | {"SPARK_CONF_DIR": str(conf_dir), "PYTHONPATH": str(REPO)})
    assert done.returncode == 0, done.stderr[-3000:]
    assert "probe: local[3] 6 127.0.0.1" in done.stdout, done.stdout
