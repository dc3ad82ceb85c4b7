"""The archive sink's failure contract: a filesystem error is an ``ArchiveError`` the
driver retries, and the retry writes the same file once.

The fault is injected at the file's close, where the real HDFS failed in CI
(hdfs-native: ``RuntimeError: OperationFailed("Failed to complete file in time")`` right
after the NameNode restarted). The write itself goes to a real local folder.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from clickstream.archive import CLICK_SCHEMA
from pipeline.sinks.archive import ArchiveError, ArchiveSink
from pipeline.worker import _is_retryable

HOUR_START_MS = 1_422_748_800_000


def _clicks(n: int) -> pa.Table:
    columns: dict[str, Any] = {}
    for field in CLICK_SCHEMA:
        if pa.types.is_integer(field.type):
            columns[field.name] = [HOUR_START_MS + i for i in range(n)]
        elif pa.types.is_boolean(field.type):
            columns[field.name] = [False] * n
        else:
            columns[field.name] = [f"{field.name}_{i}" for i in range(n)]
    return pa.table(columns).cast(CLICK_SCHEMA)


class _CloseFails:
    """A file whose close raises what hdfs-native raises when the NameNode cannot complete it."""

    def __init__(self, inner: Any) -> None:
        self._inner = inner

    def __getattr__(self, name: str) -> Any:
        return getattr(self._inner, name)

    def __enter__(self) -> _CloseFails:
        return self

    def __exit__(self, *exc: object) -> None:
        self._inner.close()
        raise RuntimeError('OperationFailed("Failed to complete file in time")')


def test_a_failed_close_is_a_retryable_archive_error_and_the_retry_writes_once(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    sink = ArchiveSink(f"file://{tmp_path}/archive", "clicks")
    real_open = sink._fs.open
    monkeypatch.setattr(sink._fs, "open",
                        lambda path, mode="rb", **kw: _CloseFails(real_open(path, mode, **kw)))
    sink.add(3, 100, 104, _clicks(5))
    name = r"p0003-000000000100-000000000104\.parquet"
    with pytest.raises(ArchiveError, match=name + ".*Failed to complete") as err:
        sink.flush()
    assert _is_retryable(err.value)

    monkeypatch.setattr(sink._fs, "open", real_open)
    retry = ArchiveSink(f"file://{tmp_path}/archive", "clicks")
    retry.add(3, 100, 104, _clicks(5))
    written = retry.flush()
    assert [Path(p).name for p in written] == ["p0003-000000000100-000000000104.parquet"]
    final = list((tmp_path / "archive").rglob("p0003-*.parquet"))
    assert len(final) == 1 and pq.read_table(final[0]).num_rows == 5


def test_a_missing_permission_is_not_wrapped(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """An OSError of the filesystem keeps its own type (the driver classifies it as it is)."""
    sink = ArchiveSink(f"file://{tmp_path}/archive", "clicks")

    def refuse(*_a: object, **_k: object) -> None:
        raise PermissionError("no write access")

    monkeypatch.setattr(sink._fs, "makedirs", refuse)
    sink.add(0, 0, 0, _clicks(1))
    with pytest.raises(PermissionError):
        sink.flush()
