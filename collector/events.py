"""Building events: CloudEvents 1.0 envelopes (structured JSON mode) around typed payloads.

Pure functions: time is passed in. Event ids are UUIDv5 of what was observed (cluster,
application, per-application sequence number, change, states), so the same observation
derived again (a delivery retried, or replayed from a checkpoint) yields the same id and
consumers can dedupe on it.
"""

from __future__ import annotations

import hashlib
import time
import uuid
from dataclasses import dataclass, field
from typing import Any

import orjson

from .enrichment import Outcome, Pending
from .rm_models import TERMINAL_STATES, ClusterInfo, RawApp, resource_seconds
from .tracker import Change, Transition

SPEC_VERSION = "1.0"
SCHEMA_PREFIX = "urn:hadoop-event-collector:schema:"
_ID_NAMESPACE = uuid.UUID("6f1c8a52-3d0e-4b5e-9a51-2f4f3c0e7d11")

STATE_CHANGED = "yarn.application.state_changed"
VANISHED = "yarn.application.vanished"
FINISHED = "yarn.application.finished"
CLUSTER_SNAPSHOT = "yarn.cluster.snapshot"
QUEUE_SNAPSHOT = "yarn.queue.snapshot"
HDFS_SNAPSHOT = "hdfs.usage.snapshot"
HEARTBEAT = "collector.heartbeat"

#: Major version of each event type's ``data`` schema.
SCHEMA_VERSIONS: dict[str, int] = {
    STATE_CHANGED: 1, VANISHED: 1, FINISHED: 1, CLUSTER_SNAPSHOT: 1, QUEUE_SNAPSHOT: 1, HDFS_SNAPSHOT: 1,
    HEARTBEAT: 1,
}

#: Which configurable topic each type goes to. All events of one application share a
#: topic (and a key), so they stay in one partition, in order.
TOPIC_OF_TYPE: dict[str, str] = {
    STATE_CHANGED: "applications",
    VANISHED: "applications",
    FINISHED: "applications",
    CLUSTER_SNAPSHOT: "cluster",
    QUEUE_SNAPSHOT: "queues",
    HDFS_SNAPSHOT: "hdfs",
    HEARTBEAT: "heartbeat",
}

DEFAULT_DIAGNOSTICS_LIMIT = 4096
#: Other free text (names, tags, URLs) is bounded too: any user picks an app's name, and one
#: huge name must not make an event too large for Kafka and block its application.
TEXT_LIMIT = 1024
TRUNCATION_MARKER = "...[truncated {} chars]"
_LAST_MS = 253402300799999  # 9999-12-31T23:59:59.999Z: beyond it no timestamp is real


@dataclass(frozen=True, slots=True)
class Event:
    type: str
    key: str
    envelope: dict[str, Any]
    _encoded: list[bytes] = field(default_factory=list, compare=False, repr=False)

    @property
    def topic_kind(self) -> str:
        return TOPIC_OF_TYPE[self.type]

    @property
    def id(self) -> str:
        return self.envelope["id"]

    def encode(self) -> bytes:
        """The JSON bytes, encoded once (the backlog counts them, the sink sends them)."""
        if not self._encoded:
            self._encoded.append(orjson.dumps(self.envelope))
        return self._encoded[0]

    def queued(self) -> Encoded:
        """What the backlog keeps of it: the bytes and what delivery needs (``Encoded``)."""
        return Encoded(self.type, self.key, self.id, self.encode())


@dataclass(frozen=True, slots=True)
class Encoded:
    """An event as it waits for Kafka: its bytes, type, key and id, without the envelope's
    dicts. A backlog of 100k events kept as envelopes costs several times their bytes, in small
    objects scattered through the heap that pin it after the backlog is gone."""

    type: str
    key: str
    id: str
    payload: bytes

    @property
    def topic_kind(self) -> str:
        return TOPIC_OF_TYPE[self.type]

    def encode(self) -> bytes:
        return self.payload

    @property
    def envelope(self) -> dict[str, Any]:
        """The envelope, decoded again from the bytes (for readers of a sink, not the hot path)."""
        return orjson.loads(self.payload)


