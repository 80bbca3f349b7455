"""Typed records of the ResourceManager REST answers, parsed once at the boundary.

Everything the RM can send that has broken other tools is absorbed here and nowhere else:
``"apps": null`` (2.x) and ``"apps": {}`` (3.x) for "no apps", fields missing on older
versions, numbers sent as strings, ``-1`` in resource fields after an app ended,
``launchTime: 0`` before launch, and ``resourceSecondsMap`` repeating the key ``entry``.

Decoding goes straight from bytes into ``msgspec`` structs with only the fields we use,
which is cheaper than building dicts for the whole answer.
"""

from __future__ import annotations

import json
import re
from collections.abc import Container
from dataclasses import dataclass
from typing import Annotated, Any, Generic, Literal, TypeVar

import msgspec

from .parsing import LONG_MAX, LONG_MIN, Long, ParseError, as_int, first_line

ACTIVE_STATES = ("NEW", "NEW_SAVING", "SUBMITTED", "ACCEPTED", "RUNNING")
TERMINAL_STATES = ("FINISHED", "FAILED", "KILLED")


_NULL_RAW = msgspec.Raw(b"null")


#: What events can carry: an element with another id or state is unreadable, not a record.
AppId = Annotated[str, msgspec.Meta(pattern=r"^application_[0-9]+_[0-9]+\Z")]
AppState = Literal["NEW", "NEW_SAVING", "SUBMITTED", "ACCEPTED", "RUNNING", "FINISHED", "FAILED", "KILLED"]


class RawApp(msgspec.Struct, kw_only=True, gc=False):
    """One element of ``apps.app`` as the RM sends it (Hadoop 2.7 to 3.x).

    ``gc=False``: it holds only scalars, so 100k of them give the garbage collector nothing to do.
    """

    id: AppId
    state: AppState
    user: str | None = None
    name: str | None = None
    queue: str | None = None
    finalStatus: str | None = None
    progress: float | None = None
    trackingUI: str | None = None
    trackingUrl: str | None = None
    diagnostics: str | None = None
    clusterId: Long | None = None
    applicationType: str | None = None
    applicationTags: str | None = None
    priority: Long | None = None
    startedTime: Long | None = None
    launchTime: Long | None = None
    finishedTime: Long | None = None
    elapsedTime: Long | None = None
    amContainerLogs: str | None = None
    amHostHttpAddress: str | None = None
    allocatedMB: Long | None = None
    allocatedVCores: Long | None = None
    reservedMB: Long | None = None
    reservedVCores: Long | None = None
    runningContainers: Long | None = None
    memorySeconds: Long | None = None
    vcoreSeconds: Long | None = None
    queueUsagePercentage: float | None = None
    clusterUsagePercentage: float | None = None
    # Raw: the RM repeats the key "entry", which a dict decoder would collapse.
    resourceSecondsMap: msgspec.Raw = _NULL_RAW
    preemptedResourceMB: Long | None = None
    preemptedResourceVCores: Long | None = None
    numNonAMContainerPreempted: Long | None = None
    numAMContainerPreempted: Long | None = None
    preemptedMemorySeconds: Long | None = None
    preemptedVcoreSeconds: Long | None = None
    logAggregationStatus: str | None = None
    unmanagedApplication: bool | None = None

    @property
    def is_terminal(self) -> bool:
        return self.state in TERMINAL_STATES


class AppHead(msgspec.Struct, gc=False):
    """What a poll compares of every app: its id and state. A poll decodes each app of an answer
    this far only, and its whole ``RawApp`` record only when the app is new or changed (see
    ``select_records``): in a large answer nearly every app is unchanged, and building its
    record (a dozen strings) costs twice as much as reading past it.

    Plain strings, unchecked (checking the id's pattern here would cost a third of the
    decoding): a head is only ever used as "unchanged", i.e. equal to an app already tracked,
    which was checked when its record was decoded; a new or changed app is decoded whole, and
    checked then."""

    id: str
    state: str


class _AppList(msgspec.Struct):
    # 3.x always sends a list; a lone object is accepted too, as some proxies re-encode it so.
    app: list[RawApp] | RawApp | None = None


class _AppsAnswer(msgspec.Struct):
    apps: _AppList | None = None


