"""Pick the object store from plain settings: a bucket means S3, none means the local folder."""

from __future__ import annotations

import os

from storage.objects.base import DEFAULT_URL_EXPIRES_S, ObjectStore
from storage.objects.local import LocalObjectStore
from storage.objects.s3 import AddressingStyle, S3ObjectStore


def object_store_from_settings(
    *,
    bucket: str | None,
    local_dir: str | os.PathLike[str],
    base_url: str,
    signing_secret: str | bytes | None = None,
    endpoint_url: str | None = None,
    region: str | None = None,
    access_key_id: str | None = None,
    secret_access_key: str | None = None,
    addressing_style: AddressingStyle = "auto",
    url_expires_s: int = DEFAULT_URL_EXPIRES_S,
) -> ObjectStore:
    """Plain arguments, so storage needs no settings object; ``base_url`` and the secret serve only local links."""
    if bucket:
        return S3ObjectStore(bucket, endpoint_url=endpoint_url, region=region, access_key_id=access_key_id,
                             secret_access_key=secret_access_key, addressing_style=addressing_style,
                             url_expires_s=url_expires_s)
    return LocalObjectStore(local_dir, base_url, signing_secret, url_expires_s=url_expires_s)
