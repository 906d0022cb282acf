"""Streams: algo-mcp's pipelines against the streaming seed's design, same broker, topics, data and deployment.

One run, one local Ray, one Tansu broker (in memory), topics of 3 partitions:

* backlog: N JSON messages already in the topic, through ``local-echo``, until
  every id is in the output topic (messages/s end to end);
* live: messages produced at a steady rate, each carrying its send time; the
  latency is when a reader of the output topic sees it, minus that time;
* MiniLM: the backlog through ``text-embedding`` against the same deployment
  called directly (one text per call, enough in flight to fill its batches).

Goals (issue #13): backlog ≥ 100x the seed's; live p99 ≤ 250 ms at 2,500 msg/s;
MiniLM through the pipeline ≥ 80% of the direct calls.
"""

from __future__ import annotations

import asyncio
import multiprocessing
import os
import sys
import threading
import time
import uuid
from multiprocessing.synchronize import Event
from pathlib import Path

import orjson
import yaml
from _common import note, percentile, print_table, run
from _seed_streams import SeedPipeline

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))  # the tests' broker helper

from engines.algorithms.registry import Registry  # noqa: E402
from engines.runtime import Runtime  # noqa: E402
from engines.settings import Settings  # noqa: E402
from tests.kafka_fixture import Broker, running_broker  # noqa: E402

PARTITIONS = 3
BACKLOG_OURS = int(os.environ.get("BENCH_STREAMS_BACKLOG", 100_000))
BACKLOG_SEED = 1_500
LIVE_RATE, LIVE_S = 2_500, 8
SEED_LIVE_RATE, SEED_LIVE_S = 50, 10
EMBED_N = 2_000

REGISTRY = {"algorithms": [
    {"name": "local-echo", "kind": "local", "target": "engines.builtin.echo:Echo", "num_cpus": 0.1,
     "max_concurrency": 64, "max_queued": 1024},
    {"name": "text-embedding", "kind": "local", "target": "engines.builtin.embedding:MiniLM", "num_cpus": 0.5,
     "max_concurrency": 64, "max_queued": 1024, "batch": {"max_batch_size": 16, "batch_wait_timeout_s": 0.005}}]}


def fresh(broker: Broker, what: str) -> tuple[str, str]:
    tag = uuid.uuid4().hex[:6]
    for name in (f"{what}-in-{tag}", f"{what}-out-{tag}"):  # the seed's writer makes no topic
        broker.create_topic(name, PARTITIONS)
    return f"{what}-in-{tag}", f"{what}-out-{tag}"


def echo_messages(n: int) -> list[tuple[str, bytes]]:
    return [(str(i), orjson.dumps({"text": f"message {i}"})) for i in range(n)]


def drain_rate(broker: Broker, topic: str, n: int, timeout_s: float = 240, skip: bytes = b"w") -> float:
    """Messages per second once flowing: ``n`` distinct ids over the span of their output's produce times
    (start-up, the same for both designs' first message, left out; keys starting with ``skip``, warm-up
    messages, too)."""
    got = broker.read(topic, n, timeout_s)
    assert len({m.key() for m in got}) >= n, f"only {len({m.key() for m in got})} of {n} in {topic}"
    stamps = sorted(m.timestamp()[1] for m in got if not m.key().startswith(skip))
    return (len(stamps) - 1) / ((stamps[-1] - stamps[0]) / 1000)


