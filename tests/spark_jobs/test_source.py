"""Hour ranges (pure): parsing, labels and the whole days a range covers."""

from __future__ import annotations

import datetime as dt

import pytest

from spark_jobs.source import HourRange, JobInputError


def _day_ms(date: str) -> int:
    day = dt.date.fromisoformat(date)
    return int(dt.datetime(day.year, day.month, day.day, tzinfo=dt.UTC).timestamp()) * 1000


@pytest.mark.parametrize(("first", "last", "whole"), [
    (None, None, (None, None)),
    ("2015-02-01", "2015-02-03", ("2015-02-01", "2015-02-03")),
    ("2015-02-01T00", "2015-02-03T23", ("2015-02-01", "2015-02-03")),
    ("2015-02-01T01", "2015-02-03T22", ("2015-02-02", "2015-02-02")),
    ("2015-02-28T05", None, ("2015-03-01", None)),
    (None, "2016-03-01T00", (None, "2016-02-29")),
    ("2015-12-31T20", "2016-01-01T22", ("2016-01-01", "2015-12-31")),  # none whole: first > last
])
def test_whole_days_are_the_days_every_hour_of_which_is_inside(first: str | None, last: str | None,
                                                              whole: tuple[str | None, str | None]) -> None:
    got = HourRange.parse(first, last).whole_days_ms()
    assert got == tuple(None if day is None else _day_ms(day) for day in whole)


def test_labels_name_the_range_with_open_ends_empty() -> None:
    assert HourRange().label() == "all"
    assert HourRange.parse("2015-02-01T20", "2015-02-02").label() == "2015-02-01T20..2015-02-02T23"
    assert HourRange.parse(None, "2015-02-02T05").label() == "..2015-02-02T05"


@pytest.mark.parametrize(("first", "last", "message"), [
    ("2015-02-30", None, "--from: '2015-02-30' is not a calendar date"),
    (None, "2015-02-01T24", "--to: hour 24 is not in 0..23"),
    ("yesterday", None, "--from: 'yesterday' is not YYYY-MM-DD or YYYY-MM-DDTHH"),
])
def test_bad_bounds_name_the_flag_and_the_value(first: str | None, last: str | None, message: str) -> None:
    with pytest.raises(JobInputError) as caught:
        HourRange.parse(first, last)
    assert str(caught.value) == message
