"""What a benchmark reports, and the table the runner prints."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass


@dataclass(frozen=True)
class Measurement:
    suite: str
    name: str
    value: float
    unit: str
    baseline: str = ""
    baseline_value: float | None = None
    target: str = ""  # e.g. ">= 0.9x" or "< 500 MB"; free text, checked by `met`
    met: bool | None = None

    @property
    def ratio(self) -> float | None:
        if self.baseline_value in (None, 0):
            return None
        return self.value / self.baseline_value  # type: ignore[operator]


def format_table(rows: Sequence[Measurement]) -> str:
    header = ("suite", "measurement", "value", "unit", "baseline", "baseline value", "ratio",
              "target", "met")
    lines = [header]
    for m in rows:
        lines.append((
            m.suite, m.name, f"{m.value:,.1f}", m.unit, m.baseline or "-",
            "-" if m.baseline_value is None else f"{m.baseline_value:,.1f}",
            "-" if m.ratio is None else f"{m.ratio:.2f}x", m.target or "-",
            "-" if m.met is None else ("yes" if m.met else "NO"),
        ))
    widths = [max(len(str(row[i])) for row in lines) for i in range(len(header))]
    out = []
    for i, row in enumerate(lines):
        out.append(" | ".join(str(v).ljust(w) for v, w in zip(row, widths, strict=True)))
        if i == 0:
            out.append("-+-".join("-" * w for w in widths))
    return "\n".join(out)
