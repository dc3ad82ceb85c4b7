"""Archive sink: raw clicks to Parquet under the ``clickstream.archive`` layout.

Runs on the Dask worker that decoded the batch (clicks never travel to the driver).
``add`` takes one batch's clicks as an Arrow table; ``flush`` writes one file per
``date=/hour=`` folder the batch touches, named
``p<partition>-<first offset>-<last offset>.parquet`` (what it holds, so a rerun of the
same range overwrites instead of duplicating). Each file is written first under
``<archive>/_tmp/<topic>-…`` and then renamed into place, so readers never see half a
file; ``remove_stale_tmp`` clears what a killed writer left there (the pipeline calls it
at start).

A failure of the filesystem (HDFS down, a NameNode in safe mode after a restart, a block
whose close the NameNode has not yet confirmed) is raised as ``ArchiveError``, an
``OSError`` naming the file: the driver waits and runs the batch again, which rewrites
the same file names, so a retry never duplicates.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from contextlib import contextmanager

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from clickstream.archive import CLICK_SCHEMA, TMP_PREFIX, filesystem, join, partition_dir
from clickstream.windows import DAY_MS, HOUR_MS, day_of

TMP_DIR = "_tmp"


class ArchiveError(OSError):
    """Writing a file to the archive failed (the filesystem's error is the cause)."""


@contextmanager
def _as_archive_error(where: str) -> Iterator[None]:
    """An OSError passes as it is; any other failure (hdfs-native raises RuntimeError for
    most server-side ones) becomes an ``ArchiveError`` naming ``where``."""
    try:
        yield
    except OSError:
        raise
    except Exception as exc:
        raise ArchiveError(f"archive {where}: {type(exc).__name__}: {exc}") from exc


def file_name(partition: int, first_offset: int, last_offset: int) -> str:
    return f"p{partition:04d}-{first_offset:012d}-{last_offset:012d}.parquet"


class ArchiveSink:
    def __init__(self, archive_url: str, topic: str) -> None:
        self.archive_url = archive_url
        self.topic = topic
        self._fs, self._root = filesystem(archive_url)
        self._pending: list[tuple[int, int, int, pa.Table]] = []

    def add(self, partition: int, first_offset: int, last_offset: int, clicks: pa.Table) -> None:
        """``clicks``: the columns of ``clickstream.archive.CLICK_SCHEMA``, by name."""
        if clicks.num_rows:
            self._pending.append((partition, first_offset, last_offset, clicks))

    def flush(self) -> list[str]:
        """Write and rename every pending file; returns their final paths. Blocks."""
        written = []
        for partition, first, last, clicks in self._pending:
            table = clicks.select(CLICK_SCHEMA.names).cast(CLICK_SCHEMA)
            ts = table["ts_ms"].to_numpy()
            hour_ms = ts - ts % HOUR_MS
            hours = np.unique(hour_ms)
            for hour_start in hours:
                part = table if len(hours) == 1 else table.filter(pc.equal(pa.array(hour_ms),
                                                                           int(hour_start)))
                folder = partition_dir(self._root, day_of(int(hour_start)),
                                       int(hour_start % DAY_MS // HOUR_MS))
                written.append(self._write(folder, file_name(partition, first, last), part))
        self._pending.clear()
        return written

    def _write(self, folder: str, name: str, part: pa.Table) -> str:
        with _as_archive_error(join(folder, name)):
            return self._write_renamed(folder, name, part)

    def _write_renamed(self, folder: str, name: str, part: pa.Table) -> str:
        tmp_dir = join(self._root, TMP_DIR)
        self._fs.makedirs(folder, exist_ok=True)
        self._fs.makedirs(tmp_dir, exist_ok=True)
        final = join(folder, name)
        tmp = join(tmp_dir, f"{TMP_PREFIX}{self.topic}-{uuid.uuid4().hex[:8]}-{name}")
        with self._fs.open(tmp, "wb") as out:
            pq.write_table(part, out, compression="zstd")
        if self._fs.exists(final):
            self._fs.rm(final)
        self._fs.mv(tmp, final)
        return final


def remove_stale_tmp(archive_url: str, topic: str) -> int:
    """Delete the temporary files a killed writer of ``topic`` left; returns how many.
    A filesystem failure is an ``ArchiveError`` (retryable, as for the writes)."""
    with _as_archive_error(f"{archive_url}: clearing {TMP_DIR}"):
        return _remove_stale_tmp(archive_url, topic)


def _remove_stale_tmp(archive_url: str, topic: str) -> int:
    fs, root = filesystem(archive_url)
    tmp_dir = join(root, TMP_DIR)
    if not fs.exists(tmp_dir):
        return 0
    stale = [p for p in fs.ls(tmp_dir, detail=False)
             if p.rsplit("/", 1)[-1].startswith(f"{TMP_PREFIX}{topic}-")]
    for path in stale:
        fs.rm(path)
    return len(stale)
