"""The delivery backlog: events built and waiting for Kafka's acknowledgement, in order.

Polling puts events in; the delivery loop sends the ones not yet acknowledged and takes
back, in order, the entries at the head that are. Only those may advance the checkpointed
state, so the checkpoint never runs ahead of Kafka, and an entry acknowledged out of order
(another partition) waits for the ones before it. The backlog is bounded in encoded bytes:
when full, the caller stops polling rather than dropping anything. No I/O here.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Iterable
from dataclasses import dataclass

from .enrichment import Pending
from .events import Encoded
from .tracker import Step


@dataclass(slots=True)
class Queued:
    event: Encoded
    size: int  # encoded bytes, counted against the bound
    observed_at_ms: int = 0
    #: What the acknowledgement makes durable (plain data, checkpointed with the backlog):
    #: a transition's step, and for an end the enrichment entry it opens; or the application
    #: whose finished event this is.
    step: Step | None = None
    pending: Pending | None = None
    finished_app: str | None = None
    acked: bool = False

    @property
    def stateful(self) -> bool:
        """Its acknowledgement changes the checkpoint (snapshots and heartbeats do not)."""
        return self.step is not None or self.finished_app is not None


class Outbox:
    def __init__(self, max_bytes: int) -> None:
        self.max_bytes = max_bytes
        self._entries: deque[Queued] = deque()
        self.bytes = 0

    def __len__(self) -> int:
        return len(self._entries)

    @property
    def full(self) -> bool:
        return self.bytes >= self.max_bytes

    def put(self, entries: Iterable[Queued]) -> None:
        """Append; never refuses (the bound is checked before polling and after each step of a
        poll's events, so one step may go over it rather than lose what it saw)."""
        for entry in entries:
            self._entries.append(entry)
            self.bytes += entry.size

    def unacked(self, limit: int) -> list[Queued]:
        """The first ``limit`` entries still waiting for an acknowledgement, oldest first."""
        out: list[Queued] = []
        for entry in self._entries:
            if not entry.acked:
                out.append(entry)
                if len(out) == limit:
                    break
        return out

    def settle(self, delivered: set[str], sent: Iterable[Queued]) -> list[Queued]:
        """Mark the sent entries Kafka acknowledged; remove and return the acknowledged head."""
        for entry in sent:
            if entry.event.id in delivered:
                entry.acked = True
        done: list[Queued] = []
        while self._entries and self._entries[0].acked:
            entry = self._entries.popleft()
            self.bytes -= entry.size
            done.append(entry)
        return done

    def stateful(self) -> list[Queued]:
        """The entries a checkpoint keeps, in order: sent again first after a restart."""
        return [entry for entry in self._entries if entry.stateful]

    def oldest_ms(self) -> int | None:
        return self._entries[0].observed_at_ms if self._entries else None
