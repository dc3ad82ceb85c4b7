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
  Data stays across ``down``/``up`` (Kafka's log dirs, Cassandra's data, HDFS's namespace).
- Clusters on one machine: ``kafka_brokers`` KRaft nodes on consecutive ports,
  ``cassandra_nodes`` nodes on consecutive loopback addresses (node i+1 in
  ``<name>/node-<i+1>/``), ``hdfs_datanodes`` DataNodes in the one HDFS JVM.
- ``status`` reports each node's address and health; ``down`` stops them (TERM, then
  KILL) and waits until their ports are free.

Every failure is a ``ServiceError`` whose message is one line naming what and where.
"""

from __future__ import annotations

import base64
import contextlib
import ipaddress
import json
import logging
import os
import shutil
import signal
import socket
import subprocess
import time
import urllib.request
import uuid
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

from kafka import KafkaAdminClient

from clickstream.archive import filesystem, read_until_whole
from clickstream.jars import FETCHED_STAMP, REPO_SERVICES_DIR, is_fetched, lib_dir, pom_hash
from clickstream.settings import Settings
from clickstream.store.cassandra import connect
from clickstream.store.cql import SELECT_RELEASE_VERSION

SELECT_PEERS = "SELECT peer FROM system.peers_v2"
# A file read right after its close can come back short (seen: 0 bytes, ~1 probe in 40 just
# after a start): with num-committed-allowed=1 the close returns while the last block is
# only committed, and a reader sees it once the DataNodes report it (~0.5 s here).
HDFS_VISIBLE_WITHIN_S = 3.0

SERVER_NAMES = ("kafka", "cassandra", "hdfs")
# Jars that are fetched like the servers' but never started: Spark loads them.
SPARK_PLUGIN_NAMES = ("comet",)
FETCH_NAMES = (*SERVER_NAMES, *SPARK_PLUGIN_NAMES)
LOOPBACK = "127.0.0.1"

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
)
# The ring delay: a seed of its own waits for nobody (fast start); a joining node waits this
# long for the seed's gossip reply ("Unable to gossip with any peers" after it) and once more
# before it bootstraps.
SEED_RING_DELAY_MS = 100
JOIN_RING_DELAY_MS = 10_000
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
    node: int = 0  # index of the node among the server's nodes (Kafka brokers, Cassandra nodes)
    nodes: int = 1

    @property
    def label(self) -> str:
        """``kafka``, or ``kafka-2`` for the second of several nodes."""
        return self.name if self.nodes == 1 else f"{self.name}-{self.node + 1}"


@dataclass(frozen=True)
class Node:
    """One process of a server: its index, host and (role, host, port) endpoints, main first."""

    name: str
    index: int
    host: str
    endpoints: tuple[tuple[str, str, int], ...]

    @property
    def main_port(self) -> int:
        return self.endpoints[0][2]


# -- paths and nodes ---------------------------------------------------------------------


def run_dir(settings: Settings, name: str) -> Path:
    return settings.work_path / "services" / name


def node_dir(settings: Settings, name: str, index: int = 0) -> Path:
    """The first node lives in the server's folder (as a single node always did), node i+1
    in ``node-<i+1>/`` below it: conf, data, logs and pid file each."""
    base = run_dir(settings, name)
    return base if index == 0 else base / f"node-{index + 1}"


def pid_file(settings: Settings, name: str, index: int = 0) -> Path:
    return node_dir(settings, name, index) / "server.pid"


def log_file(settings: Settings, name: str, index: int = 0) -> Path:
    return node_dir(settings, name, index) / "logs" / "stdout.log"


def cassandra_host(settings: Settings, index: int) -> str:
    """Node ``index``'s address: ``bind_address`` plus ``index`` (127.0.0.1, 127.0.0.2, ...;
    Linux routes all of 127.0.0.0/8 to the loopback interface)."""
    if index == 0:
        return settings.bind_address
    try:
        return str(ipaddress.IPv4Address(settings.bind_address) + index)
    except ValueError:
        raise ServiceError(f"cassandra_nodes: {settings.cassandra_nodes} nodes need an IPv4 bind_address "
                           f"to count up from, not {settings.bind_address!r}") from None


def nodes(settings: Settings, name: str) -> list[Node]:
    """Every process of server ``name`` as the settings describe it: Kafka's brokers on
    consecutive ports, Cassandra's nodes on consecutive addresses, HDFS's one JVM."""
    bind = settings.bind_address
    if name == "kafka":
        return [Node(name, i, bind, (("broker", bind, settings.kafka_port + i),
                                     ("controller", bind, settings.kafka_controller_port + i)))
                for i in range(settings.kafka_brokers)]
    if name == "cassandra":
        out = []
        for i in range(settings.cassandra_nodes):
            host = cassandra_host(settings, i)
            # the JMX agent of `cassandra.jmx.local.port` binds the loopback address
            out.append(Node(name, i, host, (("cql", host, settings.cassandra_port),
                                            ("storage", host, settings.cassandra_storage_port),
                                            ("jmx", LOOPBACK, settings.cassandra_jmx_port + i))))
        return out
    return [Node(name, 0, bind, (("namenode", bind, settings.hdfs_port),
                                 ("namenode-http", bind, settings.hdfs_http_port)))]


def address(settings: Settings, name: str) -> str:
    if name == "hdfs":
        return settings.hdfs_url
    return ",".join(f"{n.host}:{n.main_port}" for n in nodes(settings, name))


def _label(settings: Settings, node: Node) -> str:
    """``kafka`` for a single node, ``kafka-2`` for the second of several."""
    many = len(nodes(settings, node.name)) > 1
    return f"{node.name}-{node.index + 1}" if many else node.name


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


def read_pid(settings: Settings, name: str, index: int = 0) -> int | None:
    try:
        pid = int(pid_file(settings, name, index).read_text().strip())
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


def kafka_quorum(settings: Settings) -> str:
    """The quorum line of every node's server.properties. One node: a dynamic quorum of
    itself (formatted ``--standalone``); several: static ``controller.quorum.voters``."""
    bind, ctrl = settings.bind_address, settings.kafka_controller_port
    if settings.kafka_brokers == 1:
        return f"controller.quorum.bootstrap.servers={bind}:{ctrl}"
    return "controller.quorum.voters=" + ",".join(
        f"{i + 1}@{bind}:{ctrl + i}" for i in range(settings.kafka_brokers))


def _kafka_command(settings: Settings, java: str, index: int, cluster_id: str) -> list[str]:
    """Node ``index`` of the KRaft quorum, every node both broker and controller, internal
    topics replicated min(3, nodes) times; formats its log dir with ``cluster_id`` first."""
    base = node_dir(settings, "kafka", index)
    conf = base / "conf" / "server.properties"
    data = base / "data"
    internal_rf = min(3, settings.kafka_brokers)
    _render(REPO_SERVICES_DIR / "kafka" / "conf" / "server.properties", conf,
            {"bind_address": settings.bind_address, "kafka_port": settings.kafka_port + index,
             "kafka_controller_port": settings.kafka_controller_port + index, "data_dir": data,
             "node_id": index + 1, "quorum": kafka_quorum(settings), "internal_rf": internal_rf,
             "internal_min_isr": min(2, internal_rf)})
    jvm = [java, "-Xms256m", "-Xmx1g", "-XX:+UseG1GC",
           f"-Dlog4j2.configurationFile={REPO_SERVICES_DIR / 'kafka' / 'conf' / 'log4j2.yaml'}",
           f"-Dkafka.logs.dir={base / 'logs'}", "-cp", _classpath(settings, "kafka")]
    if not (data / "meta.properties").exists():
        data.mkdir(parents=True, exist_ok=True)
        standalone = ["--standalone"] if settings.kafka_brokers == 1 else []
        proc = subprocess.run(
            [*jvm, "kafka.tools.StorageTool", "format", *standalone, "-t", cluster_id, "-c", str(conf)],
            capture_output=True, text=True)
        if proc.returncode != 0:
            raise ServiceError(f"up {_label(settings, nodes(settings, 'kafka')[index])}: formatting {data} "
                               f"failed: {(proc.stderr or proc.stdout).strip().splitlines()[-1:]}")
    return [*jvm, "kafka.Kafka", str(conf)]


def _kafka_cluster(settings: Settings) -> str:
    """The cluster id every node formats with: the one a formatted node holds, or a new one.
    Raises if the log dirs were formatted for another quorum (other brokers or ports)."""
    stamp = run_dir(settings, "kafka") / "quorum"
    quorum = kafka_quorum(settings)
    cluster_id = None
    for i in range(settings.kafka_brokers):
        meta = node_dir(settings, "kafka", i) / "data" / "meta.properties"
        with contextlib.suppress(FileNotFoundError):
            for line in meta.read_text().splitlines():
                if line.startswith("cluster.id="):
                    cluster_id = line.split("=", 1)[1].strip()
    if cluster_id and stamp.exists() and stamp.read_text().strip() != quorum:
        raise ServiceError(f"up kafka: the data in {run_dir(settings, 'kafka')} belongs to another quorum "
                           f"({stamp.read_text().strip()}); kafka_brokers or the ports changed: delete "
                           "that folder or use another work_dir")
    stamp.parent.mkdir(parents=True, exist_ok=True)
    stamp.write_text(quorum + "\n")
    return cluster_id or kafka_cluster_id()


def kafka_cluster_id() -> str:
    """A random KRaft cluster id: a UUID in URL-safe base64, never starting with ``-`` (the
    storage tool would read such an id as an option; Kafka's own ``Uuid.randomUuid`` skips
    those too)."""
    while True:
        cluster_id = base64.urlsafe_b64encode(uuid.uuid4().bytes).decode().rstrip("=")
        if not cluster_id.startswith("-"):
            return cluster_id


def _cassandra_command(settings: Settings, java: str, index: int) -> list[str]:
    """Node ``index`` on its own address with the shared ports; the first node is the seed."""
    base = node_dir(settings, "cassandra", index)
    conf_dir = base / "conf"
    data = base / "data"
    _render(REPO_SERVICES_DIR / "cassandra" / "conf" / "cassandra.yaml", conf_dir / "cassandra.yaml",
            {"bind_address": cassandra_host(settings, index), "seed_address": cassandra_host(settings, 0),
             "cassandra_port": settings.cassandra_port,
             "cassandra_storage_port": settings.cassandra_storage_port, "data_dir": data})
    jamm = next(lib_dir(settings, "cassandra").glob("jamm-*.jar"), None)
    if jamm is None:
        raise ServiceError(f"up cassandra: no jamm jar in {lib_dir(settings, 'cassandra')} "
                           "(run `clickstream services fetch`)")
    flags = [*CASSANDRA_JVM_FLAGS,
             f"-Dcassandra.ring_delay_ms={SEED_RING_DELAY_MS if index == 0 else JOIN_RING_DELAY_MS}"]
    if shutil.which("javac"):
        flags += CASSANDRA_JDK_FLAGS
    return [java, "-Xms1g", "-Xmx1g", *flags, f"-javaagent:{jamm}",
            f"-Dcassandra.config=file://{conf_dir / 'cassandra.yaml'}",
            f"-Dcassandra.storagedir={data}", f"-Dcassandra.logdir={base / 'logs'}",
            f"-Dlogback.configurationFile={REPO_SERVICES_DIR / 'cassandra' / 'conf' / 'logback.xml'}",
            f"-Dcassandra.jmx.local.port={settings.cassandra_jmx_port + index}",
            "-cp", f"{conf_dir}:{_classpath(settings, 'cassandra')}",
            "org.apache.cassandra.service.CassandraDaemon"]


def _hdfs_command(settings: Settings, java: str) -> list[str]:
    """The NameNode and ``hdfs_datanodes`` DataNodes in one JVM. The data stays across
    restarts: ``MiniHdfs.java`` formats only a folder that holds no namespace yet."""
    data = run_dir(settings, "hdfs") / "data"
    return [java, "-Xms128m", "-Xmx768m", "-cp", _classpath(settings, "hdfs"),
            str(REPO_SERVICES_DIR / "hdfs" / "conf" / "MiniHdfs.java"), str(data),
            settings.bind_address, str(settings.hdfs_port), str(settings.hdfs_http_port),
            str(settings.hdfs_datanodes), str(settings.hdfs_replication_factor)]


def _command(settings: Settings, java: str, node: Node, kafka_cluster: str) -> list[str]:
    if node.name == "kafka":
        return _kafka_command(settings, java, node.index, kafka_cluster)
    if node.name == "cassandra":
        return _cassandra_command(settings, java, node.index)
    return _hdfs_command(settings, java)


# -- health ----------------------------------------------------------------------------


def _accepts_connections(host: str, port: int, timeout_s: float) -> bool:
    try:
        with socket.create_connection((host, port), timeout=timeout_s):
            return True
    except OSError:
        return False


def check_health(settings: Settings, name: str, timeout_s: float = 5.0, index: int = 0) -> str:
    """Return a short health description of node ``index``, or raise if it is unhealthy.

    A server whose main port refuses connections is reported at once: the clients would
    otherwise retry for a long time (hdfs-native for minutes) before giving up. Kafka and
    Cassandra nodes say how many members of their cluster they see (a stopped broker
    leaves the others healthy); HDFS is unhealthy until every DataNode is live.
    """
    node = nodes(settings, name)[index]
    if not _accepts_connections(node.host, node.main_port, timeout_s):
        raise ServiceError(f"nothing listens on {node.host}:{node.main_port}")
    if name == "kafka":
        admin = KafkaAdminClient(bootstrap_servers=f"{node.host}:{node.main_port}",
                                 request_timeout_ms=int(timeout_s * 1000))
        try:
            topics = admin.list_topics()
            brokers = len(admin.describe_cluster()["brokers"])
            return (f"broker metadata answers ({len(topics)} topics, "
                    f"{brokers} of {settings.kafka_brokers} brokers)")
        finally:
            admin.close()
    if name == "cassandra":
        cluster, session = connect(settings.replace(cassandra_contact_points=(node.host,)),
                                   connect_timeout_s=timeout_s, only_host=node.host)
        try:
            version = session.execute(SELECT_RELEASE_VERSION, timeout=timeout_s).one()[0]
            peers = len(session.execute(SELECT_PEERS, timeout=timeout_s).all())
            return (f"CQL answers, release {version} "
                    f"({peers + 1} of {settings.cassandra_nodes} nodes in the ring)")
        finally:
            cluster.shutdown()
    live = hdfs_live_datanodes(settings, timeout_s)
    if live < settings.hdfs_datanodes:
        raise ServiceError(f"{live} of {settings.hdfs_datanodes} DataNodes live")
    fs, root = filesystem(settings.hdfs_url + "/tmp/clickstream-health")
    payload = uuid.uuid4().hex.encode()
    path = f"{root}/probe-{os.getpid()}"
    with fs.open(path, "wb") as f:
        f.write(payload)

    def read() -> bytes:
        with fs.open(path, "rb") as f:
            return f.read()

    ok = read_back(read, payload)
    fs.rm(path)
    if not ok:
        raise ServiceError(f"HDFS read back different bytes than written (or fewer, for "
                           f"{HDFS_VISIBLE_WITHIN_S:.0f} s)")
    return f"write+read ok ({live} DataNodes, replication {settings.hdfs_replication_factor})"


def read_back(read: Callable[[], bytes], written: bytes, within_s: float = HDFS_VISIBLE_WITHIN_S,
              pause_s: float = 0.1) -> bool:
    """Whether ``read()`` gives ``written``. A read of a beginning of it (a closed file whose
    last block is not visible yet) is read again for up to ``within_s``; other bytes fail
    at once."""
    got = read_until_whole(read, lambda got: got != written and written.startswith(got),
                           within_s, pause_s)
    return got == written


def hdfs_live_datanodes(settings: Settings, timeout_s: float = 5.0) -> int:
    """Live DataNodes as the NameNode's JMX servlet reports them."""
    url = (f"http://{settings.bind_address}:{settings.hdfs_http_port}/jmx"
           "?qry=Hadoop:service=NameNode,name=FSNamesystemState")
    with urllib.request.urlopen(url, timeout=timeout_s) as resp:  # our own NameNode's HTTP port
        beans = json.load(resp).get("beans") or [{}]
    return int(beans[0].get("NumLiveDataNodes", 0))


