"""A scripted ResourceManager for the benchmarks, run as its own process (so that its work is
not counted as the collector's): ``python -m tests.benchmarks.rm_server {day|files} ...``.

``day``: a busy cluster's day in fast motion. It retains ``--retained`` apps, ``--active`` of
them active, and one app ends (and one is submitted) every simulated second; ``/_sim/advance?ms=``
moves its clock. ``files``: answers the active-apps request with the file ``/_sim/use?path=``
names (a large generated answer) and every other apps request with no apps.

Both answer ``/ws/v1/cluster/info`` (with the simulated clock in ``Date``), ``/ws/v1/cluster/apps``
(``states``, ``finishedTimeBegin`` and ``deSelects`` honoured) and ``/ws/v1/cluster/apps/{id}``, and count the
body bytes they send; ``/_sim/stats`` returns and resets the count. Bound to 127.0.0.1; the port
is printed on the first line of stdout.
"""

from __future__ import annotations

import argparse
import asyncio
import email.utils
import sys
from collections import deque
from pathlib import Path

import orjson
from aiohttp import web

from .appgen import CLUSTER_ID, TERMINAL, App, encode_answer

ACTIVE_STATES = {"NEW", "NEW_SAVING", "SUBMITTED", "ACCEPTED", "RUNNING"}


class Sim:
    def __init__(self, retained: int, active: int, now_ms: int) -> None:
        self.now_ms = now_ms
        self.sent_bytes = 0
        self.requests = 0
        self.apps: dict[str, App] = {}
        self.ended: deque[App] = deque()  # oldest end first: evicted first
        self.running: deque[App] = deque()  # oldest start first: ends first
        self.next_seq = 1
        # history: ended apps, one per second up to now
        for k in range(retained - active):
            app = self._new(now_ms - (retained - k) * 1000 - 600_000)
            app.advance(app.started)
            app.advance(now_ms - (retained - active - k) * 1000)
            self.ended.append(app)
        for k in range(active):
            app = self._new(now_ms - (active - k) * 1000)
            app.advance(app.started)
            self.running.append(app)
        self.retained = retained

    def _new(self, started: int) -> App:
        app = App(self.next_seq, self.next_seq * 2654435761 % 2**32, "ACCEPTED", "UNDEFINED", started)
        self.next_seq += 1
        self.apps[app.id] = app
        return app

    def advance(self, ms: int) -> None:
        """Each simulated second: the oldest running app ends, a new one is submitted, and
        the oldest ended app is evicted (the RM's retention limit)."""
        for _ in range(ms // 1000):
            self.now_ms += 1000
            app = self.running.popleft()
            app.advance(self.now_ms)  # RUNNING -> an end
            if app.state not in TERMINAL:  # it was still ACCEPTED
                app.advance(self.now_ms)
            self.ended.append(app)
            new = self._new(self.now_ms)
            new.advance(self.now_ms)
            self.running.append(new)
            while len(self.ended) + len(self.running) > self.retained:
                del self.apps[self.ended.popleft().id]

    def select(self, states: set[str], since: int) -> list[App]:
        pool = list(self.ended) + list(self.running)
        return [a for a in pool
                if (not states or a.state in states) and (a.state not in TERMINAL or a.finished >= since)]


def make_app(sim: Sim | None, files: dict[str, bytes]) -> web.Application:
    def date() -> str:
        ms = sim.now_ms if sim else None
        return email.utils.formatdate((ms / 1000) if ms else None, usegmt=True)

    def reply(body: bytes, status: int = 200) -> web.Response:
        if sim is not None:
            sim.sent_bytes += len(body)
            sim.requests += 1
        stats["bytes"] += len(body)
        stats["requests"] += 1
        return web.Response(body=body, status=status, content_type="application/json", headers={"Date": date()})

    stats = {"bytes": 0, "requests": 0}

    async def info(request: web.Request) -> web.Response:
        return reply(orjson.dumps({"clusterInfo": {"id": CLUSTER_ID, "startedOn": CLUSTER_ID, "state": "STARTED",
                                                   "haState": "ACTIVE", "resourceManagerVersion": "3.4.1"}}))

    async def apps(request: web.Request) -> web.Response:
        states = set(request.query.get("states", "").split(",")) - {""}
        since = int(request.query.get("finishedTimeBegin", "0"))
        lean = "resourceInfo" in request.query.get("deSelects", "")
        if sim is None:
            body = files.get("active", b'{"apps":null}') if states & ACTIVE_STATES else b'{"apps":null}'
            return reply(body)
        return reply(encode_answer([a.bytes(lean) for a in sim.select(states, since)]))

    async def one(request: web.Request) -> web.Response:
        app = sim.apps.get(request.match_info["app_id"]) if sim else None
        if app is None:
            return reply(b'{"RemoteException":{"exception":"NotFoundException","message":"app not found"}}', 404)
        return reply(b'{"app":' + app.bytes(lean="resourceInfo" in request.query.get("deSelects", "")) + b"}")

    async def advance(request: web.Request) -> web.Response:
        assert sim is not None
        sim.advance(int(request.query["ms"]))
        return web.json_response({"now_ms": sim.now_ms})

    async def use(request: web.Request) -> web.Response:
        files["active"] = Path(request.query["path"]).read_bytes()
        return web.json_response({"bytes": len(files["active"])})

    async def read_stats(request: web.Request) -> web.Response:
        out = dict(stats, now_ms=sim.now_ms if sim else None)
        stats.update(bytes=0, requests=0)
        return web.json_response(out)

    app = web.Application(client_max_size=1 << 20)
    app.router.add_get("/ws/v1/cluster/info", info)
    app.router.add_get("/ws/v1/cluster/apps", apps)
    app.router.add_get("/ws/v1/cluster/apps/{app_id}", one)
    app.router.add_get("/_sim/advance", advance)
    app.router.add_get("/_sim/use", use)
    app.router.add_get("/_sim/stats", read_stats)
    return app


async def serve(application: web.Application) -> None:
    runner = web.AppRunner(application, access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    print(site._server.sockets[0].getsockname()[1], flush=True)  # type: ignore[union-attr]
    await asyncio.Event().wait()


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("mode", choices=("day", "files"))
    parser.add_argument("--retained", type=int, default=10_000)
    parser.add_argument("--active", type=int, default=200)
    parser.add_argument("--now-ms", type=int, default=0)
    args = parser.parse_args(argv)
    sim = Sim(args.retained, args.active, args.now_ms) if args.mode == "day" else None
    try:
        asyncio.run(serve(make_app(sim, {})))
    except KeyboardInterrupt:
        sys.exit(0)


if __name__ == "__main__":
    main()
