"""One incremental poll of a ResourceManager, turned into transitions.

Per cycle: cluster info (finds the active RM, its clock and restart id), the active apps,
the apps ended since ``watermark - overlap``, and a lookup of each app we thought active
that neither answer mentioned. The whole retained list is never fetched.
"""

from __future__ import annotations

import asyncio
from collections.abc import Container
from dataclasses import dataclass
from itertools import islice

import structlog

from .http import PeerError
from .parsing import ParseError
from .rm_client import ResourceManager
from .rm_models import AppHead, ClusterInfo, RawApp
from .tracker import (
    TrackerState,
    Transition,
    changes,
    merge_into,
    missing_active,
    occurrence_order,
    record_selector,
    vanishings,
)

log = structlog.get_logger(__name__)

#: A large view is merged and compared this many apps at a time, letting other tasks run in between.
DIFF_STEP = 5000


@dataclass(frozen=True, slots=True)
class PollResult:
    transitions: list[Transition]
    info: ClusterInfo
    view: dict[str, RawApp | AppHead]  # every app this cycle saw, by id: records of the changed ones

    @property
    def apps_seen(self) -> int:
        return len(self.view)

    async def release(self) -> None:
        """Drop the records a slice at a time, letting other tasks run in between: freeing 100k
        of them in one go takes a few hundred ms."""
        view = self.view
        while view:
            for _ in range(min(DIFF_STEP, len(view))):
                view.popitem()
            await asyncio.sleep(0)


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

    async def poll(self, local_now_ms: int, records_for: Container[str] = ()) -> PollResult:
        """Observe once; ``state`` only changes in its bookkeeping (cluster id, first watermark).

        The view holds the whole record of every app that changed, and of those in
        ``records_for``; the others are heads (id and state).

        Raises ``PeerError``/``ParseError`` when the cycle cannot be trusted as a whole;
        the caller retries later and nothing is emitted from a partial view.
        """
        state = self.state
        info, rm_now = await self.rm.cluster_info()
        self._note_restart(info)
        if state.watermark is None:
            # First start: report apps that ended within the backfill window, not the
            # whole retained history. The RM's clock decides, not ours.
            state.watermark = state.floor = (rm_now or local_now_ms) - self.backfill_ms

        select = record_selector(state, records_for)
        active = await self.rm.active_apps(select)
        since = state.watermark - self.overlap_ms
        ended = await self.rm.ended_apps(since if state.floor is None else max(since, state.floor), select)
        view: dict[str, RawApp | AppHead] = {}
        for page in (active.apps, ended.apps):
            for start in range(0, len(page), DIFF_STEP):
                merge_into(view, page[start : start + DIFF_STEP])
                await asyncio.sleep(0)
        unreadable = active.unreadable_ids | ended.unreadable_ids
        for problem in active.problems + ended.problems:
            log.warning("rm.unreadable_app", cluster=self.rm.cluster, problem=problem)

        vanished: list[str] = []
        if active.complete and ended.complete:
            missing = missing_active(state, view, unreadable)
            found = await asyncio.gather(*(self._lookup(app_id) for app_id in missing))
            for app_id, outcome in zip(missing, found, strict=True):
                if outcome is _GONE:
                    vanished.append(app_id)
                elif isinstance(outcome, RawApp):
                    view[app_id] = outcome
        transitions = await _diff_stepwise(state, view, vanished)
        return PollResult(transitions, info, view)

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


async def _diff_stepwise(
    state: TrackerState, view: dict[str, RawApp | AppHead], vanished: list[str]
) -> list[Transition]:
    """``tracker.diff``, a slice of the view at a time (100k apps take ~50 ms in one go). Only
    whole records can be news: an app read as a head was unchanged (``record_selector``)."""
    items = iter(view.items())  # nothing else touches this view meanwhile
    out: list[Transition] = []
    for _ in range(0, len(view), DIFF_STEP):
        out += changes(state, [(k, v) for k, v in islice(items, DIFF_STEP) if v.__class__ is RawApp])
        await asyncio.sleep(0)
    out += vanishings(state, view, vanished)
    out.sort(key=occurrence_order)
    return out
