"""The service loops: per cluster, poll -> events -> sink -> commit, and enrich ended
applications -> finished events -> sink -> commit, until asked to stop.

State advances only for the events the sink acknowledged; whatever failed is derived again
in the next cycle, with the same ids.
"""

from __future__ import annotations

import asyncio
import random
import time
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass, field

import structlog

from . import enrichment, schemas
from .config import ClusterConfig, Config
from .enricher import Enricher
from .enrichment import Outcome, Pending, pending_for, rm_usage_final
from .events import (
    Event,
    EventContext,
    application_record,
    cluster_snapshot,
    finished_event,
    hdfs_snapshot,
    queue_snapshot,
    transition_event,
)
from .http import HttpPeer, PeerError, RetryPolicy
from .jhs_client import JobHistory
from .parsing import ParseError
from .rm_client import ResourceManager
from .rm_models import TERMINAL_STATES, RawApp
from .rm_poller import PollResult, RmPoller
from .shs_client import SparkHistory
from .sinks import Sink, SinkError
from .state_store import FileStore
from .tracker import TrackerState, Transition, commit, prune
from .webhdfs_client import NoActiveNameNode, WebHdfs

log = structlog.get_logger(__name__)

#: How often the enrichment queue is looked at (each entry keeps its own backoff).
ENRICH_TICK_S = 1.0
#: At most one warning per history server in this many seconds while it is in trouble.
HISTORY_WARN_S = 60.0


def wall_ms() -> int:
    return time.time_ns() // 1_000_000


@dataclass
class ClusterStats:
    events: int = 0  # delivered


