"""One frozen, typed settings object per process: flags > ``CLICKSTREAM_*`` env > defaults.

Build it once at the entry point (``Settings.from_sources``) and pass it down; no other
module reads ``os.environ``. Each field's environment variable is ``CLICKSTREAM_`` plus
the field name in upper case, and every CLI flag's ``--help`` names it.

Two stacks share one shape:

- ``embedded`` (default): in-process replay instead of Kafka, SQLite instead of
  Cassandra, ``file://`` archive, a Dask ``LocalCluster``, Spark ``local[2]``.
- ``local``: the servers that ``clickstream services up`` starts on loopback.

Any single address (Kafka, Cassandra, archive, Dask scheduler, Spark master) can be set
on its own to point at a real cluster; the stack only chooses the defaults.
"""

from __future__ import annotations

import argparse
import dataclasses
import os
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any, get_type_hints

ENV_PREFIX = "CLICKSTREAM_"
STACKS = ("embedded", "local")
# cassandra.ConsistencyLevel names a client may ask for (the core does not import the driver).
CONSISTENCY_LEVELS = ("ONE", "TWO", "THREE", "QUORUM", "ALL", "LOCAL_QUORUM", "EACH_QUORUM",
                      "LOCAL_ONE", "ANY")


class SettingsError(ValueError):
    """A setting has a value that cannot be used; the message names the setting."""


class ClientOptions:
    """Extra Kafka client options, ``key=value[,key=value...]`` (values may not hold a comma).

    Values are secrets (SASL passwords, key files): ``repr``/``str`` show the keys only, and
    parse errors never quote a value. ``items()`` gives the (key, value) strings; the
    Kafka side types them for each client (``clickstream.topics.client_config``).
    """

    __slots__ = ("_items",)

    def __init__(self, items: Iterable[tuple[str, str]] = ()) -> None:
        self._items = tuple(items)

    @classmethod
    def parse(cls, text: str, source: str = "kafka_client_options") -> ClientOptions:
        items: dict[str, str] = {}
        for n, part in enumerate(p for p in text.split(",") if p.strip()):
            key, sep, value = part.partition("=")
            key = key.strip()
            if not sep or not key.isidentifier():
                raise SettingsError(f"{source}: option {n + 1} is not key=value with a kafka-python "
                                    f"option name (e.g. security_protocol=SASL_SSL)")
            if key in items:
                raise SettingsError(f"{source}: option {key} is given twice")
            items[key] = value.strip()
        return cls(items.items())

    def items(self) -> tuple[tuple[str, str], ...]:
        return self._items

    def __bool__(self) -> bool:
        return bool(self._items)

    def __eq__(self, other: object) -> bool:
        return isinstance(other, ClientOptions) and other._items == self._items

    def __hash__(self) -> int:
        return hash(self._items)

    def __repr__(self) -> str:
        return "ClientOptions(" + ", ".join(f"{k}=***" for k, _ in self._items) + ")"

    __str__ = __repr__


def _opt(default: Any, help: str, group: str, choices: Sequence[str] | None = None,
         also_in: Sequence[str] = (), secret: bool = False) -> Any:
    """A setting of ``group``; ``also_in`` lists other groups whose commands need its flag too;
    a ``secret`` one is left out of the settings' repr (it is never logged)."""
    meta = {"help": help, "group": group, "choices": tuple(choices) if choices else None,
            "also_in": tuple(also_in)}
    if isinstance(default, (list, tuple)):
        return field(default=tuple(default), metadata=meta, repr=not secret)
    return field(default=default, metadata=meta, repr=not secret)


