"""Pipelines against the real broker (Tansu), Ray and Redis: through MCP and REST, dead letters, a killed
consumer, a slow and a failing algorithm.

Every pipeline here reads its own topics, so tests do not see each other's messages.
"""

from __future__ import annotations

import asyncio
import json
import os
import signal
import time
import uuid
from dataclasses import replace
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import boto3
import httpx
import orjson
import ray
import yaml
from ray import serve

from engines.streams.pipelines import member_prefix
from engines.tasks.worker import worker_app_name
from tests.conftest import Running, free_port
from tests.kafka_fixture import Broker, running_broker
from tests.mcp_clients import http_session
from tests.polling import poll
from tests.s3_fixture import SeaweedS3, seaweed_s3  # noqa: F401  (a fixture)
from tests.test_restart import start_gateway


def topics(kafka: Broker, name: str, partitions: int = 3) -> tuple[str, str, str]:
    """Fresh input, output and dead-letter topic names (the input created)."""
    tag = uuid.uuid4().hex[:6]
    names = f"{name}-in-{tag}", f"{name}-out-{tag}", f"{name}-dead-{tag}"
    kafka.create_topic(names[0], partitions)
    return names


async def inspect(http: httpx.AsyncClient, name: str) -> dict[str, Any]:
    answer = await http.get(f"/pipelines/{name}")
    assert answer.status_code == 200, answer.text
    return answer.json()


async def every_id_out(broker: Broker, sink: str, n: int) -> int:
    """Assert that ids 0..n-1 all reached ``sink`` (local-echo's results); the duplicates, which at least
    once allows."""
    out = await asyncio.to_thread(broker.read, sink, n, 300)
    ids = [int(orjson.loads(m.value())["result"]["text"]) for m in out]
    assert set(ids) == set(range(n)), f"lost {n - len(set(ids))} of {n}"
    return len(ids) - n


async def stopped(http: httpx.AsyncClient, name: str) -> None:
    assert (await http.delete(f"/pipelines/{name}")).json()["status"] == "stopped"

    async def gone() -> bool:
        return (await inspect(http, name))["live_consumers"] == 0

    await poll(gone, timeout_s=60, interval_s=0.5, what=f"{name}'s consumers gone")


async def test_start_inspect_peek_and_stop_through_mcp(server: Running, kafka: Broker):
    source, sink, dead = topics(kafka, "mcp")
    n = 2000
    kafka.produce(source, [(str(i), orjson.dumps({"text": f"m{i}"})) for i in range(n)])
    kafka.produce(source, [("poison", b"\xff not json"), ("wrong", b'{"text": 5}'), ("empty", b"")])
    async with http_session(server.url, server.auth) as session:
        started = await session.call_tool("pipeline_start", {
            "name": "mcp-echo", "input_topic": source, "algorithm": "local-echo", "output_topic": sink,
            "dead_letter_topic": dead})
        assert not started.is_error, started.content[0].text
        assert started.structured_content["status"] == "running"
        again = await session.call_tool("pipeline_start", {
            "name": "mcp-echo", "input_topic": source, "algorithm": "local-echo", "output_topic": sink,
            "dead_letter_topic": dead})
        assert not again.is_error  # the same spec: nothing changes
        other = await session.call_tool("pipeline_start", {
            "name": "mcp-echo", "input_topic": source, "algorithm": "text-embedding", "output_topic": sink})
        assert other.is_error and "runs with another spec" in other.content[0].text

        out = await asyncio.to_thread(kafka.read, sink, n, 120)
        assert sorted(int(m.key()) for m in out) == list(range(n))
        first = orjson.loads(out[0].value())
        assert set(first) == {"key", "partition", "offset", "result"}
        assert first["result"] == {"text": f"m{first['key']}"}
        letters = await asyncio.to_thread(kafka.read, dead, 3, 60)
        assert sorted(m.key().decode() for m in letters) == ["empty", "poison", "wrong"]
        by_key = {m.key().decode(): orjson.loads(m.value()) for m in letters}
        assert by_key["wrong"]["error"]["type"] == "validation_failed" and "text" in by_key["wrong"]["error"]["message"]
        assert by_key["poison"]["error"]["type"] == "unfit" and by_key["poison"]["encoding"] == "base64"
        assert "empty" in by_key["empty"]["error"]["message"]

        async def reported() -> dict[str, Any] | None:
            got = await session.call_tool("pipeline_get", {"name": "mcp-echo"})
            body = got.structured_content
            return body if body["produced"] == n and body["dead"] == 3 else None

        body = await poll(reported, timeout_s=30, interval_s=0.5, what="the stats reported")
        assert body["total_lag"] == 0 and set(body["lag"]) <= {"0", "1", "2"}
        assert body["p99_ms"] is not None and len(body["dead_letters"]) == 3
        peek = await session.call_tool("pipeline_peek", {"name": "mcp-echo", "n": 3})
        assert len(peek.structured_content["items"]) == 3
        resource = await session.read_resource("pipeline://mcp-echo")
        assert json.loads(resource.contents[0].text)["name"] == "mcp-echo"
        listed = await session.call_tool("pipeline_list", {})
        assert "mcp-echo" in {p["name"] for p in listed.structured_content["items"]}
        stop = await session.call_tool("pipeline_stop", {"name": "mcp-echo"})
        assert stop.structured_content["status"] == "stopped"
        unknown = await session.call_tool("pipeline_get", {"name": "mcp-ecko"})
        assert unknown.is_error and "did you mean mcp-echo" in unknown.content[0].text


