"""Where transitions come from: a pure diff of what we knew against what the RM shows now.

No I/O, no clock. The poller feeds observations in. The service keeps two states: the one
it diffs against, advanced as soon as the events are queued for Kafka, and the checkpointed
one, advanced only by the transitions whose events Kafka acknowledged; a restart from the
latter re-derives exactly the unacknowledged transitions (same sequence numbers, same ids).
"""

from __future__ import annotations

from collections.abc import Callable, Collection, Container, Iterable, Mapping
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any

import msgspec

from .rm_models import ACTIVE_STATES, TERMINAL_STATES, AppHead, RawApp

#: One shared string per state name: a tracked app then costs no string of its own.
_STATE_NAME = {name: name for name in ACTIVE_STATES + TERMINAL_STATES}


class Change(StrEnum):
    STATE = "state_changed"  # first sight or a new state
    VANISHED = "vanished"  # no longer visible on the RM; not a state change


class Tracked(msgspec.Struct, gc=False):
    """What is remembered of one application: a few scalars, kept compact (100k of them are
    normal). ``gc=False``: it holds no containers, so the garbage collector need not visit it."""

    state: str
    seq: int  # events emitted for this app so far; part of the event id
    finished_time: int | None = None
    visible: bool = True
    vanished_at: int | None = None  # the watermark when it vanished, for pruning

    @property
    def terminal(self) -> bool:
        return self.state in TERMINAL_STATES


@dataclass(frozen=True, slots=True)
class Transition:
    app_id: str
    seq: int
    change: Change
    previous_state: str | None  # last state we observed; None on first sight
    state: str  # new state; for VANISHED the last observed one
    app: RawApp | None  # the RM's record; None for VANISHED


@dataclass(slots=True)
class TrackerState:
    """Everything needed to resume: checkpointed as a whole (plain data only)."""

    apps: dict[str, Tracked] = field(default_factory=dict)
    watermark: int | None = None  # largest finishedTime seen, RM clock (ms)
    floor: int | None = None  # first start: ends before this are history, not news (RM clock)
    rm_cluster_id: int | None = None
    #: The horizon of the last ``prune`` (not checkpointed): until it moves there is nothing to scan for.
    pruned_to: int | None = field(default=None, compare=False, repr=False)


def copy_state(state: TrackerState) -> TrackerState:
    """An independent copy: the service diffs against one (what it has queued) while the
    other (what Kafka acknowledged) is the one checkpointed."""
    return TrackerState(
        apps={k: Tracked(t.state, t.seq, t.finished_time, t.visible, t.vanished_at) for k, t in state.apps.items()},
        watermark=state.watermark,
        floor=state.floor,
        rm_cluster_id=state.rm_cluster_id,
    )


def merge_views(*pages: Iterable[RawApp | AppHead]) -> dict[str, Any]:
    """Merge answers fetched one after another into one view by id; a terminal record wins over
    an active one (an app can end between the active and the ended request)."""
    merged: dict[str, Any] = {}
    for page in pages:
        for app in page:
            seen = merged.get(app.id)
            if seen is None or (app.state in TERMINAL_STATES and seen.state not in TERMINAL_STATES):
                merged[app.id] = app
    return merged


def diff(state: TrackerState, view: Mapping[str, RawApp | AppHead], vanished: Iterable[str] = ()) -> list[Transition]:
    """Transitions from ``state`` to ``view``; ``state`` is not modified."""
    out = changes(state, view.items()) + vanishings(state, view, vanished)
    out.sort(key=occurrence_order)
    return out


def changes(state: TrackerState, apps: Iterable[tuple[str, RawApp | AppHead]]) -> list[Transition]:
    """The state changes among ``apps`` (id, record), unsorted: ``diff`` over part of a view,
    so that a large view can be compared a slice at a time. An app given by its head only must
    not be news (``is_news``): a transition carries the whole record."""
    out: list[Transition] = []
    known = state.apps.get
    for app_id, app in apps:
        tracked = known(app_id)
        if not is_news(tracked, app.state):
            continue
        if tracked is None:
            out.append(Transition(app_id, 1, Change.STATE, None, app.state, app))  # type: ignore[arg-type]
        else:
            prev = tracked.state if tracked.visible else None
            out.append(Transition(app_id, tracked.seq + 1, Change.STATE, prev, app.state, app))  # type: ignore[arg-type]
    return out


def is_news(tracked: Tracked | None, state: str) -> bool:
    """Whether an app seen in ``state`` makes a transition: first sight, a new state, or seen
    again after it vanished; never after its end (an end is final, a stale active record after
    it is ignored)."""
    if tracked is None:
        return True
    if tracked.state == state and tracked.visible:
        return False  # the common case, checked first: nothing changed
    return tracked.state not in TERMINAL_STATES


def record_selector(state: TrackerState, also: Container[str] = ()) -> Callable[[list[AppHead]], set[str]]:
    """For a poll that reads heads first: the ids among ``heads`` whose whole record is needed,
    those that are news (``is_news``, the rule ``changes`` applies) and those in ``also``."""
    known = state.apps.get

    def select(heads: list[AppHead]) -> set[str]:
        out = set()
        for h in heads:
            t = known(h.id)
            # ``is_news`` inlined for the common case, an app seen in the state it was in
            if t is not None and t.state == h.state and t.visible and h.id not in also:
                continue
            if is_news(t, h.state) or h.id in also:
                out.add(h.id)
        return out

    return select