def live(broker: Broker, source: str, sink: str, rate: int, seconds: float) -> list[float]:
    """Produce at ``rate``/s for ``seconds``; the latency of each message, as a reader of ``sink`` sees it."""
    from confluent_kafka import Consumer, Producer, TopicPartition

    total = int(rate * seconds)
    reader = Consumer({"bootstrap.servers": broker.bootstrap, "group.id": f"live-{uuid.uuid4().hex}",
                       "enable.auto.commit": False, "fetch.wait.max.ms": 5})
    reader.assign([TopicPartition(sink, p, 0) for p in range(PARTITIONS)])
    latencies: dict[bytes, float] = {}
    done = threading.Event()

    def read() -> None:
        deadline = time.monotonic() + seconds + 60
        while len(latencies) < total and time.monotonic() < deadline:
            for m in reader.consume(1000, 0.05):
                if not m.error() and m.key() not in latencies:
                    latencies[m.key()] = time.time() - orjson.loads(m.value())["sent"]
        done.set()

    threading.Thread(target=read, daemon=True).start()
    producer = Producer({"bootstrap.servers": broker.bootstrap, "enable.idempotence": False, "linger.ms": 1})
    start = time.monotonic()
    for i in range(total):
        pause = start + i / rate - time.monotonic()
        if pause > 0:
            time.sleep(pause)
        producer.produce(source, orjson.dumps({"text": f"live {i}", "sent": time.time()}), str(i))
        producer.poll(0)
    producer.flush(30)
    done.wait()
    reader.close()
    assert len(latencies) == total, f"live: {len(latencies)} of {total} arrived"
    return list(latencies.values())


def kafka_alone(broker: Broker, n: int) -> float:
    """The ceiling here: one process consuming, producing (the same JSON round trip) and committing per
    batch, with no algorithm, no Ray and nothing else; its output rate as :func:`drain_rate` counts it."""
    from confluent_kafka import Consumer, Producer

    source, sink = fresh(broker, "alone")
    broker.produce(source, echo_messages(n))
    consumer = Consumer({"bootstrap.servers": broker.bootstrap, "group.id": f"alone-{source}",
                         "enable.auto.commit": False, "auto.offset.reset": "earliest"})
    producer = Producer({"bootstrap.servers": broker.bootstrap, "enable.idempotence": False, "linger.ms": 2,
                         "max.in.flight.requests.per.connection": 1})
    consumer.subscribe([source])
    done = 0
    while done < n:
        batch = [m for m in consumer.consume(256, 0.01) if not m.error()]
        for m in batch:
            producer.produce(sink, orjson.dumps({"key": m.key().decode(), "result": orjson.loads(m.value())}), m.key())
        producer.flush(30)
        if batch:
            consumer.commit(asynchronous=False)
        done += len(batch)
    consumer.close()
    return drain_rate(broker, sink, n)


def _echo(bootstrap: str, source: str, sink: str, stop_echo: Event) -> None:
    """A plain consume-produce loop, in a process of its own (as a consumer is): produce each message as
    it came, wait for the broker's acknowledgement, commit."""
    from confluent_kafka import Consumer, Producer

    consumer = Consumer({"bootstrap.servers": bootstrap, "group.id": f"alone-{source}", "enable.auto.commit": False,
                         "auto.offset.reset": "earliest", "fetch.wait.max.ms": 10})
    producer = Producer({"bootstrap.servers": bootstrap, "enable.idempotence": False, "linger.ms": 2})
    consumer.subscribe([source])
    while not stop_echo.is_set():
        batch = [m for m in consumer.consume(256, 0.01) if not m.error()]
        for m in batch:
            producer.produce(sink, m.value(), m.key())
        producer.flush(30)
        if batch:
            consumer.commit(asynchronous=True)
    consumer.close()


def kafka_alone_live(broker: Broker) -> list[float]:
    """The live ceiling here: the same measurement through :func:`_echo`, with the pipelines' fetch wait and no
    algorithm and no Ray in the path; the rest of the machine as for the pipeline."""
    source, sink = fresh(broker, "alone-live")
    spawn = multiprocessing.get_context("spawn")
    stop_echo = spawn.Event()
    echo = spawn.Process(target=_echo, args=(broker.bootstrap, source, sink, stop_echo), daemon=True)
    echo.start()
    try:
        live(broker, source, sink, 20, 3)  # until it has joined its group
        return live(broker, source, sink, LIVE_RATE, LIVE_S)
    finally:
        stop_echo.set()
        echo.join(30)


