"""The object store as the engines and callers use it: write an output, read it back, hand out a link.

S3 runs against a real SeaweedFS (see ``tests.s3_fixture``); the local store's
links are fetched through the gateway route that serves them.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import AsyncIterator
from pathlib import Path
from urllib.parse import parse_qs, urlencode, urlsplit

import httpx
import pytest
from starlette.applications import Starlette

from mcp_server.object_routes import object_routes
from storage.objects import (
    InvalidObjectKey,
    LocalObjectStore,
    ObjectNotFound,
    ObjectStore,
    ObjectStoreFailed,
    S3ObjectStore,
    object_store_from_settings,
)
from tests.s3_fixture import SeaweedS3, seaweed_s3  # noqa: F401  (a fixture)

PNG = b"\x89PNG\r\n\x1a\n" + os.urandom(256)
GATEWAY = "http://gateway.test"
SIGNING_SECRET = "link-signing-secret-0a7c3e"


def s3_store_for(server: SeaweedS3, bucket: str, **overrides: str) -> S3ObjectStore:
    options = {"endpoint_url": server.endpoint_url, "region": server.region, "access_key_id": server.access_key_id,
               "secret_access_key": server.secret_access_key, **overrides}
    return S3ObjectStore(bucket, addressing_style="path", **options)


@pytest.fixture
def local_store(tmp_path: Path) -> LocalObjectStore:
    return LocalObjectStore(tmp_path / "objects", GATEWAY, SIGNING_SECRET)


@pytest.fixture
async def s3_store(seaweed_s3: SeaweedS3) -> S3ObjectStore:  # noqa: F811
    store = s3_store_for(seaweed_s3, f"outputs-{uuid.uuid4().hex[:12]}")
    await store.ensure_bucket()
    return store


@pytest.fixture(params=["local", "s3"])
def store(request: pytest.FixtureRequest) -> ObjectStore:
    return request.getfixturevalue(f"{request.param}_store")


@pytest.fixture
async def gateway(local_store: LocalObjectStore) -> AsyncIterator[httpx.AsyncClient]:
    app = Starlette(routes=object_routes(local_store))
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url=GATEWAY) as client:
        yield client


def with_query(url: str, **changes: str) -> str:
    parts = urlsplit(url)
    query = {k: v[0] for k, v in parse_qs(parts.query).items()} | changes
    return parts._replace(query=urlencode(query)).geturl()


def flip_last_char(value: str) -> str:
    return value[:-1] + ("0" if value[-1] != "0" else "1")


# both stores


async def test_put_then_get_returns_the_bytes_and_type(store: ObjectStore) -> None:
    stored = await store.put("outputs/task-1/image.png", PNG, "image/png")

    assert (stored.key, stored.content_type, stored.bytes) == ("outputs/task-1/image.png", "image/png", len(PNG))
    assert stored.url.startswith("http")
    assert await store.get("outputs/task-1/image.png") == (PNG, "image/png")
    assert await store.exists("outputs/task-1/image.png")


async def test_content_type_defaults_from_the_suffix(store: ObjectStore) -> None:
    await store.put("outputs/task-2/result.json", b"{}")
    await store.put("outputs/task-2/blob", b"\x00\x01")

    assert (await store.get("outputs/task-2/result.json"))[1] == "application/json"
    assert (await store.get("outputs/task-2/blob"))[1] == "application/octet-stream"


async def test_put_overwrites(store: ObjectStore) -> None:
    await store.put("outputs/task-3/a.txt", b"first", "text/plain")
    await store.put("outputs/task-3/a.txt", b"second", "text/markdown")

    assert await store.get("outputs/task-3/a.txt") == (b"second", "text/markdown")


async def test_missing_object(store: ObjectStore) -> None:
    assert not await store.exists("outputs/nope/x.png")
    with pytest.raises(ObjectNotFound, match=r"outputs/nope/x\.png"):
        await store.get("outputs/nope/x.png")


@pytest.mark.parametrize("key", [
    "../secret", "outputs/../../etc/passwd", "outputs/..", "./x", "/etc/passwd", "C:/Windows/x",
    "outputs\\..\\x", "outputs/a\x00b", "outputs//x", "outputs/x/", "", "outputs/\nx",
])
async def test_unsafe_keys_are_refused_naming_the_key(store: ObjectStore, key: str) -> None:
    for attempt in (store.put(key, b"x", "text/plain"), store.get(key), store.exists(key), store.url(key)):
        with pytest.raises(InvalidObjectKey) as raised:
            await attempt
        assert repr(key) in str(raised.value)


# S3 (SeaweedFS)


async def test_presigned_url_downloads_and_a_tampered_one_is_refused(s3_store: S3ObjectStore) -> None:
    stored = await s3_store.put("outputs/task-4/image.png", PNG, "image/png")
    bad_signature = flip_last_char(_query(stored.url)["X-Amz-Signature"])

    async with httpx.AsyncClient() as http:
        ok = await http.get(stored.url)
        tampered = await http.get(with_query(stored.url, **{"X-Amz-Signature": bad_signature}))
        other_key = await http.get(stored.url.replace("image.png", "other.png"))
        unsigned = await http.get(stored.url.split("?")[0])

    assert (ok.status_code, ok.content, ok.headers["content-type"]) == (200, PNG, "image/png")
    assert tampered.status_code == other_key.status_code == unsigned.status_code == 403


async def test_presigned_url_lifetime(s3_store: S3ObjectStore) -> None:
    url = await s3_store.url("outputs/task-5/a.txt", expires_s=120)

    assert _query(url)["X-Amz-Expires"] == "120"
    with pytest.raises(ValueError, match="7 days"):
        await s3_store.url("outputs/task-5/a.txt", expires_s=8 * 24 * 3600)


async def test_ensure_bucket_is_idempotent(s3_store: S3ObjectStore) -> None:
    await s3_store.ensure_bucket()
    await s3_store.put("outputs/task-6/a.txt", b"kept")
    await s3_store.ensure_bucket()

    assert await s3_store.get("outputs/task-6/a.txt") == (b"kept", "text/plain")


async def test_wrong_credentials_fail_without_leaking_them(seaweed_s3: SeaweedS3) -> None:  # noqa: F811
    store = s3_store_for(seaweed_s3, "outputs-any", secret_access_key="not-the-secret-5f1e")

    with pytest.raises(ObjectStoreFailed) as raised:
        await store.put("outputs/task-7/a.txt", b"x")
    assert "not-the-secret" not in str(raised.value) and "not-the-secret" not in repr(store)


# local folder and the gateway route


async def test_local_signed_link_is_served(local_store: LocalObjectStore, gateway: httpx.AsyncClient) -> None:
    stored = await local_store.put("outputs/task-8/image.png", PNG, "image/png")
    assert stored.url.startswith(f"{GATEWAY}/objects/outputs/task-8/image.png?expires=")

    answer = await gateway.get(stored.url)

    assert (answer.status_code, answer.content, answer.headers["content-type"]) == (200, PNG, "image/png")
    assert answer.headers["x-content-type-options"] == "nosniff"


async def test_local_link_refused_when_tampered_expired_or_unsigned(
    local_store: LocalObjectStore, gateway: httpx.AsyncClient
) -> None:
    await local_store.put("outputs/task-9/a.png", PNG, "image/png")
    await local_store.put("outputs/task-9/b.png", PNG, "image/png")
    url = await local_store.url("outputs/task-9/a.png")
    query = _query(url)

    refused = [
        with_query(url, sig=flip_last_char(query["sig"])),
        with_query(url, expires=str(int(query["expires"]) + 3600)),  # stretching the life breaks the signature
        url.replace("/a.png", "/b.png"),  # a signature is for one key only
        await local_store.url("outputs/task-9/a.png", expires_s=-1),  # expired
        url.split("?")[0],
        f"{GATEWAY}/objects/%2E%2E/%2E%2E/etc/passwd?" + urlencode({"expires": query["expires"], "sig": query["sig"]}),
    ]
    for link in refused:
        answer = await gateway.get(link)
        assert answer.status_code == 403, link
        assert answer.json()["error"]["type"] == "forbidden"


async def test_local_link_to_a_missing_object_is_404(local_store: LocalObjectStore, gateway: httpx.AsyncClient) -> None:
    answer = await gateway.get(await local_store.url("outputs/task-10/never-written.png"))

    assert answer.status_code == 404
    assert "outputs/task-10/never-written.png" in answer.json()["error"]["message"]


def test_verify_checks_key_expiry_and_signature(local_store: LocalObjectStore) -> None:
    query = _query(local_store.signed_url("outputs/t/a.png", expires_s=60))

    assert local_store.verify("outputs/t/a.png", query["expires"], query["sig"])
    assert not local_store.verify("outputs/t/b.png", query["expires"], query["sig"])
    assert not local_store.verify("outputs/t/a.png", "not-a-number", query["sig"])
    assert not local_store.verify("outputs/t/a.png", query["expires"], "é" * 64)
    other = LocalObjectStore(local_store.root, GATEWAY, "another-secret-entirely")
    assert not other.verify("outputs/t/a.png", query["expires"], query["sig"])


async def test_local_store_does_not_follow_symlinks_out(local_store: LocalObjectStore, tmp_path: Path) -> None:
    outside = tmp_path / "outside.txt"
    outside.write_text("private")
    await local_store.put("outputs/task-11/a.txt", b"x")
    (local_store.root / "objects" / "outputs" / "task-11" / "link.txt").symlink_to(outside)

    with pytest.raises(InvalidObjectKey, match="outside"):
        await local_store.get("outputs/task-11/link.txt")


async def test_local_key_cannot_be_both_object_and_folder(local_store: LocalObjectStore) -> None:
    await local_store.put("outputs/task-12/a", b"x")

    with pytest.raises(InvalidObjectKey, match="clashes"):
        await local_store.put("outputs/task-12/a/b", b"y")


def test_factory_picks_the_store_by_bucket(tmp_path: Path) -> None:
    local = object_store_from_settings(bucket=None, local_dir=tmp_path, base_url=GATEWAY)
    s3 = object_store_from_settings(bucket="outputs", local_dir=tmp_path, base_url=GATEWAY,
                                    endpoint_url="http://127.0.0.1:1", region="us-east-1",
                                    access_key_id="a", secret_access_key="b", addressing_style="path")

    assert isinstance(local, LocalObjectStore) and isinstance(local, ObjectStore)
    assert isinstance(s3, S3ObjectStore) and s3.bucket == "outputs"


def _query(url: str) -> dict[str, str]:
    return {k: v[0] for k, v in parse_qs(urlsplit(url).query).items()}


async def test_delete_removes_the_object_and_a_missing_key_is_no_error(store: ObjectStore) -> None:
    await store.put("actors/a1/state.json", b"{}", "application/json")
    await store.delete("actors/a1/state.json")
    assert not await store.exists("actors/a1/state.json")
    await store.delete("actors/a1/state.json")
    with pytest.raises(ObjectNotFound):
        await store.get("actors/a1/state.json")
