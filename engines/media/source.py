"""Where a media field's bytes come from: an http(s) URL, a ``data:`` URI, or an object-store key.

URLs go through :mod:`engines.net.safe_url` (public addresses only, size and time
limits); data URIs are size-checked before decoding; keys are read from the
object store this call is bound to (outputs of earlier tasks, ``outputs/…``).
"""

from __future__ import annotations

import base64
import binascii

from engines.algorithms import context
from engines.errors import ValidationFailed
from engines.net.safe_url import fetch_public
from engines.settings import get_settings

MEDIA_REF_PATTERN = r"^(https?://|data:|outputs/)"
MEDIA_REF_HELP = "an http(s) URL, a data: URI (base64), or an object-store key (outputs/…)"


def _decode_data_uri(field: str, ref: str, max_bytes: int) -> bytes:
    header, sep, payload = ref.partition(",")
    if not sep or not header.endswith(";base64"):
        raise ValidationFailed([f"{field}: data URI must be data:<type>;base64,<data>"])
    if len(payload) * 3 // 4 > max_bytes:
        raise ValidationFailed([f"{field}: about {len(payload) * 3 // 4} bytes exceeds max {max_bytes}"])
    try:
        return base64.b64decode(payload, validate=True)
    except (binascii.Error, ValueError):
        raise ValidationFailed([f"{field}: data URI is not valid base64"]) from None


async def load_media(field: str, ref: str, *, max_bytes: int, timeout_s: float = 15.0) -> bytes:
    """The bytes behind ``ref``, or ValidationFailed naming ``field`` and what was wrong."""
    if ref.startswith("data:"):
        return _decode_data_uri(field, ref, max_bytes)
    if ref.startswith(("http://", "https://")):
        data, _ = await fetch_public(field, ref, max_bytes=max_bytes, timeout_s=timeout_s,
                                     allowlist=get_settings().fetch_allowlist)
        return data
    if ref.startswith("outputs/"):
        data = await context.read_object(field, ref)
        if len(data) > max_bytes:
            raise ValidationFailed([f"{field}: {len(data)} bytes exceeds max {max_bytes}"])
        return data
    raise ValidationFailed([f"{field}: must be {MEDIA_REF_HELP}"])