@dataclass
class ClusterWorker:
    cfg: ClusterConfig
    sink: Sink
    validate: bool = True
    clock: Callable[[], int] = wall_ms
    state: TrackerState = field(default_factory=TrackerState)
    #: Ended applications waiting for their history server (plain data, like ``state``).
    pending: dict[str, Pending] = field(default_factory=dict)
    stats: ClusterStats = field(default_factory=ClusterStats)
    #: Where the state is checkpointed after each delivery; None keeps it in memory.
    store: FileStore | None = None
    #: Ignore an existing checkpoint (it is overwritten by the first save).
    fresh: bool = False

    def __post_init__(self) -> None:
        poll = self.cfg.poll
        if self.store is not None and not self.fresh:
            saved = self.store.load()  # CheckpointError: refuse to start rather than start from zero
            if saved is not None:
                self.state, self.pending = saved
                log.info("checkpoint.loaded", cluster=self.cfg.name, apps=len(self.state.apps),
                         pending=len(self.pending), watermark=self.state.watermark)
        self._peers: list[HttpPeer] = []
        self._tries: dict[str, asyncio.Task[Outcome]] = {}
        self._warned: dict[str, float] = {}
        self._undelivered: dict[str, bool] = {}
        self.rm = ResourceManager(self.cfg.resourcemanager.urls, self._peer(), cluster=self.cfg.name)  # type: ignore[arg-type]
        self.poller = RmPoller(
            self.rm,
            self.state,
            overlap_ms=int(float(poll.overlap) * 1000),
            backfill_ms=int(float(poll.backfill) * 1000),
        )
        enrich = self.cfg.enrichment
        jhs, shs = self.cfg.jobhistory, self.cfg.spark_history
        self.enricher = Enricher(
            JobHistory(jhs.url, self._peer(1), concurrency=jhs.concurrency, include_counters=enrich.include_counters)
            if jhs
            else None,
            SparkHistory(shs.url, self._peer(1), concurrency=shs.concurrency) if shs else None,
        )
        hdfs = self.cfg.hdfs
        self.hdfs = (
            WebHdfs(hdfs.namenode_urls, self._peer(1), concurrency=hdfs.concurrency, spacing_s=float(hdfs.spacing))  # type: ignore[arg-type]
            if hdfs
            else None
        )
        self.retry = enrichment.RetryPolicy(
            first_delay_ms=int(float(enrich.first_retry) * 1000),
            max_delay_ms=int(float(enrich.max_retry_interval) * 1000),
            max_age_ms=int(float(enrich.max_age) * 1000),
        )

    def _peer(self, attempts: int = 3) -> HttpPeer:
        """One HTTP session per peer, all with the cluster's auth and timeouts. History
        servers get one attempt per request: their queue entry retries with its own backoff."""
        peer = HttpPeer(
            timeout=float(self.cfg.poll.timeout),
            user_name=self.cfg.auth.user_name,
            verify_tls=self.cfg.auth.verify_tls,
            retry=RetryPolicy(attempts=attempts, base_delay=0.5, max_delay=5.0),
        )
        self._peers.append(peer)
        return peer

    def _context(self) -> EventContext:
        return EventContext(self.cfg.name, self.state.rm_cluster_id, self.cfg.diagnostics_limit)

    async def cycle(self) -> int:
        """One poll; returns how many events were delivered. Raises on any failure, after
        committing exactly the transitions whose events Kafka acknowledged."""
        observed_at = self.clock()
        result: PollResult = await self.poller.poll(observed_at)
        ctx = self._context()
        pairs: list[tuple[Transition, Event]] = []
        for i, t in enumerate(result.transitions, 1):
            try:
                pairs.append((t, transition_event(ctx, t, observed_at)))
            except Exception as exc:  # one odd record must not hold up every other app
                log.warning("event.build_failed", cluster=self.cfg.name, app_id=t.app_id, error=repr(exc))
            if i % 500 == 0:
                await asyncio.sleep(0)  # thousands of changes: let other tasks run in between
        settled, failure = await self._deliver("poll", [event for _, event in pairs])
        done = [(t, event) for t, event in pairs if event.id in settled]
        commit(self.state, [t for t, _ in done])
        # Only now, with the end on Kafka, may its finished event follow (same key, later).
        for t, event in done:
            if t.app is not None and t.state in TERMINAL_STATES and t.app_id not in self.pending:
                self.pending[t.app_id] = pending_for(t.app, event.envelope["data"]["application"], observed_at)
        self._refresh_pending(result.view)
        await result.release()  # a 100k-app view freed at once would stall the event loop
        prune(self.state, int(float(self.cfg.poll.overlap) * 1000))
        self._checkpoint()
        self.stats.events += len(done)
        if failure is not None:
            raise failure
        if done:
            log.info("poll.delivered", cluster=self.cfg.name, events=len(done), apps_seen=result.apps_seen)
        return len(done)

    def _refresh_pending(self, view: Mapping[str, RawApp]) -> None:
        """Keep the RM's record of waiting applications current: right after FINISHED the
        ApplicationMaster may still run (RM state FINISHING) and its usage still grows."""
        limit = self.cfg.diagnostics_limit
        for app_id, p in self.pending.items():
            app = view.get(app_id)
            if app is not None and app.is_terminal and not p.rm_final:  # final figures do not change
                p.record = application_record(app, limit)
                p.rm_final = rm_usage_final(app)

    async def enrich_cycle(self, wait: bool = False) -> int:
        """Start a try for every ended application whose turn it is, and publish the finished
        events of the tries that are done and settled. A slow history server delays only its
        own applications: tries run as tasks and are collected on a later tick (``wait``
        collects all of them now, for ``once``). Returns how many events were delivered."""
        for p in enrichment.due(self.pending, self.clock()):
            if p.app_id not in self._tries:
                self._tries[p.app_id] = asyncio.create_task(self._try(p), name=f"enrich:{p.app_id}")
        if wait and self._tries:
            await asyncio.wait(self._tries.values())
        done_tries = {app_id: task for app_id, task in self._tries.items() if task.done()}
        for app_id in done_tries:
            del self._tries[app_id]
        now = self.clock()
        ctx = self._context()
        events: list[Event] = []
        for app_id, task in done_tries.items():
            p = self.pending.get(app_id)
            if p is None:
                continue
            outcome = task.result()
            if outcome.trouble:
                self._warn_history(outcome)
            final = enrichment.settle(p, outcome, now, self.retry)
            if final is None:
                log.debug("enrichment.waiting", cluster=self.cfg.name, app_id=app_id, reason=outcome.reason)
                continue
            events.append(finished_event(ctx, p, final, now))
        settled, failure = await self._deliver("enrich", events)
        delivered = 0
        for event in events:
            app_id = event.envelope["subject"]
            if event.id not in settled:
                if failure is None:  # it failed its schema (logged): try again later, not every tick
                    self.pending[app_id].next_try_ms = now + self.retry.max_delay_ms
                continue
            delivered += 1
            del self.pending[app_id]
            info = event.envelope["data"]["enrichment"]
            log.info(
                "enrichment.published",
                cluster=self.cfg.name,
                app_id=app_id,
                status=info["status"],
                reason=info["reason"],
                after_end_ms=info["after_end_ms"],
                attempts=info["attempts"],
            )
        if delivered:
            self._checkpoint()
        self.stats.events += delivered
        if failure is not None:
            raise failure
        return delivered

    def _checkpoint(self) -> None:
        """Save what Kafka has acknowledged; a restart resumes from here (same ids)."""
        if self.store is not None:
            self.store.save(self.state, self.pending)

    async def _try(self, p: Pending) -> Outcome:
        """One try; never raises, so one odd answer cannot stall the queue."""
        try:
            return await self.enricher.attempt(p)
        except Exception as exc:
            log.warning("enrichment.try_crashed", cluster=self.cfg.name, app_id=p.app_id, error=repr(exc))
            return enrichment.not_yet(f"unexpected error: {exc!r}", trouble=True)

    def _warn_history(self, outcome: Outcome) -> None:
        """One warning per history server and minute while it is down or answers nonsense."""
        server = (outcome.source or {}).get("server", "history")
        now = time.monotonic()
        if now - self._warned.get(server, -HISTORY_WARN_S) >= HISTORY_WARN_S:
            self._warned[server] = now
            log.warning("enrichment.history_unavailable", cluster=self.cfg.name, server=server, reason=outcome.reason)

    async def _deliver(self, loop: str, events: list[Event]) -> tuple[set[str], SinkError | None]:
        """Send the events that match their schema. Returns the ids acknowledged and the
        delivery failure, if any. An event that fails its schema is neither sent nor
        acknowledged: its application waits (and the error repeats) rather than being lost."""
        if not events:
            return set(), None
        valid = await self._checked(events)
        try:
            await self.sink.send(valid, self.cfg.topics)
        except SinkError as exc:
            self._undelivered[loop] = True
            return set(exc.delivered), exc
        self._undelivered[loop] = False
        return {e.id for e in valid}, None

    @property
    def undelivered(self) -> bool:
        """The last delivery of the poll or the enrich loop failed: those events are not on Kafka."""
        return any(self._undelivered.values())

    async def _checked(self, events: Sequence[Event]) -> list[Event]:
        if not self.validate:
            return list(events)
        good = []
        for event in events:
            await asyncio.sleep(0)  # a check takes ~1 ms: with thousands of events, let other tasks run
            try:
                schemas.validate(event.envelope)
            except schemas.SchemaViolation as exc:
                # A bug of ours: sending it would break consumers' contract; say so loudly.
                log.error("event.schema_violation", cluster=self.cfg.name, error=str(exc))
                continue
            good.append(event)
        return good

    async def cluster_snapshot(self) -> int:
        """``yarn.cluster.snapshot``: the RM's info and metrics now."""
        info, _ = await self.rm.cluster_info()
        metrics = await self.rm.cluster_metrics()
        event = cluster_snapshot(self._context(), info, metrics, self.clock())
        return await self._publish("snapshots", [event])

    async def queue_snapshot(self) -> int:
        """``yarn.queue.snapshot``: one event per scheduler queue, every queue at any depth."""
        info, _ = await self.rm.cluster_info()  # the id of the RM that answers, not the poll's
        queues = await self.rm.queues()
        taken = self.clock()
        ctx = EventContext(self.cfg.name, info.id, self.cfg.diagnostics_limit)
        return await self._publish("snapshots", [queue_snapshot(ctx, q.to_dict(), taken) for q in queues])

    async def hdfs_snapshot(self) -> int:
        """``hdfs.usage.snapshot`` per configured path; one bad path never stops the others."""
        assert self.hdfs is not None and self.cfg.hdfs is not None
        paths: list[str] = list(self.cfg.hdfs.paths)  # type: ignore[arg-type]
        taken = self.clock()
        # The first path alone: when no NameNode answers, the step fails once (warning,
        # backoff) instead of every path waiting out its timeout.
        first = await asyncio.gather(self.hdfs.content_summary(paths[0]), return_exceptions=True)
        if isinstance(first[0], NoActiveNameNode):
            raise first[0]
        rest = await asyncio.gather(*(self.hdfs.content_summary(p) for p in paths[1:]), return_exceptions=True)
        events = []
        for path, answer in zip(paths, first + rest, strict=True):
            if isinstance(answer, (PeerError, ParseError)):
                log.warning("hdfs.path_failed", cluster=self.cfg.name, path=path, error=str(answer))
            elif isinstance(answer, BaseException):
                raise answer
            else:
                usage, namenode = answer
                events.append(hdfs_snapshot(self.cfg.name, path, usage, namenode, taken))
        return await self._publish("snapshots", events)

    async def _publish(self, loop: str, events: list[Event]) -> int:
        settled, failure = await self._deliver(loop, events)
        if failure is not None:
            raise failure
        self.stats.events += len(settled)
        return len(settled)

    async def run(self, stop: asyncio.Event) -> None:
        """Poll, enrich and take snapshots until ``stop``; each loop finishes its cycle."""
        snapshots = self.cfg.snapshots
        async with asyncio.TaskGroup() as group:
            group.create_task(self._loop(stop, "poll", self.cycle, float(self.cfg.poll.interval)))
            group.create_task(self._loop(stop, "enrich", self.enrich_cycle, ENRICH_TICK_S))
            for name, step, interval in (
                ("cluster_snapshot", self.cluster_snapshot, snapshots.cluster_interval),
                ("queue_snapshot", self.queue_snapshot, snapshots.queue_interval),
                ("hdfs_snapshot", self.hdfs_snapshot, snapshots.hdfs_interval if self.hdfs else 0),
            ):
                if float(interval) > 0:
                    # a snapshot holds no state: at stop it is abandoned, not waited for
                    group.create_task(self._loop(stop, name, step, float(interval), abandon_on_stop=True))
        if self.pending and self.store is None:
            # Without a checkpoint these are lost with the process.
            log.warning("enrichment.pending_at_stop", cluster=self.cfg.name, count=len(self.pending))

    async def _loop(
        self,
        stop: asyncio.Event,
        name: str,
        step: Callable[[], Awaitable[int]],
        interval: float,
        abandon_on_stop: bool = False,
    ) -> None:
        max_backoff = float(self.cfg.poll.max_backoff)
        failures = 0
        while not stop.is_set():
            started = time.monotonic()
            try:
                if abandon_on_stop:
                    if not await _unless_stopped(step(), stop):
                        return
                else:
                    await step()
                if failures:
                    log.info(f"{name}.recovered", cluster=self.cfg.name, after_failures=failures)
                failures = 0
                wait = max(0.0, interval - (time.monotonic() - started))
            except (PeerError, ParseError, SinkError) as exc:
                failures += 1
                wait = min(max_backoff, interval * 2 ** min(failures - 1, 6)) * random.uniform(0.5, 1.0)
                log.warning(
                    f"{name}.failed",
                    cluster=self.cfg.name,
                    error_type=type(exc).__name__,
                    error=str(exc),
                    consecutive=failures,
                    retry_in_s=round(wait, 1),
                )
            except Exception:  # the loop must outlive any bug in one cycle
                failures += 1
                wait = min(max_backoff, interval * 2 ** min(failures - 1, 6))
                log.exception(f"{name}.crashed", cluster=self.cfg.name, retry_in_s=round(wait, 1))
            try:
                await asyncio.wait_for(stop.wait(), timeout=wait)
            except TimeoutError:
                pass

    async def close(self) -> None:
        for task in self._tries.values():
            task.cancel()
        await asyncio.gather(*self._tries.values(), return_exceptions=True)
        self._tries.clear()
        for peer in self._peers:
            await peer.close()


