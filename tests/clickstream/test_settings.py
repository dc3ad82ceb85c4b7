from __future__ import annotations

import argparse

import pytest

from clickstream.settings import Settings, SettingsError, add_settings_arguments
from launch.cli.main import build_parser


def test_flags_override_env_override_defaults() -> None:
    env = {"CLICKSTREAM_KAFKA_PORT": "19092", "CLICKSTREAM_TOPIC": "from-env"}
    s = Settings.from_sources({"topic": "from-flag"}, env)
    assert s.topic == "from-flag"
    assert s.kafka_port == 19092
    assert s.cassandra_port == 9042


def test_embedded_stack_defaults_need_no_server(tmp_path) -> None:
    s = Settings.from_sources({"work_dir": str(tmp_path)}, {})
    assert s.kafka_bootstrap == ""
    assert s.store_backend == "embedded"
    assert s.archive == (tmp_path / "archive").as_uri()
    assert s.dask_scheduler_address == ""
    assert s.spark_master.startswith("local")


def test_local_stack_points_at_the_local_servers() -> None:
    s = Settings.from_sources({"stack": "local", "kafka_port": "9192"}, {})
    assert s.kafka_bootstrap == "127.0.0.1:9192"
    assert s.store_backend == "cassandra"
    assert s.archive == "hdfs://127.0.0.1:9000/clickstream/archive"


def test_a_single_address_overrides_the_stack() -> None:
    s = Settings.from_sources({}, {"CLICKSTREAM_KAFKA_BOOTSTRAP_SERVERS": "k1:9092,k2:9092",
                                   "CLICKSTREAM_ARCHIVE_URL": "hdfs://nn:8020/a/"})
    assert s.kafka_bootstrap == "k1:9092,k2:9092"
    assert s.archive == "hdfs://nn:8020/a"
    assert s.store_backend == "embedded"


def test_list_settings_parse_from_comma_separated_env() -> None:
    s = Settings.from_sources({}, {"CLICKSTREAM_CASSANDRA_CONTACT_POINTS": "10.0.0.1, 10.0.0.2"})
    assert s.cassandra_contact_points == ("10.0.0.1", "10.0.0.2")


@pytest.mark.parametrize(("env", "message"), [
    ({"CLICKSTREAM_KAFKA_PORT": "abc"}, "CLICKSTREAM_KAFKA_PORT: 'abc' is not a valid int"),
    ({"CLICKSTREAM_KAFKA_PORT": "70000"}, "kafka_port: 70000 is not a TCP port"),
    ({"CLICKSTREAM_STACK": "cloud"}, "stack: 'cloud' is not one of"),
])
def test_bad_values_name_the_setting(env: dict[str, str], message: str) -> None:
    with pytest.raises(SettingsError, match=message):
        Settings.from_sources({}, env)


def test_redacted_never_shows_the_password() -> None:
    s = Settings.from_sources({}, {"CLICKSTREAM_CASSANDRA_PASSWORD": "hunter2"})
    assert s.cassandra_password == "hunter2"
    assert "hunter2" not in repr(s.redacted())
    assert "hunter2" not in repr(s) and "hunter2" not in str(s)


def test_help_lists_the_env_var_of_every_option() -> None:
    parser = argparse.ArgumentParser()
    add_settings_arguments(parser, ["general", "services", "kafka", "store", "archive", "compute"])
    text = parser.format_help()
    for action in parser._actions:
        if action.dest != "help":
            assert f"CLICKSTREAM_{action.dest.upper()}" in text


def test_every_subcommand_help_names_env_vars() -> None:
    parser = build_parser()
    sub = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction))
    for name, sub_parser in sub.choices.items():
        for action in sub_parser._actions:
            if action.option_strings and action.dest not in ("help",) and action.default is None \
                    and action.dest.replace("-", "_") in Settings.__dataclass_fields__:
                assert f"CLICKSTREAM_{action.dest.upper()}" in (action.help or ""), (name, action.dest)