class _RawAppList(msgspec.Struct):
    app: list[msgspec.Raw] | None = None


class _RawAppsAnswer(msgspec.Struct):
    apps: _RawAppList | None = None


class _OneAppAnswer(msgspec.Struct):
    app: RawApp


class ClusterInfo(msgspec.Struct, kw_only=True):
    id: Long | None = None
    startedOn: Long | None = None
    state: str | None = None
    haState: str | None = None
    rmStateStoreName: str | None = None
    resourceManagerVersion: str | None = None
    hadoopVersion: str | None = None

    @property
    def is_active(self) -> bool:
        """Serving as the active RM. Non-HA RMs report haState ACTIVE too (2.7 and later);
        a missing field means a very old RM without HA, active by definition. While an RM
        starts, its web service answers before it is active (INITIALIZING, state INITED)."""
        ha_ok = self.haState is None or self.haState.upper() == "ACTIVE"
        return ha_ok and (self.state is None or self.state.upper() == "STARTED")


class _ClusterInfoAnswer(msgspec.Struct):
    clusterInfo: ClusterInfo


# strict=False: accept numbers sent as strings ("267329") and bools as "true".
_apps_decoder = msgspec.json.Decoder(_AppsAnswer, strict=False)
_raw_apps_decoder = msgspec.json.Decoder(_RawAppsAnswer, strict=False)
_app_decoder = msgspec.json.Decoder(RawApp, strict=False)
_one_app_decoder = msgspec.json.Decoder(_OneAppAnswer, strict=False)
_app_list_decoder = msgspec.json.Decoder(list[RawApp], strict=False)
_head_list_decoder = msgspec.json.Decoder(list[AppHead], strict=False)
_cluster_info_decoder = msgspec.json.Decoder(_ClusterInfoAnswer, strict=False)


#: An app of an answer as a poll reads it: the whole record, or only its head (unchanged apps).
AppT = TypeVar("AppT", bound=RawApp | AppHead)


@dataclass(frozen=True, slots=True)
class AppsPage(Generic[AppT]):
    """The parsed ``/ws/v1/cluster/apps`` answer.

    ``unreadable_ids`` are apps present in the answer whose record could not be parsed: the
    tracker must treat them as "still there, state unknown", never as vanished.
    ``complete`` is False when some element could not even be identified, in which case the
    answer cannot prove that an app is absent.
    """

    apps: list[AppT]
    unreadable_ids: frozenset[str] = frozenset()
    complete: bool = True
    problems: tuple[str, ...] = ()


def parse_apps(body: bytes) -> AppsPage[RawApp]:
    """Parse an apps list; raise ``ParseError`` only when the answer as a whole is unusable."""
    try:
        answer = _apps_decoder.decode(body)
    except msgspec.DecodeError as exc:
        # A wrong shape, or text that is not UTF-8, in one element: the others still count.
        return _parse_apps_one_by_one(body, exc)
    except RecursionError:  # msgspec raises it past the interpreter's depth limit
        raise ParseError("apps answer is nested too deeply") from None
    if answer.apps is None or answer.apps.app is None:
        return AppsPage([])
    apps = answer.apps.app
    return AppsPage(apps if isinstance(apps, list) else [apps])


# The compact layout every RM sends: no whitespace, each app's record starting with its id.
_LIST_HEAD = b'{"apps":{"app":['
_LIST_TAIL = b"]}}"
_NEXT_APP = b'},{"id":"'
#: The same with the start of every YARN application id: a longer text is found faster (~2x).
_APP_BOUNDARY = b'},{"id":"application_'
#: An "id" key holding a YARN application id, wherever it stands.
_APP_ID_KEY = b'"id":"application_'


def app_spans(body: bytes, chunk_bytes: int) -> list[slice] | None:
    """Where to cut a large apps answer into runs of whole apps of about ``chunk_bytes`` each,
    so that it can be decoded a piece at a time (``parse_app_span``); None when the answer is
    not in the RM's compact layout (then ``parse_apps`` takes it whole).

    ``},{"id":"`` cannot occur inside a JSON string (a quote there is escaped), so every cut is
    between two objects; a cut between two nested objects leaves unbalanced pieces, which then
    fail to decode, and the caller falls back to ``parse_apps``.
    """
    if not (body.startswith(_LIST_HEAD) and body.endswith(_LIST_TAIL)):
        return None
    end = len(body) - len(_LIST_TAIL)
    spans: list[slice] = []
    start = len(_LIST_HEAD)
    while start < end:
        cut = body.find(_NEXT_APP, start + chunk_bytes, end)
        stop = end if cut < 0 else cut + 1
        spans.append(slice(start, stop))
        start = stop + 1  # past the comma
    return spans


