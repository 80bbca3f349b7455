"""The self-observation server of ``run``: ``/metrics``, ``/healthz`` and ``/readyz``.

- ``/metrics``: the collector's Prometheus metrics (``collector.metrics``), text format.
- ``/healthz``: 200 whenever the event loop answers; the process is alive.
- ``/readyz``: 200 when every cluster polled its ResourceManager successfully recently
  (within ``health.stale_after_s(poll interval)``) and Kafka takes events; else 503 with a
  short JSON body naming what is not ready.

What readiness reads is kept to two small protocols (``Polled``, ``KafkaState``), and the
decision is the pure function ``assess``; the server only asks a callable for the report.
It binds to 127.0.0.1 unless configured otherwise: it has no authentication.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Protocol

import orjson
import structlog
from aiohttp import web

from .metrics import CONTENT_TYPE, Metrics

log = structlog.get_logger(__name__)


class Polled(Protocol):
    """What readiness needs of one cluster's worker."""

    @property
    def cluster_name(self) -> str: ...

    @property
    def poll_interval_s(self) -> float: ...

    @property
    def last_poll_ok_ms(self) -> int | None:
        """Wall-clock ms of the end of the last successful ResourceManager poll; None before the first."""
        ...


class KafkaState(Protocol):
    @property
    def problem(self) -> str | None:
        """Why Kafka does not take events right now (one line); None while it does."""
        ...


@dataclass(frozen=True, slots=True)
class Readiness:
    #: What is not ready and why: ``cluster/<name>`` or ``kafka`` -> one line.
    problems: dict[str, str] = field(default_factory=dict)

    @property
    def ready(self) -> bool:
        return not self.problems

    def body(self) -> bytes:
        return orjson.dumps({"ready": self.ready, "problems": self.problems})


def assess(
    clusters: Sequence[Polled],
    kafka: KafkaState,
    now_ms: int,
    stale_after_s: Callable[[float], float],
) -> Readiness:
    """Ready when every cluster's last successful poll is at most ``stale_after_s(its interval)``
    old and Kafka reports no problem."""
    problems: dict[str, str] = {}
    for cluster in clusters:
        last = cluster.last_poll_ok_ms
        limit = stale_after_s(cluster.poll_interval_s)
        if last is None:
            problems[f"cluster/{cluster.cluster_name}"] = "no successful poll yet"
        elif (age := (now_ms - last) / 1000) > limit:
            problems[f"cluster/{cluster.cluster_name}"] = f"last successful poll {age:.0f}s ago (limit {limit:.0f}s)"
    if kafka.problem is not None:
        problems["kafka"] = kafka.problem
    return Readiness(problems)


class HealthServer:
    def __init__(self, host: str, port: int, metrics: Metrics, readiness: Callable[[], Readiness]) -> None:
        self._host = host
        self._port = port
        self._metrics = metrics
        self._readiness = readiness
        self._runner: web.AppRunner | None = None
        self.port: int | None = None  # the bound port, once started

    async def start(self) -> int:
        """Listen; returns the bound port (the configured one, or the free one picked for 0).
        OSError when the address is taken."""
        app = web.Application()
        app.router.add_get("/metrics", self._metrics_page)
        app.router.add_get("/healthz", self._healthz)
        app.router.add_get("/readyz", self._readyz)
        runner = web.AppRunner(app, access_log=None)  # scrapes every few seconds: no access log
        await runner.setup()
        try:
            await web.TCPSite(runner, self._host, self._port).start()
        except OSError:
            await runner.cleanup()
            raise
        self._runner = runner
        self.port = int(runner.addresses[0][1])
        log.info("health.listening", url=f"http://{self._host}:{self.port}", endpoints=["/metrics", "/healthz",
                                                                                        "/readyz"])
        return self.port

    async def stop(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None

    async def _metrics_page(self, request: web.Request) -> web.Response:
        return web.Response(body=self._metrics.render(), headers={"Content-Type": CONTENT_TYPE})

    async def _healthz(self, request: web.Request) -> web.Response:
        # Answering at all is the proof: this runs on the event loop the service runs on.
        return web.Response(body=b'{"alive": true}', content_type="application/json")

    async def _readyz(self, request: web.Request) -> web.Response:
        try:
            report = self._readiness()
        except Exception as exc:  # a bug in the report must read as "not ready", not as a crash
            log.exception("health.readiness_failed")
            report = Readiness({"collector": f"readiness check failed: {exc!r}"})
        return web.Response(body=report.body(), status=200 if report.ready else 503,
                            content_type="application/json")
