"""Kafka topics the platform creates: partitions, replication factor, min.insync.replicas."""

from __future__ import annotations

from collections.abc import Sequence

from kafka.admin import KafkaAdminClient, NewTopic
from kafka.errors import TopicAlreadyExistsError

from clickstream.settings import Settings


class TopicError(RuntimeError):
    """A topic cannot be created; the message names the topic and the broker."""


def ensure_topics(settings: Settings, names: Sequence[str], partitions: int) -> None:
    """Create each missing topic of ``names`` (idempotent; existing topics are left alone)."""
    admin = KafkaAdminClient(bootstrap_servers=settings.kafka_bootstrap, client_id="clickstream-admin")
    try:
        missing = [n for n in names if n not in set(admin.list_topics())]
        for name in missing:
            try:
                admin.create_topics([NewTopic(name, partitions, 1)])
            except TopicAlreadyExistsError:
                pass  # another process created it meanwhile: what we wanted
            except Exception as exc:
                raise TopicError(f"topic {name!r} on Kafka at {settings.kafka_bootstrap}: {exc}") from exc
    finally:
        admin.close()
