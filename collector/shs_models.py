"""Typed records of the Spark History Server REST API (``/api/v1``), and the figures we publish."""

from __future__ import annotations

from typing import Any

import msgspec

from .parsing import Long, ParseError, as_count, first_line


class SparkAttempt(msgspec.Struct, kw_only=True):
    attemptId: str | None = None  # absent for client-mode apps: URLs then drop the segment
    startTimeEpoch: Long | None = None
    endTimeEpoch: Long | None = None
    completed: bool | None = None
    sparkUser: str | None = None
    appSparkVersion: str | None = None
    duration: Long | None = None

    @property
    def is_final(self) -> bool:
        # An attempt still being written shows completed false and endTimeEpoch -1.
        return bool(self.completed) and (self.endTimeEpoch or 0) > 0


class SparkApp(msgspec.Struct, kw_only=True):
    id: str
    name: str | None = None
    attempts: list[SparkAttempt] | None = None  # null or absent: none listed yet


class SparkExecutor(msgspec.Struct, kw_only=True):
    id: str | None = None  # "driver" or a number; an executor without one still counts
    isActive: bool | None = None
    totalCores: Long | None = None
    totalInputBytes: Long | None = None
    totalShuffleRead: Long | None = None
    totalShuffleWrite: Long | None = None
    totalDuration: Long | None = None
    totalGCTime: Long | None = None
    failedTasks: Long | None = None
    completedTasks: Long | None = None
    totalTasks: Long | None = None
    removeReason: str | None = None


_app_decoder = msgspec.json.Decoder(SparkApp, strict=False)
_executors_decoder = msgspec.json.Decoder(list[SparkExecutor], strict=False)


def parse_app(body: bytes) -> SparkApp:
    try:
        return _app_decoder.decode(body)
    except (msgspec.DecodeError, RecursionError) as exc:  # msgspec: RecursionError past the depth limit
        raise ParseError(f"Spark application answer unreadable: {first_line(exc)}") from None


def parse_executors(body: bytes) -> list[SparkExecutor]:
    try:
        return _executors_decoder.decode(body)
    except (msgspec.DecodeError, RecursionError) as exc:  # msgspec: RecursionError past the depth limit
        raise ParseError(f"Spark executors answer unreadable: {first_line(exc)}") from None


def final_attempt(app: SparkApp) -> SparkAttempt | None:
    """The newest attempt: the one that matches YARN's final attempt.

    The SHS lists attempts newest first; ordering by start time (then attempt number)
    does not rely on that.
    """
    if not app.attempts:
        return None

    def newest(a: SparkAttempt) -> tuple[int, int]:
        try:
            number = int(a.attemptId or 0)
        except ValueError:  # not a number: order by start time alone
            number = 0
        return (a.startTimeEpoch or 0, number)

    return max(app.attempts, key=newest)


def executors_path(app_id: str, attempt: SparkAttempt) -> str:
    segment = f"/{attempt.attemptId}" if attempt.attemptId else ""
    return f"/api/v1/applications/{app_id}{segment}/allexecutors"


def _total(executors: list[SparkExecutor], field: str) -> int | None:
    values = [as_count(getattr(e, field)) for e in executors]
    known = [v for v in values if v is not None]
    return as_count(sum(known)) if known else None


def spark_figures(app: SparkApp, attempt: SparkAttempt, executors: list[SparkExecutor]) -> dict[str, Any]:
    """Summed over ``/allexecutors``: removed executors count, the driver's numbers count
    (in local mode it runs the tasks); the executor count excludes the driver."""
    return {
        "app_id": app.id,
        "attempt_id": attempt.attemptId,
        "spark_version": attempt.appSparkVersion,
        "duration_ms": as_count(attempt.duration),
        "input_bytes": _total(executors, "totalInputBytes"),
        "shuffle_read_bytes": _total(executors, "totalShuffleRead"),
        "shuffle_write_bytes": _total(executors, "totalShuffleWrite"),
        "executors": sum(1 for e in executors if e.id != "driver"),
        "executors_removed": sum(1 for e in executors if e.id != "driver" and e.isActive is False),
        "task_time_ms": _total(executors, "totalDuration"),
        "gc_time_ms": _total(executors, "totalGCTime"),
        "tasks": _total(executors, "totalTasks"),
        "failed_tasks": _total(executors, "failedTasks"),
    }
