"""Benchmarks 1, 2, 3, 5 and 6 of issue 6: no stack needed.

CPU-bound figures are process CPU time (``time.process_time``), the best of a few repeats: the
machines are small and shared, and CPU time is what other work on the machine does not inflate.
Every figure that has a target is a ratio of two things measured side by side in the same run.
"""

from __future__ import annotations

import asyncio
import gc
import json
import os
import subprocess
import sys
import time
from collections.abc import Callable
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

import orjson

from collector import schemas
from collector.config import ClusterConfig, PollConfig, ResourceManagerConfig
from collector.events import EventContext, transition_event
from collector.http import HttpPeer, RetryPolicy
from collector.rm_client import ResourceManager, parse_apps_stepwise
from collector.rm_models import ClusterInfo
from collector.rm_poller import RmPoller
from collector.service import ClusterWorker
from collector.state_store import FileStore
from collector.tracker import TrackerState, Transition, commit, diff, merge_views, prune

from . import appgen
from .naive import NaiveCollector

REPO = Path(__file__).resolve().parents[2]
CLUSTER = "bench"
NOW_MS = appgen.START_MS + 10**9  # "now" for every poll: after every generated time


@dataclass
class Row:
    """One line of the result table (and of the JSON file)."""

    bench: str
    case: str
    figure: str  # what the ratio says, e.g. "whole path / orjson.loads"
    ratio: float | None
    target: str  # e.g. "<= 0.5"; "" when the row is for information
    met: bool | None
    absolute: dict[str, float | int | str] = field(default_factory=dict)
    note: str = ""


def label(n: int) -> str:
    return f"{n // 1000}k" if n >= 1000 and n % 1000 == 0 else str(n)


def cpu_best(fn: Callable[[], object], repeats: int) -> tuple[float, object]:
    """Best process CPU time of ``repeats`` calls, and the last result."""
    best, result = float("inf"), None
    for _ in range(repeats):
        result = None
        start = time.process_time()
        result = fn()
        best = min(best, time.process_time() - start)
    return best, result


@contextmanager
def gc_disabled():
    was = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if was:
            gc.enable()


# ----------------------------------------------------------------------------- generated answers
def cache_dir() -> Path:
    path = Path(os.environ.get("HEC_BENCH_DIR") or REPO / ".bench") / "cache"
    path.mkdir(parents=True, exist_ok=True)
    return path


def answers(n: int, active_share: float = 0.1) -> tuple[bytes, bytes]:
    """The generated answers for ``n`` apps (before, after 2% changed), cached in .bench/cache
    (generating 100k takes about a minute)."""
    stem = cache_dir() / (f"apps-{n}-v1" if active_share == 0.1 else f"apps-{n}-active{active_share}-v1")
    before, after = stem.with_suffix(".before.json"), stem.with_suffix(".after.json")
    if not (before.exists() and after.exists()):
        b, a = appgen.answers(n, active_share=active_share)
        before.write_bytes(b)
        after.write_bytes(a)
    return before.read_bytes(), after.read_bytes()


# ----------------------------------------------------------------------------- our whole path
class BodyRM:
    """Stands in for the ResourceManager client: the active-apps answer comes from memory and
    is parsed exactly as the client parses it; nothing else is asked."""

    cluster = CLUSTER
    urls = ["http://rm.bench:8088"]
    active_url = urls[0]

    def __init__(self, body: bytes) -> None:
        self.body = body

    async def cluster_info(self) -> tuple[ClusterInfo, int | None]:
        return ClusterInfo(id=appgen.CLUSTER_ID, state="STARTED", haState="ACTIVE"), NOW_MS

    async def active_answer(self) -> bytes:
        return self.body

    async def ended_answer(self, since: int) -> bytes:
        return b'{"apps":{"app":[]}}'

    async def app(self, app_id: str) -> None:
        return None


