#!/usr/bin/env python3
"""The PySpark job of `stack.py submit spark-scan` (run by stack.py with the venv python).

Reads a text file from HDFS in several partitions on two executors and counts its words, in
two Spark jobs:

    1. a scan (line and word count) that runs tasks on both executors;
    2. a word count (reduceByKey, top words) over the same input, read again.

With --kill-executor, the driver kills one executor (default "1") between the two, after both
executors have run tasks, and waits until Spark marks it removed: the second job runs on the
remaining executor and the application still finishes. The Spark History Server then lists the
killed executor only in /allexecutors (isActive false, removeReason), not in /executors.

Every Spark setting comes from stack.py as --conf k=v (spark.master=yarn, memory, event log,
...). Prints `HEC_APPLICATION_ID <id>` as soon as the SparkContext is up and `HEC_RESULT <json>`
at the end (both to stdout, which stack.py sends to the job log). Exit 0 = success.
"""
from __future__ import annotations

import argparse
import json
import sys
import time
import traceback
from operator import add


def executors(sc, active_only: bool) -> list[dict]:
    """The driver's own view of the executors (AppStatusStore, what the UI/REST API shows)."""
    seq = sc._jsc.sc().statusStore().executorList(active_only)
    out = []
    for i in range(seq.size()):
        e = seq.apply(i)
        if e.id() == "driver":
            continue
        out.append({"id": e.id(), "active": e.isActive(), "tasks": e.totalTasks(),
                    "input_bytes": e.totalInputBytes()})
    return out


def wait_for(what: str, cond, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while not cond():
        if time.monotonic() > deadline:
            raise RuntimeError(f"timed out after {timeout:.0f}s waiting for {what}")
        time.sleep(0.2)


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--input", required=True, help="hdfs:// URI of a text file")
    ap.add_argument("--partitions", type=int, default=8)
    ap.add_argument("--executors", type=int, default=2)
    ap.add_argument("--kill-executor", action="store_true")
    ap.add_argument("--victim", default="1", help="executor id to kill")
    ap.add_argument("--conf", action="append", default=[], metavar="K=V")
    a = ap.parse_args()

    from pyspark.sql import SparkSession

    b = SparkSession.builder
    for kv in a.conf:
        k, _, v = kv.partition("=")
        b = b.config(k, v)
    t0 = time.monotonic()
    spark = b.getOrCreate()
    sc = spark.sparkContext
    print(f"HEC_APPLICATION_ID {sc.applicationId}", flush=True)
    result: dict = {"application_id": sc.applicationId, "master": sc.master,
                    "context_s": round(time.monotonic() - t0, 1)}
    rc = 1
    try:
        attempt = sc._jsc.sc().applicationAttemptId()  # Scala Option: None in client mode
        result["attempt_id"] = attempt.get() if attempt.isDefined() else None
        wait_for(f"{a.executors} executors", lambda: len(executors(sc, True)) >= a.executors, 120)
        lines = sc.textFile(a.input, minPartitions=a.partitions)
        result["partitions"] = lines.getNumPartitions()

        # job 1: scan on both executors (repeat if one executor happened to run no task)
        for _ in range(3):
            result["lines"] = lines.count()
            result["words"] = lines.map(lambda l: len(l.split())).sum()
            time.sleep(0.5)  # let the status store see the last task ends
            if all(e["tasks"] > 0 for e in executors(sc, True)):
                break
        result["executors_after_scan"] = executors(sc, True)

        if a.kill_executor:
            ids = [e["id"] for e in executors(sc, True)]
            if a.victim not in ids:
                raise RuntimeError(f"executor {a.victim} is not active (active: {ids})")
            # SparkContext.killExecutor: asks YARN to kill the container and lowers the target
            # number of executors, so no replacement is requested
            result["kill_requested"] = bool(sc._jsc.sc().killExecutor(a.victim))
            wait_for(f"executor {a.victim} removed",
                     lambda: a.victim not in [e["id"] for e in executors(sc, True)], 60)
            result["killed_executor"] = a.victim

        # job 2: word count over the same input (read again) on the remaining executor(s)
        counts = lines.flatMap(lambda l: l.split()).map(lambda w: (w, 1)).reduceByKey(add, 4)
        result["top_words"] = counts.takeOrdered(3, key=lambda kv: -kv[1])
        result["distinct_words"] = counts.count()
        time.sleep(0.5)
        result["executors_all"] = executors(sc, False)
        result["executors_active"] = executors(sc, True)
        rc = 0
    except Exception:
        traceback.print_exc()
        result["error"] = traceback.format_exc(limit=3)[-1000:]
    finally:
        result["run_s"] = round(time.monotonic() - t0, 1)
        print(f"HEC_RESULT {json.dumps(result)}", flush=True)
        # writes the application end event (the History Server marks the app completed); the
        # exit code reaches the YARN AM in client mode: != 0 -> final status FAILED
        sc._jsc.sc().stop(rc)
    return rc


if __name__ == "__main__":
    sys.exit(main())
