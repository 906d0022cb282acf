"""A gateway whose outputs go to S3 (``S3_BUCKET``, here SeaweedFS): it makes its bucket at start,
its answers carry presigned links to the bucket, and small images come inline, read back from S3."""

from __future__ import annotations

import asyncio
import base64
import contextlib
import signal
import sys
import uuid
from pathlib import Path
from urllib.parse import urlsplit

import httpx
import yaml
from ray import serve

from engines.config import ObjectStoreConfig, StoreConfig
from engines.tasks.worker import worker_app_name
from tests.conftest import ROOT, START_DEADLINE_S, Running, free_port
from tests.fake_apis import png_bytes
from tests.mcp_clients import http_session
from tests.polling import poll
from tests.s3_fixture import SeaweedS3, seaweed_s3  # noqa: F401  (a fixture)
from tests.test_objects import s3_store_for
from tests.test_startup import ECHO, TEST


async def test_outputs_are_stored_in_s3_and_linked_presigned(server: Running, seaweed_s3: SeaweedS3,  # noqa: F811
                                                             tmp_path: Path):
    bucket, prefix = f"gateway-{uuid.uuid4().hex[:10]}", f"s3_{uuid.uuid4().hex[:8]}"
    registry = tmp_path / "algorithms.yaml"
    nanobanana = next(e for e in yaml.safe_load((ROOT / "algorithms.yaml").read_text())
                      if e["name"] == "nanobanana-image")
    registry.write_text(yaml.safe_dump(
        [ECHO, nanobanana, {**TEST, "name": "test-output", "target": "tests.algorithms:MakePng"}]))
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    env = {**server.env, "ALGO_MCP_REGISTRY": str(registry), "DATA_DIR": str(tmp_path / "data"),
           "SERVICE_PORT": str(port), "TASK_KEY_PREFIX": prefix, "S3_BUCKET": bucket,
           "S3_ENDPOINT_URL": seaweed_s3.endpoint_url, "S3_REGION": seaweed_s3.region,
           "S3_ACCESS_KEY_ID": seaweed_s3.access_key_id, "S3_SECRET_ACCESS_KEY": seaweed_s3.secret_access_key,
           "S3_ADDRESSING_STYLE": "path"}
    proc = await asyncio.create_subprocess_exec(sys.executable, "-m", "mcp_server", "serve", "--transport", "http",
                                                cwd=ROOT, env=env, stdout=asyncio.subprocess.DEVNULL,
                                                stderr=asyncio.subprocess.DEVNULL)
    try:
        async with httpx.AsyncClient(base_url=url) as http:
            async def healthy() -> bool:
                with contextlib.suppress(httpx.TransportError):
                    return (await http.get("/healthz")).json()["status"] == "ok"
                return False

            await poll(healthy, timeout_s=START_DEADLINE_S, interval_s=0.5, what="the S3 gateway up")
        async with http_session(url, server.auth) as session:
            made = await session.call_tool("test-output", {"size": 8})
            ref = (await session.call_tool("nanobanana-image", {"prompt": "a fox"})).structured_content
            done = await session.call_tool("wait_task", {"task_id": ref["task_id"], "timeout_s": 45})
        sync_image, task_image = made.structured_content["image"], done.structured_content["result"]["image"]
        assert task_image["key"] == f"outputs/{ref['task_id']}/image.png"
        endpoint = urlsplit(seaweed_s3.endpoint_url)
        async with httpx.AsyncClient() as http:
            for image in (sync_image, task_image):
                link = urlsplit(image["url"])
                assert link.netloc == endpoint.netloc and link.path == f"/{bucket}/{image['key']}"
                assert "X-Amz-Signature=" in link.query  # presigned: no credentials needed to follow it
                fetched = await http.get(image["url"])
                assert fetched.status_code == 200 and fetched.content.startswith(b"\x89PNG")
        for answer, image in ((made, sync_image), (done, task_image)):
            inline = [c for c in answer.content if c.type == "image"]
            assert inline and len(base64.b64decode(inline[0].data)) == image["bytes"]
        assert base64.b64decode(next(c for c in done.content if c.type == "image").data) == png_bytes()
        stored, _ = await s3_store_for(seaweed_s3, bucket).get(task_image["key"])  # the bucket it made
        assert stored == png_bytes()
    finally:
        proc.send_signal(signal.SIGTERM)
        await asyncio.wait_for(proc.wait(), 60)
        queue = StoreConfig(server.env["REDIS_URL"], prefix, ObjectStoreConfig(None, "", "", ""))
        for name in (worker_app_name(queue), "test-output"):
            await asyncio.to_thread(serve.delete, name)