#: What a sink takes: an event as built, or as the backlog keeps it.
Publishable = Event | Encoded


def schema_uri(event_type: str) -> str:
    return f"{SCHEMA_PREFIX}{event_type}:v{SCHEMA_VERSIONS[event_type]}"


_ID_PREFIX = _ID_NAMESPACE.bytes


def event_id(*parts: object) -> str:
    """UUIDv5 (RFC 4122: SHA-1 of namespace and name) of the parts, computed directly: it is
    made for every event, and ``uuid.uuid5`` builds two UUID objects on the way."""
    name = "\x1f".join("" if p is None else str(p) for p in parts)
    digest = bytearray(hashlib.sha1(_ID_PREFIX + name.encode("utf-8"), usedforsecurity=False).digest()[:16])
    digest[6] = (digest[6] & 0x0F) | 0x50  # version 5
    digest[8] = (digest[8] & 0x3F) | 0x80  # RFC 4122 variant
    h = digest.hex()
    return f"{h[:8]}-{h[8:12]}-{h[12:16]}-{h[16:20]}-{h[20:]}"


def rfc3339(ms: int) -> str:
    """``2026-12-03T16:11:48.810Z`` (UTC, milliseconds)."""
    seconds, millis = divmod(ms, 1000)
    return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(seconds)) + f".{millis:03d}Z"


def _envelope(
    event_type: str, cluster: str, subject: str, ev_id: str, time_ms: int, data: dict, service: str = "yarn"
) -> dict:
    return {
        "specversion": SPEC_VERSION,
        "id": ev_id,
        "source": f"hadoop://{cluster}/{service}",
        "type": event_type,
        "time": rfc3339(time_ms),
        "subject": subject,
        "dataschema": schema_uri(event_type),
        "datacontenttype": "application/json",
        "data": data,
    }


def _present(value: int | None) -> int | None:
    """RM fields use -1 (after the end) and 0 (times not yet reached) for "no value"."""
    return value if value is not None and value > 0 else None


def _plausible(ms: int | None) -> int | None:
    """An RM timestamp usable as the event's time, or None (then the observation time is)."""
    return ms if ms is not None and 0 < ms <= _LAST_MS else None


def _non_negative(value: int | None) -> int | None:
    return value if value is not None and value >= 0 else None


def _tags(raw: str | None) -> list[str]:
    return [truncate(t, TEXT_LIMIT) or "" for t in (raw or "").split(",") if t]


def _text(value: str | None) -> str | None:
    return truncate(value, TEXT_LIMIT)


def truncate(text: str | None, limit: int) -> str | None:
    if text is None or len(text) <= limit:
        return text
    return text[:limit] + TRUNCATION_MARKER.format(len(text) - limit)