async def stop(runtime: Runtime, name: str) -> None:
    """Stop a pipeline and wait until its consumers have left: the next figure is measured on its own."""
    await runtime.pipelines.stop(name)
    deadline = time.monotonic() + 60
    while (await runtime.pipelines.inspect(name))["live_consumers"] and time.monotonic() < deadline:
        await asyncio.sleep(0.5)


async def ours(runtime: Runtime, broker: Broker) -> dict[str, float]:
    figures: dict[str, float] = {}
    source, sink = fresh(broker, "backlog")
    broker.produce(source, echo_messages(BACKLOG_OURS))
    await runtime.pipelines.start({"name": "backlog", "input_topic": source, "algorithm": "local-echo",
                                   "output_topic": sink,  # a consumer per partition, as a backlog wants
                                   "scaling": {"min_consumers": PARTITIONS, "max_consumers": PARTITIONS}})
    figures["backlog"] = await asyncio.to_thread(drain_rate, broker, sink, BACKLOG_OURS)
    await stop(runtime, "backlog")

    source, sink = fresh(broker, "live")
    await runtime.pipelines.start({"name": "live", "input_topic": source, "algorithm": "local-echo",
                                   "output_topic": sink, "input_map": {"text": "text"},
                                   "output_map": {"sent": "input.sent", "result": "result"}})
    await asyncio.to_thread(live, broker, source, sink, 20, 3)  # until its consumer runs
    source_lat = await asyncio.to_thread(live, broker, source, sink, LIVE_RATE, LIVE_S)
    figures["live_p50"], figures["live_p99"] = percentile(source_lat, 50) * 1e3, percentile(source_lat, 99) * 1e3
    await stop(runtime, "live")

    source, sink = fresh(broker, "embed")
    texts = [(str(i), orjson.dumps({"texts": [f"review number {i}: the battery lasts all day"]}))
             for i in range(EMBED_N)]
    await runtime.pipelines.start({"name": "embed", "input_topic": source, "algorithm": "text-embedding",
                                   "output_topic": sink, "batch_size": 64})
    warm = [(f"w{i}", orjson.dumps({"texts": ["warming up"]})) for i in range(40)]
    broker.produce(source, warm)  # the consumer joined, the model loaded
    await asyncio.to_thread(broker.read, sink, len(warm), 120)
    broker.produce(source, texts)
    figures["embed_pipeline"] = await asyncio.to_thread(drain_rate, broker, sink, EMBED_N + len(warm))
    await stop(runtime, "embed")
    figures["embed_direct"] = await direct_embedding(runtime)
    return figures


async def deployment_alone(n: int) -> float:
    """The other ceiling: ``local-echo``'s deployment alone, sent the pipeline's batches (256 inputs in one
    request, as ``AlgorithmReplica.many`` takes them) from one caller per partition; no Kafka."""
    from engines.serving.client import AlgorithmClient

    client = AlgorithmClient()
    handle = client.handle("local-echo")
    batch = [{"text": f"message {i}"} for i in range(256)]
    rounds = n // 256 // PARTITIONS

    async def caller() -> None:
        for _ in range(rounds):
            await handle.many.remote(batch, None)

    started = time.monotonic()
    await asyncio.gather(*(caller() for _ in range(PARTITIONS)))
    seconds = time.monotonic() - started
    await client.close()
    return rounds * PARTITIONS * 256 / seconds


async def direct_embedding(runtime: Runtime) -> float:
    """The same deployment, one text per call, 64 in flight (its batches fill)."""
    from engines.serving.client import AlgorithmClient

    client = AlgorithmClient()
    queue = list(range(EMBED_N))

    async def caller() -> None:
        while queue:
            i = queue.pop()
            await client.call("text-embedding", {"texts": [f"review number {i}: the battery lasts all day"]}, 60)

    started = time.monotonic()
    await asyncio.gather(*(caller() for _ in range(64)))
    seconds = time.monotonic() - started
    await client.close()
    return EMBED_N / seconds


