"""The collector's own Prometheus metrics, in one registry of its own (not the library's global).

Design, in short:

- ``Metrics`` owns a ``CollectorRegistry`` and every metric, and offers one small typed method
  per thing the code observes (``request_done``, ``poll_succeeded``, ``checkpoint_saved``, ...).
  Callers never touch ``prometheus_client`` objects, so names and labels live in this file only.
- ``METRICS`` is the process-wide instance the service, the HTTP layer and the Kafka sink report
  to, and that ``/metrics`` serves. Tests build their own ``Metrics`` with a fake clock.
- Ages are computed when scraped, not when set: the code reports *timestamps* (checkpoint
  written at, watermark, oldest waiting application) and a custom collector turns them into
  ``*_age_seconds`` / ``*_lag_seconds`` against the clock at scrape time, so an age keeps
  growing while nothing happens, which is exactly when it matters.
- Labels stay bounded: ``cluster`` (configured names), peer ``kind`` (rm, jhs, shs, webhdfs),
  ``endpoint`` (a path *template* such as ``/ws/v1/cluster/apps/{id}``: never a raw URL with
  ids), error kinds from small fixed sets, and the configured RM URLs.

Every name starts with ``hec_``.
"""

from __future__ import annotations

import re
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from typing import Literal

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest
from prometheus_client.core import GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

#: The ``Content-Type`` of what ``Metrics.render`` returns (Prometheus text format 0.0.4).
CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"

PeerKind = Literal["rm", "jhs", "shs", "webhdfs"]

#: Why one HTTP exchange failed. Transport kinds come from ``http.PeerError`` subclasses;
#: ``http_4xx``/``http_5xx`` are answers with such a status (a JobHistory or Spark History
#: Server answers 404 while it does not have an application yet: expected, and counted).
HttpErrorKind = Literal["timeout", "connection", "truncated", "too_large", "http_4xx", "http_5xx"]

#: Why a finished event went out with enrichment ``unavailable``: the history server never had
#: the figures within ``enrichment.max_age`` (``gave_up``), or it had the job but no figures
#: (``no_figures``, e.g. a MapReduce job that ended before any task reported).
UnavailableKind = Literal["gave_up", "no_figures", "other"]

#: Seconds; RM ``/apps`` answers of large clusters take several seconds, hence the long tail.
LATENCY_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0)


@dataclass(frozen=True, slots=True)
class PeerLabel:
    """Who an ``HttpPeer`` talks to, for its metrics."""

    cluster: str
    kind: PeerKind


# Path templates per peer kind; the first match names the endpoint. Anything else is "other",
# so an unexpected path can never add a label value per application.
_ID = r"[^/]+"
_TEMPLATES: dict[str, list[tuple[re.Pattern[str], str]]] = {
    "rm": [
        (re.compile(rf"^/ws/v1/cluster/apps/{_ID}$"), "/ws/v1/cluster/apps/{id}"),
        (re.compile(r"^/ws/v1/cluster/(apps|info|metrics|scheduler)$"), r"/ws/v1/cluster/\1"),
    ],
    "jhs": [
        (re.compile(rf"^/ws/v1/history/mapreduce/jobs/{_ID}$"), "/ws/v1/history/mapreduce/jobs/{id}"),
        (re.compile(rf"^/ws/v1/history/mapreduce/jobs/{_ID}/counters$"),
         "/ws/v1/history/mapreduce/jobs/{id}/counters"),
    ],
    "shs": [
        (re.compile(rf"^/api/v1/applications/{_ID}$"), "/api/v1/applications/{id}"),
        (re.compile(rf"^/api/v1/applications/{_ID}(/{_ID})?/allexecutors$"),
         "/api/v1/applications/{id}[/{attempt}]/allexecutors"),
    ],
    "webhdfs": [(re.compile(r"^/webhdfs/v1(/.*)?$"), "/webhdfs/v1/{path}")],
}


def endpoint_of(kind: str, path: str) -> str:
    """The path template of a request path, e.g. ``/ws/v1/cluster/apps/{id}``; else ``other``."""
    for pattern, template in _TEMPLATES.get(kind, []):
        match = pattern.match(path)
        if match:
            return match.expand(template) if "\\" in template else template
    return "other"


class _Ages(Collector):
    """Gauges computed at scrape time from the timestamps the service reports."""

    _HELP = {
        "hec_checkpoint_age_seconds": "Seconds since the cluster's checkpoint was last written.",
        "hec_watermark_lag_seconds": "Seconds between now and the watermark (the newest application end seen, "
        "on the RM's clock); it also grows while no application ends.",
        "hec_enrichment_oldest_age_seconds": "Seconds the oldest ended application has waited for its history "
        "server; 0 when none waits.",
    }

    def __init__(self, clock: Callable[[], float]) -> None:
        self._clock = clock
        self.stamps_ms: dict[str, dict[str, int | None]] = {name: {} for name in self._HELP}

    def describe(self) -> Iterator[Metric]:
        for name, text in self._HELP.items():
            yield GaugeMetricFamily(name, text, labels=["cluster"])

    def collect(self) -> Iterator[Metric]:
        now = self._clock()
        for name, text in self._HELP.items():
            family = GaugeMetricFamily(name, text, labels=["cluster"])
            for cluster, stamp_ms in sorted(self.stamps_ms[name].items()):
                age = 0.0 if stamp_ms is None else max(0.0, now - stamp_ms / 1000)
                family.add_metric([cluster], age)
            yield family