def parse_app_span(body: bytes, span: slice) -> list[RawApp] | None:
    """Decode the apps in one span of ``app_spans``; None when they do not decode cleanly
    (``parse_apps`` on the whole answer then decides, with its tolerance for odd elements)."""
    return _decode_span(_app_list_decoder, body, span)


def parse_head_span(body: bytes, span: slice) -> list[AppHead] | None:
    """The heads of the apps in one span of ``app_spans``; None when they do not decode cleanly."""
    return _decode_span(_head_list_decoder, body, span)


def _decode_span(decoder: msgspec.json.Decoder, body: bytes, span: slice) -> Any:
    try:
        return decoder.decode(b"".join((b"[", memoryview(body)[span], b"]")))
    except (msgspec.DecodeError, RecursionError):
        return None


def select_records(
    body: bytes, span: slice, heads: list[AppHead], wanted: Container[str]
) -> list[RawApp | AppHead] | None:
    """The apps of one span, in order: the whole record of each app in ``wanted``, the head of
    the others. None when the records cannot be cut out and decoded cleanly (then the caller
    decodes the span whole, or the answer).

    ``"id":"application_`` cannot occur inside a JSON string (a quote there is escaped): each
    occurrence is an object's "id" key. The cuts are trusted only when the span holds exactly
    one per app, its own: then no nested object has such an id, ``},{"id":"<id>"`` is where app
    ``<id>`` starts and the next ``},{"id":"application_`` where it ends. An app whose keys a
    proxy reordered (not starting with its id) is then not found, or ends a piece that does not
    decode: the caller decodes the slice whole. Each record must also decode to the app and
    state its head says. (Counting boundaries instead was fooled twice in review: reordered apps
    do not count as boundaries, nested lookalikes do.)"""
    picks = [i for i, head in enumerate(heads) if head.id in wanted]
    if not picks:
        return list(heads)
    start, stop = span.start, span.stop
    if body.count(_APP_ID_KEY, start, stop) != len(heads):
        return None  # a nested object has an app's id, or an id is escaped: the cuts cannot be trusted
    view = memoryview(body)
    out: list[RawApp | AppHead] = list(heads)
    pos = start
    for i in picks:
        head = heads[i]
        if i == 0:
            begin = start  # the span decoded cleanly: it starts with its first app
        else:
            cut = body.find(b'},{"id":"' + head.id.encode() + b'"', pos, stop)
            if cut < 0:
                return None
            begin = cut + 2
        end = body.find(_APP_BOUNDARY, begin, stop)
        end = stop if end < 0 else end + 1
        try:
            app = _app_decoder.decode(view[begin:end])
        except (msgspec.DecodeError, RecursionError):
            return None
        if app.id != head.id or app.state != head.state:
            return None
        out[i] = app
        pos = end - 1  # the next app's boundary starts at the "}" just before ``end``
    return out


def _parse_apps_one_by_one(body: bytes, first_error: Exception) -> AppsPage[RawApp]:
    """Slow path when some element has a wrong shape: keep every app that parses."""
    try:
        answer = _raw_apps_decoder.decode(body)  # Raw elements: their text is not checked yet
    except (msgspec.DecodeError, RecursionError):
        what = "has an unexpected shape" if isinstance(first_error, msgspec.ValidationError) else "is not valid JSON"
        raise ParseError(f"apps answer {what}: {first_line(first_error)}") from None
    apps: list[RawApp] = []
    unreadable: set[str] = set()
    problems: list[str] = []
    complete = True
    for raw in (answer.apps.app if answer.apps and answer.apps.app else []):
        try:
            app = _decode_app(raw)
        except (msgspec.DecodeError, RecursionError) as exc:
            app_id = _loose_id(raw)
            if app_id is None:
                complete = False
            else:
                unreadable.add(app_id)
            problems.append(f"app {app_id or '<no id>'}: {first_line(exc)}")
            continue
        apps.append(app)
    return AppsPage(apps, frozenset(unreadable), complete, tuple(problems))


