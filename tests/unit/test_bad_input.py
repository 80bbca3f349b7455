"""Inputs that once broke a parser (found by the property tests in test_properties_*.py), kept
as plain examples: each must give typed records, or the parser's typed error, and nothing else."""

from __future__ import annotations

import typing

import msgspec
import orjson
import pytest

from collector import jhs_models, scheduler_models, shs_models, snapshot_models
from collector.parsing import LONG_MAX, LONG_MIN, ParseError, as_int
from collector.rm_models import (
    ACTIVE_STATES,
    TERMINAL_STATES,
    AppState,
    parse_app,
    parse_apps,
    parse_cluster_info,
    resource_seconds,
)


@pytest.mark.parametrize("text", ["²", "--5", "9" * 5000, "1e400", str(LONG_MAX + 1), str(LONG_MIN - 1), "1e30"])
def test_as_int_is_none_for_junk_and_for_numbers_wider_than_a_long(text):
    assert as_int(text) is None


def test_as_int_keeps_what_is_a_long():
    assert [as_int(v) for v in (" 12 ", "-7", str(LONG_MAX), LONG_MIN, "1e3", 2.0)] == [12, -7, LONG_MAX, LONG_MIN,
                                                                                       1000, 2]
    assert as_int(LONG_MAX + 1) is None and as_int(True) is None


@pytest.mark.parametrize("value", [b"Infinity", b"-Infinity", b"1e400", b"123456789012345678901234567890", b"true",
                                   b"[1]", b'"x"'])
def test_resource_seconds_drops_values_that_are_not_counts(value):
    raw = b'{"entry":{"key":"memory-mb","value":%s},"entry":{"key":"vcores","value":7}}' % value
    assert resource_seconds(msgspec.Raw(raw)) == {"vcores": 7}


def test_resource_seconds_drops_entries_without_a_name_and_survives_deep_nesting():
    assert resource_seconds(msgspec.Raw(b'{"entry":[{"value":5},{"key":null,"value":5},{"key":"gpu","value":"2"}]}')) \
        == {"gpu": 2}
    assert resource_seconds(msgspec.Raw(b'{"entry":' + b"[" * 5000 + b"]" * 5000 + b"}")) is None


def test_an_app_without_a_yarn_id_or_state_is_not_a_record():
    # Each of these became a record whose events failed their schema (and were dropped as our bug).
    body = (b'{"apps":{"app":[{"id":"ana","state":"RUNNING"},{"id":"application_1_1\\n","state":"RUNNING"},'
            b'{"id":"application_1_2","state":"running"},{"id":"application_1_3","state":"http://nm:8042/"},'
            b'{"id":"application_1_4","state":"RUNNING"}]}}')
    page = parse_apps(body)
    assert [a.id for a in page.apps] == ["application_1_4"]
    assert page.unreadable_ids == {"application_1_2", "application_1_3"} and not page.complete
    with pytest.raises(ParseError):
        parse_app(b'{"app":{"id":"job_1_1","state":"RUNNING"}}')
    assert typing.get_args(AppState) == ACTIVE_STATES + TERMINAL_STATES


def test_ids_and_counts_wider_than_a_java_long_are_not_records():
    # A priority of 2**63 made a record whose event the Kafka sink could not encode (TypeError).
    over = b"%d" % (LONG_MAX + 1)
    with pytest.raises(ParseError):
        parse_cluster_info(b'{"clusterInfo":{"id":%s,"haState":"ACTIVE"}}' % over)
    page = parse_apps(b'{"apps":{"app":[{"id":"application_1_1","state":"RUNNING","priority":"%s"}]}}' % over)
    assert page.apps == [] and page.unreadable_ids == {"application_1_1"}
    page = parse_apps(b'{"apps":{"app":[{"id":"application_1_1","state":"RUNNING","priority":%d}]}}' % LONG_MIN)
    assert page.apps[0].priority == LONG_MIN


DEEP = b"[" * 5000 + b"]" * 5000


@pytest.mark.parametrize("parse", [parse_apps, parse_app, parse_cluster_info])
@pytest.mark.parametrize("body", [
    DEEP,
    b'{"apps":{"app":[{"id":"application_1_1","state":"RUNNING","x":%s}]}}' % DEEP,
    b'{"apps":{"app":[{"id":"application_1_1","state":0,"x":%s}]}}' % DEEP,
    b'{"app":{"id":"application_1_1","state":"RUNNING","x":%s}}' % DEEP,
    b'{"clusterInfo":{"id":1,"x":%s}}' % DEEP,
])
def test_rm_answers_nested_thousands_deep_are_parse_errors(parse, body):
    # msgspec raises RecursionError (not a DecodeError) past the interpreter's depth limit.
    try:
        parse(body)
    except ParseError:
        pass


@pytest.mark.parametrize("bad_text", [b"\xed\xa0\x80", b"\xff\xfe", b"caf\xe9"])
def test_text_that_is_not_utf8_in_one_app_hides_no_other_app(bad_text):
    # Was a ParseError for the whole answer: every app of the cluster unseen while that one is retained.
    body = (b'{"apps":{"app":[{"id":"application_1_1","state":"RUNNING"},'
            b'{"id":"application_1_2","state":"FAILED","diagnostics":"cut ' + bad_text + b'"},'
            b'{"id":"application_1_3","state":"KILLED"}]}}')
    page = parse_apps(body)
    assert [a.id for a in page.apps] == ["application_1_1", "application_1_2", "application_1_3"]
    assert page.apps[1].diagnostics.startswith("cut ") and "\ufffd" in page.apps[1].diagnostics and page.complete
    with pytest.raises(ParseError, match="not valid JSON"):
        parse_apps(body[:-5])


