"""Every JobHistory and Spark History Server shape in tests/cases (copied from shared/cases)
parses to what its README says; figures never turn unknown into 0."""

from __future__ import annotations

import pytest

from collector.jhs_models import JhsJob, job_id_of, mapreduce_figures, parse_counters
from collector.parsing import ParseError
from collector.shs_models import executors_path, final_attempt, parse_app, parse_executors, spark_figures

JOB = JhsJob(id="job_1700000000000_0042", state="SUCCEEDED", mapsTotal=4, reducesTotal=1, uberized=False,
             failedMapAttempts=1, failedReduceAttempts=0, killedMapAttempts=0, killedReduceAttempts=0)


def test_job_id_comes_from_the_application_id():
    assert job_id_of("application_1700000000000_0042") == "job_1700000000000_0042"
    with pytest.raises(ValueError):
        job_id_of("local-1700000000")


def test_counters_without_input_group_report_scan_as_unknown_but_hdfs_bytes(case):
    counters = parse_counters(case("jhs/counters-no-input-group.json"))
    assert counters["my.company counters (v2)"] == {"ROWS SKIPPED": 7}  # names with spaces and dots are data
    figures = mapreduce_figures(JOB, counters)
    assert figures["input_bytes"] is None  # unknown, not 0
    assert figures["hdfs_bytes_read"] == 5368709120
    assert figures["file_bytes_read"] == 2483
    assert figures["output_bytes"] is None
    assert figures["maps"] == 4 and figures["reduces"] == 1 and figures["failed_task_attempts"] == 1
    assert "counters" not in figures
    assert mapreduce_figures(JOB, counters, include_counters=True)["counters"] == counters


def test_counters_empty_is_an_empty_set(case):
    assert parse_counters(case("jhs/counters-empty.json")) == {}


def test_not_found_body_is_not_counters(case):
    with pytest.raises(ParseError):
        parse_counters(case("jhs/job-not-found.json"))


def test_input_counter_is_read():
    body = (b'{"jobCounters":{"id":"job_1_1","counterGroup":[{"counterGroupName":'
            b'"org.apache.hadoop.mapreduce.lib.input.FileInputFormatCounter","counter":'
            b'{"name":"BYTES_READ","totalCounterValue":"1234","mapCounterValue":0,"reduceCounterValue":0}}]}}')
    assert mapreduce_figures(JOB, parse_counters(body))["input_bytes"] == 1234


def test_in_progress_attempt_is_not_final(case):
    app = parse_app(case("shs/app-in-progress.json"))
    attempt = final_attempt(app)
    assert attempt is not None and not attempt.is_final


def test_two_attempts_use_the_newest_and_its_id_in_the_url(case):
    app = parse_app(case("shs/app-two-attempts.json"))
    attempt = final_attempt(app)
    assert attempt.attemptId == "2" and attempt.is_final
    assert executors_path(app.id, attempt) == "/api/v1/applications/application_1700000000000_0052/2/allexecutors"
    # the order of the list does not matter
    app.attempts.reverse()
    assert final_attempt(app).attemptId == "2"


def test_client_mode_urls_have_no_attempt_segment(case):
    app = parse_app(case("shs/app-client-mode-no-attempt-id.json"))
    attempt = final_attempt(app)
    assert attempt.attemptId is None and attempt.is_final
    assert executors_path(app.id, attempt) == "/api/v1/applications/application_1700000000000_0053/allexecutors"


def test_allexecutors_sums_removed_executors_and_counts_without_driver(case):
    app = parse_app(case("shs/app-two-attempts.json"))
    executors = parse_executors(case("shs/allexecutors-with-removed.json"))
    figures = spark_figures(app, final_attempt(app), executors)
    assert figures["input_bytes"] == 1_820_087
    assert figures["executors"] == 2 and figures["executors_removed"] == 1
    assert figures["shuffle_read_bytes"] == 1200 and figures["shuffle_write_bytes"] == 1200
    assert figures["failed_tasks"] == 1
    assert figures["task_time_ms"] == 29038 + 9000 + 18000


def test_not_found_text_is_not_an_app(case):
    with pytest.raises(ParseError):
        parse_app(case("shs/not-found.body.txt"))


def test_odd_history_shapes_are_absorbed():
    assert final_attempt(parse_app(b'{"id":"a","attempts":null}')) is None
    executors = parse_executors(b'[{"totalInputBytes":5},{"id":"driver","totalInputBytes":0},{"id":"1"}]')
    app = parse_app(b'{"id":"a","attempts":[{"attemptId":"1","completed":true,"endTimeEpoch":5}]}')
    figures = spark_figures(app, final_attempt(app), executors)
    assert figures["input_bytes"] == 5 and figures["executors"] == 2
    counters = parse_counters(b'{"jobCounters":{"counterGroup":[{"counter":[]},{"counterGroupName":"g",'
                              b'"counter":[{"totalCounterValue":1},{"name":"X","totalCounterValue":"2"}]}]}}')
    assert counters == {"g": {"X": 2}}
