"""The real local stack for integration tests: Kafka (KRaft) and the Hadoop mini cluster.

The session fixture reuses a running stack (``make stack-up``) or starts one and stops it
at the end. A stack that fails to start fails the tests: it is never a silent skip.
"""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
import uuid
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
STACK = [sys.executable, str(REPO / "deploy" / "local" / "stack.py")]


def stack_cmd(*args: str, timeout: float = 900, check: bool = True) -> subprocess.CompletedProcess[str]:
    proc = subprocess.run([*STACK, *args], capture_output=True, text=True, timeout=timeout, cwd=REPO)
    if check and proc.returncode != 0:
        pytest.fail(
            f"`stack.py {' '.join(args)}` exited {proc.returncode}\n"
            f"--- stdout ---\n{proc.stdout[-3000:]}\n--- stderr ---\n{proc.stderr[-5000:]}",
            pytrace=False,
        )
    return proc


@pytest.fixture(scope="session")
def stack() -> dict[str, str]:
    """Coordinates of the running stack (KAFKA_BOOTSTRAP_SERVERS, HADOOP_RM_URL, ...)."""
    started = False
    if stack_cmd("status", check=False).returncode != 0:
        stack_cmd("up")
        started = True
    env_lines = stack_cmd("env").stdout.splitlines()
    coords = dict(line.split("=", 1) for line in env_lines if "=" in line and not line.startswith("#"))
    # An externally provided broker wins (DESIGN: KAFKA_BOOTSTRAP_SERVERS).
    if os.environ.get("KAFKA_BOOTSTRAP_SERVERS"):
        coords["KAFKA_BOOTSTRAP_SERVERS"] = os.environ["KAFKA_BOOTSTRAP_SERVERS"]
    yield coords
    if started and not os.environ.get("HEC_KEEP_STACK"):
        stack_cmd("down", check=False)


@pytest.fixture(scope="session")
def kafka() -> str:
    """Bootstrap servers of a real broker, for tests that need Kafka alone: the local stack's
    (Kafka only is started when it is not running; stopped after if started here), or
    $KAFKA_BOOTSTRAP_SERVERS."""
    if os.environ.get("KAFKA_BOOTSTRAP_SERVERS"):
        yield os.environ["KAFKA_BOOTSTRAP_SERVERS"]
        return
    started = False
    if stack_cmd("status", "--only", "kafka", check=False).returncode != 0:
        stack_cmd("up", "--only", "kafka")
        started = True
    env_lines = stack_cmd("env").stdout.splitlines()
    yield dict(line.split("=", 1) for line in env_lines if "=" in line)["KAFKA_BOOTSTRAP_SERVERS"]
    if started and not os.environ.get("HEC_KEEP_STACK"):
        stack_cmd("down", check=False)


def submit(job: str, *extra: str) -> dict:
    """Submit a real job to the mini cluster; returns stack.py's JSON line."""
    name = f"hec-it-{job}-{uuid.uuid4().hex[:8]}"
    proc = stack_cmd("submit", job, "--name", name, *extra, timeout=900)
    return json.loads(proc.stdout.strip().splitlines()[-1])


def create_topic(bootstrap: str, partitions: int = 3, name: str | None = None) -> str:
    """A fresh topic with several partitions, so that 'one key, one partition' is really tested."""
    from aiokafka.admin import AIOKafkaAdminClient, NewTopic

    name = name or f"hec-it-{uuid.uuid4().hex[:10]}"

    async def create() -> None:
        admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap)
        await admin.start()
        try:
            await admin.create_topics([NewTopic(name, num_partitions=partitions, replication_factor=1)])
        finally:
            await admin.close()

    asyncio.run(create())
    return name


def read_topic(bootstrap: str, topic: str, done, timeout: float) -> list:
    """Consume ``topic`` from the start until ``done(records)`` or the timeout; returns records."""
    from aiokafka import AIOKafkaConsumer

    async def consume() -> list:
        consumer = AIOKafkaConsumer(
            topic, bootstrap_servers=bootstrap, auto_offset_reset="earliest", enable_auto_commit=False
        )
        await consumer.start()
        records: list = []
        try:
            deadline = asyncio.get_running_loop().time() + timeout
            while not done(records) and asyncio.get_running_loop().time() < deadline:
                batch = await consumer.getmany(timeout_ms=500)
                for part in batch.values():
                    records.extend(part)
        finally:
            await consumer.stop()
        return records

    return asyncio.run(consume())


def write_config(
    path: Path,
    stack: dict[str, str],
    topic: str,
    *,
    interval: str = "1s",
    backfill: str = "0s",
    max_age: str = "30s",
    heartbeat: str = "0",
    state_dir: Path | None = None,
    kafka_extra: dict[str, object] | None = None,
) -> Path:
    """A collector config for the stack; the checkpoint goes to ``state_dir`` (default: beside
    the config), ``kafka_extra`` adds keys to the ``kafka`` section."""
    history = f"""
    jobhistory:
      url: {stack["HADOOP_JHS_URL"]}
    enrichment:
      max_age: {max_age}
      first_retry: 1s
      max_retry_interval: 5s"""
    if stack.get("SPARK_HISTORY_URL"):
        history += f"""
    spark_history:
      url: {stack["SPARK_HISTORY_URL"]}"""
    kafka_lines = "".join(f"\n  {k}: {v}" for k, v in (kafka_extra or {}).items())
    path.write_text(
        f"""
clusters:
  - name: it
    resourcemanager:
      urls: {stack["HADOOP_RM_URL"]}
    auth:
      user_name: "{stack.get("HADOOP_USER", "")}"
    poll:
      interval: {interval}
      backfill: {backfill}{history}
    snapshots:  # application events only here: tests/integration/test_snapshots.py has the rest
      cluster_interval: 0
      queue_interval: 0
    heartbeat_interval: {heartbeat}
    topics:
      applications: {topic}
      heartbeat: {topic}.heartbeat
kafka:
  bootstrap_servers: {stack["KAFKA_BOOTSTRAP_SERVERS"]}
  linger_ms: 5{kafka_lines}
health:
  port: 0  # a free one: several collectors may run at once
log:
  format: json
  level: info
state:
  directory: {state_dir or path.parent / "state"}
"""
    )
    return path