def _complete(settings: Settings, name: str, detail: str) -> bool:
    """Whether a healthy node's description shows every member of its cluster (what `up`
    waits for: a topic of replication factor 3 needs all 3 brokers registered)."""
    n = node_count(settings, name)
    if name == "kafka":
        return f"{n} of {n} brokers" in detail
    return True


def node_count(settings: Settings, name: str) -> int:
    return len(nodes(settings, name))


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


def _healthy(settings: Settings, name: str, index: int = 0) -> tuple[bool, str]:
    try:
        with _quiet_client_logs():
            return True, check_health(settings, name, index=index)
    except Exception as exc:
        text = str(exc).splitlines()[0] if str(exc) else ""
        return False, f"{type(exc).__name__}: {text}"[:200]


def status(settings: Settings, names: Iterable[str] = SERVER_NAMES) -> list[ServerStatus]:
    """One entry per node of each server."""
    out = []
    for name in names:
        all_nodes = nodes(settings, name)
        for node in all_nodes:
            healthy, detail = _healthy(settings, name, node.index)
            where = settings.hdfs_url if name == "hdfs" else f"{node.host}:{node.main_port}"
            out.append(ServerStatus(name, where, read_pid(settings, name, node.index), healthy, detail,
                                    node.index, len(all_nodes)))
    return out


