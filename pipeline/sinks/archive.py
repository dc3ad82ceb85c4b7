"""Archive sink: raw clicks to Parquet under the ``clickstream.archive`` layout.

Runs on the Dask worker that decoded the batch (clicks never travel to the driver).
``add`` takes one batch's clicks; ``flush`` writes one file per ``date=/hour=`` folder the
batch touches, named ``p<partition>-<first offset>-<last offset>.parquet`` (what it holds,
so a replay of the same range overwrites instead of duplicating), first under a
``_tmp-`` name, then renamed into place (readers never see half a file).
"""

from __future__ import annotations

import uuid

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

from clickstream.archive import CLICK_SCHEMA, TMP_PREFIX, filesystem, join, partition_dir


def file_name(partition: int, first_offset: int, last_offset: int) -> str:
    return f"p{partition:04d}-{first_offset:012d}-{last_offset:012d}.parquet"


class ArchiveSink:
    def __init__(self, archive_url: str) -> None:
        self.archive_url = archive_url
        self._fs, self._root = filesystem(archive_url)
        self._pending: list[tuple[int, int, int, pd.DataFrame]] = []

    def add(self, partition: int, first_offset: int, last_offset: int, clicks: pd.DataFrame) -> None:
        """``clicks``: columns click_id, ts_ms, prev, curr, link_type, referrer, late."""
        if not clicks.empty:
            self._pending.append((partition, first_offset, last_offset, clicks))

    def flush(self) -> list[str]:
        """Write and rename every pending file; returns their final paths. Blocks."""
        written = []
        for partition, first, last, frame in self._pending:
            ts = frame["ts_ms"].to_numpy(dtype=np.int64)
            hour_ms = ts - ts % 3_600_000
            for hour_start in np.unique(hour_ms):
                part = frame[hour_ms == hour_start]
                stamp = pd.Timestamp(int(hour_start), unit="ms", tz="UTC")
                folder = partition_dir(self._root, stamp.strftime("%Y-%m-%d"), stamp.hour)
                written.append(self._write(folder, file_name(partition, first, last), part))
        self._pending.clear()
        return written

    def _write(self, folder: str, name: str, part: pd.DataFrame) -> str:
        table = pa.table({
            "click_id": pa.array(part["click_id"].to_numpy(dtype=np.int64), pa.int64()),
            "ts_ms": pa.array(part["ts_ms"].to_numpy(dtype=np.int64), pa.int64()),
            "prev": pa.array(part["prev"].tolist(), pa.string()),
            "curr": pa.array(part["curr"].tolist(), pa.string()),
            "link_type": pa.array(part["link_type"].tolist(), pa.string()),
            "referrer_class": pa.array(part["referrer"].tolist(), pa.string()),
            "late": pa.array(part["late"].to_numpy(dtype=bool), pa.bool_()),
        }, schema=CLICK_SCHEMA)
        self._fs.makedirs(folder, exist_ok=True)
        final = join(folder, name)
        tmp = join(folder, f"{TMP_PREFIX}{uuid.uuid4().hex[:8]}-{name}")
        with self._fs.open(tmp, "wb") as out:
            pq.write_table(table, out, compression="zstd")
        if self._fs.exists(final):
            self._fs.rm(final)
        self._fs.mv(tmp, final)
        return final
