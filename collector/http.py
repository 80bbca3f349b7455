"""The one HTTP layer every peer client goes through.

It turns transport trouble and odd answers into a small set of typed errors, so that
clients above it (ResourceManager, history servers, WebHDFS) only decide what an error
*means* for them (fail over, retry later, give up), never how it was detected.
"""

from __future__ import annotations

import asyncio
import random
import time
from collections.abc import Mapping
from dataclasses import dataclass
from urllib.parse import urlsplit

import aiohttp
import structlog

from .metrics import METRICS, HttpErrorKind, Metrics, PeerLabel

log = structlog.get_logger(__name__)

#: Bodies larger than this are refused rather than buffered (a 100k-app /apps answer
#: of Hadoop 3 is roughly 150 MB; the default leaves room for that).
DEFAULT_MAX_BODY_BYTES = 512 * 1024 * 1024
_JOIN_IN_THREAD = 8 * 1024 * 1024


class PeerError(Exception):
    """Anything that went wrong talking to a peer. ``url`` is safe to log (no secrets)."""

    def __init__(self, url: str, message: str) -> None:
        super().__init__(f"{message} ({url})")
        self.url = url
        self.message = message


class PeerUnreachable(PeerError):
    """Connection refused, reset, DNS failure or timeout: worth retrying."""

    def __init__(self, url: str, message: str, kind: HttpErrorKind = "connection") -> None:
        super().__init__(url, message)
        self.kind = kind


class PeerHTTPError(PeerError):
    """An HTTP status the caller did not expect."""

    def __init__(self, url: str, status: int, body_excerpt: str) -> None:
        super().__init__(url, f"HTTP {status}: {body_excerpt}" if body_excerpt else f"HTTP {status}")
        self.status = status
        self.body_excerpt = body_excerpt


class BodyTooLarge(PeerError):
    """The answer exceeded the configured response-size limit."""


@dataclass(frozen=True, slots=True)
class Response:
    url: str
    status: int
    headers: Mapping[str, str]
    body: bytes

    @property
    def content_type(self) -> str:
        return self.headers.get("Content-Type", "").split(";", 1)[0].strip().lower()

    def excerpt(self, limit: int = 160) -> str:
        """A short single-line preview of the body, for error messages."""
        text = self.body[:limit].decode("utf-8", "replace")
        return " ".join(text.split())


@dataclass(frozen=True, slots=True)
class RetryPolicy:
    attempts: int = 3
    base_delay: float = 0.5
    max_delay: float = 10.0

    def delay(self, attempt: int) -> float:
        """Full-jitter exponential backoff (attempt counts from 1)."""
        return random.uniform(0, min(self.max_delay, self.base_delay * 2 ** (attempt - 1)))


