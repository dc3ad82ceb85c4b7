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
with ``strict=True`` it raises ``DumpFormatError`` naming ``file:line``. Malformed: a
wrong number of fields, bytes that are not UTF-8, an empty title, a title holding a
control character (U+0000-U+001F, U+007F-U+009F: NUL included; no real title has one),
an unknown type, or a count ``n`` that is not plain ASCII digits (``1_000``, `` +12 ``,
``-3`` and non-ASCII digits are rejected) or is above ``MAX_N``. A dump that cannot be
read further (a corrupt or truncated gzip stream) raises ``DumpFormatError`` naming
``file:line`` where it broke, whatever ``strict`` says.
"""

from __future__ import annotations

import csv
import gzip
import io
import logging
import re
import zlib
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, NamedTuple

from clickstream.events import LINK_TYPES

log = logging.getLogger(__name__)

LAYOUTS = ("auto", "2015", "2017", "csv")
HEADER_2015 = "prev_id\tcurr_id\tn\tprev_title\tcurr_title\ttype"
_GZIP_MAGIC = b"\x1f\x8b"
# A row's clicks are numbered k = 0..n-1 in 32 bits (click_id = row << 32 | k).
MAX_N = (1 << 32) - 1
_CONTROL = re.compile("[\x00-\x1f\x7f-\x9f]")


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
    for name, title in (("prev", prev), ("curr", curr)):
        if not title:
            return None, f"empty {name} title"
        bad = _CONTROL.search(title)
        if bad:
            return None, (f"{name} title has control character U+{ord(bad.group()):04X} "
                          f"at character {bad.start() + 1}")
    if link_type not in LINK_TYPES:
        return None, f"type {link_type!r} is not one of {sorted(LINK_TYPES)}"
    if not (n_text.isascii() and n_text.isdigit()):
        return None, f"n {n_text[:40]!r} is not a count (ASCII digits only)"
    if len(n_text) > 10 or int(n_text) > MAX_N:
        return None, f"n {n_text[:40]} is above {MAX_N:,} (clicks of a row are numbered in 32 bits)"
    return DumpRow(prev, curr, link_type, int(n_text)), ""


def _is_id(text: str) -> bool:
    """A 2015 page id: empty, or ASCII digits."""
    return not text or (text.isascii() and text.isdigit())


def read_dump(path: str | Path, layout: str = "auto", strict: bool = False,
              report: ReadReport | None = None) -> Iterator[DumpRow]:
    """Yield the dump's rows in file order (see the module docstring for the contract)."""
    if layout not in LAYOUTS:
        raise ValueError(f"layout {layout!r} is not one of {', '.join(LAYOUTS)}")
    report = report if report is not None else ReadReport()
    name = str(path)
    with open_dump(path) as raw:
        try:
            first = raw.readline()
        except _UNREADABLE as exc:
            raise _unreadable(name, 1, exc) from None
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


# What a corrupt or truncated gzip stream raises while it is read.
_UNREADABLE = (EOFError, OSError, zlib.error)


def _unreadable(name: str, lineno: int, exc: BaseException) -> DumpFormatError:
    return DumpFormatError(f"{name}:{lineno}: the dump cannot be read further "
                           f"(corrupt or truncated compressed stream: {exc})")


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
        it = iter(raw)
        while True:
            try:
                yield next(it)
            except StopIteration:
                return
            except _UNREADABLE as exc:
                raise _unreadable(name, lineno + 1, exc) from None

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
            if not (_is_id(prev_id) and _is_id(curr_id)):
                _bad(report, name, lineno, "prev_id/curr_id must be empty or ASCII digits", strict)
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
    try:
        header = next(csv.reader([first_text.lstrip("\ufeff")]), [])
    except csv.Error as exc:  # e.g. a stray CR inside the first line
        raise DumpFormatError(f"{name}:1: unreadable CSV header: {exc}") from None
    cols = [c.strip() for c in header]
    try:
        i_prev, i_curr, i_type, i_n = (cols.index(c) for c in ("prev", "curr", "type", "n"))
    except ValueError:
        raise DumpFormatError(f"{name}:1: CSV header must name prev, curr, type, n; got {cols}") from None
    # surrogateescape: a bad byte becomes a lone surrogate the row check rejects, so the
    # decoder never fails mid-stream (a strict one cannot resume after an error).
    text = io.TextIOWrapper(raw, encoding="utf-8", errors="surrogateescape", newline="")
    reader = csv.reader(text)
    want = len(cols)
    while True:
        try:
            parts = next(reader)
        except StopIteration:
            return
        except csv.Error as exc:
            _bad(report, name, reader.line_num + 1, f"unreadable CSV: {exc}", strict)
            continue
        except _UNREADABLE as exc:
            raise _unreadable(name, reader.line_num + 2, exc) from None
        lineno = reader.line_num + 1  # the header was line 1
        try:
            "".join(parts).encode("utf-8")
        except UnicodeEncodeError as exc:
            _bad(report, name, lineno, f"not UTF-8 (byte 0x{ord(exc.object[exc.start]) - 0xDC00:02x})",
                 strict)
            continue
        if len(parts) != want:
            _bad(report, name, lineno, f"expected {want} CSV fields, got {len(parts)}", strict)
            continue
        row, reason = _check(parts[i_prev], parts[i_curr], parts[i_type], parts[i_n])
        if row is None:
            _bad(report, name, lineno, reason, strict)
            continue
        report.rows += 1
        yield row
