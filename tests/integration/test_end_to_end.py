"""The main path on real peers: real MapReduce jobs on the Hadoop mini cluster, the collector
running as its own process (``hadoop-collector run``), events read back from a real Kafka
topic and compared with what the ResourceManager itself says."""

from __future__ import annotations

import json
import queue
import signal
import subprocess
import sys
import threading
import time
import urllib.request
from concurrent.futures import ThreadPoolExecutor

import orjson
import pytest

from collector.schemas import validate

from .conftest import REPO, create_topic, read_topic, submit, write_config

TERMINAL = {"FINISHED", "FAILED", "KILLED"}
STATE_CHANGED = "yarn.application.state_changed"
FINISHED = "yarn.application.finished"
EXPECTED_END = {"wordcount": ("FINISHED", "SUCCEEDED"), "fail": ("FAILED", "FAILED"), "kill": ("KILLED", "KILLED")}


def get_json(url: str) -> dict:
    with urllib.request.urlopen(url, timeout=10) as resp:
        return json.load(resp)


def rm_app(stack, app_id: str) -> dict:
    return get_json(f"{stack['HADOOP_RM_URL']}/ws/v1/cluster/apps/{app_id}")["app"]


@pytest.fixture(scope="module")
def run(stack, tmp_path_factory):
    """Collector + three real jobs (succeeding, failing, killed); the topic read back."""
    tmp = tmp_path_factory.mktemp("e2e")
    topic = create_topic(stack["KAFKA_BOOTSTRAP_SERVERS"])
    create_topic(stack["KAFKA_BOOTSTRAP_SERVERS"], 1, f"{topic}.heartbeat")
    config = write_config(tmp / "collector.yaml", stack, topic, heartbeat="2s")
    log_path = tmp / "collector.log"
    with open(log_path, "wb") as log_file:
        collector = subprocess.Popen(
            [sys.executable, "-m", "collector", "run", "-c", str(config)],
            cwd=REPO, stdout=log_file, stderr=subprocess.STDOUT,
        )
    try:
        time.sleep(2)  # first poll done: every job below is seen from its first states
        assert collector.poll() is None, log_path.read_text()
        with ThreadPoolExecutor(3) as pool:
            results = list(pool.map(submit, EXPECTED_END))
        ids = {r["job"]: r["application_id"] for r in results}
        names = {r["job"]: r["name"] for r in results}

        def all_ended(records) -> bool:
            # every job's final record (finished event, after any wait for its history)
            ended = {orjson.loads(r.value)["subject"] for r in records
                     if orjson.loads(r.value)["type"] == FINISHED}
            return set(ids.values()) <= ended

        records = read_topic(stack["KAFKA_BOOTSTRAP_SERVERS"], topic, all_ended, timeout=180)
    finally:
        stop_started = time.monotonic()
        collector.send_signal(signal.SIGTERM)
        try:
            exit_code = collector.wait(timeout=45)
        except subprocess.TimeoutExpired:
            collector.kill()
            exit_code = "hung"
        stop_seconds = time.monotonic() - stop_started
    log_lines = [json.loads(line) for line in log_path.read_text().splitlines() if line.startswith("{")]
    return {"ids": ids, "names": names, "records": records, "topic": topic, "exit_code": exit_code,
            "stop_seconds": stop_seconds,
            "log": log_lines, "log_path": log_path, "stack": stack}


def events_of(run, app_id, event_type=STATE_CHANGED):
    """(record, event) pairs of one application; all types when ``event_type`` is None."""
    pairs = [(r, orjson.loads(r.value)) for r in run["records"]]
    return [(r, e) for r, e in pairs if e["subject"] == app_id and event_type in (None, e["type"])]


@pytest.mark.parametrize("job", list(EXPECTED_END))
def test_each_job_streams_its_ordered_transitions(run, job):
    app_id = run["ids"][job]
    events = events_of(run, app_id)
    states = [e["data"]["state"] for _, e in events]
    assert events, f"no event for {job} {app_id}; collector log: {run['log_path']}"
    # a chain: first sight, then each observed change, ending in the job's real end
    first = events[0][1]["data"]
    assert first["previous_state"] is None and first["first_seen"]
    for (_, before), (_, after) in zip(events, events[1:], strict=False):
        assert after["data"]["previous_state"] == before["data"]["state"]
        assert after["data"]["seq"] == before["data"]["seq"] + 1
    last = events[-1][1]["data"]
    assert (last["state"], last["final_status"]) == EXPECTED_END[job], states
    assert states.count(last["state"]) == 1 and all(s not in TERMINAL for s in states[:-1])
    # the ResourceManager agrees
    truth = rm_app(run["stack"], app_id)
    assert (truth["state"], truth["finalStatus"]) == EXPECTED_END[job]
    assert last["application"]["finished_time_ms"] == truth["finishedTime"]
    assert last["application"]["name"] == truth["name"]


