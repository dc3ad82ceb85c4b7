"""Two pipelines writing one store never touch each other's rows (every table keyed by pipeline)."""

from __future__ import annotations

from pathlib import Path

from clickstream.memory_topic import MemoryTopic
from clickstream.settings import Settings
from pipeline import Pipeline
from producer.sender import records
from tests.pipeline.conftest import COMPARED, assert_tables_equal, dump_sqlite, recount
from tests.pipeline.test_integration import make_clicks


def test_two_topics_over_the_same_event_time_keep_their_own_windows(tmp_path: Path, dask_client) -> None:
    store_file = tmp_path / "shared.sqlite"
    runs = {}
    for name, seed in (("first", 3), ("second", 4)):
        clicks = make_clicks(200, seed=seed, limit=8_000, span_s=60)  # the same event-time span
        topic = MemoryTopic(name, 4)
        for key, value, _n, _t in records(clicks):
            topic.append(key, value)
        topic.close()
        settings = Settings(work_dir=str(tmp_path / name), embedded_store_path=str(store_file),
                            archive_url=(tmp_path / name / "archive").as_uri(), topic=name)
        with Pipeline(settings, client=dask_client, memory_topic=topic) as pipe:
            pipe.run()
            runs[pipe.pipeline_id] = clicks
    assert set(runs) == {"clickstream-pipeline/first", "clickstream-pipeline/second"}
    for pipeline_id, clicks in runs.items():
        assert_tables_equal(dump_sqlite(store_file, COMPARED, pipeline=pipeline_id), recount(clicks))
