"""Every RM shape in tests/cases/rm (copied from shared/cases/rm) parses to what its README says."""

from __future__ import annotations

import pytest

from collector.events import EventContext, application_record, transition_event
from collector.parsing import ParseError
from collector.rm_models import parse_app, parse_apps, parse_cluster_info, resource_seconds
from collector.schemas import validate
from collector.tracker import Change, Transition


def test_empty_2x_apps_null_is_zero_apps(case):
    page = parse_apps(case("rm/empty-2x.json"))
    assert page.apps == [] and page.complete


def test_empty_3x_apps_object_is_zero_apps(case):
    page = parse_apps(case("rm/empty-3x.json"))
    assert page.apps == [] and page.complete


def test_hadoop_27_absent_fields_are_null_not_zero(case):
    page = parse_apps(case("rm/hadoop-2.7-running-and-finished.json"))
    assert [a.id for a in page.apps] == ["application_1495123166259_0962", "application_1495123166259_0961"]
    running = application_record(page.apps[0])
    assert running["state"] == "RUNNING"
    assert running["priority"] is None
    assert running["launch_time_ms"] is None
    assert running["resource_seconds"] is None
    assert running["finished_time_ms"] is None  # finishedTime 0 = not finished
    assert running["allocated"] == {"memory_mb": 3072, "vcores": 3}
    assert running["progress"] == 42.5
    killed = application_record(page.apps[1])
    assert killed["state"] == "KILLED" and killed["final_status"] == "KILLED"
    assert killed["finished_time_ms"] == 1495200789546


def test_accepted_without_tracking_url(case):
    (app,) = parse_apps(case("rm/accepted-no-tracking-url.json")).apps
    rec = application_record(app)
    assert rec["state"] == "ACCEPTED"
    assert rec["tracking_url"] is None
    assert rec["tracking_ui"] == "UNASSIGNED"
    assert rec["launch_time_ms"] is None  # launchTime 0 means not launched
    assert rec["tags"] == []


def test_finished_failed_with_duplicate_entry_resource_map(case):
    (app,) = parse_apps(case("rm/finished-failed-with-resource-map.json")).apps
    rec = application_record(app)
    assert (rec["state"], rec["final_status"]) == ("FINISHED", "FAILED")
    # -1 after the end is "no allocation", not a real value
    assert rec["allocated"] == {"memory_mb": None, "vcores": None}
    assert rec["reserved"] == {"memory_mb": None, "vcores": None}
    assert rec["running_containers"] is None
    # both repeated "entry" keys survive, string numbers become integers
    assert rec["resource_seconds"] == {"memory-mb": 267329, "vcores": 70}
    assert rec["tags"] == ["team-a", "daily"]
    event = transition_event(
        EventContext("c1", 1700000000000), Transition(app.id, 1, Change.STATE, None, app.state, app), 1700000300000
    )
    assert event.envelope["data"]["final_status"] == "FAILED"
    assert event.envelope["time"] == "2023-11-14T22:16:40.000Z"  # the RM's finishedTime
    validate(event.envelope)


def test_cluster_info_of_standby(case):
    info = parse_cluster_info(case("rm/cluster-info-standby.json"))
    assert not info.is_active and info.id == 1700000000123


def test_not_found_body_is_not_an_app(case):
    with pytest.raises(ParseError):
        parse_app(case("rm/not-found.json"))


@pytest.mark.parametrize(
    "name", ["rm/standby-2x-200.body.txt", "rm/standby-3x-307.body.txt", "rm/no-active-rm.body.txt"]
)
def test_text_bodies_are_never_parsed_as_empty(case, name):
    with pytest.raises(ParseError):
        parse_apps(case(name))


@pytest.mark.parametrize(
    "body",
    [b"", b"<html><body>Error 500</body></html>", b'{"apps":{"app":[{"id":"application_1_1","sta', b"null", b"[]"],
)
def test_unusable_bodies_raise_parse_error(body):
    with pytest.raises(ParseError):
        parse_apps(body)


def test_numbers_as_strings_are_accepted():
    body = b'{"apps":{"app":[{"id":"application_1_1","state":"RUNNING","allocatedMB":"1024","progress":"12.5"}]}}'
    (app,) = parse_apps(body).apps
    assert app.allocatedMB == 1024 and app.progress == 12.5


def test_one_malformed_app_does_not_hide_the_others():
    body = (
        b'{"apps":{"app":[{"id":"application_1_1","state":"RUNNING"},'
        b'{"id":"application_1_2","state":"RUNNING","allocatedMB":{"oops":1}},'
        b'{"id":"application_1_3","state":"FINISHED","finishedTime":5}]}}'
    )
    page = parse_apps(body)
    assert [a.id for a in page.apps] == ["application_1_1", "application_1_3"]
    assert page.unreadable_ids == {"application_1_2"}
    assert page.complete and page.problems


def test_unidentifiable_app_marks_the_answer_incomplete():
    body = b'{"apps":{"app":[{"id":"application_1_1","state":"RUNNING"},{"state":7}]}}'
    page = parse_apps(body)
    assert [a.id for a in page.apps] == ["application_1_1"]
    assert not page.complete


def test_single_app_object_instead_of_list():
    page = parse_apps(b'{"apps":{"app":{"id":"application_1_1","state":"NEW"}}}')
    assert [a.id for a in page.apps] == ["application_1_1"]


@pytest.mark.parametrize(
    "raw, expected",
    [
        (b'{"entry":[{"key":"memory-mb","value":"10"},{"key":"vcores","value":"2"}]}', {"memory-mb": 10, "vcores": 2}),
        (b'{"entry":{"key":"memory-mb","value":5}}', {"memory-mb": 5}),
        (b"{}", None),
        (b'{"entry":{"key":"memory-mb","value":"x"}}', None),
        (b"[1,2]", None),
    ],
)
def test_resource_seconds_shapes(raw, expected):
    import msgspec

    assert resource_seconds(msgspec.Raw(raw)) == expected
