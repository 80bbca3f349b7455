"""The service loops, per cluster: poll -> events -> backlog; enrich ended applications ->
finished events -> backlog; take snapshots and heartbeats -> backlog; and one delivery loop
that sends the backlog to Kafka in order and checkpoints what Kafka acknowledged.

Polling does not wait for Kafka: while the broker is slow or down the backlog grows (up to
``kafka.backlog_max_bytes``, then polling pauses) and drains in order when it is back. The
checkpointed state advances only with acknowledged events, so a crash at any moment loses
nothing: a restart re-derives what was not acknowledged, with the same ids.
"""

from __future__ import annotations

import asyncio
import random
import time
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field

import structlog

from . import __version__, enrichment, memory, schemas, state_store, stepwise
from .config import ClusterConfig, Config
from .enricher import Enricher
from .enrichment import Outcome, Pending, pending_for, rm_usage_final
from .events import (
    Event,
    EventContext,
    Liveness,
    application_record,
    cluster_snapshot,
    finished_event,
    hdfs_snapshot,
    heartbeat,
    queue_snapshot,
    transition_event,
)
from .http import HttpPeer, PeerError, RetryPolicy
from .jhs_client import JobHistory
from .metrics import METRICS, PeerKind, PeerLabel
from .outbox import Outbox, Queued
from .parsing import ParseError
from .rm_client import ResourceManager
from .rm_models import TERMINAL_STATES, RawApp
from .rm_poller import RmPoller
from .shs_client import SparkHistory
from .sinks import Sink, SinkError
from .state_store import FileStore
from .tracker import TrackerState, Transition, apply, copy_state, expired, forget, prune_horizon, step_of
from .webhdfs_client import NoActiveNameNode, WebHdfs

log = structlog.get_logger(__name__)

#: How often the enrichment queue is looked at (each entry keeps its own backoff).
ENRICH_TICK_S = 1.0
#: At most one warning per history server in this many seconds while it is in trouble.
HISTORY_WARN_S = 60.0
#: Events handed to the sink at once (the producer batches them further per partition).
DELIVERY_BATCH = 5000
DEFAULT_BACKLOG_BYTES = 64 * 1024 * 1024
#: A poll's events are queued this many at a time, the backlog's bound checked after each step.
QUEUE_STEP = 100
#: After a poll whose answers were at least this large, free heap is given back to the OS
#: once its events are delivered (``memory.give_back``).
TRIM_AFTER_BYTES = 32 * 1024 * 1024


def wall_ms() -> int:
    return time.time_ns() // 1_000_000


class CycleStopped(Exception):
    """The service stopped while a poll cycle waited for room in the backlog."""


@dataclass
class ClusterStats:
    events: int = 0  # delivered


