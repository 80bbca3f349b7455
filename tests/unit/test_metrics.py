"""The collector's Prometheus metrics, scraped from the real /metrics server (127.0.0.1, a free
port) after real HTTP exchanges with scripted ResourceManagers."""

from __future__ import annotations

import socket

import aiohttp
import pytest
from prometheus_client.parser import text_string_to_metric_families

from collector.health import HealthServer, Readiness
from collector.http import HttpPeer, PeerUnreachable, RetryPolicy
from collector.metrics import CONTENT_TYPE, Metrics, PeerLabel, endpoint_of
from collector.rm_client import ResourceManager
from tests.scripted_rm import ScriptedRM

NOW_S = 1_700_000_000.0


async def scrape(metrics: Metrics) -> tuple[str, dict[tuple[str, frozenset], float]]:
    """/metrics of a real server: (content type, {(sample name, labels): value})."""
    server = HealthServer("127.0.0.1", 0, metrics, lambda: Readiness())
    port = await server.start()
    try:
        async with aiohttp.ClientSession() as session, session.get(f"http://127.0.0.1:{port}/metrics") as resp:
            assert resp.status == 200
            content_type, text = resp.headers["Content-Type"], await resp.text()
    finally:
        await server.stop()
    samples = {}
    for family in text_string_to_metric_families(text):
        for s in family.samples:
            samples[(s.name, frozenset(s.labels.items()))] = s.value
    return content_type, samples


def value(samples, name: str, **labels: str) -> float | None:
    return samples.get((name, frozenset(labels.items())))


@pytest.mark.parametrize(
    ("kind", "path", "template"),
    [
        ("rm", "/ws/v1/cluster/apps", "/ws/v1/cluster/apps"),
        ("rm", "/ws/v1/cluster/apps/application_1700000000000_0042", "/ws/v1/cluster/apps/{id}"),
        ("rm", "/ws/v1/cluster/info", "/ws/v1/cluster/info"),
        ("rm", "/ws/v1/cluster/scheduler", "/ws/v1/cluster/scheduler"),
        ("rm", "/ws/v1/cluster/apps/application_1_0001/state", "other"),
        ("jhs", "/ws/v1/history/mapreduce/jobs/job_1_0001", "/ws/v1/history/mapreduce/jobs/{id}"),
        ("jhs", "/ws/v1/history/mapreduce/jobs/job_1_0001/counters", "/ws/v1/history/mapreduce/jobs/{id}/counters"),
        ("shs", "/api/v1/applications/application_1_0001", "/api/v1/applications/{id}"),
        ("shs", "/api/v1/applications/app-1/2/allexecutors", "/api/v1/applications/{id}[/{attempt}]/allexecutors"),
        ("shs", "/api/v1/applications/local-17/allexecutors", "/api/v1/applications/{id}[/{attempt}]/allexecutors"),
        ("webhdfs", "/webhdfs/v1/user/etl/data", "/webhdfs/v1/{path}"),
        ("webhdfs", "/somewhere/else", "other"),
    ],
)
def test_endpoints_are_templates_never_raw_ids(kind, path, template):
    assert endpoint_of(kind, path) == template


