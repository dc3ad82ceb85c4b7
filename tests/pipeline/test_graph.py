"""Which failures the pipeline waits out (an outage) and which stop it at once."""

from __future__ import annotations

from cassandra import InvalidRequest, OperationTimedOut
from cassandra.cluster import NoHostAvailable
from kafka.errors import KafkaConnectionError

from pipeline.checkpoint import CheckpointError
from pipeline.graph import is_transient
from pipeline.sources.base import SourceError


def test_unreachable_servers_are_waited_for() -> None:
    for exc in (NoHostAvailable("down", {}), OperationTimedOut(), KafkaConnectionError(),
                ConnectionRefusedError(), SourceError("topic t: not readable"), CheckpointError("hdfs")):
        assert is_transient(exc), exc


def test_refusals_and_bugs_stop_the_pipeline_at_once() -> None:
    for exc in (InvalidRequest("Undefined column name pipeline"), TypeError("bug"), KeyError("x")):
        assert not is_transient(exc), exc
