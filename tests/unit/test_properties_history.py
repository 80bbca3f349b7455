"""Property tests: JobHistory Server and Spark History Server answers (tests/cases/jhs, shs) mutated
every way a peer or a proxy breaks them. Parsers return typed records or raise ParseError; what
they return gives figures that a finished event carries (schema-valid, encodable)."""

from __future__ import annotations

import orjson
from hypothesis import HealthCheck, given, settings

from collector.enrichment import Pending, ok
from collector.events import EventContext, finished_event
from collector.jhs_models import JhsJob, mapreduce_figures, parse_counters, parse_job
from collector.parsing import ParseError
from collector.schemas import validate
from collector.shs_models import (
    SparkApp,
    SparkExecutor,
    executors_path,
    final_attempt,
    parse_app,
    parse_executors,
    spark_figures,
)

from .mutations import bad_bodies, case_tree, check_typed, encode

CTX = EventContext("prod-east", 1700000000000)
NOW_MS = 1_800_000_000_000
EXAMPLES = settings.default.max_examples * 2  # each example takes a few milliseconds
fast = settings(max_examples=EXAMPLES, suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])

# /ws/v1/history/mapreduce/jobs/{id} as Hadoop 3.3 answers it (no case file holds a whole job).
JOB = {"job": {
    "submitTime": 1700000100000, "startTime": 1700000101000, "finishTime": 1700000200000,
    "id": "job_1700000000000_0042", "name": "word count", "queue": "root.etl", "user": "etl",
    "state": "SUCCEEDED", "mapsTotal": 4, "mapsCompleted": 4, "reducesTotal": 1, "reducesCompleted": 1,
    "uberized": False, "diagnostics": "", "avgMapTime": 2000, "avgReduceTime": 1000, "avgShuffleTime": 500,
    "avgMergeTime": 10, "failedReduceAttempts": 0, "killedReduceAttempts": 0, "successfulReduceAttempts": 1,
    "failedMapAttempts": 1, "killedMapAttempts": 0, "successfulMapAttempts": 4,
    "acls": [{"name": "mapreduce.job.acl-view-job", "value": " "}],
}}
COUNTERS = [case_tree("jhs/counters-no-input-group.json"), case_tree("jhs/counters-empty.json"),
            {"jobCounters": {"id": "job_1_1", "counterGroup": {"counterGroupName": "org.apache.hadoop.mapreduce.lib"
                             ".input.FileInputFormatCounter", "counter": {"name": "BYTES_READ",
                                                                          "totalCounterValue": "1234"}}}}]
SPARK_APPS = [case_tree(f"shs/{n}.json") for n in ("app-in-progress", "app-two-attempts",
                                                   "app-client-mode-no-attempt-id")]
EXECUTORS = case_tree("shs/allexecutors-with-removed.json")
PENDING = Pending(app_id="application_1700000000000_0042", app_type="MAPREDUCE", state="FINISHED",
                  final_status="SUCCEEDED", ended_ms=1700000200000, launched=True, record={
                      "id": "application_1700000000000_0042", "name": "word count", "user": "etl",
                      "queue": "root.etl", "type": "MAPREDUCE", "tags": [], "state": "FINISHED",
                      "final_status": "SUCCEEDED"}, queued_ms=NOW_MS, attempts=1)


def check_finished(**figures):
    """The figures ride in a finished event that passes its schema and encodes."""
    source = {"server": "jobhistory" if "mapreduce" in figures else "spark_history", "url": "http://h:1/x"}
    event = finished_event(CTX, PENDING, ok(source, **figures), NOW_MS)
    validate(event.envelope)
    validate(orjson.loads(event.encode()))


def test_the_real_shapes_pass_the_same_checks():
    job = parse_job(encode(JOB))
    for tree in COUNTERS:
        check_finished(mapreduce=mapreduce_figures(job, parse_counters(encode(tree)), include_counters=True))
    for tree in SPARK_APPS[1:]:
        app = parse_app(encode(tree))
        check_finished(spark=spark_figures(app, final_attempt(app), parse_executors(encode(EXECUTORS))))


@fast
@given(bad_bodies(JOB), bad_bodies(*COUNTERS))
def test_jobhistory_answers_give_a_job_and_counters_or_parse_error(job_body, counters_body):
    try:
        job = parse_job(job_body)
    except ParseError:
        job = parse_job(encode(JOB))
    try:
        counters = parse_counters(counters_body)
    except ParseError:
        counters = {}
    check_typed(job, JhsJob)
    check_typed(counters, dict[str, dict[str, int | None]])
    check_finished(mapreduce=mapreduce_figures(job, counters, include_counters=True))


@fast
@given(bad_bodies(*SPARK_APPS), bad_bodies(EXECUTORS))
def test_spark_history_answers_give_an_app_and_executors_or_parse_error(app_body, executors_body):
    try:
        app = parse_app(app_body)
    except ParseError:
        app = parse_app(encode(SPARK_APPS[1]))
    try:
        executors = parse_executors(executors_body)
    except ParseError:
        executors = parse_executors(encode(EXECUTORS))
    check_typed(app, SparkApp)
    check_typed(executors, list[SparkExecutor])
    attempt = final_attempt(app)
    if attempt is None:
        return
    path = executors_path(app.id, attempt)
    assert path.startswith("/api/v1/applications/") and path.endswith("/allexecutors")
    check_finished(spark=spark_figures(app, attempt, executors))