async def test_http_exchanges_failovers_and_service_gauges_are_exposed(serve):
    metrics = Metrics(clock=lambda: NOW_S)
    rm1, rm2 = await serve(ScriptedRM()), await serve(ScriptedRM())
    for rm in (rm1, rm2):
        rm.put("application_1_0001", "RUNNING")
    peer = HttpPeer(timeout=5, label=PeerLabel("c1", "rm"), metrics=metrics)
    client = ResourceManager([rm1.url, rm2.url], peer, cluster="c1", metrics=metrics)
    await client.active_apps()  # finds rm1 active (info), then asks it for apps
    assert await client.app("application_1_0001") is not None
    assert await client.app("application_1_0404") is None  # the scripted RM answers 404
    rm1.fault = "standby-307"
    await client.active_apps()  # rm1 redirects: failover to rm2
    assert client.active_url == rm2.url
    await peer.close()

    # a peer that does not answer at all, one attempt
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        closed = s.getsockname()[1]
    down = HttpPeer(timeout=2, retry=RetryPolicy(attempts=1), label=PeerLabel("c1", "jhs"), metrics=metrics)
    with pytest.raises(PeerUnreachable):
        await down.get(f"http://127.0.0.1:{closed}/ws/v1/history/mapreduce/jobs/job_1_0001")
    await down.close()

    metrics.events_produced("c1", "yarn.application.state_changed", 3)
    metrics.kafka_error("send", TimeoutError())
    metrics.set_backlog("c1", 7, 2048)
    metrics.poll_succeeded("c1", int(NOW_S * 1000) - 5_000)
    metrics.checkpoint_saved("c1", int(NOW_S * 1000) - 42_000)
    metrics.set_watermark("c1", int(NOW_S * 1000) - 90_000)
    metrics.set_enrichment_queue("c1", 2, int(NOW_S * 1000) - 120_500)
    metrics.set_enrichment_queue("c2", 0, None)
    metrics.enrichment_unavailable("c1", "gave_up")

    content_type, samples = await scrape(metrics)
    assert content_type == CONTENT_TYPE
    rm_apps = {"cluster": "c1", "peer": "rm", "endpoint": "/ws/v1/cluster/apps"}
    one_app = {"cluster": "c1", "peer": "rm", "endpoint": "/ws/v1/cluster/apps/{id}"}
    info = {"cluster": "c1", "peer": "rm", "endpoint": "/ws/v1/cluster/info"}
    assert value(samples, "hec_http_requests_total", **rm_apps) == 3  # rm1, rm1 (307), rm2
    assert value(samples, "hec_http_requests_total", **one_app) == 2
    assert value(samples, "hec_http_errors_total", **one_app, kind="http_4xx") == 1
    assert value(samples, "hec_http_requests_total", **info) == 3  # rm1; after the failover rm1 (307) and rm2
    assert value(samples, "hec_http_request_duration_seconds_count", **rm_apps) == 3
    assert value(samples, "hec_http_request_duration_seconds_bucket", **rm_apps, le="+Inf") == 3
    jhs = {"cluster": "c1", "peer": "jhs", "endpoint": "/ws/v1/history/mapreduce/jobs/{id}"}
    assert value(samples, "hec_http_errors_total", **jhs, kind="connection") == 1
    assert not any("application_1_0001" in str(labels) for _, labels in samples)  # no ids in labels
    assert value(samples, "hec_resourcemanager_failovers_total", cluster="c1") == 1
    assert value(samples, "hec_resourcemanager_active", cluster="c1", url=rm2.url) == 1
    assert value(samples, "hec_resourcemanager_active", cluster="c1", url=rm1.url) == 0
    assert value(samples, "hec_events_produced_total", cluster="c1", type="yarn.application.state_changed") == 3
    assert value(samples, "hec_kafka_errors_total", operation="send", error="TimeoutError") == 1
    assert value(samples, "hec_delivery_backlog_events", cluster="c1") == 7
    assert value(samples, "hec_delivery_backlog_bytes", cluster="c1") == 2048
    assert value(samples, "hec_last_successful_poll_timestamp_seconds", cluster="c1") == NOW_S - 5
    assert value(samples, "hec_checkpoint_age_seconds", cluster="c1") == 42
    assert value(samples, "hec_watermark_lag_seconds", cluster="c1") == 90
    assert value(samples, "hec_enrichment_queue_size", cluster="c1") == 2
    assert value(samples, "hec_enrichment_oldest_age_seconds", cluster="c1") == 120.5
    assert value(samples, "hec_enrichment_oldest_age_seconds", cluster="c2") == 0
    assert value(samples, "hec_enrichment_unavailable_total", cluster="c1", reason="gave_up") == 1


async def test_ages_grow_between_scrapes_without_new_reports():
    now = [NOW_S]
    metrics = Metrics(clock=lambda: now[0])
    metrics.checkpoint_saved("c1", int(NOW_S * 1000))
    _, first = await scrape(metrics)
    now[0] += 30
    _, later = await scrape(metrics)
    assert value(first, "hec_checkpoint_age_seconds", cluster="c1") == 0
    assert value(later, "hec_checkpoint_age_seconds", cluster="c1") == 30
    metrics.set_watermark("c1", None)
    assert value(later, "hec_watermark_lag_seconds", cluster="c1") is None  # never set: no sample


async def test_unlabelled_peers_are_not_counted(serve):
    metrics = Metrics()
    rm = await serve(ScriptedRM())
    peer = HttpPeer(timeout=5, metrics=metrics)  # e.g. `check`: no label, nothing recorded
    await peer.get(rm.url + "/ws/v1/cluster/info")
    await peer.close()
    _, samples = await scrape(metrics)
    assert not [key for key in samples if key[0].startswith("hec_http_")]