def application_record(app: RawApp, diagnostics_limit: int = DEFAULT_DIAGNOSTICS_LIMIT) -> dict[str, Any]:
    """The RM's record of an application, normalised: absent stays absent (null), never 0."""
    nn = _non_negative
    return {
        "id": app.id,
        "name": _text(app.name),
        "user": _text(app.user),
        "queue": _text(app.queue),
        "type": _text(app.applicationType),
        "tags": _tags(app.applicationTags),
        "priority": app.priority,
        "state": app.state,
        "final_status": app.finalStatus,
        "progress": app.progress,
        "started_time_ms": _present(app.startedTime),
        "launch_time_ms": _present(app.launchTime),
        "finished_time_ms": _present(app.finishedTime),
        "elapsed_ms": nn(app.elapsedTime),
        "diagnostics": truncate(app.diagnostics, diagnostics_limit) or None,
        "tracking_ui": _text(app.trackingUI),
        "tracking_url": _text(app.trackingUrl),
        "am_host_http_address": _text(app.amHostHttpAddress) or None,
        "am_container_logs": _text(app.amContainerLogs) or None,
        "allocated": {"memory_mb": nn(app.allocatedMB), "vcores": nn(app.allocatedVCores)},
        "reserved": {"memory_mb": nn(app.reservedMB), "vcores": nn(app.reservedVCores)},
        "running_containers": nn(app.runningContainers),
        "memory_seconds": nn(app.memorySeconds),
        "vcore_seconds": nn(app.vcoreSeconds),
        "resource_seconds": resource_seconds(app.resourceSecondsMap),
        "preempted": {
            "memory_mb": nn(app.preemptedResourceMB),
            "vcores": nn(app.preemptedResourceVCores),
            "am_containers": nn(app.numAMContainerPreempted),
            "non_am_containers": nn(app.numNonAMContainerPreempted),
            "memory_seconds": nn(app.preemptedMemorySeconds),
            "vcore_seconds": nn(app.preemptedVcoreSeconds),
        },
        "queue_usage_percent": app.queueUsagePercentage,
        "cluster_usage_percent": app.clusterUsagePercentage,
        "log_aggregation_status": _text(app.logAggregationStatus),
        "unmanaged": app.unmanagedApplication,
        "rm_cluster_id": app.clusterId,
    }


@dataclass(frozen=True, slots=True)
class EventContext:
    """Per-cluster facts every event carries."""

    cluster: str
    rm_cluster_id: int | None
    diagnostics_limit: int = DEFAULT_DIAGNOSTICS_LIMIT


def application_key(cluster: str, app_id: str) -> str:
    return f"{cluster}/{app_id}"


def transition_event(ctx: EventContext, t: Transition, observed_at_ms: int) -> Event:
    key = application_key(ctx.cluster, t.app_id)
    ev_id = event_id(ctx.cluster, t.app_id, t.seq, t.change.value, t.previous_state, t.state)
    if t.change is Change.VANISHED:
        data = {
            "cluster": ctx.cluster,
            "rm_cluster_id": ctx.rm_cluster_id,
            "application_id": t.app_id,
            "seq": t.seq,
            "last_state": t.state,
            "observed_at_ms": observed_at_ms,
            "reason": "not found on the ResourceManager: evicted by its retention limit, "
            "or lost in a restart without recovery",
        }
        return Event(VANISHED, key, _envelope(VANISHED, ctx.cluster, t.app_id, ev_id, observed_at_ms, data))
    assert t.app is not None
    app = t.app
    data = {
        "cluster": ctx.cluster,
        "rm_cluster_id": ctx.rm_cluster_id,
        "application_id": t.app_id,
        "seq": t.seq,
        "previous_state": t.previous_state,
        "state": t.state,
        "final_status": app.finalStatus,
        "first_seen": t.previous_state is None,
        "observed_at_ms": observed_at_ms,
        "application": application_record(app, ctx.diagnostics_limit),
    }
    # CloudEvents "time" is when it happened: the RM stamps the end; other states we
    # only know from observing them.
    when = _plausible(app.finishedTime) if t.state in TERMINAL_STATES else None
    return Event(
        STATE_CHANGED, key, _envelope(STATE_CHANGED, ctx.cluster, t.app_id, ev_id, when or observed_at_ms, data)
    )


def finished_event(ctx: EventContext, p: Pending, outcome: Outcome, now_ms: int) -> Event:
    """The one final record of an ended application: the RM's figures plus what its history
    server says it scanned, or why that is unknown. Exactly one per application (its id
    depends on nothing but the application)."""
    data = {
        "cluster": ctx.cluster,
        "rm_cluster_id": ctx.rm_cluster_id,
        "application_id": p.app_id,
        "state": p.state,
        "final_status": p.final_status,
        "succeeded": p.state == "FINISHED" and p.final_status == "SUCCEEDED",
        "observed_at_ms": now_ms,
        "application": p.record,
        "enrichment": {
            "status": outcome.status.value,
            "reason": outcome.reason,
            "source": outcome.source or p.source,
            "attempts": p.attempts,
            "after_end_ms": max(0, now_ms - p.ended_ms) if p.ended_ms else None,
            "mapreduce": outcome.mapreduce,
            "spark": outcome.spark,
        },
    }
    ev_id = event_id(ctx.cluster, p.app_id, "finished")
    key = application_key(ctx.cluster, p.app_id)
    when = _plausible(p.ended_ms) or now_ms
    return Event(FINISHED, key, _envelope(FINISHED, ctx.cluster, p.app_id, ev_id, when, data))


