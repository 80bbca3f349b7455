"""The shared HTTP layer against real local HTTP servers: gzip, size limit, retries, typed errors."""

from __future__ import annotations

import gzip
import socket

import pytest
from aiohttp import web
from aiohttp.test_utils import TestServer

from collector.http import BodyTooLarge, HttpPeer, PeerUnreachable, RetryPolicy


@pytest.fixture
async def server():
    servers = []

    async def start(app: web.Application) -> str:
        srv = TestServer(app, host="127.0.0.1")
        await srv.start_server()
        servers.append(srv)
        return str(srv.make_url("")).rstrip("/")

    yield start
    for srv in servers:
        await srv.close()


async def test_gzip_and_user_name(server):
    seen = {}

    async def handler(request: web.Request) -> web.Response:
        seen["query"] = dict(request.query)
        seen["encoding"] = request.headers.get("Accept-Encoding")
        return web.Response(body=gzip.compress(b'{"ok":1}'), headers={"Content-Encoding": "gzip"},
                            content_type="application/json")

    app = web.Application()
    app.router.add_get("/x", handler)
    base = await server(app)
    peer = HttpPeer(user_name="etl")
    resp = await peer.get(base + "/x", {"a": "1"})
    await peer.close()
    assert resp.body == b'{"ok":1}' and resp.content_type == "application/json"
    assert seen["query"] == {"a": "1", "user.name": "etl"}
    assert "gzip" in seen["encoding"]


async def test_response_size_limit(server):
    async def handler(request: web.Request) -> web.StreamResponse:
        resp = web.StreamResponse()  # chunked: no Content-Length to refuse up front
        await resp.prepare(request)
        for _ in range(20):
            await resp.write(b"x" * 1024)
        await resp.write_eof()
        return resp

    app = web.Application()
    app.router.add_get("/big", handler)
    base = await server(app)
    peer = HttpPeer(max_body_bytes=4096)
    with pytest.raises(BodyTooLarge, match="exceeds the limit"):
        await peer.get(base + "/big")
    await peer.close()


async def test_5xx_is_retried_then_returned(server):
    calls = []

    async def handler(request: web.Request) -> web.Response:
        calls.append(1)
        if len(calls) < 3:
            return web.Response(status=503, text="busy")
        return web.json_response({"ok": True})

    app = web.Application()
    app.router.add_get("/flaky", handler)
    base = await server(app)
    peer = HttpPeer(retry=RetryPolicy(attempts=3, base_delay=0.01))
    resp = await peer.get(base + "/flaky")
    await peer.close()
    assert resp.status == 200 and len(calls) == 3


async def test_connection_refused_is_unreachable_after_retries():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]  # closed again: nothing listens there
    peer = HttpPeer(retry=RetryPolicy(attempts=2, base_delay=0.01))
    with pytest.raises(PeerUnreachable) as info:
        await peer.get(f"http://127.0.0.1:{port}/ws/v1/cluster/info")
    await peer.close()
    assert f"127.0.0.1:{port}" in str(info.value)


async def test_slow_peer_times_out(server):
    import asyncio

    async def handler(request: web.Request) -> web.Response:
        await asyncio.sleep(2)
        return web.json_response({})

    app = web.Application()
    app.router.add_get("/slow", handler)
    base = await server(app)
    peer = HttpPeer(timeout=0.2, retry=RetryPolicy(attempts=1))
    with pytest.raises(PeerUnreachable, match="timed out"):
        await peer.get(base + "/slow")
    await peer.close()


async def test_redirects_are_returned_not_followed(server):
    async def handler(request: web.Request) -> web.Response:
        return web.Response(status=307, headers={"Location": "http://127.0.0.1:1/elsewhere"})

    app = web.Application()
    app.router.add_get("/r", handler)
    base = await server(app)
    peer = HttpPeer()
    resp = await peer.get(base + "/r")
    await peer.close()
    assert resp.status == 307 and resp.headers["Location"].endswith("/elsewhere")
