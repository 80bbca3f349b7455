"""A tiny run of every no-stack benchmark, so that ``make test`` proves they run and measure
something sane. Sizes are small and nothing here asserts a speed target: timings are for
``make bench``, never for tests."""

from __future__ import annotations

import math

import pytest

from tests.benchmarks import __main__ as cli
from tests.benchmarks import appgen, core


@pytest.fixture(autouse=True)
def bench_dir(tmp_path, monkeypatch):
    monkeypatch.setenv("HEC_BENCH_DIR", str(tmp_path))


def sane(x: float | None) -> bool:
    return x is not None and math.isfinite(x) and x > 0


def test_generated_answers_parse_and_change_by_two_percent():
    before, after = appgen.answers(500)
    from collector.rm_models import parse_apps

    old = {a.id: a.state for a in parse_apps(before).apps}
    new = {a.id: a.state for a in parse_apps(after).apps}
    assert len(old) == len(new) == 500
    assert sum(old[k] != new[k] for k in old) == 10


def test_whole_path_floor_and_naive_side_by_side():
    rows = core.bench_parse([200, 1000], repeats=1)
    by = {(r.bench, r.case): r for r in rows}
    one = by[("1", "1k apps")]
    assert one.absolute["events"] == 20  # 2% of 1000, and the naive collector found as many
    assert sane(one.ratio) and sane(by[("2", "1k apps")].ratio) and sane(by[("1", "200 -> 1k")].ratio)
    assert sane(one.absolute["orjson_loads_cpu_s"]) and sane(one.absolute["ours_cpu_s"])
    assert by[("1+", "1k apps")].absolute["schema_check_ms_per_event"] > 0
    assert "whole path" in cli.table(rows)


def test_incremental_polling_counts_bytes_both_ways():
    (bytes_row, cpu_row) = core.bench_incremental(cycles=2, retained=300, active=20, interval_ms=10_000,
                                                  overlaps_ms=(60_000,))
    info = bytes_row.absolute
    # each simulated second one app ends and one is submitted: 2 transitions, 20 per 10 s cycle
    assert info["events_per_cycle"] == 20
    assert info["incremental_requests_per_cycle"] == 3  # info, active, ended
    assert info["whole_list_kb_per_cycle"] > info["incremental_kb_per_cycle"] > 0
    assert sane(cpu_row.ratio)


def test_event_loop_stalls_measured_over_a_real_cycle():
    (row,) = core.bench_loop(2000)
    assert row.absolute["events"] == 40  # 2% of 2000 changed
    assert row.absolute["ticks"] > 0 and sane(row.ratio)


def test_memory_per_tracked_app():
    rows = core.bench_memory(2000)
    assert [r.absolute["apps"] for r in rows] == [2000, 2000]
    assert all(0 < r.absolute["bytes_per_app"] < 100_000 for r in rows)
