"""I/O helpers of the fault tests: the collector as a real process that can be SIGKILLed and
restarted, detached real jobs, the RM as the source of truth, and the topic read to its end."""

from __future__ import annotations

import asyncio
import ctypes
import json
import os
import signal
import subprocess
import sys
import threading
import time
import urllib.request
import uuid
from pathlib import Path

import orjson
import pytest

from .conftest import REPO, STACK
from .stream_check import FINISHED, TERMINAL, Record, record_of

COLLECTOR = Path(sys.executable).parent / "hadoop-collector"


def _die_with_parent() -> None:
    """In the child before exec: the kernel SIGKILLs it when the test process dies, even when
    the test process itself is killed and no teardown runs (prctl PR_SET_PDEATHSIG)."""
    ctypes.CDLL("libc.so.6", use_errno=True).prctl(1, signal.SIGKILL)


class Collector:
    """``hadoop-collector run -c <config>`` in its own process group, output appended to one log
    across restarts. ``close()`` (always called by the fixtures) leaves nothing running."""

    def __init__(self, config: Path, log_path: Path) -> None:
        self.config, self.log_path = config, log_path
        self.proc: subprocess.Popen[bytes] | None = None
        self.starts = 0

    def start(self) -> None:
        assert not self.alive, "already running"
        with open(self.log_path, "ab") as log_file:
            self.proc = subprocess.Popen([str(COLLECTOR), "run", "-c", str(self.config)], cwd=REPO,
                                         stdout=log_file, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                                         preexec_fn=_die_with_parent)
        self.starts += 1

    @property
    def pid(self) -> int:
        assert self.proc is not None
        return self.proc.pid

    @property
    def alive(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def kill(self) -> None:
        """SIGKILL: no flush, no checkpoint, no goodbye."""
        if self.alive:
            assert self.proc is not None
            self.proc.kill()
            self.proc.wait(timeout=30)

    def stop(self, timeout: float = 45) -> int | str:
        """SIGTERM and wait; the exit code, or "hung" (then killed)."""
        if not self.alive:
            return self.proc.returncode if self.proc else "never started"
        assert self.proc is not None
        self.proc.send_signal(signal.SIGTERM)
        try:
            return self.proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            self.kill()
            return "hung"

    def close(self) -> None:
        self.kill()

    def rss_kb(self) -> int | None:
        """Resident memory now (VmRSS of /proc/<pid>/status), None when not running."""
        if not self.alive:
            return None
        try:
            status = Path(f"/proc/{self.pid}/status").read_text()
        except OSError:
            return None
        line = next((x for x in status.splitlines() if x.startswith("VmRSS:")), None)
        return int(line.split()[1]) if line else None

    def log_events(self) -> list[dict]:
        out = []
        for line in self.log_path.read_text(errors="replace").splitlines():
            if line.startswith("{"):
                try:
                    out.append(json.loads(line))
                except ValueError:
                    pass
        return out

    def log_tail(self, n: int = 40) -> str:
        try:
            return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-n:])
        except OSError:
            return "(no log)"


def wait_for(what: str, ready, timeout: float, interval: float = 0.5, detail=lambda: "") -> None:
    """Poll ``ready()`` until true; fail the test with ``what`` (and ``detail()``) on timeout."""
    deadline = time.monotonic() + timeout
    while not ready():
        if time.monotonic() > deadline:
            pytest.fail(f"timed out after {timeout:.0f}s waiting for {what}\n{detail()}", pytrace=False)
        time.sleep(interval)


def wait_first_checkpoint(collector: Collector, checkpoint: Path, timeout: float = 120) -> None:
    """The first poll cycle is done (its checkpoint written): from now on new jobs are seen."""
    def ready() -> bool:
        if not collector.alive:
            pytest.fail(f"the collector exited ({collector.proc.returncode if collector.proc else '-'}):\n"
                        f"{collector.log_tail()}", pytrace=False)
        return checkpoint.exists()
    wait_for(f"the first checkpoint {checkpoint}", ready, timeout, detail=collector.log_tail)


def stack_env(extra: dict[str, str] | None = None) -> dict[str, str]:
    return {**os.environ, **(extra or {})}


def submit_detached(kind: str, env: dict[str, str] | None = None) -> dict:
    """A real job, submitted and left running (``stack.py submit --detach``)."""
    name = f"hec-fault-{kind}-{uuid.uuid4().hex[:8]}"
    proc = subprocess.run([*STACK, "submit", kind, "--detach", "--name", name], capture_output=True, text=True,
                          timeout=600, cwd=REPO, env=stack_env(env))
    if proc.returncode != 0:
        raise RuntimeError(f"submit {kind} exited {proc.returncode}: {proc.stderr[-2000:]}")
    return json.loads(proc.stdout.strip().splitlines()[-1])


def stack_command(*args: str, timeout: float = 300) -> None:
    proc = subprocess.run([*STACK, *args], capture_output=True, text=True, timeout=timeout, cwd=REPO)
    if proc.returncode != 0:
        pytest.fail(f"`stack.py {' '.join(args)}` exited {proc.returncode}:\n{proc.stderr[-3000:]}", pytrace=False)


def get_json(url: str, method: str = "GET", body: dict | None = None) -> dict:
    data = json.dumps(body).encode() if body is not None else None
    req = urllib.request.Request(url, data=data, method=method, headers={
        "Accept": "application/json", "Content-Type": "application/json"})
    with urllib.request.urlopen(req, timeout=15) as resp:
        return json.loads(resp.read() or b"null")


def rm_app(stack: dict[str, str], app_id: str) -> dict:
    return get_json(f"{stack['HADOOP_RM_URL']}/ws/v1/cluster/apps/{app_id}")["app"]