async def _unless_stopped(work: Awaitable[int], stop: asyncio.Event) -> bool:
    """Run ``work`` unless ``stop`` comes first (then cancel it); True when it completed."""
    task = asyncio.ensure_future(work)
    stopper = asyncio.ensure_future(stop.wait())
    await asyncio.wait({task, stopper}, return_when=asyncio.FIRST_COMPLETED)
    if task.done():
        stopper.cancel()
        task.result()  # raises what the step raised
        return True
    task.cancel()
    await asyncio.gather(task, return_exceptions=True)
    return False


def make_workers(cfg: Config, sink: Sink, *, fresh: bool = False) -> list[ClusterWorker]:
    """A worker per cluster, resumed from its checkpoint when state.directory is set."""
    directory = cfg.state.directory
    return [
        ClusterWorker(c, sink, cfg.validate_events, store=FileStore(directory, c.name) if directory else None,
                      fresh=fresh)
        for c in cfg.clusters
    ]


async def run_service(
    cfg: Config, sink: Sink, stop: asyncio.Event, workers: list[ClusterWorker]
) -> list[ClusterWorker]:
    """Run every cluster until ``stop`` is set; a cycle in progress finishes (and its events
    are flushed) before returning."""
    try:
        await sink.start()
    except SinkError as exc:
        # Not fatal: a service waits for its broker. Each cycle retries, with backoff.
        log.warning("kafka.unavailable", error=str(exc))
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
