"""``clickstream produce``: generate-only, an embedded (in-process) replay, user errors."""

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
                 "--spike", "10:5:20", "--span-s", "60"]) == 0
    text = capsys.readouterr().out
    assert "read 500 rows" in text
    assert "month 2024-10" in text  # from the file name
    assert "sent 300 clicks" in text and "failed 0 clicks" in text


def test_malformed_lines_listed_and_strict_fails(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    dump = tmp_path / "d.tsv"
    dump.write_text("A\tB\tlink\t12\nbroken line\nC\tD\tlink\t10\n", encoding="utf-8")
    assert main(["produce", "--dump", str(dump), "--no-progress"]) == 0
    text = capsys.readouterr().out
    assert "1 malformed lines skipped" in text and f"{dump}:2:" in text and "sent 22 clicks" in text
    assert main(["produce", "--dump", str(dump), "--strict"]) == 1
    assert f"{dump}:2:" in capsys.readouterr().err


def test_needs_exactly_one_source(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["produce"]) == 1
    assert main(["produce", "--dump", str(tmp_path / "x"), "--synthetic-rows", "5"]) == 1
    assert "exactly one of --dump" in capsys.readouterr().err
