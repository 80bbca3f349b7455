"""Are the configured topics there and ours to write? Asked of Kafka before ``run`` starts and by
``check``.

A missing topic is a problem only when the broker does not create topics on first write
(``auto.create.topics.enable=false``, as on most production clusters): the producer would
otherwise wait for its metadata forever, one timeout after another. A topic the collector's
principal may not see answers ``TOPIC_AUTHORIZATION_FAILED``. Both are said in one line naming
the topic and the clusters that write to it.

The metadata request asks *not* to create topics, so checking never creates one by accident.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from aiokafka.client import AIOKafkaClient
from aiokafka.errors import for_code
from aiokafka.protocol.admin import DescribeConfigsRequest
from aiokafka.protocol.metadata import MetadataRequest

from .config import ClusterConfig, KafkaConfig
from .sinks import client_settings

# Kafka protocol error codes (org.apache.kafka.common.protocol.Errors).
NONE = 0
UNKNOWN_TOPIC_OR_PARTITION = 3
INVALID_TOPIC = 17
TOPIC_AUTHORIZATION_FAILED = 29

BROKER_RESOURCE = 4  # DescribeConfigs resource type of a broker
AUTO_CREATE = "auto.create.topics.enable"


@dataclass(frozen=True, slots=True)
class AutoCreate:
    """The broker's ``auto.create.topics.enable``; ``enabled`` None when it could not be read."""

    enabled: bool | None
    why_unknown: str = ""


@dataclass(frozen=True, slots=True)
class TopicCheck:
    topic: str
    clusters: tuple[str, ...]
    #: ``ok``, ``MISSING``, ``NOT AUTHORIZED``, ``INVALID``, or the broker's error name.
    status: str
    detail: str = ""
    #: ``run`` refuses to start on it.
    fatal: bool = False

    def line(self) -> str:
        names = ", ".join(self.clusters)
        text = f"topic {self.topic}: {self.status} (cluster{'s' if len(self.clusters) > 1 else ''} {names})"
        return f"{text}: {self.detail}" if self.detail else text


def topics_of(clusters: Sequence[ClusterConfig]) -> dict[str, tuple[str, ...]]:
    """Every topic in use, with the clusters that write to it, in a stable order."""
    users: dict[str, list[str]] = {}
    for cluster in clusters:
        for topic in cluster.topics_in_use():
            users.setdefault(topic, []).append(cluster.name)
    return {topic: tuple(users[topic]) for topic in sorted(users)}


def classify(topic: str, clusters: tuple[str, ...], error_code: int, auto_create: AutoCreate) -> TopicCheck:
    """What the broker's metadata answer for one topic means for the collector."""
    if error_code == NONE:
        return TopicCheck(topic, clusters, "ok")
    if error_code == UNKNOWN_TOPIC_OR_PARTITION:
        if auto_create.enabled:
            return TopicCheck(topic, clusters, "ok",
                              f"not there yet; the broker creates it on first write ({AUTO_CREATE}=true)")
        if auto_create.enabled is False:
            why = f"it does not exist and the broker does not create topics ({AUTO_CREATE}=false)"
        else:
            why = f"it does not exist, and whether the broker creates it is unknown ({auto_create.why_unknown})"
        return TopicCheck(topic, clusters, "MISSING", f"{why}; create it first", fatal=True)
    if error_code == TOPIC_AUTHORIZATION_FAILED:
        return TopicCheck(topic, clusters, "NOT AUTHORIZED", "the broker refuses to describe it to the collector's "
                          "principal (TOPIC_AUTHORIZATION_FAILED): grant it DESCRIBE and WRITE on the topic",
                          fatal=True)
    if error_code == INVALID_TOPIC:
        return TopicCheck(topic, clusters, "INVALID", "not a valid Kafka topic name (letters, digits, '.', '_', '-')",
                          fatal=True)
    # Anything else (e.g. LEADER_NOT_AVAILABLE while a partition moves) is the broker's passing trouble.
    return TopicCheck(topic, clusters, for_code(error_code).__name__, f"the broker answered error {error_code}")


async def check_topics(cfg: KafkaConfig, clusters: Sequence[ClusterConfig]) -> list[TopicCheck]:
    """Ask the broker about every topic in use. Raises ``aiokafka.errors.KafkaError`` when no
    broker answers."""
    topics = topics_of(clusters)
    client = AIOKafkaClient(**client_settings(cfg))
    try:
        await client.bootstrap()
        node = client.get_random_node()
        answer = await client.send(node, MetadataRequest(list(topics), allow_auto_topic_creation=False))
        codes = {t["topic"]: t["error_code"] for t in answer.to_object()["topics"]}
        auto = AutoCreate(None, "not asked")
        if UNKNOWN_TOPIC_OR_PARTITION in codes.values():
            auto = await _auto_create(client, node)
    finally:
        await client.close()
    return [classify(topic, users, codes.get(topic, UNKNOWN_TOPIC_OR_PARTITION), auto)
            for topic, users in topics.items()]


async def _auto_create(client: AIOKafkaClient, node: int) -> AutoCreate:
    answer = await client.send(node, DescribeConfigsRequest([(BROKER_RESOURCE, str(node), [AUTO_CREATE])]))
    (resource,) = answer.to_object()["resources"]
    if resource["error_code"] != NONE:
        return AutoCreate(None, f"cannot read {AUTO_CREATE}: {for_code(resource['error_code']).__name__}")
    values = [e["config_value"] for e in resource["config_entries"] if e["config_names"] == AUTO_CREATE]
    if not values or values[0] not in ("true", "false"):
        return AutoCreate(None, f"the broker did not report {AUTO_CREATE}")
    return AutoCreate(values[0] == "true")
