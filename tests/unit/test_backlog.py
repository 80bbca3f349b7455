"""The delivery backlog: polling goes on while Kafka is down, the backlog is bounded (polling
pauses when it is full, nothing is dropped), it drains in order when Kafka is back, the
checkpoint never runs ahead of Kafka, and a stop delivers what is queued within its bound.
Scripted RM (real HTTP); the sink is a memory sink that can be switched off like a broker."""

from __future__ import annotations

import asyncio
import time

import structlog

from collector.config import ClusterConfig, ResourceManagerConfig
from collector.schemas import validate
from collector.service import QUEUE_STEP, ClusterWorker
from collector.sinks import SinkError
from collector.state_store import FileStore
from tests.memory_sink import MemorySink
from tests.scripted_rm import ScriptedRM

from .test_rm_faults import summary


class SwitchableSink(MemorySink):
    """A broker that can go down: while ``down``, every send fails with nothing delivered."""

    def __init__(self) -> None:
        super().__init__()
        self.down = False
        self.attempts = 0

    async def send(self, events, topics) -> None:
        self.attempts += 1
        if self.down:
            raise SinkError("KafkaConnectionError: broker down")
        self.events.extend(events)
        self.topics = dict(topics)


def worker_for(rm_url, sink, store=None, **kw) -> ClusterWorker:
    cfg = ClusterConfig(name="c1", resourcemanager=ResourceManagerConfig(urls=[rm_url]))
    cfg.poll.interval = 0.05
    cfg.poll.max_backoff = 0.2
    cfg.poll.timeout = 5.0
    cfg.heartbeat_interval = kw.pop("heartbeat", 0.0)
    cfg.snapshots.cluster_interval = cfg.snapshots.queue_interval = 0
    return ClusterWorker(cfg, sink, store=store, **kw)


def app_events(sink):
    return [e for e in sink.events if e.type.startswith("yarn.application.")]


async def wait_for(predicate, timeout=10.0):
    deadline = time.monotonic() + timeout
    while not predicate():
        assert time.monotonic() < deadline, "condition not reached in time"
        await asyncio.sleep(0.02)


async def test_polling_goes_on_during_an_outage_and_the_backlog_drains_in_order(serve, tmp_path):
    rm = await serve(ScriptedRM())
    rm.put("application_1_0001", "ACCEPTED")
    sink = SwitchableSink()
    store = FileStore(tmp_path, "c1")
    worker = worker_for(rm.url, sink, store)
    stop = asyncio.Event()
    task = asyncio.create_task(worker.run(stop))
    await wait_for(lambda: summary(sink.events))
    sink.down = True
    # while Kafka is down the app goes through every state; each is observed and kept
    for state in ("RUNNING", "FINISHED"):
        rm.put("application_1_0001", state, finishedTime=int(time.time() * 1000) if state == "FINISHED" else 0)
        await wait_for(lambda s=state: worker.seen.apps["application_1_0001"].state == s)
    rm.put("application_1_0002", "RUNNING")
    await wait_for(lambda: "application_1_0002" in worker.seen.apps)
    assert len(worker.outbox) == 3 and sink.attempts > 1  # delivery kept trying
    # the checkpointed state did not run ahead of Kafka; the events already sent (not yet
    # acknowledged) are in it, oldest first, to be sent again as they are after a crash
    during = store.load()
    assert during.state.apps["application_1_0001"].state == "ACCEPTED"
    queued = [q.event.id for q in worker.outbox.unacked(10)]
    assert during.backlog and [q.event.id for q in during.backlog] == queued[: len(during.backlog)]
    sink.down = False
    await wait_for(lambda: not worker.outbox)
    stop.set()
    await asyncio.wait_for(task, 10)
    assert summary(app_events(sink)) == [
        ("0001", "state_changed", None, "ACCEPTED"),
        ("0001", "state_changed", "ACCEPTED", "RUNNING"),
        ("0001", "state_changed", "RUNNING", "FINISHED"),
        ("0002", "state_changed", None, "RUNNING"),
    ]
    assert [e.envelope["data"]["seq"] for e in app_events(sink)][:3] == [1, 2, 3]
    saved = store.load()
    assert saved is not None and saved.state.apps["application_1_0001"].state == "FINISHED" and not saved.backlog
    await worker.close()