def _decode_app(raw: msgspec.Raw) -> RawApp:
    try:
        return _app_decoder.decode(raw)
    except msgspec.DecodeError:
        # Java writes a lone surrogate (text cut inside a pair, e.g. truncated diagnostics) as
        # bytes that are not UTF-8: read the app with U+FFFD in their place.
        text = bytes(raw)
        repaired = text.decode("utf-8", "replace").encode()
        if repaired == text:
            raise
        return _app_decoder.decode(repaired)


def _loose_id(raw: msgspec.Raw) -> str | None:
    try:
        value = json.loads(bytes(raw).decode("utf-8", "replace"))
    except (ValueError, RecursionError):
        return None
    app_id = value.get("id") if isinstance(value, dict) else None
    return app_id if isinstance(app_id, str) and _APP_ID.fullmatch(app_id) else None


_APP_ID = re.compile(r"application_[0-9]+_[0-9]+")


def parse_app(body: bytes) -> RawApp:
    """Parse ``/ws/v1/cluster/apps/{id}``."""
    try:
        return _one_app_decoder.decode(body).app
    except (msgspec.DecodeError, RecursionError) as exc:
        raise ParseError(f"app answer unreadable: {first_line(exc)}") from None


def parse_cluster_info(body: bytes) -> ClusterInfo:
    try:
        return _cluster_info_decoder.decode(body).clusterInfo
    except (msgspec.DecodeError, RecursionError) as exc:
        raise ParseError(f"cluster info unreadable: {first_line(exc)}") from None


class _Pairs(list):  # a JSON object kept as its (key, value) pairs, duplicates included
    pass


def resource_seconds(raw: msgspec.Raw | None) -> dict[str, int] | None:
    """Decode ``resourceSecondsMap`` keeping every repeated ``entry``.

    Shapes seen: ``{"entry": {"key": k, "value": v}, "entry": {...}}`` (duplicate keys),
    ``{"entry": [{...}, {...}]}`` and ``{"entry": {...}}`` with one resource.
    Values may be strings. Anything else gives ``None`` (unknown), never ``{}``.
    """
    if raw is None:
        return None
    fast = _resource_seconds_fast(raw)
    if fast is not None:
        return fast
    try:
        top = json.loads(bytes(raw), object_pairs_hook=_Pairs)
    except (ValueError, RecursionError):
        return None
    if not isinstance(top, _Pairs):
        return None
    entries: list[object] = []
    for key, value in top:
        if key == "entry":
            entries.extend(value if isinstance(value, list) and not isinstance(value, _Pairs) else [value])
    result: dict[str, int] = {}
    for entry in entries:
        if not isinstance(entry, _Pairs):
            continue
        fields = dict(entry)
        name, amount = fields.get("key"), as_int(fields.get("value"))
        if isinstance(name, str) and amount is not None:
            result[name] = amount
    return result or None


# The shape every 3.x RM sends: {"entry":{"key":"memory-mb","value":"30245"},"entry":{...}}, compact.
# Read with a pattern (this runs for every event); anything else takes the general path above.
_ENTRY = rb'"entry":\{"key":"([^"\\\x00-\x1f]*)","value":(?:"(-?[0-9]+)"|(-?(?:0|[1-9][0-9]*)))\}'
_ENTRIES = re.compile(rb"\{" + _ENTRY + rb"(?:," + _ENTRY + rb")*\}")
_ONE_ENTRY = re.compile(_ENTRY)


def _resource_seconds_fast(raw: msgspec.Raw) -> dict[str, int] | None:
    data = bytes(raw)
    if _ENTRIES.fullmatch(data) is None:
        return None
    try:
        found = {m[1].decode("utf-8"): int(m[2] or m[3]) for m in _ONE_ENTRY.finditer(data)}
    except (UnicodeDecodeError, ValueError):
        return None
    # a value wider than a Java long is junk: the general path drops that entry
    return found if all(LONG_MIN <= v <= LONG_MAX for v in found.values()) else None
