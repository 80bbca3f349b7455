"""Stop the real Kafka broker for a while as real jobs move through their states, start it again
on its data (``stack.py stop kafka`` / ``start kafka``), and hold the topic against the
ResourceManager: nothing lost, order per key kept, no id with two contents, memory bounded.

Two collectors live through the same outage, each with its own topic and checkpoint:
``unbounded`` (default backlog) must report even the intermediate RUNNING state of every job that
ran for several poll intervals while Kafka was away (it keeps polling, holding the events);
``tiny-backlog`` (``kafka.backlog_max_bytes: 4000``, about two events) must say that it paused
polling because its backlog was full, and still lose nothing of what the RM still shows (first sighting, end).
"""

from __future__ import annotations

import re
import time
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

import orjson
import pytest

from collector.schemas import validate

from .conftest import create_topic, stack_cmd, write_config
from .faults import (
    Collector,
    RmWatcher,
    kill_app,
    kill_unfinished,
    read_all,
    rm_app,
    stack_command,
    submit_detached,
    truth,
    wait_all_ended,
    wait_first_checkpoint,
    wait_for,
    without_finished,
)
from .stream_check import STATE_CHANGED, TERMINAL, Record, check

OUTAGE_S = 30  # broker stopped this long, then started (its own start adds ~10-25 s of outage)
LONG_SLEEP_MS = "30000"  # a job running when the broker stops; it ends during the outage
SHORT_SLEEP_MS = "8000"  # a job submitted during the outage: it starts, runs and may end in it
OBSERVABLE_S = 6.0  # a state held this long (6 poll intervals) during the outage must be on the topic
RSS_HEADROOM_KB = 150 * 1024
TINY_BACKLOG = 4000  # 20000 held every event of this outage (~6 events of 2-3 KB)
VARIANTS = {"unbounded": {}, "tiny-backlog": {"backlog_max_bytes": TINY_BACKLOG}}
BACKLOG_FULL = re.compile(r"backlog.*(full|paus)|paus.*backlog", re.IGNORECASE)


@dataclass
class Variant:
    name: str
    topic: str
    collector: Collector
    checkpoint: Path
    startup_error: str | None = None
    rss_before_kb: int | None = None
    rss_during_kb: list[int] = field(default_factory=list)
    before: list[Record] = field(default_factory=list)  # on the topic when the broker stopped
    records: list[Record] = field(default_factory=list)  # at the end
    exit_code: int | str | None = None


def running_on_topic(bootstrap: str, topic: str, app_id: str) -> bool:
    return any((e := orjson.loads(r.value))["subject"] == app_id and e["type"] == STATE_CHANGED
               and e["data"]["state"] == "RUNNING" for r in read_all(bootstrap, topic))


@pytest.fixture(scope="module")
def outage(stack, tmp_path_factory):
    tmp = tmp_path_factory.mktemp("outage")
    bootstrap = stack["KAFKA_BOOTSTRAP_SERVERS"]
    variants = {}
    for name, extra in VARIANTS.items():
        (tmp / name).mkdir()
        topic = create_topic(bootstrap)
        config = write_config(tmp / name / "collector.yaml", stack, topic, state_dir=tmp / name / "state",
                              kafka_extra=extra)
        variants[name] = Variant(name, topic, Collector(config, tmp / name / "collector.log"),
                                 tmp / name / "state" / "it.checkpoint.json")
    watcher = RmWatcher(stack)
    app_ids: list[str] = []
    broker_stopped = False
    during: list[Future] = []
    pool = ThreadPoolExecutor(2)
    try:
        for v in variants.values():
            v.collector.start()
        for v in variants.values():
            try:
                wait_first_checkpoint(v.collector, v.checkpoint)
            except pytest.fail.Exception as exc:  # reported by that variant's tests; the other goes on
                v.startup_error = str(exc)
                v.collector.close()
        live = [v for v in variants.values() if v.startup_error is None]
        assert live, "no collector started:\n" + "\n".join(v.startup_error or "" for v in variants.values())
        watcher.start()
        long_job, doomed = (job["application_id"] for job in pool.map(
            submit_detached, ["sleep", "kill"], [{"HEC_SLEEP_MS": LONG_SLEEP_MS}, None], timeout=600))
        app_ids += [long_job, doomed]
        wait_for(f"{long_job} RUNNING on the topic before the outage",
                 lambda: running_on_topic(bootstrap, live[0].topic, long_job), 300, interval=1)
        for v in live:
            v.rss_before_kb = v.collector.rss_kb()
            v.before = read_all(bootstrap, v.topic)

        stack_command("stop", "kafka")
        broker_stopped = True
        stopped_at = time.monotonic()

        during = [pool.submit(submit_detached, kind, env)
                  for kind, env in (("fail", None), ("sleep", {"HEC_SLEEP_MS": SHORT_SLEEP_MS}))]
        killed = False
        while time.monotonic() - stopped_at < OUTAGE_S:
            for v in live:
                if (rss := v.collector.rss_kb()) is not None:
                    v.rss_during_kb.append(rss)
            if not killed and time.monotonic() - stopped_at > 8 and rm_app(stack, doomed)["state"] == "RUNNING":
                kill_app(stack, doomed)
                killed = True
            time.sleep(1)
        starter = ThreadPoolExecutor(1).submit(stack_cmd, "start", "kafka", timeout=300, check=False)
        while not starter.done():  # the broker's own start is still outage
            for v in live:
                if (rss := v.collector.rss_kb()) is not None:
                    v.rss_during_kb.append(rss)
            time.sleep(1)
        back_at = time.monotonic()
        started = starter.result()
        broker_stopped = started.returncode != 0
        assert not broker_stopped, f"Kafka did not come back:\n{started.stderr[-3000:]}"
        app_ids += [f.result(timeout=600)["application_id"] for f in during]
        if not killed:
            kill_app(stack, doomed)
        wait_all_ended(stack, app_ids, timeout=600)

        for v in live:
            wait_for(f"{v.name}: a finished event of every job after the outage",
                     lambda v=v: not without_finished(bootstrap, v.topic, app_ids), 300, interval=3,
                     detail=lambda v=v: f"no finished event yet: {without_finished(bootstrap, v.topic, app_ids)}\n"
                                        f"{v.collector.log_tail()}")
        for v in live:
            v.exit_code = v.collector.stop()
            v.records = read_all(bootstrap, v.topic)
        watcher.stopped.set()
        yield {"variants": variants, "truth": truth(stack, app_ids), "watcher": watcher,
               "window": (stopped_at, back_at), "apps": app_ids, "outage_s": round(back_at - stopped_at, 1)}
    finally:
        watcher.stopped.set()
        for v in variants.values():
            v.collector.close()
        if broker_stopped or stack_cmd("status", "--only", "kafka", check=False).returncode != 0:
            stack_cmd("start", "kafka", check=False)
        pool.shutdown(wait=True, cancel_futures=True)  # no submission outlives the fixture
        kill_unfinished(stack, app_ids + [f.result()["application_id"] for f in during
                                          if f.done() and not f.exception()])