async def test_a_full_backlog_pauses_polling_and_drops_nothing(serve):
    rm = await serve(ScriptedRM())
    sink = SwitchableSink()
    sink.down = True
    worker = worker_for(rm.url, sink, backlog_max_bytes=1024)
    stop = asyncio.Event()
    with structlog.testing.capture_logs() as logs:
        task = asyncio.create_task(worker.run(stop))
        for i in range(1, 4):
            rm.put(f"application_1_000{i}", "RUNNING")
        await wait_for(lambda: len(worker.outbox) == 3)  # one poll saw all three: kept, over the bound
        rm.put("application_1_0004", "RUNNING")
        await asyncio.sleep(0.5)
        assert "application_1_0004" not in worker.seen.apps  # not polled while full
        assert any(e["event"] == "backlog.full_polling_paused" for e in logs)
        sink.down = False
        await wait_for(lambda: len(summary(sink.events)) == 4)
        stop.set()
        await asyncio.wait_for(task, 10)
    assert any(e["event"] == "backlog.polling_resumed" for e in logs)
    assert sorted(s[0] for s in summary(sink.events)) == ["0001", "0002", "0003", "0004"]
    await worker.close()


async def test_a_crash_with_a_backlog_restarts_from_what_kafka_acknowledged(serve, tmp_path):
    rm = await serve(ScriptedRM())
    rm.put("application_1_0001", "RUNNING")
    store = FileStore(tmp_path, "c1")
    first_sink = SwitchableSink()
    first = worker_for(rm.url, first_sink, store)
    await first.cycle()
    first_sink.down = True
    rm.put("application_1_0001", "FINISHED", finishedTime=int(time.time() * 1000))
    await first.poll_step()  # queued, never acknowledged; then the process dies
    queued = {e.event.id for e in first.outbox.unacked(10)}
    await first.close()
    sink = SwitchableSink()
    second = worker_for(rm.url, sink, store)
    await second.cycle()
    assert summary(app_events(sink)) == [("0001", "state_changed", "RUNNING", "FINISHED")]
    assert {e.id for e in app_events(sink)} == queued  # derived again, with the same id
    await second.close()


async def test_stop_delivers_the_backlog_within_its_bound(serve):
    rm = await serve(ScriptedRM())
    rm.put("application_1_0001", "RUNNING")
    sink = SwitchableSink()
    sink.down = True
    worker = worker_for(rm.url, sink, shutdown_timeout_s=1.0)
    stop = asyncio.Event()
    task = asyncio.create_task(worker.run(stop))
    await wait_for(lambda: len(worker.outbox) == 1)
    stopped = time.monotonic()
    stop.set()
    with structlog.testing.capture_logs() as logs:
        await asyncio.wait_for(task, 10)
    assert time.monotonic() - stopped < 3
    assert worker.undelivered and any(e["event"] == "delivery.stopped_with_backlog" for e in logs)
    await worker.close()
    # with Kafka there, a stop flushes what is queued and ends clean
    sink2 = SwitchableSink()
    worker2 = worker_for(rm.url, sink2)
    stop2 = asyncio.Event()
    task2 = asyncio.create_task(worker2.run(stop2))
    await wait_for(lambda: worker2.last_poll_ok_ms is not None)
    stop2.set()
    await asyncio.wait_for(task2, 10)
    assert not worker2.undelivered and summary(sink2.events) == [("0001", "state_changed", None, "RUNNING")]
    await worker2.close()


