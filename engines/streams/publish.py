"""One record to a topic, known to be on the broker: a task's final record (S1's "results sent
through the message queue"), beside or instead of its callback."""

from __future__ import annotations

import asyncio
import json
import logging
import re
from typing import Any

from confluent_kafka import KafkaError, Producer

from engines.errors import ValidationFailed
from engines.retries import backoff
from engines.streams import topics
from engines.streams.spec import Broker

log = logging.getLogger(__name__)

#: Kafka's own rule for topic names
TOPIC_PATTERN = r"^[A-Za-z0-9._-]{1,249}$"
ATTEMPTS = 5
TIMEOUT_S = 10.0


class _NotPublished(Exception):
    """The broker did not acknowledge the record."""


async def check_topic(field: str, topic: str, bootstrap_servers: str | None) -> None:
    """Refuse, naming ``field``, a topic that is not a topic name or not on the gateway's broker."""
    if not re.fullmatch(TOPIC_PATTERN, topic):
        raise ValidationFailed([f"{field}: must be a Kafka topic name ({TOPIC_PATTERN}) (got {topic[:60]!r})"])
    if not bootstrap_servers:
        raise ValidationFailed([f"{field}: this gateway has no broker (set KAFKA_BOOTSTRAP_SERVERS)"])
    await asyncio.to_thread(topics.partitions, Broker(bootstrap_servers=bootstrap_servers), topic, field)


class Publisher:
    """A producer for one broker, made on first use (most tasks publish nothing)."""

    def __init__(self, bootstrap_servers: str, client_id: str) -> None:
        self._config = {"bootstrap.servers": bootstrap_servers, "client.id": client_id, "acks": "all",
                        "enable.idempotence": False}  # Tansu loses data with idempotent producers
        self._producer: Producer | None = None

    def _produce(self, topic: str, key: str, value: bytes) -> None:
        if self._producer is None:
            self._producer = Producer(self._config)
        outcome: list[KafkaError | None] = []
        self._producer.produce(topic, value=value, key=key, on_delivery=lambda err, _msg: outcome.append(err))
        self._producer.flush(TIMEOUT_S)
        if not outcome or outcome[0] is not None:
            raise _NotPublished(str(outcome[0]) if outcome else f"not acknowledged within {TIMEOUT_S:g} s")

    async def publish(self, topic: str, key: str, record: dict[str, Any]) -> bool:
        """Produce ``record`` as JSON under ``key`` with backoff; True once the broker has it.
        Failures are logged, never raised: like a callback, it follows an end already written."""
        value = json.dumps(record, separators=(",", ":")).encode()
        try:
            await backoff(attempts=ATTEMPTS, initial_s=0.5, max_s=8.0, jitter_s=0.5).on(_NotPublished)(
                asyncio.to_thread, self._produce, topic, key, value)
        except _NotPublished as last:
            log.warning("task %s: its record was not published to %s after %d attempts: %s", key, topic, ATTEMPTS,
                        last)
            return False
        return True
