"""Property tests: ResourceManager answers (tests/cases/rm) mutated every way a peer or a proxy breaks
them. A parser returns typed records or raises ParseError, nothing else; every record it returns
builds events that pass their schema and encode; one broken app never hides the others."""

from __future__ import annotations

import re

import orjson
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from collector.enrichment import pending_for, unavailable
from collector.events import EventContext, application_record, cluster_snapshot, finished_event, transition_event
from collector.http import PeerError, Response
from collector.parsing import ParseError
from collector.rm_client import classify
from collector.rm_models import (
    ACTIVE_STATES,
    TERMINAL_STATES,
    AppsPage,
    ClusterInfo,
    RawApp,
    parse_app,
    parse_apps,
    parse_cluster_info,
    resource_seconds,
)
from collector.schemas import validate
from collector.tracker import Change, Transition

from .mutations import Tok, bad_bodies, case_tree, check_typed, encode, mutate_tree

APP_ID = re.compile(r"application_[0-9]+_[0-9]+")
STATES = ACTIVE_STATES + TERMINAL_STATES
CTX = EventContext("prod-east", 1700000000000)
NOW_MS = 1_800_000_000_000

APPS_CASES = [
    case_tree(f"rm/{name}.json")
    for name in ("empty-2x", "empty-3x", "hadoop-2.7-running-and-finished", "accepted-no-tracking-url",
                 "finished-failed-with-resource-map")
]
REAL_APPS = [app for tree in APPS_CASES if tree["apps"] for app in tree["apps"]["app"]]
ONE_APP_CASES = [{"app": app} for app in REAL_APPS]
INFO_STANDBY = case_tree("rm/cluster-info-standby.json")
INFO_ACTIVE = {"clusterInfo": {**INFO_STANDBY["clusterInfo"], "haState": "ACTIVE"}}
INFO_27 = {"clusterInfo": {k: v for k, v in INFO_STANDBY["clusterInfo"].items() if not k.startswith("ha")}}

EXAMPLES = settings.default.max_examples * 2  # each example takes a few milliseconds
fast = settings(max_examples=EXAMPLES, suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])


def check_app(app: RawApp) -> None:
    """An accepted app is typed, has an id and a state the events can carry, and builds valid,
    encodable events: on first sight, and as a change from another state."""
    check_typed(app, RawApp)
    assert APP_ID.fullmatch(app.id), app.id
    assert app.state in STATES, app.state
    check_typed(resource_seconds(app.resourceSecondsMap), dict[str, int] | None)
    for previous, seq in ((None, 1), ("RUNNING" if app.state != "RUNNING" else "ACCEPTED", 2)):
        event = transition_event(CTX, Transition(app.id, seq, Change.STATE, previous, app.state, app), NOW_MS)
        validate(event.envelope)
        validate(orjson.loads(event.encode()))  # what is sent, after encoding: NaN and inf become null
    if app.is_terminal:  # its finished event carries the same record
        pending = pending_for(app, application_record(app), NOW_MS)
        pending.attempts = 1  # one try settled it (settle() counts it before the event is built)
        event = finished_event(CTX, pending, unavailable("no history server configured"), NOW_MS)
        validate(event.envelope)
        validate(orjson.loads(event.encode()))


def check_page(page: AppsPage) -> None:
    assert isinstance(page, AppsPage)
    for app in page.apps:
        check_app(app)
    assert all(isinstance(i, str) and APP_ID.fullmatch(i) for i in page.unreadable_ids), page.unreadable_ids
    assert isinstance(page.complete, bool)
    assert all(isinstance(p, str) and "\n" not in p for p in page.problems)
    if page.unreadable_ids or not page.complete:
        assert page.problems  # a reason is always given


def test_the_real_shapes_pass_the_same_checks():
    for tree in APPS_CASES:
        check_page(parse_apps(encode(tree)))
    assert len(REAL_APPS) == 4


@fast
@given(bad_bodies(*APPS_CASES))
def test_apps_answer_gives_a_typed_page_or_parse_error(body):
    try:
        page = parse_apps(body)
    except ParseError as exc:
        assert str(exc) and "\n" not in str(exc)
        return
    check_page(page)