async def test_heartbeats_say_when_the_last_poll_succeeded(serve):
    rm = await serve(ScriptedRM())
    sink = SwitchableSink()
    worker = worker_for(rm.url, sink, heartbeat=0.1)
    stop = asyncio.Event()
    task = asyncio.create_task(worker.run(stop))
    await wait_for(lambda: worker.last_poll_ok_ms is not None)
    rm.fault = "html"  # the RM answers nonsense from now on: heartbeats go on, and say so
    await wait_for(lambda: worker.last_poll_error is not None)
    beats_before = len(sink.events)
    await wait_for(lambda: len(sink.events) >= beats_before + 2)
    stop.set()
    await asyncio.wait_for(task, 10)
    beats = [e for e in sink.events if e.type == "collector.heartbeat"]
    for beat in beats:
        validate(beat.envelope)
        assert beat.topic_kind == "heartbeat" and beat.key == "c1"
    last = beats[-1].envelope["data"]
    assert last["last_poll_ok_ms"] == worker.last_poll_ok_ms and "non-JSON" in last["last_poll_error"]
    assert last["active_resourcemanager"] == rm.url and last["interval_ms"] == 100
    assert sink.topics["heartbeat"] == "hadoop.collector.heartbeat"
    assert len({b.id for b in beats}) == len(beats)
    await worker.close()


def many_apps(rm, n):
    for i in range(1, n + 1):
        rm.put(f"application_1_{i:05d}", "RUNNING")


def record_peak(worker):
    """The largest backlog (bytes) the worker ever held."""
    peak = [0]
    put = worker.outbox.put

    def put_and_measure(entries):
        put(entries)
        peak[0] = max(peak[0], worker.outbox.bytes)

    worker.outbox.put = put_and_measure
    return peak


async def test_one_large_cycle_stays_within_the_bound_while_kafka_is_down(serve, monkeypatch):
    # A first poll of a large cluster finds every app new: the cycle itself waits for room,
    # a step of its events at a time, instead of queueing all of it (here all 600 apps are in
    # one part of the answer; the step is QUEUE_STEP events).
    rm = await serve(ScriptedRM())
    many_apps(rm, 600)
    sink = SwitchableSink()
    sink.down = True
    worker = worker_for(rm.url, sink, backlog_max_bytes=16 * 1024)
    peak = record_peak(worker)
    stop = asyncio.Event()
    task = asyncio.create_task(worker.run(stop))
    await wait_for(lambda: worker.outbox.full)
    await asyncio.sleep(0.5)
    held = len(worker.seen.apps)
    assert 0 < held < 600  # the cycle is held part-way, not finished over the bound
    sink.down = False
    await wait_for(lambda: len(app_events(sink)) == 600)
    stop.set()
    await asyncio.wait_for(task, 10)
    ids = [e.envelope["data"]["application_id"] for e in app_events(sink)]
    assert sorted(ids) == [f"application_1_{i:05d}" for i in range(1, 601)]  # each once
    one_step = max(len(e.encode()) for e in app_events(sink)) * QUEUE_STEP
    assert peak[0] <= 16 * 1024 + one_step
    await worker.close()


async def a_first_cycle_to_hold(serve, monkeypatch, tmp_path, shutdown_s: float):
    """300 new apps, Kafka down, a backlog bound of 8 KiB: the first cycle will wait for room."""
    monkeypatch.setattr("collector.rm_client.DECODE_STEP_BYTES", 2048)
    rm = await serve(ScriptedRM())
    many_apps(rm, 300)
    sink = SwitchableSink()
    sink.down = True
    store = FileStore(tmp_path, "c1")
    worker = worker_for(rm.url, sink, store, backlog_max_bytes=8 * 1024)
    worker.shutdown_timeout_s = shutdown_s
    return rm, sink, store, worker


