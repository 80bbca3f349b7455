"""Cluster metrics and HDFS content summaries as typed records (absent stays absent)."""

from __future__ import annotations

from typing import Annotated, Any

import msgspec
import orjson

from .parsing import LONG_MAX, Long, ParseError, as_int, first_line

#: /ws/v1/cluster/metrics field -> our name. An RM version that lacks a field leaves it out.
METRICS = {
    "appsSubmitted": "apps_submitted", "appsCompleted": "apps_completed", "appsPending": "apps_pending",
    "appsRunning": "apps_running", "appsFailed": "apps_failed", "appsKilled": "apps_killed",
    "totalMB": "memory_total_mb", "allocatedMB": "memory_allocated_mb", "availableMB": "memory_available_mb",
    "reservedMB": "memory_reserved_mb", "pendingMB": "memory_pending_mb",
    "totalVirtualCores": "vcores_total", "allocatedVirtualCores": "vcores_allocated",
    "availableVirtualCores": "vcores_available", "reservedVirtualCores": "vcores_reserved",
    "pendingVirtualCores": "vcores_pending",
    "containersAllocated": "containers_allocated", "containersReserved": "containers_reserved",
    "containersPending": "containers_pending",
    "totalNodes": "nodes_total", "activeNodes": "nodes_active", "lostNodes": "nodes_lost",
    "unhealthyNodes": "nodes_unhealthy", "decommissioningNodes": "nodes_decommissioning",
    "decommissionedNodes": "nodes_decommissioned", "rebootedNodes": "nodes_rebooted",
    "shutdownNodes": "nodes_shutdown",
}


def parse_cluster_metrics(body: bytes) -> dict[str, int | None]:
    try:
        raw = orjson.loads(body)["clusterMetrics"]
    except (orjson.JSONDecodeError, KeyError, TypeError) as exc:
        raise ParseError(f"cluster metrics unreadable: {type(exc).__name__}: {exc}") from None
    if not isinstance(raw, dict):
        raise ParseError("cluster metrics unreadable: clusterMetrics is not an object")
    return {ours: as_int(raw[theirs]) for theirs, ours in METRICS.items() if theirs in raw}


#: Sizes and counts: a negative one is no measurement at all (and no event could carry it).
Count = Annotated[int, msgspec.Meta(ge=0, le=LONG_MAX)]


class _StorageQuota(msgspec.Struct):
    consumed: Long | None = None
    quota: Long | None = None


class _ContentSummary(msgspec.Struct, kw_only=True):
    directoryCount: Count
    fileCount: Count
    length: Count
    spaceConsumed: Count
    quota: Long | None = None
    spaceQuota: Long | None = None
    ecPolicy: str | None = None
    typeQuota: dict[str, _StorageQuota] | None = None


class _Answer(msgspec.Struct):
    ContentSummary: _ContentSummary


_summary_decoder = msgspec.json.Decoder(_Answer, strict=False)


def _quota(value: int | None) -> int | None:
    return value if value is not None and value >= 0 else None  # -1: no quota


def parse_content_summary(body: bytes) -> dict[str, Any]:
    """WebHDFS GETCONTENTSUMMARY; quotas of -1 (none) become null."""
    try:
        cs = _summary_decoder.decode(body).ContentSummary
    except (msgspec.DecodeError, RecursionError) as exc:  # msgspec: RecursionError past the depth limit
        raise ParseError(f"content summary unreadable: {first_line(exc)}") from None
    return {
        "directories": cs.directoryCount,
        "files": cs.fileCount,
        "length_bytes": cs.length,
        "space_consumed_bytes": cs.spaceConsumed,
        "name_quota": _quota(cs.quota),
        "space_quota_bytes": _quota(cs.spaceQuota),
        "erasure_coding_policy": cs.ecPolicy or None,
        "storage_type_quotas": {
            kind: {"consumed_bytes": q.consumed, "quota_bytes": _quota(q.quota)}
            for kind, q in (cs.typeQuota or {}).items()
        }
        or None,
    }


def remote_exception(body: bytes) -> tuple[str, str] | None:
    """``(exception, message)`` of a Hadoop RemoteException body, or None."""
    try:
        raw = orjson.loads(body)["RemoteException"]
        return str(raw.get("exception", "")), str(raw.get("message", ""))
    except (orjson.JSONDecodeError, KeyError, TypeError, AttributeError):
        return None