def rm_apps(stack: dict[str, str]) -> list[dict]:
    return (get_json(f"{stack['HADOOP_RM_URL']}/ws/v1/cluster/apps").get("apps") or {}).get("app") or []


def kill_app(stack: dict[str, str], app_id: str) -> None:
    """Kill through the RM REST API, as an operator would."""
    get_json(f"{stack['HADOOP_RM_URL']}/ws/v1/cluster/apps/{app_id}/state?user.name={stack.get('HADOOP_USER', '')}",
             method="PUT", body={"state": "KILLED"})


def kill_unfinished(stack: dict[str, str], app_ids) -> None:
    """Teardown: no job of ours keeps running into the next test."""
    for app_id in app_ids:
        try:
            if rm_app(stack, app_id)["state"] not in TERMINAL:
                kill_app(stack, app_id)
        except OSError:
            pass


def truth(stack: dict[str, str], app_ids) -> dict[str, tuple[str, str]]:
    """The RM's final (state, finalStatus) of each application."""
    out = {}
    for app_id in app_ids:
        app = rm_app(stack, app_id)
        out[app_id] = (app["state"], app["finalStatus"])
    return out


def wait_all_ended(stack: dict[str, str], app_ids, timeout: float) -> None:
    def states() -> dict[str, str]:
        return {a: rm_app(stack, a)["state"] for a in app_ids}
    wait_for("every job to end on the RM", lambda: all(s in TERMINAL for s in states().values()), timeout,
             interval=2, detail=lambda: str(states()))


class KillWhenRunning(threading.Thread):
    """Kills each submitted ``kill`` job through the RM once it has run for ``after()`` seconds."""

    def __init__(self, stack: dict[str, str], after) -> None:
        super().__init__(daemon=True, name="kill-when-running")
        self.stack, self.after = stack, after
        self.queue: list[str] = []
        self.stopped = threading.Event()
        self.errors: list[str] = []

    def add(self, app_id: str) -> None:
        self.queue.append(app_id)

    def run(self) -> None:
        due: dict[str, float] = {}
        while not self.stopped.is_set():
            for app_id in list(self.queue):
                try:
                    state = rm_app(self.stack, app_id)["state"]
                except OSError as exc:
                    self.errors.append(f"{app_id}: {exc}")
                    continue
                if state in TERMINAL:
                    self.queue.remove(app_id)
                elif state == "RUNNING":
                    due.setdefault(app_id, time.monotonic() + self.after())
                    if time.monotonic() >= due[app_id]:
                        kill_app(self.stack, app_id)
                        self.queue.remove(app_id)
            self.stopped.wait(0.5)


class RmWatcher(threading.Thread):
    """An independent look at the RM every second: (monotonic time, app id, state) samples, to
    know which states lasted long enough for the collector to observe them."""

    def __init__(self, stack: dict[str, str], interval: float = 1.0) -> None:
        super().__init__(daemon=True, name="rm-watcher")
        self.stack, self.interval = stack, interval
        self.samples: list[tuple[float, str, str]] = []
        self.stopped = threading.Event()

    def run(self) -> None:
        while not self.stopped.is_set():
            try:
                now = time.monotonic()
                self.samples.extend((now, a["id"], a["state"]) for a in rm_apps(self.stack))
            except OSError:
                pass
            self.stopped.wait(self.interval)

    def held(self, start: float, end: float, at_least: float) -> dict[str, set[str]]:
        """Per app, the states seen without interruption for ``at_least`` seconds inside [start, end]."""
        streak: dict[str, tuple[str, float]] = {}  # app -> (state, first sample of the current run)
        out: dict[str, set[str]] = {}
        for t, app_id, state in sorted(self.samples):
            if not start <= t <= end:
                continue
            if streak.get(app_id, ("", 0.0))[0] != state:
                streak[app_id] = (state, t)
            if t - streak[app_id][1] >= at_least:
                out.setdefault(app_id, set()).add(state)
        return out

    def timeline(self, app_id: str, start: float = 0.0) -> list[tuple[float, str]]:
        """(seconds since ``start``, state) at each change of ``app_id``'s state."""
        out: list[tuple[float, str]] = []
        for t, a, state in sorted(self.samples):
            if a == app_id and (not out or out[-1][1] != state):
                out.append((round(t - start, 1), state))
        return out


def without_finished(bootstrap: str, topic: str, app_ids) -> list[str]:
    """The applications that have no ``yarn.application.finished`` event on the topic yet."""
    done = {e["subject"] for r in read_all(bootstrap, topic) if (e := orjson.loads(r.value))["type"] == FINISHED}
    return sorted(set(app_ids) - done)


def read_all(bootstrap: str, topic: str, timeout: float = 60) -> list[Record]:
    """Every record of ``topic`` up to its end offsets as of now."""
    from aiokafka import AIOKafkaConsumer

    async def consume() -> list[Record]:
        consumer = AIOKafkaConsumer(topic, bootstrap_servers=bootstrap, enable_auto_commit=False,
                                    auto_offset_reset="earliest")
        await consumer.start()
        try:
            while not consumer.assignment():  # without a group every partition is assigned, once known
                await asyncio.sleep(0.1)
            parts = sorted(consumer.assignment())
            await consumer.seek_to_beginning(*parts)
            ends = await consumer.end_offsets(parts)
            out: list[Record] = []
            async def behind() -> bool:
                return any([await consumer.position(tp) < ends[tp] for tp in parts])

            while await behind():
                batch = await consumer.getmany(timeout_ms=500)
                for recs in batch.values():
                    out.extend(record_of(r) for r in recs)
            return out
        finally:
            await consumer.stop()

    return asyncio.run(asyncio.wait_for(consume(), timeout))