class OurPath:
    """Decode, parse to records, diff against the previous view, build and encode the events:
    the collector's own code, as one poll cycle runs it (``RmPoller`` + ``transition_event``)."""

    def __init__(self, before: bytes) -> None:
        self.rm = BodyRM(before)
        self.state = TrackerState()
        self.poller = RmPoller(self.rm, self.state, overlap_ms=DEFAULT_OVERLAP_MS, backfill_ms=600_000)  # type: ignore[arg-type]
        self.ctx = EventContext(CLUSTER, appgen.CLUSTER_ID)
        self.loop = asyncio.new_event_loop()

        async def first(transitions: list[Transition]) -> None:
            commit(self.state, transitions)

        self.loop.run_until_complete(self.poller.poll(NOW_MS, first))

    def process(self, body: bytes) -> tuple[list[bytes], list[Transition]]:
        """One cycle on ``body``, its events built and encoded as they are found (as the service
        does); the state is not committed, so it can be repeated. The transitions are returned
        too, so that freeing them falls outside the timing, as for the floor's dicts."""
        self.rm.body = body
        found: list[Transition] = []
        encoded: list[bytes] = []

        async def emit(transitions: list[Transition]) -> None:
            found.extend(transitions)
            encoded.extend(transition_event(self.ctx, t, NOW_MS).encode() for t in transitions)

        self.loop.run_until_complete(self.poller.poll(NOW_MS, emit))
        return encoded, found

    def events(self, body: bytes) -> list[dict]:
        _, transitions = self.process(body)
        return [transition_event(self.ctx, t, NOW_MS).envelope for t in transitions]

    def close(self) -> None:
        self.loop.close()


def _parse_case(n: int, repeats: int) -> tuple[list[Row], float]:
    rows: list[Row] = []
    before, after = answers(n)
    ours = OurPath(before)
    reps = repeats if n < 100_000 else max(2, repeats - 1)
    naive = NaiveCollector(CLUSTER)
    naive.process(before)
    previous = naive.previous

    def naive_cycle() -> list[bytes]:
        naive.previous = previous
        return naive.process(after)

    # interleaved, best of each: the machine's noise hits all three alike
    floor = mine = naive_cpu = float("inf")
    for rep in range(reps):
        with gc_disabled():  # the floor at its best: no collector pauses while dicts pile up
            floor = min(floor, cpu_best(lambda: orjson.loads(after), 1)[0])
        took, events = cpu_best(lambda: ours.process(after), 1)
        mine = min(mine, took)
        if rep < max(1, reps - 1):
            took, naive_events = cpu_best(naive_cycle, 1)
            naive_cpu = min(naive_cpu, took)
    floor_gc, _ = cpu_best(lambda: orjson.loads(after), 1)
    with gc_disabled():
        mine_nogc, _ = cpu_best(lambda: ours.process(after), 1)
    events = events[0]  # type: ignore[index]
    assert isinstance(naive_events, list)
    assert len(events) == len(naive_events), (len(events), len(naive_events))
    # schema check, as the service does it before sending (per event; for information)
    sample = ours.events(after)[:200]
    check, _ = cpu_best(lambda: [schemas.validate(e) for e in sample], 1)
    check_per_event = check / max(1, len(sample))
    ours.close()
    info = {"apps": n, "answer_mb": round(len(after) / 1e6, 1), "events": len(events),
            "ours_cpu_s": round(mine, 4), "orjson_loads_cpu_s": round(floor, 4),
            "orjson_loads_gc_on_cpu_s": round(floor_gc, 4), "ours_gc_off_cpu_s": round(mine_nogc, 4),
            "ours_us_per_app": round(mine / n * 1e6, 2)}
    big = n >= 10_000
    rows.append(Row("1", f"{label(n)} apps", "whole path / orjson.loads (gc off)", mine / floor,
                    "<= 0.5" if big else "", (mine / floor <= 0.5) if big else None, info))
    rows.append(Row("2", f"{label(n)} apps", "naive collector / whole path", naive_cpu / mine,
                    ">= 5" if big else "", (naive_cpu / mine >= 5) if big else None,
                    {"naive_cpu_s": round(naive_cpu, 4), "ours_cpu_s": round(mine, 4)}))
    extra = check_per_event * len(events)
    rows.append(Row("1+", f"{label(n)} apps", "(whole path + schema check) / orjson.loads", (mine + extra) / floor,
                    "", None, {"schema_check_ms_per_event": round(check_per_event * 1000, 3),
                               "schema_check_cpu_s": round(extra, 4)},
                    "for information: the service checks each event against its schema before sending"))
    return rows, mine / n