async def test_bad_starts_name_the_field(server: Running, kafka: Broker):
    source, sink, _ = topics(kafka, "bad")
    cases = [
        ({"name": "b", "input_topic": source, "algorithm": "no-such", "output_topic": sink}, 404, "no-such"),
        ({"name": "b", "input_topic": "missing-topic", "algorithm": "local-echo", "output_topic": sink}, 422,
         "input_topic: no topic 'missing-topic'"),
        ({"name": "b", "input_topic": source, "algorithm": "local-echo", "output_topic": source}, 422,
         "output_topic: must differ"),
        ({"name": "b", "input_topic": source, "algorithm": "local-echo", "output_topic": sink,
          "input_map": {"texts": "body"}}, 422, "input_map.texts"),
        ({"name": "B!", "input_topic": source, "algorithm": "local-echo", "output_topic": sink}, 422, "name"),
        ({"name": "b", "input_topic": source, "algorithm": "local-echo", "output_topic": sink, "batch_size": 0},
         422, "batch_size"),
        ({"name": "b", "input_topic": source, "algorithm": "local-echo", "output_topic": sink,
          "broker": {"bootstrap_servers": "x:1", "security_protocol": "SASL_SSL"}}, 422, "sasl_mechanism"),
    ]
    async with httpx.AsyncClient(base_url=server.url, headers=server.auth, timeout=60) as http:
        for body, status, words in cases:
            answer = await http.post("/pipelines", json=body)
            assert answer.status_code == status, (body, answer.text)
            assert words in answer.text, (words, answer.text)
        assert (await http.get("/pipelines/never-started")).status_code == 404


async def test_input_and_output_maps(server: Running, kafka: Broker):
    source, sink, _ = topics(kafka, "maps", partitions=1)
    kafka.produce(source, [("k1", orjson.dumps({"review": {"body": "great"}, "id": 7}))])
    async with httpx.AsyncClient(base_url=server.url, headers=server.auth, timeout=60) as http:
        answer = await http.post("/pipelines", json={
            "name": "maps", "input_topic": source, "algorithm": "local-echo", "output_topic": sink,
            "input_map": {"text": "review.body"}, "output_map": {"id": "input.id", "echo": "result.text",
                                                                 "at": "offset"}})
        assert answer.status_code == 201, answer.text
        (out,) = await asyncio.to_thread(kafka.read, sink, 1, 60, 1)
        assert orjson.loads(out.value()) == {"id": 7, "echo": "great", "at": 0} and out.key() == b"k1"

        async def peeked() -> list[dict[str, Any]]:
            return (await http.get("/pipelines/maps/output", params={"n": 1})).json()

        (last,) = await poll(peeked, timeout_s=10, what="the output kept for peeking")  # reported each second
        assert orjson.loads(last["value"])["echo"] == "great"
        await stopped(http, "maps")


