from __future__ import annotations

import os

import pytest
from aiohttp.test_utils import TestServer
from hypothesis import settings


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


# Property-based tests (test_properties_*.py): random examples on a workstation, a fixed
# (derandomized) sequence in CI so that a run is reproducible; both fail on the same bugs.
# HYPOTHESIS_PROFILE=ci|dev overrides.
settings.register_profile("dev", max_examples=150, deadline=None)
settings.register_profile("ci", max_examples=200, deadline=None, derandomize=True, database=None,
                          print_blob=True)
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE") or ("ci" if os.environ.get("CI") else "dev"))
