"""Streaming readers of Wikipedia clickstream dumps (both layouts, plain or gzip).

Layouts (``layout=``):

- ``"2015"``: header ``prev_id curr_id n prev_title curr_title type``, tab-separated;
  ``prev_id`` is empty for ``other-*`` referrers and ``curr_id`` for redlinks.
- ``"2017"``: ``prev curr type n``, tab-separated, no header (every release since 2017).
- ``"csv"``: the third-party CSV derivative (``,prev,curr,type,n`` with an index column,
  RFC 4180 quoting); an adapter for that one file shape, not an upstream format.
- ``"auto"``: decided from the first line (the 2015 header, the CSV header, else 2017).

Contract: rows are yielded one at a time while the file is read line by line (memory
is bounded by one line, never the whole file); gzip is detected by its magic bytes.
Tab-separated titles are taken verbatim: no quote processing (titles contain ``"``).
A malformed line is counted in ``report`` with (file, line number, reason) and skipped;
with ``strict=True`` it raises ``DumpFormatError`` naming ``file:line``.
"""

from __future__ import annotations

import csv
import gzip
import io
import logging
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, NamedTuple

from clickstream.events import LINK_TYPES

log = logging.getLogger(__name__)

LAYOUTS = ("auto", "2015", "2017", "csv")
HEADER_2015 = "prev_id\tcurr_id\tn\tprev_title\tcurr_title\ttype"
_GZIP_MAGIC = b"\x1f\x8b"


class DumpRow(NamedTuple):
    prev: str
    curr: str
    link_type: str
    n: int


class DumpFormatError(ValueError):
    """A malformed dump line in strict mode (or an unreadable dump); names file:line."""


@dataclass
class ReadReport:
    """What a read saw: good rows, malformed lines, and the first few (file, line, reason)."""

    rows: int = 0
    malformed: int = 0
    layout: str = ""
    samples: list[tuple[str, int, str]] = field(default_factory=list)
    max_samples: int = 20

    def bad(self, path: str, line: int, reason: str) -> None:
        self.malformed += 1
        if len(self.samples) < self.max_samples:
            self.samples.append((path, line, reason))
            log.warning("%s:%d: malformed line skipped: %s", path, line, reason)


def open_dump(path: str | Path) -> IO[bytes]:
    """The dump as a binary stream, decompressed if it is gzip (by magic bytes)."""
    path = Path(path)
    with open(path, "rb") as probe:
        magic = probe.read(2)
    if magic == _GZIP_MAGIC:
        return gzip.open(path, "rb")  # type: ignore[return-value]
    return open(path, "rb", buffering=1 << 20)


def detect_layout(first_line: str) -> str:
    """The layout a dump's first line implies (see the module docstring)."""
    line = first_line.rstrip("\r\n")
    if line == HEADER_2015 or line.startswith("prev_id\tcurr_id\t"):
        return "2015"
    stripped = line.lstrip("\ufeff")
    if stripped in (",prev,curr,type,n", "prev,curr,type,n") or stripped.startswith(",prev,curr,"):
        return "csv"
    return "2017"


def _check(prev: str, curr: str, link_type: str, n_text: str) -> tuple[DumpRow | None, str]:
    if not prev:
        return None, "empty prev title"
    if not curr:
        return None, "empty curr title"
    if link_type not in LINK_TYPES:
        return None, f"type {link_type!r} is not one of {sorted(LINK_TYPES)}"
    try:
        n = int(n_text)
    except ValueError:
        return None, f"n {n_text!r} is not an integer"
    if n < 0:
        return None, f"n {n} is negative"
    return DumpRow(prev, curr, link_type, n), ""


def read_dump(path: str | Path, layout: str = "auto", strict: bool = False,
              report: ReadReport | None = None) -> Iterator[DumpRow]:
    """Yield the dump's rows in file order (see the module docstring for the contract)."""
    if layout not in LAYOUTS:
        raise ValueError(f"layout {layout!r} is not one of {', '.join(LAYOUTS)}")
    report = report if report is not None else ReadReport()
    name = str(path)
    with open_dump(path) as raw:
        first = raw.readline()
        try:
            first_text = first.decode("utf-8")
        except UnicodeDecodeError:
            first_text = ""
        if layout == "auto":
            layout = detect_layout(first_text)
        report.layout = layout
        if layout == "csv":
            yield from _read_csv(raw, first_text, name, strict, report)
            return
        yield from _read_tsv(raw, first, layout, name, strict, report)


def _bad(report: ReadReport, name: str, lineno: int, reason: str, strict: bool) -> None:
    if strict:
        raise DumpFormatError(f"{name}:{lineno}: {reason}")
    report.bad(name, lineno, reason)


def _read_tsv(raw: IO[bytes], first: bytes, layout: str, name: str, strict: bool,
              report: ReadReport) -> Iterator[DumpRow]:
    is_2015 = layout == "2015"
    want = 6 if is_2015 else 4
    lineno = 0

    def lines() -> Iterator[bytes]:
        if first:
            yield first
        yield from raw

    for line in lines():
        lineno += 1
        if lineno == 1 and is_2015 and line.startswith(b"prev_id\t"):
            continue
        line = line.rstrip(b"\n")
        if line.endswith(b"\r"):
            line = line[:-1]
        if not line:
            _bad(report, name, lineno, "empty line", strict)
            continue
        try:
            text = line.decode("utf-8")
        except UnicodeDecodeError as exc:
            _bad(report, name, lineno, f"not UTF-8 ({exc.reason} at byte {exc.start})", strict)
            continue
        parts = text.split("\t")
        if len(parts) != want:
            _bad(report, name, lineno,
                 f"expected {want} tab-separated fields ({layout} layout), got {len(parts)}", strict)
            continue
        if is_2015:
            prev_id, curr_id, n_text, prev, curr, link_type = parts
            if (prev_id and not prev_id.isdigit()) or (curr_id and not curr_id.isdigit()):
                _bad(report, name, lineno, "prev_id/curr_id must be empty or an integer", strict)
                continue
        else:
            prev, curr, link_type, n_text = parts
        row, reason = _check(prev, curr, link_type, n_text)
        if row is None:
            _bad(report, name, lineno, reason, strict)
            continue
        report.rows += 1
        yield row


def _read_csv(raw: IO[bytes], first_text: str, name: str, strict: bool,
              report: ReadReport) -> Iterator[DumpRow]:
    """The CSV derivative: header ``[,]prev,curr,type,n``; titles as the CSV module unquotes them."""
    header = next(csv.reader([first_text.lstrip("\ufeff")]), [])
    cols = [c.strip() for c in header]
    try:
        i_prev, i_curr, i_type, i_n = (cols.index(c) for c in ("prev", "curr", "type", "n"))
    except ValueError:
        raise DumpFormatError(f"{name}:1: CSV header must name prev, curr, type, n; got {cols}") from None
    text = io.TextIOWrapper(raw, encoding="utf-8", errors="strict", newline="")
    reader = csv.reader(text)
    want = len(cols)
    while True:
        try:
            parts = next(reader)
        except StopIteration:
            return
        except (csv.Error, UnicodeDecodeError) as exc:
            _bad(report, name, reader.line_num + 1, f"unreadable CSV: {exc}", strict)
            continue
        lineno = reader.line_num + 1  # the header was line 1
        if len(parts) != want:
            _bad(report, name, lineno, f"expected {want} CSV fields, got {len(parts)}", strict)
            continue
        row, reason = _check(parts[i_prev], parts[i_curr], parts[i_type], parts[i_n])
        if row is None:
            _bad(report, name, lineno, reason, strict)
            continue
        report.rows += 1
        yield row