@dataclass(frozen=True)
class Settings:
    """Every knob of the platform. Empty strings mean "use the stack's default"."""

    # -- general ------------------------------------------------------------------------
    stack: str = _opt("embedded", "which servers to use by default", "general", STACKS)
    work_dir: str = _opt(".clickstream", "data, logs and state of local runs", "general")
    log_level: str = _opt("INFO", "logging level", "general",
                          ("DEBUG", "INFO", "WARNING", "ERROR"))

    # -- local servers (clickstream services) --------------------------------------------
    services_home: str = _opt("", "cache of the servers' jars (default: ~/.cache/clickstream/services)",
                              "services")
    bind_address: str = _opt("127.0.0.1", "address the local servers listen on", "services")
    kafka_port: int = _opt(9092, "Kafka broker port", "services")
    kafka_controller_port: int = _opt(9093, "Kafka KRaft controller port", "services")
    cassandra_port: int = _opt(9042, "Cassandra CQL (native transport) port", "services",
                               also_in=("store",))
    cassandra_storage_port: int = _opt(7000, "Cassandra inter-node storage port", "services")
    cassandra_jmx_port: int = _opt(7199, "Cassandra local JMX port", "services")
    hdfs_port: int = _opt(9000, "HDFS NameNode RPC port", "services")
    hdfs_http_port: int = _opt(9870, "HDFS NameNode HTTP port", "services")
    services_start_timeout_s: float = _opt(90.0, "seconds to wait for each server's health check",
                                           "services")
    mvn_command: str = _opt("mvn", "Maven executable used by `services fetch`", "services")
    java_command: str = _opt("java", "Java executable used by `services up`", "services")
    kafka_brokers: int = _opt(1, "Kafka nodes (combined broker+controller) `services up` starts: node i "
                              "listens on kafka_port+i and kafka_controller_port+i; with stack local the "
                              "bootstrap servers name them all", "services", also_in=("kafka",))
    cassandra_nodes: int = _opt(1, "Cassandra nodes `services up` starts, one after the other: node i on "
                                "bind_address+i (127.0.0.1, 127.0.0.2, ...) with the same ports and JMX "
                                "port cassandra_jmx_port+i; the first is the seed", "services")
    hdfs_datanodes: int = _opt(2, "HDFS DataNodes `services up` runs beside the NameNode (2: replication "
                               "2 lets a file close before its DataNodes report the block, ~30 ms "
                               "instead of ~500 ms)", "services")
    hdfs_replication: int = _opt(0, "dfs.replication of the local HDFS (0: min(3, hdfs_datanodes))",
                                 "services")

    # -- Kafka ---------------------------------------------------------------------------
    kafka_bootstrap_servers: str = _opt(
        "", "Kafka bootstrap servers host:port[,..]; empty: in-process replay (embedded) "
        "or the local broker (local)", "kafka")
    topic: str = _opt("clicks", "topic of click events", "kafka")
    dead_letter_topic: str = _opt("clicks-dead-letter", "topic of rejected records", "kafka")
    topic_partitions: int = _opt(4, "partitions of a topic created by us", "kafka")
    consumer_group: str = _opt("clickstream-pipeline", "consumer group of the pipeline", "kafka")
    pipeline_name: str = _opt("", "the pipeline's id, which keys its rows in the streaming tables and "
                              "its checkpoints (default: <consumer_group>/<topic>)", "kafka")
    kafka_replication_factor: int = _opt(1, "replication factor of topics created by us (clicks, "
                                         "dead letters); at most the number of brokers", "kafka")
    kafka_min_insync_replicas: int = _opt(
        1, "min.insync.replicas of topics created by us: replicas that must have a record before "
        "the producer's acks=all write succeeds (<= kafka_replication_factor)", "kafka")
    kafka_client_options: ClientOptions = _opt(  # noqa: RUF009 (ClientOptions is immutable)
        ClientOptions(), "extra kafka-python client options key=value[,key=value...], e.g. "
        "security_protocol=SASL_SSL,sasl_mechanism=PLAIN,sasl_plain_username=U,"
        "sasl_plain_password=P (values never logged)", "kafka")
    kafka_producer_client: str = _opt(
        "kafka-python", "Kafka client the producer (replay) sends with: 'kafka-python' (the default) "
        "or 'confluent-kafka' (librdkafka, the 'confluent' extra; sent 4-7x faster here)", "kafka",
        ("kafka-python", "confluent-kafka"))
    kafka_delivery_timeout_ms: int = _opt(
        120_000, "how long the producer retries a record (broker down, leader moving) before the "
        "replay stops with a report of what was acknowledged", "kafka")
    kafka_max_block_ms: int = _opt(60_000, "how long the producer and topic creation wait for an "
                                   "unreachable broker before the replay stops", "kafka")

    # -- store ---------------------------------------------------------------------------
    store: str = _opt("", "store backend: 'embedded' (SQLite) or 'cassandra'; empty: by stack",
                      "store", ("", "embedded", "cassandra"))
    embedded_store_path: str = _opt(
        "", "SQLite file of the embedded store (default: <work_dir>/store.sqlite)", "store")
    cassandra_contact_points: tuple[str, ...] = _opt(
        ("127.0.0.1",), "Cassandra contact points (comma-separated)", "store")
    cassandra_keyspace: str = _opt("clickstream", "Cassandra keyspace", "store")
    cassandra_replication_class: str = _opt(
        "SimpleStrategy", "keyspace replication strategy", "store",
        ("SimpleStrategy", "NetworkTopologyStrategy"))
    cassandra_replication_factor: int = _opt(1, "replicas (per datacenter for NetworkTopologyStrategy)",
                                             "store")
    cassandra_datacenters: tuple[str, ...] = _opt(
        ("datacenter1",), "datacenters for NetworkTopologyStrategy (comma-separated)", "store")
    cassandra_username: str = _opt("", "Cassandra user (empty: no authentication)", "store")
    cassandra_password: str = _opt("", "Cassandra password (never logged)", "store", secret=True)
    cassandra_local_datacenter: str = _opt(
        "datacenter1", "the client's local datacenter: token-aware, DC-aware load balancing sends "
        "requests to its replicas, LOCAL_* consistency counts its replicas", "store")
    cassandra_compression: bool = _opt(
        False, "compress CQL frames (lz4): fewer bytes on a slow link, more CPU in the client and the "
        "server for every request", "store")
    cassandra_write_consistency: str = _opt("LOCAL_QUORUM", "consistency level of every write", "store",
                                            CONSISTENCY_LEVELS)
    cassandra_read_consistency: str = _opt("LOCAL_ONE", "consistency level of every read", "store",
                                           CONSISTENCY_LEVELS)
    window_ttl_s: int = _opt(0, "retention of the streaming window tables in seconds (Cassandra: "
                             "default_time_to_live and time-window compaction); 0: kept forever", "store")

    # -- archive -------------------------------------------------------------------------
    archive_url: str = _opt("", "raw click archive, an fsspec URL (file://, hdfs://); "
                            "empty: <work_dir>/archive (embedded) or the local HDFS (local)",
                            "archive")

    # -- compute -------------------------------------------------------------------------
    dask_scheduler_address: str = _opt("", "Dask scheduler address; empty: a LocalCluster",
                                       "compute")
    dask_workers: int = _opt(2, "worker processes of the LocalCluster", "compute")
    spark_master: str = _opt("local[2]", "Spark master URL, used when the launcher names none "
                             "(spark-submit --master, spark-defaults.conf, MASTER)", "compute")
    spark_engine: str = _opt(
        "comet", "SQL engine of the Spark sessions we start: 'comet' (Apache DataFusion Comet, "
        "native; its jar comes with `clickstream services fetch`, without it Spark's own with a "
        "warning) or 'spark'. Under spark-submit the command line decides (spark_jobs/README.md)",
        "compute", ("comet", "spark"))
    # cluster: the Spark driver's address and the Dask dashboard (README "Running on a cluster")
    spark_driver_host: str = _opt(
        "", "address Spark executors reach the driver at (spark.driver.host); empty: Spark's own "
        "choice, or bind_address on the local stack and with a local[...] master. A launcher's value "
        "(spark-submit --conf, spark-defaults.conf) wins, as for spark_master", "compute")
    spark_driver_bind_address: str = _opt(
        "", "address the Spark driver listens on (spark.driver.bindAddress); empty: as "
        "spark_driver_host", "compute")
    dask_dashboard_address: str = _opt(
        "127.0.0.1:8787", "host:port of the pipeline's own LocalCluster's Dask dashboard (a taken "
        "port: any free one; empty: none); with dask_scheduler_address, the scheduler's own",
        "compute")

    # -- stream (pipeline) ---------------------------------------------------------------
    allowed_lateness_ms: int = _opt(5_000, "event-time lateness allowed before a window is final "
                                    "(watermark = max event time seen - this)", "stream")
    stream_batch_records: int = _opt(50_000, "records read per partition per pipeline cycle", "stream")
    stream_poll_interval_s: float = _opt(0.5, "seconds the pipeline waits for new records when idle",
                                         "stream")
    stream_source_client: str = _opt(
        "kafka-python", "Kafka client the Dask workers fetch with: 'kafka-python' (the default) or "
        "'confluent-kafka' (librdkafka, the 'confluent' extra; fetched 3.3x faster here)", "stream",
        ("kafka-python", "confluent-kafka"))
    checkpoint_url: str = _opt("", "where the pipeline checkpoints its state and logs its cycles, an "
                               "fsspec URL (default: <archive>/_checkpoints)", "stream")
    checkpoint_plan_log: str = _opt(
        "store", "where the pipeline logs each cycle's plan before it runs: 'store' (table "
        "pipeline_plans, milliseconds) or 'files' (plans/<cycle>.json under checkpoint_url; ~0.5 s "
        "a cycle on HDFS)", "stream", ("store", "files"))
    checkpoint_interval_s: float = _opt(2.0, "seconds between state checkpoints (every cycle is "
                                        "logged before it runs, so a restart redoes at most this much)",
                                        "stream")
    outage_timeout_s: float = _opt(300.0, "how long the pipeline waits for an unreachable server "
                                   "(Kafka, store, archive) before it gives up", "stream")

    # -- dashboard -----------------------------------------------------------------------
    dashboard_address: str = _opt("127.0.0.1", "address the Bokeh dashboard listens on", "dashboard")
    dashboard_port: int = _opt(5006, "port of the Bokeh dashboard (0: any free port)", "dashboard")
    dashboard_allow_websocket_origin: tuple[str, ...] = _opt(
        (), "extra host[:port] origins allowed to open the dashboard's websocket (comma-separated); "
        "the listening address is always allowed", "dashboard")
    dashboard_poll_ms: int = _opt(250, "how often the dashboard's shared poller reads the store",
                                  "dashboard")
    dashboard_pipeline: str = _opt("", "pipeline name whose pipeline_metrics the dashboard shows "
                                   "(default: the consumer group)", "dashboard")
    dashboard_pagerank_variants: tuple[str, ...] = _opt(
        ("unweighted", "weighted"), "PageRank variants the dashboard lists (comma-separated)",
        "dashboard")
    dashboard_dask_link: str = _opt("", "URL of the Dask dashboard the pipeline-health view links to "
                                    "(empty: no link)", "dashboard")
    dashboard_reconcile_run: str = _opt("", "reconcile run id whose differences the pipeline-health view "
                                        "shows first (printed by `clickstream reconcile`; empty: none)",
                                        "dashboard")

    # -- metrics (Prometheus endpoint of `stream` and `produce`) -----------------------
    metrics_port: int = _opt(0, "port of the Prometheus /metrics endpoint of `clickstream stream` and "
                             "`clickstream produce` (0: off)", "metrics")
    metrics_address: str = _opt("", "address the metrics endpoint listens on (default: bind_address, "
                                "loopback)", "metrics")

    def __post_init__(self) -> None:
        if self.stack not in STACKS:
            raise SettingsError(f"stack: {self.stack!r} is not one of {', '.join(STACKS)}")
        for f in fields(self):
            choices = f.metadata.get("choices")
            if choices and getattr(self, f.name) not in choices:
                raise SettingsError(
                    f"{f.name}: {getattr(self, f.name)!r} is not one of {', '.join(map(repr, choices))}"
                )
        for name in ("kafka_port", "kafka_controller_port", "cassandra_port", "cassandra_storage_port",
                     "cassandra_jmx_port", "hdfs_port", "hdfs_http_port"):
            port = getattr(self, name)
            if not 0 < port < 65536:
                raise SettingsError(f"{name}: {port} is not a TCP port")
        for name in ("dashboard_port", "metrics_port"):
            if not 0 <= getattr(self, name) < 65536:
                raise SettingsError(f"{name}: {getattr(self, name)} is not a TCP port (or 0)")
        if self.dashboard_poll_ms <= 0:
            raise SettingsError(f"dashboard_poll_ms: {self.dashboard_poll_ms} must be positive")
        if self.dashboard_dask_link and not self.dashboard_dask_link.startswith(("http://", "https://")):
            raise SettingsError(f"dashboard_dask_link: {self.dashboard_dask_link!r} is not an http(s) URL")
        for name in ("kafka_replication_factor", "kafka_min_insync_replicas", "kafka_delivery_timeout_ms",
                     "kafka_max_block_ms"):
            if getattr(self, name) < 1:
                raise SettingsError(f"{name}: {getattr(self, name)} must be at least 1")
        if self.kafka_min_insync_replicas > self.kafka_replication_factor:
            raise SettingsError(f"kafka_min_insync_replicas: {self.kafka_min_insync_replicas} is more than "
                                f"kafka_replication_factor {self.kafka_replication_factor}: every acks=all "
                                "write would fail")
        for name in ("kafka_brokers", "cassandra_nodes", "hdfs_datanodes"):
            if getattr(self, name) < 1:
                raise SettingsError(f"{name}: {getattr(self, name)} must be at least 1")
        if not 0 <= self.hdfs_replication <= self.hdfs_datanodes:
            raise SettingsError(f"hdfs_replication: {self.hdfs_replication} must be between 0 (automatic) "
                                f"and hdfs_datanodes {self.hdfs_datanodes}")
        if self.window_ttl_s < 0:
            raise SettingsError(f"window_ttl_s: {self.window_ttl_s} must be 0 (forever) or positive")
        self._check_node_ports()
        if not isinstance(self.kafka_client_options, ClientOptions):
            raise SettingsError("kafka_client_options: expected ClientOptions (parse a string with "
                                "ClientOptions.parse)")

    def _check_node_ports(self) -> None:
        """Several local nodes take consecutive ports: they must all be TCP ports."""
        for name, count in (("kafka_port", self.kafka_brokers), ("kafka_controller_port", self.kafka_brokers),
                            ("cassandra_jmx_port", self.cassandra_nodes)):
            first = getattr(self, name)
            if first + count - 1 > 65535:
                raise SettingsError(f"{name}: {first} leaves no room for {count} consecutive ports")

    # -- derived values (the stack chooses defaults) --------------------------------------
    @property
    def work_path(self) -> Path:
        return Path(self.work_dir).expanduser().resolve()

    @property
    def services_home_path(self) -> Path:
        if self.services_home:
            return Path(self.services_home).expanduser().resolve()
        return Path("~/.cache/clickstream/services").expanduser()

    @property
    def kafka_bootstrap(self) -> str:
        """Kafka bootstrap servers, or '' for the in-process source (embedded stack)."""
        if self.kafka_bootstrap_servers:
            return self.kafka_bootstrap_servers
        if self.stack == "local":
            return ",".join(f"{self.bind_address}:{self.kafka_port + i}" for i in range(self.kafka_brokers))
        return ""

    @property
    def store_backend(self) -> str:
        if self.store:
            return self.store
        return "cassandra" if self.stack == "local" else "embedded"

    @property
    def embedded_store_file(self) -> Path:
        if self.embedded_store_path:
            return Path(self.embedded_store_path).expanduser().resolve()
        return self.work_path / "store.sqlite"

    @property
    def archive(self) -> str:
        """The archive's fsspec URL, with no trailing slash."""
        if self.archive_url:
            return self.archive_url.rstrip("/")
        if self.stack == "local":
            return f"hdfs://{self.bind_address}:{self.hdfs_port}/clickstream/archive"
        return (self.work_path / "archive").as_uri()

    @property
    def metrics_listen_address(self) -> str:
        """Where the metrics endpoint listens: ``metrics_address``, else ``bind_address``."""
        return self.metrics_address or self.bind_address

    @property
    def pipeline_id(self) -> str:
        """The pipeline's id (``pipeline_name``, or ``<consumer_group>/<topic>``)."""
        return self.pipeline_name or f"{self.consumer_group}/{self.topic}"

    @property
    def checkpoints(self) -> str:
        """The checkpoint root's fsspec URL, with no trailing slash."""
        return (self.checkpoint_url or f"{self.archive}/_checkpoints").rstrip("/")

    @property
    def hdfs_replication_factor(self) -> int:
        """dfs.replication of the local HDFS: ``hdfs_replication``, or min(3, DataNodes)."""
        return self.hdfs_replication or min(3, self.hdfs_datanodes)

    @property
    def hdfs_url(self) -> str:
        return f"hdfs://{self.bind_address}:{self.hdfs_port}"

    def replace(self, **changes: Any) -> Settings:
        return dataclasses.replace(self, **changes)

    def redacted(self) -> dict[str, Any]:
        """All settings as a dict, secrets masked: what may be logged."""
        out = dataclasses.asdict(self)
        if out.get("cassandra_password"):
            out["cassandra_password"] = "***"
        out["kafka_client_options"] = repr(self.kafka_client_options)
        return out

    # -- construction -------------------------------------------------------------------
    @classmethod
    def from_sources(cls, flags: Mapping[str, Any] | None = None,
                     environ: Mapping[str, str] | None = None) -> Settings:
        """Settings from flags (None values are unset) over ``CLICKSTREAM_*`` env over defaults."""
        environ = os.environ if environ is None else environ
        hints = get_type_hints(cls)
        values: dict[str, Any] = {}
        for f in fields(cls):
            env_name = env_var(f.name)
            if env_name in environ:
                values[f.name] = _parse(f.name, hints[f.name], environ[env_name], source=env_name)
        for name, value in (flags or {}).items():
            if value is None or name not in hints:
                continue
            values[name] = _parse(name, hints[name], value, source="--" + name.replace("_", "-"))
        return cls(**values)

    @classmethod
    def from_args(cls, args: argparse.Namespace, environ: Mapping[str, str] | None = None) -> Settings:
        return cls.from_sources(vars(args), environ)


