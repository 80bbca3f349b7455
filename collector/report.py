"""`hadoop-collector report`: one look at a cluster, computed live from the same clients.

The statistics of the article the product grew from: cluster summary, queues as a tree
(used vs configured capacity), HDFS usage per configured path with quota use, applications
by state, user and queue with memory- and vcore-seconds over a time window, and the top
applications by scanned bytes when history servers are configured.

``build`` is pure (records in, a JSON-ready dict out); ``collect`` does the I/O; ``render``
draws tables with rich.
"""

from __future__ import annotations

import asyncio
from collections import defaultdict
from collections.abc import Iterable, Mapping
from typing import Any

from rich.console import Console
from rich.table import Table
from rich.tree import Tree

from .enrichment import Status
from .http import PeerError
from .parsing import ParseError
from .rm_models import ClusterInfo, RawApp
from .scheduler_models import QueueRecord
from .service import ClusterWorker

TOP_N = 10


def _group(apps: Iterable[RawApp], key: str) -> list[dict[str, Any]]:
    groups: dict[str, dict[str, Any]] = defaultdict(
        lambda: {"applications": 0, "memory_seconds": 0, "vcore_seconds": 0}
    )
    for app in apps:
        name = getattr(app, key) or "(none)"
        g = groups[name]
        g["applications"] += 1
        g["memory_seconds"] += max(0, app.memorySeconds or 0)
        g["vcore_seconds"] += max(0, app.vcoreSeconds or 0)
    return [{key: name, **values} for name, values in sorted(groups.items())]


def build(
    *,
    cluster: str,
    info: ClusterInfo,
    metrics: Mapping[str, int | None],
    queues: list[QueueRecord],
    hdfs: Mapping[str, dict[str, Any] | str],
    apps: list[RawApp],
    scans: Mapping[str, int | None],
    since_ms: int,
    now_ms: int,
) -> dict[str, Any]:
    """The report as plain data. ``hdfs`` maps a path to its usage or to an error message;
    ``scans`` maps an application id to the bytes it scanned (None: unknown)."""
    in_window = [a for a in apps if not a.is_terminal or (a.finishedTime or 0) >= since_ms]
    top = sorted(((b, a) for a in in_window if (b := scans.get(a.id)) is not None), key=lambda p: -p[0])[:TOP_N]
    return {
        "cluster": cluster,
        "generated_at_ms": now_ms,
        "window": {"since_ms": since_ms, "until_ms": now_ms},
        "resourcemanager": {
            "version": info.resourceManagerVersion,
            "ha_state": info.haState,
            "started_ms": info.startedOn,
        },
        "metrics": dict(metrics),
        "queues": [q.to_dict() for q in queues],
        "hdfs": [
            {"path": path, "usage": usage} if isinstance(usage, dict) else {"path": path, "error": usage}
            for path, usage in hdfs.items()
        ],
        "applications": {
            "total": len(in_window),
            "by_state": _group(in_window, "state"),
            "by_user": _group(in_window, "user"),
            "by_queue": _group(in_window, "queue"),
        },
        "top_scanned": [
            {"application_id": a.id, "name": a.name, "user": a.user, "type": a.applicationType, "input_bytes": b}
            for b, a in top
        ],
    }


async def collect(worker: ClusterWorker, since_ms: int, now_ms: int, max_history: int = 200) -> dict[str, Any]:
    """Ask the cluster's RM, NameNodes and history servers; the figures of one moment."""
    rm = worker.rm
    info, _ = await rm.cluster_info()
    metrics = await rm.cluster_metrics()
    queues = await rm.queues()
    apps = (await rm.active_apps()).apps + (await rm.ended_apps(since_ms)).apps
    hdfs: dict[str, dict[str, Any] | str] = {}
    if worker.hdfs is not None and worker.cfg.hdfs is not None:
        paths: list[str] = list(worker.cfg.hdfs.paths)  # type: ignore[arg-type]
        answers = await asyncio.gather(*(worker.hdfs.content_summary(p) for p in paths), return_exceptions=True)
        for path, answer in zip(paths, answers, strict=True):
            if isinstance(answer, (PeerError, ParseError)):
                hdfs[path] = getattr(answer, "message", str(answer))
            elif isinstance(answer, BaseException):
                raise answer
            else:
                hdfs[path] = answer[0]
    scans = await _scans(worker, [a for a in apps if a.is_terminal], max_history)
    return build(
        cluster=worker.cfg.name, info=info, metrics=metrics, queues=queues, hdfs=hdfs,
        apps=apps, scans=scans, since_ms=since_ms, now_ms=now_ms,
    )


