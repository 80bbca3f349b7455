"""A large apps answer is decoded a slice at a time; the result must be exactly ``parse_apps``'s,
whatever the answer holds."""

from __future__ import annotations

import orjson
import pytest

from collector import rm_poller
from collector.rm_client import parse_apps_stepwise
from collector.rm_models import AppHead, RawApp, app_spans, parse_apps, parse_head_span, select_records
from collector.tracker import TrackerState, commit, diff, merge_views, record_selector


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


# --- heads first: only the records a poll selects are decoded whole --------------------------


def _whole_where_selected(page, wanted: set[str]):
    """The selected-records page, checked against ``parse_apps``: same apps in the same order,
    whole records exactly where selected (and equal to parse_apps's), heads elsewhere."""
    whole = {a.id: a for a in page.apps if isinstance(a, RawApp)}
    assert set(whole) == wanted
    return whole


async def test_heads_first_decodes_only_the_selected_records():
    body = answer(*(record(n, diagnostics='x "},{"id":"application_1_0007"' * (n % 2)) for n in range(100)))
    wanted = {"application_1_0007", "application_1_0050", "application_1_0099"}
    page = await parse_apps_stepwise(body, step_bytes=300, select=lambda heads: wanted)
    reference = parse_apps(body)
    assert [(a.id, a.state) for a in page.apps] == [(a.id, a.state) for a in reference.apps]
    whole = _whole_where_selected(page, wanted)
    assert whole == {a.id: a for a in reference.apps if a.id in wanted}
    assert all(isinstance(a, AppHead) for a in page.apps if a.id not in wanted)


async def test_heads_first_selector_sees_each_slice_once():
    body = answer(*(record(n) for n in range(60)))
    seen: list[str] = []
    await parse_apps_stepwise(body, step_bytes=200, select=lambda heads: seen.extend(h.id for h in heads) or ())
    assert seen == [f"application_1_{n:04d}" for n in range(60)]


@pytest.mark.parametrize(
    "body",
    [
        # the wanted id inside a nested object of the app before it: that piece does not decode
        answer(record(1, extra={"id": "application_1_0002", "state": "RUNNING"}, tail=1), record(2), record(3)),
        answer(record(1, extra={"id": "application_1_0002", "state": "RUNNING"}), record(2), record(3)),
        # the wanted record has a wrong shape: reported unreadable, as parse_apps does
        answer(record(1), record(2, startedTime="soon"), record(3)),
        # an id given twice (an RM mid-update): parse_apps's view of it
        answer(record(1), record(2, "ACCEPTED"), record(2, "RUNNING"), record(3)),
        # not the compact layout
        b'{"apps": {"app": [{"id": "application_1_0002", "state": "RUNNING"}]}}',
    ],
)
@pytest.mark.parametrize("step_bytes", [1, 10_000])  # one app per slice, or all in one
async def test_heads_first_odd_answers_fall_back_to_whole_records(body, step_bytes):
    page = await parse_apps_stepwise(body, step_bytes=step_bytes, select=lambda heads: {"application_1_0002"})
    reference = parse_apps(body)
    assert page.unreadable_ids == reference.unreadable_ids
    got = [(a.id, a.state) for a in page.apps]
    assert got == [(a.id, a.state) for a in reference.apps]
    assert [a for a in page.apps if a.id == "application_1_0002"] == [
        a for a in reference.apps if a.id == "application_1_0002"
    ]


def test_select_records_refuses_a_state_the_head_did_not_see():
    body = answer(record(1), record(2))
    (span,) = app_spans(body, 10_000)
    heads = parse_head_span(body, span)
    heads[1] = AppHead(heads[1].id, "FINISHED")  # as if the record said otherwise than its head
    assert select_records(body, span, heads, {"application_1_0002"}) is None


async def test_record_selector_picks_news_and_asked_for_apps_only():
    state = TrackerState()
    first = merge_views(parse_apps(answer(*(record(n) for n in range(10)))).apps)
    commit(state, diff(state, first))
    body = answer(*(record(n, "FINISHED" if n == 3 else "RUNNING") for n in range(12)))
    select = record_selector(state, also={"application_1_0005"})
    page = await parse_apps_stepwise(body, step_bytes=1, select=select)
    picked = {f"application_1_{n:04d}" for n in (3, 5, 10, 11)}  # changed, asked for, new, new
    whole = _whole_where_selected(page, picked)
    # the transitions from heads-first are exactly those of whole records
    view = merge_views(page.apps)
    assert diff(state, view) == diff(state, merge_views(parse_apps(body).apps))
    assert whole["application_1_0003"].state == "FINISHED"
