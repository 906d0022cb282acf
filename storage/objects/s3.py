"""Objects in an S3 bucket: AWS S3, Aliyun OSS (S3 endpoint), MinIO or SeaweedFS.

boto3 is synchronous, so every call runs in a worker thread. The client is
configured for the strictest common denominator: signature v4, and checksums
only where an operation requires them (boto3 >= 1.36 otherwise adds
``x-amz-checksum-*`` headers and aws-chunked bodies that OSS and many
S3-compatible servers reject).

Typical endpoints:

- AWS: no ``endpoint_url``, ``region`` set, addressing ``auto``.
- Aliyun OSS: ``https://s3.oss-<region>.aliyuncs.com``, ``region="<region>"``
  (e.g. ``cn-hangzhou``), addressing ``virtual`` (OSS refuses path style).
- MinIO / SeaweedFS: ``http://host:port``, any region, addressing ``path``.
"""

from __future__ import annotations

import asyncio
from typing import Any, Literal

import boto3
from botocore.config import Config
from botocore.exceptions import BotoCoreError, ClientError

from storage.objects.base import (
    DEFAULT_URL_EXPIRES_S,
    ObjectNotFound,
    ObjectStoreFailed,
    StoredObject,
    check_key,
    content_type_for,
)

AddressingStyle = Literal["auto", "path", "virtual"]
MAX_PRESIGN_S = 7 * 24 * 3600  # the longest a v4 presigned URL may live
_MISSING = {"404", "NoSuchKey", "NotFound", "NoSuchBucket"}  # HEAD answers carry only "404"


class S3ObjectStore:
    """One bucket; links are presigned GET URLs, so the gateway never serves the bytes."""

    def __init__(
        self,
        bucket: str,
        *,
        endpoint_url: str | None = None,
        region: str | None = None,
        access_key_id: str | None = None,
        secret_access_key: str | None = None,
        addressing_style: AddressingStyle = "auto",
        url_expires_s: int = DEFAULT_URL_EXPIRES_S,
    ) -> None:
        """Keys left out fall back to boto3's chain (environment, profile, instance role)."""
        self.bucket = bucket
        self.endpoint_url = endpoint_url
        self.region = region
        self.url_expires_s = url_expires_s
        config = Config(
            signature_version="s3v4",
            s3={"addressing_style": addressing_style},
            request_checksum_calculation="when_required",
            response_checksum_validation="when_required",
            retries={"mode": "standard", "max_attempts": 3},
            connect_timeout=10,
            read_timeout=60,
        )
        self._client = boto3.session.Session().client(
            "s3",
            endpoint_url=endpoint_url,
            region_name=region,
            aws_access_key_id=access_key_id,
            aws_secret_access_key=secret_access_key,
            config=config,
        )

    def __repr__(self) -> str:
        return f"S3ObjectStore(bucket={self.bucket!r}, endpoint_url={self.endpoint_url!r}, region={self.region!r})"

    async def ensure_bucket(self) -> None:
        """Create the bucket if it is missing (start-up, tests); an existing one is left as it is."""
        if await self._bucket_exists():
            return
        kwargs: dict[str, Any] = {"Bucket": self.bucket}
        if self.region and self.region != "us-east-1":  # AWS refuses an explicit us-east-1
            kwargs["CreateBucketConfiguration"] = {"LocationConstraint": self.region}
        try:
            await self._call("create", None, self._client.create_bucket, **kwargs)
        except ObjectStoreFailed:
            if not await self._bucket_exists():  # another gateway may have just made it
                raise

    async def put(self, key: str, data: bytes, content_type: str | None = None) -> StoredObject:
        check_key(key)
        content_type = content_type_for(key, content_type)
        await self._call("put", key, self._client.put_object,
                         Bucket=self.bucket, Key=key, Body=bytes(data), ContentType=content_type)
        return StoredObject(key, content_type, len(data), await self.url(key))

    async def get(self, key: str) -> tuple[bytes, str]:
        check_key(key)

        def read() -> tuple[bytes, str]:
            answer = self._client.get_object(Bucket=self.bucket, Key=key)
            with answer["Body"] as body:
                data = body.read()
            return data, answer.get("ContentType") or content_type_for(key, None)

        return await self._call("get", key, read)

    async def exists(self, key: str) -> bool:
        check_key(key)
        try:
            await self._call("head", key, self._client.head_object, Bucket=self.bucket, Key=key)
        except ObjectNotFound:
            return False
        return True

    async def delete(self, key: str) -> None:
        check_key(key)
        await self._call("delete", key, self._client.delete_object, Bucket=self.bucket, Key=key)

    async def url(self, key: str, expires_s: int | None = None) -> str:
        check_key(key)
        expires_s = self.url_expires_s if expires_s is None else expires_s
        if not 1 <= expires_s <= MAX_PRESIGN_S:
            raise ValueError(f"expires_s must be between 1 and {MAX_PRESIGN_S} (7 days), got {expires_s}")
        return await self._call("presign", key, self._client.generate_presigned_url, "get_object",
                                Params={"Bucket": self.bucket, "Key": key}, ExpiresIn=expires_s)

    async def _call(self, op: str, key: str | None, fn: Any, *args: Any, **kwargs: Any) -> Any:
        """Run one boto3 call in a thread, turning its errors into the store's own (no secrets in them)."""
        what = f"{op} of {key!r} in" if key else f"{op} of"
        try:
            return await asyncio.to_thread(fn, *args, **kwargs)
        except ClientError as err:
            code = str(err.response.get("Error", {}).get("Code", ""))
            if key and code in _MISSING:
                raise ObjectNotFound(key) from err
            raise ObjectStoreFailed(f"object store {what} bucket {self.bucket!r} failed: {code}", code) from err
        except BotoCoreError as err:  # no connection, no credentials, a timeout
            code = type(err).__name__
            raise ObjectStoreFailed(f"object store {what} bucket {self.bucket!r} failed: {code}", code) from err

    async def _bucket_exists(self) -> bool:
        try:
            await self._call("check", None, self._client.head_bucket, Bucket=self.bucket)
        except ObjectStoreFailed as err:
            if err.code in _MISSING:
                return False
            raise
        return True