def bench_parse(sizes: list[int], repeats: int = 3) -> list[Row]:
    """Benchmarks 1 and 2: our whole path vs the parsing floor (orjson.loads) and vs a naive
    collector, on the same bytes."""
    rows: list[Row] = []
    per_app: dict[int, float] = {}
    for n in sizes:
        case_rows, per_app[n] = _parse_case(n, repeats)
        rows += case_rows
    if len(sizes) >= 2:
        small, large = min(sizes), max(sizes)
        growth = per_app[large] / per_app[small]
        rows.append(Row("1", f"{label(small)} -> {label(large)}", "cost per app, largest / smallest", growth,
                        "<= 1.5 (linear)", growth <= 1.5,
                        {f"us_per_app_{label(k)}": round(v * 1e6, 2) for k, v in per_app.items()}))
    return rows


# ----------------------------------------------------------------------------- scripted RM process
class RmProcess:
    """``rm_server`` in its own process; its CPU is not ours."""

    def __init__(self, *args: str) -> None:
        env = dict(os.environ, PYTHONPATH=str(REPO))
        self.proc = subprocess.Popen([sys.executable, "-m", "tests.benchmarks.rm_server", *args],
                                     stdout=subprocess.PIPE, cwd=REPO, env=env, text=True)
        assert self.proc.stdout is not None
        line = self.proc.stdout.readline().strip()
        if not line.isdigit():
            self.close()
            raise RuntimeError(f"rm_server did not start (said {line!r})")
        self.url = f"http://127.0.0.1:{line}"

    async def call(self, peer: HttpPeer, endpoint: str, **params: str) -> dict:
        resp = await peer.get(self.url + endpoint, params)
        return json.loads(resp.body)

    def close(self) -> None:
        self.proc.terminate()
        try:
            self.proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.proc.kill()


def _peer() -> HttpPeer:
    return HttpPeer(timeout=120, retry=RetryPolicy(attempts=1))


