"""Video rules and the check that enforces them, with PyAV on in-memory bytes.

Hostile input is the normal case here: only a fixed list of demuxers may
probe the bytes (so a playlist can never make FFmpeg open URLs or files), the
frame size is checked from the header before any decode, the decoder gets the
same pixel cap, packets are only demuxed (not decoded) to measure the real
duration, and a handful are decoded to prove the stream is readable.
Every FFmpeg error becomes a ``ValidationFailed`` line.
"""

from __future__ import annotations

import io
import math
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from fractions import Fraction
from typing import Literal

import av
from pydantic import BaseModel, ConfigDict, Field, field_validator

from engines.errors import ValidationFailed
from engines.media.image import bounds_problems

# Demuxers allowed to read caller bytes (FFmpeg matches any name of a format's list).
DEMUXERS = "mov,matroska,webm,avi,flv,mpegts,ogg,ivf"
CONTENT_TYPES = {"mp4": "video/mp4", "webm": "video/webm", "mov": "video/quicktime",
                 "mkv": "video/x-matroska", "avi": "video/x-msvideo", "3gp": "video/3gpp"}
MAX_PACKETS = 500_000
_DECODE_TRIES = 64


def _ratio(text: str) -> Fraction:
    w, _, h = text.partition(":")
    return Fraction(int(w), int(h))


class VideoRule(BaseModel):
    """What a video input may be; unset bounds are not checked."""

    model_config = ConfigDict(extra="forbid", frozen=True)
    kind: Literal["video"] = "video"
    max_bytes: int | None = Field(200_000_000, gt=0)
    containers: frozenset[str] = frozenset({"mp4", "webm"})
    codecs: frozenset[str] = frozenset({"h264", "vp9", "av1"})
    audio_codecs: frozenset[str] | None = None
    aspect_ratios: list[str] | None = Field(None, description='e.g. ["16:9", "9:16"]')
    aspect_tolerance: float = Field(0.02, ge=0, lt=1, description="relative")
    sizes: list[str] | None = Field(None, description='exact sizes, e.g. ["1920x1080"]')
    min_width: int | None = Field(None, ge=1)
    max_width: int | None = Field(None, ge=1)
    min_height: int | None = Field(None, ge=1)
    max_height: int | None = Field(None, ge=1)
    max_pixels: int = Field(40_000_000, gt=0, description="frame width x height cap, checked before decoding")
    max_duration_s: float | None = Field(None, gt=0)

    @field_validator("containers", "codecs", "audio_codecs", mode="after")
    @classmethod
    def _lower(cls, v: frozenset[str] | None) -> frozenset[str] | None:
        return None if v is None else frozenset(x.strip().lower() for x in v)

    @field_validator("aspect_ratios", mode="after")
    @classmethod
    def _ratios(cls, v: list[str] | None) -> list[str] | None:
        for r in v or []:
            try:
                if _ratio(r) <= 0:
                    raise ValueError
            except (ValueError, ZeroDivisionError):
                raise ValueError(f"aspect ratio must look like 16:9 (got {r!r})") from None
        return v

    @field_validator("sizes", mode="after")
    @classmethod
    def _sizes(cls, v: list[str] | None) -> list[str] | None:
        out = []
        for s in v or []:
            w, _, h = s.lower().partition("x")
            if not (w.isdigit() and h.isdigit()):
                raise ValueError(f"size must look like 1920x1080 (got {s!r})")
            out.append(f"{int(w)}x{int(h)}")
        return out if v is not None else None


class VideoInfo(BaseModel):
    """What the check saw; safe to log or return to a caller."""

    container: str
    content_type: str
    codec: str
    width: int
    height: int
    duration_s: float | None
    fps: float | None
    audio_codec: str | None = None
    bytes: int


def _num(x: float) -> str:
    return f"{round(x, 2):g}"


@contextmanager
def open_video(field: str, data: bytes) -> Iterator[av.container.InputContainer]:
    """Open in-memory bytes with only the allowed demuxers; errors become rejections."""
    try:
        container = av.open(io.BytesIO(data), mode="r", metadata_errors="ignore",
                            options={"format_whitelist": DEMUXERS, "protocol_whitelist": "none"})
    except Exception:
        raise ValidationFailed([f"{field}: not a readable video"]) from None
    try:
        yield container
    except ValidationFailed:
        raise
    except Exception:  # whatever a hostile file makes PyAV raise mid-read
        raise ValidationFailed([f"{field}: not a readable video (corrupt)"]) from None
    finally:
        container.close()


def container_name(container: av.container.InputContainer, data: bytes) -> str:
    """``mp4``/``mov``/``3gp`` from the ftyp brand, ``webm``/``mkv`` from the EBML doctype."""
    names = container.format.name.split(",")
    if "mov" in names:
        brand = str(container.metadata.get("major_brand", "")).strip().lower()
        return "mov" if brand == "qt" else "3gp" if brand.startswith("3g") else "mp4"
    if "matroska" in names:
        return "webm" if b"webm" in data[:100] else "mkv"
    return names[0]


def codec_name(stream: av.stream.Stream) -> str:
    try:
        return stream.codec_context.codec.canonical_name
    except Exception:
        return "unknown"


