"""Scripted JobHistory and Spark History Servers (aiohttp) that replay tests/cases/jhs and
tests/cases/shs, for the shapes and delays a real server cannot be made to produce on demand."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field
from pathlib import Path

from aiohttp import web

CASES = Path(__file__).parent / "cases"


def case(name: str) -> bytes:
    return (CASES / name).read_bytes()


@dataclass
class ScriptedHistory:
    """Serves ``routes[path] = (status, content_type, body)``; ``not_found_first[path] = n``
    answers 404 for the first n requests of that path (history not there yet)."""

    routes: dict[str, tuple[int, str, bytes]] = field(default_factory=dict)
    not_found_first: dict[str, int] = field(default_factory=dict)
    delay: dict[str, float] = field(default_factory=dict)  # seconds before answering a path
    requests: list[str] = field(default_factory=list)
    url: str = ""

    def json(self, path: str, body: bytes, status: int = 200) -> None:
        self.routes[path] = (status, "application/json", body)

    def text(self, path: str, body: bytes, status: int) -> None:
        self.routes[path] = (status, "text/plain", body)

    def app(self) -> web.Application:
        application = web.Application()
        application.router.add_get("/{tail:.*}", self._serve)
        return application

    async def _serve(self, request: web.Request) -> web.Response:
        path = request.path
        self.requests.append(path)
        if path in self.delay:
            await asyncio.sleep(self.delay[path])
        if self.not_found_first.get(path, 0) > 0:
            self.not_found_first[path] -= 1
            return web.Response(status=404, body=case("shs/not-found.body.txt"), content_type="text/plain")
        if path not in self.routes:
            return web.Response(status=404, body=case("jhs/job-not-found.json"), content_type="application/json")
        status, content_type, body = self.routes[path]
        return web.Response(status=status, body=body, content_type=content_type)
