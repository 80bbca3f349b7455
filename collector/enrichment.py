"""The enrichment retry queue and the outcomes it works with. Pure: time is passed in.

An application that ended waits here for its history server (the JobHistory Server moves
history files on an interval, the Spark History Server rescans on an interval; both answer
404 meanwhile). Each try either settles it (figures, or a definite "cannot") or reschedules
it with jittered exponential backoff; past the maximum age it is published as unavailable
with the last reason seen. Entries are plain data so that the queue is checkpointed with the
rest of the state and survives a restart.
"""

from __future__ import annotations

import random
from dataclasses import dataclass
from enum import StrEnum
from typing import Any

import msgspec

from .rm_models import RawApp


class Status(StrEnum):
    OK = "ok"
    NOT_APPLICABLE = "not_applicable"
    UNAVAILABLE = "unavailable"


class Pending(msgspec.Struct, kw_only=True):
    """An ended application whose finished event is not published yet."""

    app_id: str
    app_type: str | None
    state: str
    final_status: str | None
    ended_ms: int | None  # the RM's finishedTime
    launched: bool | None  # False: the ApplicationMaster never started (launchTime 0)
    record: dict[str, Any]  # the RM's record, as published in the event (refreshed while it waits)
    rm_final: bool = True  # False while the RM still shows containers (FINISHING)
    queued_ms: int  # local clock
    attempts: int = 0
    next_try_ms: int = 0
    source: dict[str, str] | None = None


@dataclass(frozen=True, slots=True)
class Outcome:
    """What one try found. ``final`` False means: not there yet, try again later."""

    status: Status
    final: bool
    reason: str | None = None
    source: dict[str, str] | None = None  # {"server": ..., "url": ...}
    mapreduce: dict[str, Any] | None = None
    spark: dict[str, Any] | None = None
    #: The server is down or answers nonsense (as opposed to "not there yet"): worth a warning.
    trouble: bool = False


def ok(source: dict[str, str], *, mapreduce: dict | None = None, spark: dict | None = None) -> Outcome:
    return Outcome(Status.OK, True, None, source, mapreduce, spark)


def not_yet(reason: str, source: dict[str, str] | None = None, *, trouble: bool = False) -> Outcome:
    return Outcome(Status.UNAVAILABLE, False, reason, source, trouble=trouble)


def unavailable(reason: str, source: dict[str, str] | None = None, **figures: Any) -> Outcome:
    return Outcome(Status.UNAVAILABLE, True, reason, source, figures.get("mapreduce"), figures.get("spark"))


def not_applicable(reason: str) -> Outcome:
    return Outcome(Status.NOT_APPLICABLE, True, reason)


@dataclass(frozen=True, slots=True)
class RetryPolicy:
    first_delay_ms: int = 2_000
    max_delay_ms: int = 60_000
    max_age_ms: int = 15 * 60_000

    def next_delay_ms(self, attempts: int) -> int:
        base = min(self.max_delay_ms, self.first_delay_ms * 2 ** max(0, attempts - 1))
        return int(base * random.uniform(0.75, 1.0))


def due(queue: dict[str, Pending], now_ms: int) -> list[Pending]:
    """Entries whose next try is due, oldest end first."""
    ready = [p for p in queue.values() if p.next_try_ms <= now_ms]
    ready.sort(key=lambda p: (p.ended_ms or 0, p.app_id))
    return ready


def settle(p: Pending, outcome: Outcome, now_ms: int, policy: RetryPolicy) -> Outcome | None:
    """The final outcome to publish now, or None after rescheduling ``p`` (in place)."""
    p.attempts += 1
    if outcome.final:
        return outcome
    p.source = outcome.source or p.source
    if now_ms - p.queued_ms >= policy.max_age_ms:
        waited = (now_ms - p.queued_ms) // 1000
        return unavailable(f"{outcome.reason} (gave up after {p.attempts} tries over {waited}s)", p.source)
    p.next_try_ms = now_ms + policy.next_delay_ms(p.attempts)
    return None


def rm_usage_final(app: RawApp) -> bool:
    """The RM reports FINISHED as soon as the ApplicationMaster unregisters, while its
    container still runs (internally FINISHING): usage is final once no container runs
    (``runningContainers`` turns -1 after the end)."""
    return app.is_terminal and not (app.runningContainers is not None and app.runningContainers > 0)


def pending_for(app: RawApp, record: dict[str, Any], now_ms: int) -> Pending:
    """Queue an application whose end was just delivered; first try right away."""
    return Pending(
        rm_final=rm_usage_final(app),
        app_id=app.id,
        app_type=app.applicationType,
        state=app.state,
        final_status=app.finalStatus,
        ended_ms=app.finishedTime or None,
        launched=None if app.launchTime is None else app.launchTime > 0,
        record=record,
        queued_ms=now_ms,
        next_try_ms=now_ms,
    )
