"""The checkpoint: what a cluster's collector needs to resume (tracked applications, the
watermark, the enrichment queue, and the events queued for Kafka), kept in a local file.

The state in it advances only with events Kafka acknowledged. The queued events are in it
too, written before they are sent: a process killed after Kafka took them but before the
state recorded that sends exactly those events again (same ids, same bytes) instead of
deriving new ones from an older state. Written by atomic replace with fsync (a crash leaves
the old or the new file, never half of one). The format is versioned; a file that cannot be
read is a clear error, never a silent start from zero.
"""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

import msgspec
import orjson

from .enrichment import Pending
from .events import Encoded
from .outbox import Queued
from .tracker import Step, Tracked, TrackerState

FORMAT = "hadoop-event-collector/checkpoint"
VERSION = 2
#: Versions this collector reads (1 had no backlog).
READABLE = (1, 2)


class CheckpointError(Exception):
    """The checkpoint exists but cannot be used; ``str()`` says why and what to do."""


class _Step(msgspec.Struct, kw_only=True):
    app_id: str
    seq: int
    vanished: bool
    state: str
    finished_time: int | None


class _Queued(msgspec.Struct, kw_only=True):
    type: str
    key: str
    event: msgspec.Raw  # the envelope, byte for byte as it is sent
    observed_at_ms: int
    step: _Step | None = None
    pending: Pending | None = None
    finished_app: str | None = None


class _ClusterState(msgspec.Struct, kw_only=True):
    #: ``Tracked`` as it is (its fields by name): 100k apps encode in ~15 ms, copies took 10x that.
    apps: dict[str, Tracked]
    watermark: int | None
    floor: int | None
    rm_cluster_id: int | None
    pending: dict[str, Pending]
    backlog: list[_Queued] = []


class Saved(msgspec.Struct):
    """A checkpoint as read: the acknowledged state, the enrichment queue, the queued events."""

    state: TrackerState
    pending: dict[str, Pending]
    backlog: list[Queued]


class _File(msgspec.Struct, kw_only=True):
    format: str
    version: int
    cluster: str
    state: _ClusterState


_decoder = msgspec.json.Decoder(_File)
_encoder = msgspec.json.Encoder()


def _queued_out(q: Queued) -> _Queued:
    step = q.step
    return _Queued(
        type=q.event.type,
        key=q.event.key,
        event=msgspec.Raw(q.event.encode()),
        observed_at_ms=q.observed_at_ms,
        step=None if step is None else _Step(app_id=step.app_id, seq=step.seq, vanished=step.vanished,
                                              state=step.state, finished_time=step.finished_time),
        pending=q.pending,
        finished_app=q.finished_app,
    )


def _queued_in(q: _Queued, where: str) -> Queued:
    body = bytes(q.event)
    s = q.step
    envelope = orjson.loads(body)
    event_id = envelope.get("id") if isinstance(envelope, dict) else None
    if not isinstance(event_id, str):
        raise CheckpointError(f"{where} is damaged (a queued event without an id); move it away or start with --fresh")
    return Queued(
        Encoded(q.type, q.key, event_id, body),
        len(body),
        q.observed_at_ms,
        step=None if s is None else Step(s.app_id, s.seq, s.vanished, s.state, s.finished_time),
        pending=q.pending,
        finished_app=q.finished_app,
    )


def encode(cluster: str, state: TrackerState, pending: dict[str, Pending], backlog: list[Queued] = ()) -> bytes:
    body = _ClusterState(
        apps=state.apps,
        watermark=state.watermark,
        floor=state.floor,
        rm_cluster_id=state.rm_cluster_id,
        pending=pending,
        backlog=[_queued_out(q) for q in backlog],
    )
    return _encoder.encode(_File(format=FORMAT, version=VERSION, cluster=cluster, state=body))


def decode(cluster: str, data: bytes, where: str) -> Saved:
    try:
        head = msgspec.json.decode(data, type=dict)
    except (msgspec.DecodeError, RecursionError) as exc:
        raise CheckpointError(
            f"{where} is not a readable checkpoint ({exc}); move it away or start with --fresh"
        ) from None
    if head.get("format") != FORMAT or head.get("version") not in READABLE:
        raise CheckpointError(
            f"{where} has format {head.get('format')!r} version {head.get('version')!r}; this collector reads "
            f"{FORMAT!r} version {VERSION}: upgrade the collector, or start with --fresh"
        )
    try:
        file = _decoder.decode(data)
    except (msgspec.DecodeError, RecursionError) as exc:
        raise CheckpointError(f"{where} is damaged ({exc}); move it away or start with --fresh") from None
    if file.cluster != cluster:
        raise CheckpointError(f"{where} belongs to cluster {file.cluster!r}, not {cluster!r}")
    s = file.state
    state = TrackerState(
        apps=s.apps,
        watermark=s.watermark,
        floor=s.floor,
        rm_cluster_id=s.rm_cluster_id,
    )
    return Saved(state, s.pending, [_queued_in(q, where) for q in s.backlog])


class FileStore:
    """One checkpoint file per cluster in a directory."""

    def __init__(self, directory: str | Path, cluster: str) -> None:
        self.path = Path(directory) / f"{cluster}.checkpoint.json"
        self.cluster = cluster

    def load(self) -> Saved | None:
        """The saved state, or None when there is none yet (a first start)."""
        try:
            data = self.path.read_bytes()
        except FileNotFoundError:
            return None
        except OSError as exc:
            raise CheckpointError(f"cannot read {self.path}: {exc.strerror}") from None
        return decode(self.cluster, data, str(self.path))

    def save(self, state: TrackerState, pending: dict[str, Pending], backlog: list[Queued] = ()) -> None:
        self.write(encode(self.cluster, state, pending, backlog))

    def write(self, data: bytes) -> None:
        """Replace the checkpoint with ``data`` (``encode``): atomic, durable once it returns.
        Blocking file I/O (an fsync of ~10 MB at 100k apps): the service calls it in a thread."""
        self.path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=self.path.parent, prefix=f".{self.path.name}.")
        try:
            with os.fdopen(fd, "wb") as f:
                f.write(data)
                f.flush()
                os.fsync(f.fileno())
            os.replace(tmp, self.path)
        except BaseException:
            Path(tmp).unlink(missing_ok=True)
            raise
        dir_fd = os.open(self.path.parent, os.O_RDONLY)
        try:
            os.fsync(dir_fd)  # the rename itself survives a power loss
        finally:
            os.close(dir_fd)
