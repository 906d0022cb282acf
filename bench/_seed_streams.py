"""The streaming seed's design, rebuilt for the streams bench (its baseline).

As the seed (S3) runs it: a reader actor per partition polls its partition and
puts each message on a Ray queue; processor actors take them one by one, call
the algorithm's deployment and put the results on a second queue, and a
manager adds processors while the first queue is deep and removes them when
it is empty; a writer actor produces the results to the output topic. Nothing
is acknowledged to Kafka. Same broker, topics, data and deployment as
algo-mcp's side.
"""

from __future__ import annotations

import json
import threading
from typing import Any

import ray
from ray.util.queue import Queue

MAX_PROCESSORS = 4


@ray.remote(num_cpus=0)
class SeedReader:
    def __init__(self, bootstrap: str, topic: str, partition: int, queue: Queue) -> None:
        from confluent_kafka import Consumer, TopicPartition  # in the worker (this module is pickled by value)

        self.consumer = Consumer({"bootstrap.servers": bootstrap, "group.id": f"seed-{topic}",
                                  "enable.auto.commit": False})
        self.consumer.assign([TopicPartition(topic, partition, 0)])
        self.queue = queue
        threading.Thread(target=self._run, daemon=True).start()

    def _run(self) -> None:
        while True:
            message = self.consumer.poll(0.1)
            if message is not None and not message.error():
                self.queue.put((message.key(), message.value()))


@ray.remote(num_cpus=0)
class SeedProcessor:
    """An async actor: Serve handles in this cluster run their router on the caller's event loop."""

    def __init__(self, algorithm: str, source: Queue, sink: Queue) -> None:
        from ray import serve

        self.handle = serve.get_deployment_handle(algorithm, app_name=algorithm)
        self.source, self.sink = source, sink

    async def run(self) -> None:
        while True:
            try:
                key, value = await self.source.get_async(timeout=1)
            except Exception:  # Empty
                continue
            message = json.loads(value)
            result = await self.handle.remote({k: v for k, v in message.items() if k != "sent"})
            await self.sink.put_async((key, json.dumps({"result": result, "sent": message.get("sent")}).encode()))


@ray.remote(num_cpus=0)
class SeedWriter:
    def __init__(self, bootstrap: str, topic: str, sink: Queue) -> None:
        from confluent_kafka import Producer

        self.producer = Producer({"bootstrap.servers": bootstrap, "enable.idempotence": False})
        self.topic, self.sink = topic, sink
        threading.Thread(target=self._run, daemon=True).start()

    def _run(self) -> None:
        while True:
            try:
                key, value = self.sink.get(timeout=1)
            except Exception:  # Empty
                continue
            self.producer.produce(self.topic, value, key)
            self.producer.poll(0)


class SeedPipeline:
    """Readers, queues, processors scaled by the manager, a writer."""

    def __init__(self, bootstrap: str, source: str, sink: str, partitions: int, algorithm: str) -> None:
        self.algorithm = algorithm
        self.queue_in, self.queue_out = Queue(), Queue()
        self.actors: list[Any] = [SeedWriter.remote(bootstrap, sink, self.queue_out)]
        self.actors += [SeedReader.remote(bootstrap, source, p, self.queue_in) for p in range(partitions)]
        self.processors = [self._processor()]
        self._stop = threading.Event()
        self._manager = threading.Thread(target=self._manage, daemon=True)
        self._manager.start()

    def _processor(self) -> Any:
        processor = SeedProcessor.remote(self.algorithm, self.queue_in, self.queue_out)
        processor.run.remote()  # runs until killed
        return processor

    def _manage(self) -> None:
        while not self._stop.wait(1.0):
            depth = self.queue_in.qsize()
            if depth > 100 and len(self.processors) < MAX_PROCESSORS:
                self.processors.append(self._processor())
            elif depth == 0 and len(self.processors) > 1:
                ray.kill(self.processors.pop())

    def close(self) -> None:
        self._stop.set()
        self._manager.join()
        for actor in [*self.actors, *self.processors]:
            ray.kill(actor)
