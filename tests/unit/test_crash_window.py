"""The narrow window of a SIGKILL that the random kill rounds rarely hit, made exact: the process
dies after Kafka acknowledged a cycle's events and before its checkpoint recorded that. The
checkpoint was written ahead with those events, so the restarted collector sends exactly them
again (same ids, same bytes) before anything new: even when the application moved on meanwhile,
no seq comes back as another observation under another id."""

from __future__ import annotations

import pytest

from collector.state_store import FileStore
from tests.integration.stream_check import Record, check
from tests.memory_sink import MemorySink
from tests.scripted_rm import ScriptedRM

from .test_state_store import worker

APP = "application_1_0001"


class Died(BaseException):
    """The process ends here: nothing after the acknowledgement runs (no commit, no checkpoint)."""


class DiesAfterAck(MemorySink):
    async def send(self, events, topics) -> None:
        self.events.extend(events)  # on Kafka, acknowledged
        raise Died


async def kafka_after_a_kill_between_ack_and_checkpoint(serve, tmp_path, moved_on: bool) -> list[Record]:
    rm = await serve(ScriptedRM())
    store = FileStore(tmp_path, "c1")
    topic = MemorySink()
    rm.put(APP, "ACCEPTED")
    first = worker(rm.url, topic, store)
    await first.cycle()  # ACCEPTED on Kafka and in the checkpoint
    await first.close()
    rm.put(APP, "RUNNING")
    dying = DiesAfterAck()
    second = worker(rm.url, dying, store)
    with pytest.raises(Died):
        await second.cycle()  # RUNNING on Kafka, not in the checkpoint
    await second.close()
    if moved_on:
        rm.put(APP, "FINISHED", finishedTime=1700000009000)
    third = worker(rm.url, topic, store)  # restarted on the same checkpoint
    await third.cycle()
    await third.close()
    on_kafka = topic.events[:1] + dying.events + topic.events[1:]
    return [Record(0, offset, e.key.encode(), e.encode()) for offset, e in enumerate(on_kafka)]


async def test_killed_after_ack_and_restarted_in_the_same_state_repeats_the_same_id(serve, tmp_path):
    records = await kafka_after_a_kill_between_ack_and_checkpoint(serve, tmp_path, moved_on=False)
    report = check(records, {}, cluster="c1")
    assert report.problems == []
    assert [(d.type, d.copies) for d in report.duplicates] == [("yarn.application.state_changed", 2)]


async def test_killed_after_ack_and_restarted_after_the_app_moved_on_reuses_no_seq(serve, tmp_path):
    records = await kafka_after_a_kill_between_ack_and_checkpoint(serve, tmp_path, moved_on=True)
    assert check(records, {}, cluster="c1").problems == []