async def test_a_stop_while_a_cycle_waits_for_room_ends_it_cleanly(serve, monkeypatch, tmp_path):
    rm, sink, store, worker = await a_first_cycle_to_hold(serve, monkeypatch, tmp_path, shutdown_s=0.5)
    stop = asyncio.Event()
    with structlog.testing.capture_logs() as logs:
        task = asyncio.create_task(worker.run(stop))
        await wait_for(lambda: worker.outbox.full)
        stop.set()
        await asyncio.wait_for(task, 5)  # the held cycle does not keep the stop waiting
    assert any(e["event"] == "poll.stopped_mid_cycle" for e in logs)
    assert not any(e["event"] == "poll.crashed" for e in logs)
    await worker.close()
    # nothing acknowledged, nothing lost: the next start sees every app anew
    sink.down = False
    again = worker_for(rm.url, sink, FileStore(tmp_path, "c1"))
    await again.cycle()
    assert sorted(e.envelope["data"]["application_id"] for e in app_events(sink)) == [
        f"application_1_{i:05d}" for i in range(1, 301)
    ]
    await again.close()


async def test_a_cycle_outside_run_delivers_as_it_goes(serve, monkeypatch):
    monkeypatch.setattr("collector.rm_client.DECODE_STEP_BYTES", 2048)
    rm = await serve(ScriptedRM())
    many_apps(rm, 400)
    sink = SwitchableSink()
    worker = worker_for(rm.url, sink, backlog_max_bytes=16 * 1024)
    peak = record_peak(worker)
    assert await worker.cycle() == 400
    assert sink.attempts > 2 and peak[0] < 2 * 16 * 1024
    assert len({e.id for e in app_events(sink)}) == 400
    await worker.close()


class WriteAheadCheckingSink(MemorySink):
    """Fails the test's check if an application event is sent before the checkpoint on disk
    holds it (then a crash right after Kafka acknowledged it would derive it anew)."""

    def __init__(self, checkpoint) -> None:
        super().__init__()
        self.checkpoint = checkpoint
        self.not_written_ahead: list[str] = []

    async def send(self, events, topics) -> None:
        import orjson

        on_disk = set()
        if self.checkpoint.exists():
            on_disk = {orjson.loads(orjson.dumps(q["event"]))["id"]
                       for q in orjson.loads(self.checkpoint.read_bytes())["state"]["backlog"]}
        self.not_written_ahead += [e.id for e in events if e.type.startswith("yarn.application.")
                                   and e.id not in on_disk]
        await asyncio.sleep(0.05)  # a broker's round trip: the poll queues more meanwhile
        self.events.extend(events)


async def test_every_event_is_written_ahead_while_checkpoints_are_slow(serve, tmp_path):
    # found by review: with the checkpoint written in a thread, events queued during a write
    # went out in the next batch without being in any checkpoint
    rm = await serve(ScriptedRM())
    store = FileStore(tmp_path, "c1")
    write = store.write

    def slow_write(data: bytes) -> None:
        time.sleep(0.2)  # a slow disk's fsync
        write(data)

    store.write = slow_write
    sink = WriteAheadCheckingSink(store.path)
    worker = worker_for(rm.url, sink, store)
    stop = asyncio.Event()
    task = asyncio.create_task(worker.run(stop))
    for i in range(1, 31):
        rm.put(f"application_1_{i:04d}", "RUNNING")
        await asyncio.sleep(0.07)
    await wait_for(lambda: len(app_events(sink)) >= 30)
    stop.set()
    await asyncio.wait_for(task, 10)
    await worker.close()
    assert len(app_events(sink)) == 30 and sink.not_written_ahead == []


async def test_a_stop_during_the_first_cycle_keeps_the_first_starts_floor(serve, monkeypatch, tmp_path):
    # found by review: the floor reached the checkpointed state only after a whole cycle, so a
    # stop while the first cycle waited for room saved none, and the restart took a new one
    _, sink, store, worker = await a_first_cycle_to_hold(serve, monkeypatch, tmp_path, shutdown_s=2.0)
    stop = asyncio.Event()
    task = asyncio.create_task(worker.run(stop))
    await wait_for(lambda: worker.outbox.full)
    sink.down = False  # the stop gets to deliver what is queued
    stop.set()
    await asyncio.wait_for(task, 10)
    await worker.close()
    saved = store.load()
    assert saved.state.floor is not None and saved.state.floor == worker.seen.floor
