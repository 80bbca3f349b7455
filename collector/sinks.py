"""Where events go: Kafka (the service) or stdout as JSON lines (``once``, debugging).

``send`` returns only when every event of the batch is acknowledged (Kafka: ``acks=all``
on an idempotent producer), which is what lets the caller commit its state afterwards.
"""

from __future__ import annotations

import asyncio
import sys
from collections.abc import Mapping, Sequence
from typing import IO, Protocol

import structlog
from aiokafka import AIOKafkaProducer
from aiokafka.errors import KafkaError

from .config import KafkaConfig
from .events import Publishable
from .metrics import METRICS

log = structlog.get_logger(__name__)


#: At stop, the longest wait for the producer to flush and close.
CLOSE_TIMEOUT_S = 5.0


class SinkError(Exception):
    """Delivery of a batch failed, in part or whole.

    ``delivered`` holds the ids of the events that were acknowledged anyway: the caller
    commits exactly those, so a retry neither repeats them under new ids nor skips the rest.
    """

    def __init__(self, message: str, delivered: frozenset[str] = frozenset()) -> None:
        super().__init__(message)
        self.delivered = delivered


class Sink(Protocol):
    async def start(self) -> None: ...
    async def send(self, events: Sequence[Publishable], topics: Mapping[str, str]) -> None: ...
    async def close(self) -> None: ...


def client_settings(cfg: KafkaConfig) -> dict[str, object]:
    """Connection and security arguments every aiokafka client of ours takes."""
    settings: dict[str, object] = {
        "bootstrap_servers": cfg.bootstrap_servers,
        "client_id": cfg.client_id,
        "request_timeout_ms": int(cfg.request_timeout * 1000),
        "security_protocol": cfg.security_protocol,
    }
    if cfg.sasl_mechanism:
        settings["sasl_mechanism"] = cfg.sasl_mechanism
        settings["sasl_plain_username"] = cfg.sasl_username
        settings["sasl_plain_password"] = str(cfg.sasl_password) if cfg.sasl_password else None
    if cfg.security_protocol in ("SSL", "SASL_SSL"):
        from aiokafka.helpers import create_ssl_context

        settings["ssl_context"] = create_ssl_context(cafile=cfg.ssl_cafile)
    return settings


def producer_settings(cfg: KafkaConfig) -> dict[str, object]:
    """aiokafka producer arguments for the configuration (shared with benchmarks and tools)."""
    return {
        **client_settings(cfg),
        "acks": "all",
        "enable_idempotence": True,
        "compression_type": None if cfg.compression == "none" else cfg.compression,
        "linger_ms": cfg.linger_ms,
    }


def describe(exc: BaseException) -> str:
    """``Type: message`` on one line (aiokafka's messages already start with the type)."""
    name = type(exc).__name__
    text = " ".join(str(exc).split())
    if not text:
        return name
    return text if text.startswith(name) else f"{name}: {text}"


class KafkaSink:
    def __init__(self, cfg: KafkaConfig) -> None:
        self._cfg = cfg
        self._producer: AIOKafkaProducer | None = None
        #: Why Kafka does not take events right now (one line), None while it does: for /readyz.
        self.problem: str | None = "not connected yet"

    async def start(self) -> None:
        producer = AIOKafkaProducer(**producer_settings(self._cfg))
        try:
            await producer.start()
        except KafkaError as exc:
            await producer.stop()
            METRICS.kafka_error("connect", exc)
            self.problem = f"cannot connect to Kafka at {','.join(self._cfg.bootstrap_servers)}: {describe(exc)}"
            raise SinkError(self.problem) from None
        self._producer = producer
        self.problem = None

    async def send(self, events: Sequence[Publishable], topics: Mapping[str, str]) -> None:
        if not events:
            return
        if self._producer is None:
            await self.start()
        assert self._producer is not None
        # Enqueue all (the producer batches them), then wait until every one is settled:
        # acknowledged, or failed by the producer itself after request_timeout. Nothing is
        # abandoned in the producer's buffer to turn up later beside a retried copy.
        # Per-key order holds: one partition per key, idempotent in-flight ordering.
        futures: list[asyncio.Future[object]] = []
        failure: BaseException | None = None
        for event in events:
            try:
                futures.append(
                    await self._producer.send(topics[event.topic_kind], event.encode(), key=event.key.encode())
                )
            except KafkaError as exc:  # e.g. no metadata for the topic within request_timeout
                failure = exc
                break
        await self._settled(futures)
        results = [f.exception() or f.result() for f in futures]
        delivered = frozenset(e.id for e, r in zip(events, results, strict=False) if not isinstance(r, BaseException))
        failure = failure or next((r for r in results if isinstance(r, BaseException)), None)
        if failure is not None:
            METRICS.kafka_error("send", failure)
            self.problem = f"Kafka delivered {len(delivered)} of {len(events)} events: {describe(failure)}"
            # A new producer (new producer id) for the retry: after a failed batch the old one's
            # idempotence sequence can stay out of step with the broker's, and every later send
            # to that partition fails with OutOfOrderSequenceNumber until the process restarts.
            await self._discard_producer()
            raise SinkError(self.problem, delivered)
        self.problem = None

    async def _discard_producer(self) -> None:
        producer, self._producer = self._producer, None
        if producer is None:
            return
        try:  # its batches have all settled (failed or acknowledged): nothing left to flush
            await asyncio.wait_for(producer.stop(), timeout=self._cfg.request_timeout)
        except (KafkaError, TimeoutError) as exc:
            log.warning("kafka.producer_stop_failed", error=describe(exc))

    async def _settled(self, futures: list[asyncio.Future[object]]) -> None:
        """Wait for every send to settle. The producer retries a broker that does not answer
        for as long as it takes; say so every ``request_timeout`` (one line), and keep waiting:
        giving up here would leave batches that land later, beside their retried copies."""
        pending: set[asyncio.Future[object]] = set(futures)
        waited = 0.0
        while pending:
            _, pending = await asyncio.wait(pending, timeout=self._cfg.request_timeout)
            if pending:
                waited += self._cfg.request_timeout
                self.problem = f"{len(pending)} event(s) unacknowledged for {round(waited)}s"
                log.warning("kafka.delivery_slow", waiting_s=round(waited), unacknowledged=len(pending))

    async def close(self, timeout: float = CLOSE_TIMEOUT_S) -> None:
        """Flush and stop the producer, for at most ``timeout``: with the broker gone, aiokafka
        would wait for it for ever (found by review: a stop outlived its shutdown bound). What
        is left unsent is not lost: the checkpoint has only what Kafka acknowledged."""
        producer, self._producer = self._producer, None
        if producer is None:
            return
        try:
            await asyncio.wait_for(producer.stop(), timeout=timeout)
        except TimeoutError:
            log.warning("kafka.close_abandoned", waited_s=timeout,
                        reason="the broker did not take the producer's last batches")
        except KafkaError as exc:
            log.warning("kafka.producer_stop_failed", error=describe(exc))


class StdoutSink:
    def __init__(self, stream: IO[bytes] | None = None) -> None:
        self._stream = stream
        self.problem: str | None = None

    async def start(self) -> None:
        return None

    async def send(self, events: Sequence[Publishable], topics: Mapping[str, str]) -> None:
        stream = self._stream or sys.stdout.buffer
        for e in events:
            stream.write(e.encode() + b"\n")
        stream.flush()

    async def close(self) -> None:
        return None
