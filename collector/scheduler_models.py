"""Every scheduler queue as a flat list of typed records, whatever the scheduler.

``/ws/v1/cluster/scheduler`` has three shapes: capacity (``queues.queue`` nested at any
depth, short names, ``queuePath`` on 3.x), fair (``rootQueue.childQueues.queue``, full
names) and fifo (one queue). Hadoop 2.x also sends resources as strings
(``"<memory:8192, vCores:4>"``) and percentages as ``"NaN"``; both are absorbed here.
"""

from __future__ import annotations

import re
from dataclasses import asdict, dataclass
from typing import Any

import orjson

from .parsing import ParseError, as_int, as_number, as_text


@dataclass(frozen=True, slots=True)
class Resources:
    memory_mb: int | None
    vcores: int | None


@dataclass(frozen=True, slots=True)
class QueueRecord:
    path: str
    parent: str | None
    name: str
    scheduler: str  # capacity | fair | fifo
    leaf: bool
    state: str | None
    capacity: float | None  # percent of the parent (capacity), or of the cluster (fifo)
    used_capacity: float | None
    max_capacity: float | None
    absolute_capacity: float | None
    absolute_used_capacity: float | None
    absolute_max_capacity: float | None
    used: Resources | None
    min_resources: Resources | None
    max_resources: Resources | None
    fair_share: Resources | None
    am_limit: Resources | None
    am_used: Resources | None
    applications: int | None
    active_applications: int | None
    pending_applications: int | None
    containers: int | None
    max_applications: int | None

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


_RESOURCE_TEXT = re.compile(r"memory:\s*(-?\d+).*?vCores:\s*(-?\d+)", re.IGNORECASE)


def _resources(value: Any) -> Resources | None:
    """``{"memory": m, "vCores": v}`` (3.x also ``memoryMB``) or ``"<memory:m, vCores:v>"``."""
    if isinstance(value, dict):
        memory = value.get("memory", value.get("memoryMB"))
        return Resources(as_int(memory), as_int(value.get("vCores")))
    if isinstance(value, str):
        match = _RESOURCE_TEXT.search(value)
        if match:
            return Resources(as_int(match.group(1)), as_int(match.group(2)))
    return None


def _children(node: dict[str, Any], key: str) -> list[dict[str, Any]]:
    """Child queues in every shape seen: ``{"queue": [...]}``, ``{"queue": {...}}`` and,
    for the fair scheduler before Hadoop 2.8 (YARN-2336), a bare list or a bare object."""
    wrapper = node.get(key)
    if isinstance(wrapper, dict):
        items = wrapper["queue"] if "queue" in wrapper else ([wrapper] if "queueName" in wrapper else [])
    else:
        items = wrapper
    if isinstance(items, dict):
        items = [items]
    return [q for q in items or [] if isinstance(q, dict)] if isinstance(items, list) else []


def parse_scheduler(body: bytes) -> list[QueueRecord]:
    try:
        info = orjson.loads(body)["scheduler"]["schedulerInfo"]
    except (orjson.JSONDecodeError, KeyError, TypeError) as exc:
        raise ParseError(f"scheduler answer unreadable: {type(exc).__name__}: {exc}") from None
    if not isinstance(info, dict):
        raise ParseError("scheduler answer unreadable: schedulerInfo is not an object")
    kind = str(info.get("type", ""))
    out: list[QueueRecord] = []
    try:
        if kind == "fairScheduler":
            root = info.get("rootQueue")
            if isinstance(root, dict):
                _walk(root, None, "fair", "childQueues", out)
        elif kind == "fifoScheduler":
            out.append(_record(info | {"queueName": "root"}, "root", None, "fifo", True))
        else:  # capacityScheduler (and look-alikes)
            _walk(info | {"queueName": info.get("queueName", "root")}, None, "capacity", "queues", out)
    except RecursionError:  # queues nested about a thousand deep: no real scheduler, but no crash
        raise ParseError("scheduler answer unreadable: queues nested too deeply") from None
    return out


def _walk(node: dict[str, Any], parent: str | None, scheduler: str, key: str, out: list[QueueRecord]) -> None:
    name = str(node.get("queueName") or "?")
    if scheduler == "fair" or node.get("queuePath"):
        path = str(node.get("queuePath") or name)  # fair scheduler names are full paths already
    else:
        path = name if parent is None else f"{parent}.{name}"
    children = _children(node, key)
    out.append(_record(node, path, parent, scheduler, not children))
    for child in children:
        _walk(child, path, scheduler, key, out)


def _record(q: dict[str, Any], path: str, parent: str | None, scheduler: str, leaf: bool) -> QueueRecord:
    fifo = scheduler == "fifo"
    return QueueRecord(
        path=path,
        parent=parent,
        name=path.rsplit(".", 1)[-1],
        scheduler=scheduler,
        leaf=leaf,
        state=as_text(q.get("state") or q.get("qstate")),
        capacity=_pct(q.get("capacity"), fifo),
        used_capacity=_pct(q.get("usedCapacity"), fifo),
        max_capacity=as_number(q.get("maxCapacity")),
        absolute_capacity=as_number(q.get("absoluteCapacity")),
        absolute_used_capacity=as_number(q.get("absoluteUsedCapacity")),
        absolute_max_capacity=as_number(q.get("absoluteMaxCapacity")),
        used=_resources(q.get("resourcesUsed")) or _resources(q.get("usedResources")),
        min_resources=_resources(q.get("minResources")),
        max_resources=_resources(q.get("maxResources")),
        fair_share=_resources(q.get("fairResources")),
        am_limit=_resources(q.get("AMResourceLimit")) or _resources(q.get("amMaxResources")),
        am_used=_resources(q.get("usedAMResource")) or _resources(q.get("amUsedResources")),
        applications=as_int(q.get("numApplications")),
        active_applications=as_int(q.get("numActiveApplications", q.get("numActiveApps"))),
        pending_applications=as_int(q.get("numPendingApplications", q.get("numPendingApps"))),
        containers=as_int(q.get("numContainers", q.get("allocatedContainers"))),
        max_applications=as_int(q.get("maxApplications", q.get("maxApps"))),
    )


def _pct(value: Any, fraction: bool) -> float | None:
    """Percent; the fifo scheduler reports fractions of 1 (a fraction too large to scale is junk)."""
    number = as_number(value)
    if number is None or not fraction:
        return number
    return as_number(number * 100)  # 1e308 * 100 is inf: unknown, not a figure
