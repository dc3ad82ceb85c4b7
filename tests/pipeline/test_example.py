"""examples/custom_aggregate.py runs as documented and its aggregate lands in the store, exact."""

from __future__ import annotations

import subprocess
import sys
from collections import Counter
from pathlib import Path

from clickstream.store.embedded import EmbeddedStore
from producer.expand import expand_clicks
from producer.synthetic import generate_rows

REPO = Path(__file__).resolve().parents[2]


def test_custom_aggregate_example_runs_and_counts_exactly(tmp_path: Path) -> None:
    work = tmp_path / "work"
    done = subprocess.run([sys.executable, str(REPO / "examples" / "custom_aggregate.py"),
                           "--work-dir", str(work), "--clicks", "20000"],
                          cwd=REPO, capture_output=True, text=True, timeout=300,
                          env={"PATH": "/usr/bin:/bin", "PYTHONPATH": str(REPO)})
    assert done.returncode == 0, done.stderr[-2000:]
    assert "20000 clicks, 0 late, 0 dead letters" in done.stdout
    clicks = list(expand_clicks(generate_rows(2_000, seed=1, head_share=0.1), seed=1, span_s=120,
                                limit=20_000))
    want = Counter((c.ts_ms - c.ts_ms % 60_000, c.curr[0].upper()) for c in clicks)
    store = EmbeddedStore(work / "store.sqlite")
    got: Counter[tuple[int, str]] = Counter()
    for start in {s for s, _ in want}:
        for row in store.select("window_counts", {"pipeline": "clickstream-pipeline/clicks",
                                                  "metric": "first_letter", "window_ms": 60_000,
                                                  "window_start_ms": start}):
            got[(start, row["key"])] = row["clicks"]
    store.close()
    assert got == want
