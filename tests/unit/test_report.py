"""The report's figures from recorded shapes: grouping, window, top scans, HDFS errors."""

from __future__ import annotations

from collector.report import build
from collector.rm_models import RawApp, parse_cluster_info
from collector.scheduler_models import parse_scheduler


def test_report_groups_usage_over_the_window(case):
    apps = [
        RawApp(id="application_1_1", state="FINISHED", user="ana", queue="root.a", finishedTime=5_000,
               memorySeconds=100, vcoreSeconds=2, applicationType="MAPREDUCE", name="a"),
        RawApp(id="application_1_2", state="FAILED", user="ana", queue="root.b", finishedTime=6_000,
               memorySeconds=50, vcoreSeconds=1, applicationType="SPARK", name="b"),
        RawApp(id="application_1_3", state="RUNNING", user="ben", queue="root.a", memorySeconds=10, vcoreSeconds=-1),
        RawApp(id="application_1_4", state="KILLED", user="ben", queue="root.a", finishedTime=100,
               memorySeconds=999, vcoreSeconds=9),  # ended before the window
    ]
    report = build(
        cluster="c1", info=parse_cluster_info(case("rm/cluster-info-standby.json")), metrics={"apps_running": 1},
        queues=parse_scheduler(case("scheduler/fair.json")),
        hdfs={"/data": {"files": 1}, "/gone": "FileNotFoundException: File does not exist: /gone"},
        apps=apps, scans={"application_1_1": 300, "application_1_2": 7000, "application_1_4": 10**9},
        since_ms=1_000, now_ms=10_000,
    )
    by_user = {row["user"]: row for row in report["applications"]["by_user"]}
    assert report["applications"]["total"] == 3
    assert by_user["ana"] == {"user": "ana", "applications": 2, "memory_seconds": 150, "vcore_seconds": 3}
    assert by_user["ben"] == {"user": "ben", "applications": 1, "memory_seconds": 10, "vcore_seconds": 0}
    assert [row["application_id"] for row in report["top_scanned"]] == ["application_1_2", "application_1_1"]
    assert report["hdfs"][1] == {"path": "/gone", "error": "FileNotFoundException: File does not exist: /gone"}
    assert [q["path"] for q in report["queues"]][:2] == ["root", "root.analytics"]