# -- up / down ---------------------------------------------------------------------------


def up(settings: Settings, names: Iterable[str] = SERVER_NAMES,
       log: Callable[[str], None] = print) -> list[ServerStatus]:
    """Start the servers' nodes not already running; all-or-nothing for what this call starts.

    Kafka's nodes start together (a quorum elects a leader only with a majority up), HDFS
    is one process, Cassandra's nodes start one after the other, each once the one before
    answers (nodes join the ring one at a time): wave k holds Cassandra's node k, and wave
    0 also every other server.
    """
    names = list(names)
    if "kafka" in names:
        _check_kafka_ports(settings)
    java = _java(settings)
    fetch(settings, names, log=log)
    to_start: list[Node] = []
    for name in names:
        for node in nodes(settings, name):
            label = _label(settings, node)
            if read_pid(settings, name, node.index) is not None and _healthy(settings, name, node.index)[0]:
                log(f"up {label}: already running at {node.host}:{node.main_port}")
                continue
            for role, host, port in node.endpoints:
                if port_in_use(host, port):
                    raise ServiceError(f"up {label}: port {port} ({role}) on {host} "
                                       "is already in use by another process")
            to_start.append(node)
    waves: list[list[Node]] = []
    for node in to_start:
        wave = node.index if node.name == "cassandra" else 0
        waves.extend([] for _ in range(wave + 1 - len(waves)))
        waves[wave].append(node)
    kafka_cluster = _kafka_cluster(settings) if any(n.name == "kafka" for n in to_start) else ""
    started: list[Node] = []
    try:
        for wave_nodes in waves:
            # commands first (formatting Kafka's log dirs, one JVM each, in parallel): a broker
            # started long before its peers gives up registering with the quorum
            with ThreadPoolExecutor(max_workers=len(wave_nodes)) as pool:
                commands = list(pool.map(lambda n: _command(settings, java, n, kafka_cluster), wave_nodes))
            procs: dict[Node, subprocess.Popen[bytes]] = {}
            for node, cmd in zip(wave_nodes, commands, strict=True):
                logs = log_file(settings, node.name, node.index)
                logs.parent.mkdir(parents=True, exist_ok=True)
                with open(logs, "ab") as out:
                    proc = subprocess.Popen(cmd, stdout=out, stderr=subprocess.STDOUT,
                                            stdin=subprocess.DEVNULL, start_new_session=True,
                                            cwd=node_dir(settings, node.name, node.index))
                procs[node] = proc
                started.append(node)
                pid_file(settings, node.name, node.index).write_text(str(proc.pid))
                log(f"up {_label(settings, node)}: started pid {proc.pid}, log {logs}")
            _wait_healthy(settings, procs, log)
    except BaseException:
        _stop_nodes(settings, started)
        raise
    return status(settings, names)


