"""Click expansion: counts preserved, identities, order bound, determinism, options."""

from __future__ import annotations

from collections import Counter

import numpy as np
import pytest

from producer import expand
from producer.expand import Spike, expand_clicks, month_bounds, month_from_filename
from producer.readers import DumpRow
from producer.synthetic import generate_rows

ROWS = [
    DumpRow("other-search", "A", "external", 10),
    DumpRow("A", "B", "link", 1_000),  # above SMALL_N: the multinomial path
    DumpRow("other-empty", "Main_Page", "external", 5_000),
    DumpRow("B", '"Quoted"_title', "link", 37),
    DumpRow("C", "D", "other", 0),
]


def test_counts_ids_and_order() -> None:
    clicks = list(expand_clicks(ROWS, month="2015-02", seed=7))
    assert len(clicks) == sum(r.n for r in ROWS)
    per_row = Counter(c.click_id >> 32 for c in clicks)
    assert {row: count for row, count in per_row.items()} == {i: r.n for i, r in enumerate(ROWS) if r.n}
    ks: dict[int, set[int]] = {}
    for c in clicks:
        row = ROWS[c.click_id >> 32]
        assert (c.prev, c.curr, c.link_type) == (row.prev, row.curr, row.link_type)
        ks.setdefault(c.click_id >> 32, set()).add(c.click_id & 0xFFFFFFFF)
    assert all(ks[i] == set(range(r.n)) for i, r in enumerate(ROWS) if r.n)
    ts = [c.ts_ms for c in clicks]
    assert ts == sorted(ts)
    start, length = month_bounds("2015-02")
    assert start == 1_422_748_800_000 and length == 28 * 86_400_000
    assert start <= ts[0] and ts[-1] < start + length
    # spread over the month, not bunched: every week has clicks
    assert {(t - start) // (7 * 86_400_000) for t in ts} == {0, 1, 2, 3}


def test_deterministic_for_a_seed_and_limit_is_a_prefix() -> None:
    a = list(expand_clicks(ROWS, seed=3))
    assert a == list(expand_clicks(ROWS, seed=3))
    assert a != list(expand_clicks(ROWS, seed=4))
    assert list(expand_clicks(ROWS, seed=3, limit=123)) == a[:123]


def test_jitter_bounds_out_of_order(monkeypatch: pytest.MonkeyPatch) -> None:
    # small slices and sub-slices so the bound is checked across their edges too
    monkeypatch.setattr(expand, "EMIT_CLICKS", 500)
    rows = list(generate_rows(300, seed=1, head_share=0.2))
    clicks = list(expand_clicks(rows, seed=1, jitter_ms=2_000, span_s=60, limit=60_000))
    late = 0
    newest = clicks[0].ts_ms
    worst = 0
    for c in clicks:
        if c.ts_ms < newest:
            late += 1
            worst = max(worst, newest - c.ts_ms)
        newest = max(newest, c.ts_ms)
    assert late > 0  # jitter does reorder
    assert worst <= 2_000
    assert len({c.click_id for c in clicks}) == len(clicks)


def test_sub_slices_keep_counts_and_ids(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(expand, "EMIT_CLICKS", 7)
    clicks = list(expand_clicks(ROWS, seed=2))
    assert len(clicks) == sum(r.n for r in ROWS)
    assert len({c.click_id for c in clicks}) == len(clicks)
    assert [c.ts_ms for c in clicks] == sorted(c.ts_ms for c in clicks)


def test_fraction_span_and_month_from_name() -> None:
    total = sum(r.n for r in ROWS)
    half = list(expand_clicks(ROWS, seed=1, fraction=0.5))
    assert 0.45 * total < len(half) < 0.55 * total
    squeezed = list(expand_clicks(ROWS, month="2024-10", seed=1, span_s=120))
    start, _ = month_bounds("2024-10")
    assert all(start <= c.ts_ms < start + 120_000 for c in squeezed)
    assert month_from_filename("/x/clickstream-enwiki-2024-10.tsv.gz") == "2024-10"
    assert month_from_filename("2015_02_en_clickstream.tsv") == "2015-02"
    assert month_from_filename("dump.tsv") is None
    with pytest.raises(ValueError, match="fraction"):
        list(expand_clicks(ROWS, fraction=0))


def test_spike_adds_clicks_in_its_window() -> None:
    spike = Spike.parse("30:5:400:X,Y")
    assert spike == Spike(30.0, 5.0, 400, ("X", "Y"))
    clicks = list(expand_clicks(ROWS, seed=1, span_s=60, spike=spike))
    start, _ = month_bounds("2015-02")
    extra = [c for c in clicks if c.click_id >> 32 >= len(ROWS)]
    assert Counter(c.curr for c in extra) == {"X": 400, "Y": 400}
    assert all(start + 30_000 <= c.ts_ms < start + 35_000 for c in extra)
    assert len(clicks) == sum(r.n for r in ROWS) + 800
    assert [c.ts_ms for c in clicks] == sorted(c.ts_ms for c in clicks)
    picked = list(expand_clicks(ROWS, seed=1, span_s=60, spike=Spike(10, 5, 50, count=2)))
    spiked = {c.curr for c in picked if c.click_id >> 32 >= len(ROWS)}
    assert len(spiked) in (1, 2) and spiked <= {r.curr for r in ROWS}


def test_titles_with_nul_and_separators_come_back_exactly() -> None:
    """#17: rows were spooled joined by NUL, so ``Foo\\x00Bar`` shifted the fields."""
    rows = [DumpRow("Foo\x00Bar", "link", "link", 2), DumpRow("\x00", "a\x00\x00b", "other", 1),
            DumpRow("É\t\n", "€", "external", 1), DumpRow("x", "y", "link", 0)]
    clicks = list(expand_clicks(rows, seed=1, span_s=60))
    got = Counter((c.prev, c.curr, c.link_type) for c in clicks)
    assert got == Counter({("Foo\x00Bar", "link", "link"): 2, ("\x00", "a\x00\x00b", "other"): 1,
                           ("É\t\n", "€", "external"): 1})
    for c in clicks:
        assert rows[c.click_id >> 32][:3] == (c.prev, c.curr, c.link_type)


def test_chunks_are_the_clicks_as_columns() -> None:
    clicks = list(expand_clicks(ROWS, seed=5, limit=4_000))
    chunks = list(expand_clicks(ROWS, seed=5, limit=4_000).chunks())
    assert [c for chunk in chunks for c in chunk.clicks()] == clicks
    assert sum(len(chunk) for chunk in chunks) == 4_000


def test_spilled_spool_gives_the_same_clicks(monkeypatch: pytest.MonkeyPatch) -> None:
    held = list(expand_clicks(ROWS, seed=9, jitter_ms=300))
    monkeypatch.setattr(expand, "SPILL_BYTES", 100)  # every chunk of rows goes to the slice files
    monkeypatch.setattr(expand, "CHUNK_ROWS", 2)
    spilled = list(expand_clicks(ROWS, seed=9, jitter_ms=300))
    assert len(spilled) == sum(r.n for r in ROWS)
    assert Counter(c.click_id for c in spilled) == Counter(c.click_id for c in held)


@pytest.mark.parametrize("half_range", [1_000, 1 << 20])  # within 16 bits (radix) and beyond
def test_stable_argsort_is_numpys_stable_argsort(half_range: int) -> None:
    key = np.random.default_rng(half_range).integers(-half_range, half_range, 5_000)
    assert np.array_equal(expand.stable_argsort(key), np.argsort(key, kind="stable"))


@pytest.mark.parametrize("repeat_a_row", [False, True])  # one entry per row, or the general path
def test_a_sub_slice_comes_out_by_time_then_click_id(repeat_a_row: bool) -> None:
    rng = np.random.default_rng(5)
    rows = rng.permutation(400)[:300]  # out of row order, as pass 1 deals entries
    if repeat_a_row:
        rows[7] = rows[3]
    counts = rng.integers(1, 20, len(rows))
    starts = np.where(np.arange(len(rows)) == 7, 100, 0) if repeat_a_row else np.zeros(len(rows), np.int64)
    sub = np.column_stack([rows, counts, starts, np.full(len(rows), 1_000), np.full(len(rows), 1_050)])
    click_id, ts_ms, row = expand._emit(rng, sub.astype(np.int64), jitter_ms=0)  # 50 ms: many ties
    assert len(set(click_id.tolist())) == len(click_id) == counts.sum()
    pairs = list(zip(ts_ms.tolist(), click_id.tolist(), strict=True))
    assert pairs == sorted(pairs)
    assert np.array_equal(row, click_id >> 32)