@dataclass
class ClusterWorker:
    cfg: ClusterConfig
    sink: Sink
    validate: bool = True
    clock: Callable[[], int] = wall_ms
    #: What Kafka acknowledged: the state that is checkpointed (plain data).
    state: TrackerState = field(default_factory=TrackerState)
    #: Ended applications waiting for their history server (plain data, like ``state``).
    pending: dict[str, Pending] = field(default_factory=dict)
    stats: ClusterStats = field(default_factory=ClusterStats)
    #: Where the state is checkpointed after each delivery; None keeps it in memory.
    store: FileStore | None = None
    #: Ignore an existing checkpoint (it is overwritten by the first save).
    fresh: bool = False
    backlog_max_bytes: int = DEFAULT_BACKLOG_BYTES
    #: At stop, the longest wait for Kafka to take what is queued.
    shutdown_timeout_s: float = 20.0

    def __post_init__(self) -> None:
        poll = self.cfg.poll
        if self.validate:
            schemas.prepare()
        if self.store is not None and not self.fresh:
            saved = self.store.load()  # CheckpointError: refuse to start rather than start from zero
        else:
            saved = None
        if saved is not None:
            self.state, self.pending = saved.state, saved.pending
            log.info("checkpoint.loaded", cluster=self.cfg.name, apps=len(self.state.apps),
                     pending=len(self.pending), watermark=self.state.watermark, backlog=len(saved.backlog))
        #: What has been queued: the poller diffs against it (ahead of ``state`` by the backlog).
        self.seen = copy_state(self.state)
        self.outbox = Outbox(self.backlog_max_bytes)
        #: Write-ahead bookkeeping: a count of the puts of stateful entries into the backlog, and
        #: the count the last completed checkpoint write covers. Behind: save before sending.
        self._queued_puts = 0
        self._saved_puts = 0
        self._finishing: set[str] = set()  # finished events in the backlog, by app id
        if saved is not None:  # events queued before the stop go out first, as they were
            apply(self.seen, [q.step for q in saved.backlog if q.step is not None])
            self.outbox.put(saved.backlog)
            self._finishing.update(q.finished_app for q in saved.backlog if q.finished_app is not None)
        self.started_ms = self.clock()
        self.last_poll_ok_ms: int | None = None
        self.last_poll_error: str | None = None
        self.last_checkpoint_ms: int | None = None
        self.delivery_ok = True  # the last delivery attempt succeeded (or none was needed)
        self._queued = asyncio.Event()
        self._room = asyncio.Event()  # set when a delivery leaves the backlog below its bound
        self._saving = asyncio.Lock()  # checkpoint writes, one at a time
        self._writing: asyncio.Future[None] | None = None  # the last checkpoint write
        self._stop: asyncio.Event | None = None  # ``run``'s, while it runs
        self._trim_due = False  # a large poll ran: give its memory back once its events are out
        self._paused = False
        self._peers: list[HttpPeer] = []
        self._tries: dict[str, asyncio.Task[Outcome]] = {}
        self._warned: dict[str, float] = {}
        self.rm = ResourceManager(self.cfg.resourcemanager.urls, self._peer("rm"), cluster=self.cfg.name)  # type: ignore[arg-type]
        self.poller = RmPoller(
            self.rm,
            self.seen,
            overlap_ms=int(float(poll.overlap) * 1000),
            backfill_ms=int(float(poll.backfill) * 1000),
        )
        enrich = self.cfg.enrichment
        jhs, shs = self.cfg.jobhistory, self.cfg.spark_history
        self.enricher = Enricher(
            JobHistory(jhs.url, self._peer("jhs", 1), concurrency=jhs.concurrency,
                       include_counters=enrich.include_counters)
            if jhs
            else None,
            SparkHistory(shs.url, self._peer("shs", 1), concurrency=shs.concurrency) if shs else None,
        )
        hdfs = self.cfg.hdfs
        self.hdfs = (
            WebHdfs(hdfs.namenode_urls, self._peer("webhdfs", 1),  # type: ignore[arg-type]
                    concurrency=hdfs.concurrency, spacing_s=float(hdfs.spacing))
            if hdfs
            else None
        )
        self.retry = enrichment.RetryPolicy(
            first_delay_ms=int(float(enrich.first_retry) * 1000),
            max_delay_ms=int(float(enrich.max_retry_interval) * 1000),
            max_age_ms=int(float(enrich.max_age) * 1000),
        )

    @property
    def cluster_name(self) -> str:
        return self.cfg.name

    @property
    def poll_interval_s(self) -> float:
        return float(self.cfg.poll.interval)

    def _peer(self, kind: PeerKind, attempts: int = 3) -> HttpPeer:
        """One HTTP session per peer, all with the cluster's auth and timeouts. History
        servers get one attempt per request: their queue entry retries with its own backoff."""
        peer = HttpPeer(
            timeout=float(self.cfg.poll.timeout),
            user_name=self.cfg.auth.user_name,
            verify_tls=self.cfg.auth.verify_tls,
            retry=RetryPolicy(attempts=attempts, base_delay=0.5, max_delay=5.0),
            label=PeerLabel(self.cfg.name, kind),
        )
        self._peers.append(peer)
        return peer

    def _context(self) -> EventContext:
        return EventContext(self.cfg.name, self.seen.rm_cluster_id, self.cfg.diagnostics_limit)

    @property
    def _overlap_ms(self) -> int:
        return int(float(self.cfg.poll.overlap) * 1000)

    def _backlog_full(self, step: str) -> bool:
        """True while the backlog is at its bound: then nothing new is observed (and so
        nothing dropped); what the RM still shows is picked up once Kafka drained it."""
        if self.outbox.full:
            if not self._paused:
                self._paused = True
                log.warning("backlog.full_polling_paused", cluster=self.cfg.name, step=step,
                            events=len(self.outbox), bytes=self.outbox.bytes, max_bytes=self.outbox.max_bytes)
            return True
        if self._paused:
            self._paused = False
            log.info("backlog.polling_resumed", cluster=self.cfg.name, events=len(self.outbox))
        return False

    def _queue(self, entries: list[Queued]) -> None:
        self.outbox.put(entries)
        if entries:
            self._queued.set()
            if any(e.stateful for e in entries):
                self._queued_puts += 1
        METRICS.set_backlog(self.cfg.name, len(self.outbox), self.outbox.bytes)

    def _entry(self, event: Event, observed_at_ms: int, **effect: object) -> Queued | None:
        """A backlog entry for ``event``, or None when it fails its schema (logged)."""
        if not self._valid(event):
            return None
        encoded = event.queued()
        return Queued(encoded, len(encoded.payload), observed_at_ms=observed_at_ms, **effect)  # type: ignore[arg-type]

    async def poll_step(self) -> int:
        """Poll the RM once and queue the events of what changed, a part of the answers at a
        time (``_queue_transitions``); returns how many."""
        if self._backlog_full("poll"):
            return 0
        observed_at = self.clock()
        queued = 0

        async def emit(transitions: list[Transition]) -> None:
            nonlocal queued
            queued += await self._queue_transitions(transitions, observed_at)

        try:
            # the apps waiting for their final usage figures: their records, changed or not
            waiting = {app_id for app_id, p in self.pending.items() if not p.rm_final}
            summary = await self.poller.poll(observed_at, emit, records_for=waiting)
        except Exception as exc:
            self.last_poll_error = f"{type(exc).__name__}: {exc}"
            raise
        self.last_poll_ok_ms, self.last_poll_error = observed_at, None
        METRICS.poll_succeeded(self.cfg.name, observed_at)
        self._trim_due = self._trim_due or summary.answer_bytes >= TRIM_AFTER_BYTES
        self._refresh_pending(summary.records)
        await self._prune(self.seen)
        METRICS.set_watermark(self.cfg.name, self.seen.watermark)
        if self._take_bookkeeping() and not self.outbox:  # else the next write saves it
            await self._checkpoint()
        return queued

    def _take_bookkeeping(self) -> bool:
        """Copy what the poller noted that no event carries (the first start's floor, the RM's
        cluster id) into the checkpointed state; True when it changed. Done before a cycle
        queues anything too, so that even a checkpoint written mid-cycle keeps the floor
        (found by review: a stop during a long first cycle saved no floor)."""
        bookkeeping = (self.seen.floor, self.seen.rm_cluster_id)
        if bookkeeping == (self.state.floor, self.state.rm_cluster_id):
            return False
        self.state.floor, self.state.rm_cluster_id = bookkeeping
        return True

    async def _queue_transitions(self, transitions: list[Transition], observed_at: int) -> int:
        """Build, check and queue the events of one part of a poll and mark them seen,
        ``QUEUE_STEP`` at a time; after each step, if the backlog is full, hold the cycle until
        there is room again (so it overshoots its bound by one step at most). Returns how many."""
        ctx = self._context()  # after cluster info: it carries the RM's current cluster id
        self._take_bookkeeping()  # before anything of this cycle can reach a checkpoint
        queued = 0
        for start in range(0, len(transitions), QUEUE_STEP):
            entries: list[Queued] = []
            for i, t in enumerate(transitions[start : start + QUEUE_STEP], 1):
                if self.validate and i % 10 == 0:
                    await asyncio.sleep(0)  # a check takes ~1 ms: let other tasks run
                try:
                    event = transition_event(ctx, t, observed_at)
                except Exception as exc:  # one odd record must not hold up every other app
                    log.warning("event.build_failed", cluster=self.cfg.name, app_id=t.app_id, error=repr(exc))
                    continue
                opens = None  # an end opens the wait for its finished event, once Kafka has the end
                if t.app is not None and t.state in TERMINAL_STATES:
                    opens = pending_for(t.app, event.envelope["data"]["application"], observed_at)
                entry = self._entry(event, observed_at, step=step_of(t), pending=opens)
                if entry is not None:  # else not marked seen: derived (and reported) again next cycle
                    entries.append(entry)
            apply(self.seen, [e.step for e in entries if e.step is not None])
            self._queue(entries)
            queued += len(entries)
            if self.outbox.full:
                await self._make_room()
            else:
                await asyncio.sleep(0)
        return queued

    async def _make_room(self) -> None:
        """Keep the backlog bound within a cycle too (a first poll of a large cluster finds
        every app new): while it is full, hold the cycle until the delivery loop has made room;
        outside ``run`` (``cycle``), deliver now. At stop, the cycle ends here (``CycleStopped``):
        what it queued stands, the rest is seen again after the restart."""
        if not self.outbox.full:
            return
        if self._stop is None:
            await self.deliver()
            return
        self._backlog_full("poll")
        while self.outbox.full:
            if self._stop.is_set():
                raise CycleStopped
            self._room.clear()
            waits = {asyncio.ensure_future(self._room.wait()), asyncio.ensure_future(self._stop.wait())}
            try:
                await asyncio.wait(waits, return_when=asyncio.FIRST_COMPLETED)
            finally:  # also when the poll itself is cancelled
                for w in waits:
                    w.cancel()
        self._backlog_full("poll")  # logs the resumption

    async def cycle(self) -> int:
        """Poll once and deliver the backlog now (``once``, tests); returns how many events
        were delivered. Raises on any failure, after making durable what Kafka acknowledged."""
        before = self.stats.events
        await self.poll_step()  # delivers too when a large cycle fills the backlog (``_make_room``)
        await self.deliver()
        return self.stats.events - before

    async def deliver(self) -> int:
        """Send the backlog, oldest first, and make the acknowledged head durable (state,
        enrichment queue, checkpoint). Returns how many events Kafka acknowledged; raises
        ``SinkError`` after settling whatever part of a batch was acknowledged."""
        delivered = 0
        while batch := self.outbox.unacked(DELIVERY_BATCH):
            if self.store is not None and self._saved_puts < self._queued_puts:
                # Write ahead: once sent, these must be sent again as they are (not derived anew)
                # if the process dies before their acknowledgement is checkpointed. Checked before
                # every batch: other tasks queue more while a batch or a checkpoint is in flight.
                await self._checkpoint(covering=self._queued_puts)
            else:
                await asyncio.sleep(0)  # a batch settled takes ms, a prune at 100k apps more
            failure: SinkError | None = None
            try:
                await self.sink.send([q.event for q in batch], self.cfg.topics)
                acked = {q.event.id for q in batch}
            except SinkError as exc:
                acked, failure = set(exc.delivered), exc
            await self._make_durable(self.outbox.settle(acked, batch))
            if not self.outbox.full:
                self._room.set()
            delivered += len(acked)
            self.stats.events += len(acked)
            METRICS.set_backlog(self.cfg.name, len(self.outbox), self.outbox.bytes)
            for q in batch:
                if q.event.id in acked:
                    METRICS.events_produced(self.cfg.name, q.event.type)
            self.delivery_ok = failure is None
            if failure is not None:
                raise failure
        if delivered and not self.outbox:  # the acknowledged state, once a cycle's worth is out
            await self._prune(self.state)
        if self._trim_due and not self.outbox:
            self._trim_due = False
            await memory.give_back()
        return delivered

    async def _make_durable(self, done: list[Queued]) -> None:
        """Apply what Kafka acknowledged (in backlog order) to the checkpointed state."""
        if not done:
            return
        transitions = 0
        for q in done:
            if q.step is not None:
                apply(self.state, [q.step])
                transitions += 1
                # Only now, with the end on Kafka, may its finished event follow (same key, later).
                if q.pending is not None and q.pending.app_id not in self.pending:
                    self.pending[q.pending.app_id] = q.pending
            elif q.finished_app is not None:
                self.pending.pop(q.finished_app, None)
                self._finishing.discard(q.finished_app)
                info = q.event.envelope["data"]["enrichment"]  # decoded again: once per application
                if info["status"] == "unavailable":
                    gave_up = "gave up after" in (info["reason"] or "")
                    METRICS.enrichment_unavailable(self.cfg.name, "gave_up" if gave_up else "other")
                log.info("enrichment.published", cluster=self.cfg.name, app_id=q.finished_app,
                         status=info["status"], reason=info["reason"], after_end_ms=info["after_end_ms"],
                         attempts=info["attempts"])
        await self._checkpoint()
        self._report_queue()
        if transitions:
            log.info("poll.delivered", cluster=self.cfg.name, events=transitions, backlog=len(self.outbox))

    async def _prune(self, state: TrackerState) -> None:
        """``tracker.prune``, a slice of the apps at a time (a scan of 100k takes ~20 ms)."""
        horizon = prune_horizon(state, self._overlap_ms)
        if horizon is not None:
            forget(state, horizon, await stepwise.scan(list(state.apps), lambda ids: expired(state, horizon, ids)))

    def _refresh_pending(self, view: Mapping[str, RawApp]) -> None:
        """Keep the RM's record of waiting applications current: right after FINISHED the
        ApplicationMaster may still run (RM state FINISHING) and its usage still grows."""
        limit = self.cfg.diagnostics_limit
        for app_id, p in self.pending.items():
            app = view.get(app_id)
            if app is not None and app.is_terminal and not p.rm_final:  # final figures do not change
                p.record = application_record(app, limit)
                p.rm_final = rm_usage_final(app)

    async def enrich_step(self, wait: bool = False) -> int:
        """Start a try for every ended application whose turn it is, and queue the finished
        events of the tries that are done. A slow history server delays only its own
        applications: tries run as tasks and are collected on a later tick (``wait``
        collects all of them now, for ``once``). Returns how many events were queued."""
        now = self.clock()
        for p in enrichment.due(self.pending, now):
            if p.app_id not in self._tries and p.app_id not in self._finishing:
                self._tries[p.app_id] = asyncio.create_task(self._try(p), name=f"enrich:{p.app_id}")
        if wait and self._tries:
            await asyncio.wait(self._tries.values())
        done_tries = {app_id: task for app_id, task in self._tries.items() if task.done()}
        for app_id in done_tries:
            del self._tries[app_id]
        now = self.clock()
        ctx = self._context()
        entries: list[Queued] = []
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
            entry = self._entry(finished_event(ctx, p, final, now), now, finished_app=app_id)
            if entry is None:  # it failed its schema (logged): try again later, not every tick
                p.next_try_ms = now + self.retry.max_delay_ms
                continue
            entries.append(entry)
            self._finishing.add(app_id)
        self._queue(entries)
        self._report_queue()
        return len(entries)

    def _report_queue(self) -> None:
        oldest = min((p.ended_ms for p in self.pending.values() if p.ended_ms), default=None)
        METRICS.set_enrichment_queue(self.cfg.name, len(self.pending), oldest)

    async def enrich_cycle(self, wait: bool = False) -> int:
        """``enrich_step`` and deliver now (``once``, tests); returns how many were delivered."""
        await self.enrich_step(wait)
        return await self.deliver()

    async def _checkpoint(self, covering: int | None = None) -> None:
        """Save what Kafka has acknowledged, and the backlog; a restart resumes from here (same
        ids). With ``covering``, only when no completed write covers that many puts yet.

        The state is encoded here, as it is now (~15 ms at 100k apps); the file is written and
        fsynced in a thread, one write at a time, in the order they were encoded."""
        if self.store is None:
            return
        async with self._saving:
            if covering is not None and self._saved_puts >= covering:
                return  # the write this one waited for had them all
            if self._writing is not None:  # a cancelled caller's write may still be running: it goes first
                await asyncio.wait({self._writing})
            puts = self._queued_puts
            data = state_store.encode(self.cfg.name, self.state, self.pending, self.outbox.stateful())
            self._writing = asyncio.ensure_future(asyncio.to_thread(self.store.write, data))
            await asyncio.shield(self._writing)  # cancelled here, the write still completes, in order
            self._saved_puts = max(self._saved_puts, puts)  # only once it is on disk
        self.last_checkpoint_ms = self.clock()
        METRICS.checkpoint_saved(self.cfg.name, self.last_checkpoint_ms)

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

    @property
    def undelivered(self) -> bool:
        """Events are queued that Kafka has not acknowledged (at stop: not on Kafka)."""
        return len(self.outbox) > 0

    def _valid(self, event: Event) -> bool:
        if not self.validate:
            return True
        try:
            schemas.validate(event.envelope)
        except schemas.SchemaViolation as exc:
            # A bug of ours: sending it would break consumers' contract; say so loudly.
            log.error("event.schema_violation", cluster=self.cfg.name, error=str(exc))
            return False
        return True

    async def cluster_snapshot(self) -> int:
        """``yarn.cluster.snapshot``: the RM's info and metrics now."""
        if self._backlog_full("cluster_snapshot"):
            return 0
        info, _ = await self.rm.cluster_info()
        metrics = await self.rm.cluster_metrics()
        event = cluster_snapshot(self._context(), info, metrics, self.clock())
        return self._publish([event])

    async def queue_snapshot(self) -> int:
        """``yarn.queue.snapshot``: one event per scheduler queue, every queue at any depth."""
        if self._backlog_full("queue_snapshot"):
            return 0
        info, _ = await self.rm.cluster_info()  # the id of the RM that answers, not the poll's
        queues = await self.rm.queues()
        taken = self.clock()
        ctx = EventContext(self.cfg.name, info.id, self.cfg.diagnostics_limit)
        return self._publish([queue_snapshot(ctx, q.to_dict(), taken) for q in queues])

    async def hdfs_snapshot(self) -> int:
        """``hdfs.usage.snapshot`` per configured path; one bad path never stops the others."""
        if self._backlog_full("hdfs_snapshot"):
            return 0
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
        return self._publish(events)

    def _publish(self, events: list[Event]) -> int:
        """Queue stateless events (snapshots, heartbeats); returns how many."""
        now = self.clock()
        entries = [e for e in (self._entry(event, now) for event in events) if e is not None]
        self._queue(entries)
        return len(entries)

    async def heartbeat_step(self) -> int:
        """``collector.heartbeat``: this cluster's collection is alive, and how fresh it is."""
        if self._backlog_full("heartbeat"):
            return 0
        live = Liveness(
            started_ms=self.started_ms,
            last_poll_ok_ms=self.last_poll_ok_ms,
            last_poll_error=self.last_poll_error,
            active_rm=self.rm.active_url,
            watermark_ms=self.seen.watermark,
            tracked_apps=len(self.seen.apps),
            backlog_events=len(self.outbox) + 1,
            enrichment_pending=len(self.pending),
            interval_ms=int(float(self.cfg.heartbeat_interval) * 1000),
        )
        return self._publish([heartbeat(self.cfg.name, live, __version__, self.clock())])

    async def run(self, stop: asyncio.Event) -> None:
        """Poll, enrich, take snapshots and heartbeats until ``stop``, while the delivery
        loop sends the backlog; then deliver what is queued, for at most ``shutdown_timeout_s``."""
        snapshots = self.cfg.snapshots
        producing = asyncio.Event()  # cleared when the producing loops have ended
        producing.set()
        self._stop = stop
        delivery = asyncio.create_task(self._delivery_loop(producing), name=f"deliver:{self.cfg.name}")
        try:
            async with asyncio.TaskGroup() as group:
                group.create_task(self._loop(stop, "poll", self.poll_step, self.poll_interval_s))
                group.create_task(self._loop(stop, "enrich", self.enrich_step, ENRICH_TICK_S))
                for name, step, interval in (
                    ("cluster_snapshot", self.cluster_snapshot, snapshots.cluster_interval),
                    ("queue_snapshot", self.queue_snapshot, snapshots.queue_interval),
                    ("hdfs_snapshot", self.hdfs_snapshot, snapshots.hdfs_interval if self.hdfs else 0),
                    ("heartbeat", self.heartbeat_step, self.cfg.heartbeat_interval),
                ):
                    if float(interval) > 0:
                        # these hold no state: at stop they are abandoned, not waited for
                        group.create_task(self._loop(stop, name, step, float(interval), abandon_on_stop=True))
        finally:
            producing.clear()
            self._queued.set()
            done, _ = await asyncio.wait({delivery}, timeout=self.shutdown_timeout_s)
            if not done:
                delivery.cancel()
                await asyncio.gather(delivery, return_exceptions=True)
                # Not lost: the checkpoint holds only what Kafka acknowledged; a restart
                # derives the rest again, with the same ids.
                log.error("delivery.stopped_with_backlog", cluster=self.cfg.name, events=len(self.outbox),
                          waited_s=self.shutdown_timeout_s)
            self._stop = None  # a later ``cycle`` (``once`` after ``run``, tests) delivers inline again
        if self.pending and self.store is None:
            # Without a checkpoint these are lost with the process.
            log.warning("enrichment.pending_at_stop", cluster=self.cfg.name, count=len(self.pending))

    async def _delivery_loop(self, producing: asyncio.Event) -> None:
        """Deliver whatever is queued; on failure back off and try again (the backlog keeps
        everything, in order). Ends when production has ended and the backlog is empty."""
        failures = 0
        max_backoff = float(self.cfg.poll.max_backoff)
        while True:
            self._queued.clear()
            if not self.outbox:
                if not producing.is_set():
                    return
                await self._queued.wait()
                continue
            try:
                await self.deliver()
                if failures:
                    log.info("delivery.recovered", cluster=self.cfg.name, after_failures=failures)
                failures = 0
            except Exception as exc:
                failures += 1
                wait = min(max_backoff, 0.5 * 2 ** min(failures - 1, 7)) * random.uniform(0.5, 1.0)
                fields = dict(cluster=self.cfg.name, consecutive=failures, backlog_events=len(self.outbox),
                              backlog_bytes=self.outbox.bytes, retry_in_s=round(wait, 1))
                if isinstance(exc, SinkError):
                    log.warning("delivery.failed", error=str(exc), **fields)
                else:  # a bug of ours; the loop must outlive it
                    log.exception("delivery.crashed", **fields)
                await asyncio.sleep(wait)

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
            except CycleStopped:
                log.info(f"{name}.stopped_mid_cycle", cluster=self.cfg.name, backlog=len(self.outbox))
                return
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
    """A worker per cluster, resumed from its checkpoint (``state.store: file``, the default)."""
    directory = cfg.state.directory if cfg.state.store == "file" else None
    return [
        ClusterWorker(
            c,
            sink,
            cfg.validate_events,
            store=FileStore(directory, c.name) if directory else None,
            fresh=fresh,
            backlog_max_bytes=cfg.kafka.backlog_max_bytes,
            shutdown_timeout_s=float(cfg.shutdown_timeout),
        )
        for c in cfg.clusters
    ]


async def run_service(
    cfg: Config, sink: Sink, stop: asyncio.Event, workers: list[ClusterWorker]
) -> list[ClusterWorker]:
    """Run every cluster until ``stop`` is set; then each delivers what it has queued (for at
    most its shutdown timeout) before returning."""
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
