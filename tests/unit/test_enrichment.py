"""Finished events: the worker, a scripted RM and scripted history serve replaying
tests/cases/jhs and tests/cases/shs, with the delays real serve have (404 until the
history file is moved or the event log rescanned)."""

from __future__ import annotations

import asyncio
import time

import orjson
import pytest

from collector.config import ClusterConfig, HistoryServerConfig, ResourceManagerConfig, parse_duration
from collector.events import event_id
from collector.schemas import validate
from collector.service import ClusterWorker
from tests.memory_sink import MemorySink
from tests.scripted_history import ScriptedHistory, case
from tests.scripted_rm import ScriptedRM

APP = "application_1700000000000_0042"
JOB = "job_1700000000000_0042"
JOB_BODY = orjson.dumps({"job": {"id": JOB, "name": "etl", "state": "SUCCEEDED", "mapsTotal": 2,
                                 "reducesTotal": 1, "uberized": False, "failedMapAttempts": 0,
                                 "failedReduceAttempts": 0, "killedMapAttempts": 0, "killedReduceAttempts": 0}})
INPUT_COUNTERS = orjson.dumps({"jobCounters": {"id": JOB, "counterGroup": [
    {"counterGroupName": "org.apache.hadoop.mapreduce.lib.input.FileInputFormatCounter",
     "counter": [{"name": "BYTES_READ", "totalCounterValue": 300123}]},
    {"counterGroupName": "org.apache.hadoop.mapreduce.FileSystemCounter",
     "counter": [{"name": "HDFS_BYTES_READ", "totalCounterValue": 300345}]}]}})


class Clock:
    def __init__(self) -> None:
        self.ms = int(time.time() * 1000)

    def __call__(self) -> int:
        return self.ms

    def advance(self, seconds: float) -> None:
        self.ms += int(seconds * 1000)


async def make_worker(serve, *, jhs=None, shs=None, max_age="15m"):
    rm = await serve(ScriptedRM())
    cfg = ClusterConfig(
        name="c1",
        resourcemanager=ResourceManagerConfig(urls=[rm.url]),
        jobhistory=HistoryServerConfig(url=jhs.url) if jhs else None,
        spark_history=HistoryServerConfig(url=shs.url) if shs else None,
    )
    cfg.enrichment.max_age = parse_duration(max_age)
    clock = Clock()
    sink = MemorySink()
    worker = ClusterWorker(cfg, sink, clock=clock)
    return rm, worker, sink, clock


def end_app(rm: ScriptedRM, app_type="MAPREDUCE", state="FINISHED", final="SUCCEEDED", launch=True):
    now = int(time.time() * 1000)
    rm.put(APP, state, finalStatus=final, applicationType=app_type, finishedTime=now - 2000,
           launchTime=(now - 60000) if launch else 0, memorySeconds=1000, vcoreSeconds=5)


async def drive(worker, clock, rounds=40, step=5.0):
    """Poll once, then let the enrichment queue run on the (fake) clock until it is empty."""
    await worker.cycle()
    for _ in range(rounds):
        await worker.enrich_cycle(wait=True)
        if not worker.pending:
            return
        clock.advance(step)


def finished(sink):
    events = [e for e in sink.events if e.type == "yarn.application.finished"]
    for e in events:
        validate(e.envelope)
    return events


async def test_history_404_for_a_while_then_data_gives_one_event_after_the_end(serve):
    jhs = await serve(ScriptedHistory())
    base = f"/ws/v1/history/mapreduce/jobs/{JOB}"
    jhs.json(base, JOB_BODY)
    jhs.json(base + "/counters", INPUT_COUNTERS)
    jhs.not_found_first[base] = 3
    rm, worker, sink, clock = await make_worker(serve, jhs=jhs)
    end_app(rm)
    await drive(worker, clock)
    (event,) = finished(sink)
    data = event.envelope["data"]
    assert data["enrichment"]["status"] == "ok" and data["enrichment"]["attempts"] == 4
    assert data["enrichment"]["mapreduce"]["input_bytes"] == 300123
    assert data["enrichment"]["mapreduce"]["hdfs_bytes_read"] == 300345
    assert data["enrichment"]["source"] == {"server": "jobhistory", "url": jhs.url + base}
    assert data["succeeded"] and data["application"]["memory_seconds"] == 1000
    # the terminal state change is on the topic before the finished event, same key
    assert [e.type for e in sink.events] == ["yarn.application.state_changed", "yarn.application.finished"]
    assert {e.key for e in sink.events} == {f"c1/{APP}"}
    assert jhs.requests.count(base) == 4


async def test_history_that_never_comes_is_published_unavailable_after_max_age(serve):
    jhs = await serve(ScriptedHistory())  # knows no job: 404 with the RemoteException body
    rm, worker, sink, clock = await make_worker(serve, jhs=jhs, max_age="2m")
    end_app(rm, state="KILLED", final="KILLED")
    await drive(worker, clock, rounds=200)
    (event,) = finished(sink)
    info = event.envelope["data"]["enrichment"]
    assert info["status"] == "unavailable"
    assert "does not have job_1700000000000_0042" in info["reason"] and "gave up after" in info["reason"]
    assert info["mapreduce"] is None and info["attempts"] > 3
    assert event.envelope["data"]["succeeded"] is False


