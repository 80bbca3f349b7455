"""Long scans over large collections, a slice at a time, letting other tasks run in between.

A poll cycle at 100k tracked apps must not hold the event loop for more than a few ms at a
stretch: a timer due meanwhile (another cluster's poll, a heartbeat, /readyz) would wait.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Sequence
from typing import TypeVar

T = TypeVar("T")
R = TypeVar("R")

#: Items per slice: ~2 ms of a simple check each.
SCAN_STEP = 10_000


async def scan(items: Sequence[T], check: Callable[[Sequence[T]], list[R]], step: int = SCAN_STEP) -> list[R]:
    """``check`` over ``items`` a slice at a time; the results, in order."""
    out: list[R] = []
    for start in range(0, len(items), step):
        out += check(items[start : start + step])
        if start + step < len(items):
            await asyncio.sleep(0)
    return out