async def test_a_killed_consumer_loses_nothing(server: Running, kafka: Broker):
    """100,000 messages; the consumer's process is killed (SIGKILL) midway; every id comes out."""
    source, sink, _ = topics(kafka, "kill")
    n = 100_000
    kafka.produce(source, [(str(i), orjson.dumps({"text": str(i)})) for i in range(n)])
    async with httpx.AsyncClient(base_url=server.url, headers=server.auth, timeout=60) as http:
        answer = await http.post("/pipelines", json={
            "name": "kill", "input_topic": source, "algorithm": "local-echo", "output_topic": sink,
            "scaling": {"min_consumers": 1, "max_consumers": 1}})
        assert answer.status_code == 201, answer.text

        async def midway() -> dict[str, Any] | None:
            members = (await inspect(http, "kill"))["members"]
            return members[0] if members and 20_000 < members[0]["produced"] < n else None

        victim = await poll(midway, timeout_s=120, interval_s=0.2, what="the consumer midway")
        os.kill(victim["pid"], signal.SIGKILL)

        async def restarted() -> bool:
            members = (await inspect(http, "kill"))["members"]
            return bool(members) and members[0]["pid"] != victim["pid"]

        await poll(restarted, timeout_s=120, interval_s=0.5, what="the consumer restarted by Ray")
        duplicates = await every_id_out(kafka, sink, n)
        print(f"\n{n} messages, consumer killed at {victim['produced']} produced: {duplicates} duplicates")
        await stopped(http, "kill")


async def test_a_slow_algorithm_keeps_its_consumer_in_the_group(server: Running, kafka: Broker):
    """5 s per batch with a 2 s session timeout: the consumer pauses, keeps polling, and is never evicted."""
    source, sink, _ = topics(kafka, "slow", partitions=1)
    kafka.produce(source, [(str(i), orjson.dumps({"id": str(i), "batch_sleep_s": 5})) for i in range(12)])
    async with httpx.AsyncClient(base_url=server.url, headers=server.auth, timeout=60) as http:
        answer = await http.post("/pipelines", json={
            "name": "slow", "input_topic": source, "algorithm": "test-stream", "output_topic": sink,
            "batch_size": 6, "max_in_flight": 6, "scaling": {"max_consumers": 1}})
        assert answer.status_code == 201, answer.text
        out = await asyncio.to_thread(kafka.read, sink, 12, 120, 1)
        assert sorted(int(m.key()) for m in out) == list(range(12))
        (member,) = (await inspect(http, "slow"))["members"]
        assert member["rebalances"] == 1, "the consumer left its group and joined again"
        assert member["pauses"] >= 1 and member["retries"] == 0
        await stopped(http, "slow")


async def test_a_failing_algorithm_is_retried_with_backoff(server: Running, kafka: Broker):
    """Failing for 3 s: the pipeline waits it out (no message skipped, none dead) without spinning."""
    source, sink, _ = topics(kafka, "flaky", partitions=1)
    async with httpx.AsyncClient(base_url=server.url, headers=server.auth, timeout=60) as http:
        answer = await http.post("/pipelines", json={
            "name": "flaky", "input_topic": source, "algorithm": "test-stream", "output_topic": sink})
        assert answer.status_code == 201, answer.text

        async def assigned() -> bool:
            members = (await inspect(http, "flaky"))["members"]
            return bool(members and members[0]["partitions"])

        await poll(assigned, timeout_s=60, interval_s=0.2, what="the consumer's partition assigned")
        until = time.time() + 3
        kafka.produce(source, [(str(i), orjson.dumps({"id": str(i), "fail_until": until})) for i in range(50)])
        out = await asyncio.to_thread(kafka.read, sink, 50, 120, 1)
        assert sorted(int(m.key()) for m in out) == list(range(50))

        async def reported() -> dict[str, Any] | None:
            body = await inspect(http, "flaky")
            return body if body["produced"] == 50 else None

        body = await poll(reported, timeout_s=30, interval_s=0.5, what="the stats reported")
        assert body["dead"] == 0 and 1 <= body["retries"] <= 12, body["retries"]
        assert "failing for a while" in body["members"][0]["last_error"]
        await stopped(http, "flaky")