async def test_job_without_counters_says_why(serve):
    jhs = await serve(ScriptedHistory())
    base = f"/ws/v1/history/mapreduce/jobs/{JOB}"
    jhs.json(base, JOB_BODY.replace(b"SUCCEEDED", b"FAILED"))
    jhs.json(base + "/counters", case("jhs/counters-empty.json"))
    rm, worker, sink, clock = await make_worker(serve, jhs=jhs)
    end_app(rm, state="FAILED", final="FAILED")
    await drive(worker, clock)
    (event,) = finished(sink)
    info = event.envelope["data"]["enrichment"]
    assert info["status"] == "unavailable" and "no counters" in info["reason"]
    assert info["mapreduce"]["input_bytes"] is None and info["mapreduce"]["job_state"] == "FAILED"


async def test_job_without_input_group_reports_unknown_scan(serve):
    jhs = await serve(ScriptedHistory())
    base = f"/ws/v1/history/mapreduce/jobs/{JOB}"
    jhs.json(base, JOB_BODY)
    jhs.json(base + "/counters", case("jhs/counters-no-input-group.json"))
    rm, worker, sink, clock = await make_worker(serve, jhs=jhs)
    end_app(rm)
    await drive(worker, clock)
    (event,) = finished(sink)
    figures = event.envelope["data"]["enrichment"]["mapreduce"]
    assert event.envelope["data"]["enrichment"]["status"] == "ok"
    assert figures["input_bytes"] is None and figures["hdfs_bytes_read"] == 5368709120
    assert b'"input_bytes":null' in event.encode()


async def test_spark_waits_for_a_completed_attempt_and_sums_all_executors(serve):
    shs = await serve(ScriptedHistory())
    app_path = f"/api/v1/applications/{APP}"
    shs.json(app_path, case("shs/app-in-progress.json").replace(b"application_1700000000000_0051", APP.encode()))
    shs.json(app_path + "/2/allexecutors", case("shs/allexecutors-with-removed.json"))
    rm, worker, sink, clock = await make_worker(serve, shs=shs)
    end_app(rm, app_type="SPARK")
    await worker.cycle()
    for _ in range(3):  # the SHS has not finished reading the log: nothing final yet
        await worker.enrich_cycle(wait=True)
        clock.advance(10)
    assert not finished(sink) and worker.pending
    assert not any(r.endswith("allexecutors") for r in shs.requests)
    shs.json(app_path, case("shs/app-two-attempts.json").replace(b"application_1700000000000_0052", APP.encode()))
    await drive(worker, clock)
    (event,) = finished(sink)
    spark = event.envelope["data"]["enrichment"]["spark"]
    assert spark["attempt_id"] == "2" and spark["input_bytes"] == 1_820_087
    assert spark["executors"] == 2 and spark["executors_removed"] == 1
    assert event.envelope["data"]["enrichment"]["source"]["url"] == shs.url + app_path + "/2/allexecutors"


async def test_spark_client_mode_and_plain_text_404(serve):
    shs = await serve(ScriptedHistory())
    app_path = f"/api/v1/applications/{APP}"
    shs.json(app_path, case("shs/app-client-mode-no-attempt-id.json").replace(
        b"application_1700000000000_0053", APP.encode()))
    shs.json(app_path + "/allexecutors", case("shs/allexecutors-with-removed.json"))
    shs.not_found_first[app_path] = 2  # "no such app" in plain text while the SHS rescans
    rm, worker, sink, clock = await make_worker(serve, shs=shs)
    end_app(rm, app_type="SPARK")
    await drive(worker, clock)
    (event,) = finished(sink)
    info = event.envelope["data"]["enrichment"]
    assert info["status"] == "ok" and info["attempts"] == 3
    assert info["spark"]["attempt_id"] is None
    assert app_path + "/allexecutors" in shs.requests


@pytest.mark.parametrize(
    "app_type, launch, with_jhs, status, reason",
    [
        ("MAPREDUCE", True, False, "unavailable", "not configured: no JobHistory Server URL"),
        ("SPARK", True, False, "unavailable", "not configured: no Spark History Server URL"),
        ("TEZ", True, True, "not_applicable", "application type TEZ"),
        ("MAPREDUCE", False, True, "unavailable", "never started"),
    ],
)
async def test_decided_without_waiting(serve, app_type, launch, with_jhs, status, reason):
    jhs = await serve(ScriptedHistory()) if with_jhs else None
    rm, worker, sink, clock = await make_worker(serve, jhs=jhs)
    end_app(rm, app_type=app_type, state="KILLED", final="KILLED", launch=launch)
    await worker.cycle()
    await worker.enrich_cycle(wait=True)  # one tick, no clock advance
    (event,) = finished(sink)
    info = event.envelope["data"]["enrichment"]
    assert info["status"] == status and reason in info["reason"]
    assert info["mapreduce"] is None and info["spark"] is None
    if jhs is not None:
        assert jhs.requests == []  # nothing asked that could not help


