"""Clients written for the seed Ray Service run unchanged: the requests its README shows (curl, and
Python ``requests`` for a sync call and for submit-then-poll), against a real gateway with the seed's
key prefix, changing only host and port; and its Redis keys hold what the seed put there, for its
dashboards."""

from __future__ import annotations

import asyncio
import json
import signal
import subprocess
import sys

import httpx
import pytest
from ray import serve
from redis.asyncio import Redis

from engines.config import ObjectStoreConfig, StoreConfig
from engines.tasks.worker import worker_app_name
from storage import redis_pool
from tests.conftest import ROOT, START_DEADLINE_S, Running, free_port
from tests.polling import poll

PREFIX = "ray_service"  # the seed's
#: the seed README's NanoBanana payloads (their image URLs are only passed on to the provider)
SYNC_PAYLOAD = {"prompt": "把这件衣服变成长款", "size": "3:4", "image_urls": [
    "https://huayiyi-ai.oss-cn-shanghai.aliyuncs.com/test_tmp/1759117633476-2c4e21c7-e358-49c8-b280-adee0df10cec.png"]}
ASYNC_PAYLOAD = {"prompt": "把这件衣服变成长款", "image_urls": [
    "https://huayiyi-ai.oss-cn-shanghai.aliyuncs.com/test_tmp/1759117633476-2c4e21c7-e358-49c8-b280-adee0df10cec.png"]}
#: the seed README's two Python clients, as a team's scripts would run them (host and port replaced)
SYNC_CLIENT = """
import json, sys, requests
resp = requests.post("{base}/invoke/nanobanana-image", json={payload}, timeout=120)
resp.raise_for_status()
data = resp.json()
print(json.dumps({{"task_id": data["task_id"], "result": data["result"]}}))
"""
POLLING_CLIENT = """
import json, time, requests
submit = requests.post("{base}/tasks/nanobanana-image", json={payload}, timeout=10)
submit.raise_for_status()
task_id = submit.json()["task_id"]
while True:
    time.sleep(2)
    status = requests.get(f"{base}/tasks/{{task_id}}", timeout=10)
    if status.status_code == 404:
        raise RuntimeError("task not found")
    info = status.json()
    if info["status"] in {{"completed", "failed"}}:
        print(json.dumps({{"task_id": task_id, "status": info["status"], "result": info.get("result")}}))
        break
"""


def curl(*args: str) -> dict:
    done = subprocess.run(["curl", "--silent", "--show-error", "--fail-with-body", *args], capture_output=True,
                          text=True, timeout=120, check=True)
    return json.loads(done.stdout)


def python(client: str) -> dict:
    done = subprocess.run([sys.executable, "-c", client], capture_output=True, text=True, timeout=180, check=True)
    return json.loads(done.stdout.splitlines()[-1])


@pytest.fixture(scope="module")
async def seed_gateway(server: Running, tmp_path_factory: pytest.TempPathFactory):
    """A gateway as the seed ran: no token, the seed's key prefix, on the session's Ray and Redis."""
    port = free_port()
    env = {k: v for k, v in server.env.items() if k != "MCP_AUTH_TOKEN"}
    env.update(TASK_KEY_PREFIX=PREFIX, DATA_DIR=str(tmp_path_factory.mktemp("seed-data")))
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "mcp_server", "serve", "--transport", "http", "--port", str(port), cwd=ROOT, env=env,
        stdout=asyncio.subprocess.DEVNULL, stderr=asyncio.subprocess.DEVNULL)
    base = f"http://127.0.0.1:{port}"
    try:
        async with httpx.AsyncClient(base_url=base) as http:
            async def healthy() -> bool:
                try:
                    return (await http.get("/healthz")).status_code == 200
                except httpx.TransportError:
                    return False

            await poll(healthy, timeout_s=START_DEADLINE_S, interval_s=0.5, what="the seed-style gateway up")
        yield base
    finally:
        proc.send_signal(signal.SIGTERM)
        await asyncio.wait_for(proc.wait(), 60)
        queue = StoreConfig(server.env["REDIS_URL"], PREFIX, ObjectStoreConfig(None, "", "", ""))
        await asyncio.to_thread(serve.delete, worker_app_name(queue))


