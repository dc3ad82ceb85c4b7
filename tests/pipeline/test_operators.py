"""Operators as pure functions: decode, window partials, merging, top-N, sliding, trending."""

from __future__ import annotations

import numpy as np

from clickstream.events import Click, encode_batch, encode_click
from pipeline.operators.aggregate import BUILTIN_AGGREGATES
from pipeline.operators.decode import decode_values
from pipeline.operators.windows import (
    COMPACT_FRAMES,
    SlidingCounts,
    StoredTotals,
    TotalsRow,
    Trending,
    WindowState,
    top_n,
)
from pipeline.sources.base import RecordBatch
from pipeline.worker import BatchTask, process_batch
from tests.pipeline.conftest import read_archive, recount

T0 = 1_422_748_800_000  # 2015-02-01T00:00:00Z


def _batch(start: int, values: list[bytes | None]) -> RecordBatch:
    n = len(values)
    return RecordBatch(0, start, start + n, np.arange(start, start + n, dtype=np.int64),
                       np.zeros(n, dtype=np.int64), [b"k"] * n, values)


def _clicks() -> list[Click]:
    out = []
    for i in range(400):
        ts = T0 + (i * 977) % 700_000
        out.append(Click(i, ts, ["other-search", "A", "B", "other-empty"][i % 4],
                         ["X", "Y", "Z", "W", "V"][(i * 7) % 5], ["link", "external"][i % 2]))
    return out


def test_decode_values_sends_bad_records_aside_with_reasons() -> None:
    good = Click(1, T0, "a", "b", "link")
    batch = encode_batch([Click(2, T0, "a", "c", "link"), Click(3, T0 + 5, "d", "c", "other")])
    values = [encode_click(good), b"{nope", batch, None,
              b'{"id": 1, "ts": 5, "prev": "a", "curr": "b", "type": "link"}']
    decoded = decode_values(values)
    assert decoded.clicks["click_id"].to_pylist() == [1, 2, 3]
    assert [i for i, _ in decoded.dead] == [1, 3, 4]
    assert decoded.dead[0][1].startswith("not JSON")
    assert "null" in decoded.dead[1][1]
    assert decoded.dead[2][1].startswith("ts:")


def test_top_n_ties_by_key_ascending() -> None:
    counts = {"b": 3, "a": 3, "c": 5, "d": 1}
    assert top_n(counts, 3) == [("c", 5), ("a", 3), ("b", 3)]


def test_sliding_counts_sum_the_buckets_of_each_window() -> None:
    sliding = SlidingCounts(window_ms=30, step_ms=10)
    sliding.add_bucket(100, {"a": 1})
    sliding.add_bucket(110, {"a": 2, "b": 1})
    sliding.add_bucket(150, {"b": 4})
    got = sliding.finalize(10_000)
    assert got == [(80, {"a": 1}), (90, {"a": 3, "b": 1}), (100, {"a": 3, "b": 1}),
                   (110, {"a": 2, "b": 1}), (130, {"b": 4}), (140, {"b": 4}), (150, {"b": 4})]


def test_trending_lift_over_ewma_baseline() -> None:
    trending = Trending(window_ms=10, alpha=0.5)
    first = trending.step(0, {"a": 4, "b": 1})
    assert first[0] == ("a", 4, 0.0, 5.0)
    # after window 0: baseline a = 2, b = 0.5; one empty window (10) decays them by half
    second = trending.step(20, {"a": 2, "b": 3})
    assert second == [("b", 3, 0.25, 4 / 1.25), ("a", 2, 1.0, 1.5)]


def _process(clicks: list[Click], tmp_path, finalized_ms: int = 0, start: int = 0):
    records = _batch(start, [encode_click(c) for c in clicks])
    task = BatchTask("t", 0, start, start + len(clicks), finalized_ms, (tmp_path / "arch").as_uri(),
                     BUILTIN_AGGREGATES, None, records)
    part = process_batch(task)
    assert part.error is None
    return part


def _rows_as_tables(rows) -> dict[str, set]:
    from clickstream.windows import day_of
    return {
        "window_totals": {(w, day_of(s), s, c, lt) for w, s, c, lt in rows.totals},
        "window_topn": set(rows.topn),
        "window_counts": set(rows.counts),
        "key_series": {(m, w, k, s, c) for m, w, s, k, c in rows.counts},
    }


def test_batches_merged_in_any_split_equal_the_recount(tmp_path) -> None:
    clicks = _clicks()
    state = WindowState()
    rows = None
    for lo, hi in ((0, 150), (150, 151), (151, 400)):
        part = _process(clicks[lo:hi], tmp_path, start=lo)
        state.add_counts(part.counts)
    rows = state.finalize_all()
    assert _rows_as_tables(rows) == recount(clicks)
    archived = read_archive((tmp_path / "arch").as_uri())
    assert sorted(archived["click_id"]) == list(range(400))
    assert not archived["late"].any()


