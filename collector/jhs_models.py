"""Typed records of the MapReduce JobHistory Server answers, and the figures we publish.

Counter group and counter names are data: the whole set is kept as ``{group: {name: total}}``
and the figures we name are looked up in it. A counter that is absent stays ``None``
(unknown), never 0.
"""

from __future__ import annotations

from typing import Annotated, Any

import msgspec

from .parsing import Long, ParseError, as_count, first_line

FS_GROUPS = ("org.apache.hadoop.mapreduce.FileSystemCounter", "FileSystemCounters")
INPUT_GROUPS = (
    "org.apache.hadoop.mapreduce.lib.input.FileInputFormatCounter",
    "org.apache.hadoop.mapred.FileInputFormat$Counter",
)
OUTPUT_GROUPS = (
    "org.apache.hadoop.mapreduce.lib.output.FileOutputFormatCounter",
    "org.apache.hadoop.mapred.FileOutputFormat$Counter",
)
TASK_GROUPS = ("org.apache.hadoop.mapreduce.TaskCounter", "org.apache.hadoop.mapred.Task$Counter")


class JhsJob(msgspec.Struct, kw_only=True):
    id: Annotated[str, msgspec.Meta(pattern=r"^job_[0-9]+_[0-9]+\Z")]  # figures name the job by it
    name: str | None = None
    state: str | None = None
    user: str | None = None
    queue: str | None = None
    mapsTotal: Long | None = None
    reducesTotal: Long | None = None
    uberized: bool | None = None
    failedMapAttempts: Long | None = None
    failedReduceAttempts: Long | None = None
    killedMapAttempts: Long | None = None
    killedReduceAttempts: Long | None = None
    diagnostics: str | None = None


class _JobAnswer(msgspec.Struct):
    job: JhsJob


class _Counter(msgspec.Struct, kw_only=True):
    name: str | None = None
    totalCounterValue: Long | None = None


class _CounterGroup(msgspec.Struct, kw_only=True):
    counterGroupName: str | None = None
    counter: list[_Counter] | _Counter | None = None


class _JobCounters(msgspec.Struct, kw_only=True):
    id: str | None = None
    counterGroup: list[_CounterGroup] | _CounterGroup | None = None


class _CountersAnswer(msgspec.Struct):
    jobCounters: _JobCounters


_job_decoder = msgspec.json.Decoder(_JobAnswer, strict=False)
_counters_decoder = msgspec.json.Decoder(_CountersAnswer, strict=False)

Counters = dict[str, dict[str, int | None]]


def job_id_of(app_id: str) -> str:
    """``application_X_Y`` -> ``job_X_Y`` (MapReduce names its job after its application)."""
    if not app_id.startswith("application_"):
        raise ValueError(f"not a YARN application id: {app_id!r}")
    return "job_" + app_id[len("application_") :]


def parse_job(body: bytes) -> JhsJob:
    try:
        return _job_decoder.decode(body).job
    except (msgspec.DecodeError, RecursionError) as exc:  # msgspec: RecursionError past the depth limit
        raise ParseError(f"job answer unreadable: {first_line(exc)}") from None


def _as_list(value: Any) -> list[Any]:
    if value is None:
        return []
    return value if isinstance(value, list) else [value]


def parse_counters(body: bytes) -> Counters:
    """``{group name: {counter name: total}}``; an empty dict when the job has no counters."""
    try:
        answer = _counters_decoder.decode(body).jobCounters
    except (msgspec.DecodeError, RecursionError) as exc:  # msgspec: RecursionError past the depth limit
        raise ParseError(f"counters answer unreadable: {first_line(exc)}") from None
    out: Counters = {}
    for group in _as_list(answer.counterGroup):
        if group.counterGroupName is None:  # nameless: nothing can look it up
            continue
        values = out.setdefault(group.counterGroupName, {})
        for counter in _as_list(group.counter):
            if counter.name is not None:
                values[counter.name] = counter.totalCounterValue
    return out


def _lookup(counters: Counters, groups: tuple[str, ...], name: str) -> int | None:
    for group in groups:
        value = as_count(counters.get(group, {}).get(name))
        if value is not None:
            return value
    return None


def _sum(*values: int | None) -> int | None:
    known = [v for v in map(as_count, values) if v is not None]
    return as_count(sum(known)) if known else None


def mapreduce_figures(job: JhsJob, counters: Counters, *, include_counters: bool = False) -> dict[str, Any]:
    """What a MapReduce job scanned and cost, from the JobHistory Server's own numbers."""
    fs = FS_GROUPS
    figures: dict[str, Any] = {
        "job_id": job.id,
        "job_state": job.state,
        "uberized": job.uberized,
        "input_bytes": _lookup(counters, INPUT_GROUPS, "BYTES_READ"),
        "output_bytes": _lookup(counters, OUTPUT_GROUPS, "BYTES_WRITTEN"),
        "hdfs_bytes_read": _lookup(counters, fs, "HDFS_BYTES_READ"),
        "hdfs_bytes_written": _lookup(counters, fs, "HDFS_BYTES_WRITTEN"),
        "file_bytes_read": _lookup(counters, fs, "FILE_BYTES_READ"),
        "file_bytes_written": _lookup(counters, fs, "FILE_BYTES_WRITTEN"),
        "map_input_records": _lookup(counters, TASK_GROUPS, "MAP_INPUT_RECORDS"),
        "map_output_records": _lookup(counters, TASK_GROUPS, "MAP_OUTPUT_RECORDS"),
        "reduce_input_records": _lookup(counters, TASK_GROUPS, "REDUCE_INPUT_RECORDS"),
        "reduce_output_records": _lookup(counters, TASK_GROUPS, "REDUCE_OUTPUT_RECORDS"),
        "maps": as_count(job.mapsTotal),
        "reduces": as_count(job.reducesTotal),
        "failed_task_attempts": _sum(job.failedMapAttempts, job.failedReduceAttempts),
        "killed_task_attempts": _sum(job.killedMapAttempts, job.killedReduceAttempts),
        "cpu_ms": _lookup(counters, TASK_GROUPS, "CPU_MILLISECONDS"),
    }
    if include_counters:
        figures["counters"] = counters
    return figures
