"""What every object store promises, and the key rules they all enforce.

Keys are checked here, once, so that the local folder store cannot be walked
out of and an S3 bucket never receives a key the local store would refuse:
an output written in development behaves the same in production.
"""

from __future__ import annotations

import mimetypes
from dataclasses import dataclass
from typing import Protocol, runtime_checkable

MAX_KEY_BYTES = 1024  # S3's limit on a key's UTF-8 length
DEFAULT_CONTENT_TYPE = "application/octet-stream"
DEFAULT_URL_EXPIRES_S = 3600


class StorageError(Exception):
    """Base of the object store's errors; the engines map these to their own."""


class InvalidObjectKey(StorageError, ValueError):
    """A key that could escape the store's folder or that S3 would not take."""

    def __init__(self, key: object, reason: str) -> None:
        self.key = key
        self.reason = reason
        super().__init__(f"object key {key!r} is not allowed: {reason}")


class ObjectNotFound(StorageError, LookupError):
    def __init__(self, key: str) -> None:
        self.key = key
        super().__init__(f"no object stored under {key!r}")


class ObjectStoreFailed(StorageError):
    """The store answered with an error or not at all (network, credentials, bucket)."""

    def __init__(self, message: str, code: str = "") -> None:
        self.code = code  # the store's error code ("AccessDenied", "404" …) or the client's error name
        super().__init__(message)


@dataclass(frozen=True, slots=True)
class StoredObject:
    key: str
    content_type: str
    bytes: int
    url: str


@runtime_checkable
class ObjectStore(Protocol):
    """Where algorithm outputs (``outputs/<task_id>/…``) and large actor states (``actors/<id>/…``) go."""

    async def put(self, key: str, data: bytes, content_type: str | None = None) -> StoredObject: ...

    async def get(self, key: str) -> tuple[bytes, str]: ...

    async def url(self, key: str, expires_s: int | None = None) -> str:
        """A link anyone holding it can GET until ``expires_s`` (default: the store's) has passed."""
        ...

    async def exists(self, key: str) -> bool: ...

    async def delete(self, key: str) -> None:
        """Remove the object; a key with no object is not an error."""
        ...


def check_key(key: object) -> str:
    """Return ``key`` if it is a relative, normalised, printable path; raise :class:`InvalidObjectKey` if not."""
    if not isinstance(key, str):
        raise InvalidObjectKey(key, "it must be a string")
    if not key:
        raise InvalidObjectKey(key, "it is empty")
    if len(key.encode("utf-8", "surrogatepass")) > MAX_KEY_BYTES:
        raise InvalidObjectKey(key, f"it is longer than {MAX_KEY_BYTES} bytes")
    if "\x00" in key:
        raise InvalidObjectKey(key, "it contains a NUL character")
    if any(ord(c) < 0x20 or ord(c) == 0x7F for c in key):
        raise InvalidObjectKey(key, "it contains a control character")
    if "\\" in key:
        raise InvalidObjectKey(key, "it contains a backslash; separate parts with '/'")
    if key.startswith("/") or (len(key) > 1 and key[1] == ":"):
        raise InvalidObjectKey(key, "it is an absolute path; use a relative key like 'outputs/<task_id>/image.png'")
    parts = key.split("/")
    if any(part in (".", "..") for part in parts):
        raise InvalidObjectKey(key, "it contains a '.' or '..' part")
    if any(not part for part in parts):
        raise InvalidObjectKey(key, "it contains an empty part ('//' or a trailing '/')")
    return key


def content_type_for(key: str, given: str | None) -> str:
    """The given type, else one guessed from the key's suffix, else ``application/octet-stream``."""
    if given:
        if any(c in given for c in "\r\n\x00"):
            raise ValueError(f"content type {given!r} contains a line break or NUL")
        return given
    guessed, _ = mimetypes.guess_type(key, strict=False)
    return guessed or DEFAULT_CONTENT_TYPE
