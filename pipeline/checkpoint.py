"""The pipeline's checkpoints: a log of cycle plans and snapshots of its state.

Layout under ``<checkpoint root>/<pipeline id>/`` (any fsspec URL: a local folder on the
embedded stack, HDFS beside the archive on the local one)::

    plans/<cycle>.json     one per cycle, written BEFORE its tasks run: the offset range
                           per partition, the partitions' end offsets and the lateness
                           threshold the cycle uses
    state/<cycle>.ckpt     after the cycle's outputs were flushed: the window state, the
                           watermark inputs, the next offsets and the dead-letter sink's
                           position, all in one file

Both are written under a temporary name and renamed, so a reader sees a whole file or
none. A restart loads the newest state, then runs again, in order, every plan logged after
it: same ranges, same threshold, same state, hence the same window rows, archive files
and dead letters, which overwrite (or are skipped, for dead letters) what the killed run
wrote. Nothing is read twice as late, and no output comes out twice.

Size: a plan is a few hundred bytes; a state file holds the open windows' per-key counts
(at most ``allowed_lateness_ms`` + 60 s of event time), 30 sliding buckets per metric and
the trending baselines; both kinds are pruned to the newest ``KEEP_STATES`` states and the
plans after the oldest kept state.
"""

from __future__ import annotations

import io
import re
import struct
import uuid
from dataclasses import dataclass
from typing import Any

import orjson
import pyarrow as pa
import pyarrow.ipc as ipc

from clickstream.archive import filesystem, join

MAGIC = b"CLKCKPT1"
KEEP_STATES = 2
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


class Checkpoints:
    """Plans and snapshots of one pipeline. Blocking I/O; every write is atomic (rename)."""

    def __init__(self, root_url: str, pipeline_id: str) -> None:
        self.url = f"{root_url.rstrip('/')}/{safe_name(pipeline_id)}"
        self._fs, self._root = filesystem(self.url)
        self._plans = join(self._root, "plans")
        self._states = join(self._root, "state")

    # -- writing -----------------------------------------------------------------------
    def log_plan(self, plan: CyclePlan) -> None:
        self._write(self._plans, f"{plan.cycle:012d}.json", plan.to_json())

    def save(self, snapshot: Snapshot) -> int:
        """Write the state of ``snapshot.cycle``, then prune; returns the file's size in bytes."""
        body = _encode(snapshot)
        self._write(self._states, f"{snapshot.cycle:012d}.ckpt", body)
        self._prune()
        return len(body)

    def _write(self, folder: str, name: str, body: bytes) -> None:
        self._fs.makedirs(folder, exist_ok=True)
        final = join(folder, name)
        tmp = join(folder, f"_tmp-{uuid.uuid4().hex[:8]}-{name}")
        try:
            with self._fs.open(tmp, "wb") as out:
                out.write(body)
            if self._fs.exists(final):
                self._fs.rm(final)
            self._fs.mv(tmp, final)
        except Exception as exc:
            raise CheckpointError(f"checkpoint {self.url}: writing {name} failed: {exc}") from exc

    def _prune(self) -> None:
        states = self._listed(self._states, "ckpt")
        for cycle in states[:-KEEP_STATES]:
            self._fs.rm(join(self._states, f"{cycle:012d}.ckpt"))
        oldest_kept = states[-KEEP_STATES:][0] if states else 0
        for cycle in self._listed(self._plans, "json"):
            if cycle <= oldest_kept:
                self._fs.rm(join(self._plans, f"{cycle:012d}.json"))

    # -- reading -----------------------------------------------------------------------
    def latest(self) -> Snapshot | None:
        """The newest readable state, or None when the pipeline never checkpointed."""
        for cycle in reversed(self._listed(self._states, "ckpt")):
            path = join(self._states, f"{cycle:012d}.ckpt")
            with self._fs.open(path, "rb") as f:
                return _decode(f.read(), path)
        return None

    def plans_after(self, cycle: int) -> list[CyclePlan]:
        """Plans logged after ``cycle``, in order (the cycles a restart runs again)."""
        out = []
        for n in self._listed(self._plans, "json"):
            if n > cycle:
                with self._fs.open(join(self._plans, f"{n:012d}.json"), "rb") as f:
                    out.append(CyclePlan.from_json(f.read()))
        return out

    def remove_stale_tmp(self) -> None:
        for folder in (self._plans, self._states):
            if self._fs.exists(folder):
                for path in self._fs.ls(folder, detail=False):
                    if path.rsplit("/", 1)[-1].startswith("_tmp-"):
                        self._fs.rm(path)

    def _listed(self, folder: str, ext: str) -> list[int]:
        if not self._fs.exists(folder):
            return []
        out = []
        for path in self._fs.ls(folder, detail=False):
            m = _NAME.match(path.rsplit("/", 1)[-1])
            if m and m.group(2) == ext:
                out.append(int(m.group(1)))
        return sorted(out)


def _encode(snapshot: Snapshot) -> bytes:
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


def _decode(raw: bytes, path: str) -> Snapshot:
    if raw[:len(MAGIC)] != MAGIC:
        raise CheckpointError(f"checkpoint {path}: not a checkpoint file (bad magic)")
    pos = len(MAGIC)
    (n,) = struct.unpack_from("<Q", raw, pos)
    pos += 8
    head = orjson.loads(raw[pos:pos + n])
    pos += n
    tables = {}
    for name in head["tables"]:
        (n,) = struct.unpack_from("<Q", raw, pos)
        pos += 8
        tables[name] = ipc.open_stream(pa.py_buffer(raw[pos:pos + n])).read_all()
        pos += n
    return Snapshot(int(head["cycle"]), head["meta"], tables)