def _measure(field: str, container: av.container.InputContainer, stream: av.video.VideoStream) -> float | None:
    """Demux every packet (no decode) for the true end time; decode a few to prove readability."""
    start, end, decoded = None, None, False
    try:
        for i, packet in enumerate(container.demux(stream)):
            if i >= MAX_PACKETS:
                raise ValidationFailed([f"{field}: more than {MAX_PACKETS} packets"])
            if packet.pts is not None and packet.time_base is not None:
                t0 = float(packet.pts * packet.time_base)
                t1 = t0 + float((packet.duration or 0) * packet.time_base)
                start = t0 if start is None else min(start, t0)
                end = t1 if end is None else max(end, t1)
            if not decoded and i < _DECODE_TRIES:
                with suppress(av.FFmpegError):
                    decoded = bool(packet.decode())
    except ValidationFailed:
        raise
    except Exception:
        if not decoded:
            raise ValidationFailed([f"{field}: not a readable video (corrupt stream)"]) from None
    if not decoded:
        raise ValidationFailed([f"{field}: not a readable video (no decodable frames)"])
    return None if start is None or end is None else max(0.0, end - start)


def _duration(container: av.container.InputContainer, stream: av.video.VideoStream, measured: float | None
              ) -> float | None:
    header = None
    if container.duration is not None:
        header = container.duration / av.time_base
    elif stream.duration is not None and stream.time_base is not None:
        header = float(stream.duration * stream.time_base)
    known = [d for d in (header, measured) if d is not None and math.isfinite(d)]
    return max(known) if known else None


def _geometry_problems(field: str, w: int, h: int, sar: Fraction | None, rule: VideoRule) -> list[str]:
    out = bounds_problems(field, "width", w, rule.min_width, rule.max_width)
    out += bounds_problems(field, "height", h, rule.min_height, rule.max_height)
    if rule.sizes is not None and f"{w}x{h}" not in rule.sizes:
        out.append(f"{field}: size {w}x{h} not allowed (allowed: {', '.join(rule.sizes)})")
    if rule.aspect_ratios:
        seen = Fraction(w, h) * (sar if sar and sar > 0 else 1)
        ok = any(abs(seen / _ratio(r) - 1) <= rule.aspect_tolerance for r in rule.aspect_ratios)
        if not ok:
            shown = seen.limit_denominator(100)
            out.append(f"{field}: aspect ratio {shown.numerator}:{shown.denominator} ({float(seen):.3f}) "
                       f"not allowed (allowed: {', '.join(rule.aspect_ratios)})")
    return out


def _allowed(field: str, what: str, seen: str, allowed: frozenset[str] | None) -> list[str]:
    if allowed is None or seen in allowed:
        return []
    return [f"{field}: {what} {seen} not allowed (allowed: {', '.join(sorted(allowed))})"]


def check_video(field: str, data: bytes, rule: VideoRule) -> VideoInfo:
    """Check ``data`` against ``rule``; raise ``ValidationFailed`` naming what was seen."""
    if not isinstance(data, (bytes, bytearray, memoryview)):
        raise ValidationFailed([f"{field}: must be bytes (got {type(data).__name__})"])
    data = bytes(data)
    problems: list[str] = []
    if rule.max_bytes is not None and len(data) > rule.max_bytes:
        problems.append(f"{field}: {len(data)} bytes exceeds max {rule.max_bytes}")
    with open_video(field, data) as container:
        if not container.streams.video:
            raise ValidationFailed([*problems, f"{field}: not a readable video (no video stream)"])
        stream = container.streams.video[0]
        if stream.codec_context is None:
            raise ValidationFailed([*problems, f"{field}: not a readable video (unknown codec)"])
        kind = container_name(container, data)
        codec = codec_name(stream)
        audio = codec_name(container.streams.audio[0]) if container.streams.audio else None
        w, h = stream.codec_context.width, stream.codec_context.height
        problems += _allowed(field, "container", kind, rule.containers)
        problems += _allowed(field, "codec", codec, rule.codecs)
        if audio is not None:
            problems += _allowed(field, "audio codec", audio, rule.audio_codecs)
        if w <= 0 or h <= 0:
            raise ValidationFailed([*problems, f"{field}: not a readable video (no frame size)"])
        if w * h > rule.max_pixels:
            raise ValidationFailed([*problems, f"{field}: {w * h} pixels exceeds max {rule.max_pixels}"])
        problems += _geometry_problems(field, w, h, stream.sample_aspect_ratio, rule)
        if problems:
            raise ValidationFailed(problems)
        stream.codec_context.options = {"max_pixels": str(rule.max_pixels)}
        duration = _duration(container, stream, _measure(field, container, stream))
        rate = stream.average_rate or stream.guessed_rate
    if rule.max_duration_s is not None:
        if duration is None:
            raise ValidationFailed([f"{field}: duration unknown (max {_num(rule.max_duration_s)} s)"])
        if duration > rule.max_duration_s:
            raise ValidationFailed([f"{field}: duration {_num(duration)} s exceeds max {_num(rule.max_duration_s)} s"])
    return VideoInfo(container=kind, content_type=CONTENT_TYPES.get(kind, "application/octet-stream"),
                     codec=codec, width=w, height=h, duration_s=duration,
                     fps=float(rate) if rate else None, audio_codec=audio, bytes=len(data))
