"""Dump readers: the real samples parse to SOURCES.md's facts; malformed lines are located."""

from __future__ import annotations

import gzip
from collections import Counter
from pathlib import Path

import pytest

from producer.readers import DumpFormatError, DumpRow, ReadReport, detect_layout, read_dump

SAMPLE_2015 = "clickstream-enwiki-2015-02_head10k.tsv"
SAMPLE_2024_CSV = "clickstream-enwiki-2024-10_sample10k.csv"


def _shares(rows: list[DumpRow]) -> dict[str, float]:
    counts = Counter(r.link_type for r in rows)
    return {t: round(100 * c / len(rows), 1) for t, c in counts.items()}


def test_2015_sample_has_documented_facts(shared_data_dir: Path) -> None:
    report = ReadReport()
    rows = list(read_dump(shared_data_dir / SAMPLE_2015, report=report))
    assert report.layout == "2015"
    assert report.malformed == 0
    assert len(rows) == report.rows == 9_999
    assert len({r.prev for r in rows}) == 4_389
    assert len({r.curr for r in rows}) == 1_010
    assert sum(r.n for r in rows) == 1_568_401
    assert _shares(rows) == {"link": 59.7, "other": 39.0, "redlink": 1.3}
    # literal quotes survive (no quote processing)
    quoted = {r.curr for r in rows if '"' in r.curr} | {r.prev for r in rows if '"' in r.prev}
    assert '"Weird_Al"_Yankovic' in quoted


def test_2015_sample_gzipped_reads_the_same(shared_data_dir: Path, tmp_path: Path) -> None:
    plain = (shared_data_dir / SAMPLE_2015).read_bytes()
    gz = tmp_path / "sample.tsv.gz"
    gz.write_bytes(gzip.compress(plain))
    assert list(read_dump(gz)) == list(read_dump(shared_data_dir / SAMPLE_2015))


def test_csv_derivative_adapter(shared_data_dir: Path) -> None:
    report = ReadReport()
    rows = list(read_dump(shared_data_dir / SAMPLE_2024_CSV, report=report))
    assert report.layout == "csv"
    assert report.malformed == 0
    assert len(rows) == 9_936
    assert {r.link_type for r in rows} == {"link", "external", "other"}
    assert min(r.n for r in rows) >= 10
    head = max(rows, key=lambda r: r.n)
    assert (head.prev, head.curr) == ("other-empty", "Main_Page")
    assert round(100 * head.n / sum(r.n for r in rows), 1) == 98.6


def test_2017_layout_roundtrip_and_detection(tmp_path: Path) -> None:
    path = tmp_path / "clickstream-enwiki-2024-10.tsv"
    path.write_text('other-search\t"Weird_Al"_Yankovic\texternal\t120\nA\tB\tlink\t10\n', encoding="utf-8")
    report = ReadReport()
    assert list(read_dump(path, report=report)) == [
        DumpRow("other-search", '"Weird_Al"_Yankovic', "external", 120), DumpRow("A", "B", "link", 10)]
    assert report.layout == "2017"
    assert detect_layout("prev_id\tcurr_id\tn\tprev_title\tcurr_title\ttype\n") == "2015"
    assert detect_layout(",prev,curr,type,n\n") == "csv"


def _corrupted_2015(shared_data_dir: Path, tmp_path: Path) -> tuple[Path, dict[int, str]]:
    lines = (shared_data_dir / SAMPLE_2015).read_bytes().split(b"\n")
    bad = {
        5: b"\t3632887\t10\tother-other\t!!",  # 5 fields
        100: b"\t3632887\tten\tother-google\t!!\tother",  # n not an integer
        2000: b"\t3632887\t12\tother-google\t!!\tbogus",  # unknown type
        7777: b"\xff\xfe\t1\t12\ta\tb\tlink",  # not UTF-8
    }
    for lineno, text in bad.items():
        lines[lineno - 1] = text
    path = tmp_path / "corrupt.tsv"
    path.write_bytes(b"\n".join(lines))
    return path, {k: v.decode("utf-8", "replace") for k, v in bad.items()}


def test_corrupted_copy_reports_lines_and_counts(shared_data_dir: Path, tmp_path: Path) -> None:
    path, bad = _corrupted_2015(shared_data_dir, tmp_path)
    report = ReadReport()
    rows = list(read_dump(path, report=report))
    assert report.malformed == len(bad)
    assert len(rows) == report.rows == 9_999 - len(bad)
    assert [line for _, line, _ in report.samples] == sorted(bad)
    assert all(name == str(path) for name, _, _ in report.samples)
    reasons = {line: reason for _, line, reason in report.samples}
    assert "6 tab-separated fields" in reasons[5]
    assert "not a count" in reasons[100]
    assert "bogus" in reasons[2000]
    assert "UTF-8" in reasons[7777]