def _check_kafka_ports(settings: Settings) -> None:
    n = settings.kafka_brokers
    brokers = range(settings.kafka_port, settings.kafka_port + n)
    controllers = range(settings.kafka_controller_port, settings.kafka_controller_port + n)
    if set(brokers) & set(controllers):
        raise ServiceError(
            f"up kafka: the {n} controller ports {controllers.start}-{controllers.stop - 1} overlap the "
            f"broker ports {brokers.start}-{brokers.stop - 1}; set kafka_controller_port to "
            f"{brokers.stop} or above (e.g. --kafka-controller-port {brokers.stop + 100})")


def _wait_healthy(settings: Settings, started: dict[Node, subprocess.Popen[bytes]],
                  log: Callable[[str], None]) -> None:
    deadline = time.monotonic() + settings.services_start_timeout_s
    waiting = dict(started)
    t0 = time.monotonic()
    while waiting:
        for node, proc in list(waiting.items()):
            label = _label(settings, node)
            if proc.poll() is not None:
                raise ServiceError(f"up {label}: the server exited with code {proc.returncode}; "
                                   f"last log line: {_last_line(log_file(settings, node.name, node.index))}")
            ok, detail = _healthy(settings, node.name, node.index)
            if ok and _complete(settings, node.name, detail):
                log(f"up {label}: healthy at {node.host}:{node.main_port} after "
                    f"{time.monotonic() - t0:.1f} s ({detail})")
                del waiting[node]
        if waiting and time.monotonic() > deadline:
            node = next(iter(waiting))
            raise ServiceError(f"up {_label(settings, node)}: not healthy after "
                               f"{settings.services_start_timeout_s:.0f} s at {node.host}:{node.main_port}; "
                               f"see {log_file(settings, node.name, node.index)}")
        if waiting:
            time.sleep(0.5)


