"""`hadoop-collector report --format json` against the real stack, checked against the
ResourceManager's, the NameNode's and the JobHistory Server's own figures."""

from __future__ import annotations

import json
import subprocess
import sys
import time
import urllib.request

from .conftest import REPO, submit


def get_json(url: str) -> dict:
    with urllib.request.urlopen(url, timeout=10) as resp:
        return json.load(resp)


def test_report_shows_the_real_clusters_figures(stack, tmp_path):
    job = submit("wordcount")  # at least one finished job with a scan in the window
    user = stack.get("HADOOP_USER", "")
    config = tmp_path / "c.yaml"
    config.write_text(json.dumps({
        "clusters": [{
            "name": "it",
            "resourcemanager": {"urls": [stack["HADOOP_RM_URL"]]},
            "auth": {"user_name": user},
            "jobhistory": {"url": stack["HADOOP_JHS_URL"]},
            "hdfs": {"namenode_urls": [stack["HADOOP_WEBHDFS_URL"]], "paths": [f"/user/{user}", "/no-such-dir"]},
        }],
        "sink": "stdout",
    }))
    rm = stack["HADOOP_RM_URL"]

    def listed(query: str) -> list[dict]:
        return (get_json(f"{rm}/ws/v1/cluster/apps?{query}")["apps"] or {}).get("app", [])  # "apps": null if none

    def memory_seconds(since_ms: int, active_too: bool) -> int:
        apps = listed(f"finishedTimeBegin={since_ms}")
        if active_too:
            apps += listed("states=NEW,NEW_SAVING,SUBMITTED,ACCEPTED,RUNNING")
        return sum(a["memorySeconds"] for a in {a["id"]: a for a in apps}.values() if a["user"] == user)

    # usage only grows (an ended app's AM may still run: FINISHING) and ends only add up, so the
    # RM's figures just before (ended apps) and just after (ended and active) bracket the report's
    before = memory_seconds(int(time.time() * 1000) - 3_600_000 + 60_000, active_too=False)
    proc = subprocess.run([sys.executable, "-m", "collector", "report", "-c", str(config), "--format", "json",
                           "--since", "1h"], cwd=REPO, capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    (report,) = json.loads(proc.stdout)
    after = memory_seconds(report["window"]["since_ms"], active_too=True)
    truth = get_json(f"{rm}/ws/v1/cluster/metrics")["clusterMetrics"]
    assert report["metrics"]["memory_total_mb"] == truth["totalMB"]
    assert {q["path"] for q in report["queues"]} >= {"root", "root.default"}
    # the window's applications, as the RM lists them, summed per user
    by_user = {row["user"]: row for row in report["applications"]["by_user"]}
    assert 0 < before <= by_user[user]["memory_seconds"] <= after
    # HDFS: the user's directory as the NameNode says; the missing path is an error, not a crash
    summary = get_json(f"{stack['HADOOP_WEBHDFS_URL']}/webhdfs/v1/user/{user}?op=GETCONTENTSUMMARY&user.name={user}")
    rows = {row["path"]: row for row in report["hdfs"]}
    assert rows[f"/user/{user}"]["usage"]["files"] == summary["ContentSummary"]["fileCount"]
    assert "FileNotFoundException" in rows["/no-such-dir"]["error"]
    # the job just run, with the JobHistory Server's own BYTES_READ
    top = {row["application_id"]: row["input_bytes"] for row in report["top_scanned"]}
    app_id = job["application_id"]
    counters = get_json(f"{stack['HADOOP_JHS_URL']}/ws/v1/history/mapreduce/jobs/"
                        f"{app_id.replace('application_', 'job_')}/counters")["jobCounters"]["counterGroup"]
    bytes_read = next(c["totalCounterValue"] for g in counters for c in g["counter"]
                      if g["counterGroupName"].endswith("FileInputFormatCounter") and c["name"] == "BYTES_READ")
    assert top[app_id] == bytes_read > 0
    # and the tables render
    proc = subprocess.run([sys.executable, "-m", "collector", "report", "-c", str(config)],
                          cwd=REPO, capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0 and "Top applications by scanned bytes" in proc.stdout and app_id[:20] in proc.stdout
