"""The replay plan shared by ``clickstream produce`` and the demo.

A plan says which rows (a dump, or a synthetic month), which month their clicks fall in,
the event-time span, the spike and how many clicks; ``plan_replay`` turns it into the
clicks (lazily, ``producer.expand``) and what they are (``Replay``). Nothing is sent here.

- ``plan_replay(request)``: the request as given (``clickstream produce``), one pass over
  the rows; with ``count_first`` a first pass counts the input's clicks, so ``planned``
  (the progress bar's total) is known: a dump is read once more (``on_scan`` hears how
  far), a synthetic month's counts are drawn without building its rows.
- ``plan_paced_replay(request, pace)``: the demo's sizing on top: a click count from
  ``pace`` (clicks, or duration x rate, or ``DEFAULT_CLICKS``), a synthetic month sized to
  it, an event span of ``EVENT_SPEEDUP`` event seconds per wall second at the rate (so
  10 s windows move every second) and, unless a spike is given or ``pace.auto_spike`` is
  off, a spike on ``SPIKE_TITLES`` titles a third into the span. It counts a dump's
  clicks in a first pass (``on_scan`` hears how far).
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path

from clickstream.events import Click
from clickstream.windows import DEFAULT_MONTH, SECOND_MS
from producer.expand import Spike, expand_clicks, month_bounds, month_from_filename
from producer.readers import DumpRow, ReadReport, read_dump
from producer.synthetic import generate_rows, synthetic_clicks

DEFAULT_RATE_PER_S = 20_000.0
DEFAULT_CLICKS = 1_500_000
EVENT_SPEEDUP = 10.0  # event seconds per wall second at the nominal rate: 10 s windows move
CLICKS_PER_ROW = 100  # sizing only: about 4x the rows needed, so the graph is not tiny
SPIKE_TITLES = 3
SCAN_REPORT_ROWS = 100_000  # ``on_scan`` is called after every this many rows of a first pass

ScanProgress = Callable[[int, int, bool], None]  # (rows read, their clicks, finished) so far


class ReplayError(ValueError):
    """The plan cannot be made; the message names the flag or file at fault."""


@dataclass(frozen=True)
class ReplayRequest:
    """What to replay. Input: ``dump`` or ``synthetic_rows`` (the paced plan sizes a synthetic
    month itself when neither is given). ``month`` None: from the dump's name, else
    ``DEFAULT_MONTH``."""

    dump: Path | None = None
    layout: str = "auto"
    strict: bool = False
    synthetic_rows: int | None = None
    synthetic_layout: str = "2017"
    head_share: float = 0.6
    seed: int = 0
    month: str | None = None
    jitter_ms: int = 0
    fraction: float = 1.0
    limit: int | None = None  # the earliest clicks only
    span_s: float | None = None  # event-time span (default: the whole month)
    spike: Spike | None = None


@dataclass(frozen=True)
class Pace:
    """The demo's sizing: how many clicks at what rate (``None``: its defaults)."""

    clicks: int | None = None
    duration_s: float | None = None
    rate_per_s: float = DEFAULT_RATE_PER_S  # 0: as fast as possible
    auto_spike: bool = True  # a default spike when the request has none

    def wanted_clicks(self, request: ReplayRequest) -> int | None:
        """Clicks to replay: ``clicks``, else duration x rate, else ``DEFAULT_CLICKS`` for a
        synthetic month (the in-process topic keeps every record in memory), else all."""
        if self.clicks is not None:
            return self.clicks
        if self.duration_s is not None and self.rate_per_s:
            return math.ceil(self.duration_s * self.rate_per_s)
        if request.dump is None and request.synthetic_rows is None:
            return DEFAULT_CLICKS
        return None


@dataclass(frozen=True)
class Replay:
    """The clicks to send (lazy) and what is known about them before sending."""

    clicks: Iterator[Click]
    month: str
    source: str  # "dump FILE" or "synthetic month of N rows"
    report: ReadReport  # the dump's rows and malformed lines, filled while ``clicks`` is read
    planned: int | None  # clicks ``clicks`` yields unless stopped, when known in advance
    start_ms: int  # event time of the span's start
    span_ms: int  # event time the planned clicks cover
    spike_titles: tuple[str, ...]
    spike: Spike | None = None  # the spike added, if any (its titles may be picked while expanding)


def plan_replay(request: ReplayRequest, spool_dir: Path | None = None, *, count_first: bool = False,
                on_scan: ScanProgress | None = None) -> Replay:
    """The clicks of ``request`` as given: one pass over the rows (two with ``count_first``,
    which fills ``planned`` unless ``fraction`` < 1 makes the count a guess)."""
    if (request.dump is None) == (request.synthetic_rows is None):
        raise ReplayError("give exactly one of --dump FILE or --synthetic-rows N")
    report = ReadReport()
    planned = request.limit
    if count_first and request.fraction >= 1.0:
        if request.dump is not None:
            _check_dump(request.dump)
            total = count_dump_clicks(request.dump, request.layout, on_scan)
        else:
            assert request.synthetic_rows is not None
            total = synthetic_clicks(request.synthetic_rows, seed=request.seed,
                                     layout=request.synthetic_layout, head_share=request.head_share)
        total += _spike_clicks(request.spike)
        planned = total if request.limit is None else min(total, request.limit)
    if request.dump is not None:
        _check_dump(request.dump)
        rows: Iterable[DumpRow] = read_dump(request.dump, layout=request.layout, strict=request.strict,
                                            report=report)
        source = f"dump {request.dump}"
    else:
        assert request.synthetic_rows is not None
        rows = generate_rows(request.synthetic_rows, seed=request.seed, layout=request.synthetic_layout,
                             head_share=request.head_share)
        source = f"synthetic month of {request.synthetic_rows:,} rows"
    return _expand(request, rows, source, report, planned, spool_dir)


