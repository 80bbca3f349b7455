"""SIGKILL the collector at random moments while real MapReduce jobs run, restart it on the same
checkpoint each time, and hold the topic against the ResourceManager's truth at the end:
no transition missing, duplicates only under identical ids with identical content
(tests/integration/stream_check.py says exactly what that means).

The kill schedule comes from a seed, printed and stored with the rounds: ``HEC_CRASH_SEED=<seed>``
replays the same delays (the jobs' own timing still varies). Each round records when the
collector was killed, what was on the topic then, and the duplicates its successor published.
The default suite runs 2 rounds; ``make test-long`` adds the 12-round form (marker ``long``).
"""

from __future__ import annotations

import json
import os
import random
import threading
import time
from collections import Counter
from concurrent.futures import ThreadPoolExecutor

import orjson
import pytest

from collector.schemas import validate

from .conftest import create_topic, write_config
from .faults import (
    Collector,
    KillWhenRunning,
    kill_unfinished,
    read_all,
    rm_apps,
    submit_detached,
    truth,
    wait_all_ended,
    wait_first_checkpoint,
    wait_for,
    without_finished,
)
from .stream_check import Record, check

MIX = ["sleep", "wordcount", "pi", "fail", "kill"]


def instance_of(record: Record, kills: list[dict[int, int]]) -> int:
    """Which collector run (0 = first) wrote ``record``: the number of kills whose end offset
    of the record's partition it is at or beyond."""
    return sum(1 for ends in kills if record.offset >= ends.get(record.partition, 0))


def duplicates_by_instance(records: list[Record], kills: list[dict[int, int]]) -> dict[int, dict[str, int]]:
    """Copies of an id seen before, per collector run and event type."""
    seen: set[str] = set()
    out: dict[int, dict[str, int]] = {}
    for r in sorted(records, key=lambda r: (r.partition, r.offset)):
        event = orjson.loads(r.value)
        if event["id"] in seen:
            per = out.setdefault(instance_of(r, kills), {})
            per[event["type"]] = per.get(event["type"], 0) + 1
        seen.add(event["id"])
    return out


@pytest.mark.parametrize(
    ("rounds", "jobs", "parallel"),
    [
        pytest.param(2, MIX, len(MIX), id="2-rounds"),
        pytest.param(12, MIX * 3, 3, id="12-rounds", marks=[pytest.mark.long, pytest.mark.timeout(2400)]),
    ],
)
@pytest.mark.timeout(1200)
def test_sigkill_at_random_moments_loses_nothing_and_invents_nothing(stack, tmp_path, rounds, jobs, parallel):
    seed = int(os.environ.get("HEC_CRASH_SEED") or random.randrange(2**32))
    rng = random.Random(seed)
    print(f"\ncrash rounds: {rounds}, seed {seed} (HEC_CRASH_SEED={seed} replays the kill schedule)")
    bootstrap = stack["KAFKA_BOOTSTRAP_SERVERS"]
    topic = create_topic(bootstrap)
    state_dir = tmp_path / "state"
    config = write_config(tmp_path / "collector.yaml", stack, topic, state_dir=state_dir)
    collector = Collector(config, tmp_path / "collector.log")
    kill_rng = random.Random(seed + 1)  # the kill jobs' own delays (another thread)
    killer = KillWhenRunning(stack, after=lambda: kill_rng.uniform(1.0, 6.0))
    submitted: list[dict] = []
    lock = threading.Lock()

    def submit(kind: str) -> dict:
        job = submit_detached(kind)
        with lock:
            submitted.append(job)
        if kind == "kill":
            killer.add(job["application_id"])
        return job

    rounds_log: list[dict] = []
    kills: list[dict[int, int]] = []  # per kill: partition -> end offset
    t0 = time.monotonic()
    pool = ThreadPoolExecutor(parallel)
    try:
        collector.start()
        started = time.monotonic()
        wait_first_checkpoint(collector, state_dir / "it.checkpoint.json")
        killer.start()
        futures = [pool.submit(submit, kind) for kind in jobs]
        wait_for("the first job to be submitted", lambda: submitted or any(f.done() for f in futures), 300)
        since = time.monotonic()  # round 1 counts from the first submission, later ones from the restart
        for n in range(1, rounds + 1):
            time.sleep(max(0.0, rng.uniform(2.0, 15.0) - (time.monotonic() - since)))
            if not collector.alive:
                pytest.fail(f"round {n}: the collector exited by itself ({collector.proc.returncode}), "
                            f"seed {seed}:\n{collector.log_tail()}", pytrace=False)
            killed_at = time.monotonic()
            collector.kill()
            on_topic = read_all(bootstrap, topic)
            ends: dict[int, int] = {}
            for r in on_topic:
                ends[r.partition] = max(ends.get(r.partition, 0), r.offset + 1)
            kills.append(ends)
            events = [orjson.loads(r.value) for r in on_topic]
            with lock:
                ours = {j["application_id"] for j in submitted}
            rm_states = {a["id"]: a["state"] for a in rm_apps(stack) if a["id"] in ours}
            time.sleep(max(0.0, rng.uniform(0.0, 4.0) - (time.monotonic() - killed_at)))
            collector.start()
            rounds_log.append({
                "round": n,
                "killed_at_s": round(killed_at - t0, 1),
                "collector_uptime_s": round(killed_at - started, 1),
                "down_s": round(time.monotonic() - killed_at, 1),
                "rm_states_at_kill": dict(Counter(rm_states.values())),
                "topic_records": len(on_topic),
                "topic_unique_ids": len({e["id"] for e in events}),
                "topic_by_type": dict(Counter(e["type"] for e in events)),
            })
            started = since = time.monotonic()
        app_ids = [f.result(timeout=600)["application_id"] for f in futures]
        wait_all_ended(stack, app_ids, timeout=600)

        wait_for("a finished event of every job on the topic", lambda: not without_finished(bootstrap, topic, app_ids),
                 240, interval=3, detail=lambda: f"no finished event yet: {without_finished(bootstrap, topic, app_ids)}"
                                                 f"\nseed {seed}\n{collector.log_tail()}")
        exit_code = collector.stop()
        rm_truth = truth(stack, app_ids)
        records = read_all(bootstrap, topic)
    finally:
        killer.stopped.set()
        collector.close()
        pool.shutdown(wait=True, cancel_futures=True)  # no submission outlives the test
        kill_unfinished(stack, [j["application_id"] for j in submitted])

    for r in records:
        validate(orjson.loads(r.value))
    report = check(records, rm_truth)
    dups = duplicates_by_instance(records, kills)
    for entry in rounds_log:
        entry["duplicates_after_restart"] = dups.get(entry["round"], {})
    summary = {"seed": seed, "rounds": rounds_log, "jobs": {a: "/".join(s) for a, s in rm_truth.items()},
               "states_on_topic": {a: report.states.get(a) for a in app_ids}, "stream": report.summary(),
               "final_stop_exit_code": exit_code, "took_s": round(time.monotonic() - t0)}
    (tmp_path / "rounds.json").write_text(json.dumps(summary, indent=2))
    print(json.dumps(summary, indent=2))
    assert not report.problems, (f"seed {seed}: the topic breaks the guarantee:\n" + "\n".join(report.problems)
                                 + f"\nrounds: {json.dumps(rounds_log)}\ncollector log: {collector.log_path}")
    # the kills landed while the jobs were still going: every round had something left to report
    assert len(rounds_log) == rounds
    assert rounds_log[0]["topic_records"] < len(records), "the first kill came after everything was published"