async def test_consumers_grow_with_lag_and_shrink_when_it_drains(server: Running, kafka: Broker):
    source, sink, _ = topics(kafka, "scale")
    kafka.produce(source, [(str(i), orjson.dumps({"id": str(i), "batch_sleep_s": 0.2})) for i in range(6000)])
    async with httpx.AsyncClient(base_url=server.url, headers=server.auth, timeout=60) as http:
        answer = await http.post("/pipelines", json={
            "name": "scale", "input_topic": source, "algorithm": "test-stream", "output_topic": sink,
            "batch_size": 50, "scaling": {"min_consumers": 1, "max_consumers": 3, "lag_per_consumer": 500,
                                          "scale_down_after_s": 1}})
        assert answer.status_code == 201, answer.text

        async def grown() -> bool:
            return (await inspect(http, "scale"))["consumers"] > 1

        await poll(grown, timeout_s=60, interval_s=0.5, what="a second consumer for the lag")
        out = await asyncio.to_thread(kafka.read, sink, 6000, 180)
        assert {int(m.key()) for m in out} == set(range(6000))

        async def shrunk() -> bool:
            body = await inspect(http, "scale")
            return body["consumers"] == 1 and body["live_consumers"] == 1

        await poll(shrunk, timeout_s=60, interval_s=0.5, what="back to one consumer once drained")
        await stopped(http, "scale")


async def test_a_registry_pipeline_survives_a_gateway_restart(server: Running, settings, kafka: Broker,
                                                              tmp_path: Path):
    """Declared in the registry file: running after the gateway is gone and back, listed as the registry's."""
    source, sink, _ = topics(kafka, "reg")
    registry = yaml.safe_load(settings.algo_mcp_registry.read_text())
    registry["pipelines"] = [{"name": "reg", "input_topic": source, "algorithm": "local-echo", "output_topic": sink}]
    path = tmp_path / "algorithms.yaml"
    path.write_text(yaml.safe_dump(registry))
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    env = {**server.env, "SERVICE_PORT": str(port), "DATA_DIR": str(tmp_path / "data"),
           "ALGO_MCP_REGISTRY": str(path), "TASK_KEY_PREFIX": f"restart{uuid.uuid4().hex[:6]}"}
    kafka.produce(source, [(str(i), orjson.dumps({"text": str(i)})) for i in range(500)])
    for round_ in range(2):
        gateway = await start_gateway(env, url)
        try:
            async with httpx.AsyncClient(base_url=url, headers=server.auth, timeout=60) as http:
                (found,) = [p for p in (await http.get("/pipelines")).json() if p["name"] == "reg"]
                assert found["status"] == "running" and found["source"] == "registry"
                out = await asyncio.to_thread(kafka.read, sink, 500 * (round_ + 1), 120)
                assert {int(m.key()) for m in out} == set(range(500 * (round_ + 1)))
        finally:
            gateway.send_signal(signal.SIGTERM)
            await gateway.wait()
        kafka.produce(source, [(str(i), orjson.dumps({"text": str(i)})) for i in range(500, 1000)])
    # the members and that prefix's task worker outlive its gateways: end them (the session's 2 CPUs)
    queue = replace(server.gateway.runtime.tasks.config, prefix=env["TASK_KEY_PREFIX"])
    await asyncio.to_thread(serve.delete, worker_app_name(queue))
    for actor in ray.util.list_named_actors(all_namespaces=True):
        if actor["name"].startswith(member_prefix(queue.id)):
            ray.kill(ray.get_actor(actor["name"], actor["namespace"]), no_restart=True)


