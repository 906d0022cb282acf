"""The object store: algorithm outputs (``outputs/<task_id>/…``) and the links handed to callers."""

from storage.objects.base import (
    InvalidObjectKey,
    ObjectNotFound,
    ObjectStore,
    ObjectStoreFailed,
    StorageError,
    StoredObject,
    check_key,
)
from storage.objects.factory import object_store_from_settings
from storage.objects.local import LocalObjectStore
from storage.objects.s3 import S3ObjectStore

__all__ = [
    "InvalidObjectKey",
    "LocalObjectStore",
    "ObjectNotFound",
    "ObjectStore",
    "ObjectStoreFailed",
    "S3ObjectStore",
    "StorageError",
    "StoredObject",
    "check_key",
    "object_store_from_settings",
]
