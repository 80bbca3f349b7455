"""ResourceManager REST client: HA failover and the three calls the poller makes.

Standby RMs answer in several ways, all of which mean "ask the other one":
a 307 (with or without ``Location``), a 200 ``text/plain`` "This is standby RM ...",
"There is no active RM right now", or any other non-JSON body. A 5xx that outlasts the
HTTP layer's retries also sends the client to the other RM. ``/ws/v1/cluster/info``
is never redirected and tells the HA state directly, so it is how the active RM is found.
"""

from __future__ import annotations

import asyncio
import email.utils
from collections import Counter
from collections.abc import AsyncIterator, Callable, Container, Mapping, Sequence
from dataclasses import replace
from typing import Any

import structlog

from .http import HttpPeer, PeerError, PeerHTTPError, PeerUnreachable, Response
from .metrics import METRICS, Metrics
from .parsing import ParseError
from .rm_models import (
    ACTIVE_STATES,
    TERMINAL_STATES,
    AppHead,
    AppsPage,
    ClusterInfo,
    RawApp,
    app_spans,
    parse_app,
    parse_app_span,
    parse_apps,
    parse_cluster_info,
    parse_head_span,
    select_records,
)
from .scheduler_models import QueueRecord, parse_scheduler
from .snapshot_models import parse_cluster_metrics

log = structlog.get_logger(__name__)

APPS_PATH = "/ws/v1/cluster/apps"
INFO_PATH = "/ws/v1/cluster/info"
#: Fields of an app the collector never reads, left out of apps answers: resourceRequests (YARN-6280)
#: and, since YARN-6871, resourceInfo (usage per partition: two thirds of an active app's record),
#: timeouts and the label expressions. An RM that knows only the first answers 400 "Invalid
#: deSelects string": it is then asked for the first alone. 2.x RMs ignore the parameter.
DESELECTS = "resourceRequests,resourceInfo,timeouts,appNodeLabelExpression,amNodeLabelExpression"
DESELECTS_OLD = "resourceRequests"

#: Apps answers are decoded this many bytes (150-300 apps, ~2 ms) at a time, letting other tasks run in
#: between: a 100k-app answer (~180-400 MB) decoded in one go would stall the event loop for 0.2-0.4 s.
DECODE_STEP_BYTES = 512 * 1024
#: An answer that had to be decoded whole is handed on this many apps at a time.
WHOLE_PART_APPS = 200


class StandbyAnswer(PeerError):
    """This RM is not the active one."""


class NoActiveRM(PeerError):
    """None of the configured RMs is active right now (failover in progress, or all down)."""


def classify(resp: Response) -> None:
    """Raise the typed error a non-usable RM answer stands for; return if it is JSON to parse."""
    if resp.status in (301, 302, 303, 307, 308):
        where = resp.headers.get("Location")
        raise StandbyAnswer(resp.url, f"redirect {resp.status} to {where or 'nowhere'} (standby RM)")
    if resp.status == 200 and resp.content_type != "application/json":
        text = resp.excerpt()
        if text.startswith(("This is standby RM", "There is no active RM")):
            raise StandbyAnswer(resp.url, text)
        raise StandbyAnswer(resp.url, f"non-JSON answer ({resp.content_type or 'no content type'}): {text!r}")
    if resp.status != 200:
        raise PeerHTTPError(resp.url, resp.status, resp.excerpt())


def rm_clock_ms(resp: Response) -> int | None:
    """The RM's own time from its ``Date`` header (second precision)."""
    value = resp.headers.get("Date")
    if not value:
        return None
    try:
        return int(email.utils.parsedate_to_datetime(value).timestamp() * 1000)
    except (TypeError, ValueError):
        return None


#: Given the heads of a part of an answer, the ids whose whole record the caller needs.
Selector = Callable[[list[AppHead]], Container[str]]