async def test_a_broker_killed_and_restarted_on_s3_storage_loses_nothing(
        server: Running, seaweed_s3: SeaweedS3, tmp_path: Path):  # noqa: F811
    """The broker keeps its log on the S3 server; SIGKILL it midway and start it again on the same port."""
    boto3.client("s3", endpoint_url=seaweed_s3.endpoint_url, region_name=seaweed_s3.region,
                 aws_access_key_id=seaweed_s3.access_key_id,
                 aws_secret_access_key=seaweed_s3.secret_access_key).create_bucket(Bucket="tansu")
    env = {"AWS_ACCESS_KEY_ID": seaweed_s3.access_key_id, "AWS_SECRET_ACCESS_KEY": seaweed_s3.secret_access_key,
           "AWS_DEFAULT_REGION": seaweed_s3.region, "AWS_ENDPOINT": seaweed_s3.endpoint_url, "AWS_ALLOW_HTTP": "true"}
    n = 20_000
    with running_broker(tmp_path, "s3://tansu/", env) as broker:
        source, sink, _ = topics(broker, "s3")
        broker.produce(source, [(str(i), orjson.dumps({"text": str(i)})) for i in range(n)])
        async with httpx.AsyncClient(base_url=server.url, headers=server.auth, timeout=60) as http:
            answer = await http.post("/pipelines", json={
                "name": "on-s3", "input_topic": source, "algorithm": "local-echo", "output_topic": sink,
                "broker": {"bootstrap_servers": broker.bootstrap}})
            assert answer.status_code == 201, answer.text

            async def midway() -> bool:
                return any(m["produced"] > 0 for m in (await inspect(http, "on-s3"))["members"])

            await poll(midway, timeout_s=120, interval_s=0.2, what="the pipeline midway")
            broker.kill()
            broker.start()
            duplicates = await every_id_out(broker, sink, n)
            print(f"\n{n} messages, broker (S3 storage) killed midway: {duplicates} duplicates")
            await stopped(http, "on-s3")


async def test_a_task_publishes_its_final_record_to_a_topic(server: Running, kafka: Broker):
    """S1's results sent through the message queue: the final record, keyed by task id, once it ends
    (failed ones too), beside the record in Redis."""
    topic = f"task-results-{uuid.uuid4().hex[:6]}"
    kafka.create_topic(topic, partitions=1)
    async with httpx.AsyncClient(base_url=server.url, headers=server.auth, timeout=60) as http:
        done = await http.post("/tasks/test-sleep-async", params={"result_topic": topic}, json={"seconds": 0.1})
        failed = await http.post("/tasks/test-timeout", params={"result_topic": topic}, json={"seconds": 5})
        assert done.status_code == failed.status_code == 202, (done.text, failed.text)
        ids = {done.json()["task_id"], failed.json()["task_id"]}
        messages = await asyncio.to_thread(kafka.read, topic, until=2, timeout_s=60, partitions=1)
        records = {m.key().decode(): json.loads(m.value()) for m in messages}
        assert set(records) == ids
        assert records[done.json()["task_id"]]["status"] == "completed"
        assert records[done.json()["task_id"]]["result"] == {"slept": 0.1}
        assert records[failed.json()["task_id"]]["status"] == "failed"
        assert records[done.json()["task_id"]]["result_topic"] == topic

        for params, problem in [({"result_topic": "no such/topic"}, "result_topic: must be a Kafka topic name"),
                                ({"result_topic": f"missing-{uuid.uuid4().hex[:6]}"}, "result_topic: no topic"),
                                ({"result_topic": ""}, "result_topic: must be a Kafka topic name")]:
            refused = await http.post("/tasks/test-sleep-async", params=params, json={"seconds": 0.1})
            assert refused.status_code == 422 and problem in refused.json()["error"]["message"], refused.text


async def _task(http: httpx.AsyncClient, task_id: str, *statuses: str) -> dict[str, Any]:
    async def ended() -> dict[str, Any] | None:
        record = (await http.get(f"/tasks/{task_id}")).json()
        return record if record["status"] in statuses else None

    return await poll(ended, timeout_s=120, interval_s=0.2, what=f"task {task_id} {'/'.join(statuses)}")


