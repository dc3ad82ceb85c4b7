"""``Pacer``'s burst release (pure: the clock is set by hand): how many records may go out
at a moment, by clicks per second and by event time."""

from __future__ import annotations

import time

import numpy as np
import pytest

from producer.sender import Pacer


def _started(pacer: Pacer, seconds_ago: float, ts0_ms: int | None = None) -> Pacer:
    pacer.t0 = time.perf_counter() - seconds_ago
    pacer.ts0 = ts0_ms
    return pacer


def test_a_burst_is_every_record_whose_clicks_fit_the_rate_so_far() -> None:
    pacer = _started(Pacer(rate_per_s=1_000, speedup=None), seconds_ago=0.5)
    clicks_before = np.arange(0, 1_000, 100)  # records of 100 clicks: due at 0, 0.1, ... 0.9 s
    latest_ts = np.zeros(10, np.int64)
    assert pacer.wait_for_burst(clicks_before, latest_ts) == 6  # 0 .. 500 clicks are due at 0.5 s


def test_a_burst_stops_at_the_first_record_not_due_by_event_time() -> None:
    pacer = _started(Pacer(rate_per_s=None, speedup=10.0), seconds_ago=1.0, ts0_ms=0)
    first_ts = np.array([0, 5_000, 2_000, 9_000, 10_000, 10_500, 30_000])
    latest = np.maximum.accumulate(first_ts)
    # 1 s of wall time at 10x is event time 10,000 ms (10,010 with EARLY_S): 10,500 is not due
    assert pacer.wait_for_burst(np.zeros(7, np.int64), latest) == 5


def test_the_slower_of_rate_and_speedup_wins() -> None:
    pacer = _started(Pacer(rate_per_s=100, speedup=1_000.0), seconds_ago=0.05, ts0_ms=0)
    # the rate allows 5 clicks by now, the speedup 50 s of event time (all of these)
    assert pacer.wait_for_burst(np.arange(10), np.arange(10) * 1_000) == 6


def test_the_first_record_waits_until_it_is_due() -> None:
    pacer = _started(Pacer(rate_per_s=100, speedup=None), seconds_ago=0.0)
    t0 = time.perf_counter()
    assert pacer.wait_for_burst(np.array([10, 11]), np.zeros(2, np.int64)) >= 1
    assert time.perf_counter() - t0 >= 0.09  # 10 clicks at 100 clicks/s: 0.1 s


@pytest.mark.parametrize("rate", [500.0, 5_000.0])
def test_bursts_send_the_clicks_at_the_rate(rate: float) -> None:
    pacer = Pacer(rate_per_s=rate, speedup=None)
    clicks_before = np.arange(int(rate * 0.3))  # one click a record, 0.3 s worth
    latest_ts = np.zeros(len(clicks_before), np.int64)
    t0 = time.perf_counter()
    i = 0
    while i < len(clicks_before):
        i += pacer.wait_for_burst(clicks_before[i:], latest_ts[i:])
    elapsed = time.perf_counter() - t0
    assert 0.25 <= elapsed <= 0.6  # the last record is due at ~0.3 s: not sent early, nor late
