"""The service loop: per cluster, poll -> events -> sink -> commit, until asked to stop.

State is committed only after the sink acknowledged every event derived from it; a failed
cycle leaves the state untouched, so the next cycle derives the same events (same ids).
"""

from __future__ import annotations

import asyncio
import random
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

import structlog

from . import schemas
from .config import ClusterConfig, Config
from .events import Event, EventContext, transition_event
from .http import HttpPeer, PeerError, RetryPolicy
from .rm_client import ResourceManager
from .rm_models import ParseError
from .rm_poller import PollResult, RmPoller
from .sinks import Sink, SinkError
from .tracker import TrackerState, commit, prune

log = structlog.get_logger(__name__)


def wall_ms() -> int:
    return time.time_ns() // 1_000_000


@dataclass
class ClusterStats:
    cycles: int = 0
    failures: int = 0
    events: int = 0
    last_success_ms: int | None = None


@dataclass
class ClusterWorker:
    cfg: ClusterConfig
    sink: Sink
    validate: bool = True
    clock: Callable[[], int] = wall_ms
    state: TrackerState = field(default_factory=TrackerState)
    stats: ClusterStats = field(default_factory=ClusterStats)

    def __post_init__(self) -> None:
        poll = self.cfg.poll
        self.peer = HttpPeer(
            timeout=float(poll.timeout),
            user_name=self.cfg.auth.user_name,
            verify_tls=self.cfg.auth.verify_tls,
            retry=RetryPolicy(attempts=3, base_delay=0.5, max_delay=5.0),
        )
        self.rm = ResourceManager(self.cfg.resourcemanager.urls, self.peer, cluster=self.cfg.name)  # type: ignore[arg-type]
        self.poller = RmPoller(
            self.rm,
            self.state,
            overlap_ms=int(float(poll.overlap) * 1000),
            backfill_ms=int(float(poll.backfill) * 1000),
        )

    async def cycle(self) -> int:
        """One poll; returns how many events were delivered. Raises on any failure."""
        observed_at = self.clock()
        result: PollResult = await self.poller.poll(observed_at)
        ctx = EventContext(self.cfg.name, self.state.rm_cluster_id, self.cfg.diagnostics_limit)
        events = [transition_event(ctx, t, observed_at) for t in result.transitions]
        events = self._checked(events)
        await self.sink.send(events, self.cfg.topics)
        commit(self.state, result.transitions)
        prune(self.state, int(float(self.cfg.poll.overlap) * 1000))
        self.stats.cycles += 1
        self.stats.events += len(events)
        self.stats.last_success_ms = observed_at
        if events:
            log.info("poll.delivered", cluster=self.cfg.name, events=len(events), apps_seen=result.apps_seen)
        return len(events)

    def _checked(self, events: Sequence[Event]) -> list[Event]:
        if not self.validate:
            return list(events)
        good = []
        for event in events:
            try:
                schemas.validate(event.envelope)
            except schemas.SchemaViolation as exc:
                # A bug of ours: sending it would break consumers' contract; say so loudly.
                log.error("event.schema_violation", cluster=self.cfg.name, error=str(exc))
                continue
            good.append(event)
        return good

    async def run(self, stop: asyncio.Event) -> None:
        interval = float(self.cfg.poll.interval)
        max_backoff = float(self.cfg.poll.max_backoff)
        failures = 0
        while not stop.is_set():
            started = time.monotonic()
            try:
                await self.cycle()
                if failures:
                    log.info("poll.recovered", cluster=self.cfg.name, after_failures=failures)
                failures = 0
                wait = max(0.0, interval - (time.monotonic() - started))
            except (PeerError, ParseError, SinkError) as exc:
                failures += 1
                self.stats.failures += 1
                wait = min(max_backoff, interval * 2 ** min(failures - 1, 6)) * random.uniform(0.5, 1.0)
                log.warning(
                    "poll.failed",
                    cluster=self.cfg.name,
                    error_type=type(exc).__name__,
                    error=str(exc),
                    consecutive=failures,
                    retry_in_s=round(wait, 1),
                )
            except Exception:  # the loop must outlive any bug in one cycle
                failures += 1
                self.stats.failures += 1
                wait = min(max_backoff, interval * 2 ** min(failures - 1, 6))
                log.exception("poll.crashed", cluster=self.cfg.name, retry_in_s=round(wait, 1))
            try:
                await asyncio.wait_for(stop.wait(), timeout=wait)
            except TimeoutError:
                pass

    async def close(self) -> None:
        await self.peer.close()


async def run_service(cfg: Config, sink: Sink, stop: asyncio.Event) -> list[ClusterWorker]:
    """Run every cluster until ``stop`` is set; a cycle in progress finishes (and its events
    are flushed) before returning."""
    workers = [ClusterWorker(c, sink, cfg.validate_events) for c in cfg.clusters]
    await sink.start()
    log.info("collector.started", clusters=[c.name for c in cfg.clusters])
    try:
        async with asyncio.TaskGroup() as group:
            for worker in workers:
                group.create_task(worker.run(stop), name=f"cluster:{worker.cfg.name}")
    finally:
        for worker in workers:
            await worker.close()
        await sink.close()
        log.info("collector.stopped", events=sum(w.stats.events for w in workers))
    return workers
