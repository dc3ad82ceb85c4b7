"""Fetch, start, check and stop the local Kafka, Cassandra and HDFS servers.

The servers are plain JVM processes from their official Maven Central jars:

- ``fetch`` resolves each ``services/<name>/pom.xml`` with ``mvn dependency:copy-dependencies``
  into ``<services_home>/<name>/lib``; a ``.fetched`` stamp holding the pom's hash makes
  repeat runs instant. Besides the servers it fetches the Spark plugins
  (``SPARK_PLUGIN_NAMES``: Apache DataFusion Comet, which ``spark_jobs.session`` loads).
- ``up`` checks java, the jars and every port before starting anything, then starts the
  servers together on ``bind_address`` (loopback by default) with our config files from
  ``services/``, data and logs under ``<work_dir>/services/<name>``, and waits for each
  health check. If any server fails, every server this call started is stopped again.
- ``status`` reports each server's address and health; ``down`` stops them (TERM, then
  KILL) and waits until their ports are free.

Every failure is a ``ServiceError`` whose message is one line naming what and where.
"""

from __future__ import annotations

import base64
import contextlib
import logging
import os
import shutil
import signal
import socket
import subprocess
import time
import uuid
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path

from kafka import KafkaAdminClient

from clickstream.archive import filesystem
from clickstream.jars import FETCHED_STAMP, REPO_SERVICES_DIR, is_fetched, lib_dir, pom_hash
from clickstream.settings import Settings
from clickstream.store.cassandra import connect
from clickstream.store.cql import SELECT_RELEASE_VERSION

SERVER_NAMES = ("kafka", "cassandra", "hdfs")
# Jars that are fetched like the servers' but never started: Spark loads them.
SPARK_PLUGIN_NAMES = ("comet",)
FETCH_NAMES = (*SERVER_NAMES, *SPARK_PLUGIN_NAMES)

CASSANDRA_JVM_FLAGS = (
    "-XX:+UseG1GC", "-Djdk.attach.allowAttachSelf=true",
    "--add-exports", "java.base/jdk.internal.misc=ALL-UNNAMED",
    "--add-exports", "java.management.rmi/com.sun.jmx.remote.internal.rmi=ALL-UNNAMED",
    "--add-exports", "java.management/com.sun.jmx.remote.security=ALL-UNNAMED",
    "--add-exports", "java.rmi/sun.rmi.registry=ALL-UNNAMED",
    "--add-exports", "java.rmi/sun.rmi.server=ALL-UNNAMED",
    "--add-exports", "java.sql/java.sql=ALL-UNNAMED",
    "--add-exports", "java.base/java.lang.ref=ALL-UNNAMED",
    "--add-exports", "jdk.unsupported/sun.misc=ALL-UNNAMED",
    *[arg for mod in (
        "java.base/java.lang.module", "java.base/jdk.internal.loader", "java.base/jdk.internal.ref",
        "java.base/jdk.internal.reflect", "java.base/jdk.internal.math", "java.base/jdk.internal.module",
        "java.base/jdk.internal.util.jar", "jdk.management/com.sun.management.internal",
        "java.base/sun.nio.ch", "java.base/java.io", "java.base/java.lang.reflect",
        "java.base/java.lang", "java.base/java.util", "java.base/java.nio",
    ) for arg in ("--add-opens", f"{mod}=ALL-UNNAMED")],
    "-Dio.netty.tryReflectionSetAccessible=true",
    "-Dcassandra-foreground=yes",
    "-Dchronicle.analytics.disable=true",
    "-Djava.net.preferIPv4Stack=true",
    "-Dcassandra.skip_wait_for_gossip_to_settle=0",
    "-Dcassandra.ring_delay_ms=100",
)
CASSANDRA_JDK_FLAGS = (
    "--add-exports", "jdk.attach/sun.tools.attach=ALL-UNNAMED",
    "--add-exports", "jdk.compiler/com.sun.tools.javac.file=ALL-UNNAMED",
    "--add-opens", "jdk.compiler/com.sun.tools.javac=ALL-UNNAMED",
)


