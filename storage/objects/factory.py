"""Pick the object store from plain settings: a bucket means S3, none means the local folder."""

from __future__ import annotations

import os
from typing import Any

from storage.objects.base import DEFAULT_URL_EXPIRES_S, ObjectStore
from storage.objects.local import LocalObjectStore
from storage.objects.s3 import S3ObjectStore


def object_store_from_settings(
    *,
    bucket: str | None,
    local_dir: str | os.PathLike[str],
    base_url: str,
    signing_secret: str | bytes | None = None,
    url_expires_s: int = DEFAULT_URL_EXPIRES_S,
    **s3: Any,
) -> ObjectStore:
    """Plain arguments, so storage needs no settings object; ``base_url`` and the secret serve only local
    links, and ``s3`` (endpoint, region, keys, addressing style) goes to :class:`S3ObjectStore` as is."""
    if bucket:
        return S3ObjectStore(bucket, url_expires_s=url_expires_s, **s3)
    return LocalObjectStore(local_dir, base_url, signing_secret, url_expires_s=url_expires_s)
