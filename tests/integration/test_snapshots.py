"""Statistics snapshots on real peers: the collector, run as a process, publishes cluster,
queue and HDFS usage snapshots to real Kafka topics; they match what the ResourceManager's
REST API and the NameNode (a test directory with known files and a real quota) say."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import urllib.request
import uuid

import orjson
import pytest

from collector.schemas import validate

from .conftest import REPO, create_topic, read_topic

FILES = [1000, 25_000, 123_456]


def webhdfs(stack, method: str, path: str, op: str, body: bytes | None = None, **params) -> bytes:
    user = stack.get("HADOOP_USER", "")
    query = "&".join([f"op={op}", f"user.name={user}", *(f"{k}={v}" for k, v in params.items())])
    url = f"{stack['HADOOP_WEBHDFS_URL']}/webhdfs/v1{path}?{query}"
    request = urllib.request.Request(url, method=method)
    if op == "CREATE":  # two steps: the NameNode redirects to a DataNode
        opener = urllib.request.build_opener(NoRedirect)
        location = opener.open(request, timeout=30).headers["Location"]
        request = urllib.request.Request(location, data=body, method="PUT")
    with urllib.request.urlopen(request, timeout=30) as resp:
        return resp.read()


class NoRedirect(urllib.request.HTTPRedirectHandler):
    def redirect_request(self, *args, **kwargs):
        return None

    def http_error_307(self, req, fp, code, msg, headers):
        return fp


@pytest.fixture(scope="module")
def snapshots(stack, tmp_path_factory):
    tmp = tmp_path_factory.mktemp("snap")
    directory = f"/hec-it/usage-{uuid.uuid4().hex[:8]}"
    webhdfs(stack, "PUT", directory, "MKDIRS")
    for i, size in enumerate(FILES):
        webhdfs(stack, "PUT", f"{directory}/part-{i}", "CREATE", b"x" * size, overwrite="true")
    webhdfs(stack, "PUT", directory, "SETQUOTA", namespacequota=50, storagespacequota=10 * 1024 * 1024)
    bootstrap = stack["KAFKA_BOOTSTRAP_SERVERS"]
    topics = {kind: create_topic(bootstrap) for kind in ("applications", "cluster", "queues", "hdfs", "heartbeat")}
    config = tmp / "collector.yaml"
    config.write_text(json.dumps({
        "clusters": [{
            "name": "it",
            "resourcemanager": {"urls": [stack["HADOOP_RM_URL"]]},
            "auth": {"user_name": stack.get("HADOOP_USER", "")},
            "hdfs": {"namenode_urls": [stack["HADOOP_WEBHDFS_URL"]], "paths": [directory, "/hec-it/no-such-dir"]},
            "snapshots": {"cluster_interval": "1s", "queue_interval": "1s", "hdfs_interval": "1s"},
            "topics": topics,
        }],
        "kafka": {"bootstrap_servers": bootstrap},
        "health": {"port": 0},
        "state": {"directory": str(tmp / "state")},
        "log": {"format": "json"},
    }))
    log_path = tmp / "collector.log"
    with open(log_path, "wb") as log_file:
        collector = subprocess.Popen([sys.executable, "-m", "collector", "run", "-c", str(config)],
                                     cwd=REPO, stdout=log_file, stderr=subprocess.STDOUT)
    try:
        events = {kind: [orjson.loads(r.value) for r in read_topic(bootstrap, topics[kind], lambda rs: len(rs) >= 2,
                                                                    timeout=60)]
                  for kind in ("cluster", "queues", "hdfs")}
    finally:
        collector.send_signal(signal.SIGTERM)
        exit_code = collector.wait(timeout=45)
    log = [json.loads(line) for line in log_path.read_text().splitlines() if line.startswith("{")]
    return {"events": events, "dir": directory, "exit_code": exit_code, "log": log, "stack": stack}


def get_json(url: str) -> dict:
    with urllib.request.urlopen(url, timeout=10) as resp:
        return json.load(resp)


def test_cluster_snapshot_matches_the_rm(snapshots):
    stack = snapshots["stack"]
    event = snapshots["events"]["cluster"][-1]
    validate(event)
    truth = get_json(f"{stack['HADOOP_RM_URL']}/ws/v1/cluster/metrics")["clusterMetrics"]
    info = get_json(f"{stack['HADOOP_RM_URL']}/ws/v1/cluster/info")["clusterInfo"]
    metrics = event["data"]["metrics"]
    assert metrics["memory_total_mb"] == truth["totalMB"] and metrics["vcores_total"] == truth["totalVirtualCores"]
    assert metrics["nodes_active"] == truth["activeNodes"] >= 1
    assert event["data"]["rm_cluster_id"] == info["id"]
    assert event["data"]["resourcemanager"]["version"] == info["resourceManagerVersion"]


def test_queue_snapshots_match_the_scheduler(snapshots):
    stack = snapshots["stack"]
    truth = get_json(f"{stack['HADOOP_RM_URL']}/ws/v1/cluster/scheduler")["scheduler"]["schedulerInfo"]
    by_path = {}
    for event in snapshots["events"]["queues"]:
        validate(event)
        by_path[event["subject"]] = event["data"]["queue"]
    assert {"root", "root.default"} <= set(by_path)
    default = by_path["root.default"]
    real = truth["queues"]["queue"][0]
    assert default["parent"] == "root" and default["leaf"] and default["scheduler"] == "capacity"
    assert default["capacity"] == real["capacity"] and default["max_capacity"] == real["maxCapacity"]
    assert default["state"] == real["state"]


def test_hdfs_usage_of_a_directory_with_known_files_and_a_real_quota(snapshots):
    events = [e for e in snapshots["events"]["hdfs"] if e["subject"] == snapshots["dir"]]
    assert events, snapshots["events"]["hdfs"]
    event = events[-1]
    validate(event)
    usage = event["data"]["usage"]
    assert usage["files"] == len(FILES) and usage["directories"] == 1
    assert usage["length_bytes"] == sum(FILES)
    assert usage["space_consumed_bytes"] >= sum(FILES)  # times the replication factor
    assert usage["name_quota"] == 50 and usage["space_quota_bytes"] == 10 * 1024 * 1024
    assert event["source"] == "hadoop://it/hdfs"


def test_a_missing_path_is_one_clear_line_and_others_go_on(snapshots):
    failures = [line for line in snapshots["log"] if line.get("event") == "hdfs.path_failed"]
    assert failures and all(f["path"] == "/hec-it/no-such-dir" for f in failures)
    assert "FileNotFoundException" in failures[0]["error"]
    assert not any(e["subject"] == "/hec-it/no-such-dir" for e in snapshots["events"]["hdfs"])
    assert snapshots["exit_code"] == 0
