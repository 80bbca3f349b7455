from __future__ import annotations

import os

import pytest
from aiohttp.test_utils import TestServer
from hypothesis import settings


class Servers:
    """Starts scripted peers (anything with ``app()`` and ``url``) on 127.0.0.1. A peer can be
    stopped (connection refused) and started again on the same port, like a restarted daemon."""

    def __init__(self) -> None:
        self._running: dict[int, TestServer] = {}
        self._ports: dict[int, int] = {}

    async def __call__(self, thing, port: int | None = None):
        server = TestServer(thing.app(), host="127.0.0.1", port=port)
        await server.start_server()
        thing.url = str(server.make_url("")).rstrip("/")
        self._running[id(thing)] = server
        self._ports[id(thing)] = server.port
        return thing

    async def stop(self, thing) -> None:
        await self._running.pop(id(thing)).close()

    async def restart(self, thing):
        return await self(thing, port=self._ports[id(thing)])

    async def close(self) -> None:
        for server in self._running.values():
            await server.close()
        self._running.clear()


@pytest.fixture
async def serve():
    """``await serve(peer)`` starts a scripted peer; ``serve.stop``/``serve.restart`` take it down
    and up again on the same port. All are closed after the test."""
    servers = Servers()
    yield servers
    await servers.close()


# Property-based tests (test_properties_*.py): random examples on a workstation, a fixed
# (derandomized) sequence in CI so that a run is reproducible; both fail on the same bugs.
# HYPOTHESIS_PROFILE=ci|dev overrides.
settings.register_profile("dev", max_examples=150, deadline=None)
settings.register_profile("ci", max_examples=200, deadline=None, derandomize=True, database=None,
                          print_blob=True)
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE") or ("ci" if os.environ.get("CI") else "dev"))
