"""Hypothesis fuzz of the dump reader, the expansion and the record builder (#17 item 4).

Properties: arbitrary bytes never crash the reader (each line is a row or a malformed
report naming file:line; an unreadable compressed stream is a ``DumpFormatError`` naming
the file); good rows round-trip exactly in every layout; titles with control characters
are reported, never shifted; expansion and record building keep every title and click.
"""

from __future__ import annotations

import csv
import gzip
import io
import tempfile
from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st

from clickstream.events import LINK_TYPES, Click, decode_record, encode_batch, encode_click
from producer.encoding import build_records, chunks_of, murmur2_partitions
from producer.expand import expand_clicks
from producer.readers import MAX_N, DumpFormatError, DumpRow, ReadReport, read_dump

FUZZ = settings(max_examples=100, deadline=None, suppress_health_check=[HealthCheck.too_slow])
TYPES = sorted(LINK_TYPES)
# Anything a title may hold: no control characters (C0, DEL, C1) and no lone surrogates.
TITLE_CHARS = st.characters(exclude_categories=("Cc", "Cs"))
titles = st.text(TITLE_CHARS, min_size=1, max_size=30)
rows = st.builds(DumpRow, titles, titles, st.sampled_from(TYPES), st.integers(0, MAX_N))
CONTROL = st.sampled_from(["\x00", "\x01", "\x0b", "\x0c", "\x1f", "\x7f", "\x85", "\x9f", "\r"])


@contextmanager
def _dump(data: bytes, suffix: str = ".tsv") -> Iterator[Path]:
    with tempfile.TemporaryDirectory(prefix="fuzz-dump-") as tmp:
        path = Path(tmp) / f"dump{suffix}"
        path.write_bytes(data)
        yield path


def _lines(data: bytes) -> int:
    return data.count(b"\n") + (1 if data and not data.endswith(b"\n") else 0)


row_lines = st.builds(lambda r: f"{r.prev}\t{r.curr}\t{r.link_type}\t{r.n}".encode(), rows)
text_lines = st.text(max_size=40).map(lambda t: t.encode("utf-8", "replace"))


@FUZZ
@given(data=st.one_of(st.binary(max_size=400),
                      st.lists(st.one_of(st.binary(max_size=40), text_lines, row_lines),
                               max_size=12).map(b"\n".join)),
       layout=st.sampled_from(["auto", "2015", "2017", "csv"]))
def test_arbitrary_bytes_give_rows_or_located_reports(data: bytes, layout: str) -> None:
    with _dump(data) as path:
        report = ReadReport(max_samples=10_000)
        try:
            got = list(read_dump(path, layout=layout, report=report))
        except DumpFormatError as exc:
            assert str(exc).startswith(f"{path}:")  # names the file and the line
            return
        assert len(got) == report.rows
        for name, line, reason in report.samples:
            assert name == str(path) and 1 <= line <= _lines(data) + 1 and reason
        if report.layout != "csv":
            header = report.layout == "2015" and data.startswith(b"prev_id\t")
            assert report.rows + report.malformed == _lines(data) - header
        for row in got:
            assert row.prev and row.curr and row.link_type in LINK_TYPES and 0 <= row.n <= MAX_N


