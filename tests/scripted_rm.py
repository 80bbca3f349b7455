"""A scripted ResourceManager (aiohttp) for what a real RM cannot be made to do on demand:
standby answers, failover, restarts, slow answers, malformed bodies. It serves apps from a
dict the test edits; ``HaPair`` makes two of them share it and flip active/standby."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from aiohttp import web

CASES = Path(__file__).parent / "cases"
TERMINAL = {"FINISHED", "FAILED", "KILLED"}


@dataclass
class ScriptedRM:
    cluster_id: int = 1700000000000
    ha_state: str = "ACTIVE"
    apps: dict[str, dict] = field(default_factory=dict)
    #: None = answer normally; otherwise one of the fault names in ``_fault``.
    fault: str | None = None
    requests: list[str] = field(default_factory=list)
    url: str = ""
    #: clusterInfo.state: INITED while a restarted RM recovers, STARTED once it serves.
    rm_state: str = "STARTED"
    #: False: the apps are not served (a restarted RM that has not recovered them yet).
    recovered: bool = True
    #: How long the "slow" fault holds an answer (past the collector's timeout).
    slow_s: float = 1.0
    #: Called with the path before each request is answered (lets a test flip mid-cycle).
    on_request: Callable[[str], None] | None = None
    #: Shared by the RMs of a pair: (rm name, path) of every request, in arrival order.
    journal: list[tuple[str, str]] = field(default_factory=list)
    name: str = "rm"
    #: When set, the only deSelects values this RM knows (an RM before YARN-6871 knows resourceRequests).
    deselects_known: tuple[str, ...] = ()
    #: True: the RM's own layout (Jackson: no whitespace, each app's id first); False: re-indented,
    #: as some proxies send it.
    compact: bool = True

    def put(self, app_id: str, state: str, **fields) -> None:
        record = {"id": app_id, "state": state, "user": "u", "name": f"job-{app_id[-4:]}", "queue": "default",
                  "finalStatus": fields.pop("finalStatus", "SUCCEEDED" if state == "FINISHED" else "UNDEFINED"),
                  "clusterId": self.cluster_id, "applicationType": "MAPREDUCE", "applicationTags": "",
                  "startedTime": 1700000001000, "finishedTime": 0}
        record.update(fields)
        self.apps[app_id] = record

    def app(self) -> web.Application:
        application = web.Application()
        application.router.add_get("/ws/v1/cluster/info", self._info)
        application.router.add_get("/ws/v1/cluster/apps", self._apps)
        application.router.add_get("/ws/v1/cluster/apps/{app_id}", self._one)
        return application

    def restart(self, cluster_id: int) -> None:
        """A new RM process: a new id, not STARTED and without its apps until ``recover()``."""
        self.cluster_id, self.rm_state, self.ha_state, self.recovered = cluster_id, "INITED", "INITIALIZING", False

    def recover(self, keep: Callable[[dict], bool] = lambda app: True) -> None:
        """Back in service with the apps its state store kept (``keep``); the rest is lost."""
        for app_id in [app_id for app_id, app in self.apps.items() if not keep(app)]:
            del self.apps[app_id]  # in place: a pair shares the dict
        self.rm_state, self.ha_state, self.recovered = "STARTED", "ACTIVE", True

    async def _arrived(self, request: web.Request) -> None:
        self.requests.append(request.path_qs)
        self.journal.append((self.name, request.path))
        if self.on_request is not None:
            self.on_request(request.path)
        if self.fault == "slow":
            await asyncio.sleep(self.slow_s)

    def _served(self) -> dict[str, dict]:
        return self.apps if self.recovered else {}

    def _fault(self, path: str) -> web.Response | None:
        f = self.fault
        if f in (None, "slow") or (f == "gateway-404" and path.count("/") == 4):
            return None
        if f == "gateway-404":  # a proxy without a route for the one-app path
            return web.Response(status=404, text="<html><body>Not Found</body></html>", content_type="text/html")
        if f == "standby-307":
            return web.Response(status=307, text=(CASES / "rm/standby-3x-307.body.txt").read_text(),
                                headers={"Location": "http://127.0.0.1:1" + path})
        if f == "standby-307-no-location":
            return web.Response(status=307, text=(CASES / "rm/standby-3x-307.body.txt").read_text())
        if f == "standby-200":
            return web.Response(status=200, text=(CASES / "rm/standby-2x-200.body.txt").read_text(),
                                content_type="text/plain", headers={"Refresh": "3; url=http://rm1" + path})
        if f == "no-active":
            return web.Response(status=200, text=(CASES / "rm/no-active-rm.body.txt").read_text(),
                                content_type="text/plain")
        if f == "html":
            return web.Response(status=200, text="<html><body><h1>Proxy error</h1></body></html>",
                                content_type="text/html")
        if f == "truncated":
            return web.Response(status=200, body=b'{"apps":{"app":[{"id":"application_17',
                                content_type="application/json")
        if f == "empty":
            return web.Response(status=200, body=b"", content_type="application/json")
        if f == "500":
            return web.Response(status=500, text="java.lang.NullPointerException", content_type="text/plain")
        raise AssertionError(f"unknown fault {f}")

    async def _info(self, request: web.Request) -> web.Response:
        await self._arrived(request)
        if self.fault in ("html", "truncated", "empty", "500"):
            return self._fault(request.path)
        state = "STANDBY" if self.fault and self.fault.startswith(("standby", "no-active")) else self.ha_state
        if state == "STANDBY":  # the real shape of a standby's answer, with this RM's id
            body = json.loads((CASES / "rm/cluster-info-standby.json").read_bytes())
            body["clusterInfo"].update(id=self.cluster_id, startedOn=self.cluster_id, state=self.rm_state)
            return web.json_response(body)
        return web.json_response({"clusterInfo": {"id": self.cluster_id, "startedOn": self.cluster_id,
                                                  "state": self.rm_state, "haState": state,
                                                  "resourceManagerVersion": "3.4.1"}})

    async def _apps(self, request: web.Request) -> web.Response:
        await self._arrived(request)
        faulty = self._fault(request.path)
        if faulty is not None:
            return faulty
        unknown = [d for d in request.query.get("deSelects", "").split(",") if d and self.deselects_known
                   and d not in self.deselects_known]
        if unknown:
            return web.json_response({"RemoteException": {
                "exception": "BadRequestException",
                "message": f"java.lang.Exception: Invalid deSelects string {unknown[0]} specified. It should be one "
                           f"of [{', '.join(self.deselects_known)}]",
                "javaClassName": "org.apache.hadoop.yarn.webapp.BadRequestException"}}, status=400)
        states = set(request.query.get("states", "").split(",")) - {""}
        since = int(request.query.get("finishedTimeBegin", "0"))
        selected = [a for a in self._served().values()
                    if (not states or a["state"] in states)
                    and (a["state"] not in TERMINAL or a["finishedTime"] >= since)]
        body = {"apps": {"app": selected}} if selected else {"apps": None}
        separators = (",", ":") if self.compact else (", ", ": ")
        return web.Response(body=json.dumps(body, separators=separators), content_type="application/json")

    async def _one(self, request: web.Request) -> web.Response:
        await self._arrived(request)
        faulty = self._fault(request.path)
        if faulty is not None:
            return faulty
        app = self._served().get(request.match_info["app_id"])
        if app is None:
            return web.Response(status=404, body=(CASES / "rm/not-found.json").read_bytes(),
                                content_type="application/json")
        return web.json_response({"app": app})


@dataclass
class HaPair:
    """Two RMs over one state store (one ``apps`` dict): the active one serves it, the other
    answers as a standby in the shape of ``flip``. Each RM has its own clusterInfo.id, as real
    ones do (the id is the RM process's start time), so a flip also changes the id seen."""

    rms: list[ScriptedRM]
    active: int = 0
    flips: int = 0
    #: Length of the journal at each flip: what came after is the collector's reaction.
    flip_marks: list[int] = field(default_factory=list)

    def __post_init__(self) -> None:
        shared, journal = self.rms[0].apps, self.rms[0].journal
        for i, rm in enumerate(self.rms):
            rm.apps, rm.journal, rm.name = shared, journal, f"rm{i + 1}"
            rm.ha_state = "ACTIVE" if i == self.active else "STANDBY"
            rm.fault = None if i == self.active else "standby-307"

    @property
    def current(self) -> ScriptedRM:
        return self.rms[self.active]

    @property
    def journal(self) -> list[tuple[str, str]]:
        return self.rms[0].journal

    def put(self, app_id: str, state: str, **fields) -> None:
        self.current.put(app_id, state, **fields)

    def flip(self, shape: str, *, mid_cycle: bool = False) -> None:
        """The active RM turns standby (answering in ``shape``) and the other takes over. With
        ``mid_cycle`` this happens when the active RM is next asked for apps: the collector has
        just seen it ACTIVE in /cluster/info and gets a standby answer to its next request."""
        if not mid_cycle:
            self._flip(shape)
            return
        old = self.current

        def on_request(path: str) -> None:
            if path.startswith("/ws/v1/cluster/apps"):
                old.on_request = None
                self._flip(shape)

        old.on_request = on_request

    def no_active(self) -> None:
        """A failover in progress: neither RM is active; both say so."""
        for rm in self.rms:
            rm.ha_state, rm.fault = "STANDBY", "no-active"

    def activate(self, index: int, standby_shape: str = "standby-307") -> None:
        """RM ``index`` becomes the active one; the other answers as a standby in ``standby_shape``."""
        for i, rm in enumerate(self.rms):
            rm.ha_state, rm.fault = ("ACTIVE", None) if i == index else ("STANDBY", standby_shape)
        self.active = index
        self.flips += 1
        self.flip_marks.append(len(self.journal))

    def _flip(self, shape: str) -> None:
        self.activate(1 - self.active, shape)