@pytest.fixture
async def redis(server: Running):
    client = redis_pool(server.env["REDIS_URL"])
    yield client
    await client.aclose()


async def test_the_seed_readme_curl_lines_work(seed_gateway: str, redis: Redis):
    invoked = await asyncio.to_thread(curl, "-X", "POST", f"{seed_gateway}/invoke/local-echo",
                                      "-H", "Content-Type: application/json", "-d", '{"text": "hello"}')
    assert invoked["status"] == "completed" and invoked["result"] == {"text": "hello"}
    submitted = await asyncio.to_thread(curl, "-X", "POST", f"{seed_gateway}/tasks/local-echo",
                                        "-H", "Content-Type: application/json", "-d", '{"text": "hello"}')

    async def ended() -> dict | None:
        record = await asyncio.to_thread(curl, f"{seed_gateway}/tasks/{submitted['task_id']}")
        return record if record["status"] in ("completed", "failed") else None

    record = await poll(ended, what="the task completed")
    assert record["status"] == "completed" and record["result"] == {"text": "hello"}
    assert (await asyncio.to_thread(curl, f"{seed_gateway}/healthz"))["status"] == "ok"
    image = await asyncio.to_thread(
        curl, "-X", "POST", f"{seed_gateway}/invoke/nanobanana-image", "-H", "Content-Type: application/json",
        "-d", json.dumps({"prompt": "cute corgi astronaut", "image_urls": ["https://example.com/reference.jpg"],
                          "size": "3:4"}))
    assert image["status"] == "completed" and image["result"]["image"]["content_type"] == "image/png"
    for task_id in (invoked["task_id"], submitted["task_id"], image["task_id"]):
        stored = await redis.hgetall(f"{PREFIX}:task:{task_id}")
        assert stored["task_id"] == task_id and stored["status"] == "completed" and float(stored["ts"]) > 0
        assert stored["model"] in ("local-echo", "nanobanana-image") and json.loads(stored["result"])


async def test_the_seed_readme_python_clients_work_and_its_keys_hold_what_it_put_there(
        seed_gateway: str, redis: Redis):
    sync = await asyncio.to_thread(python, SYNC_CLIENT.format(base=seed_gateway, payload=repr(SYNC_PAYLOAD)))
    assert sync["result"]["image"]["key"].startswith("outputs/") and sync["result"]["provider_task_id"]
    polled = await asyncio.to_thread(python, POLLING_CLIENT.format(base=seed_gateway, payload=repr(ASYNC_PAYLOAD)))
    assert polled["status"] == "completed" and polled["result"]["image"]["key"].startswith("outputs/")
    for task_id, payload in ((sync["task_id"], SYNC_PAYLOAD), (polled["task_id"], ASYNC_PAYLOAD)):
        stored = await redis.hgetall(f"{PREFIX}:task:{task_id}")
        assert stored["task_id"] == task_id and stored["model"] == "nanobanana-image"
        assert json.loads(stored["payload"]) == {"size": "1:1", **payload}  # as validated: defaults filled in
        assert stored["status"] == "completed" and json.loads(stored["result"])["image"]
        assert float(stored["ts"]) >= float(stored["created_at"])
    submissions = await redis.xrevrange(f"{PREFIX}:tasks", count=50)
    entry = next(fields for _, fields in submissions if fields["task_id"] == polled["task_id"])
    assert entry["model"] == "nanobanana-image" and entry["status"] == "queued" and float(entry["ts"]) > 0
    assert json.loads(entry["payload"]) == {"size": "1:1", **ASYNC_PAYLOAD}
    beats = {key.split(":")[-1]: float(await redis.get(key)) async for key in redis.scan_iter(f"{PREFIX}:heartbeat:*")}
    assert any(w.startswith("gateway-") for w in beats) and any(w.startswith("task-worker-") for w in beats)
