"""Snapshot events through the worker: scripted RM and scripted NameNodes replaying
tests/cases (standby NameNode, missing path), schema-valid, one bad path never stops others."""

from __future__ import annotations

import orjson
import pytest
from aiohttp.test_utils import TestServer

from collector.config import ClusterConfig, HdfsConfig, ResourceManagerConfig
from collector.schemas import validate
from collector.service import ClusterWorker
from collector.webhdfs_client import NoActiveNameNode
from tests.scripted_history import ScriptedHistory, case
from tests.scripted_rm import ScriptedRM

from .test_rm_faults import MemorySink

SUMMARY = "/webhdfs/v1/warehouse/sales"
GONE = "/webhdfs/v1/warehouse/tmp_gone"


async def test_hdfs_usage_fails_over_and_one_bad_path_does_not_stop_the_others(serve):
    rm = await serve(ScriptedRM())
    standby, active = await serve(ScriptedHistory()), await serve(ScriptedHistory())
    for path in (SUMMARY, GONE):
        standby.routes[path] = (403, "application/json", case("webhdfs/standby-namenode.json"))
    active.json(SUMMARY, case("webhdfs/content-summary-3x.json"))
    active.routes[GONE] = (404, "application/json", case("webhdfs/no-such-path.json"))
    cfg = ClusterConfig(
        name="c1",
        resourcemanager=ResourceManagerConfig(urls=[rm.url]),
        hdfs=HdfsConfig(namenode_urls=[standby.url, active.url], paths=["/warehouse/tmp_gone", "/warehouse/sales"]),
    )
    sink = MemorySink()
    worker = ClusterWorker(cfg, sink)
    assert await worker.hdfs_snapshot() == 1  # queued
    assert await worker.deliver() == 1
    (event,) = sink.events
    validate(event.envelope)
    data = event.envelope["data"]
    assert event.key == "c1/warehouse/sales" and event.envelope["source"] == "hadoop://c1/hdfs"
    assert data["path"] == "/warehouse/sales" and data["namenode"] == active.url
    assert data["usage"]["files"] == 340 and data["usage"]["space_quota_bytes"] == 1099511627776
    assert worker.hdfs.active_url == active.url and worker.hdfs.failovers == 1
    await worker.close()


async def test_queue_and_cluster_snapshots_are_schema_valid(serve, monkeypatch):
    rm = await serve(ScriptedRM())
    from aiohttp import web

    app = rm.app()

    async def scheduler(request):
        return web.Response(body=case("scheduler/capacity-nested-2x.json"), content_type="application/json")

    async def metrics(request):
        return web.json_response({"clusterMetrics": {"appsSubmitted": 7, "totalMB": 4096, "activeNodes": 1}})

    app.router.add_get("/ws/v1/cluster/scheduler", scheduler)
    app.router.add_get("/ws/v1/cluster/metrics", metrics)
    server = TestServer(app, host="127.0.0.1")
    await server.start_server()
    cfg = ClusterConfig(name="c1", resourcemanager=ResourceManagerConfig(urls=[str(server.make_url("")).rstrip("/")]))
    sink = MemorySink()
    worker = ClusterWorker(cfg, sink)
    assert await worker.queue_snapshot() == 5
    assert await worker.cluster_snapshot() == 1
    assert await worker.deliver() == 6
    for event in sink.events:
        validate(event.envelope)
    keys = [e.key for e in sink.events if e.type == "yarn.queue.snapshot"]
    # the id of the RM that answered, even before any application poll ran
    assert {e.envelope["data"]["rm_cluster_id"] for e in sink.events} == {1700000000000}
    assert keys == ["c1/root", "c1/root.prod", "c1/root.prod.etl", "c1/root.prod.reports", "c1/root.default"]
    cluster = sink.events[-1].envelope["data"]
    assert cluster["metrics"] == {"apps_submitted": 7, "memory_total_mb": 4096, "nodes_active": 1}
    assert cluster["resourcemanager"]["ha_state"] == "ACTIVE"
    assert orjson.loads(sink.events[-1].encode())["type"] == "yarn.cluster.snapshot"
    await worker.close()
    await server.close()


async def test_a_hung_namenode_fails_the_step_once_and_never_holds_up_a_stop(serve):
    import asyncio
    import time

    rm = await serve(ScriptedRM())
    hung = await serve(ScriptedHistory())
    for i in range(6):
        hung.json(f"/webhdfs/v1/p{i}", case("webhdfs/content-summary-3x.json"))
        hung.delay[f"/webhdfs/v1/p{i}"] = 30
    cfg = ClusterConfig(
        name="c1",
        resourcemanager=ResourceManagerConfig(urls=[rm.url]),
        hdfs=HdfsConfig(namenode_urls=[hung.url], paths=[f"/p{i}" for i in range(6)], spacing="0s"),
    )
    cfg.poll.timeout = 0.5
    cfg.snapshots.hdfs_interval = 0.1
    worker = ClusterWorker(cfg, MemorySink())
    started = time.monotonic()
    with pytest.raises(NoActiveNameNode):
        await worker.hdfs_snapshot()
    assert len(hung.requests) == 1 and time.monotonic() - started < 3  # the other five never waited
    # and a stop while a snapshot hangs is immediate
    cfg.poll.timeout = 30
    worker2 = ClusterWorker(cfg, MemorySink())
    stop = asyncio.Event()
    task = asyncio.create_task(worker2.run(stop))
    await asyncio.sleep(0.5)
    stopped = time.monotonic()
    stop.set()
    await asyncio.wait_for(task, 5)
    assert time.monotonic() - stopped < 2
    await worker.close()
    await worker2.close()
