"""The checkpoint: what a cluster's collector needs to resume (tracked applications, the
watermark, the enrichment queue), kept in a local file.

Written only after Kafka acknowledged every event derived from it, by atomic replace with
fsync (a crash leaves the old or the new file, never half of one). The format is versioned;
a file that cannot be read is a clear error, never a silent start from zero.
"""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

import msgspec

from .enrichment import Pending
from .tracker import Tracked, TrackerState

FORMAT = "hadoop-event-collector/checkpoint"
VERSION = 1


class CheckpointError(Exception):
    """The checkpoint exists but cannot be used; ``str()`` says why and what to do."""


class _Tracked(msgspec.Struct, kw_only=True):
    state: str
    seq: int
    finished_time: int | None = None
    visible: bool = True
    vanished_at: int | None = None


class _ClusterState(msgspec.Struct, kw_only=True):
    apps: dict[str, _Tracked]
    watermark: int | None
    floor: int | None
    rm_cluster_id: int | None
    pending: dict[str, Pending]


class _File(msgspec.Struct, kw_only=True):
    format: str
    version: int
    cluster: str
    state: _ClusterState


_decoder = msgspec.json.Decoder(_File)
_encoder = msgspec.json.Encoder()


def encode(cluster: str, state: TrackerState, pending: dict[str, Pending]) -> bytes:
    body = _ClusterState(
        apps={k: _Tracked(state=t.state, seq=t.seq, finished_time=t.finished_time, visible=t.visible,
                          vanished_at=t.vanished_at) for k, t in state.apps.items()},
        watermark=state.watermark,
        floor=state.floor,
        rm_cluster_id=state.rm_cluster_id,
        pending=pending,
    )
    return _encoder.encode(_File(format=FORMAT, version=VERSION, cluster=cluster, state=body))


def decode(cluster: str, data: bytes, where: str) -> tuple[TrackerState, dict[str, Pending]]:
    try:
        head = msgspec.json.decode(data, type=dict)
    except msgspec.DecodeError as exc:
        raise CheckpointError(
            f"{where} is not a readable checkpoint ({exc}); move it away or start with --fresh"
        ) from None
    if head.get("format") != FORMAT or head.get("version") != VERSION:
        raise CheckpointError(
            f"{where} has format {head.get('format')!r} version {head.get('version')!r}; this collector reads "
            f"{FORMAT!r} version {VERSION}: upgrade the collector, or start with --fresh"
        )
    try:
        file = _decoder.decode(data)
    except msgspec.DecodeError as exc:
        raise CheckpointError(f"{where} is damaged ({exc}); move it away or start with --fresh") from None
    if file.cluster != cluster:
        raise CheckpointError(f"{where} belongs to cluster {file.cluster!r}, not {cluster!r}")
    s = file.state
    state = TrackerState(
        apps={k: Tracked(t.state, t.seq, t.finished_time, t.visible, t.vanished_at) for k, t in s.apps.items()},
        watermark=s.watermark,
        floor=s.floor,
        rm_cluster_id=s.rm_cluster_id,
    )
    return state, s.pending


class FileStore:
    """One checkpoint file per cluster in a directory."""

    def __init__(self, directory: str | Path, cluster: str) -> None:
        self.path = Path(directory) / f"{cluster}.checkpoint.json"
        self.cluster = cluster

    def load(self) -> tuple[TrackerState, dict[str, Pending]] | None:
        """The saved state, or None when there is none yet (a first start)."""
        try:
            data = self.path.read_bytes()
        except FileNotFoundError:
            return None
        except OSError as exc:
            raise CheckpointError(f"cannot read {self.path}: {exc.strerror}") from None
        return decode(self.cluster, data, str(self.path))

    def save(self, state: TrackerState, pending: dict[str, Pending]) -> None:
        data = encode(self.cluster, state, pending)
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
