"""One incremental poll of a ResourceManager, turned into transitions.

Per cycle: cluster info (finds the active RM, its clock and restart id), the active apps,
the apps ended since ``watermark - overlap``, and a lookup of each app we thought active
that neither answer mentioned. The whole retained list is never fetched.

The transitions go to the caller a part of an answer at a time (``Emit``), as they are found:
a 100k-app answer is never held as records, nor its events all at once, and the caller can
hold the cycle (backpressure) while Kafka catches up.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable, Callable, Container, Iterable
from dataclasses import dataclass, field

import structlog

from . import stepwise
from .http import PeerError
from .parsing import ParseError
from .rm_client import ResourceManager, apps_in_parts
from .rm_models import AppHead, ClusterInfo, RawApp
from .tracker import (
    TrackerState,
    Transition,
    changes,
    merge_views,
    missing_active_among,
    occurrence_order,
    record_selector,
    vanishings,
)

log = structlog.get_logger(__name__)

#: Takes the transitions of one part of a cycle, in the order they happened; when it returns,
#: the caller has applied to the poller's state those it queued.
Emit = Callable[[list[Transition]], Awaitable[None]]


@dataclass(slots=True)
class PollSummary:
    info: ClusterInfo
    apps_seen: int = 0  # distinct apps in the answers and lookups
    transitions: int = 0  # handed to ``emit``
    answer_bytes: int = 0  # the two apps answers
    #: The records of the apps asked for in ``records_for`` that the cycle saw, by id.
    records: dict[str, RawApp] = field(default_factory=dict)


def first_sightings(apps: list[RawApp | AppHead], seen: set[str]) -> list[RawApp | AppHead]:
    """The apps not in ``seen``, each id once; ``seen`` takes them. An id given twice in one part
    (an RM mid-update) is one app, its end winning as across the two answers (``merge_views``).
    The common case, distinct ids all new, in C-level passes."""
    ids = [app.id for app in apps]
    if seen.isdisjoint(ids) and len(set(ids)) == len(ids):
        seen.update(ids)
        return apps
    fresh = merge_views([app for app in apps if app.id not in seen])
    seen.update(fresh)
    return list(fresh.values())


class RmPoller:
    def __init__(
        self,
        rm: ResourceManager,
        state: TrackerState,
        *,
        overlap_ms: int,
        backfill_ms: int,
        lookup_concurrency: int = 8,
    ) -> None:
        self.rm = rm
        self.state = state
        self.overlap_ms = overlap_ms
        self.backfill_ms = backfill_ms
        self._lookups = asyncio.Semaphore(lookup_concurrency)
        self._ids: dict[str, int] = {}  # clusterInfo.id last seen from each RM URL

    async def poll(self, local_now_ms: int, emit: Emit, records_for: Container[str] = ()) -> PollSummary:
        """Observe once; hand every transition to ``emit``. ``state`` changes here only in its
        bookkeeping (cluster id, first watermark); ``emit`` applies what it queued.

        The ended apps are taken first: an app that ended between the two requests is in both
        answers, and its end wins. Within a cycle an app is considered once, at its first
        sighting. Apps thought active that neither answer mentions are looked up (and reported
        vanished) only when both answers were complete and whole.

        Raises ``PeerError``/``ParseError`` when an answer cannot be trusted; what earlier parts
        of the cycle emitted stands (each is a true observation), and nothing is concluded from
        what the cycle did not see.
        """
        state = self.state
        info, rm_now = await self.rm.cluster_info()
        self._note_restart(info)
        if state.floor is None and state.watermark is None:
            # First start: report apps that ended within the backfill window, not the
            # whole retained history. The RM's clock decides, not ours.
            state.floor = (rm_now or local_now_ms) - self.backfill_ms
        if state.watermark is None:
            # No end acknowledged yet: from the floor of the first start, kept across restarts
            # (found by review: a restart set a new floor, and ends while it was down were missed)
            state.watermark = state.floor
        since = state.watermark - self.overlap_ms
        active = await self.rm.active_answer()
        ended = await self.rm.ended_answer(since if state.floor is None else max(since, state.floor))
        summary = PollSummary(info, answer_bytes=len(active) + len(ended))
        seen: set[str] = set()
        select = record_selector(state, records_for)
        complete, unreadable = True, set[str]()

        async def parts(body: bytes) -> AsyncIterator[list[tuple[str, RawApp]]]:
            """Each part's records of apps not seen before in this cycle (a head is an app the
            selector found unchanged: only records can be news)."""
            nonlocal complete
            async for part in apps_in_parts(body, select=select):
                complete = complete and part.complete
                unreadable.update(part.unreadable_ids)
                for problem in part.problems:
                    log.warning("rm.unreadable_app", cluster=self.rm.cluster, problem=problem)
                fresh = first_sightings(part.apps, seen)
                records = [(app.id, app) for app in fresh if app.__class__ is RawApp]
                summary.records.update((app_id, app) for app_id, app in records if app_id in records_for)
                yield records

        # The ends first, all of them in the order they happened: the checkpoint's watermark
        # follows what Kafka acknowledged, so an end must never be queued before an earlier one
        # (a crash in between would leave the earlier one behind the watermark). The window
        # holds few apps, except after a long stop.
        ends: list[Transition] = []
        async for records in parts(ended):
            ends += changes(state, records)
        await self._emit(summary, emit, ends)  # sorted there; ``emit`` queues them a step at a time
        del ends
        # Active apps carry no end: a part at a time, never all of a large answer at once.
        async for records in parts(active):
            await self._emit(summary, emit, changes(state, records))
        del active, ended  # let a large answer go before the lookups
        summary.apps_seen = len(seen)
        await asyncio.sleep(0)  # each of the steps below takes ~20 ms at 100k apps: one at a time
        if complete:
            await self._conclude(summary, emit, seen, unreadable)
        return summary

    async def _conclude(self, summary: PollSummary, emit: Emit, seen: set[str], unreadable: Iterable[str]) -> None:
        """Look up each app thought active that neither answer mentioned: its record says what
        became of it, the RM's "not found" that it vanished."""
        state = self.state
        skip = set(unreadable)
        missing = await stepwise.scan(list(state.apps), lambda ids: missing_active_among(state, seen, skip, ids))
        missing.sort()
        found = await asyncio.gather(*(self._lookup(app_id) for app_id in missing))
        looked_up: dict[str, RawApp] = {}
        vanished: list[str] = []
        for app_id, outcome in zip(missing, found, strict=True):
            if outcome is _GONE:
                vanished.append(app_id)
            elif isinstance(outcome, RawApp):
                looked_up[app_id] = outcome
        summary.apps_seen += len(looked_up)
        await self._emit(summary, emit, changes(state, looked_up.items()) + vanishings(state, looked_up, vanished))

    @staticmethod
    async def _emit(summary: PollSummary, emit: Emit, transitions: list[Transition]) -> None:
        if transitions:
            transitions.sort(key=occurrence_order)
            summary.transitions += len(transitions)
            await emit(transitions)

    def _note_restart(self, info: ClusterInfo) -> None:
        """Log once when the RM in use restarted: the same RM with a new clusterInfo.id (its
        start time). The two RMs of an HA pair each have their own id, so a failover changes
        the id too without being a restart. With one RM, the checkpointed id stands for it."""
        if info.id is None:
            return
        url = self.rm.active_url or self.rm.urls[0]
        single = len(self.rm.urls) == 1
        before = self._ids.get(url, self.state.rm_cluster_id if single else None)
        if before is not None and before != info.id:
            log.warning("rm.restarted", cluster=self.rm.cluster, rm=url, old_id=before, new_id=info.id)
        self._ids[url] = info.id
        self.state.rm_cluster_id = info.id

    async def _lookup(self, app_id: str) -> RawApp | object | None:
        """The app's record, ``_GONE`` when the RM no longer knows it, None when unsure."""
        async with self._lookups:
            try:
                app = await self.rm.app(app_id)
            except (PeerError, ParseError) as exc:
                log.warning("rm.lookup_failed", cluster=self.rm.cluster, app_id=app_id, error=str(exc))
                return None
        return _GONE if app is None else app


_GONE = object()