class Metrics:
    def __init__(self, clock: Callable[[], float] = time.time) -> None:
        """``clock``: wall-clock seconds, for the ages computed at scrape time."""
        self.registry = CollectorRegistry()
        r = self.registry
        peer = ["cluster", "peer", "endpoint"]
        self._requests = Counter("hec_http_requests", "HTTP exchanges with a peer (each retry counts).", peer,
                                 registry=r)
        self._http_errors = Counter("hec_http_errors", "HTTP exchanges that failed, by kind.", [*peer, "kind"],
                                    registry=r)
        self._latency = Histogram("hec_http_request_duration_seconds", "Time of one HTTP exchange, body included.",
                                  peer, buckets=LATENCY_BUCKETS, registry=r)
        self._events = Counter("hec_events_produced", "Events acknowledged by the sink, by type.",
                               ["cluster", "type"], registry=r)
        self._kafka_errors = Counter("hec_kafka_errors", "Kafka failures, by operation and error class.",
                                     ["operation", "error"], registry=r)
        self._backlog_events = Gauge("hec_delivery_backlog_events", "Events waiting for Kafka.", ["cluster"],
                                     registry=r)
        self._backlog_bytes = Gauge("hec_delivery_backlog_bytes", "Encoded bytes of the events waiting for Kafka.",
                                    ["cluster"], registry=r)
        self._enrichment_queue = Gauge("hec_enrichment_queue_size",
                                       "Ended applications waiting for their history server.", ["cluster"], registry=r)
        self._unavailable = Counter("hec_enrichment_unavailable",
                                    "Finished events published with enrichment unavailable, by reason kind.",
                                    ["cluster", "reason"], registry=r)
        self._active_rm = Gauge("hec_resourcemanager_active",
                                "1 for the ResourceManager URL in use, 0 for the other configured ones.",
                                ["cluster", "url"], registry=r)
        self._failovers = Counter("hec_resourcemanager_failovers", "Times the collector left a ResourceManager.",
                                  ["cluster"], registry=r)
        self._last_poll = Gauge("hec_last_successful_poll_timestamp_seconds",
                                "Unix time of the cluster's last successful ResourceManager poll.", ["cluster"],
                                registry=r)
        self._ages = _Ages(clock)
        r.register(self._ages)

    # --- HTTP layer ------------------------------------------------------------------------
    def request_done(self, peer: PeerLabel, path: str, seconds: float, error: HttpErrorKind | None) -> None:
        """One HTTP exchange ended (answered, or failed with ``error``)."""
        labels = (peer.cluster, peer.kind, endpoint_of(peer.kind, path))
        self._requests.labels(*labels).inc()
        self._latency.labels(*labels).observe(seconds)
        if error is not None:
            self._http_errors.labels(*labels, error).inc()

    def set_active_rm(self, cluster: str, urls: Sequence[str], active: str | None) -> None:
        """The RM in use (``None``: none known right now, every URL shows 0)."""
        for url in urls:
            self._active_rm.labels(cluster, url).set(1 if url == active else 0)

    def rm_failover(self, cluster: str) -> None:
        self._failovers.labels(cluster).inc()

    # --- Kafka -----------------------------------------------------------------------------
    def kafka_error(self, operation: Literal["connect", "send", "metadata"], error: BaseException) -> None:
        """``error`` is labelled by its class name (aiokafka's error classes: a small set)."""
        self._kafka_errors.labels(operation, type(error).__name__).inc()

    # --- service ---------------------------------------------------------------------------
    def events_produced(self, cluster: str, event_type: str, count: int = 1) -> None:
        self._events.labels(cluster, event_type).inc(count)

    def set_backlog(self, cluster: str, events: int, size_bytes: int) -> None:
        self._backlog_events.labels(cluster).set(events)
        self._backlog_bytes.labels(cluster).set(size_bytes)

    def poll_succeeded(self, cluster: str, at_ms: int) -> None:
        self._last_poll.labels(cluster).set(at_ms / 1000)

    def checkpoint_saved(self, cluster: str, at_ms: int) -> None:
        self._ages.stamps_ms["hec_checkpoint_age_seconds"][cluster] = at_ms

    def set_watermark(self, cluster: str, watermark_ms: int | None) -> None:
        """The newest application end seen (RM clock); ``None`` (none yet) shows no sample."""
        stamps = self._ages.stamps_ms["hec_watermark_lag_seconds"]
        if watermark_ms is None:
            stamps.pop(cluster, None)
        else:
            stamps[cluster] = watermark_ms

    def set_enrichment_queue(self, cluster: str, size: int, oldest_ended_ms: int | None) -> None:
        """How many applications wait, and when the one waiting longest ended (None: empty queue)."""
        self._enrichment_queue.labels(cluster).set(size)
        self._ages.stamps_ms["hec_enrichment_oldest_age_seconds"][cluster] = oldest_ended_ms

    def enrichment_unavailable(self, cluster: str, reason: UnavailableKind) -> None:
        self._unavailable.labels(cluster, reason).inc()

    # --- exposition ------------------------------------------------------------------------
    def render(self) -> bytes:
        """Everything, in the Prometheus text format (``CONTENT_TYPE``)."""
        return generate_latest(self.registry)


#: The process-wide metrics, served by ``/metrics``.
METRICS = Metrics()
