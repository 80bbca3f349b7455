"""`make run`: the collector on the local real stack, with a real MapReduce job to watch.

Starts `hadoop-collector run` with deploy/local/collector.yaml (coordinates from the running
stack), follows the applications topic and prints every event, submits a real wordcount
job, and keeps the collector running until Ctrl-C (or, with --exit-after-demo, until the
wordcount job's finished event arrived). Submit more jobs from another terminal with
`.venv/bin/python deploy/local/stack.py submit wordcount|pi|fail|kill`.
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import os
import signal
import subprocess
import sys
from pathlib import Path

import orjson
from aiokafka import AIOKafkaConsumer, TopicPartition
from aiokafka.admin import AIOKafkaAdminClient, NewTopic
from aiokafka.errors import KafkaError

from collector.cli import format_event
from collector.config import load

HERE = Path(__file__).resolve().parent
REPO = HERE.parent.parent
FINISHED = "yarn.application.finished"


def stack_env() -> dict[str, str]:
    out = subprocess.run(
        [sys.executable, str(HERE / "stack.py"), "env"], capture_output=True, text=True, check=True
    ).stdout
    return dict(line.split("=", 1) for line in out.splitlines() if "=" in line and not line.startswith("#"))


async def ensure_topic(bootstrap: list[str], topic: str) -> None:
    """Create the topic up front (3 partitions) so the consumer below starts at its real end."""
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap)
    await admin.start()
    try:
        if topic not in await admin.list_topics():
            await admin.create_topics([NewTopic(topic, num_partitions=3, replication_factor=1)])
            print(f"[run] created topic {topic} (3 partitions)", flush=True)
        (described,) = await admin.describe_topics([topic])
    finally:
        await admin.close()
    # A new topic's partitions take a moment to serve offsets: wait for that here, quietly,
    # rather than let the consumer below log its own retries.
    partitions = [TopicPartition(topic, p["partition"]) for p in described.get("partitions", [])]
    probe = AIOKafkaConsumer(bootstrap_servers=bootstrap)
    await probe.start()
    aiokafka_log = logging.getLogger("aiokafka")
    level = aiokafka_log.level
    aiokafka_log.setLevel(logging.CRITICAL)
    try:
        for _ in range(50):
            try:
                await probe.end_offsets(partitions)
                return
            except KafkaError:
                await asyncio.sleep(0.2)
    finally:
        aiokafka_log.setLevel(level)
        await probe.stop()


async def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--exit-after-demo", action="store_true", help="stop after the demo job's finished event")
    parser.add_argument("--timeout", type=float, default=600, help="seconds to wait for the demo job")
    args = parser.parse_args()

    env = {**os.environ, **stack_env()}
    config_path = HERE / "collector.yaml"
    cfg = load(config_path, env=env)
    topic = cfg.clusters[0].topics["applications"]
    stack_dir = Path(env.get("HEC_STACK_DIR", REPO / ".stack"))
    log_path = stack_dir / "logs" / "collector.log"
    log_path.parent.mkdir(parents=True, exist_ok=True)

    for kind_topic in cfg.clusters[0].topics_in_use():  # snapshot topics too, before the collector writes
        await ensure_topic(cfg.kafka.bootstrap_servers, kind_topic)
    consumer = AIOKafkaConsumer(topic, bootstrap_servers=cfg.kafka.bootstrap_servers, auto_offset_reset="latest")
    await consumer.start()
    await consumer.seek_to_end()
    print(f"[run] following topic {topic} on {','.join(cfg.kafka.bootstrap_servers)}", flush=True)

    with open(log_path, "ab") as log_file:
        collector = subprocess.Popen(
            [sys.executable, "-m", "collector", "run", "-c", str(config_path), "--log-format", "json"],
            env=env, stdout=log_file, stderr=subprocess.STDOUT, cwd=REPO,
            start_new_session=True,  # Ctrl-C reaches only us; we stop it with one SIGTERM
        )
    print(f"[run] collector running (pid {collector.pid}), log: {log_path}", flush=True)
    if cfg.health.enabled:
        print(f"[run] its /metrics, /healthz, /readyz: http://{cfg.health.host}:{cfg.health.port}", flush=True)

    submit = await asyncio.create_subprocess_exec(
        sys.executable, str(HERE / "stack.py"), "submit", "wordcount", "--detach",
        stdout=asyncio.subprocess.PIPE, env=env,
    )
    out, _ = await submit.communicate()
    lines = out.decode().strip().splitlines()
    demo_app = orjson.loads(lines[-1])["application_id"] if submit.returncode == 0 and lines else None
    print(f"[run] submitted a real wordcount job: {demo_app or 'FAILED (see .stack/logs)'}", flush=True)

    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    status = 0
    deadline = loop.time() + args.timeout
    try:
        while not stop.is_set():
            if collector.poll() is not None:
                print(f"[run] the collector exited with {collector.returncode}; see {log_path}", flush=True)
                status = 1
                break
            batch = await consumer.getmany(timeout_ms=500)
            for records in batch.values():
                for record in records:
                    print(format_event(record.value), flush=True)
                    event = orjson.loads(record.value)
                    if event.get("subject") == demo_app and event.get("type") == FINISHED:
                        scanned = (event["data"]["enrichment"].get("mapreduce") or {}).get("input_bytes")
                        print(f"[run] the demo job ended: {event['data']['state']} / "
                              f"{event['data']['final_status']}, scanned {scanned} bytes", flush=True)
                        if args.exit_after_demo:
                            stop.set()
                        else:
                            print("[run] the collector keeps running; Ctrl-C stops it", flush=True)
            if args.exit_after_demo and loop.time() > deadline:
                print("[run] timed out waiting for the demo job's final event", flush=True)
                status = 1
                break
    finally:
        await consumer.stop()
        if collector.poll() is None:
            collector.send_signal(signal.SIGTERM)
            collector.wait(timeout=60)
        print(f"[run] collector stopped (exit {collector.returncode}); the stack keeps running "
              "(make stack-down stops it)", flush=True)
    return status or (0 if collector.returncode in (0, None) else 1)


if __name__ == "__main__":
    raise SystemExit(asyncio.run(main()))