@pytest.mark.parametrize("parse, body", [
    (jhs_models.parse_job, b'{"job":{"id":"job_1_1","acls":%s}}' % DEEP),
    (jhs_models.parse_counters, b'{"jobCounters":{"id":"job_1_1","counterGroup":[{"counter":[],"x":%s}]}}' % DEEP),
    (shs_models.parse_app, b'{"id":"application_1_1","attempts":[{"x":%s}]}' % DEEP),
    (shs_models.parse_executors, b'[{"id":"driver","executorLogs":%s}]' % DEEP),
    (snapshot_models.parse_content_summary, b'{"ContentSummary":{"typeQuota":{"DISK":{"x":%s}}}}' % DEEP),
])
def test_history_and_webhdfs_answers_nested_thousands_deep_are_parse_errors(parse, body):
    with pytest.raises(ParseError):
        parse(body)


WIDE = b"%d" % (LONG_MAX + 1)


@pytest.mark.parametrize("parse, body", [
    (jhs_models.parse_job, b'{"job":{"id":"job_1_1","mapsTotal":%s}}' % WIDE),
    (jhs_models.parse_counters,
     b'{"jobCounters":{"counterGroup":{"counterGroupName":"g","counter":{"name":"c","totalCounterValue":%s}}}}' % WIDE),
    (shs_models.parse_app, b'{"id":"application_1_1","attempts":[{"duration":"%s"}]}' % WIDE),
    (shs_models.parse_executors, b'[{"id":"1","totalInputBytes":%s}]' % WIDE),
    (snapshot_models.parse_content_summary,
     b'{"ContentSummary":{"directoryCount":%s,"fileCount":1,"length":1,"spaceConsumed":1}}' % WIDE),
])
def test_history_and_webhdfs_numbers_wider_than_a_long_are_parse_errors(parse, body):
    # They became figures or usage that the Kafka sink could not encode (TypeError).
    with pytest.raises(ParseError):
        parse(body)


@pytest.mark.parametrize("field", ["directoryCount", "fileCount", "length", "spaceConsumed"])
def test_a_negative_content_summary_count_is_a_parse_error(field):
    # directoryCount -1 became an hdfs.usage.snapshot that failed its schema (counts are >= 0).
    summary = {"directoryCount": 1, "fileCount": 1, "length": 1, "spaceConsumed": 1, "quota": -1, field: -1}
    with pytest.raises(ParseError):
        snapshot_models.parse_content_summary(orjson.dumps({"ContentSummary": summary}))
    summary[field] = 0
    assert snapshot_models.parse_content_summary(orjson.dumps({"ContentSummary": summary}))["name_quota"] is None


@pytest.mark.parametrize("job_id", ["", "application_1_1", "job_1_1\n", 42])
def test_a_job_answer_without_a_job_id_is_a_parse_error(job_id):
    # id "" became mapreduce figures whose finished event failed its schema (job_id pattern).
    with pytest.raises(ParseError):
        jhs_models.parse_job(orjson.dumps({"job": {"id": job_id, "state": "SUCCEEDED"}}))


def test_negative_or_overflowing_history_figures_are_unknown():
    # A duration of -1 and a counter of -5 made finished events that failed their schema (counts >= 0);
    # two executors of 2**62 bytes each summed past a long, which no event can encode.
    job = jhs_models.JhsJob(id="job_1_1", mapsTotal=-1, failedMapAttempts=-2, failedReduceAttempts=3)
    counters = {jhs_models.INPUT_GROUPS[0]: {"BYTES_READ": -5}, jhs_models.FS_GROUPS[1]: {"HDFS_BYTES_READ": -1}}
    figures = jhs_models.mapreduce_figures(job, counters)
    assert (figures["maps"], figures["input_bytes"], figures["hdfs_bytes_read"]) == (None, None, None)
    assert figures["failed_task_attempts"] == 3
    app = shs_models.parse_app(b'{"id":"application_1_1","attempts":[{"attemptId":"1","duration":-1}]}')
    executors = shs_models.parse_executors(b'[{"id":"1","totalInputBytes":%d,"totalTasks":-1},'
                                           b'{"id":"2","totalInputBytes":%d,"totalTasks":4}]' % (2**62, 2**62))
    figures = shs_models.spark_figures(app, app.attempts[0], executors)
    assert (figures["duration_ms"], figures["input_bytes"], figures["tasks"]) == (None, None, 4)


def test_a_resource_string_with_a_5000_digit_number_is_unknown():
    # "<memory:999...9, vCores:1>" raised ValueError (int() refuses strings past 4300 digits).
    body = orjson.dumps({"scheduler": {"schedulerInfo": {
        "type": "capacityScheduler", "queueName": "root", "usedResources": "<memory:" + "9" * 5000 + ", vCores:1>",
        "resourcesUsed": "<memory:" + "9" * 30 + ", vCores:2>"}}})
    (root,) = scheduler_models.parse_scheduler(body)
    assert root.used == scheduler_models.Resources(None, 2)


@pytest.mark.parametrize("kind, key", [("fairScheduler", "childQueues"), ("capacityScheduler", "queues")])
def test_queues_nested_a_thousand_deep_are_a_parse_error(kind, key):
    # Child queues as bare objects nest one JSON level per queue: 1000 levels raised RecursionError.
    chain = b'{"queueName":"leaf"}'
    for i in range(1000):
        chain = b'{"queueName":"q%d","%s":%s}' % (i, key.encode(), chain)
    info = b'"rootQueue":%s' % chain if kind == "fairScheduler" else b'"queueName":"root","queues":%s' % chain
    with pytest.raises(ParseError):
        scheduler_models.parse_scheduler(b'{"scheduler":{"schedulerInfo":{"type":"%s",%s}}}' % (kind.encode(), info))
