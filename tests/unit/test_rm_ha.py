"""ResourceManager HA, restarts and outages, through the whole service.

``run_service`` runs with ``make_workers`` against scripted RMs (tests/scripted_rm.py: a real RM
pair cannot be made to flip on demand) and a memory sink; the tests look only at what the sink
received, the RMs were asked, and the log. Applications move on while the RMs misbehave; every
transition must reach the sink once, in order, numbered 1..n per application, and nothing the
RM did not show (no vanished app that is still there, no KILLED for an app that is merely gone).
"""

from __future__ import annotations

import asyncio
import contextlib
import time

import structlog

from collector.config import ClusterConfig, Config, PollConfig, ResourceManagerConfig, SnapshotConfig, StateConfig
from collector.events import FINISHED, STATE_CHANGED, VANISHED
from collector.schemas import validate
from collector.service import make_workers, run_service
from tests.memory_sink import MemorySink
from tests.scripted_rm import HaPair, ScriptedRM

ID1, ID2 = 1700000000000, 1700000000500  # each RM's clusterInfo.id (its start time)
INFO, APPS = "/ws/v1/cluster/info", "/ws/v1/cluster/apps"


def app_id(cluster_id: int, n: int) -> str:
    return f"application_{cluster_id}_{n:04d}"


def now_ms() -> int:
    return time.time_ns() // 1_000_000


def config(urls, *, interval=0.05, timeout=2.0, max_backoff=0.5) -> Config:
    cluster = ClusterConfig(
        name="ha",
        resourcemanager=ResourceManagerConfig(urls=list(urls)),
        poll=PollConfig(interval=interval, timeout=timeout, max_backoff=max_backoff),
        snapshots=SnapshotConfig(cluster_interval=0, queue_interval=0, hdfs_interval=0),
        heartbeat_interval=0,
    )
    return Config(clusters=[cluster], state=StateConfig(store="memory"))


@contextlib.asynccontextmanager
async def service(cfg: Config, sink: MemorySink):
    """The service running in the background; at the end it must still be running (no crash)
    and stop cleanly when asked."""
    stop = asyncio.Event()
    workers = make_workers(cfg, sink)
    task = asyncio.create_task(run_service(cfg, sink, stop, workers))
    try:
        yield workers
        assert not task.done(), task.exception() if task.done() else None
    finally:
        stop.set()
        await asyncio.wait_for(task, 10)


def histories(sink: MemorySink) -> dict[str, list[tuple]]:
    """Per application, what the sink got: (seq, change, previous_state, state), in order."""
    out: dict[str, list[tuple]] = {}
    for e in sink.events:
        data = e.envelope["data"]
        if e.type == STATE_CHANGED:
            out.setdefault(data["application_id"], []).append(
                (data["seq"], "changed", data["previous_state"], data["state"]))
        elif e.type == VANISHED:
            out.setdefault(data["application_id"], []).append((data["seq"], "vanished", data["last_state"], None))
    return out


class Story:
    """What each application should have reported so far, as (previous_state, state) steps
    (state None: vanished); compared with the sink after every step."""

    def __init__(self, sink: MemorySink) -> None:
        self.sink = sink
        self.expected: dict[str, list[tuple[str | None, str | None]]] = {}

    def expect(self, app: str, previous: str | None, state: str | None) -> None:
        self.expected.setdefault(app, []).append((previous, state))

    def wanted(self) -> dict[str, list[tuple]]:
        return {app: [(seq, "changed" if state else "vanished", prev, state)
                      for seq, (prev, state) in enumerate(steps, 1)]
                for app, steps in self.expected.items()}

    async def arrived(self, what: str, timeout: float = 10.0) -> None:
        """Wait until every expected event is in the sink, then check there is nothing else."""
        def enough(_events) -> bool:
            got = histories(self.sink)
            return all(len(got.get(app, [])) >= len(steps) for app, steps in self.expected.items())

        await self.sink.wait_until(enough, timeout, what)
        assert histories(self.sink) == self.wanted(), what

    def check_envelopes(self) -> None:
        ids = [e.id for e in self.sink.events]
        assert len(ids) == len(set(ids)), "an event id was delivered twice"
        for e in self.sink.events:
            validate(e.envelope)
            if e.type == STATE_CHANGED:
                assert e.envelope["data"]["state"] != "KILLED", "nothing in these stories was killed"
        # finished events (enrichment) come later and are not awaited; any that came must
        # belong to an app whose end was reported, once
        ended = {app for app, steps in self.expected.items() if steps[-1][1] in ("FINISHED", "FAILED", "KILLED")}
        finished = [e.envelope["subject"] for e in self.sink.events if e.type == FINISHED]
        assert len(finished) == len(set(finished)) and set(finished) <= ended, finished


