"""ResourceManager faults a real RM cannot be made to produce on demand: standby answers of
every shape, failover between two RMs, malformed bodies. Scripted RMs (tests/scripted_rm.py)
replay the shapes of tests/cases/rm; the collector's worker runs against them for real HTTP."""

from __future__ import annotations

import asyncio
import time

import pytest
import structlog

from collector.config import ClusterConfig, ResourceManagerConfig
from collector.http import PeerError, RetryPolicy
from collector.parsing import ParseError
from collector.rm_client import NoActiveRM
from collector.schemas import validate
from collector.service import ClusterWorker
from tests.memory_sink import MemorySink
from tests.scripted_rm import ScriptedRM


@pytest.fixture
def rms(serve):
    async def make(n: int = 1) -> list[ScriptedRM]:
        return [await serve(ScriptedRM()) for _ in range(n)]

    return make


def worker_for(urls, sink, clock=lambda: 1_700_000_100_000) -> ClusterWorker:
    cfg = ClusterConfig(
        name="test", resourcemanager=ResourceManagerConfig(urls=list(urls)),
    )
    cfg.poll.timeout = 5.0
    return ClusterWorker(cfg, sink, clock=clock)


def summary(events):
    """Application events as (app, kind, previous, state); heartbeats left out."""
    events = [e for e in events if e.type.startswith("yarn.application.")]
    return [(e.envelope["subject"][-4:], e.type.rsplit(".", 1)[1], e.envelope["data"].get("previous_state"),
             e.envelope["data"].get("state", e.envelope["data"].get("last_state"))) for e in events]


async def test_failover_to_the_active_rm_for_every_standby_shape(rms):
    for shape in ["standby-307", "standby-307-no-location", "standby-200", "html"]:
        rm1, rm2 = await rms(2)
        for rm in (rm1, rm2):
            rm.put("application_1_0001", "RUNNING")
        sink = MemorySink()
        worker = worker_for([rm1.url, rm2.url], sink)
        await worker.cycle()  # rm1 is found active first
        assert worker.rm.active_url == rm1.url
        # rm1 turns standby (answers in this shape); rm2 becomes active and the app moves on
        rm1.fault = shape
        rm2.put("application_1_0001", "FINISHED", finishedTime=1_700_000_050_000)
        with structlog.testing.capture_logs() as logs:
            await worker.cycle()
        assert worker.rm.active_url == rm2.url, shape
        assert worker.rm.failovers >= 1
        assert summary(sink.events) == [("0001", "state_changed", None, "RUNNING"),
                                        ("0001", "state_changed", "RUNNING", "FINISHED")], shape
        assert any(entry["event"] == "rm.failover" for entry in logs), shape
        await worker.close()


async def test_standby_cluster_info_is_skipped_when_resolving(rms):
    rm1, rm2 = await rms(2)
    rm1.ha_state = "STANDBY"
    rm2.put("application_1_0002", "ACCEPTED")
    sink = MemorySink()
    worker = worker_for([rm1.url, rm2.url], sink)
    await worker.cycle()
    assert worker.rm.active_url == rm2.url
    assert summary(sink.events) == [("0002", "state_changed", None, "ACCEPTED")]
    # the standby was never asked for apps
    assert not any(r.startswith("/ws/v1/cluster/apps") for r in rm1.requests)
    await worker.close()


async def test_no_active_rm_emits_nothing_and_vanishes_nothing(rms):
    rm1, rm2 = await rms(2)
    for rm in (rm1, rm2):
        rm.put("application_1_0003", "RUNNING")
    sink = MemorySink()
    worker = worker_for([rm1.url, rm2.url], sink)
    await worker.cycle()
    rm1.fault = rm2.fault = "no-active"
    for _ in range(3):
        with pytest.raises(NoActiveRM, match="no active ResourceManager"):
            await worker.cycle()
    # back: the app ended meanwhile, and nothing was reported as vanished
    rm1.fault = None
    rm1.put("application_1_0003", "KILLED", finishedTime=1_700_000_060_000, finalStatus="KILLED")
    await worker.cycle()
    assert summary(sink.events) == [("0003", "state_changed", None, "RUNNING"),
                                    ("0003", "state_changed", "RUNNING", "KILLED")]
    await worker.close()


