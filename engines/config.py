"""Where task records and outputs live, as plain picklable values replicas anywhere can open.

The gateway builds a :class:`StoreConfig` from its settings once Redis is up and
registers it with the cluster (``engines.serving.stores``); calls then carry only
its ``id``, so credentials and signing secrets never ride a Serve request.
"""

from __future__ import annotations

import hashlib
import json
import secrets
from dataclasses import asdict, dataclass
from typing import Any

from redis.asyncio import Redis

from engines.settings import Settings
from storage import TaskStore
from storage.objects import ObjectStore, object_store_from_settings


def digest(*parts: Any) -> str:
    """A short stable hash of JSON-able parts (secrets only ever enter hashed)."""
    return hashlib.sha256(json.dumps(parts, sort_keys=True, default=str).encode()).hexdigest()[:16]


@dataclass(frozen=True)
class ObjectStoreConfig:
    """Plain object-store settings, so replicas anywhere can open the same store."""

    bucket: str | None
    local_dir: str
    base_url: str
    signing_secret: str
    endpoint_url: str | None = None
    region: str | None = None
    access_key_id: str | None = None
    secret_access_key: str | None = None
    addressing_style: str = "auto"
    url_expires_s: int = 3600

    def open(self) -> ObjectStore:
        return object_store_from_settings(**asdict(self))


@dataclass(frozen=True)
class StoreConfig:
    """One task queue: its Redis and key prefix, and the object store its outputs go to."""

    redis_url: str
    prefix: str
    objects: ObjectStoreConfig
    task_ttl_s: int = 7 * 24 * 3600

    def task_store(self, redis: Redis, **options: Any) -> TaskStore:
        return TaskStore(redis, prefix=self.prefix, task_ttl_s=self.task_ttl_s, **options)

    @property
    def id(self) -> str:
        """The queue's identity: gateways on the same Redis and prefix share one task worker."""
        return digest(self.redis_url, self.prefix)

    @property
    def key(self) -> str:
        """The queue with its object store: what a call names for its outputs and progress. Two gateways
        on one queue with different stores (a misconfiguration) each keep their own outputs."""
        objects = self.objects
        return digest(self.redis_url, self.prefix, objects.bucket, objects.endpoint_url, objects.local_dir)


def _url_secret(settings: Settings) -> str:
    """The local links' signing key: configured, or made once and kept in DATA_DIR for restarts."""
    if settings.object_url_secret:
        return settings.object_url_secret.get_secret_value()
    path = settings.data_dir / "object-url-secret"
    if not path.exists():
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(secrets.token_hex(32))
        path.chmod(0o600)
    return path.read_text().strip()


def default_base_url(settings: Settings) -> str:
    """Where local links point when the caller of :func:`object_store_config` names no address."""
    return settings.public_base_url or f"http://{settings.service_host}:{settings.service_port}"


def object_store_config(settings: Settings, base_url: str | None = None) -> ObjectStoreConfig:
    """``base_url``: where this gateway really serves ``/objects/`` (``PUBLIC_BASE_URL`` wins)."""
    s3_secret = settings.s3_secret_access_key
    return ObjectStoreConfig(
        bucket=settings.s3_bucket, local_dir=str(settings.object_store_dir or settings.data_dir / "objects"),
        base_url=settings.public_base_url or base_url or default_base_url(settings),
        signing_secret=_url_secret(settings), endpoint_url=settings.s3_endpoint_url,
        region=settings.s3_region, access_key_id=settings.s3_access_key_id,
        secret_access_key=s3_secret.get_secret_value() if s3_secret else None,
        addressing_style=settings.s3_addressing_style, url_expires_s=settings.output_url_expires_seconds)


def store_config(settings: Settings, redis_url: str, base_url: str | None = None) -> StoreConfig:
    return StoreConfig(redis_url, settings.task_key_prefix, object_store_config(settings, base_url),
                       settings.task_ttl_seconds)