@FUZZ
@given(data=st.binary(max_size=300))
def test_arbitrary_gzip_payloads_never_crash(data: bytes) -> None:
    for blob in (gzip.compress(data), gzip.compress(data)[: max(2, len(data) // 2)], b"\x1f\x8b" + data):
        with _dump(blob, ".tsv.gz") as path:
            try:
                list(read_dump(path, report=ReadReport()))
            except DumpFormatError as exc:
                assert str(exc).startswith(f"{path}:")


def _write(layout: str, dump_rows: list[DumpRow]) -> bytes:
    if layout == "2017":
        return "".join(f"{r.prev}\t{r.curr}\t{r.link_type}\t{r.n}\n" for r in dump_rows).encode()
    if layout == "2015":
        body = "".join(f"{i}\t\t{r.n}\t{r.prev}\t{r.curr}\t{r.link_type}\n" for i, r in enumerate(dump_rows))
        return ("prev_id\tcurr_id\tn\tprev_title\tcurr_title\ttype\n" + body).encode()
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(["", "prev", "curr", "type", "n"])
    writer.writerows([i, r.prev, r.curr, r.link_type, r.n] for i, r in enumerate(dump_rows))
    return out.getvalue().encode()


@FUZZ
@given(dump_rows=st.lists(rows, max_size=20), layout=st.sampled_from(["2015", "2017", "csv"]),
       zipped=st.booleans())
def test_good_rows_round_trip_exactly(dump_rows: list[DumpRow], layout: str, zipped: bool) -> None:
    data = _write(layout, dump_rows)
    with _dump(gzip.compress(data) if zipped else data) as path:
        report = ReadReport()
        assert list(read_dump(path, layout=layout, report=report)) == dump_rows
        assert (report.rows, report.malformed) == (len(dump_rows), 0)


@FUZZ
@given(dump_rows=st.lists(rows, min_size=1, max_size=10), at=st.data(), control=CONTROL,
       layout=st.sampled_from(["2017", "csv"]))
def test_a_control_character_in_a_title_is_reported_on_its_line(dump_rows: list[DumpRow], at: st.DataObject,
                                                               control: str, layout: str) -> None:
    i = at.draw(st.integers(0, len(dump_rows) - 1))
    field = at.draw(st.sampled_from(["prev", "curr"]))
    title = getattr(dump_rows[i], field)
    cut = at.draw(st.integers(0, len(title)))
    bad = dump_rows[i]._replace(**{field: title[:cut] + control + title[cut:]})
    data = _write(layout, [*dump_rows[:i], bad, *dump_rows[i + 1:]])
    assume(layout == "2017" or control != "\r")  # CSV quoting keeps a bare CR as data; tested below
    with _dump(data) as path:
        report = ReadReport()
        assert list(read_dump(path, layout=layout, report=report)) == dump_rows[:i] + dump_rows[i + 1:]
        (name, line, reason), = report.samples
        assert (name, line) == (str(path), i + 1 + (layout == "csv"))
        assert f"{field} title has control character" in reason


@FUZZ
@given(n_text=st.one_of(st.text(max_size=8), st.integers().map(str),
                        st.integers(0, 10**12).map(lambda n: f"{n:_}"),
                        st.integers(0, 99).map(lambda n: f" +{n} ")))
def test_counts_are_ascii_digits_or_malformed(n_text: str) -> None:
    line = f"A\tB\tlink\t{n_text}\n".encode("utf-8", "surrogatepass")
    assume(n_text.count("\n") == 0 and "\t" not in n_text)
    with _dump(line) as path:
        report = ReadReport()
        got = list(read_dump(path, layout="2017", report=report))
        plain = n_text[:-1] if n_text.endswith("\r") else n_text  # the reader strips one CR
        if plain.isascii() and plain.isdigit() and int(plain) <= MAX_N:
            assert got == [DumpRow("A", "B", "link", int(plain))]
        else:
            assert got == [] and report.malformed == 1


any_titles = st.text(st.characters(exclude_categories=("Cs",)), min_size=1, max_size=12)


@settings(max_examples=30, deadline=None)
@given(dump_rows=st.lists(st.builds(DumpRow, any_titles, any_titles, st.sampled_from(TYPES),
                                    st.integers(0, 40)), max_size=12),
       seed=st.integers(0, 2**16), jitter_ms=st.integers(0, 3_000))
def test_expansion_keeps_every_title_and_click(dump_rows: list[DumpRow], seed: int, jitter_ms: int) -> None:
    clicks = list(expand_clicks(dump_rows, seed=seed, jitter_ms=jitter_ms, span_s=60))
    assert len(clicks) == sum(r.n for r in dump_rows)
    assert len({c.click_id for c in clicks}) == len(clicks)
    for c in clicks:
        assert dump_rows[c.click_id >> 32][:3] == (c.prev, c.curr, c.link_type)
    assert Counter(c.click_id >> 32 for c in clicks) == {i: r.n for i, r in enumerate(dump_rows) if r.n}


valid_titles = st.text(st.characters(exclude_categories=("Cs", "Cc")), min_size=1, max_size=20)
click_lists = st.lists(st.builds(Click, st.integers(0, 2**63 - 1),
                                 st.integers(978_307_200_000, 4_102_444_799_999), valid_titles,
                                 st.sampled_from(["A", "B", "é€", '"q"\\x']),
                                 st.sampled_from(TYPES)), max_size=60)


@FUZZ
@given(clicks=click_lists, clicks_per_record=st.integers(1, 7), wait_ms=st.integers(1, 10**7))
def test_records_round_trip_and_match_the_event_encoding(clicks: list[Click], clicks_per_record: int,
                                                        wait_ms: int) -> None:
    got: list[Click] = []
    for chunk in chunks_of(clicks, size=17):
        recs = build_records(chunk, clicks_per_record, wait_ms)
        for key, value, n, first_ts in zip(recs.keys, recs.values, recs.clicks.tolist(),
                                           recs.first_ts.tolist(), strict=True):
            batch = decode_record(value)
            assert len(batch) == n <= clicks_per_record and {c.curr.encode() for c in batch} == {key}
            assert batch[0].ts_ms == first_ts and len({c.ts_ms // wait_ms for c in batch}) == 1
            assert value == (encode_click(batch[0]) if clicks_per_record == 1 else encode_batch(batch))
            got.extend(batch)
    if clicks_per_record == 1:
        assert got == clicks
    assert Counter(got) == Counter(clicks)


def _records_as_documented(clicks: list[Click], clicks_per_record: int, wait_ms: int) -> list[bytes]:
    """``producer.encoding``'s grouping written plainly: a record closes at its K-th click of
    one (destination, ``ts_ms // wait_ms``) group, or at the end; records by last click."""
    groups: dict[tuple[str, int], list[tuple[int, Click]]] = {}
    done: list[tuple[int, list[Click]]] = []
    for position, click in enumerate(clicks):
        key = (click.curr, click.ts_ms // wait_ms)
        group = groups.setdefault(key, [])
        group.append((position, click))
        if len(group) == clicks_per_record:
            done.append((position, [c for _, c in group]))
            del groups[key]
    done += [(group[-1][0], [c for _, c in group]) for group in groups.values()]
    return [encode_batch(batch) for _, batch in sorted(done, key=lambda record: record[0])]


@FUZZ
@given(clicks=click_lists, clicks_per_record=st.integers(2, 7), wait_ms=st.integers(1, 10**7))
def test_batch_records_group_and_order_as_documented(clicks: list[Click], clicks_per_record: int,
                                                     wait_ms: int) -> None:
    for chunk in chunks_of(clicks, size=23):
        assert build_records(chunk, clicks_per_record, wait_ms).values == _records_as_documented(
            list(chunk.clicks()), clicks_per_record, wait_ms)


@FUZZ
@given(keys=st.lists(st.binary(max_size=70), max_size=40), partitions=st.integers(1, 64))
def test_vectorised_murmur2_is_kafkas_partitioner(keys: list[bytes], partitions: int) -> None:
    from kafka.partitioner.default import murmur2

    kafkas = [(murmur2(k) & 0x7FFFFFFF) % partitions for k in keys]
    assert murmur2_partitions(keys, partitions).tolist() == kafkas