def test_strict_mode_raises_with_file_and_line(shared_data_dir: Path, tmp_path: Path) -> None:
    path, _ = _corrupted_2015(shared_data_dir, tmp_path)
    with pytest.raises(DumpFormatError, match=rf"{path}:5: "):
        list(read_dump(path, strict=True))


def test_forced_layout_mismatch_counts_every_line(tmp_path: Path) -> None:
    path = tmp_path / "d.tsv"
    path.write_text("A\tB\tlink\t10\nC\tD\tlink\t11\n", encoding="utf-8")
    report = ReadReport()
    assert list(read_dump(path, layout="2015", report=report)) == []
    assert report.malformed == 2
    with pytest.raises(ValueError, match="layout"):
        list(read_dump(path, layout="2016"))


@pytest.mark.parametrize("n_text", ["1_000", " +12 ", "+12", "-3", "12 ", "١٢", "²", "0x10", "1e3", "",
                                    "4294967296", "99999999999999999999"])
def test_counts_must_be_plain_ascii_digits(tmp_path: Path, n_text: str) -> None:
    path = tmp_path / "d.tsv"
    path.write_text(f"A\tB\tlink\t7\nA\tC\tlink\t{n_text}\n", encoding="utf-8")
    report = ReadReport()
    assert list(read_dump(path, layout="2017", report=report)) == [DumpRow("A", "B", "link", 7)]
    assert report.malformed == 1 and report.samples[0][:2] == (str(path), 2)
    assert "n " in report.samples[0][2]


def test_largest_count_is_accepted(tmp_path: Path) -> None:
    path = tmp_path / "d.tsv"
    path.write_text("A\tB\tlink\t4294967295\nA\tB\tlink\t0007\n", encoding="utf-8")
    assert [r.n for r in read_dump(path, layout="2017")] == [4_294_967_295, 7]


@pytest.mark.parametrize("title", ["Foo\x00Bar", "Foo\x01", "\x7fX", "a\x85b", "tab\x0bbed", "cr\rx"])
def test_control_characters_in_titles_are_malformed_not_shifted(tmp_path: Path, title: str) -> None:
    """#17: ``Foo\\x00Bar  link  link  2`` once became prev="Foo", curr="Bar"."""
    path = tmp_path / "d.tsv"
    path.write_bytes(f"{title}\tlink\tlink\t2\nA\t{title}\tlink\t3\nA\tB\tlink\t4\n".encode())
    report = ReadReport()
    assert list(read_dump(path, layout="2017", report=report)) == [DumpRow("A", "B", "link", 4)]
    assert [(line, reason.split(" title")[0]) for _, line, reason in report.samples] == [
        (1, "prev"), (2, "curr")]
    assert all("control character" in reason for _, _, reason in report.samples)
    with pytest.raises(DumpFormatError, match=rf"{path}:1: prev title has control character"):
        list(read_dump(path, layout="2017", strict=True))


def test_csv_bad_bytes_and_nul_are_reported(tmp_path: Path) -> None:
    path = tmp_path / "d.csv"
    path.write_bytes(b",prev,curr,type,n\n0,A,B,link,3\n1,\xff,B,link,3\n2,\"Foo\x00Bar\",B,link,2\n"
                     b"3,A,B,link,1_0\n4,C,D,other,5\n")
    report = ReadReport()
    rows = list(read_dump(path, report=report))
    assert rows == [DumpRow("A", "B", "link", 3), DumpRow("C", "D", "other", 5)]
    assert [line for _, line, _ in report.samples] == [3, 4, 5]
    assert "UTF-8" in report.samples[0][2] and "control character" in report.samples[1][2]


def test_truncated_gzip_names_file_and_line(tmp_path: Path) -> None:
    body = "".join(f"A{i}\tB\tlink\t{i}\n" for i in range(20_000)).encode()
    path = tmp_path / "cut.tsv.gz"
    data = gzip.compress(body)
    path.write_bytes(data[: len(data) // 2])
    with pytest.raises(DumpFormatError, match=rf"{path}:\d+: the dump cannot be read further"):
        list(read_dump(path))


def test_csv_header_with_a_stray_carriage_return_names_the_line(tmp_path: Path) -> None:
    """Found by the fuzz test: ``b"\\r\\x00"`` read as CSV raised a bare ``_csv.Error``."""
    path = tmp_path / "d.csv"
    path.write_bytes(b"\r\x00")
    with pytest.raises(DumpFormatError, match=rf"{path}:1: unreadable CSV header"):
        list(read_dump(path, layout="csv"))
