"""A large apps answer is decoded a slice at a time; the result must be exactly ``parse_apps``'s,
whatever the answer holds."""

from __future__ import annotations

import orjson
import pytest

from collector import rm_poller
from collector.rm_client import parse_apps_stepwise
from collector.rm_models import app_spans, parse_apps
from collector.tracker import TrackerState, commit, diff, merge_views


def record(n: int, state: str = "RUNNING", **extra) -> dict:
    return {"id": f"application_1_{n:04d}", "state": state, "user": "u", "name": f"job {n}", **extra}


def answer(*records: dict) -> bytes:
    return orjson.dumps({"apps": {"app": list(records)}})


async def test_stepwise_equals_whole_and_really_cuts():
    body = answer(*(record(n, diagnostics='quote " and },{"id":"x"' * (n % 3)) for n in range(200)))
    assert len(app_spans(body, 64)) > 50
    page = await parse_apps_stepwise(body, step_bytes=64)
    assert page == parse_apps(body)
    assert [a.id for a in page.apps] == [f"application_1_{n:04d}" for n in range(200)]


@pytest.mark.parametrize(
    "body",
    [
        # a nested object that looks like an app's start: the pieces do not decode, the whole does
        answer(record(1, resourceInfo={"x": [{"id": "application_9_9"}, {"id":"application_9_8"}]}), record(2)),
        # one element of a wrong shape: kept out, its id reported unreadable, as parse_apps does
        answer(record(1), record(2, startedTime="soon"), record(3)),
        # not the compact layout: whitespace, another key order, no apps
        b'{"apps": {"app": [{"id": "application_1_0001", "state": "RUNNING"}]}}',
        b'{"apps":{"app":[{"state":"RUNNING","id":"application_1_0001"}]}}',
        b'{"apps":null}',
        b'{"apps":{}}',
    ],
)
async def test_odd_answers_give_what_parse_apps_gives(body):
    assert await parse_apps_stepwise(body, step_bytes=1) == parse_apps(body)


async def test_wrong_shape_still_reported():
    page = await parse_apps_stepwise(answer(record(1), record(2, startedTime="soon"), record(3)), step_bytes=1)
    assert [a.id for a in page.apps] == ["application_1_0001", "application_1_0003"]
    assert page.unreadable_ids == {"application_1_0002"}


async def test_diff_in_slices_equals_diff(monkeypatch):
    state = TrackerState()
    first = merge_views(parse_apps(answer(*(record(n, "ACCEPTED", startedTime=1000 - n) for n in range(50)))).apps)
    commit(state, diff(state, first))
    later = merge_views(parse_apps(answer(*(
        record(n, "RUNNING" if n % 3 else "ACCEPTED", startedTime=1000 - n, launchTime=2000 - n)
        for n in range(60)))).apps)
    monkeypatch.setattr(rm_poller, "DIFF_STEP", 7)
    sliced = await rm_poller._diff_stepwise(state, later, [])
    assert sliced == diff(state, later)
    assert len(sliced) == 10 + len([n for n in range(50) if n % 3])
