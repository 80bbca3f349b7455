"""The fault tests' topic check (tests/integration/stream_check.py) catches each way a stream can
break the guarantee, on events built by the real encoder (collector/events.py)."""

from __future__ import annotations

import pytest

from collector.enrichment import not_applicable, pending_for
from collector.events import EventContext, finished_event, transition_event
from collector.rm_models import RawApp
from collector.tracker import Change, Transition
from tests.integration.stream_check import Record, check

CTX = EventContext("it", 1700000000000)
APP = "application_1700000000000_0001"
T0 = 1700000001000


def app(state: str, *, final: str = "UNDEFINED", progress: float = 0.0, finished: int = 0) -> RawApp:
    return RawApp(id=APP, state=state, name="job", user="u", queue="default", finalStatus=final,
                  progress=progress, startedTime=T0, finishedTime=finished, elapsedTime=int(progress * 1000))


def change(seq: int, prev: str | None, raw: RawApp, observed: int):
    return transition_event(CTX, Transition(APP, seq, Change.STATE, prev, raw.state, raw), observed)


def done(raw: RawApp, now: int):
    return finished_event(CTX, pending_for(raw, {"id": APP}, now), not_applicable("test"), now)


ENDED = app("FINISHED", final="SUCCEEDED", progress=100.0, finished=T0 + 9000)
GOOD = [
    change(1, None, app("ACCEPTED"), T0 + 1000),
    change(2, "ACCEPTED", app("RUNNING", progress=5.0), T0 + 2000),
    change(3, "RUNNING", ENDED, T0 + 10000),
    done(ENDED, T0 + 11000),
]
TRUTH = {APP: ("FINISHED", "SUCCEEDED")}


def records(events, partition: int = 0) -> list[Record]:
    return [Record(partition, offset, e.key.encode(), e.encode()) for offset, e in enumerate(events)]


def problems(events, truth=TRUTH, **kw) -> list[str]:
    return check(records(events), truth, **kw).problems


def test_a_clean_stream_passes():
    report = check(records(GOOD), TRUTH)
    assert report.problems == [] and report.states == {APP: ["ACCEPTED", "RUNNING", "FINISHED"]}


def test_a_resent_event_is_a_harmless_duplicate():
    report = check(records(GOOD[:2] + [GOOD[1]] + GOOD[2:]), TRUTH)
    assert report.problems == [] and [(d.copies, d.differing) for d in report.duplicates] == [(2, [])]


def test_without_write_ahead_a_replayed_observation_may_differ_in_its_live_figures_only():
    # a restart re-derives seq 2 from a later poll: same id, later observation, more progress
    replay = change(2, "ACCEPTED", app("RUNNING", progress=40.0), T0 + 5000)
    stream = records(GOOD[:2] + [replay] + GOOD[2:] + [done(ENDED, T0 + 20000)])
    assert any("different content" in p for p in check(stream, TRUTH).problems)  # same bytes are expected
    report = check(stream, TRUTH, identical_duplicates=False)
    assert report.problems == []
    assert sorted((d.type, d.copies) for d in report.duplicates) == [
        ("yarn.application.finished", 2), ("yarn.application.state_changed", 2)]
    paths = {p for d in report.duplicates for p in d.differing}
    assert {"time", "data.observed_at_ms", "data.application.progress"} <= paths


def test_same_id_with_a_different_end_time_is_caught():
    other = change(3, "RUNNING", app("FINISHED", final="SUCCEEDED", progress=100.0, finished=T0 + 9500), T0 + 10000)
    assert any("different content at ['data.application.finished_time_ms', 'time']" in p
               for p in problems(GOOD + [other], identical_duplicates=False))


def test_a_seq_reused_for_another_observation_is_caught():
    # killed after Kafka took seq 2 (ACCEPTED->RUNNING), before the checkpoint; back after the end
    rederived = change(2, "ACCEPTED", ENDED, T0 + 12000)
    found = problems(GOOD[:2] + [rederived, done(ENDED, T0 + 13000)])
    assert any("seq 2 published under 2 ids" in p for p in found), found


@pytest.mark.parametrize(
    ("events", "message"),
    [
        (GOOD[1:], "first event is not a first sighting"),
        ([GOOD[0], GOOD[2], GOOD[3]], "gap after seq 1"),
        (GOOD[:2], "last state on the topic RUNNING"),
        (GOOD[:3], "0 distinct finished events"),
        ([GOOD[0], GOOD[1], GOOD[3], GOOD[2]], "not after its terminal transition"),
        ([GOOD[1], GOOD[0], GOOD[2], GOOD[3]], "seq goes back"),
    ],
)
def test_broken_streams_are_caught(events, message):
    found = problems(events)
    assert any(message in p for p in found), found


def test_missing_application_and_wrong_key_and_required_state():
    assert any("no state_changed event at all" in p for p in problems([], TRUTH))
    wrong_key = [Record(0, i, b"other/key", e.encode()) for i, e in enumerate(GOOD)]
    assert any("keys" in p for p in check(wrong_key, TRUTH).problems)
    quick = [GOOD[0], change(2, "ACCEPTED", ENDED, T0 + 10000), GOOD[3]]
    assert problems(quick) == []
    assert any("showed it RUNNING" in p for p in problems(quick, must_include={APP: ["RUNNING"]}))


def test_two_partitions_for_one_key_is_caught():
    split = records(GOOD[:2], partition=0) + [Record(1, 0, GOOD[2].key.encode(), GOOD[2].encode())]
    assert any("in partitions [0, 1]" in p for p in check(split, {}).problems)
