"""Synthetic dumps: the real shape, both layouts, readable by the readers, deterministic."""

from __future__ import annotations

from collections import Counter
from pathlib import Path

import numpy as np
import pytest

from clickstream.referrers import classify
from producer.readers import ReadReport, read_dump
from producer.synthetic import generate_dump, generate_rows


def test_generate_rows_is_deterministic_per_seed() -> None:
    assert list(generate_rows(500, seed=4)) == list(generate_rows(500, seed=4))
    assert list(generate_rows(500, seed=4)) != list(generate_rows(500, seed=5))


def test_shape_like_the_real_samples() -> None:
    rows = list(generate_rows(40_000, seed=1, head_share=0.6))
    n = np.array([r.n for r in rows])
    assert n.min() >= 10
    assert (rows[0].prev, rows[0].curr) == ("other-empty", "Main_Page")
    assert n[0] / n.sum() == pytest.approx(0.6, abs=0.05)
    q25, q50, q75 = np.percentile(n[1:], [25, 50, 75])
    assert 13 <= q25 <= 17 and 24 <= q50 <= 32 and 65 <= q75 <= 90
    types = Counter(r.link_type for r in rows)
    assert types["external"] / len(rows) == pytest.approx(0.284, abs=0.015)
    assert types["other"] / len(rows) == pytest.approx(0.026, abs=0.01)
    # referrer mix of the 2024 sample among other-* rows
    classes = Counter(classify(r.prev) for r in rows if r.prev.startswith("other-"))
    pseudo = sum(classes.values())
    assert classes["search"] / pseudo == pytest.approx(0.416, abs=0.02)
    assert classes["direct"] / pseudo == pytest.approx(0.367, abs=0.02)
    assert classes["internal"] / pseudo == pytest.approx(0.147, abs=0.02)
    # every other-* row is type external, every article row link/other (as upstream)
    assert all((r.link_type == "external") == r.prev.startswith("other-") for r in rows)
    assert any('"' in r.curr for r in rows)


@pytest.mark.parametrize(("layout", "gz"), [("2017", False), ("2017", True), ("2015", False), ("2015", True)])
def test_written_dump_reads_back(tmp_path: Path, layout: str, gz: bool) -> None:
    path = generate_dump(tmp_path / ("d.tsv.gz" if gz else "d.tsv"), 3_000, seed=2, layout=layout, gzip=gz)
    report = ReadReport()
    rows = list(read_dump(path, report=report))
    assert report.layout == layout and report.malformed == 0
    assert rows == list(generate_rows(3_000, seed=2, layout=layout))
    if layout == "2015":
        shares = Counter(r.link_type for r in rows)
        assert set(shares) == {"link", "other", "redlink"}
        assert shares["other"] / len(rows) == pytest.approx(0.39, abs=0.03)
