"""The pipeline's checkpoints: a log of cycle plans and snapshots of its state.

Plans (``PlanLog``), one per cycle, logged BEFORE its tasks run: the offset range per
partition, the partitions' end offsets and the lateness threshold the cycle uses. By
default in the pipeline's store (``StorePlans``: table ``pipeline_plans``, keyed by
pipeline id and cycle; one upsert, milliseconds, as durable as the window rows), or with
``checkpoint_plan_log = files`` as ``plans/<cycle>.json`` files beside the states
(``FilePlans``; on HDFS every file close costs ~0.5 s, paid before each cycle).

States under ``<checkpoint root>/<pipeline id>/`` (any fsspec URL: a local folder on the
embedded stack, HDFS beside the archive on the local one)::

    state/<cycle>.ckpt     the window state, the watermark inputs, the next offsets and the
                           dead-letter sink's position after cycle <cycle>'s outputs were
                           flushed, all in one file
    plans/<cycle>.json     the plans, with checkpoint_plan_log = files

Files are written under a temporary name and renamed, so a reader sees a whole file or
none. A state is taken (and encoded to bytes) at a cycle boundary, then written while
the next cycles run (``pipeline.graph``); until it has landed, the previous state and the
plans after it are kept, so a crash at any moment finds a state and every plan after it.
A restart loads the newest state, then runs again, in order, every plan logged after it:
same ranges, same threshold, same state, hence the same window rows, archive files and
dead letters, which overwrite (or are skipped, for dead letters) what the killed run
wrote. Nothing is read twice as late, and no output comes out twice.

Size: a plan is a few hundred bytes; a state file holds the open windows' per-key counts
(at most ``allowed_lateness_ms`` + 60 s of event time), 30 sliding buckets per metric and
the trending baselines. Once a state has landed, states are pruned to the newest
``KEEP_STATES`` and plans to those after the oldest kept state.
"""

from __future__ import annotations

import io
import re
import struct
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any, Protocol

import orjson
import pyarrow as pa
import pyarrow.ipc as ipc

from clickstream.archive import filesystem, join, read_until_whole
from clickstream.store import Store

MAGIC = b"CLKCKPT1"
KEEP_STATES = 2
# HDFS as `clickstream services` runs it (dfs.namenode.file.close.num-committed-allowed=1)
# returns from a file's close before its last block is complete; a read in that moment sees
# fewer bytes (none, for a one-block file). A state file renamed into place just before a
# crash can read short on the restart: it is read again until whole, for up to this long.
STATE_WHOLE_WITHIN_S = 5.0
_NAME = re.compile(r"^(\d{12})\.(json|ckpt)$")


class CheckpointError(RuntimeError):
    """A checkpoint cannot be read or written; the message names the file."""


@dataclass(frozen=True)
class CyclePlan:
    """What one cycle reads, decided and logged before it runs."""

    cycle: int
    ranges: dict[int, tuple[int, int]]  # partition -> [start, end)
    end_offsets: dict[int, int]  # the partitions' end offsets when planned (watermark input)
    finalized_ms: int  # lateness threshold: windows ending at or before it were final

    @property
    def caught_up(self) -> bool:
        """The cycle reads every record its partitions held when it was planned."""
        return all(end >= self.end_offsets.get(p, 0) for p, (_start, end) in self.ranges.items())

    def to_json(self) -> bytes:
        return orjson.dumps({"cycle": self.cycle, "ranges": {str(p): r for p, r in self.ranges.items()},
                             "end_offsets": {str(p): o for p, o in self.end_offsets.items()},
                             "finalized_ms": self.finalized_ms})

    @classmethod
    def from_json(cls, raw: bytes) -> CyclePlan:
        obj = orjson.loads(raw)
        return cls(int(obj["cycle"]), {int(p): (int(r[0]), int(r[1])) for p, r in obj["ranges"].items()},
                   {int(p): int(o) for p, o in obj["end_offsets"].items()}, int(obj["finalized_ms"]))


@dataclass(frozen=True)
class Snapshot:
    """The state after ``cycle``: metadata (JSON-able) and Arrow tables."""

    cycle: int
    meta: dict[str, Any]
    tables: dict[str, pa.Table]


def safe_name(pipeline_id: str) -> str:
    """A folder name for a pipeline id (letters, digits, ``-_.`` kept; others as ``~xx``)."""
    return "".join(ch if ch.isalnum() or ch in "-_." else f"~{ord(ch):02x}" for ch in pipeline_id)


