"""Reading the click archive into Spark, optionally restricted to an hour range.

The archive is Hive-partitioned Parquet (``clickstream.archive``):
``<archive>/clicks/date=YYYY-MM-DD/hour=HH/*.parquet``. Spark reads ``file://`` and
``hdfs://`` URLs alike; the range filter is on the partition columns, so Spark opens only
the folders inside it (partition pruning).
"""

from __future__ import annotations

import datetime as dt
import re
from dataclasses import dataclass
from typing import TYPE_CHECKING

from clickstream.archive import CLICKS_DIR, join

if TYPE_CHECKING:
    from pyspark.sql import DataFrame, SparkSession

# (first, last) start in UTC ms of a range's whole days, inclusive; None where open.
DayBounds = tuple[int | None, int | None]
_BOUND = re.compile(r"^(\d{4}-\d{2}-\d{2})(?:[T ](\d{1,2}))?$")


class JobInputError(ValueError):
    """Bad job input (range, archive URL, empty archive); the message names the problem."""


@dataclass(frozen=True)
class HourRange:
    """Inclusive range of archive hours; None means open on that side."""

    first: tuple[str, int] | None = None  # (date, hour)
    last: tuple[str, int] | None = None

    @classmethod
    def parse(cls, first: str | None, last: str | None) -> HourRange:
        """From ``YYYY-MM-DD`` or ``YYYY-MM-DDTHH`` bounds (a bare date means its first hour
        for ``first`` and its last hour for ``last``)."""
        return cls(_parse_bound(first, "--from", 0), _parse_bound(last, "--to", 23))

    @property
    def is_all(self) -> bool:
        return self.first is None and self.last is None

    def label(self) -> str:
        """``all`` or ``YYYY-MM-DDTHH..YYYY-MM-DDTHH`` (open ends as empty)."""
        if self.is_all:
            return "all"
        fmt = lambda b: "" if b is None else f"{b[0]}T{b[1]:02d}"  # noqa: E731
        return f"{fmt(self.first)}..{fmt(self.last)}"

    def whole_days_ms(self) -> DayBounds:
        """(first, last) start in UTC ms of the days the range covers whole, inclusive;
        None where the range is open. ``first > last`` means no day is whole."""
        first = None if self.first is None else _day_start_ms(self.first[0], 0 if self.first[1] == 0 else 1)
        last = None if self.last is None else _day_start_ms(self.last[0], 0 if self.last[1] == 23 else -1)
        return first, last


def _day_start_ms(date: str, shift_days: int) -> int:
    day = dt.date.fromisoformat(date) + dt.timedelta(days=shift_days)
    return int(dt.datetime(day.year, day.month, day.day, tzinfo=dt.UTC).timestamp()) * 1000


def _parse_bound(value: str | None, flag: str, default_hour: int) -> tuple[str, int] | None:
    if not value:
        return None
    match = _BOUND.match(value.strip())
    if not match:
        raise JobInputError(f"{flag}: {value!r} is not YYYY-MM-DD or YYYY-MM-DDTHH")
    date, hour = match.group(1), match.group(2)
    try:
        dt.date.fromisoformat(date)
    except ValueError:
        raise JobInputError(f"{flag}: {date!r} is not a calendar date") from None
    hour_n = default_hour if hour is None else int(hour)
    if not 0 <= hour_n <= 23:
        raise JobInputError(f"{flag}: hour {hour_n} is not in 0..23")
    return (date, hour_n)


def spark_url(archive_url: str) -> str:
    """The archive URL as Spark (Hadoop) wants it: ``file:///abs`` or ``hdfs://h:p/path``."""
    url = archive_url.rstrip("/")
    if "://" not in url:
        if not url.startswith("/"):
            raise JobInputError(f"archive {archive_url!r}: give an absolute path or a URL")
        return "file://" + url
    return url


def clicks_path(archive_url: str) -> str:
    return join(spark_url(archive_url), CLICKS_DIR)


def read_clicks(spark: SparkSession, archive_url: str, hours: HourRange | None = None) -> DataFrame:
    """The archive's clicks with ``date`` (string) and ``hour`` (int) columns, lazily.

    Raises JobInputError when the archive has no clicks folder.
    """
    from pyspark.sql import functions as F
    from pyspark.sql.utils import AnalysisException

    from spark_jobs.schemas import ARCHIVE_SCHEMA

    path = clicks_path(archive_url)
    try:
        df = spark.read.schema(ARCHIVE_SCHEMA).option("basePath", path).parquet(path)
    except AnalysisException as exc:
        raise JobInputError(f"archive {archive_url}: cannot read {path}: "
                            f"{str(exc).splitlines()[0]}") from None
    hours = hours or HourRange()
    if hours.first is not None:
        date, hour = hours.first
        df = df.where((F.col("date") > date) | ((F.col("date") == date) & (F.col("hour") >= hour)))
    if hours.last is not None:
        date, hour = hours.last
        df = df.where((F.col("date") < date) | ((F.col("date") == date) & (F.col("hour") <= hour)))
    return df
