"""Every scheduler and WebHDFS shape in tests/cases (copied from shared/cases) parses to what
its README says."""

from __future__ import annotations

import pytest

from collector.parsing import ParseError
from collector.scheduler_models import Resources, parse_scheduler
from collector.snapshot_models import parse_cluster_metrics, parse_content_summary, remote_exception


def by_path(name, case):
    return {q.path: q for q in parse_scheduler(case(f"scheduler/{name}.json"))}


def test_capacity_nested_every_queue_with_full_path(case):
    queues = by_path("capacity-nested-2x", case)
    assert list(queues) == ["root", "root.prod", "root.prod.etl", "root.prod.reports", "root.default"]
    etl = queues["root.prod.etl"]
    assert etl.parent == "root.prod" and etl.leaf and etl.scheduler == "capacity"
    assert etl.used == Resources(8192, 4) and etl.used_capacity == 41.6 and etl.absolute_capacity == 30.0
    assert etl.active_applications == 2 and etl.containers == 4
    # 2.x string resources on a parent queue
    assert queues["root.prod"].used == Resources(8192, 4) and not queues["root.prod"].leaf
    assert queues["root.prod.reports"].state == "STOPPED"


def test_fair_every_queue_with_used_fair_and_max(case):
    queues = by_path("fair", case)
    assert list(queues) == ["root", "root.analytics", "root.analytics.adhoc", "root.default"]
    adhoc = queues["root.analytics.adhoc"]
    assert adhoc.parent == "root.analytics" and adhoc.scheduler == "fair" and adhoc.leaf
    assert adhoc.used == Resources(4096, 2) and adhoc.fair_share == Resources(16384, 8)
    assert adhoc.max_resources == Resources(16384, 8) and adhoc.pending_applications == 1
    assert adhoc.max_applications == 10


def test_fifo_nan_is_unknown_not_nan(case):
    (queue,) = parse_scheduler(case("scheduler/fifo-2x.json"))
    assert queue.path == "root" and queue.scheduler == "fifo"
    assert queue.used_capacity is None and queue.capacity == 100.0
    assert queue.state == "RUNNING"


def test_fifo_fraction_too_large_to_scale_is_unknown():
    # found by hypothesis: 1e308 of 1 is inf percent, which no event can carry
    body = b'{"scheduler":{"schedulerInfo":{"type":"fifoScheduler","capacity":1e+308,"usedCapacity":0.5}}}'
    (queue,) = parse_scheduler(body)
    assert queue.capacity is None and queue.used_capacity == 50.0


@pytest.mark.parametrize("body", [b"", b"<html/>", b'{"scheduler":{}}', b'{"scheduler":{"schedulerInfo":3}}'])
def test_unusable_scheduler_answers(body):
    with pytest.raises(ParseError):
        parse_scheduler(body)


def test_content_summary_3x_keeps_every_field(case):
    summary = parse_content_summary(case("webhdfs/content-summary-3x.json"))
    assert summary == {
        "directories": 12, "files": 340, "length_bytes": 73014444032, "space_consumed_bytes": 219043332096,
        "name_quota": 100000, "space_quota_bytes": 1099511627776, "erasure_coding_policy": "Replicated",
        "storage_type_quotas": {"DISK": {"consumed_bytes": 219043332096, "quota_bytes": 1099511627776}},
    }


def test_minus_one_quota_means_none():
    body = (b'{"ContentSummary":{"directoryCount":2,"fileCount":1,"length":24930,"quota":-1,'
            b'"spaceConsumed":24930,"spaceQuota":-1}}')
    summary = parse_content_summary(body)
    assert summary["name_quota"] is None and summary["space_quota_bytes"] is None
    assert summary["storage_type_quotas"] is None and summary["length_bytes"] == 24930


def test_webhdfs_errors_are_remote_exceptions(case):
    assert remote_exception(case("webhdfs/standby-namenode.json"))[0] == "StandbyException"
    assert remote_exception(case("webhdfs/no-such-path.json")) == (
        "FileNotFoundException", "File does not exist: /warehouse/tmp_gone")
    with pytest.raises(ParseError):
        parse_content_summary(case("webhdfs/no-such-path.json"))


def test_cluster_metrics_absent_fields_are_absent():
    metrics = parse_cluster_metrics(b'{"clusterMetrics":{"appsSubmitted":5,"totalMB":"4096","activeNodes":1}}')
    assert metrics == {"apps_submitted": 5, "memory_total_mb": 4096, "nodes_active": 1}


@pytest.mark.parametrize(
    "children",
    [
        b'[{"queueName":"root.default","numActiveApps":1},{"queueName":"root.etl"}]',  # 2.4-2.7: a bare list
        b'{"queueName":"root.default","numActiveApps":1}',  # 2.4-2.7 with one child: a bare object
    ],
)
def test_fair_scheduler_before_2_8_child_shapes(children):
    body = (b'{"scheduler":{"schedulerInfo":{"type":"fairScheduler","rootQueue":{"queueName":"root",'
            b'"childQueues":' + children + b"}}}}")
    queues = {q.path: q for q in parse_scheduler(body)}
    assert not queues["root"].leaf and queues["root.default"].leaf
    assert queues["root.default"].active_applications == 1 and queues["root.default"].parent == "root"


def test_fair_scheduler_3x_am_and_container_fields():
    body = (b'{"scheduler":{"schedulerInfo":{"type":"fairScheduler","rootQueue":{"queueName":"root",'
            b'"amMaxResources":{"memory":2048,"vCores":2},"amUsedResources":{"memory":512,"vCores":1},'
            b'"allocatedContainers":3}}}}')
    (root,) = parse_scheduler(body)
    assert root.am_limit == Resources(2048, 2) and root.am_used == Resources(512, 1) and root.containers == 3


def test_odd_values_are_absorbed_exactly():
    from collector.parsing import as_int

    assert as_int(2**60 + 1) == 2**60 + 1 and as_int(str(2**60 + 1)) == 2**60 + 1
    assert as_int("NaN") is None and as_int(True) is None and as_int("12.0") == 12
    body = b'{"scheduler":{"schedulerInfo":{"type":"fifoScheduler","qstate":7,"usedCapacity":"0.5"}}}'
    (queue,) = parse_scheduler(body)
    assert queue.state == "7" and queue.used_capacity == 50.0
