"""The replay plan: what ``clickstream produce`` and the demo send (pure, nothing is sent)."""

from __future__ import annotations

from collections import Counter
from pathlib import Path

import pytest

from clickstream.windows import DEFAULT_MONTH
from producer.expand import Spike, month_bounds
from producer.replay import Pace, ReplayError, ReplayRequest, plan_paced_replay, plan_replay
from producer.synthetic import generate_dump


def test_paced_plan_gives_exactly_the_clicks_asked_in_the_span(tmp_path: Path) -> None:
    replay = plan_paced_replay(ReplayRequest(), Pace(clicks=20_000, rate_per_s=2_000), tmp_path)
    clicks = list(replay.clicks)
    assert replay.planned == len(clicks) == 20_000
    ts = [c.ts_ms for c in clicks]
    assert ts == sorted(ts)
    # 10 event seconds per wall second at 2,000 clicks/s: 100 s of event time
    assert replay.start_ms <= ts[0] and ts[-1] < replay.start_ms + replay.span_ms
    assert 90_000 <= replay.span_ms <= 110_000
    # the default spike: 300 extra clicks on each of 3 titles, a third into the span
    spike_window = Counter(c.curr for c in clicks if c.prev == "other-external"
                           and replay.start_ms + 33_000 <= c.ts_ms < replay.start_ms + 41_000)
    assert [n >= 300 for _, n in spike_window.most_common(3)] == [True, True, True]
    assert len(replay.spike_titles) == 0 and replay.month == DEFAULT_MONTH


def test_paced_plan_without_auto_spike_and_a_duration(tmp_path: Path) -> None:
    replay = plan_paced_replay(ReplayRequest(), Pace(duration_s=2, rate_per_s=1_000, auto_spike=False),
                               tmp_path)
    clicks = list(replay.clicks)
    assert replay.planned == len(clicks) == 2_000
    spiked = plan_paced_replay(ReplayRequest(), Pace(duration_s=2, rate_per_s=1_000), tmp_path)
    assert spiked.planned == 2_000 and list(spiked.clicks) != clicks  # the spike's clicks are in


def test_plan_reads_the_dump_with_its_month_limit_and_spike(tmp_path: Path) -> None:
    dump = generate_dump(tmp_path / "clickstream-enwiki-2024-10.tsv", 300, seed=2)
    request = ReplayRequest(dump=Path(dump), limit=500, span_s=60, spike=Spike(10, 5, 20, ("Foo",)))
    replay = plan_replay(request)
    clicks = list(replay.clicks)
    assert (replay.month, replay.planned, len(clicks)) == ("2024-10", 500, 500)
    assert replay.start_ms == month_bounds("2024-10")[0] and replay.span_ms == 60_000
    assert replay.spike_titles == ("Foo",) and replay.report.rows == 300
    assert sum(c.curr == "Foo" for c in clicks) <= 20


@pytest.mark.parametrize("request_", [ReplayRequest(), ReplayRequest(dump=Path("x"), synthetic_rows=5)])
def test_plan_needs_exactly_one_input(request_: ReplayRequest) -> None:
    with pytest.raises(ReplayError, match="exactly one of --dump FILE or --synthetic-rows N"):
        plan_replay(request_)


def test_missing_dump_and_empty_input_are_named(tmp_path: Path) -> None:
    with pytest.raises(ReplayError, match=f"--dump {tmp_path / 'none.tsv'}: no such file"):
        plan_paced_replay(ReplayRequest(dump=tmp_path / "none.tsv"), Pace())
    empty = tmp_path / "empty.tsv"
    empty.write_text("")
    with pytest.raises(ReplayError, match="no clicks to replay"):
        plan_paced_replay(ReplayRequest(dump=empty), Pace())