def test_jobs_that_ran_were_seen_running(run):
    for job in ("wordcount", "kill"):
        states = [e["data"]["state"] for _, e in events_of(run, run["ids"][job])]
        assert "RUNNING" in states, (job, states)
    done = events_of(run, run["ids"]["wordcount"])[-1][1]["data"]["application"]
    assert done["memory_seconds"] and done["memory_seconds"] > 0
    assert done["vcore_seconds"] and done["vcore_seconds"] > 0


def test_keys_partitions_ids_and_schemas(run):
    seen_ids = set()
    for _job, app_id in run["ids"].items():
        events = events_of(run, app_id, None)
        assert {r.key.decode() for r, _ in events} == {f"it/{app_id}"}
        assert len({r.partition for r, _ in events}) == 1, "one application, one partition"
        offsets = [r.offset for r, _ in events]
        assert offsets == sorted(offsets)
        for _, envelope in events:
            validate(envelope)
            assert envelope["source"] == "hadoop://it/yarn"
            assert envelope["id"] not in seen_ids, "duplicate event"
            seen_ids.add(envelope["id"])


def test_heartbeats_tell_how_fresh_the_stream_is(run):
    records = read_topic(run["stack"]["KAFKA_BOOTSTRAP_SERVERS"], f"{run['topic']}.heartbeat",
                         lambda rs: len(rs) >= 3, timeout=30)
    beats = [orjson.loads(r.value) for r in records]
    for beat in beats:
        validate(beat)
        assert beat["type"] == "collector.heartbeat" and beat["subject"] == "it"
    taken = [b["data"]["taken_at_ms"] for b in beats]
    assert taken == sorted(taken) and len(set(taken)) == len(taken)
    # about one every 2 s (the run lasted at least a minute), each saying the poll was fresh
    assert len(beats) >= 10 and min(b - a for a, b in zip(taken, taken[1:], strict=False)) >= 1500
    for b in beats[1:]:
        assert b["data"]["last_poll_ok_ms"] is not None and b["data"]["last_poll_error"] is None
        assert b["data"]["taken_at_ms"] - b["data"]["last_poll_ok_ms"] < 5_000
    assert beats[-1]["data"]["active_resourcemanager"] == run["stack"]["HADOOP_RM_URL"]


def test_collector_stopped_cleanly_and_logged_no_errors(run):
    assert run["exit_code"] == 0, run["log_path"].read_text()[-3000:]
    assert run["stop_seconds"] < 30
    bad = [line for line in run["log"] if line.get("level") in ("error", "critical")
           or line.get("event") in ("poll.crashed", "event.schema_violation")]
    assert not bad, bad
    assert any(line.get("event") == "collector.stopped" for line in run["log"])


def test_once_prints_schema_valid_events_of_the_real_cluster(run, tmp_path):
    config = write_config(tmp_path / "c.yaml", run["stack"], "unused", backfill="1h")
    proc = subprocess.run([sys.executable, "-m", "collector", "once", "-c", str(config)],
                          cwd=REPO, capture_output=True, timeout=120)
    assert proc.returncode == 0, proc.stderr.decode()[-2000:]
    events = [orjson.loads(line) for line in proc.stdout.splitlines()]
    for event in events:
        validate(event)
    firsts = {e["subject"]: e for e in events if e["type"] == STATE_CHANGED}
    finals = {e["subject"]: e for e in events if e["type"] == FINISHED}
    for job, app_id in run["ids"].items():
        event = firsts[app_id]  # a first start reports apps ended within the backfill window
        assert event["data"]["first_seen"] and event["data"]["state"] == EXPECTED_END[job][0]
    # one try at the history: the JobHistory Server has had the wordcount job for a while
    wordcount = finals[run["ids"]["wordcount"]]["data"]["enrichment"]
    assert wordcount["status"] == "ok" and wordcount["mapreduce"]["input_bytes"] > 0