class PlanLog(Protocol):
    """Where cycle plans are logged; ``where`` names it in messages, ``step`` in status
    lines (``store (plan log)`` or ``checkpoints (plan log)``: what a pipeline waits for)."""

    where: str
    step: str

    def log(self, plan: CyclePlan) -> None: ...

    def after(self, cycle: int) -> list[CyclePlan]:
        """The plans of cycles after ``cycle``, in order."""
        ...

    def prune(self, up_to_cycle: int) -> None:
        """Forget the plans of cycles up to ``up_to_cycle`` (inclusive)."""
        ...

    def clear(self) -> None: ...


class StorePlans:
    """The plan log in the store's ``pipeline_plans`` table (one partition per pipeline)."""

    def __init__(self, store: Store, pipeline_id: str) -> None:
        self._store = store
        self._key = {"pipeline": pipeline_id}
        self.where = f"table pipeline_plans, pipeline {pipeline_id!r}"
        self.step = "store (plan log)"

    def log(self, plan: CyclePlan) -> None:
        self._store.upsert("pipeline_plans", [{**self._key, "cycle": plan.cycle,
                                               "plan": plan.to_json().decode(), "logged_ms": _now_ms()}])

    def after(self, cycle: int) -> list[CyclePlan]:
        rows = self._store.select("pipeline_plans", self._key, start=cycle + 1)
        return [CyclePlan.from_json(r["plan"].encode()) for r in rows]

    def prune(self, up_to_cycle: int) -> None:
        self._store.delete_partition("pipeline_plans", self._key, end=up_to_cycle + 1)

    def clear(self) -> None:
        self._store.delete_partition("pipeline_plans", self._key)


class Checkpoints:
    """States (and, by default, plans) of one pipeline. Blocking I/O; every file write is
    atomic (rename). ``plans``: where plans are logged (default: files beside the states)."""

    def __init__(self, root_url: str, pipeline_id: str, plans: PlanLog | None = None) -> None:
        self.url = f"{root_url.rstrip('/')}/{safe_name(pipeline_id)}"
        self._fs, self._root = filesystem(self.url)
        self._states = join(self._root, "state")
        self.plans = plans if plans is not None else FilePlans(self)

    # -- writing -----------------------------------------------------------------------
    def log_plan(self, plan: CyclePlan) -> None:
        self.plans.log(plan)

    def save(self, snapshot: Snapshot) -> int:
        """Write the state of ``snapshot.cycle``, then prune; returns the file's size in bytes."""
        body = encode(snapshot)
        self.write_state(snapshot.cycle, body)
        self.prune()
        return len(body)

    def state_path(self, cycle: int) -> str:
        return f"{self.url}/state/{cycle:012d}.ckpt"

    def write_state(self, cycle: int, body: bytes) -> None:
        """Write ``encode``'s bytes of the state of ``cycle`` (atomic: whole or not there)."""
        self._write(self._states, f"{cycle:012d}.ckpt", body)

    def _write(self, folder: str, name: str, body: bytes) -> None:
        final = join(folder, name)
        tmp = join(folder, f"_tmp-{uuid.uuid4().hex[:8]}-{name}")
        with self._failing_as(f"writing {name}"):
            self._fs.makedirs(folder, exist_ok=True)
            with self._fs.open(tmp, "wb") as out:
                out.write(body)
            if self._fs.exists(final):
                self._fs.rm(final)
            self._fs.mv(tmp, final)

    @contextmanager
    def _failing_as(self, doing: str) -> Iterator[None]:
        """Any failure of the filesystem (hdfs-native raises RuntimeError in safe mode, after
        a restart) as a ``CheckpointError`` naming the checkpoint and what it was doing."""
        try:
            yield
        except Exception as exc:
            raise CheckpointError(f"checkpoint {self.url}: {doing} failed: {exc}") from exc

    def prune(self) -> None:
        """Drop all but the ``KEEP_STATES`` newest states and the plans the oldest kept one
        covers (only once a new state is whole: until then the older ones serve)."""
        states = self._listed(self._states, "ckpt")
        for cycle in states[:-KEEP_STATES]:
            with self._failing_as(f"removing state {cycle}"):
                self._fs.rm(join(self._states, f"{cycle:012d}.ckpt"))
        oldest_kept = states[-KEEP_STATES:][0] if states else 0
        self.plans.prune(oldest_kept)

    # -- reading -----------------------------------------------------------------------
    def latest(self) -> Snapshot | None:
        """The newest readable state, or None when the pipeline never checkpointed."""
        states = self._listed(self._states, "ckpt")
        if not states:
            return None
        path = join(self._states, f"{states[-1]:012d}.ckpt")
        raw = read_until_whole(lambda: self._read_bytes(path), is_cut_short, STATE_WHOLE_WITHIN_S)
        return decode(raw, path)

    def _read_bytes(self, path: str) -> bytes:
        with self._fs.open(path, "rb") as f:
            return f.read()

    def plans_after(self, cycle: int) -> list[CyclePlan]:
        """Plans logged after ``cycle``, in order (the cycles a restart runs again)."""
        return self.plans.after(cycle)

    def remove_stale_tmp(self) -> None:
        for folder in (join(self._root, "plans"), self._states):
            if self._fs.exists(folder):
                for path in self._fs.ls(folder, detail=False):
                    if path.rsplit("/", 1)[-1].startswith("_tmp-"):
                        self._fs.rm(path)

    def _listed(self, folder: str, ext: str) -> list[int]:
        with self._failing_as(f"listing {folder}"):
            names = self._fs.ls(folder, detail=False) if self._fs.exists(folder) else []
        out = []
        for path in names:
            m = _NAME.match(path.rsplit("/", 1)[-1])
            if m and m.group(2) == ext:
                out.append(int(m.group(1)))
        return sorted(out)


