"""``clickstream produce``: generate-only, a dry run (in-process topic), user errors, the
progress bar's total, the metrics endpoint."""

from __future__ import annotations

from pathlib import Path

import pytest

from launch.cli.main import main
from producer.readers import ReadReport, read_dump


@pytest.fixture(autouse=True)
def _no_kafka_env(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("CLICKSTREAM_STACK", "CLICKSTREAM_KAFKA_BOOTSTRAP_SERVERS"):
        monkeypatch.delenv(name, raising=False)


def test_generate_only_then_replay_in_process(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "clickstream-enwiki-2024-10.tsv.gz"
    assert main(["produce", "--generate-only", str(out), "--synthetic-rows", "500", "--gzip",
                 "--seed", "3"]) == 0
    report = ReadReport()
    assert sum(1 for _ in read_dump(out, report=report)) == 500 and report.layout == "2017"
    assert main(["produce", "--dump", str(out), "--limit", "300", "--no-progress",
                 "--spike", "10:5:20", "--span-s", "60", "--dry-run"]) == 0
    text = capsys.readouterr().out
    assert "read 500 rows" in text
    assert "month 2024-10" in text  # from the file name
    assert "sent 300 clicks" in text and "failed 0 clicks" in text
    assert "throwaway in-process topic" in text and "nothing was sent to Kafka" in text


def test_malformed_lines_listed_and_strict_fails(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    dump = tmp_path / "d.tsv"
    dump.write_text("A\tB\tlink\t12\nbroken line\nC\tD\tlink\t10\n", encoding="utf-8")
    assert main(["produce", "--dump", str(dump), "--no-progress", "--dry-run"]) == 0
    text = capsys.readouterr().out
    assert "1 malformed lines skipped" in text and f"{dump}:2:" in text and "sent 22 clicks" in text
    assert main(["produce", "--dump", str(dump), "--strict", "--dry-run"]) == 1
    assert f"{dump}:2:" in capsys.readouterr().err


def test_needs_exactly_one_source(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["produce", "--dry-run"]) == 1
    assert main(["produce", "--dump", str(tmp_path / "x"), "--synthetic-rows", "5", "--dry-run"]) == 1
    assert "exactly one of --dump" in capsys.readouterr().err


def test_without_kafka_is_an_error_unless_dry_run(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["produce", "--synthetic-rows", "20", "--no-progress"]) == 1
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "no Kafka bootstrap servers" in err[0] and "--dry-run" in err[0]
    assert main(["produce", "--synthetic-rows", "20", "--no-progress", "--dry-run"]) == 0
    assert "(--dry-run: nothing was sent to Kafka" in capsys.readouterr().out


@pytest.mark.parametrize("source", ["dump", "synthetic"])
def test_the_bar_has_a_total_counted_first(tmp_path: Path, capsys: pytest.CaptureFixture[str],
                                           monkeypatch: pytest.MonkeyPatch, source: str) -> None:
    """Without --limit the input's clicks are counted first (a dump: a first pass reported on
    stderr), so the bar (log lines off a terminal) shows "N of TOTAL clicks" and an ETA."""
    import logging

    import producer.sender

    monkeypatch.setattr(producer.sender, "LOG_EVERY_S", 0.0)
    dump = tmp_path / "d.tsv"
    main(["produce", "--generate-only", str(dump), "--synthetic-rows", "300", "--seed", "2"])
    want = sum(row.n for row in read_dump(dump))
    args = ["--dump", str(dump)] if source == "dump" else ["--synthetic-rows", "300", "--seed", "2"]
    capsys.readouterr()
    logging.getLogger("producer.sender").setLevel(logging.INFO)
    handler = logging.StreamHandler(__import__("sys").stderr)
    logging.getLogger("producer.sender").addHandler(handler)
    try:
        assert main(["produce", *args, "--dry-run", "--head-share", "0.6"]) == 0
    finally:
        logging.getLogger("producer.sender").removeHandler(handler)
    err = capsys.readouterr().err
    if source == "dump":
        assert f"produce: counted the dump's clicks (first pass): 300 rows, {want:,} clicks" in err
    assert f" of {want:,} clicks" in err and "ETA" in err