async def test_one_finished_event_per_application_with_a_stable_id(serve):
    rm, worker, sink, clock = await make_worker(serve)
    end_app(rm)
    await drive(worker, clock)
    await worker.cycle()  # the same end seen again in the overlap window
    await worker.enrich_cycle(wait=True)
    (event,) = finished(sink)
    assert event.id == event_id("c1", APP, "finished")


async def test_finished_event_waits_for_final_usage_while_the_am_still_runs(serve):
    jhs = await serve(ScriptedHistory())
    base = f"/ws/v1/history/mapreduce/jobs/{JOB}"
    jhs.json(base, JOB_BODY)
    jhs.json(base + "/counters", INPUT_COUNTERS)
    rm, worker, sink, clock = await make_worker(serve, jhs=jhs)
    end_app(rm)
    # FINISHED while the AM container still runs (RM-internal FINISHING): usage still grows
    rm.apps[APP].update(runningContainers=1, allocatedMB=512, allocatedVCores=1, memorySeconds=900)
    await worker.cycle()
    await worker.enrich_cycle(wait=True)
    assert not finished(sink) and jhs.requests == []
    rm.apps[APP].update(runningContainers=-1, allocatedMB=-1, allocatedVCores=-1, memorySeconds=1000)
    clock.advance(5)
    await drive(worker, clock)
    (event,) = finished(sink)
    record = event.envelope["data"]["application"]
    assert record["memory_seconds"] == 1000 and record["running_containers"] is None
    assert record["allocated"] == {"memory_mb": None, "vcores": None}
    # the state change itself reported what the RM showed when it was seen
    changed = [e for e in sink.events if e.type == "yarn.application.state_changed"]
    assert changed[-1].envelope["data"]["application"]["memory_seconds"] == 900


async def test_a_slow_history_server_delays_only_its_own_applications(serve):
    jhs, shs = await serve(ScriptedHistory()), await serve(ScriptedHistory())
    base = f"/ws/v1/history/mapreduce/jobs/{JOB}"
    jhs.json(base, JOB_BODY)
    jhs.json(base + "/counters", INPUT_COUNTERS)
    jhs.delay[base] = 2.0  # a JobHistory Server that hangs
    spark_app = "application_1700000000000_0052"
    shs.json(f"/api/v1/applications/{spark_app}", case("shs/app-two-attempts.json"))
    shs.json(f"/api/v1/applications/{spark_app}/2/allexecutors", case("shs/allexecutors-with-removed.json"))
    rm, worker, sink, clock = await make_worker(serve, jhs=jhs, shs=shs)
    end_app(rm)
    now = int(time.time() * 1000)
    rm.put(spark_app, "FINISHED", applicationType="SPARK", finishedTime=now - 1000, launchTime=now - 9000)
    await worker.cycle()
    started = time.monotonic()
    while not finished(sink) and time.monotonic() - started < 1.5:
        await worker.enrich_cycle()  # the service's tick: never waits for a slow try
        await asyncio.sleep(0.05)
    assert [e.envelope["subject"] for e in finished(sink)] == [spark_app]
    assert time.monotonic() - started < 1.5 and APP in worker.pending
    await worker.enrich_cycle(wait=True)
    assert sorted(e.envelope["subject"] for e in finished(sink)) == sorted([APP, spark_app])


async def test_an_unexpected_error_in_one_try_does_not_stall_the_queue(serve):
    shs = await serve(ScriptedHistory())
    odd = orjson.loads(case("shs/app-two-attempts.json"))
    odd["id"], odd["attempts"][0]["attemptId"] = APP, "\u00b9"  # isdigit() but not int()
    shs.json(f"/api/v1/applications/{APP}", orjson.dumps(odd))
    rm, worker, sink, clock = await make_worker(serve, shs=shs, max_age="1m")
    end_app(rm, app_type="SPARK")
    other = "application_1700000000000_0099"
    rm.put(other, "FINISHED", applicationType="TEZ", finishedTime=int(time.time() * 1000) - 500)
    original = worker.enricher.attempt

    async def sometimes_broken(p):
        if p.app_id == other:
            raise RuntimeError("a bug of ours")
        return await original(p)

    worker.enricher.attempt = sometimes_broken
    await drive(worker, clock, rounds=40)
    by_app = {e.envelope["subject"]: e.envelope["data"]["enrichment"] for e in finished(sink)}
    # the odd attempt id is used as it is: the SHS has no executors under it, so in the end
    # the application is published as unavailable, with the reason
    assert by_app[APP]["status"] == "unavailable" and "does not have" in by_app[APP]["reason"], by_app[APP]
    assert by_app[other]["status"] == "unavailable" and "a bug of ours" in by_app[other]["reason"]
