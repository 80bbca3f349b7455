"""WebHDFS client for content summaries: NameNode HA failover, rate limiting, clear errors."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Sequence
from typing import Any
from urllib.parse import quote

import structlog

from .http import HttpPeer, PeerError, PeerUnreachable, json_problem
from .snapshot_models import parse_content_summary, remote_exception

log = structlog.get_logger(__name__)


class HdfsPathError(PeerError):
    """The path itself is the problem (does not exist, not allowed): other paths go on."""


class NoActiveNameNode(PeerError):
    """No configured NameNode answered as active."""


class WebHdfs:
    def __init__(self, urls: Sequence[str], peer: HttpPeer, *, concurrency: int = 2, spacing_s: float = 0.2) -> None:
        self.urls = [u.rstrip("/") for u in urls]
        self.peer = peer
        self.active_url = self.urls[0]
        self.failovers = 0
        self._slots = asyncio.Semaphore(concurrency)
        self._spacing = spacing_s
        self._next_start = 0.0
        self._pace = asyncio.Lock()

    async def content_summary(self, path: str) -> tuple[dict[str, Any], str]:
        """The usage of ``path`` and the NameNode that answered."""
        async with self._slots:
            await self._paced()
            reasons: list[str] = []
            for base in [self.active_url, *[u for u in self.urls if u != self.active_url]]:
                url = f"{base}/webhdfs/v1{quote(path)}"
                try:
                    resp = await self.peer.get(url, {"op": "GETCONTENTSUMMARY"})
                except PeerUnreachable as exc:
                    reasons.append(f"{base}: {exc.message}")
                    continue
                error = remote_exception(resp.body) if resp.status != 200 else None
                if error and error[0] == "StandbyException":
                    reasons.append(f"{base}: standby")
                    continue
                if error:
                    raise HdfsPathError(url, f"{path}: {error[0]}: {error[1]}")
                if (problem := json_problem(resp, "NameNode")) is not None:
                    raise HdfsPathError(url, f"{path}: {problem}")
                if base != self.active_url:
                    log.info("hdfs.failover", namenode=base, reasons=reasons)
                    self.active_url = base
                    self.failovers += 1
                return parse_content_summary(resp.body), base
            raise NoActiveNameNode(self.urls[0], "no active NameNode: " + "; ".join(reasons))

    async def _paced(self) -> None:
        """At least ``spacing`` between two request starts: a busy NameNode is not hammered."""
        async with self._pace:
            wait = self._next_start - time.monotonic()
            if wait > 0:
                await asyncio.sleep(wait)
            self._next_start = time.monotonic() + self._spacing
