"""The embedded default: objects in a local folder, links served by the gateway.

Links are ``{base_url}/objects/{key}?expires=<unix>&sig=<hex>`` with an
HMAC-SHA256 over the key and expiry, so the gateway can serve a file to
whoever holds the link without a bearer token, only until it expires, and
only that file.
"""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import os
import secrets
import time
from pathlib import Path
from urllib.parse import quote, urlencode

from storage.objects.base import (
    DEFAULT_URL_EXPIRES_S,
    InvalidObjectKey,
    ObjectNotFound,
    StoredObject,
    check_key,
    content_type_for,
)

DATA_DIR = "objects"
TYPES_DIR = "content-types"  # a parallel tree, so no key can collide with a sidecar


class LocalObjectStore:
    """Files under ``root_dir``; the content type sits in a parallel tree beside them."""

    def __init__(
        self,
        root_dir: str | os.PathLike[str],
        base_url: str,
        signing_secret: str | bytes | None = None,
        *,
        url_expires_s: int = DEFAULT_URL_EXPIRES_S,
    ) -> None:
        """Without ``signing_secret`` a random one is made: links then work only on this process."""
        if isinstance(signing_secret, str):
            signing_secret = signing_secret.encode()
        if signing_secret is not None and len(signing_secret) < 16:
            raise ValueError("the object link signing secret must be at least 16 bytes")
        self.root = Path(root_dir).resolve()
        self.base_url = base_url.rstrip("/")
        self.url_expires_s = url_expires_s
        self._secret = signing_secret or secrets.token_bytes(32)

    def __repr__(self) -> str:
        return f"LocalObjectStore(root_dir={str(self.root)!r}, base_url={self.base_url!r})"

    async def put(self, key: str, data: bytes, content_type: str | None = None) -> StoredObject:
        check_key(key)
        content_type = content_type_for(key, content_type)
        await asyncio.to_thread(self._write, key, bytes(data), content_type)
        return StoredObject(key, content_type, len(data), await self.url(key))

    async def get(self, key: str) -> tuple[bytes, str]:
        return await asyncio.to_thread(self._read, key)

    async def exists(self, key: str) -> bool:
        return await asyncio.to_thread(lambda: self._path(DATA_DIR, key).is_file())

    async def delete(self, key: str) -> None:
        def remove() -> None:
            for tree in (DATA_DIR, TYPES_DIR):
                self._path(tree, key).unlink(missing_ok=True)

        await asyncio.to_thread(remove)

    async def url(self, key: str, expires_s: int | None = None) -> str:
        return self.signed_url(key, expires_s)

    def signed_url(self, key: str, expires_s: int | None = None) -> str:
        check_key(key)
        expires = int(time.time()) + (self.url_expires_s if expires_s is None else expires_s)
        query = urlencode({"expires": expires, "sig": self._signature(key, expires)})
        return f"{self.base_url}/objects/{quote(key, safe='/')}?{query}"

    def verify(self, key: str, expires: int | str, sig: str) -> bool:
        """True only for an unexpired link this store signed for exactly this key."""
        try:
            expires = int(expires)
            check_key(key)
        except (TypeError, ValueError):
            return False
        if expires < time.time() or not isinstance(sig, str) or not sig.isascii():
            return False
        return hmac.compare_digest(self._signature(key, expires), sig)

    def _signature(self, key: str, expires: int) -> str:
        # keys never hold control characters, so the newline cannot be forged into a key
        return hmac.new(self._secret, f"{expires}\n{key}".encode(), hashlib.sha256).hexdigest()

    def _path(self, tree: str, key: str) -> Path:
        check_key(key)
        base = self.root / tree
        path = base / key
        # the key is already relative and free of '..'; this catches symlinks planted in the folder
        if not path.resolve().is_relative_to(base.resolve()):
            raise InvalidObjectKey(key, "it resolves outside the store's folder")
        return path

    def _write(self, key: str, data: bytes, content_type: str) -> None:
        try:
            _write_atomically(self._path(TYPES_DIR, key), content_type.encode())
            _write_atomically(self._path(DATA_DIR, key), data)
        except (NotADirectoryError, IsADirectoryError, FileExistsError) as err:
            raise InvalidObjectKey(key, "it clashes with an existing key (one key's folder is another's file)") \
                from err

    def _read(self, key: str) -> tuple[bytes, str]:
        try:
            data = self._path(DATA_DIR, key).read_bytes()
        except (FileNotFoundError, NotADirectoryError, IsADirectoryError) as err:
            raise ObjectNotFound(key) from err
        try:
            content_type = self._path(TYPES_DIR, key).read_text().strip()
        except OSError:
            content_type = ""
        return data, content_type or content_type_for(key, None)


def _write_atomically(path: Path, data: bytes) -> None:
    """Readers see the old object or the new one, never half of it."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{secrets.token_hex(6)}.tmp")
    try:
        tmp.write_bytes(data)
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)
