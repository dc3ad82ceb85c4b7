"""Topics: created with the settings' replication factor and min.insync.replicas; client options."""

from __future__ import annotations

import socket

import pytest

from clickstream.settings import ClientOptions, Settings
from clickstream.topics import TopicError, client_config, ensure_topics


def test_client_config_types_options_per_client() -> None:
    from kafka import KafkaAdminClient, KafkaProducer

    s = Settings(kafka_client_options=ClientOptions.parse(
        "security_protocol=SASL_SSL,linger_ms=5,ssl_check_hostname=false,receive_buffer_bytes=65536"))
    assert client_config(s, KafkaProducer) == {"security_protocol": "SASL_SSL", "linger_ms": 5,
                                                "ssl_check_hostname": False, "receive_buffer_bytes": 65536}
    assert "linger_ms" not in client_config(s, KafkaAdminClient)  # producer-only: left out
    with pytest.raises(TopicError, match="no_such_option is not a kafka-python client option"):
        client_config(Settings(kafka_client_options=ClientOptions.parse("no_such_option=1")), KafkaProducer)


def test_unreachable_broker_is_a_clear_error_naming_topic_and_broker() -> None:
    with socket.socket() as probe:  # a port nobody listens on
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    s = Settings(kafka_bootstrap_servers=f"127.0.0.1:{port}", kafka_max_block_ms=1_500)
    with pytest.raises(TopicError, match=rf"topic\(s\) t1, t2: cannot reach Kafka at 127.0.0.1:{port}"):
        ensure_topics(s, ["t1", "t2"], 1)


@pytest.mark.integration
def test_topics_get_replication_and_min_insync_from_settings(services_running: Settings,
                                                             unique_name: str) -> None:
    from kafka import KafkaAdminClient
    from kafka.admin import ConfigResource, ConfigResourceType

    assert (services_running.kafka_replication_factor, services_running.kafka_min_insync_replicas) == (1, 1)
    names = [f"{unique_name}-clicks", f"{unique_name}-dead"]
    ensure_topics(services_running, names, 3)
    ensure_topics(services_running, names, 3)  # idempotent
    admin = KafkaAdminClient(bootstrap_servers=services_running.kafka_bootstrap)
    try:
        described = {t["name"]: t for t in admin.describe_topics(names)}
        configs = admin.describe_configs(
            [ConfigResource(ConfigResourceType.TOPIC, n, ["min.insync.replicas"]) for n in names])
    finally:
        admin.close()
    for name in names:
        partitions = described[name]["partitions"]
        assert len(partitions) == 3
        assert {len(p["replica_nodes"]) for p in partitions} == {services_running.kafka_replication_factor}
        # set on the topic itself (not the broker's default) to the settings' value
        entry = configs["topic"][name]["min.insync.replicas"]
        assert (entry["value"], entry["config_source"]) == (
            str(services_running.kafka_min_insync_replicas), "DYNAMIC_TOPIC_CONFIG")
    # a replication factor above the broker count is refused, naming topic and broker
    refused = rf"topic {unique_name}-rf3: Kafka at .*refused.*replication factor 3"
    with pytest.raises(TopicError, match=refused):
        ensure_topics(services_running.replace(kafka_replication_factor=3), [f"{unique_name}-rf3"], 1)