@pytest.mark.parametrize("fault, error", [("html", PeerError), ("truncated", ParseError),
                                          ("empty", ParseError), ("500", PeerError),
                                          ("standby-200", PeerError)])
async def test_single_rm_bad_bodies_are_clear_errors_and_lose_nothing(rms, fault, error):
    (rm,) = await rms(1)
    rm.put("application_1_0004", "RUNNING")
    sink = MemorySink()
    worker = worker_for([rm.url], sink)
    await worker.cycle()
    rm.fault = fault
    rm.put("application_1_0004", "FINISHED", finishedTime=1_700_000_070_000)
    with pytest.raises(error) as info:
        await worker.cycle()
    assert str(info.value).strip() and "\n" not in str(info.value)
    assert len(sink.events) == 1  # nothing wrong emitted
    rm.fault = None
    await worker.cycle()  # the end that happened during the fault is still reported
    assert summary(sink.events)[-1] == ("0004", "state_changed", "RUNNING", "FINISHED")
    await worker.close()


async def test_evicted_app_is_reported_as_vanished_never_killed(rms):
    (rm,) = await rms(1)
    rm.put("application_1_0005", "RUNNING")
    sink = MemorySink()
    worker = worker_for([rm.url], sink)
    await worker.cycle()
    del rm.apps["application_1_0005"]  # evicted / lost in an RM restart
    await worker.cycle()
    await worker.cycle()
    assert summary(sink.events) == [("0005", "state_changed", None, "RUNNING"), ("0005", "vanished", None, "RUNNING")]
    assert "/ws/v1/cluster/apps/application_1_0005" in [r.split("?")[0] for r in rm.requests]
    for e in sink.events:
        validate(e.envelope)
        assert e.envelope["data"].get("state") != "KILLED"
    await worker.close()


async def test_app_ended_between_polls_is_found_by_lookup(rms):
    (rm,) = await rms(1)
    rm.put("application_1_0006", "RUNNING")
    sink = MemorySink()
    worker = worker_for([rm.url], sink)
    await worker.cycle()
    # ended long before the watermark window (so the ended-apps query misses it)
    rm.put("application_1_0006", "FAILED", finishedTime=5, finalStatus="FAILED")
    await worker.cycle()
    assert summary(sink.events)[-1] == ("0006", "state_changed", "RUNNING", "FAILED")
    await worker.close()


async def test_incremental_queries_use_the_rm_watermark(rms):
    (rm,) = await rms(1)
    finished = int(time.time() * 1000) - 1000  # the RM's clock (Date header) is the real one
    rm.put("application_1_0007", "FINISHED", finishedTime=finished)
    sink = MemorySink()
    worker = worker_for([rm.url], sink)
    await worker.cycle()
    await worker.cycle()
    queries = [r for r in rm.requests if r.startswith("/ws/v1/cluster/apps?")]
    assert all("deSelects=resourceRequests" in q for q in queries)
    assert any("states=NEW%2CNEW_SAVING%2CSUBMITTED%2CACCEPTED%2CRUNNING" in q or
               "states=NEW,NEW_SAVING,SUBMITTED,ACCEPTED,RUNNING" in q for q in queries)
    ended = [q for q in queries if "finishedTimeBegin" in q]
    # after seeing an end at T, the next query asks from T - overlap (poll.overlap, 2 min by default), not from 0
    assert f"finishedTimeBegin={finished - 120_000}&" in ended[-1]
    assert len(sink.events) == 1  # the overlap re-read does not re-emit
    await worker.close()