class ServiceError(RuntimeError):
    """A one-line, user-facing failure of fetch/up/down."""


@dataclass(frozen=True)
class ServerStatus:
    name: str
    address: str
    pid: int | None
    healthy: bool
    detail: str


# -- paths -----------------------------------------------------------------------------


def run_dir(settings: Settings, name: str) -> Path:
    return settings.work_path / "services" / name


def pid_file(settings: Settings, name: str) -> Path:
    return run_dir(settings, name) / "server.pid"


def log_file(settings: Settings, name: str) -> Path:
    return run_dir(settings, name) / "logs" / "stdout.log"


def ports(settings: Settings, name: str) -> dict[str, int]:
    if name == "kafka":
        return {"broker": settings.kafka_port, "controller": settings.kafka_controller_port}
    if name == "cassandra":
        return {"cql": settings.cassandra_port, "storage": settings.cassandra_storage_port,
                "jmx": settings.cassandra_jmx_port}
    return {"namenode": settings.hdfs_port, "namenode-http": settings.hdfs_http_port}


def address(settings: Settings, name: str) -> str:
    if name == "kafka":
        return f"{settings.bind_address}:{settings.kafka_port}"
    if name == "cassandra":
        return f"{settings.bind_address}:{settings.cassandra_port}"
    return settings.hdfs_url


# -- fetch -----------------------------------------------------------------------------


def fetch(settings: Settings, names: Iterable[str] = FETCH_NAMES,
          log: Callable[[str], None] = print) -> None:
    """Resolve each server's (or Spark plugin's) jars with Maven into the cache (no-op when
    already cached)."""
    todo = [n for n in names if not is_fetched(settings, n)]
    if not todo:
        return
    mvn = shutil.which(settings.mvn_command)
    if mvn is None:
        raise ServiceError(f"fetch: Maven executable {settings.mvn_command!r} not found on PATH "
                           "(install Maven or set CLICKSTREAM_MVN_COMMAND)")
    for name in todo:
        target = lib_dir(settings, name)
        staging = target.with_name("lib.partial")
        shutil.rmtree(staging, ignore_errors=True)
        staging.mkdir(parents=True)
        pom = REPO_SERVICES_DIR / name / "pom.xml"
        log(f"fetch {name}: resolving {pom.relative_to(REPO_SERVICES_DIR.parent)} with Maven")
        proc = subprocess.run(
            [mvn, "-q", "-B", "-f", str(pom), "dependency:copy-dependencies",
             "-DincludeScope=runtime", f"-DoutputDirectory={staging}"],
            capture_output=True, text=True)
        if proc.returncode != 0:
            shutil.rmtree(staging, ignore_errors=True)
            reason = _maven_reason(proc.stdout + proc.stderr)
            raise ServiceError(f"fetch {name}: Maven could not resolve {pom}: {reason}")
        (staging / FETCHED_STAMP).write_text(pom_hash(name))
        shutil.rmtree(target, ignore_errors=True)
        staging.rename(target)


def _maven_reason(output: str) -> str:
    for line in output.splitlines():
        if "[ERROR]" in line and ("Could not" in line or "Failed" in line or "resolve" in line):
            return line.replace("[ERROR]", "").strip()[:300]
    lines = [ln.strip() for ln in output.splitlines() if ln.strip()]
    return lines[0][:300] if lines else "no output"


# -- processes -------------------------------------------------------------------------


def read_pid(settings: Settings, name: str) -> int | None:
    try:
        pid = int(pid_file(settings, name).read_text().strip())
    except (FileNotFoundError, ValueError):
        return None
    return pid if _alive(pid) else None


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    with contextlib.suppress(FileNotFoundError):
        state = Path(f"/proc/{pid}/stat").read_text().split(") ", 1)[1][0]
        if state == "Z":
            return False
    return True


def port_in_use(host: str, port: int) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind((host, port))
        except OSError:
            return True
    return False


