"""Property tests: scheduler, cluster metrics and WebHDFS answers (tests/cases/scheduler, webhdfs)
mutated every way a peer or a proxy breaks them. Parsers return typed records or raise ParseError;
what they return builds snapshot events that pass their schema and encode."""

from __future__ import annotations

import math

import orjson
from hypothesis import HealthCheck, given, settings

from collector.events import EventContext, cluster_snapshot, hdfs_snapshot, queue_snapshot
from collector.parsing import ParseError
from collector.rm_models import ClusterInfo
from collector.scheduler_models import QueueRecord, Resources, parse_scheduler
from collector.schemas import validate
from collector.snapshot_models import parse_cluster_metrics, parse_content_summary, remote_exception

from .mutations import LONG_MAX, LONG_MIN, bad_bodies, case_tree, encode

CTX = EventContext("prod-east", 1700000000000)
NOW_MS = 1_800_000_000_000
EXAMPLES = settings.default.max_examples * 2  # each example takes a few milliseconds
fast = settings(max_examples=EXAMPLES, suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])

SCHEDULERS = [case_tree(f"scheduler/{n}.json") for n in ("capacity-nested-2x", "fair", "fifo-2x")]
# /ws/v1/cluster/metrics as Hadoop 3.3 answers it (no case file holds it).
METRICS = {"clusterMetrics": {
    "appsSubmitted": 120, "appsCompleted": 110, "appsPending": 2, "appsRunning": 8, "appsFailed": 3,
    "appsKilled": 1, "reservedMB": 0, "availableMB": 57344, "allocatedMB": 8192, "pendingMB": 1024,
    "reservedVirtualCores": 0, "availableVirtualCores": 28, "allocatedVirtualCores": 4, "pendingVirtualCores": 1,
    "containersAllocated": 4, "containersReserved": 0, "containersPending": 1, "totalMB": 65536,
    "totalVirtualCores": 32, "utilizedMBPercent": 12, "utilizedVirtualCoresPercent": 12, "totalNodes": 4,
    "lostNodes": 0, "unhealthyNodes": 0, "decommissioningNodes": 0, "decommissionedNodes": 0, "rebootedNodes": 0,
    "activeNodes": 4, "shutdownNodes": 0,
    "totalUsedResourcesAcrossPartition": {"memory": 8192, "vCores": 4, "resourceInformations": {}},
}}
SUMMARIES = [case_tree("webhdfs/content-summary-3x.json"),
             {"ContentSummary": {"directoryCount": 2, "fileCount": 1, "length": 24930, "quota": -1,
                                 "spaceConsumed": 24930, "spaceQuota": -1, "typeQuota": {}}}]
REMOTE_EXCEPTIONS = [case_tree(n) for n in ("webhdfs/no-such-path.json", "webhdfs/standby-namenode.json",
                                            "jhs/job-not-found.json", "rm/not-found.json")]


def _finite_or_none(value):
    return value is None or (isinstance(value, float) and math.isfinite(value))


def _long_or_none(value):
    return value is None or (type(value) is int and LONG_MIN <= value <= LONG_MAX)


def check_queue(q: QueueRecord) -> None:
    assert isinstance(q, QueueRecord)
    assert isinstance(q.path, str) and q.path and isinstance(q.name, str)
    assert q.parent is None or isinstance(q.parent, str)
    assert q.scheduler in ("capacity", "fair", "fifo") and isinstance(q.leaf, bool)
    assert q.state is None or isinstance(q.state, str)
    for pct in (q.capacity, q.used_capacity, q.max_capacity, q.absolute_capacity, q.absolute_used_capacity,
                q.absolute_max_capacity):
        assert _finite_or_none(pct), pct
    for res in (q.used, q.min_resources, q.max_resources, q.fair_share, q.am_limit, q.am_used):
        assert res is None or (isinstance(res, Resources) and _long_or_none(res.memory_mb)
                               and _long_or_none(res.vcores)), res
    for count in (q.applications, q.active_applications, q.pending_applications, q.containers, q.max_applications):
        assert _long_or_none(count), count


def check_event(event) -> None:
    validate(event.envelope)
    validate(orjson.loads(event.encode()))


def test_the_real_shapes_pass_the_same_checks():
    for tree in SCHEDULERS:
        for q in parse_scheduler(encode(tree)):
            check_queue(q)
            check_event(queue_snapshot(CTX, q.to_dict(), NOW_MS))
    check_event(cluster_snapshot(CTX, ClusterInfo(id=1), parse_cluster_metrics(encode(METRICS)), NOW_MS))
    for tree in SUMMARIES:
        check_event(hdfs_snapshot("prod-east", "/user", parse_content_summary(encode(tree)), "nn1:9870", NOW_MS))


@fast
@given(bad_bodies(*SCHEDULERS))
def test_scheduler_answer_gives_queue_records_or_parse_error(body):
    try:
        queues = parse_scheduler(body)
    except ParseError:
        return
    assert isinstance(queues, list)
    for q in queues:
        check_queue(q)
        check_event(queue_snapshot(CTX, q.to_dict(), NOW_MS))


@fast
@given(bad_bodies(METRICS))
def test_cluster_metrics_answer_gives_counts_or_parse_error(body):
    try:
        metrics = parse_cluster_metrics(body)
    except ParseError:
        return
    assert all(isinstance(k, str) and _long_or_none(v) for k, v in metrics.items()), metrics
    check_event(cluster_snapshot(CTX, ClusterInfo(id=1), metrics, NOW_MS))


@fast
@given(bad_bodies(*SUMMARIES))
def test_content_summary_answer_gives_usage_or_parse_error(body):
    try:
        usage = parse_content_summary(body)
    except ParseError:
        return
    for key in ("directories", "files", "length_bytes", "space_consumed_bytes"):
        assert _long_or_none(usage[key]) and usage[key] is not None and usage[key] >= 0, usage
    for key in ("name_quota", "space_quota_bytes"):
        assert _long_or_none(usage[key]) and (usage[key] is None or usage[key] >= 0), usage
    check_event(hdfs_snapshot("prod-east", "/user", usage, "nn1:9870", NOW_MS))


@fast
@given(bad_bodies(*REMOTE_EXCEPTIONS, *SUMMARIES))
def test_remote_exception_is_two_texts_or_none(body):
    error = remote_exception(body)
    assert error is None or (isinstance(error, tuple) and len(error) == 2 and all(isinstance(t, str) for t in error))