def test_kafka_topic_and_client_settings_from_env() -> None:
    env = {"CLICKSTREAM_KAFKA_REPLICATION_FACTOR": "3", "CLICKSTREAM_KAFKA_MIN_INSYNC_REPLICAS": "2",
           "CLICKSTREAM_KAFKA_CLIENT_OPTIONS":
               "security_protocol=SASL_SSL, sasl_mechanism=PLAIN,sasl_plain_username=u,"
               "sasl_plain_password=s3cret=x"}
    s = Settings.from_sources({}, env)
    assert (s.kafka_replication_factor, s.kafka_min_insync_replicas) == (3, 2)
    assert dict(s.kafka_client_options.items()) == {
        "security_protocol": "SASL_SSL", "sasl_mechanism": "PLAIN", "sasl_plain_username": "u",
        "sasl_plain_password": "s3cret=x"}
    for text in (repr(s), str(s.kafka_client_options), repr(s.redacted())):
        assert "s3cret" not in text and "SASL_SSL" not in text
    assert "sasl_plain_password=***" in repr(s)
    assert Settings().kafka_client_options.items() == () and Settings().kafka_replication_factor == 1


@pytest.mark.parametrize(("env", "message"), [
    ({"CLICKSTREAM_KAFKA_MIN_INSYNC_REPLICAS": "2"}, "kafka_min_insync_replicas: 2 is more than"),
    ({"CLICKSTREAM_KAFKA_REPLICATION_FACTOR": "0"}, "kafka_replication_factor: 0 must be at least 1"),
    ({"CLICKSTREAM_KAFKA_CLIENT_OPTIONS": "sasl_plain_password"},
     "CLICKSTREAM_KAFKA_CLIENT_OPTIONS: option 1"),
    ({"CLICKSTREAM_KAFKA_CLIENT_OPTIONS": "a=hunter2,a=hunter2"}, "option a is given twice"),
])
def test_bad_kafka_settings_name_the_setting_never_the_value(env: dict[str, str], message: str) -> None:
    with pytest.raises(SettingsError, match=message) as info:
        Settings.from_sources({}, env)
    assert "hunter2" not in str(info.value)


def test_cluster_settings_from_env() -> None:
    env = {"CLICKSTREAM_KAFKA_BROKERS": "3", "CLICKSTREAM_KAFKA_CONTROLLER_PORT": "9193",
           "CLICKSTREAM_CASSANDRA_NODES": "2", "CLICKSTREAM_HDFS_DATANODES": "3",
           "CLICKSTREAM_CASSANDRA_WRITE_CONSISTENCY": "QUORUM", "CLICKSTREAM_WINDOW_TTL_S": "86400"}
    s = Settings.from_sources({"stack": "local"}, env)
    assert s.kafka_bootstrap == "127.0.0.1:9092,127.0.0.1:9093,127.0.0.1:9094"
    assert (s.cassandra_nodes, s.hdfs_datanodes, s.hdfs_replication_factor) == (2, 3, 3)
    assert (s.cassandra_write_consistency, s.cassandra_read_consistency) == ("QUORUM", "LOCAL_ONE")
    assert (s.window_ttl_s, s.cassandra_local_datacenter) == (86400, "datacenter1")
    one = Settings()
    assert (one.kafka_brokers, one.cassandra_nodes, one.hdfs_datanodes, one.hdfs_replication_factor,
            one.window_ttl_s) == (1, 1, 2, 2, 0)
    assert Settings(hdfs_datanodes=5).hdfs_replication_factor == 3
    assert Settings(hdfs_datanodes=5, hdfs_replication=2).hdfs_replication_factor == 2


@pytest.mark.parametrize(("env", "message"), [
    ({"CLICKSTREAM_KAFKA_BROKERS": "0"}, "kafka_brokers: 0 must be at least 1"),
    ({"CLICKSTREAM_CASSANDRA_NODES": "0"}, "cassandra_nodes: 0 must be at least 1"),
    ({"CLICKSTREAM_HDFS_REPLICATION": "3"}, "hdfs_replication: 3 must be between 0 .* and hdfs_datanodes 2"),
    ({"CLICKSTREAM_WINDOW_TTL_S": "-1"}, "window_ttl_s: -1 must be 0"),
    ({"CLICKSTREAM_CASSANDRA_READ_CONSISTENCY": "local_one"},
     "cassandra_read_consistency: 'local_one' is not"),
    ({"CLICKSTREAM_KAFKA_PORT": "65535", "CLICKSTREAM_KAFKA_BROKERS": "2",
      "CLICKSTREAM_KAFKA_CONTROLLER_PORT": "9000"}, "kafka_port: 65535 leaves no room for 2"),
])
def test_bad_cluster_settings_name_the_setting(env: dict[str, str], message: str) -> None:
    with pytest.raises(SettingsError, match=message):
        Settings.from_sources({}, env)
