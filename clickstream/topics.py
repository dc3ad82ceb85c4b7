"""Kafka topics and client options, shared by every role that talks to Kafka.

``ensure_topics`` creates the topics a role writes or reads (clicks, dead letters) with
the replication factor and ``min.insync.replicas`` the settings give; ``client_config``
turns ``settings.kafka_client_options`` (security, extra options) into keyword arguments
for one kafka-python client class. Neither logs option values.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from clickstream.settings import Settings


class TopicError(RuntimeError):
    """A topic could not be made ready; the message names the topic and the broker."""


def bootstrap_servers(settings: Settings) -> list[str]:
    """``settings.kafka_bootstrap`` as a list; a clear error when there is none."""
    if not settings.kafka_bootstrap:
        raise TopicError("no Kafka bootstrap servers: set --kafka-bootstrap-servers "
                         "(CLICKSTREAM_KAFKA_BOOTSTRAP_SERVERS) or --stack local")
    return settings.kafka_bootstrap.split(",")


def _typed(key: str, text: str, default: Any) -> Any:
    """``text`` as the type of the client's default (None defaults: a number if it is one)."""
    if isinstance(default, bool):
        if text.lower() in ("1", "true", "yes", "on"):
            return True
        if text.lower() in ("0", "false", "no", "off"):
            return False
        raise TopicError(f"kafka_client_options: {key} must be true or false")
    if isinstance(default, (int, float)) or (default is None and text.isascii() and text.isdigit()):
        try:
            return int(text)
        except ValueError:
            try:
                return float(text)
            except ValueError:
                raise TopicError(f"kafka_client_options: {key} must be a number") from None
    if default is None or isinstance(default, str):
        return text
    raise TopicError(f"kafka_client_options: {key} cannot be given as text (set it in code)")


def client_config(settings: Settings, client_class: Any) -> dict[str, Any]:
    """The extra options that ``client_class`` (KafkaProducer, KafkaConsumer,
    KafkaAdminClient) knows, typed by its defaults. An option no kafka-python client
    knows is an error naming it; one that only other clients know is left out."""
    from kafka import KafkaAdminClient, KafkaConsumer, KafkaProducer

    known = {**KafkaAdminClient.DEFAULT_CONFIG, **KafkaConsumer.DEFAULT_CONFIG,
             **KafkaProducer.DEFAULT_CONFIG}
    out: dict[str, Any] = {}
    for key, text in settings.kafka_client_options.items():
        if key not in known:
            raise TopicError(f"kafka_client_options: {key} is not a kafka-python client option")
        if key in client_class.DEFAULT_CONFIG:
            out[key] = _typed(key, text, client_class.DEFAULT_CONFIG[key])
    return out


def ensure_topics(settings: Settings, names: Sequence[str], partitions: int) -> None:
    """Create those of ``names`` that do not exist, with ``partitions`` partitions,
    ``settings.kafka_replication_factor`` replicas and ``min.insync.replicas =
    settings.kafka_min_insync_replicas``; wait until each has a leader. Idempotent: an
    existing topic (or one created concurrently) is left as it is. Raises ``TopicError``
    naming the topic and the broker when the broker is unreachable (after
    ``kafka_max_block_ms``) or refuses the topic."""
    from kafka import KafkaAdminClient
    from kafka.errors import KafkaError, TopicAlreadyExistsError

    servers = bootstrap_servers(settings)
    where = f"Kafka at {settings.kafka_bootstrap}"
    try:
        admin = KafkaAdminClient(bootstrap_servers=servers, client_id="clickstream-admin",
                                 bootstrap_timeout_ms=settings.kafka_max_block_ms,
                                 **client_config(settings, KafkaAdminClient))
    except KafkaError as exc:
        raise TopicError(f"topic(s) {', '.join(names)}: cannot reach {where}: {exc}") from None
    rf, min_isr = settings.kafka_replication_factor, settings.kafka_min_insync_replicas
    try:
        existing = set(admin.list_topics())
        for name in names:
            if name in existing:
                continue
            spec = {name: {"num_partitions": partitions, "replication_factor": rf,
                           "configs": {"min.insync.replicas": str(min_isr)}}}
            try:
                admin.create_topics(spec, wait_for_metadata=True)
            except TopicAlreadyExistsError:
                continue
            except KafkaError as exc:
                raise TopicError(f"topic {name}: {where} refused to create it with {partitions} "
                                 f"partitions, replication factor {rf}, min.insync.replicas {min_isr}: "
                                 f"{exc}") from None
    except KafkaError as exc:
        raise TopicError(f"topic(s) {', '.join(names)}: {where}: {exc}") from None
    finally:
        admin.close()
