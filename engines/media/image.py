"""Image rules and the check that enforces them, safe against hostile files.

Order matters for safety: byte size and the header (format, width, height)
are checked before a single pixel is decoded, so a decompression bomb is
refused without allocating it; only then is the image fully decoded, inside a
``try``, so a truncated or corrupt file becomes a ``ValidationFailed`` line
rather than a crash. Only a fixed set of Pillow parsers is ever tried.
"""

from __future__ import annotations

import io
import re
import warnings
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Literal

from PIL import ExifTags, Image
from pydantic import BaseModel, ConfigDict, Field, field_validator

from engines.errors import ValidationFailed

DEFAULT_FORMATS = frozenset({"PNG", "JPEG", "WEBP", "GIF", "AVIF"})
# Parsers tried only to *name* a refused format; they read headers, never pixels.
_NAMED_ONLY = frozenset({"BMP", "TIFF", "ICO", "PPM", "QOI", "PSD", "JPEG2000"})
_ALIASES = {"JPG": "JPEG", "TIF": "TIFF"}
_BOMB_SIZE = re.compile(r"\((\d+) pixels\)")


def norm_format(name: str) -> str:
    up = name.strip().upper()
    return _ALIASES.get(up, up)


class ImageRule(BaseModel):
    """What an image input may be; every bound is optional except the safety caps."""

    model_config = ConfigDict(extra="forbid", frozen=True)
    kind: Literal["image"] = "image"
    max_bytes: int | None = Field(20_000_000, gt=0)
    min_width: int | None = Field(None, ge=1)
    max_width: int | None = Field(None, ge=1)
    min_height: int | None = Field(None, ge=1)
    max_height: int | None = Field(None, ge=1)
    max_pixels: int = Field(40_000_000, gt=0, description="width x height cap, checked before decoding")
    max_frames: int = Field(1_000, gt=0, description="cap for animated images")
    formats: frozenset[str] = DEFAULT_FORMATS
    strip_gps: bool = Field(True, description="accept_image removes EXIF GPS before use")
    forbid_exif_fields: frozenset[str] = frozenset()
    require_exif_fields: frozenset[str] = frozenset()

    @field_validator("formats", mode="after")
    @classmethod
    def _upper(cls, v: frozenset[str]) -> frozenset[str]:
        return frozenset(norm_format(f) for f in v)


class ImageInfo(BaseModel):
    """What the check saw; safe to log or return to a caller."""

    format: str
    content_type: str
    width: int
    height: int
    frames: int = 1
    mode: str
    bytes: int
    exif_fields: list[str] = []
    has_gps: bool = False


def _bomb(field: str, pixels: int | None, cap: int) -> ValidationFailed:
    seen = f"{pixels} pixels" if pixels is not None else "pixel count"
    return ValidationFailed([f"{field}: {seen} exceeds max {cap} (decompression bomb?)"])


@contextmanager
def open_image(field: str, data: bytes, formats: frozenset[str], max_pixels: int) -> Iterator[Image.Image]:
    """Open ``data`` reading the header only; refuse bombs before any decode.

    Pillow's own global bomb limit still applies on top (its error is turned
    into the same message); ours is per call, so no global is touched.
    """
    allowed = sorted(formats)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)
            img = Image.open(io.BytesIO(data), formats=sorted(formats | _NAMED_ONLY))
    except Image.DecompressionBombError as exc:
        m = _BOMB_SIZE.search(str(exc))
        raise _bomb(field, int(m.group(1)) if m else None, max_pixels) from None
    except Image.UnidentifiedImageError:
        raise ValidationFailed(
            [f"{field}: not a readable image (unknown format; allowed: {', '.join(allowed)})"]) from None
    except Exception:  # any parser error on a hostile header
        raise ValidationFailed([f"{field}: not a readable image (truncated or corrupt)"]) from None
    try:
        w, h = img.size
        if w * h > max_pixels:
            raise _bomb(field, w * h, max_pixels)
        yield img
    finally:
        img.close()