async def apps_in_parts(
    body: bytes, step_bytes: int | None = None, select: Selector | None = None
) -> AsyncIterator[AppsPage[Any]]:
    """An apps answer as consecutive parts, a slice of the answer each, yielding to the event loop
    in between (msgspec holds the GIL while it decodes, so a thread would not help). The caller
    handles each part before the next is decoded, so a large answer is never held as records.

    With ``select``, each slice is decoded to heads first and only the records it asks for are
    decoded whole; the other apps stay heads. An answer that is not in the RM's compact layout,
    or a slice with an odd element, takes ``parse_apps`` on the whole answer (whole records, its
    tolerance for odd elements); that part then leaves out the apps already given, and carries
    the answer's ``unreadable_ids``/``complete``/``problems``. Raises ``ParseError`` when the
    answer as a whole is unusable."""
    step_bytes = step_bytes or DECODE_STEP_BYTES
    spans = app_spans(body, step_bytes) if select is not None or len(body) > step_bytes else None
    if spans is None:
        for part in _in_parts(parse_apps(body)):
            yield part
            await asyncio.sleep(0)
        return
    for done, span in enumerate(spans):
        part: list[RawApp] | list[RawApp | AppHead] | None
        if select is None:
            part = parse_app_span(body, span)
        else:
            heads = parse_head_span(body, span)
            part = None if heads is None else select_records(body, span, heads, select(heads))
            if part is None and heads is not None:  # a wanted record would not cut out: the slice whole
                part = parse_app_span(body, span)
        if part is None:
            given = _ids_in(body, spans[:done])
            whole = parse_apps(body)
            for rest in _in_parts(replace(whole, apps=_after(whole.apps, given))):
                yield rest
                await asyncio.sleep(0)
            return
        yield AppsPage(part)
        if len(spans) > 1:
            await asyncio.sleep(0)


def _ids_in(body: bytes, spans: Sequence[slice]) -> Counter[str]:
    """The ids of the apps in spans that decoded cleanly before, each as often as it was given
    (heads again: the rare path, so the common one need not keep every id)."""
    ids: Counter[str] = Counter()
    for span in spans:
        ids.update(head.id for head in parse_head_span(body, span) or ())
    return ids


def _after(apps: list[RawApp], given: Counter[str]) -> list[RawApp]:
    """``apps`` without those already given: an id's first occurrences, as many as were given
    (a later copy of a repeated id was not given yet; found by review)."""
    rest = []
    for app in apps:
        if given[app.id] > 0:
            given[app.id] -= 1
        else:
            rest.append(app)
    return rest


def _in_parts(page: AppsPage[RawApp]) -> list[AppsPage[RawApp]]:
    """A page decoded whole, as parts of ``WHOLE_PART_APPS`` apps (the first one carries what
    the page says of the answer), so that the poll's diff of it still runs a short part at a time."""
    apps = page.apps
    rest = [AppsPage(apps[i : i + WHOLE_PART_APPS]) for i in range(WHOLE_PART_APPS, len(apps), WHOLE_PART_APPS)]
    return [replace(page, apps=apps[:WHOLE_PART_APPS]), *rest]


async def parse_apps_stepwise(
    body: bytes, step_bytes: int | None = None, select: Selector | None = None
) -> AppsPage[Any]:
    """``apps_in_parts`` gathered into one page (what ``parse_apps`` gives, with heads where
    ``select`` did not ask for the record)."""
    apps: list[RawApp | AppHead] = []
    unreadable: frozenset[str] = frozenset()
    complete, problems = True, ()
    async for part in apps_in_parts(body, step_bytes, select):
        apps += part.apps
        unreadable |= part.unreadable_ids
        complete = complete and part.complete
        problems += part.problems
    return AppsPage(apps, unreadable, complete, problems)


