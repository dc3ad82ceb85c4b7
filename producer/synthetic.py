"""Synthetic clickstream months with the real dumps' shape, numpy/pyarrow-vectorised.

The shape (calibrated on the real samples in ``shared/data/wikipedia-clickstream``):

- ``n`` per row: ``10 + floor(10 * X)``, X Lomax(a=0.673) with its tail above 20 bent to
  ``20 * (X/20)**0.6`` and n capped at ``MAX_N``: no row below the release threshold of
  10; quartiles 15/28/78, p90 ~260, p99 ~2,000, p99.9 ~16,000, mean ~200 (the real
  samples: 15/27/73, 220, 2,000-2,500, 13,000, mean 157-177); a heavy tail.
- one head pair, ``other-empty -> Main_Page``, holding ``head_share`` of all clicks (the
  real 2024 sample: 98.6%; default here 0.6 so other articles still move in a demo).
- referrers: in the 2017+ layout 28.4% of rows come from ``other-*`` (type ``external``)
  in the 2024 mix (search 41.6%, empty 36.7%, internal 14.7%, external 5.1%, other 1.9%);
  article referrers are ``link`` (96.4%) or ``other`` (3.6%). In the 2015 layout 39.0%
  are ``other-*`` (type ``other``) in the 2015 mix (google, empty, wikipedia, bing, ...),
  article referrers are ``link`` (97.9%) or ``redlink`` (2.1%).
- destinations are Zipf-popular over a vocabulary of ``rows // 4`` titles; referring
  articles are drawn from the same vocabulary. About 2% of titles contain a literal
  ``"`` and 1% non-ASCII letters, like real titles.

Output is deterministic for ``(rows, seed, layout, head_share)``. Rows are generated in
chunks of ``CHUNK_ROWS``; the writer builds each chunk's text with pyarrow compute
kernels and writes the string buffer directly, so a 30M-row month takes seconds, not
minutes (see producer/README.md for the measured time).
"""

from __future__ import annotations

import gzip as gzip_module
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from producer.readers import HEADER_2015, DumpRow

CHUNK_ROWS = 1 << 20
MAX_N = 1_000_000
LOMAX_A = 0.673
TAIL_KNEE = 20.0
TAIL_BEND = 0.6
HEAD_PREV, HEAD_CURR = "other-empty", "Main_Page"

_PSEUDO_2017 = (("other-search", 0.416), ("other-empty", 0.367), ("other-internal", 0.147),
                ("other-external", 0.051), ("other-other", 0.019))
_PSEUDO_2015 = (("other-google", 0.248), ("other-empty", 0.233), ("other-wikipedia", 0.185),
                ("other-other", 0.115), ("other-bing", 0.095), ("other-yahoo", 0.084),
                ("other-twitter", 0.031), ("other-facebook", 0.008), ("other-internal", 0.001))
_SHAPE = {
    # layout: (pseudo share of rows, pseudo mix, pseudo type, article types and shares)
    "2017": (0.284, _PSEUDO_2017, "external", (("link", 0.964), ("other", 0.036))),
    "2015": (0.390, _PSEUDO_2015, "other", (("link", 0.979), ("redlink", 0.021))),
}


def _titles(idx: np.ndarray) -> pa.Array:
    """Deterministic article titles for vocabulary indices (a few with ``"`` or accents)."""
    num = pc.cast(pa.array(idx), pa.string())
    plain = pc.binary_join_element_wise("Article_", num, "")
    quoted = pc.binary_join_element_wise('Song_"', num, '"', "")
    accented = pc.binary_join_element_wise("Café_", num, "")
    kind = pa.array((idx + 50) % 100)
    out = pc.if_else(pc.less(kind, 2), quoted, plain)
    return pc.if_else(pc.equal(kind, 2), accented, out)


def _chunk(rng: np.random.Generator, size: int, vocab: int, layout: str) -> dict[str, np.ndarray | pa.Array]:
    pseudo_share, pseudo_mix, pseudo_type, article_types = _SHAPE[layout]
    x = rng.pareto(LOMAX_A, size)
    x = np.where(x > TAIL_KNEE, TAIL_KNEE * (x / TAIL_KNEE) ** TAIL_BEND, x)
    n = 10 + np.floor(10.0 * x).clip(max=MAX_N - 10).astype(np.int64)
    curr_idx = (rng.zipf(1.15, size) - 1) % vocab
    is_pseudo = rng.random(size) < pseudo_share
    names = [p for p, _ in pseudo_mix]
    probs = np.array([w for _, w in pseudo_mix])
    pseudo_pick = rng.choice(len(names), size=size, p=probs / probs.sum())
    prev_idx = rng.integers(0, vocab, size)
    prev_idx = np.where(prev_idx == curr_idx, (prev_idx + 1) % vocab, prev_idx)
    a_names = [t for t, _ in article_types]
    a_probs = np.array([w for _, w in article_types])
    article_pick = rng.choice(len(a_names), size=size, p=a_probs / a_probs.sum())
    pseudo_titles = pa.array(names).take(pa.array(pseudo_pick))
    prev = pc.if_else(pa.array(is_pseudo), pseudo_titles, _titles(prev_idx))
    link_type = pc.if_else(pa.array(is_pseudo), pa.scalar(pseudo_type),
                           pa.array(a_names).take(pa.array(article_pick)))
    return {"prev": prev, "curr": _titles(curr_idx), "type": link_type, "n": n}


