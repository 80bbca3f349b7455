"""The diff engine: transitions from successive views, committed only after delivery."""

from __future__ import annotations

from collector.rm_models import RawApp
from collector.tracker import Change, TrackerState, commit, diff, merge_views, missing_active, prune


def app(n: int, state: str, finished: int = 0) -> RawApp:
    return RawApp(id=f"application_1_{n:04d}", state=state, finishedTime=finished)


def view(*apps: RawApp) -> dict[str, RawApp]:
    return merge_views(apps)


def step(state: TrackerState, v: dict[str, RawApp], vanished=()):
    transitions = diff(state, v, vanished)
    commit(state, transitions)
    return [(t.app_id[-4:], t.change.value, t.previous_state, t.state, t.seq) for t in transitions]


def test_first_sight_then_each_change_in_order():
    s = TrackerState()
    assert step(s, view(app(1, "ACCEPTED"))) == [("0001", "state_changed", None, "ACCEPTED", 1)]
    assert step(s, view(app(1, "ACCEPTED"))) == []
    assert step(s, view(app(1, "RUNNING"))) == [("0001", "state_changed", "ACCEPTED", "RUNNING", 2)]
    # AM retry: RUNNING -> ACCEPTED is a real transition
    assert step(s, view(app(1, "ACCEPTED"))) == [("0001", "state_changed", "RUNNING", "ACCEPTED", 3)]
    assert step(s, view(app(1, "FINISHED", 1000))) == [("0001", "state_changed", "ACCEPTED", "FINISHED", 4)]
    assert s.watermark == 1000


def test_skipped_states_are_not_invented():
    s = TrackerState()
    step(s, view(app(1, "SUBMITTED")))
    # RUNNING and ACCEPTED happened between polls: the event says what was last observed
    assert step(s, view(app(1, "KILLED", 50))) == [("0001", "state_changed", "SUBMITTED", "KILLED", 2)]


def test_nothing_committed_means_the_same_transitions_again():
    s = TrackerState()
    v = view(app(1, "RUNNING"))
    first = diff(s, v)
    again = diff(s, v)  # delivery failed: no commit
    assert [(t.seq, t.state) for t in first] == [(t.seq, t.state) for t in again] == [(1, "RUNNING")]


def test_end_is_final():
    s = TrackerState()
    step(s, view(app(1, "FINISHED", 10)))
    assert step(s, view(app(1, "RUNNING"))) == []


def test_terminal_record_wins_when_both_answers_have_the_app():
    merged = merge_views([app(1, "RUNNING")], [app(1, "FINISHED", 7)])
    assert merged["application_1_0001"].state == "FINISHED"
    merged = merge_views([app(1, "FINISHED", 7)], [app(1, "RUNNING")])
    assert merged["application_1_0001"].state == "FINISHED"


def test_vanished_is_not_a_state_change_and_not_killed():
    s = TrackerState()
    step(s, view(app(1, "RUNNING")))
    assert missing_active(s, view()) == ["application_1_0001"]
    assert step(s, view(), vanished=["application_1_0001"]) == [("0001", "vanished", "RUNNING", "RUNNING", 2)]
    assert missing_active(s, view()) == []  # reported once
    assert step(s, view(), vanished=["application_1_0001"]) == []
    # seen again later (RM recovered it): first sight again, sequence continues (new id)
    assert step(s, view(app(1, "RUNNING"))) == [("0001", "state_changed", None, "RUNNING", 3)]


def test_unreadable_apps_are_not_looked_up_as_missing():
    s = TrackerState()
    step(s, view(app(1, "RUNNING"), app(2, "RUNNING")))
    assert missing_active(s, view(app(1, "RUNNING")), unreadable={"application_1_0002"}) == []


def test_ended_apps_are_never_looked_up():
    s = TrackerState()
    step(s, view(app(1, "FAILED", 5)))
    assert missing_active(s, view()) == []


def test_prune_forgets_ends_outside_the_window_only():
    s = TrackerState()
    step(s, view(app(1, "FINISHED", 1_000), app(2, "FINISHED", 100_000), app(3, "RUNNING")))
    assert prune(s, keep_ms=50_000) == 1
    assert sorted(s.apps) == ["application_1_0002", "application_1_0003"]


def test_prune_scans_again_only_once_the_watermark_moved():
    s = TrackerState()
    step(s, view(app(1, "FINISHED", 100_000)))
    assert prune(s, keep_ms=50_000) == 0
    step(s, view(app(2, "FINISHED", 10_000)))  # an old end (a lookup's): kept while the horizon stands
    assert prune(s, keep_ms=50_000) == 0 and "application_1_0002" in s.apps
    step(s, view(app(3, "FINISHED", 100_001)))
    assert prune(s, keep_ms=50_000) == 1
    assert sorted(s.apps) == ["application_1_0001", "application_1_0003"]


def test_transitions_are_ordered_by_occurrence():
    s = TrackerState()
    out = step(s, view(app(2, "FINISHED", 300), app(1, "FINISHED", 200), app(3, "RUNNING")))
    assert [o[0] for o in out] == ["0003", "0001", "0002"]


def test_change_enum_values_are_the_public_names():
    assert {c.value for c in Change} == {"state_changed", "vanished"}


def test_prune_in_slices_drops_what_prune_drops():
    from collector.tracker import expired, forget, prune_horizon

    whole, sliced = TrackerState(), TrackerState()
    apps = [app(i, "FINISHED" if i % 3 else "RUNNING", 1_000 * i if i % 3 else None) for i in range(1, 40)]
    for s in (whole, sliced):
        step(s, view(*apps))
    horizon = prune_horizon(sliced, keep_ms=20_000)
    ids = list(sliced.apps)
    found = [i for start in range(0, len(ids), 7) for i in expired(sliced, horizon, ids[start : start + 7])]
    assert forget(sliced, horizon, found) == prune(whole, keep_ms=20_000) > 0
    assert sliced.apps == whole.apps
    assert prune_horizon(sliced, keep_ms=20_000) is None  # done until the watermark moves