def seed(broker: Broker) -> dict[str, float]:
    figures: dict[str, float] = {}
    source, sink = fresh(broker, "seed-backlog")
    broker.produce(source, echo_messages(BACKLOG_SEED))
    pipeline = SeedPipeline(broker.bootstrap, source, sink, PARTITIONS, "local-echo")
    figures["backlog"] = drain_rate(broker, sink, BACKLOG_SEED)
    pipeline.close()
    source, sink = fresh(broker, "seed-live")
    pipeline = SeedPipeline(broker.bootstrap, source, sink, PARTITIONS, "local-echo")
    live(broker, source, sink, 10, 2)  # until its actors run
    latencies = live(broker, source, sink, SEED_LIVE_RATE, SEED_LIVE_S)
    figures["live_p50"], figures["live_p99"] = percentile(latencies, 50) * 1e3, percentile(latencies, 99) * 1e3
    pipeline.close()
    return figures


async def main() -> None:
    with running_broker(Path(os.environ.get("TMPDIR", "/tmp"))) as broker:
        tmp = Path(f"/tmp/bench-streams-{os.getpid()}")
        tmp.mkdir(exist_ok=True)
        registry_file = tmp / "algorithms.yaml"
        registry_file.write_text(yaml.safe_dump(REGISTRY))
        settings = Settings(_env_file=None, log_level="WARNING", data_dir=tmp / "data",
                            kafka_bootstrap_servers=broker.bootstrap, kafka_session_timeout_ms=3000,
                            local_cluster_linger_s=0)  # idle consumers of a lingering cluster skew a next run
        async with Runtime(settings, Registry.load(registry_file)) as runtime:
            await runtime.started()
            note("seed design: backlog, then live")
            theirs = await asyncio.to_thread(seed, broker)
            note("algo-mcp: backlog, live, MiniLM")
            mine = await ours(runtime, broker)
            note("Kafka alone: consume, produce, commit; no algorithm")
            ceiling = await asyncio.to_thread(kafka_alone, broker, BACKLOG_OURS)
            note("local-echo's deployment alone: the pipeline's batches, no Kafka")
            serve_ceiling = await deployment_alone(BACKLOG_OURS)
            note("Kafka alone, live: a plain consume-produce loop at the same rate")
            live_ceiling = percentile(await asyncio.to_thread(kafka_alone_live, broker), 99) * 1e3
    backlog = mine["backlog"] / theirs["backlog"]
    embed = mine["embed_pipeline"] / mine["embed_direct"]
    print_table(["figure", "seed design", "algo-mcp", "ratio / value", "goal", "met"], [
        ["backlog through local-echo (msg/s)", f"{theirs['backlog']:.0f}", f"{mine['backlog']:.0f}",
         f"{backlog:.0f}x", "≥ 100x", "✓" if backlog >= 100 else
         f"✗ (ceilings here: Kafka alone {ceiling:.0f} msg/s, {ceiling / theirs['backlog']:.0f}x; the "
         f"deployment alone {serve_ceiling:.0f} msg/s, {serve_ceiling / theirs['backlog']:.0f}x)"],
        [f"live p50 / p99 (seed at {SEED_LIVE_RATE} msg/s, ours at {LIVE_RATE})",
         f"{theirs['live_p50']:.0f} / {theirs['live_p99']:.0f} ms",
         f"{mine['live_p50']:.0f} / {mine['live_p99']:.0f} ms",
         f"p99 {mine['live_p99']:.0f} ms (Kafka alone, no algorithm: {live_ceiling:.0f} ms)", "≤ 250 ms",
         "✓" if mine["live_p99"] <= 250 else "✗"],
        ["MiniLM: pipeline vs direct calls (msg/s)", f"direct {mine['embed_direct']:.0f}",
         f"{mine['embed_pipeline']:.0f}", f"{embed:.0%}", "≥ 80%", "✓" if embed >= 0.8 else "✗"],
    ])


if __name__ == "__main__":
    run(main)