def _render(template: Path, target: Path, values: dict[str, object]) -> None:
    text = template.read_text()
    for key, value in values.items():
        text = text.replace("{" + key + "}", str(value))
    target.parent.mkdir(parents=True, exist_ok=True)
    target.write_text(text)


def _java(settings: Settings) -> str:
    java = shutil.which(settings.java_command)
    if java is None:
        raise ServiceError(f"up: Java executable {settings.java_command!r} not found on PATH "
                           "(install a JDK 17 or set CLICKSTREAM_JAVA_COMMAND)")
    return java


def _classpath(settings: Settings, name: str) -> str:
    return str(lib_dir(settings, name)) + "/*"


def _kafka_command(settings: Settings, java: str) -> list[str]:
    base = run_dir(settings, "kafka")
    conf = base / "conf" / "server.properties"
    data = base / "data"
    _render(REPO_SERVICES_DIR / "kafka" / "conf" / "server.properties", conf,
            {"bind_address": settings.bind_address, "kafka_port": settings.kafka_port,
             "kafka_controller_port": settings.kafka_controller_port, "data_dir": data})
    jvm = [java, "-Xms256m", "-Xmx1g", "-XX:+UseG1GC",
           f"-Dlog4j2.configurationFile={REPO_SERVICES_DIR / 'kafka' / 'conf' / 'log4j2.yaml'}",
           f"-Dkafka.logs.dir={base / 'logs'}", "-cp", _classpath(settings, "kafka")]
    if not (data / "meta.properties").exists():
        data.mkdir(parents=True, exist_ok=True)
        cluster_id = kafka_cluster_id()
        proc = subprocess.run(
            [*jvm, "kafka.tools.StorageTool", "format", "--standalone", "-t", cluster_id, "-c", str(conf)],
            capture_output=True, text=True)
        if proc.returncode != 0:
            raise ServiceError(f"up kafka: formatting {data} failed: "
                               f"{(proc.stderr or proc.stdout).strip().splitlines()[-1:]}")
    return [*jvm, "kafka.Kafka", str(conf)]


def kafka_cluster_id() -> str:
    """A random KRaft cluster id: a UUID in URL-safe base64, never starting with ``-`` (the
    storage tool would read such an id as an option; Kafka's own ``Uuid.randomUuid`` skips
    those too)."""
    while True:
        cluster_id = base64.urlsafe_b64encode(uuid.uuid4().bytes).decode().rstrip("=")
        if not cluster_id.startswith("-"):
            return cluster_id


def _cassandra_command(settings: Settings, java: str) -> list[str]:
    base = run_dir(settings, "cassandra")
    conf_dir = base / "conf"
    data = base / "data"
    _render(REPO_SERVICES_DIR / "cassandra" / "conf" / "cassandra.yaml", conf_dir / "cassandra.yaml",
            {"bind_address": settings.bind_address, "cassandra_port": settings.cassandra_port,
             "cassandra_storage_port": settings.cassandra_storage_port, "data_dir": data})
    jamm = next(lib_dir(settings, "cassandra").glob("jamm-*.jar"), None)
    if jamm is None:
        raise ServiceError(f"up cassandra: no jamm jar in {lib_dir(settings, 'cassandra')} "
                           "(run `clickstream services fetch`)")
    flags = list(CASSANDRA_JVM_FLAGS)
    if shutil.which("javac"):
        flags += CASSANDRA_JDK_FLAGS
    return [java, "-Xms1g", "-Xmx1g", *flags, f"-javaagent:{jamm}",
            f"-Dcassandra.config=file://{conf_dir / 'cassandra.yaml'}",
            f"-Dcassandra.storagedir={data}", f"-Dcassandra.logdir={base / 'logs'}",
            f"-Dlogback.configurationFile={REPO_SERVICES_DIR / 'cassandra' / 'conf' / 'logback.xml'}",
            f"-Dcassandra.jmx.local.port={settings.cassandra_jmx_port}",
            "-cp", f"{conf_dir}:{_classpath(settings, 'cassandra')}",
            "org.apache.cassandra.service.CassandraDaemon"]