async def test_service_loop_survives_garbage_and_logs_one_line_per_failure(rms):
    (rm,) = await rms(1)
    rm.put("application_1_0008", "RUNNING")
    rm.fault = "html"
    sink = MemorySink()
    worker = worker_for([rm.url], sink)
    worker.cfg.poll.interval = 0.05
    worker.cfg.poll.max_backoff = 0.1
    stop = asyncio.Event()
    with structlog.testing.capture_logs() as logs:
        task = asyncio.create_task(worker.run(stop))
        await asyncio.sleep(0.5)
        rm.fault = None
        for _ in range(100):
            await asyncio.sleep(0.05)
            if summary(sink.events):
                break
        stop.set()
        await asyncio.wait_for(task, 5)
    failures = [entry for entry in logs if entry["event"] == "poll.failed"]
    assert failures and all("non-JSON" in f["error"] or "standby" in f["error"] for f in failures)
    assert not [entry for entry in logs if entry["event"] == "poll.crashed"]
    assert summary(sink.events) == [("0008", "state_changed", None, "RUNNING")]
    await worker.close()


async def test_the_rm_in_use_turning_standby_is_left_before_polling_it(rms):
    rm1, rm2 = await rms(2)
    for rm in (rm1, rm2):
        rm.put("application_1_0009", "RUNNING")
    rm2.cluster_id = 1700000009999
    sink = MemorySink()
    worker = worker_for([rm1.url, rm2.url], sink)
    await worker.cycle()
    rm1.ha_state = "STANDBY"  # /cluster/info is never redirected: only haState tells
    rm1.apps.clear()  # a standby's view must not be used: it would make the app vanish
    await worker.cycle()
    assert worker.rm.active_url == rm2.url
    assert worker.state.rm_cluster_id == 1700000009999
    assert summary(sink.events) == [("0009", "state_changed", None, "RUNNING")]
    await worker.close()


async def test_a_starting_rm_is_not_polled_until_active(rms):
    (rm,) = await rms(1)
    rm.put("application_1_0010", "RUNNING")
    sink = MemorySink()
    worker = worker_for([rm.url], sink)
    await worker.cycle()
    rm.ha_state = "INITIALIZING"  # restarted: web service up, apps not recovered yet
    rm.apps.clear()
    with pytest.raises(NoActiveRM, match="not active"):
        await worker.cycle()
    rm.ha_state = "ACTIVE"
    rm.put("application_1_0010", "RUNNING")  # recovered
    await worker.cycle()
    assert summary(sink.events) == [("0010", "state_changed", None, "RUNNING")]  # nothing vanished
    await worker.close()


async def test_partial_delivery_commits_exactly_what_was_acknowledged(rms):
    from collector.sinks import SinkError

    class FlakySink(MemorySink):
        fail_subject = "application_1_0012"

        async def send(self, events, topics):
            ok = [e for e in events if e.envelope["subject"] != self.fail_subject]
            self.events.extend(ok)
            if len(ok) != len(events):
                raise SinkError("broker lost one batch", frozenset(e.id for e in ok))

    (rm,) = await rms(1)
    rm.put("application_1_0011", "ACCEPTED")
    rm.put("application_1_0012", "ACCEPTED")
    sink = FlakySink()
    worker = worker_for([rm.url], sink)
    with pytest.raises(SinkError):
        await worker.cycle()
    rm.put("application_1_0011", "RUNNING")
    rm.put("application_1_0012", "RUNNING")
    sink.fail_subject = None
    await worker.cycle()
    # 0011's first event was acknowledged: it moves on; 0012's was not: it stayed in the
    # backlog and goes out first, with its id, then the move; nothing skipped, nothing twice
    assert sorted(summary(sink.events), key=lambda s: (s[0], s[2] or "")) == [
        ("0011", "state_changed", None, "ACCEPTED"),
        ("0011", "state_changed", "ACCEPTED", "RUNNING"),
        ("0012", "state_changed", None, "ACCEPTED"),
        ("0012", "state_changed", "ACCEPTED", "RUNNING"),
    ]
    assert len({e.id for e in sink.events}) == len(sink.events)
    await worker.close()


