"""Video pre-processing: transcoding to a target container/codec, frame extraction.

Algorithms want one known format (say H.264 in MP4, or a few PNG frames);
this does it in memory with PyAV, never a system ffmpeg. Inputs are opened
through :func:`engines.media.video.open_video` (same demuxer list, same pixel
cap) and the number of frames decoded is always capped, so a hostile file
costs bounded work. Audio is not carried over: the video track only.
"""

from __future__ import annotations

import io
import math
from fractions import Fraction

import av
from PIL import Image

from engines.errors import ValidationFailed
from engines.media.video import CONTENT_TYPES, open_video

# Encoders tried, in order, for a codec name; the first this PyAV build has wins.
ENCODERS = {"h264": ("libx264", "h264", "libopenh264"), "vp9": ("libvpx-vp9",), "vp8": ("libvpx",),
            "av1": ("libsvtav1", "libaom-av1", "librav1e"), "hevc": ("libx265",), "mpeg4": ("mpeg4",)}
MUXERS = {"mp4": "mp4", "webm": "webm", "mov": "mov", "mkv": "matroska"}
MAX_PIXELS = 40_000_000
MAX_DECODED = 20_000


def encoder_for(codec: str) -> str | None:
    """The first available encoder for ``codec`` in this PyAV build, or None."""
    for name in ENCODERS.get(codec.lower(), (codec,)):
        try:
            av.codec.Codec(name, "w")
            return name
        except Exception:
            continue
    return None


def _scaled(w: int, h: int, max_side: int | None, even: bool) -> tuple[int, int]:
    if max_side is not None and max(w, h) > max_side:
        s = max_side / max(w, h)
        w, h = max(1, round(w * s)), max(1, round(h * s))
    if even:  # yuv420p needs even sides
        w, h = max(2, w - w % 2), max(2, h - h % 2)
    return w, h


def _video_stream(field: str, container: av.container.InputContainer, max_pixels: int) -> av.video.VideoStream:
    if not container.streams.video:
        raise ValidationFailed([f"{field}: not a readable video (no video stream)"])
    stream = container.streams.video[0]
    if stream.codec_context is None:
        raise ValidationFailed([f"{field}: not a readable video (unknown codec)"])
    w, h = stream.codec_context.width, stream.codec_context.height
    if w <= 0 or h <= 0 or w * h > max_pixels:
        raise ValidationFailed([f"{field}: {max(w, 0) * max(h, 0)} pixels outside 1..{max_pixels}"])
    stream.codec_context.options = {"max_pixels": str(max_pixels)}
    return stream


def transcode_video(data: bytes, *, container: str = "mp4", codec: str = "h264", max_side: int | None = None,
                    fps: float | None = None, max_frames: int = MAX_DECODED, field: str = "video",
                    max_pixels: int = MAX_PIXELS) -> tuple[bytes, str]:
    """Re-encode the video track into ``container``/``codec``; return ``(bytes, content_type)``."""
    kind = container.lower()
    if kind not in MUXERS:
        raise ValidationFailed([f"{field}: cannot write container {kind} (allowed: {', '.join(sorted(MUXERS))})"])
    encoder = encoder_for(codec)
    if encoder is None:
        raise ValidationFailed([f"{field}: no encoder for codec {codec} in this build"])
    out = io.BytesIO()
    try:
        with open_video(field, data) as src:
            stream = _video_stream(field, src, max_pixels)
            rate = Fraction(fps).limit_denominator(1001) if fps else (stream.average_rate or Fraction(25))
            w, h = _scaled(stream.codec_context.width, stream.codec_context.height, max_side, even=True)
            with av.open(out, mode="w", format=MUXERS[kind]) as dst:
                enc = dst.add_stream(encoder, rate=rate)
                enc.width, enc.height, enc.pix_fmt = w, h, "yuv420p"
                n = 0
                for frame in src.decode(stream):
                    if n >= max_frames:
                        break
                    frame = frame.reformat(width=w, height=h, format="yuv420p")
                    frame.pts, frame.time_base = n, Fraction(1) / rate
                    dst.mux(enc.encode(frame))
                    n += 1
                if n == 0:
                    raise ValidationFailed([f"{field}: not a readable video (no decodable frames)"])
                dst.mux(enc.encode(None))
    except ValidationFailed:
        raise
    except Exception:
        raise ValidationFailed([f"{field}: not a readable video (decode or encode failed)"]) from None
    return out.getvalue(), CONTENT_TYPES.get(kind, "application/octet-stream")


def _png(frame: av.VideoFrame, max_side: int | None) -> bytes:
    img: Image.Image = frame.to_image()
    w, h = _scaled(img.width, img.height, max_side, even=False)
    if (w, h) != img.size:
        img = img.resize((w, h), Image.Resampling.LANCZOS)
    buf = io.BytesIO()
    img.save(buf, format="PNG")
    return buf.getvalue()


def extract_frames(data: bytes, *, every_s: float | None = None, count: int | None = None,
                   max_frames: int = 100, max_side: int | None = None, field: str = "video",
                   max_pixels: int = MAX_PIXELS, max_decoded: int = MAX_DECODED) -> list[bytes]:
    """PNG frames: one every ``every_s`` seconds, or ``count`` spread evenly over the duration.

    The first decoded frame at or after each target time is taken; at most
    ``max_frames`` are returned and at most ``max_decoded`` frames decoded.
    """
    if (every_s is None) == (count is None):
        raise ValidationFailed([f"{field}: give exactly one of every_s or count"])
    if every_s is not None and every_s <= 0:
        raise ValidationFailed([f"{field}: every_s must be > 0 (got {every_s})"])
    if count is not None and count < 1:
        raise ValidationFailed([f"{field}: count must be >= 1 (got {count})"])
    limit = min(max_frames, count) if count is not None else max_frames
    frames: list[bytes] = []
    try:
        with open_video(field, data) as src:
            stream = _video_stream(field, src, max_pixels)
            step = every_s
            if count is not None:
                total = src.duration / av.time_base if src.duration else None
                step = total / count if total else 0.0  # unknown duration: the first frames
            start, next_t = None, 0.0
            for i, frame in enumerate(src.decode(stream)):
                if i >= max_decoded or len(frames) >= limit:
                    break
                t = float(frame.time) if frame.time is not None else i / float(stream.average_rate or 25)
                start = t if start is None else start
                if t - start + 1e-6 >= next_t:
                    frames.append(_png(frame, max_side))
                    if step:
                        next_t = (math.floor((t - start) / step + 1e-6) + 1) * step
    except ValidationFailed:
        raise
    except Exception:
        if not frames:
            raise ValidationFailed([f"{field}: not a readable video (decode failed)"]) from None
    if not frames:
        raise ValidationFailed([f"{field}: not a readable video (no decodable frames)"])
    return frames
