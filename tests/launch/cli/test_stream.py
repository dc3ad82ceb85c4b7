"""``clickstream stream``: errors in one line, and a run on the real broker until idle."""

from __future__ import annotations

from collections import Counter
from pathlib import Path

import pytest

from clickstream.settings import Settings
from clickstream.store.embedded import EmbeddedStore
from launch.cli.main import main
from producer.expand import expand_clicks
from producer.sender import send_to_kafka
from producer.synthetic import generate_rows


def test_stream_without_a_broker_is_a_one_line_error(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    assert main(["stream", "--work-dir", str(tmp_path), "--until-idle-s", "1"]) == 1
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "no Kafka bootstrap servers" in err[0]


@pytest.mark.integration
def test_stream_cli_consumes_until_idle_and_commits(services_running: Settings, unique_name: str,
                                                    tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    clicks = list(expand_clicks(generate_rows(200, seed=4, head_share=0.1), seed=4, span_s=60, limit=5_000))
    send_to_kafka(clicks, services_running.replace(topic_partitions=4), topic=unique_name, progress=False)
    argv = ["stream", "--stack", "local", "--topic", unique_name, "--consumer-group", unique_name,
            "--store", "embedded", "--embedded-store-path", str(tmp_path / "s.sqlite"),
            "--archive-url", (tmp_path / "archive").as_uri(), "--work-dir", str(tmp_path),
            "--dask-workers", "2", "--until-idle-s", "1"]
    assert main(argv) == 0
    assert "stream: 5000 clicks (0 late, 0 dead letters)" in capsys.readouterr().out
    store = EmbeddedStore(tmp_path / "s.sqlite")
    want = Counter(c.ts_ms - c.ts_ms % 60_000 for c in clicks)
    got = {s: store.select("window_totals", {"pipeline": f"{unique_name}/{unique_name}",
                                              "window_ms": 60_000, "day": "2015-02-01"}, start=s,
                           end=s + 1)[0]["clicks"] for s in want}
    store.close()
    assert got == dict(want)
    # a second run resumes at the committed offsets: nothing new to count
    assert main(argv) == 0
    assert "stream: 0 clicks" in capsys.readouterr().out