# ----------------------------------------------------------------------------- benchmark 3
async def _day(cycles: int, retained: int, active: int, interval_ms: int, overlap_ms: int) -> list[Row]:
    now = int(time.time() * 1000)
    server = RmProcess("day", "--retained", str(retained), "--active", str(active), "--now-ms", str(now))
    control = _peer()
    peers = [_peer(), _peer()]
    try:
        rm_inc = ResourceManager([server.url], peers[0], cluster=CLUSTER)
        rm_full = ResourceManager([server.url], peers[1], cluster=CLUSTER)
        inc_state, full_state = TrackerState(), TrackerState()
        poller = RmPoller(rm_inc, inc_state, overlap_ms=overlap_ms, backfill_ms=600_000)
        ctx = EventContext(CLUSTER, appgen.CLUSTER_ID)

        async def incremental(sim_now: int) -> int:
            events: list[bytes] = []

            async def emit(transitions: list[Transition]) -> None:
                events.extend(transition_event(ctx, t, sim_now).encode() for t in transitions)
                commit(inc_state, transitions)

            await poller.poll(sim_now, emit)
            prune(inc_state, overlap_ms)
            return len(events)

        async def whole_list(sim_now: int) -> int:
            await rm_full.cluster_info()
            page = await parse_apps_stepwise(await rm_full._apps_body({}))  # the whole list, same deSelects
            transitions = diff(full_state, merge_views(page.apps))
            events = [transition_event(ctx, t, sim_now).encode() for t in transitions]
            commit(full_state, transitions)
            return len(events)

        totals = {"inc": [0.0, 0, 0, 0], "full": [0.0, 0, 0, 0]}  # cpu, bytes, requests, events
        sim_now = now
        for cycle in range(cycles + 1):
            if cycle:
                sim_now = (await server.call(control, "/_sim/advance", ms=str(interval_ms)))["now_ms"]
            for name, step in (("inc", incremental), ("full", whole_list)):
                await server.call(control, "/_sim/stats")  # reset
                start = time.process_time()
                n_events = await step(sim_now)
                cpu = time.process_time() - start
                stats = await server.call(control, "/_sim/stats")
                if cycle:  # the first cycle (start-up: everything is new) is not steady state
                    t = totals[name]
                    t[0] += cpu
                    t[1] += stats["bytes"]
                    t[2] += stats["requests"]
                    t[3] += n_events
        inc, full = totals["inc"], totals["full"]
        per = {k: [v / cycles for v in t] for k, t in totals.items()}
        assert inc[3] == full[3], f"both ways must see the same transitions ({inc[3]} vs {full[3]})"
        info = {"cycles": cycles, "interval_s": interval_ms / 1000, "overlap_s": overlap_ms / 1000,
                "retained": retained, "active": active, "events_per_cycle": round(per["inc"][3], 1),
                "incremental_kb_per_cycle": round(per["inc"][1] / 1024, 1),
                "whole_list_kb_per_cycle": round(per["full"][1] / 1024, 1),
                "incremental_requests_per_cycle": round(per["inc"][2], 2),
                "incremental_cpu_ms_per_cycle": round(per["inc"][0] * 1000, 2),
                "whole_list_cpu_ms_per_cycle": round(per["full"][0] * 1000, 2),
                "day_incremental_mb": round(per["inc"][1] * 86_400_000 / interval_ms / 1e6, 1),
                "day_whole_list_mb": round(per["full"][1] * 86_400_000 / interval_ms / 1e6, 1)}
        byte_ratio = full[1] / max(1, inc[1])
        cpu_ratio = full[0] / max(1e-9, inc[0])
        return [
            Row("3", f"{label(retained)} retained, {active} active, 1 end/s, overlap {overlap_ms // 1000}s",
                "bytes per cycle: whole list / incremental", byte_ratio, ">= 20", byte_ratio >= 20, info),
            Row("3", f"{label(retained)} retained, {active} active, 1 end/s, overlap {overlap_ms // 1000}s",
                "CPU per cycle: whole list / incremental", cpu_ratio, "", None, {}),
        ]
    finally:
        for peer in [control, *peers]:
            await peer.close()
        server.close()


#: The configured default (``poll.overlap``) first; the others are shown for information.
DEFAULT_OVERLAP_MS = int(float(PollConfig().overlap) * 1000)


def bench_incremental(cycles: int = 30, retained: int = 10_000, active: int = 200, interval_ms: int = 10_000,
                      overlaps_ms: tuple[int, ...] = (DEFAULT_OVERLAP_MS, 300_000, 60_000)) -> list[Row]:
    """Benchmark 3: a busy day's steady state on a scripted RM, polled both ways in lockstep.
    (A day is 8640 such cycles at the default 10 s interval; per-cycle figures are steady.)"""
    rows: list[Row] = []
    for overlap in overlaps_ms:
        rows += asyncio.run(_day(cycles, retained, active, interval_ms, overlap))
    for row in rows[2:]:  # other overlaps than the default: for information
        row.target, row.met = "", None
    return rows


# ----------------------------------------------------------------------------- benchmark 5
class NullSink:
    async def start(self) -> None: ...
    async def send(self, events, topics) -> None: ...
    async def close(self) -> None: ...


