"""The full Spark path on real peers: a PySpark application on the stack's YARN (the RM lists
it as SPARK), one of its executors killed mid-run, its event log read by the real Spark
History Server; the collector publishes its transitions and one finished event whose scan
figures are the sums over /allexecutors, removed executor included."""

from __future__ import annotations

import signal
import subprocess
import sys
import time

import orjson
import pytest

from collector.schemas import validate

from .conftest import REPO, create_topic, read_topic, submit, write_config
from .test_end_to_end import FINISHED, STATE_CHANGED, get_json, rm_app


@pytest.fixture(scope="module")
def spark_run(stack, tmp_path_factory):
    assert stack.get("SPARK_HISTORY_URL"), "the stack has no Spark History Server"
    tmp = tmp_path_factory.mktemp("spark")
    topic = create_topic(stack["KAFKA_BOOTSTRAP_SERVERS"])
    config = write_config(tmp / "collector.yaml", stack, topic, max_age="5m")
    log_path = tmp / "collector.log"
    with open(log_path, "wb") as log_file:
        collector = subprocess.Popen([sys.executable, "-m", "collector", "run", "-c", str(config)],
                                     cwd=REPO, stdout=log_file, stderr=subprocess.STDOUT)
    try:
        time.sleep(2)
        job = submit("spark-scan", "--kill-executor")
        app_id = job["application_id"]

        def has_finished(records) -> bool:
            return any(orjson.loads(r.value)["type"] == FINISHED and orjson.loads(r.value)["subject"] == app_id
                       for r in records)

        records = read_topic(stack["KAFKA_BOOTSTRAP_SERVERS"], topic, has_finished, timeout=300)
    finally:
        collector.send_signal(signal.SIGTERM)
        exit_code = collector.wait(timeout=45)
    events = [(r, orjson.loads(r.value)) for r in records]
    return {"job": job, "app_id": app_id, "events": [(r, e) for r, e in events if e["subject"] == app_id],
            "exit_code": exit_code, "stack": stack, "log_path": log_path}


def test_spark_application_transitions(spark_run):
    transitions = [e for _, e in spark_run["events"] if e["type"] == STATE_CHANGED]
    assert transitions, spark_run["log_path"].read_text()[-3000:]
    assert transitions[0]["data"]["first_seen"]
    assert "RUNNING" in [e["data"]["state"] for e in transitions]
    last = transitions[-1]["data"]
    assert (last["state"], last["final_status"]) == ("FINISHED", "SUCCEEDED")
    assert last["application"]["type"] == "SPARK"
    truth = rm_app(spark_run["stack"], spark_run["app_id"])
    assert truth["applicationType"] == "SPARK" and truth["finalStatus"] == "SUCCEEDED"
    assert spark_run["exit_code"] == 0


def test_spark_finished_event_sums_all_executors_including_the_removed_one(spark_run):
    stack, app_id = spark_run["stack"], spark_run["app_id"]
    finished = [(r, e) for r, e in spark_run["events"] if e["type"] == FINISHED]
    assert len(finished) == 1
    record, event = finished[0]
    validate(event)
    info = event["data"]["enrichment"]
    assert info["status"] == "ok", info
    spark = info["spark"]
    # the Spark History Server's own numbers
    base = f"{stack['SPARK_HISTORY_URL']}/api/v1/applications/{app_id}"
    everyone = get_json(base + "/allexecutors")
    active = get_json(base + "/executors")
    removed = [e for e in everyone if e["id"] != "driver" and not e["isActive"]]
    assert len(removed) == 1 and len(active) < len(everyone), "an executor was removed mid-run"
    assert spark["input_bytes"] == sum(e["totalInputBytes"] for e in everyone)
    assert spark["input_bytes"] > sum(e["totalInputBytes"] for e in active)  # the removed one's reads count
    assert spark["input_bytes"] >= spark_run["job"]["input_file_bytes"] > 0
    assert spark["executors"] == sum(1 for e in everyone if e["id"] != "driver")
    assert spark["executors_removed"] == 1
    assert spark["shuffle_write_bytes"] == sum(e["totalShuffleWrite"] for e in everyone)
    assert spark["attempt_id"] is None  # client mode: the URL has no attempt segment
    assert info["source"] == {"server": "spark_history", "url": base + "/allexecutors"}
    # after the terminal transition, same partition
    last_transition = [r for r, e in spark_run["events"] if e["type"] == STATE_CHANGED][-1]
    assert record.partition == last_transition.partition and record.offset > last_transition.offset
    print(f"\nspark: finished event {info['after_end_ms']} ms after the RM's end, {info['attempts']} tries")
