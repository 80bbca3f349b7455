"""A large apps answer is decoded a slice at a time; the result must be exactly ``parse_apps``'s,
whatever the answer holds."""

from __future__ import annotations

import orjson
import pytest

from collector import rm_client
from collector.rm_client import parse_apps_stepwise
from collector.rm_models import AppHead, ClusterInfo, RawApp, app_spans, parse_apps, parse_head_span, select_records
from collector.rm_poller import RmPoller
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
        # ...after an id that comes again: its second copy is not left out (found by review)
        answer(record(1, "ACCEPTED"), record(2, startedTime="soon"), record(1, "FINISHED")),
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


class AnswersRM:
    """The two answers of a poll, from memory; nothing is missing, so nothing is looked up."""

    cluster, urls, active_url = "c1", ["http://rm"], "http://rm"

    def __init__(self, active: bytes, ended: bytes) -> None:
        self.active, self.ended = active, ended

    async def cluster_info(self):
        return ClusterInfo(id=1, state="STARTED", haState="ACTIVE"), 10_000

    async def active_answer(self) -> bytes:
        return self.active

    async def ended_answer(self, since: int) -> bytes:
        return self.ended

    async def app(self, app_id: str):
        raise AssertionError(f"no lookup expected, asked for {app_id}")


async def test_a_poll_in_parts_finds_what_a_whole_view_diff_finds(monkeypatch):
    state = TrackerState(watermark=0, floor=0)
    commit(state, diff(state, merge_views(parse_apps(answer(*(
        record(n, "ACCEPTED", startedTime=1000 - n) for n in range(50)))).apps)))
    # 60 active (10 new, some now RUNNING); 5 ended, in an order other than their end times;
    # application_1_0007 is in both answers (it ended between the two requests): its end wins
    active = answer(*(record(n, "RUNNING" if n % 3 else "ACCEPTED", startedTime=1000 - n, launchTime=2000 - n)
                      for n in range(60)))
    ended = answer(*(record(n, "FINISHED", startedTime=1000 - n, finishedTime=5000 + (n * 37) % 11)
                     for n in (7, 3, 9, 61, 62)))
    expected = diff(state, merge_views(parse_apps(active).apps, parse_apps(ended).apps))
    monkeypatch.setattr(rm_client, "DECODE_STEP_BYTES", 150)  # a few apps per part
    calls: list[list] = []

    async def emit(transitions):
        calls.append(transitions)
        commit(state, transitions)

    summary = await RmPoller(AnswersRM(active, ended), state, overlap_ms=0, backfill_ms=0).poll(10_000, emit)
    got = [t for part in calls for t in part]
    assert len(calls) > 5
    assert sorted(got, key=lambda t: t.app_id) == sorted(expected, key=lambda t: t.app_id)
    ends = [t for t in got if t.state == "FINISHED"]
    assert got[: len(ends)] == ends  # the ends first, in the order they happened
    assert [t.app.finishedTime for t in ends] == sorted(t.app.finishedTime for t in ends)
    assert [t.state for t in got if t.app_id == "application_1_0007"] == ["FINISHED"]
    assert summary.transitions == len(got) and summary.apps_seen == 62


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
        # ...in a list of objects: that piece would decode (found by review); the cuts are counted
        answer(record(1, extra=[{"id": "application_1_0002", "state": "RUNNING"}, {"id": "z"}]), record(2), record(3)),
        answer(record(1, extra=[{"a": 1}, {"id": "application_1_0002", "state": "RUNNING"},
                                {"id": "application_9_9"}]), record(2), record(3)),
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


@pytest.mark.parametrize("layout", ["compact", "indented"])
async def test_an_id_given_twice_in_one_part_is_one_observation(layout):
    # found by review: both copies were news, two events with the same seq and different ids
    state = TrackerState(watermark=0, floor=0)
    twice = [record(3, "ACCEPTED"), record(3, "RUNNING"), record(4)]
    body = answer(*twice) if layout == "compact" else orjson.dumps({"apps": {"app": twice}}, option=orjson.OPT_INDENT_2)
    found: list = []

    async def emit(transitions):
        found.extend(transitions)
        commit(state, transitions)

    await RmPoller(AnswersRM(body, b'{"apps":null}'), state, overlap_ms=0, backfill_ms=0).poll(10_000, emit)
    assert [(t.app_id[-4:], t.seq, t.state) for t in found] == [("0003", 1, "ACCEPTED"), ("0004", 1, "RUNNING")]


def test_wanted_apps_side_by_side_are_cut_out():
    # found by review: after one record the search for the next started past its boundary,
    # so two wanted neighbours always fell back to decoding the slice whole
    body = answer(record(1), record(2), record(3))
    (span,) = app_spans(body, 10_000)
    heads = parse_head_span(body, span)
    got = select_records(body, span, heads, {"application_1_0001", "application_1_0002", "application_1_0003"})
    assert got == parse_apps(body).apps


@pytest.mark.parametrize(
    "first",
    [
        # found by review: apps whose keys a proxy reordered do not count as boundaries, nested
        # lookalikes do: the count matched, and a nested object became application_1_0002's record
        '{"id":"application_1_0001","state":"RUNNING","user":"alice","x":[{"z":1},'
        '{"id":"application_1_0002","state":"RUNNING","user":"EVIL"},{"id":"application_1_0007"}]}',
        # found by the third review: the next lookalike even stood where the next head's id was expected
        '{"id":"application_1_0001","state":"RUNNING","x":[{"id":"application_0_0"},'
        '{"id":"application_1_0002","state":"RUNNING","finalStatus":"FAKE"},{"id":"application_1_0003"}]}',
    ],
)
def test_nested_lookalikes_beside_reordered_apps_never_pass_for_an_app(first):
    b = '{"state":"RUNNING","id":"application_1_0002","user":"bob"}'
    c = '{"state":"RUNNING","id":"application_1_0003","user":"carol"}'
    body = ('{"apps":{"app":[' + ",".join([first, b, c]) + "]}}").encode()
    (span,) = app_spans(body, 1 << 20)
    heads = parse_head_span(body, span)
    assert select_records(body, span, heads, {"application_1_0002"}) is None  # the caller decodes whole


async def test_a_deeply_nested_answer_is_a_parse_error_on_every_path():
    from collector.parsing import ParseError

    deep = "[" * 1000 + "]" * 1000
    body = ('{"apps":{"app":[{"id":"application_1_0001","state":"RUNNING","x":' + deep
            + '},{"id":"application_1_0002","state":"RUNNING"}]}}').encode()
    for select in (None, lambda heads: {h.id for h in heads}):
        with pytest.raises(ParseError, match="nested too deeply"):
            await parse_apps_stepwise(body, step_bytes=10, select=select)