async def cycles(rm_journal: list[tuple[str, str]], n: int, timeout: float = 10.0) -> None:
    """Wait until the collector has started ``n`` more poll cycles (each asks /cluster/info)."""
    start = sum(1 for _, path in rm_journal if path == INFO)
    deadline = time.monotonic() + timeout
    while sum(1 for _, path in rm_journal if path == INFO) < start + n:
        assert time.monotonic() < deadline, f"the collector did not poll {n} more times"
        await asyncio.sleep(0.01)


async def logged(logs: list[dict], event: str, count: int = 1, since: int = 0, timeout: float = 10.0,
                 **fields) -> list[dict]:
    """Wait until ``event`` (with ``fields``) was logged at least ``count`` times after entry ``since``."""
    deadline = time.monotonic() + timeout

    def matching() -> list[dict]:
        return [e for e in logs[since:] if e["event"] == event and all(e.get(k) == v for k, v in fields.items())]

    while len(matching()) < count:
        assert time.monotonic() < deadline, f"{event} {fields} not logged {count} times: {[e['event'] for e in logs]}"
        await asyncio.sleep(0.01)
    return matching()


async def test_an_ha_pair_flipping_through_every_standby_shape_loses_and_invents_nothing(serve):
    pair = HaPair([await serve(ScriptedRM(cluster_id=ID1)), await serve(ScriptedRM(cluster_id=ID2))])
    rm1, rm2 = pair.rms
    sink = MemorySink()
    story = Story(sink)
    a, b, c = app_id(ID1, 1), app_id(ID1, 2), app_id(ID1, 3)
    pair.put(a, "ACCEPTED")
    pair.put(b, "RUNNING")
    pair.put(c, "SUBMITTED")
    with structlog.testing.capture_logs() as logs:
        async with service(config([rm1.url, rm2.url]), sink) as workers:
            rm = workers[0].rm
            story.expect(a, None, "ACCEPTED")
            story.expect(b, None, "RUNNING")
            story.expect(c, None, "SUBMITTED")
            await story.arrived("first sight")

            # 1. rm1 turns standby between the collector's /cluster/info and /apps: a 307 with Location
            pair.flip("standby-307", mid_cycle=True)
            pair.put(a, "RUNNING")
            story.expect(a, "ACCEPTED", "RUNNING")
            await story.arrived("after a mid-cycle 307")
            assert pair.flips == 1

            # 2. rm2 turns standby between cycles (its /cluster/info says STANDBY); it would answer
            #    with the Hadoop 2 "This is standby RM. Redirecting..." page and a Refresh header
            pair.flip("standby-200")
            pair.put(b, "FINISHED", finishedTime=now_ms())
            story.expect(b, "RUNNING", "FINISHED")
            await story.arrived("after a between-cycles flip to rm1")

            # 3. mid-cycle again, a 307 without Location; a new app arrives at the new active RM
            pair.flip("standby-307-no-location", mid_cycle=True)
            d = app_id(ID2, 1)
            pair.put(c, "ACCEPTED")
            pair.put(d, "SUBMITTED")
            story.expect(c, "SUBMITTED", "ACCEPTED")
            story.expect(d, None, "SUBMITTED")
            await story.arrived("after a 307 without Location")

            # 4. an election in progress: neither RM is active for a few cycles; meanwhile c runs
            failed_before = len([e for e in logs if e["event"] == "poll.failed"])
            pair.no_active()
            pair.put(c, "RUNNING")
            await logged(logs, "poll.failed", failed_before + 3)
            assert histories(sink) == story.wanted()  # nothing while no RM is active
            pair.activate(0, "no-active")  # rm1 won; rm2 still says there is no active RM
            story.expect(c, "ACCEPTED", "RUNNING")
            await story.arrived("after an election")

            # 5. mid-cycle, rm1's answer is a non-JSON page (a proxy in front of an RM going away)
            pair.flip("html", mid_cycle=True)
            pair.put(d, "RUNNING")
            story.expect(d, "SUBMITTED", "RUNNING")
            await story.arrived("after an HTML answer")

            # 6. the active rm2 dies (connection refused); rm1 takes over
            await serve.stop(rm2)
            pair.activate(0)
            pair.put(a, "FINISHED", finishedTime=now_ms())
            pair.put(d, "ACCEPTED")  # its ApplicationMaster failed: a second attempt waits
            story.expect(a, "RUNNING", "FINISHED")
            story.expect(d, "RUNNING", "ACCEPTED")
            await story.arrived("after the active RM died")
            await serve.restart(rm2)  # back as a standby

            # 7. mid-cycle, rm1 breaks (HTTP 500 on everything, after the client's retries)
            pair.flip("500", mid_cycle=True)
            pair.put(c, "FINISHED", finishedTime=now_ms())
            pair.put(d, "FAILED", finishedTime=now_ms(), finalStatus="FAILED")
            story.expect(c, "RUNNING", "FINISHED")
            story.expect(d, "ACCEPTED", "FAILED")
            await story.arrived("after the active RM broke")

            await cycles(pair.journal, 5)  # nothing more comes
            assert histories(sink) == story.wanted()
            failovers = rm.failovers

    story.check_envelopes()
    assert pair.flips == 7
    # counted: at least one per flip (an election or the dead RM's retries may add some)
    assert pair.flips <= failovers <= pair.flips + 3, failovers
    assert len([e for e in logs if e["event"] == "rm.failover"]) == failovers
    # re-resolved after each error: the first thing the new active RM is asked is its HA state
    for mark, new_active in zip(pair.flip_marks, ["rm2", "rm1", "rm2", "rm1", "rm2", "rm1", "rm2"], strict=True):
        first = next(path for name, path in pair.journal[mark:] if name == new_active)
        assert first == INFO, (mark, new_active, pair.journal[mark:mark + 6])
    # a flip is not a restart, although each RM has its own clusterInfo.id
    assert not [e for e in logs if e["event"] == "rm.restarted"]
    assert not [e for e in logs if e["event"] in ("poll.crashed", "event.schema_violation")]


