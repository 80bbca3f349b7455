"""Topic missing: asked of the real broker (the local stack's Kafka creates no topic on first
write, like most production clusters). `run` refuses to start with one line per topic, `check`
reports every topic, and checking never creates a topic. (Not authorized needs a broker with
ACLs: its classification is unit-tested in tests/unit/test_health.py.)"""

from __future__ import annotations

import asyncio
import socket
import subprocess
import sys
import uuid

import pytest

from collector.config import ClusterConfig, KafkaConfig, ResourceManagerConfig, SnapshotConfig
from collector.topic_check import check_topics

from .conftest import REPO, create_topic

pytestmark = pytest.mark.integration


def closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def list_topics(bootstrap: str) -> list[str]:
    from aiokafka.admin import AIOKafkaAdminClient

    async def names() -> list[str]:
        admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap)
        await admin.start()
        try:
            return await admin.list_topics()
        finally:
            await admin.close()

    return asyncio.run(names())


def config_file(tmp_path, bootstrap: str, applications: str, cluster_topic: str):
    # The RM is never asked by `run` before the topics are checked; `check` reports it down.
    path = tmp_path / "c.yaml"
    path.write_text(f"""
clusters:
  - name: it
    resourcemanager: {{urls: "http://127.0.0.1:{closed_port()}"}}
    snapshots: {{queue_interval: 0}}
    heartbeat_interval: 0
    topics: {{applications: {applications}, cluster: {cluster_topic}}}
kafka: {{bootstrap_servers: "{bootstrap}"}}
health: {{port: 0}}
""")
    return path


def test_check_topics_names_the_missing_one_and_creates_nothing(kafka):
    present, missing = create_topic(kafka, partitions=1), f"hec-it-missing-{uuid.uuid4().hex[:8]}"
    cluster = ClusterConfig(name="it", resourcemanager=ResourceManagerConfig(urls="http://127.0.0.1:1"),
                            snapshots=SnapshotConfig(queue_interval=0), heartbeat_interval=0,
                            topics={"applications": present, "cluster": missing})
    checks = {c.topic: c for c in asyncio.run(check_topics(KafkaConfig(bootstrap_servers=kafka), [cluster]))}
    assert set(checks) == {present, missing}
    assert not checks[present].fatal and checks[present].line() == f"topic {present}: ok (cluster it)"
    assert checks[missing].fatal and checks[missing].line() == (
        f"topic {missing}: MISSING (cluster it): it does not exist and the broker does not create topics "
        "(auto.create.topics.enable=false); create it first")
    assert missing not in list_topics(kafka)  # the metadata request asked not to create it


def test_run_refuses_to_start_on_a_missing_topic(kafka, tmp_path):
    present, missing = create_topic(kafka, partitions=1), f"hec-it-missing-{uuid.uuid4().hex[:8]}"
    config = config_file(tmp_path, kafka, present, missing)
    proc = subprocess.run([sys.executable, "-m", "collector", "run", "-c", str(config)],
                          cwd=REPO, capture_output=True, text=True, timeout=60)
    assert proc.returncode == 2, proc.stdout + proc.stderr
    errors = [line for line in proc.stderr.splitlines() if line.startswith("hadoop-collector: ")]
    assert errors == [f"hadoop-collector: topic {missing}: MISSING (cluster it): it does not exist and the broker "
                      "does not create topics (auto.create.topics.enable=false); create it first"]
    assert "collector.started" not in proc.stdout + proc.stderr


def test_check_reports_every_topic(kafka, tmp_path):
    present, missing = create_topic(kafka, partitions=1), f"hec-it-missing-{uuid.uuid4().hex[:8]}"
    config = config_file(tmp_path, kafka, present, missing)
    proc = subprocess.run([sys.executable, "-m", "collector", "check", "-c", str(config)],
                          cwd=REPO, capture_output=True, text=True, timeout=60)
    assert proc.returncode == 1
    lines = proc.stdout.splitlines()
    assert f"kafka {kafka}: ok" in lines
    assert f"topic {present}: ok (cluster it)" in lines
    assert any(line.startswith(f"topic {missing}: MISSING (cluster it): ") for line in lines), proc.stdout


def test_check_reports_an_unreachable_broker_and_run_waits_for_it(tmp_path):
    nowhere = f"127.0.0.1:{closed_port()}"
    config = config_file(tmp_path, nowhere, "a", "b")
    proc = subprocess.run([sys.executable, "-m", "collector", "check", "-c", str(config)],
                          cwd=REPO, capture_output=True, text=True, timeout=60)
    assert proc.returncode == 1 and f"kafka {nowhere}: FAILED: " in proc.stdout
    # `run` does not refuse a broker that is down (it may come back): it starts and keeps trying
    run = subprocess.Popen([sys.executable, "-m", "collector", "run", "-c", str(config)],
                           cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    try:
        out = ""
        assert run.stdout is not None
        while "collector.started" not in out:
            line = run.stdout.readline()
            assert line, f"run ended: {out}"
            out += line
        assert "kafka.topics_unchecked" in out
    finally:
        run.terminate()
        run.wait(timeout=40)