def test_late_clicks_are_counted_late_and_final_windows_keep_their_clicks(tmp_path) -> None:
    on_time = [Click(i, T0 + i * 100, "other-search", "X", "link") for i in range(50)]
    state = WindowState()
    state.add_counts(_process(on_time, tmp_path).counts)
    first = state.finalize(T0 + 2_000)
    assert (1_000, T0, 10, 0) in first.totals
    late = [Click(100, T0 + 50, "A", "Y", "link"), Click(101, T0 + 4_000, "A", "Y", "link")]
    part = _process(late, tmp_path, finalized_ms=state.finalized_ms, start=50)
    assert part.late_clicks == 1
    state.add_counts(part.counts)
    state.add_late(part.late)
    rewrites = state.take_late_rewrites({}, cycle=2)
    assert rewrites == [TotalsRow(1_000, T0, 10, 1)]
    rest = state.finalize_all()
    totals = {(w, s): (c, lt) for w, s, c, lt in [*first.totals, *rest.totals]}
    assert totals[(10_000, T0)] == (51, 1)  # 50 on time earlier + click 101; click 100 late
    assert totals[(60_000, T0)] == (51, 1)
    archived = read_archive((tmp_path / "arch").as_uri()).set_index("click_id")
    assert bool(archived.loc[100, "late"]) and not bool(archived.loc[101, "late"])


def test_a_late_rewrite_read_back_from_the_store_is_added_once_per_cycle() -> None:
    state = WindowState(finalized_ms=T0 + 60_000)
    state.add_late([(1_000, T0, 2)])
    # written by cycle 6 before: 5 on time, 1 late; cycle 7 adds its 2
    got = state.take_late_rewrites({(1_000, T0): StoredTotals(5, 1, 6)}, cycle=7)
    assert got == [TotalsRow(1_000, T0, 5, 3)]
    state = WindowState(finalized_ms=T0 + 60_000)
    state.add_late([(1_000, T0, 2)])
    # cycle 7 ran before a crash and wrote 5 + 3 already: running it again writes the same
    got = state.take_late_rewrites({(1_000, T0): StoredTotals(5, 3, 7)}, cycle=7)
    assert got == [TotalsRow(1_000, T0, 5, 3)]


def test_a_restored_state_finalizes_exactly_like_the_one_it_was_saved_from(tmp_path) -> None:
    clicks = _clicks()
    kept, saved = WindowState(), WindowState()
    for state in (kept, saved):
        state.add_counts(_process(clicks[:200], tmp_path).counts)
        state.finalize(T0 + 350_000)
    restored = WindowState.restore(*saved.snapshot())
    rows = []
    for state in (kept, restored):
        part = _process(clicks[200:], tmp_path, finalized_ms=state.finalized_ms, start=200)
        state.add_counts(part.counts)
        state.add_late(part.late)
        rows.append(state.finalize_all())
    assert rows[0] == rows[1]
    assert rows[0].trending and rows[0].topn and part.late_clicks
    assert kept.trending.baseline == restored.trending.baseline


def test_running_totals_and_final_rows_match_the_recount_with_many_small_partials(tmp_path) -> None:
    """More partials per window than ``COMPACT_FRAMES`` (the open state's buckets compact)
    and finalizing step by step: the running totals of the open windows always equal a
    recount of their clicks, a restored state reports the same, and the final rows equal the
    recount of all clicks."""
    clicks = [Click(i, T0 + i * 100, ["other-search", "A", "B"][i % 3], ["X", "Y", "Z", "W"][(i * 7) % 4],
                    ["link", "external"][i % 2]) for i in range(1_200)]  # 10 clicks/s for 120 s
    state = WindowState()
    finals = []
    step = 6  # a 60 s window gets 100 partials
    assert 600 // step > COMPACT_FRAMES
    for lo in range(0, len(clicks), step):
        part = _process(clicks[lo:lo + step], tmp_path, finalized_ms=state.finalized_ms, start=lo)
        assert part.late_clicks == 0
        state.add_counts(part.counts)
        until = clicks[min(lo + step, len(clicks) - 1)].ts_ms - 30_000
        finals.append(state.finalize(until))
        expected = {}
        for c in clicks[:lo + step]:
            for window_ms in (1_000, 10_000, 60_000):
                start = c.ts_ms - c.ts_ms % window_ms
                if start + window_ms > state.finalized_ms:
                    expected[(window_ms, start)] = expected.get((window_ms, start), 0) + 1
        running = {(t.window_ms, t.window_start_ms): t.clicks for t in state.open_totals()}
        assert running == expected
        if lo % (20 * step) == 0:
            assert {(t.window_ms, t.window_start_ms): t.clicks
                    for t in WindowState.restore(*state.snapshot()).open_totals()} == expected
    finals.append(state.finalize_all())
    merged = finals[0]
    for rows in finals[1:]:
        for name in ("totals", "topn", "counts", "trending"):
            getattr(merged, name).extend(getattr(rows, name))
    assert _rows_as_tables(merged) == recount(clicks)