async def restart_story(serve, lose: set[str]):
    """One RM restarts with a new clusterInfo.id: down for a while, then up but not STARTED and
    without its apps while it recovers, then back with the apps its state store kept. Returns
    the sink, the story and the log."""
    rm = await serve(ScriptedRM(cluster_id=ID1))
    sink = MemorySink()
    story = Story(sink)
    a, b, c, d = (app_id(ID1, n) for n in (1, 2, 3, 4))
    rm.put(a, "RUNNING")
    rm.put(b, "RUNNING")
    rm.put(c, "ACCEPTED")
    rm.put(d, "FINISHED", finishedTime=now_ms() - 1000)
    with structlog.testing.capture_logs() as logs:
        async with service(config([rm.url], max_backoff=0.3), sink):
            story.expect(a, None, "RUNNING")
            story.expect(b, None, "RUNNING")
            story.expect(c, None, "ACCEPTED")
            story.expect(d, None, "FINISHED")
            await story.arrived("before the restart")
            rm.put(b, "FINISHED", finishedTime=now_ms())
            story.expect(b, "RUNNING", "FINISHED")
            await story.arrived("b finished")

            await serve.stop(rm)
            await logged(logs, "poll.failed", 2)
            rm.restart(ID2)
            await serve.restart(rm)
            restarted_at = len(rm.journal)
            await logged(logs, "poll.failed", 2, error_type="NoActiveRM")
            # while it recovers the collector only asks whether it is active, never for apps
            assert {path for _, path in rm.journal[restarted_at:]} == {INFO}
            assert histories(sink) == story.wanted()

            rm.recover(keep=lambda app: app["id"] not in lose)
            new = app_id(ID2, 1)  # the first app of the new RM: its id carries the new prefix
            rm.put(new, "RUNNING")
            story.expect(new, None, "RUNNING")
            if c in lose:
                story.expect(c, "ACCEPTED", None)  # vanished: lost, not ended
            await story.arrived("after the restart")
            # known apps go on from where they were: a's next transition is its seq 2
            rm.put(a, "FINISHED", finishedTime=now_ms())
            story.expect(a, "RUNNING", "FINISHED")
            await story.arrived("a finished after the restart")
            await cycles(rm.journal, 5)
            assert histories(sink) == story.wanted()
    story.check_envelopes()
    restarts = [(e["old_id"], e["new_id"]) for e in logs if e["event"] == "rm.restarted"]
    assert restarts == [(ID1, ID2)], "noticed and logged once"
    after = [ev for ev in sink.events if ev.envelope["subject"] == new]
    assert after and all(ev.envelope["data"]["rm_cluster_id"] == ID2 for ev in after)
    assert not [e for e in logs if e["event"] in ("poll.crashed", "event.schema_violation")]
    return sink, story, logs


async def test_an_rm_restart_with_recovery_keeps_state_and_repeats_nothing(serve):
    sink, story, logs = await restart_story(serve, lose=set())
    assert not [ev for ev in sink.events if ev.type == VANISHED]