async def test_backfill_is_exact_on_a_first_start(rms):
    (rm,) = await rms(1)
    now = int(time.time() * 1000)
    rm.put("application_1_0013", "FINISHED", finishedTime=now - 60_000)  # a minute before the start
    sink = MemorySink()
    worker = worker_for([rm.url], sink)
    worker.poller.backfill_ms = 0
    await worker.cycle()
    await worker.cycle()
    assert sink.events == []  # not within the (5 min) overlap either: it ended before we started
    rm.put("application_1_0014", "FINISHED", finishedTime=now + 1000)
    await worker.cycle()
    assert summary(sink.events) == [("0014", "state_changed", None, "FINISHED")]
    await worker.close()


async def test_an_rm_answering_5xx_is_left_for_the_other_one(rms):
    # e.g. a gateway in front of a dead RM answering 503, or an RM failing every request with a
    # 500: polling it again and again would stop collection although the other RM is active
    rm1, rm2 = await rms(2)
    for rm in (rm1, rm2):
        rm.put("application_1_0015", "RUNNING")
    sink = MemorySink()
    worker = worker_for([rm1.url, rm2.url], sink)
    worker.rm.peer._retry = RetryPolicy(attempts=1)
    await worker.cycle()
    rm1.fault = "500"
    rm2.put("application_1_0015", "FINISHED", finishedTime=1_700_000_080_000)
    await worker.cycle()
    assert worker.rm.active_url == rm2.url
    assert worker.rm.failovers == 1
    assert summary(sink.events)[-1] == ("0015", "state_changed", "RUNNING", "FINISHED")
    await worker.close()


async def test_a_restart_is_the_same_rm_with_a_new_id_and_a_failover_is_not(rms):
    rm1, rm2 = await rms(2)
    rm2.cluster_id = 1700000000500  # each RM of a pair has its own id (its start time)
    rm2.ha_state = "STANDBY"
    sink = MemorySink()
    worker = worker_for([rm1.url, rm2.url], sink)
    with structlog.testing.capture_logs() as logs:
        await worker.cycle()
        rm1.ha_state, rm2.ha_state = "STANDBY", "ACTIVE"  # failover: another id, no restart
        await worker.cycle()
        rm1.cluster_id, rm1.ha_state, rm2.ha_state = 1700000000900, "ACTIVE", "STANDBY"  # rm1 restarted
        await worker.cycle()
        await worker.cycle()
    restarts = [(e.get("rm"), e["old_id"], e["new_id"]) for e in logs if e["event"] == "rm.restarted"]
    assert restarts == [(rm1.url, 1700000000000, 1700000000900)]
    assert worker.state.rm_cluster_id == 1700000000900
    await worker.close()


async def test_only_the_rms_own_not_found_makes_an_app_vanish(rms):
    # a gateway in front of the RM answering 404 for the one-app path is not the RM saying
    # it no longer knows the app: the app stays as it was (unknown), nothing is reported
    (rm,) = await rms(1)
    rm.put("application_1_0016", "RUNNING")
    sink = MemorySink()
    worker = worker_for([rm.url], sink)
    await worker.cycle()
    rm.put("application_1_0016", "FINISHED", finishedTime=5)  # outside the ended window: looked up
    rm.fault = "gateway-404"
    with structlog.testing.capture_logs() as logs:
        await worker.cycle()
    assert summary(sink.events) == [("0016", "state_changed", None, "RUNNING")]
    assert [e["event"] for e in logs if e["event"] == "rm.lookup_failed"] == ["rm.lookup_failed"]
    rm.fault = None
    await worker.cycle()
    assert summary(sink.events)[-1] == ("0016", "state_changed", "RUNNING", "FINISHED")
    await worker.close()