class FilePlans:
    """The plan log as ``plans/<cycle>.json`` files in a ``Checkpoints`` folder."""

    def __init__(self, checkpoints: Checkpoints) -> None:
        self._ck = checkpoints
        self._folder = join(checkpoints._root, "plans")
        self.where = f"{checkpoints.url}/plans"
        self.step = "checkpoints (plan log)"

    def log(self, plan: CyclePlan) -> None:
        self._ck._write(self._folder, f"{plan.cycle:012d}.json", plan.to_json())

    def after(self, cycle: int) -> list[CyclePlan]:
        out = []
        for n in self._ck._listed(self._folder, "json"):
            if n > cycle:
                with self._ck._fs.open(join(self._folder, f"{n:012d}.json"), "rb") as f:
                    out.append(CyclePlan.from_json(f.read()))
        return out

    def prune(self, up_to_cycle: int) -> None:
        for n in self._ck._listed(self._folder, "json"):
            if n <= up_to_cycle:
                self._ck._fs.rm(join(self._folder, f"{n:012d}.json"))

    def clear(self) -> None:
        self.prune(2**62)


def _now_ms() -> int:
    return time.time_ns() // 1_000_000


def encode(snapshot: Snapshot) -> bytes:
    """The bytes of a state file: a copy, whatever later happens to the snapshot's tables."""
    names = sorted(snapshot.tables)
    meta = orjson.dumps({"cycle": snapshot.cycle, "meta": snapshot.meta, "tables": names})
    out = io.BytesIO()
    out.write(MAGIC)
    out.write(struct.pack("<Q", len(meta)))
    out.write(meta)
    for name in names:
        sink = pa.BufferOutputStream()
        with ipc.new_stream(sink, snapshot.tables[name].schema) as writer:
            writer.write_table(snapshot.tables[name])
        body = sink.getvalue().to_pybytes()
        out.write(struct.pack("<Q", len(body)))
        out.write(body)
    return out.getvalue()


def is_cut_short(raw: bytes) -> bool:
    """True when ``raw`` is a proper beginning of ``encode``'s bytes (empty included): the
    lengths it holds ask for more. Whole files and files that are no checkpoint at all
    (which ``decode`` then names) are not cut short."""
    if len(raw) < len(MAGIC):
        return MAGIC.startswith(raw)
    if not raw.startswith(MAGIC):
        return False
    end = _section_end(raw, len(MAGIC))
    if end is None:
        return True
    try:
        names = orjson.loads(raw[len(MAGIC) + 8:end])["tables"]
    except (orjson.JSONDecodeError, KeyError, TypeError):
        return False
    for _ in names:
        end = _section_end(raw, end)
        if end is None:
            return True
    return False


def _section_end(raw: bytes, pos: int) -> int | None:
    """Where the length-prefixed section at ``pos`` ends, or None if ``raw`` stops before."""
    if len(raw) < pos + 8:
        return None
    (n,) = struct.unpack_from("<Q", raw, pos)
    end = pos + 8 + n
    return end if len(raw) >= end else None


def decode(raw: bytes, path: str) -> Snapshot:
    """The snapshot in ``encode``'s bytes (``path`` names them in errors)."""
    if raw[:len(MAGIC)] != MAGIC:
        raise CheckpointError(f"checkpoint {path}: not a checkpoint file (bad magic)")

    def section(start: int) -> tuple[bytes, int]:
        end = _section_end(raw, start)
        if end is None:
            raise CheckpointError(f"checkpoint {path}: cut short ({len(raw)} bytes, a section "
                                  f"at byte {start} asks for more)")
        return raw[start + 8:end], end

    body, end = section(len(MAGIC))
    head = orjson.loads(body)
    tables = {}
    for name in head["tables"]:
        body, end = section(end)
        tables[name] = ipc.open_stream(pa.py_buffer(body)).read_all()
    return Snapshot(int(head["cycle"]), head["meta"], tables)