def test_check_reports_the_real_peers(run, tmp_path):
    topic = create_topic(run["stack"]["KAFKA_BOOTSTRAP_SERVERS"], partitions=1)
    config = write_config(tmp_path / "c.yaml", run["stack"], topic)
    proc = subprocess.run([sys.executable, "-m", "collector", "check", "-c", str(config)],
                          cwd=REPO, capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "haState ACTIVE" in proc.stdout and f"topic {topic}: ok" in proc.stdout
    missing = write_config(tmp_path / "m.yaml", run["stack"], "hec-no-such-topic")
    proc = subprocess.run([sys.executable, "-m", "collector", "check", "-c", str(missing)],
                          cwd=REPO, capture_output=True, text=True, timeout=120)
    assert proc.returncode == 1 and "hec-no-such-topic: MISSING" in proc.stdout


def test_tail_prints_the_topic_readably(run, tmp_path):
    config = write_config(tmp_path / "c.yaml", run["stack"], run["topic"])
    proc = subprocess.Popen([sys.executable, "-m", "collector", "tail", "--from-beginning", "-c", str(config)],
                            cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
    lines: queue.Queue[str] = queue.Queue()
    threading.Thread(target=lambda: [lines.put(line) for line in proc.stdout], daemon=True).start()
    wanted = set(run["ids"].values())
    seen = []
    try:
        deadline = time.monotonic() + 60
        while wanted and time.monotonic() < deadline:
            try:
                line = lines.get(timeout=1)
            except queue.Empty:
                continue
            seen.append(line)
            wanted -= {a for a in wanted if a in line and FINISHED in line}
    finally:
        proc.terminate()
        proc.wait(timeout=10)
    assert not wanted, seen
    assert any("(first seen) ->" in line for line in seen)
    assert any("enrichment=ok input_bytes=" in line for line in seen)


def test_wordcount_finished_event_carries_the_jobhistory_scan(run):
    stack, app_id = run["stack"], run["ids"]["wordcount"]
    ((record, event),) = events_of(run, app_id, FINISHED)
    info = event["data"]["enrichment"]
    assert info["status"] == "ok", info
    figures = info["mapreduce"]
    # the JobHistory Server's own counters
    job_id = app_id.replace("application_", "job_")
    groups = get_json(f"{stack['HADOOP_JHS_URL']}/ws/v1/history/mapreduce/jobs/{job_id}/counters")
    totals = {(g["counterGroupName"], c["name"]): c["totalCounterValue"]
              for g in groups["jobCounters"]["counterGroup"] for c in g["counter"]}
    assert figures["input_bytes"] == totals[("org.apache.hadoop.mapreduce.lib.input.FileInputFormatCounter",
                                             "BYTES_READ")]
    assert figures["hdfs_bytes_read"] == totals[("org.apache.hadoop.mapreduce.FileSystemCounter", "HDFS_BYTES_READ")]
    # and at least the input's size in HDFS
    user = stack.get("HADOOP_USER", "")
    summary = get_json(f"{stack['HADOOP_WEBHDFS_URL']}/webhdfs/v1/user/{user}/hec-jobs/"
                       f"{run['names']['wordcount']}/in?op=GETCONTENTSUMMARY&user.name={user}")
    assert figures["input_bytes"] >= summary["ContentSummary"]["length"] > 0
    assert figures["maps"] >= 1 and figures["reduces"] == 1 and figures["job_state"] == "SUCCEEDED"
    assert figures["output_bytes"] and figures["output_bytes"] > 0
    assert event["data"]["succeeded"] and event["time"] == events_of(run, app_id)[-1][1]["time"]
    assert info["source"]["server"] == "jobhistory" and info["after_end_ms"] >= 0
    print(f"\nwordcount: finished event {info['after_end_ms']} ms after the RM's end, {info['attempts']} tries")


@pytest.mark.parametrize("job", ["fail", "kill"])
def test_unsuccessful_jobs_get_one_finished_event_that_says_why(run, job):
    app_id = run["ids"][job]
    finished = events_of(run, app_id, FINISHED)
    assert len(finished) == 1
    record, event = finished[0]
    data, info = event["data"], event["data"]["enrichment"]
    assert (data["state"], data["final_status"]) == EXPECTED_END[job] and data["succeeded"] is False
    if info["status"] == "ok":
        assert info["mapreduce"]["job_state"] in ("FAILED", "KILLED")
    else:
        assert info["status"] == "unavailable" and info["reason"], info
    # after the terminal transition, in the same partition
    last_transition = events_of(run, app_id)[-1][0]
    assert record.partition == last_transition.partition and record.offset > last_transition.offset
    print(f"\n{job}: finished event status {info['status']} ({info['reason']}) after {info['after_end_ms']} ms")
