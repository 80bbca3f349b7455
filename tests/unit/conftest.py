from __future__ import annotations

import pytest
from aiohttp.test_utils import TestServer


@pytest.fixture
async def serve():
    """Start a scripted peer (anything with ``app()`` and ``url``) on 127.0.0.1; closed after."""
    started = []

    async def start(thing):
        server = TestServer(thing.app(), host="127.0.0.1")
        await server.start_server()
        thing.url = str(server.make_url("")).rstrip("/")
        started.append(server)
        return thing

    yield start
    for server in started:
        await server.close()