def _last_line(path: Path) -> str:
    try:
        lines = [ln for ln in path.read_text(errors="replace").splitlines() if ln.strip()]
    except FileNotFoundError:
        return "(no log)"
    return lines[-1][:300] if lines else "(empty log)"


def _stop_nodes(settings: Settings, to_stop: Iterable[Node], timeout_s: float = 30.0) -> list[Node]:
    """Stop these nodes together (TERM, then KILL after ``timeout_s``) and wait for their
    ports; returns the nodes that were running."""
    running: dict[Node, int] = {}
    for node in to_stop:
        pid = read_pid(settings, node.name, node.index)
        if pid is None:
            pid_file(settings, node.name, node.index).unlink(missing_ok=True)
            continue
        running[node] = pid
        with contextlib.suppress(ProcessLookupError):
            os.killpg(pid, signal.SIGTERM)
    deadline = time.monotonic() + timeout_s
    while any(_alive(pid) for pid in running.values()) and time.monotonic() < deadline:
        time.sleep(0.2)
    for node, pid in running.items():
        if _alive(pid):
            with contextlib.suppress(ProcessLookupError):
                os.killpg(pid, signal.SIGKILL)
            while _alive(pid):
                time.sleep(0.1)
        with contextlib.suppress(ChildProcessError):
            os.waitpid(pid, os.WNOHANG)
        pid_file(settings, node.name, node.index).unlink(missing_ok=True)
        for _role, host, port in node.endpoints:
            port_deadline = time.monotonic() + 10
            while port_in_use(host, port) and time.monotonic() < port_deadline:
                time.sleep(0.2)
    return list(running)


def stop_node(settings: Settings, name: str, index: int) -> bool:
    """Stop one node of a server (one broker of several, say); True if it was running."""
    return bool(_stop_nodes(settings, [nodes(settings, name)[index]]))


def down(settings: Settings, names: Iterable[str] = SERVER_NAMES,
         log: Callable[[str], None] = print) -> None:
    """Stop every node of the servers (a server's nodes together) and check their ports."""
    names = list(names)
    for name in names:
        all_nodes = nodes(settings, name)
        stopped = {n.index for n in _stop_nodes(settings, all_nodes)}
        for node in all_nodes:
            log(f"down {_label(settings, node)}: {'stopped' if node.index in stopped else 'not running'}")
    busy = [f"{_label(settings, node)}:{port}" for name in names for node in nodes(settings, name)
            for _role, host, port in node.endpoints if port_in_use(host, port)]
    if busy:
        raise ServiceError(f"down: ports still in use after stopping: {', '.join(busy)}")
