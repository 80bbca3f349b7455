"""Giving freed heap back to the operating system after a large poll.

A poll of a large cluster reads an answer of hundreds of MB in pieces and queues thousands of
events; once they are delivered the memory is free but glibc keeps it, because something still
in use sits above it in the heap, and the process stays at its peak size for good. glibc's
``malloc_trim`` returns the free pages wherever they are. Elsewhere (musl, macOS) this is a
no-op: those allocators keep less, and there is nothing to call.
"""

from __future__ import annotations

import asyncio
import ctypes
import ctypes.util
from collections.abc import Callable


def _find_trim() -> Callable[[int], int] | None:
    name = ctypes.util.find_library("c")
    if name is None:
        return None
    try:
        trim = ctypes.CDLL(name).malloc_trim
    except (OSError, AttributeError):
        return None
    trim.argtypes, trim.restype = [ctypes.c_size_t], ctypes.c_int
    return trim


_trim = _find_trim()


async def give_back() -> bool:
    """Return free heap pages to the OS; True when the allocator could be asked.

    In a thread: trimming a heap of a few hundred MB takes tens of ms, and ctypes lets go of
    the GIL meanwhile, so the event loop keeps running."""
    if _trim is None:
        return False
    await asyncio.to_thread(_trim, 0)
    return True
