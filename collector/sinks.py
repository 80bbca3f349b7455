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
from .events import Event

log = structlog.get_logger(__name__)


class SinkError(Exception):
    """Delivery failed; nothing of the batch may be assumed delivered."""


class Sink(Protocol):
    async def start(self) -> None: ...
    async def send(self, events: Sequence[Event], topics: Mapping[str, str]) -> None: ...
    async def close(self) -> None: ...


def producer_settings(cfg: KafkaConfig) -> dict[str, object]:
    """aiokafka producer arguments for the configuration (shared with benchmarks and tools)."""
    settings: dict[str, object] = {
        "bootstrap_servers": cfg.bootstrap_servers,
        "client_id": cfg.client_id,
        "acks": "all",
        "enable_idempotence": True,
        "compression_type": None if cfg.compression == "none" else cfg.compression,
        "linger_ms": cfg.linger_ms,
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


class KafkaSink:
    def __init__(self, cfg: KafkaConfig) -> None:
        self._cfg = cfg
        self._producer: AIOKafkaProducer | None = None

    async def start(self) -> None:
        producer = AIOKafkaProducer(**producer_settings(self._cfg))
        try:
            await producer.start()
        except KafkaError as exc:
            await producer.stop()
            raise SinkError(f"cannot connect to Kafka at {','.join(self._cfg.bootstrap_servers)}: {exc}") from None
        self._producer = producer

    async def send(self, events: Sequence[Event], topics: Mapping[str, str]) -> None:
        if not events:
            return
        if self._producer is None:
            await self.start()
        assert self._producer is not None
        try:
            async with asyncio.timeout(self._cfg.delivery_timeout):
                # Enqueue all first (batched by the producer), then wait for every ack.
                # Per-key order holds: one partition per key, idempotent in-flight ordering.
                pending = [
                    await self._producer.send(topics[e.topic_kind], e.encode(), key=e.key.encode())
                    for e in events
                ]
                await asyncio.gather(*pending)
        except (KafkaError, TimeoutError) as exc:
            raise SinkError(f"Kafka delivery failed: {type(exc).__name__}: {exc}") from None

    async def close(self) -> None:
        if self._producer is not None:
            try:
                await self._producer.stop()  # flushes what is still buffered
            finally:
                self._producer = None


class StdoutSink:
    def __init__(self, stream: IO[bytes] | None = None) -> None:
        self._stream = stream

    async def start(self) -> None:
        return None

    async def send(self, events: Sequence[Event], topics: Mapping[str, str]) -> None:
        stream = self._stream or sys.stdout.buffer
        for e in events:
            stream.write(e.encode() + b"\n")
        stream.flush()

    async def close(self) -> None:
        return None