def _chunks(rows: int, seed: int, layout: str,
            head_share: float) -> Iterator[dict[str, np.ndarray | pa.Array]]:
    """Chunks of columns; the head pair is the first row of the first chunk."""
    if layout not in _SHAPE:
        raise ValueError(f"layout {layout!r} is not one of {sorted(_SHAPE)}")
    if not 0.0 <= head_share < 1.0:
        raise ValueError(f"head_share {head_share} must be in [0, 1)")
    vocab = max(100, rows // 4)
    done = 0
    chunk_no = 0
    while done < rows:
        size = min(CHUNK_ROWS, rows - done)
        rng = np.random.default_rng([seed, chunk_no])
        cols = _chunk(rng, size, vocab, layout)
        if chunk_no == 0 and head_share > 0:
            n = np.asarray(cols["n"])
            others = int(n[1:].sum()) * max(1.0, (rows - 1) / max(1, size - 1))
            n[0] = max(10, round(others * head_share / (1.0 - head_share)))
            head_type = _SHAPE[layout][2]
            cols["prev"] = pa.concat_arrays([pa.array([HEAD_PREV]), cols["prev"][1:]])
            cols["curr"] = pa.concat_arrays([pa.array([HEAD_CURR]), cols["curr"][1:]])
            cols["type"] = pa.concat_arrays([pa.array([head_type]), cols["type"][1:]])
            cols["n"] = n
        yield cols
        done += size
        chunk_no += 1


def synthetic_clicks(rows: int, *, seed: int = 0, layout: str = "2017", head_share: float = 0.6) -> int:
    """The clicks (sum of n) of ``generate_rows`` with the same arguments, without building rows."""
    return sum(int(np.asarray(cols["n"]).sum()) for cols in _chunks(rows, seed, layout, head_share))


def generate_rows(rows: int, *, seed: int = 0, layout: str = "2017",
                  head_share: float = 0.6) -> Iterator[DumpRow]:
    """The synthetic rows in memory, chunk by chunk (same rows ``generate_dump`` writes)."""
    for cols in _chunks(rows, seed, layout, head_share):
        yield from map(DumpRow, cols["prev"].to_pylist(), cols["curr"].to_pylist(),  # type: ignore[union-attr]
                       cols["type"].to_pylist(), np.asarray(cols["n"]).tolist())  # type: ignore[union-attr]


def _lines(cols: dict[str, np.ndarray | pa.Array], layout: str) -> memoryview:
    n_text = pc.cast(pa.array(cols["n"]), pa.string())
    if layout == "2017":
        parts = [cols["prev"], cols["curr"], cols["type"], n_text]
    else:
        is_pseudo = pc.starts_with(cols["prev"], "other-")
        size = len(n_text)
        # Stable fake page ids: hash of the title, empty where upstream leaves it empty.
        prev_id = pc.if_else(is_pseudo, pa.scalar(""),
                             pc.cast(pa.array(np.arange(size) % 9_000_000 + 1_000), pa.string()))
        curr_id = pc.if_else(pc.equal(cols["type"], "redlink"), pa.scalar(""),
                             pc.cast(pa.array(np.arange(size) % 7_000_000 + 2_000), pa.string()))
        parts = [prev_id, curr_id, n_text, cols["prev"], cols["curr"], cols["type"]]
    body = pc.binary_join_element_wise(*parts, "\t")
    lines = pc.binary_join_element_wise(body, pa.scalar("\n"), "")
    if isinstance(lines, pa.ChunkedArray):
        lines = lines.combine_chunks()
    offsets = np.frombuffer(lines.buffers()[1], dtype=np.int32)
    start, end = int(offsets[lines.offset]), int(offsets[lines.offset + len(lines)])
    return memoryview(lines.buffers()[2])[start:end]


def generate_dump(path: str | Path, rows: int, *, seed: int = 0, layout: str = "2017",
                  gzip: bool = False, head_share: float = 0.6) -> Path:
    """Write a synthetic dump file (overwrites ``path``); returns the path.

    ``gzip=True`` writes gzip at compression level 1 (speed over size).
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    with (gzip_module.open(path, "wb", compresslevel=1) if gzip
          else open(path, "wb", buffering=1 << 22)) as out:
        if layout == "2015":
            out.write((HEADER_2015 + "\n").encode())
        for cols in _chunks(rows, seed, layout, head_share):
            out.write(_lines(cols, layout))
    return path