def _hdfs_command(settings: Settings, java: str) -> list[str]:
    base = run_dir(settings, "hdfs")
    data = base / "data"
    shutil.rmtree(data, ignore_errors=True)  # MiniDFSCluster formats a fresh namespace
    return [java, "-Xms128m", "-Xmx768m", "-cp", _classpath(settings, "hdfs"),
            str(REPO_SERVICES_DIR / "hdfs" / "conf" / "MiniHdfs.java"), str(data),
            settings.bind_address, str(settings.hdfs_port), str(settings.hdfs_http_port)]


_COMMANDS: dict[str, Callable[[Settings, str], list[str]]] = {
    "kafka": _kafka_command, "cassandra": _cassandra_command, "hdfs": _hdfs_command,
}


# -- health ----------------------------------------------------------------------------


def _accepts_connections(host: str, port: int, timeout_s: float) -> bool:
    try:
        with socket.create_connection((host, port), timeout=timeout_s):
            return True
    except OSError:
        return False


def check_health(settings: Settings, name: str, timeout_s: float = 5.0) -> str:
    """Return a short health description, or raise an exception if unhealthy.

    A server whose main port refuses connections is reported at once: the clients would
    otherwise retry for a long time (hdfs-native for minutes) before giving up.
    """
    main_port = next(iter(ports(settings, name).values()))
    if not _accepts_connections(settings.bind_address, main_port, timeout_s):
        raise ServiceError(f"nothing listens on {settings.bind_address}:{main_port}")
    if name == "kafka":
        admin = KafkaAdminClient(bootstrap_servers=address(settings, "kafka"),
                                 request_timeout_ms=int(timeout_s * 1000))
        try:
            topics = admin.list_topics()
            return f"broker metadata answers ({len(topics)} topics)"
        finally:
            admin.close()
    if name == "cassandra":
        cluster, session = connect(settings, connect_timeout_s=timeout_s)
        try:
            version = session.execute(SELECT_RELEASE_VERSION, timeout=timeout_s).one()[0]
            return f"CQL answers, release {version}"
        finally:
            cluster.shutdown()
    fs, root = filesystem(settings.hdfs_url + "/tmp/clickstream-health")
    payload = uuid.uuid4().hex.encode()
    path = f"{root}/probe-{os.getpid()}"
    with fs.open(path, "wb") as f:
        f.write(payload)
    with fs.open(path, "rb") as f:
        ok = f.read() == payload
    fs.rm(path)
    if not ok:
        raise ServiceError("HDFS read back different bytes than written")
    return "write+read ok"


@contextlib.contextmanager
def _quiet_client_logs() -> Iterator[None]:
    """Polling a server that is still starting makes the clients log tracebacks; mute them."""
    loggers = [logging.getLogger(n) for n in ("cassandra", "kafka")]
    levels = [lg.level for lg in loggers]
    for lg in loggers:
        lg.setLevel(logging.CRITICAL + 1)
    try:
        yield
    finally:
        for lg, level in zip(loggers, levels, strict=True):
            lg.setLevel(level)


def _healthy(settings: Settings, name: str) -> tuple[bool, str]:
    try:
        with _quiet_client_logs():
            return True, check_health(settings, name)
    except Exception as exc:
        text = str(exc).splitlines()[0] if str(exc) else ""
        return False, f"{type(exc).__name__}: {text}"[:200]


def status(settings: Settings, names: Iterable[str] = SERVER_NAMES) -> list[ServerStatus]:
    out = []
    for name in names:
        pid = read_pid(settings, name)
        healthy, detail = _healthy(settings, name)
        out.append(ServerStatus(name, address(settings, name), pid, healthy, detail))
    return out


# -- up / down ---------------------------------------------------------------------------