def _snapshot(event_type: str, cluster: str, subject: str, key: str, taken_ms: int, data: dict, service: str) -> Event:
    ev_id = event_id(cluster, event_type, subject, taken_ms)
    return Event(event_type, key, _envelope(event_type, cluster, subject, ev_id, taken_ms, data, service))


def cluster_snapshot(ctx: EventContext, info: ClusterInfo, metrics: dict[str, int | None], taken_ms: int) -> Event:
    data = {
        "cluster": ctx.cluster,
        "rm_cluster_id": info.id,
        "taken_at_ms": taken_ms,
        "resourcemanager": {
            "state": info.state,
            "ha_state": info.haState,
            "started_ms": _plausible(info.startedOn),
            "version": info.resourceManagerVersion,
            "hadoop_version": info.hadoopVersion,
            "state_store": info.rmStateStoreName,
        },
        "metrics": metrics,
    }
    return _snapshot(CLUSTER_SNAPSHOT, ctx.cluster, ctx.cluster, ctx.cluster, taken_ms, data, "yarn")


def queue_snapshot(ctx: EventContext, queue: dict[str, Any], taken_ms: int) -> Event:
    data = {"cluster": ctx.cluster, "rm_cluster_id": ctx.rm_cluster_id, "taken_at_ms": taken_ms, "queue": queue}
    path = queue["path"]
    return _snapshot(QUEUE_SNAPSHOT, ctx.cluster, path, f"{ctx.cluster}/{path}", taken_ms, data, "yarn")


def hdfs_snapshot(cluster: str, path: str, usage: dict[str, Any], namenode: str, taken_ms: int) -> Event:
    data = {"cluster": cluster, "path": path, "namenode": namenode, "taken_at_ms": taken_ms, "usage": usage}
    return _snapshot(HDFS_SNAPSHOT, cluster, path, f"{cluster}{path}", taken_ms, data, "hdfs")


@dataclass(frozen=True, slots=True)
class Liveness:
    """What a heartbeat tells about one cluster's collection (plain values, taken by the service)."""

    started_ms: int  # when this collector process started
    last_poll_ok_ms: int | None  # the last poll of the RM that succeeded
    last_poll_error: str | None  # the last poll's error, None when it succeeded
    active_rm: str | None
    watermark_ms: int | None
    tracked_apps: int
    backlog_events: int
    enrichment_pending: int
    interval_ms: int  # the next heartbeat is due this much later


def heartbeat(cluster: str, live: Liveness, version: str, taken_ms: int) -> Event:
    """``collector.heartbeat``: sent every interval, so consumers can tell a quiet cluster
    (heartbeats, no application events) from a dead collector (no heartbeats)."""
    data = {
        "cluster": cluster,
        "taken_at_ms": taken_ms,
        "collector_version": version,
        "started_ms": live.started_ms,
        "interval_ms": live.interval_ms,
        "last_poll_ok_ms": live.last_poll_ok_ms,
        "last_poll_error": truncate(live.last_poll_error, TEXT_LIMIT),
        "active_resourcemanager": live.active_rm,
        "watermark_ms": live.watermark_ms,
        "tracked_applications": live.tracked_apps,
        "backlog_events": live.backlog_events,
        "enrichment_pending": live.enrichment_pending,
    }
    return _snapshot(HEARTBEAT, cluster, cluster, cluster, taken_ms, data, "collector")