def count_dump_clicks(dump: Path, layout: str = "auto", on_scan: ScanProgress | None = None) -> int:
    """The clicks (sum of n) of a dump's well-formed rows: one pass over the file; ``on_scan``
    hears (rows, clicks, False) every ``SCAN_REPORT_ROWS`` rows, then (rows, clicks, True)."""
    rows = clicks = 0
    for row in read_dump(dump, layout=layout):
        rows += 1
        clicks += row.n
        if on_scan is not None and rows % SCAN_REPORT_ROWS == 0:
            on_scan(rows, clicks, False)
    if on_scan is not None:
        on_scan(rows, clicks, True)
    return clicks


def plan_paced_replay(request: ReplayRequest, pace: Pace, spool_dir: Path | None = None,
                      on_scan: ScanProgress | None = None) -> Replay:
    """The clicks of ``request`` sized by ``pace`` (see the module docstring); counts the
    dump's clicks first (a second pass over the file, reported to ``on_scan``)."""
    wanted = pace.wanted_clicks(request)
    make_rows, rows_total, source = _counted_rows(request, wanted, on_scan)
    if rows_total == 0:
        raise ReplayError(f"{source}: no clicks to replay")
    planned_base = rows_total if wanted is None else min(wanted, rows_total)
    if request.span_s is not None:
        span_played_s = request.span_s
    else:
        nominal_rate = pace.rate_per_s or DEFAULT_RATE_PER_S
        span_played_s = max(10.0, planned_base / nominal_rate * EVENT_SPEEDUP)
    # ``limit`` keeps the earliest clicks: spread the whole input over a span whose first
    # ``span_played_s`` seconds hold the clicks played.
    full_span_s = max(span_played_s * rows_total / planned_base, 1.0)
    spike = request.spike
    if spike is None and pace.auto_spike:
        spike = Spike(at_s=span_played_s / 3, duration_s=max(2.0, span_played_s / 15),
                      clicks=max(300, planned_base // 200), count=SPIKE_TITLES)
    total = rows_total + _spike_clicks(spike)
    planned = total if wanted is None else min(wanted, total)
    paced = dataclasses.replace(request, limit=wanted, span_s=full_span_s, spike=spike)
    replay = _expand(paced, make_rows(), source, ReadReport(), planned, spool_dir)
    played_span_ms = math.ceil(full_span_s * SECOND_MS * min(1.0, planned / max(total, 1)))
    return dataclasses.replace(replay, span_ms=played_span_ms)


def _spike_clicks(spike: Spike | None) -> int:
    return 0 if spike is None else spike.clicks * (len(spike.titles) or spike.count)


def _check_dump(dump: Path) -> None:
    if not dump.is_file():
        raise ReplayError(f"--dump {dump}: no such file")


def _counted_rows(request: ReplayRequest, wanted: int | None, on_scan: ScanProgress | None = None
                  ) -> tuple[Callable[[], Iterable[DumpRow]], int, str]:
    """(a fresh iterable of the rows on each call, their clicks, what they are). A synthetic
    month without ``synthetic_rows`` doubles its rows until it holds ``wanted`` clicks."""
    if request.dump is not None:
        dump = request.dump
        _check_dump(dump)
        rows_total = count_dump_clicks(dump, request.layout, on_scan)
        return (lambda: read_dump(dump, layout=request.layout)), rows_total, f"dump {dump}"
    target = wanted or DEFAULT_CLICKS
    n_rows = request.synthetic_rows or max(200, math.ceil(1.5 * target / CLICKS_PER_ROW))
    while True:
        rows = list(generate_rows(n_rows, seed=request.seed, layout=request.synthetic_layout,
                                  head_share=request.head_share))
        rows_total = sum(r.n for r in rows)
        if rows_total >= target or request.synthetic_rows:
            break
        n_rows *= 2
    return (lambda: rows), rows_total, f"synthetic month of {len(rows):,} rows"


def _expand(request: ReplayRequest, rows: Iterable[DumpRow], source: str, report: ReadReport,
            planned: int | None, spool_dir: Path | None) -> Replay:
    month = request.month or (month_from_filename(request.dump) if request.dump else None) or DEFAULT_MONTH
    start_ms, month_ms = month_bounds(month)
    clicks = expand_clicks(rows, month=month, seed=request.seed, jitter_ms=request.jitter_ms,
                           fraction=request.fraction, limit=request.limit, span_s=request.span_s,
                           spike=request.spike, spool_dir=spool_dir)
    span_ms = month_ms if request.span_s is None else round(request.span_s * SECOND_MS)
    spike_titles = request.spike.titles if request.spike else ()
    return Replay(clicks, month, source, report, planned, start_ms, span_ms, spike_titles, request.spike)
