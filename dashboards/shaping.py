"""Pure shaping of store rows into plot columns, and the stream/patch plan of an update.

Nothing here does I/O; every function takes rows (dicts as ``Store.select`` returns
them) and returns plain column dicts that a ``ColumnDataSource`` can take.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from clickstream.referrers import REFERRER_CLASSES, classify

Columns = dict[str, list[Any]]


def clicks_series(rows_desc: Iterable[Mapping[str, Any]], window_ms: int) -> Columns:
    """``window_totals`` rows (newest first) -> ascending ``x`` (window start ms) and clicks/s."""
    rows = sorted(rows_desc, key=lambda r: r["window_start_ms"])
    return {
        "x": [int(r["window_start_ms"]) for r in rows],
        "clicks_per_s": [r["clicks"] * 1000.0 / window_ms for r in rows],
        "late_clicks": [int(r["late_clicks"]) for r in rows],
    }


def ranked_columns(rows: Iterable[Mapping[str, Any]], top_n: int, value: str = "clicks",
                   label: str = "key", extra: Sequence[str] = ()) -> Columns:
    """Ranked rows -> exactly ``top_n`` rows in rank order (padding with empty rows).

    The fixed length lets a re-ranked window be applied as one ``patch``; ``slot`` is the
    plot's categorical y (``"1"`` is the top) and ``label`` the text drawn on the bar.
    """
    ordered = sorted(rows, key=lambda r: r["rank"])[:top_n]
    out: Columns = {"slot": [str(i + 1) for i in range(top_n)], "label": [], "value": []}
    for name in extra:
        out[name] = []
    for i in range(top_n):
        row = ordered[i] if i < len(ordered) else None
        out["label"].append(str(row[label]) if row else "")
        out["value"].append(float(row[value]) if row else 0.0)
        for name in extra:
            out[name].append(row[name] if row else None)
    return out


def referrer_columns(windows: Mapping[int, Mapping[str, int]]) -> Columns:
    """{window start ms: {referrer class: clicks}} -> ascending ``x`` and one column per class."""
    starts = sorted(windows)
    out: Columns = {"x": starts}
    for cls in REFERRER_CLASSES:
        out[cls] = [int(windows[s].get(cls, 0)) for s in starts]
    return out


def health_columns(rows_desc: Iterable[Mapping[str, Any]]) -> Columns:
    """``pipeline_metrics`` rows (newest first) -> ascending series for the health plot."""
    rows = sorted(rows_desc, key=lambda r: r["ts_ms"])
    return {
        "x": [int(r["ts_ms"]) for r in rows],
        "lag_ms": [int(r["lag_ms"]) for r in rows],
        "latency_ms": [int(r["latency_ms"]) for r in rows],
    }


HEALTH_FIELDS = ("clicks_per_s", "lag_ms", "latency_ms", "late_clicks", "dead_letters",
                 "watermark_ms", "clicks_in")


def health_table(latest: Mapping[str, Any] | None) -> Columns:
    """The newest ``pipeline_metrics`` row as a two-column table (fixed rows, patchable)."""
    values = []
    for name in HEALTH_FIELDS:
        v = latest.get(name) if latest else None
        values.append("" if v is None else (f"{v:.1f}" if isinstance(v, float) else str(v)))
    return {"metric": list(HEALTH_FIELDS), "value": values}


def table_columns(rows: Iterable[Mapping[str, Any]], names: Sequence[str]) -> Columns:
    rows = list(rows)
    return {n: [r[n] for r in rows] for n in names}


def referrer_shares(source_rows: Iterable[Mapping[str, Any]]) -> Columns:
    """An article's top incoming sources -> clicks and share per referrer class.

    Shares are of the listed sources' clicks (the top-N), in ``REFERRER_CLASSES`` order,
    classes without clicks left out.
    """
    by_class: dict[str, int] = {}
    for r in source_rows:
        cls = classify(str(r["source"]))
        by_class[cls] = by_class.get(cls, 0) + int(r["clicks"])
    total = sum(by_class.values())
    classes = [c for c in REFERRER_CLASSES if by_class.get(c)]
    return {
        "link_type": classes,
        "clicks": [by_class[c] for c in classes],
        "share": [by_class[c] / total for c in classes],
    }


@dataclass
class Update:
    """How to bring a shown source up to date: replace, or patch then stream."""

    reset: Columns | None = None
    patches: dict[str, list[tuple[int, Any]]] = field(default_factory=dict)
    stream: Columns | None = None

    @property
    def empty(self) -> bool:
        return self.reset is None and not self.patches and self.stream is None


def plan_update(shown: Mapping[str, Sequence[Any]], new: Mapping[str, Sequence[Any]],
                x: str = "x") -> Update:
    """Diff two ascending-by-``x`` column sets into patches of changed rows and new rows.

    Rows newer than the last shown ``x`` are streamed, rows shown and changed are patched
    (their index in ``shown``); rows that fell off the front are left for ``rollover``. A
    store that went back in time (a new replay) or a change of columns resets.
    """
    shown_x = list(shown.get(x, ()))
    new_x = list(new.get(x, ()))
    if set(shown) != set(new) or not shown_x:
        return Update(reset=None if not shown_x and not new_x else {k: list(v) for k, v in new.items()})
    if not new_x or new_x[-1] < shown_x[-1]:
        return Update(reset={k: list(v) for k, v in new.items()})
    index = {v: i for i, v in enumerate(shown_x)}
    last = shown_x[-1]
    update = Update()
    first_new = len(new_x)
    for j, xv in enumerate(new_x):
        if xv > last:
            first_new = j
            break
        i = index.get(xv)
        if i is None:
            continue
        for col, values in new.items():
            if col != x and shown[col][i] != values[j]:
                update.patches.setdefault(col, []).append((i, values[j]))
    if first_new < len(new_x):
        update.stream = {k: list(v[first_new:]) for k, v in new.items()}
    return update


def plan_fixed(shown: Mapping[str, Sequence[Any]], new: Mapping[str, Sequence[Any]]) -> Update:
    """Diff two same-length column sets (ranked lists, tables) into per-cell patches."""
    if set(shown) != set(new) or any(len(shown[k]) != len(new[k]) for k in new):
        return Update(reset={k: list(v) for k, v in new.items()})
    update = Update()
    for col, values in new.items():
        for i, v in enumerate(values):
            if shown[col][i] != v:
                update.patches.setdefault(col, []).append((i, v))
    return update