@st.composite
def one_bad_app(draw):
    """Every real app, one of them (at a random place) broken in any way a valid JSON answer allows."""
    apps = [dict(a) for a in REAL_APPS]
    order = draw(st.permutations(range(len(apps))))
    apps = [apps[i] for i in order]
    bad = draw(st.integers(0, len(apps) - 1))
    tree = draw(mutate_tree({"apps": {"app": apps}}, under=("apps", "app", bad), valid_json=True))
    good_ids = {a["id"] for i, a in enumerate(apps) if i != bad}
    return encode(tree), good_ids, tree


@fast
@given(one_bad_app())
def test_one_broken_app_never_hides_the_others(case):
    body, good_ids, tree = case
    baseline = {a.id: a for a in parse_apps(encode({"apps": {"app": REAL_APPS}})).apps}
    page = parse_apps(body)
    check_page(page)
    by_id = {a.id: a for a in page.apps}
    for app_id in good_ids:
        assert app_id in by_id, f"{app_id} is hidden: {page.problems}"
        if baseline[app_id] in page.apps:
            continue
        # the broken app may have taken a good app's id: then the good record is there too
        assert any(a == baseline[app_id] for a in page.apps), app_id
    # nothing is dropped silently: an element that is not a record makes the page say so
    elements = tree["apps"]["app"]
    assert len(page.apps) == len(elements) or page.unreadable_ids or not page.complete, page


@fast
@given(bad_bodies(*ONE_APP_CASES))
def test_one_app_answer_gives_an_app_or_parse_error(body):
    try:
        app = parse_app(body)
    except ParseError:
        return
    check_app(app)


@fast
@given(bad_bodies(*[{"apps": {"app": app}} for app in REAL_APPS]))
def test_a_lone_app_object_is_read_like_a_list_of_one(body):
    # Some proxies re-encode a one-element list as the element itself.
    try:
        page = parse_apps(body)
    except ParseError:
        return
    check_page(page)


_RESOURCE_MAPS = [
    Tok(b'{"entry":{"key":"memory-mb","value":"267329"},"entry":{"key":"vcores","value":"70"}}'),
    {"entry": [{"key": "memory-mb", "value": 1}, {"key": "vcores", "value": 2}]},
    {"entry": {"key": "memory-mb", "value": 1}},
]


@fast
@given(bad_bodies(*_RESOURCE_MAPS[1:]) | st.sampled_from(_RESOURCE_MAPS[:1]).map(encode))
def test_resource_seconds_is_a_map_of_integers_or_unknown(raw):
    import msgspec

    check_typed(resource_seconds(msgspec.Raw(raw)), dict[str, int] | None)


HEADERS = st.fixed_dictionaries(
    {"Content-Type": st.sampled_from(["application/json", "application/json; charset=utf-8", "APPLICATION/JSON",
                                      "text/plain", "text/html; charset=iso-8859-1", ""])},
    optional={"Location": st.sampled_from(["http://rm2.example:8088/ws/v1/cluster/info", "", "/x"]),
              "Refresh": st.just("3; url=http://rm1.example:8088/")},
)


@fast
@given(
    st.sampled_from([200, 200, 200, 204, 301, 302, 307, 308, 401, 403, 404, 500, 503]) | st.integers(100, 599),
    HEADERS,
    bad_bodies(INFO_STANDBY, INFO_ACTIVE, INFO_27) | st.sampled_from([encode(INFO_ACTIVE), encode(INFO_27)]),
)
def test_cluster_info_classification_is_a_typed_verdict(status, headers, body):
    """What the client decides from an RM's /cluster/info answer: a typed error (standby, HTTP,
    unparseable), or an info record whose activity is a plain yes or no."""
    resp = Response("http://rm1.example:8088/ws/v1/cluster/info", status, headers, body)
    try:
        classify(resp)
        info = parse_cluster_info(resp.body)
    except (PeerError, ParseError) as exc:
        assert str(exc)
        return
    assert status == 200 and resp.content_type == "application/json"
    check_typed(info, ClusterInfo)
    assert isinstance(info.is_active, bool)
    event = cluster_snapshot(CTX, info, {"apps_running": 1}, NOW_MS)
    validate(event.envelope)
    validate(orjson.loads(event.encode()))