async def _stalls(n: int, validate: bool) -> Row:
    # Only active apps: what the service asks for (ended apps come a few minutes' worth at a time).
    before, after = answers(n, active_share=1.0)
    paths = []
    for name, body in (("before", before), ("after", after)):
        path = cache_dir() / f"serve-{n}-{name}.json"
        if not path.exists() or path.stat().st_size != len(body):
            path.write_bytes(body)
        paths.append(path)
    del before, after
    server = RmProcess("files")
    control = _peer()
    worker = None
    try:
        cfg = ClusterConfig(name=CLUSTER, resourcemanager=ResourceManagerConfig(urls=[server.url]))
        cfg.poll.timeout = 300.0
        # with the checkpoint file, as the service runs by default (written after every delivery batch)
        store = FileStore(cache_dir().parent / "stall-state", CLUSTER)
        worker = ClusterWorker(cfg, NullSink(), validate=validate, clock=lambda: NOW_MS, store=store,  # type: ignore[arg-type]
                               fresh=True)
        gc.collect()
        gc.freeze()  # as `hadoop-collector run` does after start-up
        await server.call(control, "/_sim/use", path=str(paths[0]))
        worker.validate = False  # set-up, not measured: 100k schema checks would take minutes
        await worker.cycle()  # first sight of every app: the state to diff against
        worker.validate = validate
        await server.call(control, "/_sim/use", path=str(paths[1]))

        ticks: list[float] = []
        cpu_gaps: list[float] = []  # CPU time this thread used between two ticks: stalls of our own making
        stop = asyncio.Event()

        async def ticker() -> None:
            last, last_cpu = time.perf_counter(), time.thread_time()
            while not stop.is_set():
                await asyncio.sleep(0.010)
                now, cpu = time.perf_counter(), time.thread_time()
                ticks.append(now - last - 0.010)
                cpu_gaps.append(cpu - last_cpu)
                last, last_cpu = now, cpu

        # the idle loop first: how late a tick comes anyway on this machine (the noise floor)
        task = asyncio.create_task(ticker())
        await asyncio.sleep(2.0)
        idle = max(ticks)
        ticks.clear()
        cpu_gaps.clear()
        start = time.perf_counter()
        delivered = await worker.cycle()
        took = time.perf_counter() - start
        stop.set()
        await task
        worst = max(ticks) if ticks else took
        ticks.sort()
        p99 = round(ticks[int(len(ticks) * 0.99)] * 1000, 1) if ticks else None
        info = {"apps": n, "events": delivered, "cycle_wall_s": round(took, 2), "ticks": len(ticks),
                "worst_stall_ms": round(worst * 1000, 1), "p99_stall_ms": p99,
                "idle_worst_stall_ms": round(idle * 1000, 1),
                "worst_cpu_between_ticks_ms": round(max(cpu_gaps, default=0.0) * 1000, 1)}
        with_checks = " (schema check and checkpoint file, as the service runs)" if validate else ""
        figure = "longest event-loop stall / 50 ms" + with_checks
        return Row("5", f"{label(n)} active apps, one poll cycle, 2% changed", figure, worst / 0.050, "<= 1",
                   worst <= 0.050, info,
                   "stall = lateness of a 10 ms timer; idle_worst_stall_ms: the same loop with nothing to do; "
                   "worst_cpu_between_ticks_ms: CPU the loop's thread used between two ticks (no preemption)")
    finally:
        gc.unfreeze()
        if worker is not None:
            await worker.close()
        await control.close()
        server.close()


def bench_loop(n: int = 100_000, validate: bool = True) -> list[Row]:
    """Benchmark 5: event-loop stalls while the service processes a large answer (real HTTP
    client, poller, event building, schema check, checkpoint file), the RM answering from
    another process."""
    return [asyncio.run(_stalls(n, validate))]


