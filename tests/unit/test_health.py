"""/healthz and /readyz of the real health server, readiness transitions, the topic-check
classification, and `run` serving the endpoints in a real process."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import socket
import subprocess
import sys
import time
from dataclasses import dataclass

import aiohttp
import pytest

from collector.config import ClusterConfig, HealthConfig, ResourceManagerConfig
from collector.health import HealthServer, assess
from collector.metrics import Metrics
from collector.topic_check import (
    INVALID_TOPIC,
    TOPIC_AUTHORIZATION_FAILED,
    UNKNOWN_TOPIC_OR_PARTITION,
    AutoCreate,
    classify,
    topics_of,
)


@dataclass
class FakeWorker:
    cluster_name: str
    poll_interval_s: float
    last_poll_ok_ms: int | None = None


@dataclass
class FakeKafka:
    problem: str | None = None


async def get(port: int, path: str) -> tuple[int, dict]:
    async with aiohttp.ClientSession() as session, session.get(f"http://127.0.0.1:{port}{path}") as resp:
        return resp.status, await resp.json()


async def test_readyz_follows_polls_and_kafka():
    now_ms = [1_700_000_000_000]
    fast, slow = FakeWorker("fast", 2.0), FakeWorker("slow", 60.0)
    kafka = FakeKafka()
    health = HealthConfig(stale_intervals=3, stale_min="30s")
    server = HealthServer("127.0.0.1", 0, Metrics(), lambda: assess([fast, slow], kafka, now_ms[0],
                                                                    health.stale_after_s))
    port = await server.start()
    try:
        assert await get(port, "/healthz") == (200, {"alive": True})
        status, body = await get(port, "/readyz")
        assert status == 503 and body["problems"] == {"cluster/fast": "no successful poll yet",
                                                      "cluster/slow": "no successful poll yet"}
        fast.last_poll_ok_ms = slow.last_poll_ok_ms = now_ms[0]
        assert await get(port, "/readyz") == (200, {"ready": True, "problems": {}})

        now_ms[0] += 31_000  # fast: limit max(3 x 2 s, 30 s) = 30 s; slow: 180 s
        status, body = await get(port, "/readyz")
        assert status == 503
        assert body == {"ready": False, "problems": {"cluster/fast": "last successful poll 31s ago (limit 30s)"}}

        fast.last_poll_ok_ms = now_ms[0]  # it polled again
        assert (await get(port, "/readyz"))[0] == 200

        kafka.problem = "cannot connect to Kafka at k:9092: KafkaConnectionError"
        status, body = await get(port, "/readyz")
        assert status == 503 and body["problems"] == {"kafka": kafka.problem}
        kafka.problem = None
        assert (await get(port, "/readyz"))[0] == 200
        assert (await get(port, "/healthz"))[0] == 200
    finally:
        await server.stop()


async def test_a_broken_readiness_report_reads_as_not_ready():
    def broken():
        raise AttributeError("no last_poll_ok_ms")

    server = HealthServer("127.0.0.1", 0, Metrics(), broken)
    port = await server.start()
    try:
        status, body = await get(port, "/readyz")
    finally:
        await server.stop()
    assert status == 503 and "readiness check failed" in body["problems"]["collector"]


async def test_a_taken_port_is_an_oserror():
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        server = HealthServer("127.0.0.1", taken.getsockname()[1], Metrics(), lambda: None)
        with pytest.raises(OSError):
            await server.start()


# --- topic check: the classification (a broker with ACLs is not part of the local stack) ----
AUTO_OFF, AUTO_ON, UNKNOWN = AutoCreate(False), AutoCreate(True), AutoCreate(None, "cannot read it: ClusterAuth")


def test_topic_present_is_ok():
    check = classify("t", ("c1",), 0, AUTO_OFF)
    assert not check.fatal and check.line() == "topic t: ok (cluster c1)"


def test_missing_topic_is_fatal_unless_the_broker_creates_it():
    missing = classify("hadoop.yarn.applications", ("c1", "c2"), UNKNOWN_TOPIC_OR_PARTITION, AUTO_OFF)
    assert missing.fatal
    assert missing.line() == ("topic hadoop.yarn.applications: MISSING (clusters c1, c2): it does not exist and "
                              "the broker does not create topics (auto.create.topics.enable=false); create it first")
    assert not classify("t", ("c1",), UNKNOWN_TOPIC_OR_PARTITION, AUTO_ON).fatal
    unknown = classify("t", ("c1",), UNKNOWN_TOPIC_OR_PARTITION, UNKNOWN)
    assert unknown.fatal and "cannot read it: ClusterAuth" in unknown.line()


def test_not_authorized_topic_is_fatal_and_says_so():
    check = classify("secret", ("prod",), TOPIC_AUTHORIZATION_FAILED, AUTO_ON)
    assert check.fatal and check.status == "NOT AUTHORIZED"
    assert check.line().startswith("topic secret: NOT AUTHORIZED (cluster prod): ")
    assert "TOPIC_AUTHORIZATION_FAILED" in check.line()


def test_invalid_name_is_fatal_and_passing_broker_trouble_is_not():
    assert classify("a b", ("c1",), INVALID_TOPIC, AUTO_ON).fatal
    leader = classify("t", ("c1",), 5, AUTO_OFF)
    assert not leader.fatal and leader.status == "LeaderNotAvailableError"


def test_topics_are_grouped_with_their_clusters():
    def cluster(name, **topics):
        return ClusterConfig(name=name, resourcemanager=ResourceManagerConfig(urls="http://rm:8088"), topics=topics)

    clusters = [cluster("a"), cluster("b", applications="b.apps")]
    assert topics_of(clusters) == {
        "b.apps": ("b",),
        "hadoop.yarn.applications": ("a",),
        "hadoop.yarn.cluster": ("a", "b"),
        "hadoop.yarn.queues": ("a", "b"),
        "hadoop.collector.heartbeat": ("a", "b"),
    }


# --- `run` in a real process: the server is up even while Kafka and the RM are not -----------
def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


async def test_run_serves_health_while_its_peers_are_down(tmp_path):
    config = tmp_path / "c.yaml"
    rm = f"http://127.0.0.1:{free_port()}"
    config.write_text(
        f"clusters: [{{name: c1, resourcemanager: {{urls: '{rm}'}}, poll: {{interval: 1s}}}}]\n"
        f"kafka: {{bootstrap_servers: '127.0.0.1:{free_port()}', request_timeout: 2s}}\n"
        "health: {port: 0}\nlog: {format: json}\n"
    )
    proc = subprocess.Popen([sys.executable, "-m", "collector", "run", "-c", str(config)],
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env={**os.environ})
    try:
        port = None
        deadline = time.monotonic() + 30
        assert proc.stdout is not None
        while port is None and time.monotonic() < deadline:
            line = proc.stdout.readline()
            if line.startswith("{") and json.loads(line).get("event") == "health.listening":
                port = int(json.loads(line)["url"].rsplit(":", 1)[1])
        assert port, "no health.listening line"
        assert (await get(port, "/healthz"))[0] == 200
        status, body = await get(port, "/readyz")
        assert status == 503 and not body["ready"]
        # the RM poll failed over real HTTP and Kafka refused: both are counted
        deadline = time.monotonic() + 15
        text = ""
        while time.monotonic() < deadline:
            async with aiohttp.ClientSession() as session, session.get(f"http://127.0.0.1:{port}/metrics") as r:
                text = await r.text()
            if 'hec_http_errors_total{cluster="c1",endpoint="/ws/v1/cluster/info",kind="connection",peer="rm"}' in text:
                break
            await asyncio.sleep(0.5)
        assert 'endpoint="/ws/v1/cluster/info",kind="connection",peer="rm"' in text
        assert 'hec_kafka_errors_total{error="KafkaConnectionError",operation="connect"}' in text
    finally:
        proc.send_signal(signal.SIGTERM)
        proc.wait(timeout=40)