async def test_an_rm_restart_that_lost_apps_reports_them_vanished_never_ended(serve):
    # b and d had finished (evicted from the state store: nothing to say, their end is known);
    # c was accepted and is gone for good: vanished once, never an invented KILLED or FINISHED;
    # a is still running and must not vanish
    a, b, c, d = (app_id(ID1, n) for n in (1, 2, 3, 4))
    sink, story, logs = await restart_story(serve, lose={b, c, d})
    assert [ev.envelope["subject"] for ev in sink.events if ev.type == VANISHED] == [c]


def outage(logs: list[dict], start: int) -> tuple[list[dict], dict]:
    """The poll failures logged from entry ``start`` up to the recovery that ended them."""
    failures = []
    for e in logs[start:]:
        if e["event"] == "poll.recovered":
            return failures, e
        if e["event"] == "poll.failed":
            failures.append(e)
    raise AssertionError("no recovery logged")


def assert_backoff(failures: list[dict], interval: float, max_backoff: float) -> None:
    """Consecutive failures wait longer and longer, up to the maximum, each wait drawn at random
    within [1/2, 1] of its step (jitter, so that many collectors do not hammer a recovering RM in
    step). Waits are logged rounded to 0.1 s: bounds are checked with that tolerance."""
    assert [f["consecutive"] for f in failures] == list(range(1, len(failures) + 1))
    for f in failures:
        step = min(max_backoff, interval * 2 ** min(f["consecutive"] - 1, 6))
        assert step / 2 - 0.05 <= f["retry_in_s"] <= step + 0.05, f
    assert max(f["retry_in_s"] for f in failures) > failures[0]["retry_in_s"]


async def test_rm_down_then_timing_out_backs_off_and_reports_what_changed_meanwhile(serve):
    """What changed during an outage is reported on return, each app's steps in order. A state
    an app entered and left while nobody could ask (b's RUNNING) is not observable through the
    REST API and is not invented: the event says the last state observed (ACCEPTED -> FINISHED)."""
    interval, timeout, max_backoff = 0.1, 0.3, 0.8
    rm = await serve(ScriptedRM(cluster_id=ID1, slow_s=1.0))
    sink = MemorySink()
    story = Story(sink)
    a, b, c, d = (app_id(ID1, n) for n in (1, 2, 3, 4))
    rm.put(a, "RUNNING")
    rm.put(b, "ACCEPTED")
    rm.put(c, "RUNNING")
    with structlog.testing.capture_logs() as logs:
        async with service(config([rm.url], interval=interval, timeout=timeout, max_backoff=max_backoff), sink):
            for app, state in ((a, "RUNNING"), (b, "ACCEPTED"), (c, "RUNNING")):
                story.expect(app, None, state)
            await story.arrived("before the outage")

            # down: connection refused, for at least four cycles; meanwhile a ends, b runs and
            # ends (its RUNNING is never visible to anyone polling: it cannot be reported), d is
            # submitted and ends; c keeps running
            down_from = len(logs)
            await serve.stop(rm)
            rm.put(a, "FINISHED", finishedTime=now_ms())
            rm.put(b, "RUNNING")
            rm.put(b, "FINISHED", finishedTime=now_ms())
            rm.put(d, "FINISHED", finishedTime=now_ms())
            await logged(logs, "poll.failed", 4, since=down_from)
            assert histories(sink) == story.wanted()  # nothing while the RM is away
            await serve.restart(rm)
            story.expect(a, "RUNNING", "FINISHED")
            story.expect(b, "ACCEPTED", "FINISHED")  # honest: the last state observed was ACCEPTED
            story.expect(d, None, "FINISHED")
            await story.arrived("after the RM came back")
            await logged(logs, "poll.recovered", 1, since=down_from)
            refused, back = outage(logs, down_from)
            assert back["after_failures"] == len(refused)
            assert all(f["error_type"] == "PeerUnreachable" for f in refused), refused

            # timing out: every answer slower than poll.timeout, for at least three cycles; c ends
            slow_from = len(logs)
            rm.fault = "slow"
            rm.put(c, "FINISHED", finishedTime=now_ms())
            await logged(logs, "poll.failed", 3, since=slow_from)
            rm.fault = None
            story.expect(c, "RUNNING", "FINISHED")
            await story.arrived("after the RM answered in time again")
            await logged(logs, "poll.recovered", 1, since=slow_from)
            slow, back = outage(logs, slow_from)
            assert back["after_failures"] == len(slow)
            assert all("timed out" in f["error"] for f in slow), slow
            await cycles(rm.journal, 5)
            assert histories(sink) == story.wanted()  # no vanished storm, no repeat

    story.check_envelopes()
    assert_backoff(refused, interval, max_backoff)
    assert_backoff(slow, interval, max_backoff)
    assert not [e for e in logs if e["event"] in ("poll.crashed", "event.schema_violation")]