def env_var(name: str) -> str:
    return ENV_PREFIX + name.upper()


def _parse(name: str, hint: Any, raw: Any, source: str) -> Any:
    if not isinstance(raw, str):
        return tuple(raw) if isinstance(raw, list) else raw
    if hint is ClientOptions:
        return ClientOptions.parse(raw, source)  # its errors never quote a value
    try:
        if hint is bool:
            if raw.lower() in ("1", "true", "yes", "on"):
                return True
            if raw.lower() in ("0", "false", "no", "off"):
                return False
            raise ValueError(raw)
        if hint is int:
            return int(raw)
        if hint is float:
            return float(raw)
        if hint == tuple[str, ...]:
            return tuple(part.strip() for part in raw.split(",") if part.strip())
        return raw
    except ValueError:
        raise SettingsError(f"{source}: {raw!r} is not a valid {getattr(hint, '__name__', hint)} "
                            f"for setting {name}") from None


def add_settings_arguments(parser: argparse.ArgumentParser, groups: Iterable[str]) -> None:
    """Add one flag per setting in ``groups``; each flag's help names its env var.

    Flags default to None so that an unset flag falls through to env and defaults.
    """
    hints = get_type_hints(Settings)
    wanted = list(groups)
    added: set[str] = set()
    for group_name in wanted:
        arg_group = parser.add_argument_group(f"{group_name} settings")
        for f in fields(Settings):
            in_group = f.metadata.get("group") == group_name or group_name in f.metadata.get("also_in", ())
            if not in_group or f.name in added:
                continue
            added.add(f.name)
            default = f.default
            shown = ",".join(default) if isinstance(default, tuple) else default
            if isinstance(default, ClientOptions):
                shown = ""
            kwargs: dict[str, Any] = {
                "default": None,
                "dest": f.name,
                "help": f"{f.metadata['help']} [env {env_var(f.name)}; default {shown!r}]",
            }
            if f.metadata.get("choices"):
                kwargs["choices"] = [c for c in f.metadata["choices"]]
            if hints[f.name] in (int, float):
                kwargs["type"] = str  # parsed by Settings so env and flags share one error path
            if f.name == "cassandra_password":
                kwargs["help"] = f"{f.metadata['help']} [env {env_var(f.name)}]"
            arg_group.add_argument("--" + f.name.replace("_", "-"), **kwargs)
