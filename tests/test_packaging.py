"""The wheel: it carries the local servers' poms and configs, and `clickstream services fetch`
runs from an installed wheel, outside the checkout.

To stay fast the wheel is installed (``--no-deps``) into a fresh venv that sees the test
interpreter's site-packages through a ``.pth`` line instead of installing every dependency
again; ``--ignore-installed`` keeps pip from touching the editable install it sees there,
and the checkout is on no path of that venv (its `.pth` files, which add the checkout,
are not read: only the venv's own site-packages is a site directory)."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import sysconfig
import zipfile
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent
SERVICE_FILES = ["clickstream/services/kafka/pom.xml", "clickstream/services/kafka/conf/server.properties",
                 "clickstream/services/kafka/conf/log4j2.yaml", "clickstream/services/cassandra/pom.xml",
                 "clickstream/services/cassandra/conf/cassandra.yaml", "clickstream/services/hdfs/pom.xml",
                 "clickstream/services/hdfs/conf/MiniHdfs.java", "clickstream/services/comet/pom.xml"]


@pytest.mark.integration  # builds with pip (PyPI for the build backend) and fetches with Maven
def test_installed_wheel_fetches_kafka_outside_the_checkout(tmp_path: Path) -> None:
    if shutil.which("mvn") is None:
        pytest.skip("Maven (mvn) is not on PATH: `clickstream services fetch` needs it")
    wheels = tmp_path / "wheels"
    subprocess.run([sys.executable, "-m", "pip", "wheel", "--no-deps", "-q", "-w", str(wheels), str(REPO)],
                   check=True, capture_output=True, timeout=600)
    [wheel] = wheels.glob("clickstream-*.whl")
    names = set(zipfile.ZipFile(wheel).namelist())
    assert set(SERVICE_FILES) <= names, sorted(set(SERVICE_FILES) - names)
    assert "clickstream/__main__.py" in names and not any(n.startswith("tests/") for n in names)

    venv = tmp_path / "venv"
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(venv)], check=True, timeout=120)
    python = venv / "bin" / "python"
    purelib = "import sysconfig; print(sysconfig.get_paths()['purelib'])"
    site = Path(subprocess.run([str(python), "-c", purelib], check=True, capture_output=True,
                               text=True).stdout.strip())
    (site / "shared-test-venv.pth").write_text(sysconfig.get_paths()["purelib"] + "\n")
    subprocess.run([sys.executable, "-m", "pip", "--python", str(python), "install", "-q", "--no-deps",
                    "--ignore-installed", str(wheel)], check=True, capture_output=True, timeout=300)

    outside = tmp_path / "elsewhere"
    outside.mkdir()
    env = {k: v for k, v in os.environ.items() if not k.startswith(("CLICKSTREAM_", "PYTHON"))}
    env["CLICKSTREAM_SERVICES_HOME"] = str(tmp_path / "services-home")  # a fresh jar cache
    where = subprocess.run([str(python), "-c", "import launch, clickstream.jars as j; "
                            "print(launch.__file__); print(j.SERVICES_DIR)"],
                           cwd=outside, env=env, check=True, capture_output=True, text=True).stdout.split()
    assert all(Path(p).is_relative_to(venv) for p in where), where

    done = subprocess.run([str(venv / "bin" / "clickstream"), "services", "fetch", "kafka"], cwd=outside,
                          env=env, capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stdout + done.stderr
    lib = tmp_path / "services-home" / "kafka" / "lib"
    assert done.stdout.splitlines() == ["fetch kafka: resolving services/kafka/pom.xml with Maven",
                                        f"fetch kafka: {lib}"]
    assert list(lib.glob("kafka_2.13-*.jar")) and (lib / ".fetched").is_file()
