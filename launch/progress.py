"""Progress lines for long work: Spark jobs, and the first pass over a dump.

Spark: the sessions are built with Spark's console progress bar off (``spark_jobs.session``: it
draws over our own output); instead ``SparkProgress`` polls the running SparkContext's
status tracker every ``every_s`` seconds from a daemon thread and, while stages run,
prints one line such as::

    pagerank:  12 s | stage 3: 41/200 tasks (2 running) | stage 4: 0/4 tasks

Nothing is printed while no stage runs, nor when no stage or task count moved. It never starts Spark
and never imports pyspark itself: it waits until the job has started a context.

A dump's first pass (``producer.replay``'s ``on_scan``): ``ScanLines`` prints at most one
line every ``every_s`` seconds while the reader counts, and one when it is done::

    produce: counting the dump's clicks (first pass): 1,200,000 rows, 190,305,224 clicks, 8 s
"""

from __future__ import annotations

import sys
import threading
import time
from collections.abc import Sequence
from typing import NamedTuple, TextIO

MAX_STAGES_SHOWN = 3


class StageTasks(NamedTuple):
    """One active stage's tasks, as Spark's status tracker reports them."""

    stage_id: int
    done: int
    total: int
    running: int


def progress_line(label: str, elapsed_s: float, stages: Sequence[StageTasks]) -> str | None:
    """The line for the active ``stages`` (None when there are none); oldest stages first."""
    if not stages:
        return None
    shown = sorted(stages)[:MAX_STAGES_SHOWN]
    parts = [f"stage {s.stage_id}: {s.done:,}/{s.total:,} tasks" + (f" ({s.running} running)" if s.running
                                                                     else "") for s in shown]
    if len(stages) > len(shown):
        parts.append(f"{len(stages) - len(shown)} more stages")
    return f"{label}: {elapsed_s:4.0f} s | " + " | ".join(parts)


def active_stages() -> list[StageTasks]:
    """The active stages of this process's SparkContext; [] when none runs (or pyspark is
    not imported yet)."""
    context = sys.modules.get("pyspark.context")
    sc = getattr(getattr(context, "SparkContext", None), "_active_spark_context", None)
    if sc is None:
        return []
    tracker = sc.statusTracker()
    stages = []
    for stage_id in tracker.getActiveStageIds():
        info = tracker.getStageInfo(stage_id)
        if info is not None:
            stages.append(StageTasks(info.stageId, info.numCompletedTasks, info.numTasks,
                                     info.numActiveTasks))
    return stages


class SparkProgress:
    """A daemon thread printing ``progress_line`` to ``out`` every ``every_s`` seconds."""

    def __init__(self, out: TextIO, label: str = "spark", every_s: float = 2.0) -> None:
        self.out = out
        self.label = label
        self.every_s = every_s
        self.lines = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, name="spark-progress", daemon=True)
        self._t0 = time.monotonic()

    def start(self) -> SparkProgress:
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(timeout=5)

    def _loop(self) -> None:
        last: list[StageTasks] = []
        while not self._stop.wait(self.every_s):
            try:
                stages = active_stages()
            except Exception:  # the context is stopping: progress is best effort
                stages = []
            if stages and stages != last:  # only when a stage or a task count moved
                print(progress_line(self.label, time.monotonic() - self._t0, stages), file=self.out,
                      flush=True)
                self.lines += 1
            last = stages


class ScanLines:
    """``on_scan`` for ``producer.replay``: a line to ``out`` at most every ``every_s``
    seconds while a dump is counted, and one when the count is done."""

    def __init__(self, out: TextIO, label: str, every_s: float = 2.0) -> None:
        self.out = out
        self.label = label
        self.every_s = every_s
        self._t0 = time.monotonic()
        self._next = self._t0 + every_s

    def __call__(self, rows: int, clicks: int, finished: bool) -> None:
        now = time.monotonic()
        if not finished and now < self._next:
            return
        self._next = now + self.every_s
        state = "counted" if finished else "counting"
        print(f"{self.label}: {state} the dump's clicks (first pass): {rows:,} rows, {clicks:,} clicks, "
              f"{now - self._t0:.0f} s", file=self.out, flush=True)
