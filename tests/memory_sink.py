"""A sink that keeps delivered events in memory, for tests that watch what the service emits."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable


class MemorySink:
    """Records every delivered event, in delivery order; never fails."""

    def __init__(self) -> None:
        self.events = []

    async def start(self) -> None: ...

    async def send(self, events, topics) -> None:
        self.events.extend(events)

    async def close(self) -> None: ...

    async def wait_until(self, predicate: Callable[[list], bool], timeout: float = 10.0, what: str = "") -> None:
        """Wait until ``predicate(events)`` holds; fail with what was delivered so far."""
        deadline = time.monotonic() + timeout
        while not predicate(self.events):
            if time.monotonic() > deadline:
                raise AssertionError(f"timed out waiting for {what or predicate!r}; delivered: "
                                     f"{[(e.type, e.envelope['subject']) for e in self.events]}")
            await asyncio.sleep(0.01)