def vanishings(state: TrackerState, view: Mapping[str, object], vanished: Iterable[str]) -> list[Transition]:
    out: list[Transition] = []
    for app_id in vanished:
        tracked = state.apps.get(app_id)
        if tracked is not None and tracked.visible and not tracked.terminal and app_id not in view:
            out.append(Transition(app_id, tracked.seq + 1, Change.VANISHED, tracked.state, tracked.state, None))
    return out


def occurrence_order(t: Transition) -> tuple[int, str]:
    """Transitions in the order they happened (RM times), ties by application id."""
    app = t.app
    when = 0
    if app is not None:
        when = app.finishedTime or app.launchTime or app.startedTime or 0
    return (when, t.app_id)


def missing_active(state: TrackerState, seen: Collection[str], unreadable: Iterable[str] = ()) -> list[str]:
    """Apps we believe active that neither answer mentioned (``seen``: the ids they hold, or a
    view by id): look each up alone. ``missing_active_among`` for a slice of the tracked apps."""
    return sorted(missing_active_among(state, seen, set(unreadable), list(state.apps)))


def missing_active_among(state: TrackerState, seen: Collection[str], skip: Container[str],
                         app_ids: Iterable[str]) -> list[str]:
    """``missing_active`` over ``app_ids`` only (unsorted), skipping those in ``skip``."""
    apps = state.apps
    out = []
    for app_id in set(app_ids).difference(seen):  # in C: nearly every tracked app was seen
        if app_id not in skip:
            t = apps.get(app_id)
            if t is not None and t.visible and t.state not in TERMINAL_STATES:
                out.append(app_id)
    return out


@dataclass(frozen=True, slots=True)
class Step:
    """What one transition changes in the state: plain data, so that a transition queued for
    Kafka can be checkpointed with the backlog and applied once it is acknowledged."""

    app_id: str
    seq: int
    vanished: bool
    state: str
    finished_time: int | None


def step_of(t: Transition) -> Step:
    finished = t.app.finishedTime if t.app is not None and t.app.finishedTime else None
    return Step(t.app_id, t.seq, t.change is Change.VANISHED, t.state, finished)


def commit(state: TrackerState, transitions: Iterable[Transition]) -> None:
    """Apply transitions to ``state`` (in place) and advance the watermark."""
    apply(state, [step_of(t) for t in transitions])


def apply(state: TrackerState, steps: Iterable[Step]) -> None:
    """``commit`` for steps."""
    apps = state.apps
    for t in steps:
        if t.vanished:
            tracked = apps[t.app_id]
            tracked.seq = t.seq
            tracked.visible = False
            tracked.vanished_at = state.watermark
            continue
        finished = t.finished_time
        name = _STATE_NAME.get(t.state, t.state)
        tracked = apps.get(t.app_id)
        if tracked is None:
            apps[t.app_id] = Tracked(name, t.seq, finished)
        else:
            tracked.state, tracked.seq, tracked.visible = name, t.seq, True
            tracked.finished_time = finished
        if finished and t.state in TERMINAL_STATES and (state.watermark is None or finished > state.watermark):
            state.watermark = finished


def prune(state: TrackerState, keep_ms: int) -> int:
    """Forget ended apps older than the query window and old tombstones; returns how many.

    An ended app outside ``watermark - keep_ms`` can no longer appear in the ended-apps
    answer, so remembering it protects nothing. An app that joins beyond the horizon while it
    stands (a lookup's old end) waits for the next move of the watermark. (The service runs
    the same steps a slice of the apps at a time: ``prune_horizon``, ``expired``, ``forget``.)
    """
    horizon = prune_horizon(state, keep_ms)
    if horizon is None:
        return 0
    return forget(state, horizon, expired(state, horizon, list(state.apps)))


def prune_horizon(state: TrackerState, keep_ms: int) -> int | None:
    """Where ``prune`` cuts now; None when the horizon has not moved since the last prune (a
    scan of 100k apps takes ~20 ms, and would find nothing new)."""
    if state.watermark is None or state.watermark - keep_ms == state.pruned_to:
        return None
    return state.watermark - keep_ms


def expired(state: TrackerState, horizon: int, app_ids: Iterable[str]) -> list[str]:
    """The apps among ``app_ids`` that ``prune`` drops at ``horizon``."""
    apps = state.apps
    out = []
    for app_id in app_ids:
        t = apps.get(app_id)
        if t is not None and (
            (t.finished_time is not None and t.finished_time < horizon and t.state in TERMINAL_STATES)
            or (t.vanished_at is not None and t.vanished_at < horizon and not t.visible)
        ):
            out.append(app_id)
    return out


def forget(state: TrackerState, horizon: int, app_ids: Iterable[str]) -> int:
    """Drop the apps ``expired`` found (checked again: a tombstone may have come back since);
    the prune to ``horizon`` is then done. Returns how many."""
    drop = expired(state, horizon, app_ids)
    for app_id in drop:
        del state.apps[app_id]
    state.pruned_to = horizon
    return len(drop)