class HttpPeer:
    """An aiohttp session for one peer (one cluster's RMs, one history server, ...).

    ``get`` retries transport errors and 5xx answers with jittered backoff and returns
    every other answer, redirects included (a 307 from a standby RM is information, not
    something to follow blindly).

    With a ``label``, every exchange (each retry too) is counted and timed in ``metrics``
    under the label's cluster and peer kind and the path's endpoint template.
    """

    def __init__(
        self,
        *,
        timeout: float = 30.0,
        connect_timeout: float = 5.0,
        user_name: str | None = None,
        max_body_bytes: int = DEFAULT_MAX_BODY_BYTES,
        retry: RetryPolicy = RetryPolicy(),
        connections_per_host: int = 4,
        verify_tls: bool = True,
        label: PeerLabel | None = None,
        metrics: Metrics = METRICS,
    ) -> None:
        self._timeout = aiohttp.ClientTimeout(total=timeout, sock_connect=connect_timeout)
        self._user_name = user_name
        self._max_body = max_body_bytes
        self._retry = retry
        self._connections_per_host = connections_per_host
        self._verify_tls = verify_tls
        self._session: aiohttp.ClientSession | None = None
        self._label = label
        self._metrics = metrics

    def _client(self) -> aiohttp.ClientSession:
        if self._session is None or self._session.closed:
            connector = aiohttp.TCPConnector(
                limit_per_host=self._connections_per_host,
                ssl=None if self._verify_tls else False,
            )
            self._session = aiohttp.ClientSession(
                timeout=self._timeout,
                connector=connector,
                headers={"Accept": "application/json", "Accept-Encoding": "gzip, deflate"},
                raise_for_status=False,
            )
        return self._session

    async def close(self) -> None:
        if self._session is not None:
            await self._session.close()
            self._session = None

    async def get(self, url: str, params: Mapping[str, str] | None = None) -> Response:
        return await self.request("GET", url, params=params)

    async def request(
        self,
        method: str,
        url: str,
        *,
        params: Mapping[str, str] | None = None,
        json_body: object | None = None,
    ) -> Response:
        query = dict(params or {})
        if self._user_name and "user.name" not in query:
            query["user.name"] = self._user_name
        attempt = 0
        while True:
            attempt += 1
            try:
                response = await self._measured(method, url, query, json_body)
            except PeerUnreachable as exc:
                if attempt >= self._retry.attempts:
                    raise
                log.debug("http.retry", url=url, attempt=attempt, error=exc.message)
            else:
                if response.status < 500 or attempt >= self._retry.attempts:
                    return response
                log.debug("http.retry", url=url, attempt=attempt, status=response.status)
            await asyncio.sleep(self._retry.delay(attempt))

    async def _measured(
        self, method: str, url: str, query: Mapping[str, str], json_body: object | None
    ) -> Response:
        """``_once``, counted and timed when this peer has a label (a cancelled one is not)."""
        if self._label is None:
            return await self._once(method, url, query, json_body)
        started = time.monotonic()
        try:
            response = await self._once(method, url, query, json_body)
        except (PeerUnreachable, BodyTooLarge) as exc:
            self._done(url, started, exc.kind if isinstance(exc, PeerUnreachable) else "too_large")
            raise
        status = response.status
        self._done(url, started, "http_5xx" if status >= 500 else "http_4xx" if status >= 400 else None)
        return response

    def _done(self, url: str, started: float, error: HttpErrorKind | None) -> None:
        assert self._label is not None
        self._metrics.request_done(self._label, urlsplit(url).path, time.monotonic() - started, error)

    async def _once(
        self, method: str, url: str, query: Mapping[str, str], json_body: object | None
    ) -> Response:
        try:
            async with self._client().request(
                method, url, params=query, json=json_body, allow_redirects=False
            ) as resp:
                declared = resp.content_length
                if declared is not None and declared > self._max_body:
                    raise BodyTooLarge(url, f"response of {declared} bytes exceeds the limit of {self._max_body}")
                chunks: list[bytes] = []
                size = 0
                async for chunk in resp.content.iter_chunked(1 << 20):
                    size += len(chunk)
                    if size > self._max_body:
                        raise BodyTooLarge(url, f"response exceeds the limit of {self._max_body} bytes")
                    chunks.append(chunk)
                # Joining a large body into one buffer takes a while (fresh pages): bytes.join lets
                # go of the GIL for that, so it runs in a thread and the event loop keeps going.
                body = b"".join(chunks) if size < _JOIN_IN_THREAD else await asyncio.to_thread(b"".join, chunks)
                return Response(str(resp.url), resp.status, resp.headers, body)
        except TimeoutError:
            raise PeerUnreachable(url, "timed out", "timeout") from None
        except aiohttp.ClientPayloadError as exc:
            raise PeerUnreachable(url, f"truncated response: {exc}", "truncated") from None
        except aiohttp.ClientError as exc:
            raise PeerUnreachable(url, f"{type(exc).__name__}: {exc}") from None


def json_problem(resp: Response, peer_name: str) -> str | None:
    """Why ``resp`` is not a JSON answer to parse (one line), or None when it is."""
    if resp.status != 200:
        return f"{peer_name} answered HTTP {resp.status}: {resp.excerpt()}"
    if resp.content_type != "application/json":
        return f"{peer_name} answered non-JSON ({resp.content_type or 'no content type'}): {resp.excerpt()!r}"
    return None
