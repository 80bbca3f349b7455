"""A scripted ResourceManager (aiohttp) for what a real RM cannot be made to do on demand:
standby answers, failover, malformed bodies. It serves apps from a dict the test edits."""

from __future__ import annotations

import json
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
    #: When set, the only deSelects values this RM knows (an RM before YARN-6871 knows resourceRequests).
    deselects_known: tuple[str, ...] = ()

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

    def _fault(self, path: str) -> web.Response | None:
        f = self.fault
        if f is None:
            return None
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
        self.requests.append(request.path_qs)
        if self.fault in ("html", "truncated", "empty", "500"):
            return self._fault(request.path)
        state = "STANDBY" if self.fault and self.fault.startswith(("standby", "no-active")) else self.ha_state
        return web.json_response({"clusterInfo": {"id": self.cluster_id, "startedOn": self.cluster_id,
                                                  "state": "STARTED", "haState": state,
                                                  "resourceManagerVersion": "3.4.1"}})

    async def _apps(self, request: web.Request) -> web.Response:
        self.requests.append(request.path_qs)
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
        selected = [a for a in self.apps.values()
                    if (not states or a["state"] in states)
                    and (a["state"] not in TERMINAL or a["finishedTime"] >= since)]
        body = {"apps": {"app": selected}} if selected else {"apps": None}
        return web.Response(body=json.dumps(body), content_type="application/json")

    async def _one(self, request: web.Request) -> web.Response:
        self.requests.append(request.path_qs)
        faulty = self._fault(request.path)
        if faulty is not None:
            return faulty
        app = self.apps.get(request.match_info["app_id"])
        if app is None:
            return web.Response(status=404, body=(CASES / "rm/not-found.json").read_bytes(),
                                content_type="application/json")
        return web.json_response({"app": app})
