"""The Kafka sink's own recovery: after a failed batch the next send uses a new producer, so
an idempotent producer whose sequence numbers went out of step with the broker (a batch lost
in a broker restart) cannot wedge a partition until the process restarts. The producer is a
stand-in here: a real broker cannot be made to lose a batch on demand."""

from __future__ import annotations

import asyncio

import pytest
from aiokafka.errors import OutOfOrderSequenceNumber

from collector import sinks
from collector.config import KafkaConfig
from collector.events import Event
from collector.sinks import KafkaSink, SinkError


class StandInProducer:
    made: list[StandInProducer] = []
    fail_next = True

    def __init__(self, **settings) -> None:
        self.stopped = False
        self.sent: list[bytes] = []
        StandInProducer.made.append(self)

    async def start(self) -> None: ...

    async def stop(self) -> None:
        self.stopped = True

    async def send(self, topic, value, key):
        future = asyncio.get_running_loop().create_future()
        if StandInProducer.fail_next:
            future.set_exception(OutOfOrderSequenceNumber())
        else:
            self.sent.append(value)
            future.set_result(None)
        return future


def event(n: int) -> Event:
    return Event("collector.heartbeat", "c1", {"id": f"id-{n}", "n": n})


async def test_a_failed_batch_gets_a_new_producer_for_the_retry(monkeypatch):
    monkeypatch.setattr(sinks, "AIOKafkaProducer", StandInProducer)
    StandInProducer.made, StandInProducer.fail_next = [], True
    sink = KafkaSink(KafkaConfig())
    with pytest.raises(SinkError, match="OutOfOrderSequenceNumber"):
        await sink.send([event(1)], {"heartbeat": "t"})
    first = StandInProducer.made[0]
    assert first.stopped and sink.problem
    StandInProducer.fail_next = False
    await sink.send([event(1), event(2)], {"heartbeat": "t"})
    assert len(StandInProducer.made) == 2 and len(StandInProducer.made[1].sent) == 2
    assert sink.problem is None and first.sent == []
    await sink.close()


class BrokerGoneProducer(StandInProducer):
    """A producer whose broker went away with batches in flight: aiokafka's stop() waits for
    it for ever (idempotent batches never expire)."""

    async def stop(self) -> None:
        await asyncio.Event().wait()


async def test_close_gives_up_on_a_broker_that_is_gone(monkeypatch):
    import structlog

    monkeypatch.setattr(sinks, "AIOKafkaProducer", BrokerGoneProducer)
    StandInProducer.fail_next = False
    sink = KafkaSink(KafkaConfig())
    await sink.send([event(1)], {"heartbeat": "t"})
    with structlog.testing.capture_logs() as logs:
        await asyncio.wait_for(sink.close(timeout=0.2), timeout=5)  # bounded, not for ever
    assert [e["event"] for e in logs] == ["kafka.close_abandoned"]
    await sink.close()  # a second close has nothing left to do
