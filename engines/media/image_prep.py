"""Image pre-processing: GPS stripping, format conversion and resizing.

An algorithm should get an image in the format and size it expects, and a
caller's location should not leak into outputs or logs. JPEG GPS stripping
rewrites only the EXIF segment (no re-encode, no quality loss); other formats
are re-saved (PNG stays lossless). Every open goes through the same header
check as :func:`check_image`, so pre-processing is never a bomb's way in.
"""

from __future__ import annotations

import io
import struct
from typing import Literal

from PIL import ExifTags, Image, ImageOps, ImageSequence

from engines.errors import ValidationFailed
from engines.media.image import (
    DEFAULT_FORMATS,
    ImageInfo,
    ImageRule,
    check_image,
    exif_summary,
    norm_format,
    open_image,
)

_OPENABLE = DEFAULT_FORMATS | {"BMP", "TIFF"}
_ANIMATED = {"GIF", "WEBP", "PNG"}
_EXIF_OK = {"JPEG", "PNG", "WEBP", "AVIF"}
_XMP = b"http://ns.adobe.com/xap/1.0/\x00"
_MAX_PIXELS = ImageRule().max_pixels
_LANCZOS = Image.Resampling.LANCZOS


def _content_type(fmt: str) -> str:
    return Image.MIME.get(fmt, "application/octet-stream")


def _exif_without(img: Image.Image, gps: bool, orientation: bool) -> Image.Exif | None:
    """The image's EXIF minus GPS and/or Orientation; None if it is unreadable."""
    try:
        # A fresh copy: the image's cached Exif re-adds loaded sub-IFDs (GPS) on tobytes().
        exif = Image.Exif()
        exif.load(img.getexif().tobytes())
    except Exception:
        return None
    if gps:
        exif.pop(ExifTags.Base.GPSInfo, None)
    if orientation:
        exif.pop(ExifTags.Base.Orientation, None)
    return exif


def _jpeg_segments(data: bytes) -> tuple[list[tuple[int, bytes]], bytes]:
    """Split a JPEG into its header segments and the rest (from SOS on)."""
    if data[:2] != b"\xff\xd8":
        raise ValueError("not a JPEG")
    pos, segments = 2, []
    while pos + 4 <= len(data):
        if data[pos] != 0xFF:
            raise ValueError("bad marker")
        marker = data[pos + 1]
        if marker == 0xDA:  # start of scan: entropy-coded data follows
            return segments, data[pos:]
        (length,) = struct.unpack(">H", data[pos + 2:pos + 4])
        if length < 2 or pos + 2 + length > len(data):
            raise ValueError("bad segment length")
        segments.append((marker, data[pos + 4:pos + 2 + length]))
        pos += 2 + length
    raise ValueError("no image data")


def _strip_jpeg_gps(data: bytes, exif: Image.Exif | None) -> bytes:
    segments, rest = _jpeg_segments(data)
    out = [b"\xff\xd8"]
    for marker, payload in segments:
        if marker == 0xE1 and payload.startswith(b"Exif\x00\x00"):
            if exif is None or not len(exif):
                continue  # unreadable or empty EXIF: drop it whole
            payload = exif.tobytes()
        elif marker == 0xE1 and payload.startswith(_XMP) and b"GPS" in payload:
            continue  # XMP can carry exif:GPS* too
        out.append(bytes([0xFF, marker]) + struct.pack(">H", len(payload) + 2) + payload)
    return b"".join(out) + rest


def strip_gps(data: bytes, *, field: str = "image", max_pixels: int = _MAX_PIXELS) -> bytes:
    """Return ``data`` without EXIF GPS (and GPS-bearing XMP); unchanged if it had none."""
    return _strip_gps(data, field, max_pixels)


def _strip_gps(data: bytes, field: str, max_pixels: int) -> bytes:
    with open_image(field, data, _OPENABLE, max_pixels) as img:
        fmt = img.format or "PNG"
        try:
            _, has_gps = exif_summary(img)
        except Exception:
            has_gps = True  # unreadable EXIF: re-save without it to be sure
        exif = _exif_without(img, gps=True, orientation=False)
        if fmt == "JPEG":  # lossless: rewrite the segments, keep the scan data
            try:
                return _strip_jpeg_gps(data, exif)
            except ValueError:
                raise ValidationFailed([f"{field}: not a readable image (truncated or corrupt)"]) from None
        if not has_gps:
            return data
        out, _ = _encode(field, img, fmt, exif, frames=None, size=None, max_side=None, mode="fit",
                         quality=95, transpose=False)
        return out


def _has_alpha(img: Image.Image) -> bool:
    return img.mode in ("RGBA", "LA", "PA") or (img.mode == "P" and "transparency" in img.info)


def _for_format(img: Image.Image, fmt: str) -> Image.Image:
    """Convert pixel mode to one ``fmt`` can store; JPEG alpha goes onto white."""
    if fmt == "JPEG":
        if _has_alpha(img):
            rgba = img.convert("RGBA")
            bg = Image.new("RGB", rgba.size, "white")
            bg.paste(rgba, mask=rgba.getchannel("A"))
            return bg
        return img if img.mode in ("RGB", "L", "CMYK") else img.convert("RGB")
    if fmt == "GIF" or (fmt == "PNG" and img.mode in ("1", "L", "LA", "P", "I;16")):
        return img
    if img.mode in ("RGB", "RGBA"):
        return img
    return img.convert("RGBA" if _has_alpha(img) else "RGB")