class ResourceManager:
    def __init__(self, urls: Sequence[str], peer: HttpPeer, *, cluster: str, metrics: Metrics = METRICS) -> None:
        if not urls:
            raise ValueError("at least one ResourceManager URL is required")
        self.urls = [u.rstrip("/") for u in urls]
        self.peer = peer
        self.cluster = cluster
        self.active_url: str | None = self.urls[0] if len(self.urls) == 1 else None
        self.failovers = 0
        self._metrics = metrics
        metrics.set_active_rm(cluster, self.urls, self.active_url)
        self.deselects = DESELECTS

    async def cluster_info(self) -> tuple[ClusterInfo, int | None]:
        """Info of the active RM and its clock; finds the active RM on the way.

        The RM in use is checked too: one that turned standby, or a restarted one whose web
        service answers before it became active (and before it recovered its apps), must not
        be polled, or every app would look vanished.
        """
        for _ in range(len(self.urls) + 1):
            resp = await self._get(INFO_PATH)
            info = parse_cluster_info(resp.body)
            if info.is_active:
                return info, rm_clock_ms(resp)
            reason = f"haState {info.haState}, state {info.state}"
            if len(self.urls) == 1:
                raise NoActiveRM(self.urls[0], f"the ResourceManager is not active ({reason})")
            self._failover(self.active_url, reason)
        raise NoActiveRM(self.urls[0], "no active ResourceManager answered")

    async def cluster_metrics(self) -> dict[str, int | None]:
        return parse_cluster_metrics((await self._get("/ws/v1/cluster/metrics")).body)

    async def queues(self) -> list[QueueRecord]:
        return parse_scheduler((await self._get("/ws/v1/cluster/scheduler")).body)

    async def active_apps(self) -> AppsPage[RawApp]:
        return await parse_apps_stepwise(await self.active_answer())

    async def ended_apps(self, finished_since_ms: int) -> AppsPage[RawApp]:
        return await parse_apps_stepwise(await self.ended_answer(finished_since_ms))

    async def active_answer(self) -> bytes:
        """The active apps' answer, undecoded (a poll decodes it a part at a time: ``apps_in_parts``)."""
        return await self._apps_body({"states": ",".join(ACTIVE_STATES)})

    async def ended_answer(self, finished_since_ms: int) -> bytes:
        """The answer of the apps that ended since ``finished_since_ms`` (RM clock), undecoded."""
        return await self._apps_body(
            {"states": ",".join(TERMINAL_STATES), "finishedTimeBegin": str(max(0, finished_since_ms))}
        )

    async def app(self, app_id: str) -> RawApp | None:
        """One app, or None when the RM no longer knows it (evicted or lost in a restart).

        Only the RM's own answer counts (its NotFoundException): a 404 page from a proxy or
        gateway in front of it says nothing about the app, and a wrong None would report it
        vanished."""
        try:
            resp = await self._get(f"{APPS_PATH}/{app_id}")
        except PeerHTTPError as exc:
            if exc.status == 404 and "NotFoundException" in exc.body_excerpt:
                return None
            raise
        return parse_app(resp.body)

    async def _apps_body(self, params: Mapping[str, str]) -> bytes:
        try:
            resp = await self._get(APPS_PATH, {**params, "deSelects": self.deselects})
        except PeerHTTPError as exc:
            if exc.status != 400 or "deSelects" not in exc.body_excerpt or self.deselects == DESELECTS_OLD:
                raise
            log.info("rm.deselects_unsupported", cluster=self.cluster, rm=self.active_url, asked=self.deselects)
            self.deselects = DESELECTS_OLD
            resp = await self._get(APPS_PATH, {**params, "deSelects": self.deselects})
        return resp.body

    async def _get(self, path: str, params: Mapping[str, str] | None = None) -> Response:
        last: PeerError | None = None
        # Each RM gets one chance per call: the active one first, then the others.
        for _ in range(len(self.urls) + 1):
            base = self.active_url or await self._find_active()
            try:
                resp = await self.peer.get(base + path, params)
                classify(resp)
                return resp
            except (StandbyAnswer, PeerUnreachable, PeerHTTPError) as exc:
                if isinstance(exc, PeerHTTPError) and exc.status < 500:
                    raise  # about the request (404, 403), not about this RM
                # 5xx after the HTTP layer's retries: an RM (or its gateway) in trouble, maybe
                # for good; the other RM may be the active one by now.
                last = exc
                if len(self.urls) == 1:
                    raise
                self._failover(base, exc.message)
        assert last is not None
        raise NoActiveRM(self.urls[0], f"no active ResourceManager answered: {last.message}")

    def _failover(self, left: str | None, reason: str) -> None:
        log.warning("rm.failover", cluster=self.cluster, rm=left, reason=reason)
        self.active_url = None
        self.failovers += 1
        self._metrics.rm_failover(self.cluster)
        self._metrics.set_active_rm(self.cluster, self.urls, None)

    async def _find_active(self) -> str:
        reasons: list[str] = []
        for base in self.urls:
            try:
                resp = await self.peer.get(base + INFO_PATH)
                classify(resp)
                info = parse_cluster_info(resp.body)
            except (PeerError, ParseError) as exc:
                reasons.append(f"{base}: {getattr(exc, 'message', exc)}")
                continue
            if not info.is_active:
                reasons.append(f"{base}: haState {info.haState}, state {info.state}")
                continue
            if self.active_url != base:
                log.info("rm.active", cluster=self.cluster, rm=base, ha_state=info.haState)
            self.active_url = base
            self._metrics.set_active_rm(self.cluster, self.urls, base)
            return base
        raise NoActiveRM(self.urls[0], "no active ResourceManager: " + "; ".join(reasons))
