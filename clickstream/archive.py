"""The raw click archive's layout and file system, shared by its writer and its readers.

Layout under the archive URL (``file://`` or ``hdfs://``, any fsspec URL)::

    <archive>/clicks/date=YYYY-MM-DD/hour=HH/<name>.parquet

Hive-style partition folders, so Spark, pyarrow and pandas read ``date``/``hour`` as
columns. Files are written aside and renamed into place (readers never see half a file)
and named deterministically from what they hold, so a replay rewrites, never duplicates.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

import fsspec
import pyarrow as pa

from clickstream.windows import REFERRER_CLASS_COLUMN

CLICKS_DIR = "clicks"
PAGERANK_DIR = "pagerank"
TMP_PREFIX = "_tmp-"

CLICK_SCHEMA = pa.schema([
    pa.field("click_id", pa.int64(), nullable=False),
    pa.field("ts_ms", pa.int64(), nullable=False),
    pa.field("prev", pa.string(), nullable=False),
    pa.field("curr", pa.string(), nullable=False),
    pa.field("link_type", pa.string(), nullable=False),
    pa.field(REFERRER_CLASS_COLUMN, pa.string(), nullable=False),
    pa.field("late", pa.bool_(), nullable=False),
])


def _no_cached_hdfs_clients() -> None:
    """Keep hdfs-native clients out of fsspec's instance cache.

    fsspec clears that cache in every forked child (``os.register_at_fork``); dropping an
    hdfs-native client there runs its Rust destructor without the runtime threads it needs
    and the child hangs before ``exec``. Spark's gateway launch forks that way, so a
    process that touched ``hdfs://`` and then started Spark hung. Uncached clients are
    never dropped in the child.
    """
    try:
        cls = fsspec.get_filesystem_class("hdfs")
    except (ImportError, ValueError):
        return
    cls.cachable = False


_no_cached_hdfs_clients()


def filesystem(url: str, **storage_options: Any) -> tuple[fsspec.AbstractFileSystem, str]:
    """(file system, path inside it) for an fsspec URL such as ``hdfs://h:9000/a``."""
    fs, path = fsspec.core.url_to_fs(url, **storage_options)
    return fs, path


def read_until_whole(read: Callable[[], bytes], is_short: Callable[[bytes], bool],
                     within_s: float, pause_s: float = 0.05) -> bytes:
    """What ``read()`` gives once ``is_short`` no longer judges it a beginning of the file,
    or its last answer after ``within_s``; blocks up to ``within_s`` plus one read.

    A file read the moment after its writer closed it can come back short from HDFS (the
    NameNode completes a file while its last block is still committing), so a just-closed
    file is read through this.
    """
    deadline = time.monotonic() + within_s
    while True:
        got = read()
        if not is_short(got) or time.monotonic() >= deadline:
            return got
        time.sleep(pause_s)


def join(*parts: str) -> str:
    return "/".join(p.strip("/") if i else p.rstrip("/") for i, p in enumerate(parts))


def partition_dir(root: str, date: str, hour: int) -> str:
    """The folder of one hour of clicks under an archive root path."""
    return join(root, CLICKS_DIR, f"date={date}", f"hour={hour:02d}")
