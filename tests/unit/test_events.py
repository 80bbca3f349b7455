"""Events: envelope, deterministic ids, keys, truncation, schema validity of every kind."""

from __future__ import annotations

import pytest

from collector.events import (
    STATE_CHANGED,
    VANISHED,
    EventContext,
    application_key,
    transition_event,
    truncate,
)
from collector.rm_models import RawApp, parse_apps
from collector.schemas import SchemaViolation, validate
from collector.tracker import Change, Transition

CTX = EventContext("prod-1", 1700000000000, diagnostics_limit=64)


def _t(app: RawApp, seq=1, prev=None, change=Change.STATE) -> Transition:
    return Transition(app.id, seq, change, prev, app.state, None if change is Change.VANISHED else app)


def test_envelope_is_cloudevents_structured():
    app = RawApp(id="application_1_7", state="RUNNING", name="etl", queue="root.a", startedTime=5)
    ev = transition_event(CTX, _t(app, prev="ACCEPTED", seq=2), observed_at_ms=1_700_000_000_123)
    env = ev.envelope
    assert env["specversion"] == "1.0"
    assert env["source"] == "hadoop://prod-1/yarn"
    assert env["type"] == STATE_CHANGED
    assert env["subject"] == "application_1_7"
    assert env["dataschema"] == "urn:hadoop-event-collector:schema:yarn.application.state_changed:v1"
    assert env["time"] == "2023-11-14T22:13:20.123Z"
    assert env["data"]["previous_state"] == "ACCEPTED" and env["data"]["state"] == "RUNNING"
    assert ev.key == application_key("prod-1", "application_1_7") == "prod-1/application_1_7"
    validate(env)


def test_ids_are_deterministic_and_distinct_per_observation():
    app = RawApp(id="application_1_7", state="RUNNING")
    a = transition_event(CTX, _t(app, seq=2, prev="ACCEPTED"), 1)
    b = transition_event(CTX, _t(app, seq=2, prev="ACCEPTED"), 999)  # observed later, same observation
    c = transition_event(CTX, _t(app, seq=4, prev="ACCEPTED"), 1)  # the same pair again after an AM retry
    d = transition_event(EventContext("prod-2", None), _t(app, seq=2, prev="ACCEPTED"), 1)
    assert a.id == b.id
    assert len({a.id, c.id, d.id}) == 3


def test_diagnostics_are_truncated_with_a_marker():
    long = "x" * 100
    assert truncate(long, 64) == "x" * 64 + "...[truncated 36 chars]"
    app = RawApp(id="application_1_7", state="FAILED", diagnostics=long, finishedTime=10)
    ev = transition_event(CTX, _t(app), 20)
    assert ev.envelope["data"]["application"]["diagnostics"].endswith("...[truncated 36 chars]")
    validate(ev.envelope)


def test_vanished_event_is_valid_and_says_last_state():
    app = RawApp(id="application_1_7", state="RUNNING")
    ev = transition_event(CTX, _t(app, seq=3, prev="RUNNING", change=Change.VANISHED), 42)
    assert ev.type == VANISHED
    assert ev.envelope["data"]["last_state"] == "RUNNING"
    assert "KILLED" not in ev.encode().decode()
    validate(ev.envelope)


def test_every_recorded_shape_yields_schema_valid_events(case):
    names = [
        "rm/hadoop-2.7-running-and-finished.json",
        "rm/accepted-no-tracking-url.json",
        "rm/finished-failed-with-resource-map.json",
    ]
    count = 0
    for name in names:
        for app in parse_apps(case(name)).apps:
            validate(transition_event(CTX, _t(app), 1).envelope)
            count += 1
    assert count == 4


def test_schema_violation_is_caught():
    app = RawApp(id="application_1_7", state="RUNNING")
    env = transition_event(CTX, _t(app), 1).envelope
    env["data"]["state"] = "DANCING"
    with pytest.raises(SchemaViolation, match="data.state"):
        validate(env)


def test_free_text_is_bounded_so_one_app_cannot_make_an_event_too_large():
    app = RawApp(id="application_1_7", state="RUNNING", name="n" * 1_500_000,
                 applicationTags=",".join(["t" * 5000] * 3), trackingUrl="http://x/" + "p" * 5000)
    ev = transition_event(CTX, _t(app), 1)
    assert len(ev.encode()) < 20_000
    assert ev.envelope["data"]["application"]["name"].endswith("...[truncated 1498976 chars]")
    validate(ev.envelope)


def test_absurd_rm_timestamps_do_not_break_the_event():
    app = RawApp(id="application_1_7", state="FINISHED", finishedTime=10**17)
    ev = transition_event(CTX, _t(app), 1_700_000_000_000)
    assert ev.envelope["time"] == "2023-11-14T22:13:20.000Z"  # the observation time instead
    validate(ev.envelope)