async def test_a_backfill_runs_a_range_once_as_a_task(server: Running, kafka: Broker):
    """The seed's read_kafka form: offsets, times and earliest/latest bound the range; the task's result
    says what was done, and the output topic holds exactly the range."""
    source, sink, _ = topics(kafka, "backfill")
    kafka.produce(source, [(f"a{i}", orjson.dumps({"id": f"a{i}"})) for i in range(300)])
    kafka.produce(source, [("poison", b"not json")])
    between = await asyncio.to_thread(lambda: (time.sleep(0.05), time.time())[1])  # a time between the two
    kafka.produce(source, [(f"b{i}", orjson.dumps({"id": f"b{i}"})) for i in range(60)])
    spec = {"name": "fill", "input_topic": source, "algorithm": "test-stream", "output_topic": sink,
            "batch_size": 50}
    async with httpx.AsyncClient(base_url=server.url, headers=server.auth, timeout=60) as http:
        whole = await http.post("/pipelines/backfills", json=spec)
        assert whole.status_code == 202, whole.text
        record = await _task(http, whole.json()["task_id"], "completed", "failed")
        assert record["status"] == "completed", record["error"]
        assert record["result"]["messages"] == record["result"]["produced"] + 1 == 361
        assert record["result"]["dead_letters"] == 1 and record["progress"] == 1
        out = await asyncio.to_thread(kafka.read, sink, 360, 60)
        assert len(out) == 360 and {m.key().decode() for m in out} == {f"a{i}" for i in range(300)} | {
            f"b{i}" for i in range(60)}

        later = await http.post("/pipelines/backfills", json={**spec, "output_topic": f"{sink}-later",
                                                             "start": datetime.fromtimestamp(between, UTC).isoformat()})
        offsets = await http.post("/pipelines/backfills", json={**spec, "output_topic": f"{sink}-offsets",
                                                               "start": 10, "end": 20})
        later_record = await _task(http, later.json()["task_id"], "completed", "failed")
        offsets_record = await _task(http, offsets.json()["task_id"], "completed", "failed")
        assert later_record["result"]["produced"] == 60, later_record
        assert offsets_record["result"]["produced"] == 30, offsets_record  # offsets 10..19 of 3 partitions
        assert {p["start"] for p in offsets_record["result"]["partitions"].values()} == {10}
        keys = {m.key().decode() for m in await asyncio.to_thread(kafka.read, f"{sink}-later", 60, 60)}
        assert keys == {f"b{i}" for i in range(60)}


async def test_a_backfill_reports_progress_and_stops_when_cancelled(server: Running, kafka: Broker):
    source, sink, _ = topics(kafka, "slowfill", partitions=1)
    kafka.produce(source, [(str(i), orjson.dumps({"id": str(i), "batch_sleep_s": 0.5})) for i in range(100)])
    spec = {"name": "slow", "input_topic": source, "algorithm": "test-stream", "output_topic": sink, "batch_size": 5}
    async with httpx.AsyncClient(base_url=server.url, headers=server.auth, timeout=60) as http:
        task_id = (await http.post("/pipelines/backfills", json=spec)).json()["task_id"]

        async def partly() -> dict[str, Any] | None:
            record = (await http.get(f"/tasks/{task_id}")).json()
            return record if 0 < record["progress"] < 1 and record["status"] == "running" else None

        running = await poll(partly, timeout_s=60, interval_s=0.2, what="progress reported")
        assert "produced" in running["progress_message"]
        assert (await http.delete(f"/tasks/{task_id}")).json()["status"] == "cancelled"
        worker = serve.get_app_handle(server.gateway.runtime.worker_app)

        async def stopped_in_the_worker() -> bool:
            return task_id not in (await worker.status.remote())["running"]

        await poll(stopped_in_the_worker, timeout_s=30, what="the backfill stopped in the worker")
        # stopped: whatever it produced is all it ever will, and the range was not finished
        assert len(await asyncio.to_thread(kafka.read, sink, 100, 3, 1)) < 100


