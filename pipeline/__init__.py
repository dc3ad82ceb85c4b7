"""The streaming pipeline: Kafka (or an in-process topic) -> Dask -> store + Parquet archive.

Python API::

    from pipeline import Aggregate, Pipeline
    with Pipeline(settings, client=my_client, aggregates=[Aggregate("language", key_fn)]) as p:
        summary = p.run(until_idle_s=5)

See ``pipeline/README.md`` for the design, the tables written and where a restart resumes.
"""

from __future__ import annotations

from pipeline.graph import Pipeline, PipelineError, RunSummary
from pipeline.operators.aggregate import Aggregate

__all__ = ["Aggregate", "Pipeline", "PipelineError", "RunSummary"]