def variant(outage, name: str) -> Variant:
    v = outage["variants"][name]
    if v.startup_error:
        pytest.fail(f"{name}: the collector did not start: {v.startup_error}", pytrace=False)
    return v


def test_the_broker_came_back_with_its_data(outage):
    """`stack.py stop kafka` / `start kafka` keep the KRaft log dir: what was on the topic before
    the outage is still there, at the same offsets."""
    v = variant(outage, "unbounded")
    after = {(r.partition, r.offset): r.value for r in v.records}
    assert v.before and all(after.get((r.partition, r.offset)) == r.value for r in v.before)
    print(f"\noutage: {outage['outage_s']} s; {len(v.before)} records before it, {len(v.records)} after")


@pytest.mark.parametrize("name", list(VARIANTS))
def test_nothing_lost_order_kept_no_conflicting_ids(outage, name):
    v = variant(outage, name)
    start, end = outage["window"]
    watcher: RmWatcher = outage["watcher"]
    moved = {a for t, a, s in watcher.samples if start <= t <= end and a in outage["apps"] and s not in TERMINAL}
    assert moved, "no job of ours was active during the outage: the test would prove nothing"
    for r in v.records:
        validate(orjson.loads(r.value))
    must = {}
    if name == "unbounded":  # it kept polling through the outage: it saw every state that lasted
        held = watcher.held(start, end, OBSERVABLE_S)
        must = {a: sorted(held[a] - TERMINAL) for a in outage["apps"] if held.get(a, set()) - TERMINAL}
    report = check(v.records, outage["truth"], must_include=must)
    print(f"\n{name}: outage {outage['outage_s']} s; must include {must}; on the topic {report.states}; "
          f"{report.summary()}; RM timelines (s from the broker stop): "
          f"{ {a: watcher.timeline(a, start) for a in outage['apps']} }")
    hint = ("\n(a state held for several poll intervals while Kafka was down is missing: the collector "
            "stopped polling during the outage instead of holding the events in its backlog)"
            if any("long enough to be observed" in p for p in report.problems) else "")
    assert not report.problems, "\n".join(report.problems) + hint + f"\ncollector log: {v.collector.log_path}"


@pytest.mark.parametrize("name", list(VARIANTS))
def test_memory_stayed_bounded_during_the_outage(outage, name):
    v = variant(outage, name)
    assert v.rss_before_kb and len(v.rss_during_kb) >= 10, (v.rss_before_kb, v.rss_during_kb)
    grew = max(v.rss_during_kb) - v.rss_before_kb
    print(f"\n{name}: RSS {v.rss_before_kb // 1024} MB before, at most {max(v.rss_during_kb) // 1024} MB during")
    assert grew < RSS_HEADROOM_KB, f"RSS grew by {grew // 1024} MB during the outage"


def test_a_full_backlog_pauses_polling_and_says_so(outage):
    v = variant(outage, "tiny-backlog")
    events = v.collector.log_events()
    said = [e for e in events if BACKLOG_FULL.search(str(e.get("event", "")))]
    backlog = sorted({e.get("event") for e in events if "backlog" in str(e).lower()})
    assert said, f"no log event says polling paused on a full backlog; backlog-related events: {backlog}"