# ----------------------------------------------------------------------------- benchmark 6
MEMORY_PROBE = """
import asyncio, gc, json, sys
from pathlib import Path

def rss():
    return int(Path("/proc/self/statm").read_text().split()[1]) * 4096

from tests.benchmarks import core
from collector.config import ClusterConfig, ResourceManagerConfig
from collector.service import ClusterWorker
from collector.state_store import FileStore
from collector.tracker import Tracked, TrackerState
n, how = int(sys.argv[1]), sys.argv[2]

async def service(url):
    # the service's own path: HTTP answer, decode, diff, events built, encoded and delivered, state
    # committed; the worker is made before the empty figure, so only what the cycle leaves counts
    cfg = ClusterConfig(name=core.CLUSTER, resourcemanager=ResourceManagerConfig(urls=[url]))
    cfg.poll.timeout = 300.0
    store = FileStore(core.cache_dir().parent / "memory-state", core.CLUSTER)  # the default: a checkpoint file
    worker = ClusterWorker(cfg, core.NullSink(), validate=False, clock=lambda: core.NOW_MS, store=store, fresh=True)
    await worker.rm.cluster_info()  # connection pool and the like, before the empty figure
    gc.collect()
    empty = rss()
    await worker.cycle()
    gc.collect()
    tracked = rss()
    apps = len(worker.state.apps)
    await worker.close()
    return empty, tracked, apps

if how == "answer":
    empty, tracked, apps = asyncio.run(service(sys.argv[3]))
    print(json.dumps({"empty": empty, "tracked": tracked, "apps": apps}))
else:  # the same entries made directly, as from a checkpoint: what the representation itself costs
    gc.collect()
    empty = rss()
    state = TrackerState()
    for i in range(n):
        state.apps[f"application_1796300000000_{i:06d}"] = Tracked("FINISHED", 2, 1796300000000 + i)
    gc.collect()
    print(json.dumps({"empty": empty, "tracked": rss(), "apps": len(state.apps)}))
"""


def bench_memory(n: int = 100_000) -> list[Row]:
    """Benchmark 6: resident memory per tracked app, each figure in a fresh process: the state a
    ``ClusterWorker`` reaches in one cycle over a generated ``n``-app answer (served over HTTP by
    the scripted RM in another process; events built and delivered to a null sink), and the same
    number of entries made directly (the representation's own cost)."""
    before, _ = answers(n, active_share=1.0)
    path = cache_dir() / f"serve-{n}-before.json"
    if not path.exists() or path.stat().st_size != len(before):
        path.write_bytes(before)
    del before
    env = dict(os.environ, PYTHONPATH=str(REPO))
    rows = []
    server = RmProcess("files")
    try:
        asyncio.run(_use(server, path))
        for how, figure, target in (("answer", "RSS per tracked app, after a service cycle / 1 KiB", "<= 1"),
                                    ("direct", "RSS per tracked app, entries made directly / 1 KiB", "")):
            out = subprocess.run([sys.executable, "-c", MEMORY_PROBE, str(n), how, server.url], capture_output=True,
                                 text=True, cwd=REPO, env=env)
            if out.returncode != 0:
                raise RuntimeError(f"memory probe ({how}) exited {out.returncode}: {out.stderr[-2000:]}")
            m = json.loads(out.stdout.strip().splitlines()[-1])
            per_app = (m["tracked"] - m["empty"]) / m["apps"]
            info = {"apps": m["apps"], "rss_empty_mb": round(m["empty"] / 2**20, 1),
                    "rss_tracked_mb": round(m["tracked"] / 2**20, 1), "bytes_per_app": round(per_app)}
            rows.append(Row("6", f"{label(n)} tracked apps", figure, per_app / 1024, target,
                            (per_app <= 1024) if target else None, info))
    finally:
        server.close()
    return rows


async def _use(server: RmProcess, path: Path) -> None:
    control = _peer()
    try:
        await server.call(control, "/_sim/use", path=str(path))
    finally:
        await control.close()