def up(settings: Settings, names: Iterable[str] = SERVER_NAMES,
       log: Callable[[str], None] = print) -> list[ServerStatus]:
    """Start the servers not already running; all-or-nothing for what this call starts."""
    names = list(names)
    java = _java(settings)
    fetch(settings, names, log=log)
    to_start = []
    for name in names:
        if read_pid(settings, name) is not None and _healthy(settings, name)[0]:
            log(f"up {name}: already running at {address(settings, name)}")
            continue
        for role, port in ports(settings, name).items():
            if port_in_use(settings.bind_address, port):
                raise ServiceError(f"up {name}: port {port} ({role}) on {settings.bind_address} "
                                   "is already in use by another process")
        to_start.append(name)
    started: dict[str, subprocess.Popen[bytes]] = {}
    try:
        for name in to_start:
            cmd = _COMMANDS[name](settings, java)
            logs = log_file(settings, name)
            logs.parent.mkdir(parents=True, exist_ok=True)
            with open(logs, "ab") as out:
                proc = subprocess.Popen(cmd, stdout=out, stderr=subprocess.STDOUT,
                                        stdin=subprocess.DEVNULL, start_new_session=True,
                                        cwd=run_dir(settings, name))
            started[name] = proc
            pid_file(settings, name).write_text(str(proc.pid))
            log(f"up {name}: started pid {proc.pid}, log {logs}")
        _wait_healthy(settings, started, log)
    except BaseException:
        for name in started:
            _stop(settings, name)
        raise
    return status(settings, names)


def _wait_healthy(settings: Settings, started: dict[str, subprocess.Popen[bytes]],
                  log: Callable[[str], None]) -> None:
    deadline = time.monotonic() + settings.services_start_timeout_s
    waiting = dict(started)
    t0 = time.monotonic()
    while waiting:
        for name, proc in list(waiting.items()):
            if proc.poll() is not None:
                raise ServiceError(f"up {name}: the server exited with code {proc.returncode}; "
                                   f"last log line: {_last_line(log_file(settings, name))}")
            ok, detail = _healthy(settings, name)
            if ok:
                log(f"up {name}: healthy at {address(settings, name)} after "
                    f"{time.monotonic() - t0:.1f} s ({detail})")
                del waiting[name]
        if waiting and time.monotonic() > deadline:
            name = next(iter(waiting))
            raise ServiceError(f"up {name}: not healthy after {settings.services_start_timeout_s:.0f} s "
                               f"at {address(settings, name)}; see {log_file(settings, name)}")
        if waiting:
            time.sleep(0.5)


def _last_line(path: Path) -> str:
    try:
        lines = [ln for ln in path.read_text(errors="replace").splitlines() if ln.strip()]
    except FileNotFoundError:
        return "(no log)"
    return lines[-1][:300] if lines else "(empty log)"


def _stop(settings: Settings, name: str, timeout_s: float = 30.0) -> bool:
    """Stop one server and wait for its ports; True if something was running."""
    pid = read_pid(settings, name)
    if pid is None:
        pid_file(settings, name).unlink(missing_ok=True)
        return False
    with contextlib.suppress(ProcessLookupError):
        os.killpg(pid, signal.SIGTERM)
    deadline = time.monotonic() + timeout_s
    while _alive(pid) and time.monotonic() < deadline:
        time.sleep(0.2)
    if _alive(pid):
        with contextlib.suppress(ProcessLookupError):
            os.killpg(pid, signal.SIGKILL)
        while _alive(pid):
            time.sleep(0.1)
    with contextlib.suppress(ChildProcessError):
        os.waitpid(pid, os.WNOHANG)
    pid_file(settings, name).unlink(missing_ok=True)
    for port in ports(settings, name).values():
        port_deadline = time.monotonic() + 10
        while port_in_use(settings.bind_address, port) and time.monotonic() < port_deadline:
            time.sleep(0.2)
    return True


def down(settings: Settings, names: Iterable[str] = SERVER_NAMES,
         log: Callable[[str], None] = print) -> None:
    for name in names:
        if _stop(settings, name):
            log(f"down {name}: stopped")
        else:
            log(f"down {name}: not running")
    busy = [f"{name}:{port}" for name in names for port in ports(settings, name).values()
            if port_in_use(settings.bind_address, port)]
    if busy:
        raise ServiceError(f"down: ports still in use after stopping: {', '.join(busy)}")