async def test_bad_backfills_name_the_field(server: Running, kafka: Broker):
    source, sink, _ = topics(kafka, "badfill")
    base = {"name": "bad", "input_topic": source, "algorithm": "test-stream", "output_topic": sink}
    async with httpx.AsyncClient(base_url=server.url, headers=server.auth, timeout=60) as http:
        for body, problem in [
            ({**base, "start": 20, "end": 10}, "end: must be > start (20)"),
            ({**base, "start": -1}, "start: must be >= 0"),
            ({**base, "start": "2999-01-01T00:00:00Z"}, "start: 2999-01-01T00:00:00+00:00 is in the future"),
            ({**base, "end": "soon"}, "end"),
            ({**base, "input_topic": f"missing-{uuid.uuid4().hex[:6]}"}, "input_topic: no topic"),
            ({**base, "algorithm": "test-nope"}, "test-nope"),
        ]:
            refused = await http.post("/pipelines/backfills", json=body)
            assert refused.status_code in (404, 422) and problem in refused.json()["error"]["message"], refused.text
    async with http_session(server.url, server.auth) as session:
        started = await session.call_tool("pipeline_backfill", {**base, "name": "mcp-fill"})
        assert not started.is_error, started.content[0].text
        assert "wait_task" in started.content[0].text and started.structured_content["status"] == "queued"


async def test_the_algorithms_replicas_grow_with_a_pipelines_lag(server: Running, kafka: Broker):
    """Serve autoscaling (the entry's ``autoscaling``) sees a batch in flight per partition while there is
    lag, adds replicas, and removes them once the pipeline has drained."""
    source, sink, _ = topics(kafka, "autoscaled")
    n = 900
    kafka.produce(source, [(str(i), orjson.dumps({"seconds": 1})) for i in range(n)])
    async with httpx.AsyncClient(base_url=server.url, headers=server.auth, timeout=60) as http:
        started = await http.post("/pipelines", json={
            "name": "autoscaled", "input_topic": source, "algorithm": "test-autoscaled", "output_topic": sink,
            "batch_size": 30, "scaling": {"max_consumers": 1}})
        assert started.status_code == 201, started.text
        try:
            out = await asyncio.to_thread(kafka.read, sink, n, 120)
        finally:
            await stopped(http, "autoscaled")
    assert len({m.key() for m in out}) == n
    assert len({orjson.loads(m.value())["result"]["pid"] for m in out}) >= 2  # served by more than one replica

    def replicas() -> int:
        app = serve.status().applications["test-autoscaled"]
        return app.deployments["test-autoscaled"].replica_states.get("RUNNING", 0)

    await poll(lambda: replicas() == 1, timeout_s=90, interval_s=0.5, what="back to one replica once drained")


async def test_a_huge_message_is_a_dead_letter_whole_on_its_topic_and_cut_where_it_is_kept(server: Running,
                                                                                          kafka: Broker):
    source, sink, dead = topics(kafka, "huge", partitions=1)
    huge = orjson.dumps({"id": "x" * 500_000})
    kafka.produce(source, [("small", orjson.dumps({"id": "small"})), ("huge", huge)])
    async with httpx.AsyncClient(base_url=server.url, headers=server.auth, timeout=60) as http:
        started = await http.post("/pipelines", json={"name": "huge", "input_topic": source, "algorithm": "test-stream",
                                                      "output_topic": sink, "dead_letter_topic": dead})
        assert started.status_code == 201, started.text
        try:
            assert [m.key() for m in await asyncio.to_thread(kafka.read, sink, 1, 60, 1)] == [b"small"]
            (letter,) = [orjson.loads(m.value()) for m in await asyncio.to_thread(kafka.read, dead, 1, 60, 1)]
            assert letter["value"] == huge.decode() and "id: at most 64 characters" in letter["error"]["message"]

            async def kept() -> dict[str, Any] | None:
                letters = (await inspect(http, "huge"))["dead_letters"]
                return letters[0] if letters else None

            kept_letter = await poll(kept, timeout_s=30, interval_s=0.5, what="the dead letter kept")
            assert kept_letter["truncated"] and kept_letter["value_chars"] == len(huge)
            assert kept_letter["value"] == huge.decode()[:4096]
        finally:
            await stopped(http, "huge")
