"""``python -m benchmarks.decode_batches [CLICKS] [RUNS]``: decode speed alone, no servers.

Batch records of (up to) 100 clicks, built by the producer from the benchmarks' synthetic
clicks (``benchmarks.common.fill_topic``'s rows and seed) as one chunk in one batch cell,
so a destination's clicks fill records of 100 but its last one; decoded by
``pipeline.operators.decode.decode_values`` a pipeline task at a time
(``RECORDS_PER_CALL`` records), in both wire forms: the columns (``{"curr", "ids", ...}``,
what the producer writes) and the older rows (``{"clicks": [[...]]}``, the same clicks).
Prints clicks/s per run and form.
"""

from __future__ import annotations

import os
import sys
import time

import numpy as np
import orjson

from clickstream.events import decode_record
from pipeline.operators.decode import decode_values
from producer.encoding import build_records
from producer.expand import ClickChunk, expand_clicks
from producer.synthetic import generate_rows

CLICKS_PER_RECORD = 100
RECORDS_PER_CALL = 5_000  # about one partition's share of a 2M-click topic in one cycle


def batch_values(n_clicks: int) -> tuple[list[bytes], list[bytes]]:
    """The same clicks as column records and as row records."""
    clicks = expand_clicks(generate_rows(12_000, seed=7, head_share=0.1), seed=7, span_s=600,
                           jitter_ms=200, limit=n_clicks)
    chunks = list(clicks.chunks())
    first_row = np.cumsum([0] + [len(c.curr) for c in chunks[:-1]])
    titles = ([t for c in chunks for t in getattr(c, field)] for field in ("prev", "curr", "link_type"))
    one = ClickChunk(np.concatenate([c.click_id for c in chunks]), np.concatenate([c.ts_ms for c in chunks]),
                     np.concatenate([c.row + r for c, r in zip(chunks, first_row, strict=True)]), *titles)
    columns = build_records(one, CLICKS_PER_RECORD, 3_600_000).values
    rows = [orjson.dumps({"clicks": [list(c) for c in decode_record(v)]}) for v in columns]
    return columns, rows


def clicks_per_s(values: list[bytes]) -> float:
    start = time.perf_counter()
    n = 0
    for i in range(0, len(values), RECORDS_PER_CALL):
        decoded = decode_values(values[i:i + RECORDS_PER_CALL])
        assert not decoded.dead
        n += decoded.clicks.num_rows
    return n / (time.perf_counter() - start)


def main(argv: list[str]) -> int:
    n_clicks = int(argv[0]) if argv else 2_000_000
    runs = int(argv[1]) if len(argv) > 1 else 3
    columns, rows = batch_values(n_clicks)
    print(f"{n_clicks:,} clicks in {len(columns):,} records ({n_clicks / len(columns):.1f} clicks each), "
          f"{RECORDS_PER_CALL:,} records per decode_values call; load {os.getloadavg()}")
    for run in range(1, runs + 1):
        for form, values in (("rows (older)", rows), ("columns", columns)):
            rate = clicks_per_s(values)
            print(f"run {run}  {form:<12}  {rate:>11,.0f} clicks/s load {os.getloadavg()[0]:.2f}", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