def exif_summary(img: Image.Image) -> tuple[list[str], bool]:
    """EXIF tag names (base, Exif and GPS IFDs) and whether GPS data is present."""
    exif = img.getexif()
    names = {ExifTags.TAGS.get(t, f"0x{t:04X}") for t in exif}
    names |= {ExifTags.TAGS.get(t, f"0x{t:04X}") for t in exif.get_ifd(ExifTags.IFD.Exif)}
    gps = exif.get_ifd(ExifTags.IFD.GPSInfo)
    names |= {ExifTags.GPSTAGS.get(t, f"GPS0x{t:04X}") for t in gps}
    has_gps = bool(gps) or ExifTags.Base.GPSInfo in exif
    return sorted(names), has_gps


def bounds_problems(field: str, what: str, seen: int, lo: int | None, hi: int | None) -> list[str]:
    """``field: width 9000 exceeds max 4096``-style lines, shared by the image and video rules."""
    if hi is not None and seen > hi:
        return [f"{field}: {what} {seen} exceeds max {hi}"]
    if lo is not None and seen < lo:
        return [f"{field}: {what} {seen} below min {lo}"]
    return []


def _header_problems(field: str, img: Image.Image, rule: ImageRule) -> list[str]:
    fmt = img.format or "unknown"
    if fmt not in rule.formats:
        return [f"{field}: format {fmt} not allowed (allowed: {', '.join(sorted(rule.formats))})"]
    w, h = img.size
    problems = bounds_problems(field, "width", w, rule.min_width, rule.max_width)
    problems += bounds_problems(field, "height", h, rule.min_height, rule.max_height)
    return problems


def _exif_problems(field: str, names: list[str], rule: ImageRule) -> list[str]:
    seen = set(names)
    out = [f"{field}: EXIF field {n} is forbidden" for n in sorted(rule.forbid_exif_fields & seen)]
    out += [f"{field}: EXIF field {n} is required but missing" for n in sorted(rule.require_exif_fields - seen)]
    return out


def _inspect(field: str, img: Image.Image, rule: ImageRule, size: int, decode: bool) -> ImageInfo | None:
    problems = _header_problems(field, img, rule)
    if problems:
        raise ValidationFailed(problems)
    if not decode:
        return None
    try:
        frames = int(getattr(img, "n_frames", 1))
        if frames > rule.max_frames:
            raise ValidationFailed([f"{field}: {frames} frames exceeds max {rule.max_frames}"])
        img.load()
    except ValidationFailed:
        raise
    except Exception:  # truncated data, bad chunks, decoder errors, nested bombs
        raise ValidationFailed([f"{field}: not a readable image (truncated or corrupt)"]) from None
    try:
        names, has_gps = exif_summary(img)
    except Exception:
        if rule.forbid_exif_fields or rule.require_exif_fields:
            raise ValidationFailed([f"{field}: EXIF metadata unreadable (corrupt)"]) from None
        names, has_gps = [], False
    problems = _exif_problems(field, names, rule)
    if problems:
        raise ValidationFailed(problems)
    fmt = img.format or "unknown"
    return ImageInfo(format=fmt, content_type=Image.MIME.get(fmt, "application/octet-stream"),
                     width=img.width, height=img.height, frames=frames, mode=img.mode,
                     bytes=size, exif_fields=names, has_gps=has_gps)


def check_image(field: str, data: bytes, rule: ImageRule) -> ImageInfo:
    """Check ``data`` against ``rule``; raise ``ValidationFailed`` naming what was seen.

    Every broken size/header rule is reported together; an oversized file is
    never decoded.
    """
    if not isinstance(data, (bytes, bytearray, memoryview)):
        raise ValidationFailed([f"{field}: must be bytes (got {type(data).__name__})"])
    data = bytes(data)
    too_big = []
    if rule.max_bytes is not None and len(data) > rule.max_bytes:
        too_big = [f"{field}: {len(data)} bytes exceeds max {rule.max_bytes}"]
    try:
        with open_image(field, data, rule.formats, rule.max_pixels) as img:
            info = _inspect(field, img, rule, len(data), decode=not too_big)
    except ValidationFailed as exc:
        raise ValidationFailed(too_big + exc.problems) from None
    if info is None:
        raise ValidationFailed(too_big)
    return info
