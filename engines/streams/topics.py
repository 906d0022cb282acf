"""What the gateway asks the broker itself (blocking librdkafka calls; callers run them in a thread)."""

from __future__ import annotations

from confluent_kafka.admin import AdminClient, NewTopic

from engines.errors import Unavailable, ValidationFailed
from engines.streams.spec import Broker

TIMEOUT_S = 10.0


def _admin(broker: Broker) -> AdminClient:
    return AdminClient(broker.client_config())


def partitions(broker: Broker, topic: str, field: str = "input_topic") -> int:
    """The topic's partition count; a topic the broker does not have is the caller's error."""
    try:
        # every topic, not just this one: asking for one by name makes brokers that auto-create make it
        metadata = _admin(broker).list_topics(timeout=TIMEOUT_S)
    except Exception as exc:
        raise Unavailable(f"broker {broker.bootstrap_servers}: cannot read topic metadata ({exc})") from None
    found = metadata.topics.get(topic)
    if found is None or found.error is not None or not found.partitions:
        raise ValidationFailed([f"{field}: no topic {topic!r} on the broker {broker.bootstrap_servers} "
                                "(create it first)"])
    return len(found.partitions)


def ensure(broker: Broker, topics: list[str], count: int) -> None:
    """Create the topics that do not exist yet, with ``count`` partitions (brokers may not auto-create)."""
    admin = _admin(broker)
    existing = admin.list_topics(timeout=TIMEOUT_S).topics
    missing = [NewTopic(t, count, 1) for t in topics if t not in existing]
    if not missing:
        return
    for topic, future in admin.create_topics(missing, request_timeout=TIMEOUT_S).items():
        try:
            future.result(TIMEOUT_S)
        except Exception as exc:
            if topic not in admin.list_topics(timeout=TIMEOUT_S).topics:  # another gateway may have won the race
                raise Unavailable(f"broker {broker.bootstrap_servers}: cannot create topic {topic!r} ({exc})") \
                    from None
