"""After a large poll the freed heap goes back to the OS, once the cycle's events are out."""

from __future__ import annotations

import platform

from collector import memory
from tests.memory_sink import MemorySink
from tests.scripted_rm import ScriptedRM

from .test_backlog import worker_for


async def test_give_back_asks_glibc():
    assert await memory.give_back() is (platform.libc_ver()[0] == "glibc")


async def test_a_large_cycle_gives_its_memory_back_once_its_events_are_delivered(serve, monkeypatch):
    rm = await serve(ScriptedRM())
    for i in range(1, 51):
        rm.put(f"application_1_{i:04d}", "RUNNING")
    sink = MemorySink()
    worker = worker_for(rm.url, sink)
    backlog_at_call: list[int] = []

    async def give_back() -> bool:
        backlog_at_call.append(len(worker.outbox))
        return True

    monkeypatch.setattr(memory, "give_back", give_back)
    monkeypatch.setattr("collector.service.TRIM_AFTER_BYTES", 1)  # every answer counts as large
    assert await worker.cycle() == 50
    assert backlog_at_call == [0]  # once, with the backlog delivered
    monkeypatch.setattr("collector.service.TRIM_AFTER_BYTES", 1 << 40)
    rm.put("application_1_0001", "FINISHED", finishedTime=1700000009000)
    assert await worker.cycle() == 1
    assert backlog_at_call == [0]  # a small cycle leaves the heap alone
    await worker.close()