def _resize(img: Image.Image, size: tuple[int, int] | None, max_side: int | None, mode: str) -> Image.Image:
    if size is not None:
        if mode == "fill":
            img = ImageOps.fit(img, size, _LANCZOS)
        elif img.width > size[0] or img.height > size[1]:
            img = ImageOps.contain(img, size, _LANCZOS)  # fit inside, never upscale
    if max_side is not None and max(img.size) > max_side:
        scale = max_side / max(img.size)
        img = img.resize((max(1, round(img.width * scale)), max(1, round(img.height * scale))), _LANCZOS)
    return img


def _encode(field: str, img: Image.Image, fmt: str, exif: Image.Exif | None, *, frames: int | None,
            size: tuple[int, int] | None, max_side: int | None, mode: str, quality: int,
            transpose: bool = True) -> tuple[bytes, str]:
    """Decode, transform every kept frame, and save as ``fmt``."""
    try:
        animated = fmt in _ANIMATED and getattr(img, "is_animated", False)
        sources = ImageSequence.Iterator(img) if animated else [img]
        out_frames, durations = [], []
        for i, frame in enumerate(sources):
            if frames is not None and i >= frames:
                break
            durations.append(frame.info.get("duration", 100))
            if transpose:
                frame = ImageOps.exif_transpose(frame)
            out_frames.append(_for_format(_resize(frame, size, max_side, mode), fmt))
        params: dict[str, object] = {}
        if fmt in ("JPEG", "WEBP", "AVIF"):
            params["quality"] = quality
        if exif is not None and len(exif) and fmt in _EXIF_OK:
            params["exif"] = exif
        if len(out_frames) > 1:
            params |= {"save_all": True, "append_images": out_frames[1:], "duration": durations,
                       "loop": img.info.get("loop", 0)}
        buf = io.BytesIO()
        out_frames[0].save(buf, format=fmt, **params)
    except ValidationFailed:
        raise
    except Exception:  # decoder/encoder errors on hostile or truncated data
        raise ValidationFailed([f"{field}: not a readable image (truncated or corrupt)"]) from None
    return buf.getvalue(), _content_type(fmt)


def prepare_image(data: bytes, *, to_format: str | None = None, max_side: int | None = None,
                  mode: Literal["fit", "fill"] = "fit", size: tuple[int, int] | None = None,
                  strip_gps: bool = True, quality: int = 90, field: str = "image",
                  max_pixels: int = _MAX_PIXELS, max_frames: int = 1_000) -> tuple[bytes, str]:
    """Convert/resize ``data``; return ``(bytes, content_type)``.

    ``fit`` keeps the aspect inside ``size`` (never upscaling); ``fill`` covers
    ``size`` exactly, cropping the centre. ``max_side`` caps the longer side.
    EXIF orientation is applied to the pixels; GPS is dropped if ``strip_gps``.
    """
    if mode not in ("fit", "fill"):
        raise ValidationFailed([f"{field}: resize mode must be 'fit' or 'fill' (got {mode!r})"])
    if mode == "fill" and size is None:
        raise ValidationFailed([f"{field}: resize mode 'fill' needs a size"])
    if size is not None and (min(size) < 1 or size[0] * size[1] > max_pixels):
        raise ValidationFailed([f"{field}: target size {size[0]}x{size[1]} outside 1..{max_pixels} pixels"])
    if max_side is not None and max_side < 1:
        raise ValidationFailed([f"{field}: max_side must be >= 1 (got {max_side})"])
    target = norm_format(to_format) if to_format else None
    if target is not None and target not in _OPENABLE:
        raise ValidationFailed([f"{field}: cannot convert to {target} (allowed: {', '.join(sorted(_OPENABLE))})"])
    with open_image(field, data, _OPENABLE, max_pixels) as img:
        fmt = img.format or "PNG"
        if target in (None, fmt) and size is None and (max_side is None or max(img.size) <= max_side):
            return (_strip_gps(data, field, max_pixels) if strip_gps else data), _content_type(fmt)
        exif = _exif_without(img, gps=strip_gps, orientation=True)  # None when unreadable: not copied
        return _encode(field, img, target or fmt, exif, frames=max_frames, size=size,
                       max_side=max_side, mode=mode, quality=quality)


def accept_image(field: str, data: bytes, rule: ImageRule) -> tuple[bytes, ImageInfo]:
    """Check ``data`` and apply the rule's metadata policy (GPS stripping)."""
    info = check_image(field, data, rule)
    if rule.strip_gps and info.has_gps:
        data = strip_gps(data, field=field, max_pixels=rule.max_pixels)
        info = info.model_copy(update={"has_gps": False, "bytes": len(data),
                                       "exif_fields": [n for n in info.exif_fields if not n.startswith("GPS")]})
    return data, info