async def _scans(worker: ClusterWorker, ended: list[RawApp], limit: int) -> dict[str, int | None]:
    """Scanned bytes of the most recently ended applications that have a history server."""
    enricher = worker.enricher
    wanted = [
        a for a in ended
        if (a.applicationType == "MAPREDUCE" and enricher.jobhistory)
        or (a.applicationType == "SPARK" and enricher.spark_history)
    ]
    wanted = sorted(wanted, key=lambda a: -(a.finishedTime or 0))[:limit]

    async def scanned(app: RawApp) -> int | None:
        server = enricher.jobhistory if app.applicationType == "MAPREDUCE" else enricher.spark_history
        assert server is not None
        outcome = await server.figures(app.id)
        figures = outcome.mapreduce or outcome.spark
        return figures.get("input_bytes") if outcome.status is Status.OK and figures else None

    values = await asyncio.gather(*(scanned(a) for a in wanted))
    return {a.id: v for a, v in zip(wanted, values, strict=True)}


def _size(n: int | None) -> str:
    if n is None:
        return "-"
    value = float(n)
    for unit in ("B", "KiB", "MiB", "GiB", "TiB", "PiB"):
        if value < 1024 or unit == "PiB":
            return f"{value:.0f} {unit}" if unit == "B" else f"{value:.1f} {unit}"
        value /= 1024
    return str(n)


def _count(value: int | None) -> str:
    return "-" if value is None else str(value)


def _pct(value: float | None) -> str:
    return "-" if value is None else f"{value:.1f}%"


def render(report: dict[str, Any], console: Console) -> None:
    """Tables for a terminal."""
    rm, m = report["resourcemanager"], report["metrics"]
    summary = Table(title=f"Cluster {report['cluster']} (RM {rm['version']}, {rm['ha_state']})")
    for column in ("apps running", "apps pending", "memory used / total", "vcores used / total", "nodes active"):
        summary.add_column(column)
    summary.add_row(
        _count(m.get("apps_running")),
        _count(m.get("apps_pending")),
        f"{_count(m.get('memory_allocated_mb'))} / {_count(m.get('memory_total_mb'))} MB",
        f"{_count(m.get('vcores_allocated'))} / {_count(m.get('vcores_total'))}",
        _count(m.get("nodes_active")),
    )
    console.print(summary)

    tree = Tree("Queues (used / configured capacity, absolute used)")
    nodes: dict[str, Tree] = {}
    for q in report["queues"]:
        label = (f"{q['name']}  {_pct(q['used_capacity'])} / {_pct(q['capacity'])}  "
                 f"abs {_pct(q['absolute_used_capacity'])}  apps {_count(q['applications'])}  {q['state'] or ''}")
        parent = nodes.get(q["parent"]) if q["parent"] else None
        nodes[q["path"]] = (parent or tree).add(label)
    console.print(tree)

    if report["hdfs"]:
        hdfs = Table(title="HDFS usage")
        for column in ("path", "files", "dirs", "length", "consumed", "space quota", "quota used"):
            hdfs.add_column(column)
        for row in report["hdfs"]:
            if "error" in row:
                hdfs.add_row(row["path"], "error", "", row["error"], "", "", "")
                continue
            u = row["usage"]
            quota = u["space_quota_bytes"]
            used = f"{100 * u['space_consumed_bytes'] / quota:.1f}%" if quota else "-"
            hdfs.add_row(row["path"], str(u["files"]), str(u["directories"]), _size(u["length_bytes"]),
                         _size(u["space_consumed_bytes"]), _size(quota), used)
        console.print(hdfs)

    apps = report["applications"]
    for key in ("state", "user", "queue"):
        table = Table(title=f"Applications by {key} (in the window: {apps['total']})")
        for column in (key, "applications", "memory-seconds", "vcore-seconds"):
            table.add_column(column)
        for row in apps[f"by_{key}"]:
            table.add_row(str(row[key]), str(row["applications"]), str(row["memory_seconds"]),
                          str(row["vcore_seconds"]))
        console.print(table)

    if report["top_scanned"]:
        top = Table(title="Top applications by scanned bytes")
        for column in ("application", "name", "user", "type", "scanned"):
            top.add_column(column)
        for row in report["top_scanned"]:
            top.add_row(row["application_id"], str(row["name"]), str(row["user"]), str(row["type"]),
                        _size(row["input_bytes"]))
        console.print(top)
