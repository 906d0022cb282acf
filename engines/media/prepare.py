"""Declared pre-processing: what an algorithm receives in place of a caller's media.

An algorithm states once what it wants (``ImagePrep``: a format and a size;
``VideoPrep``: a transcode and/or frames), on its input field with
:func:`engines.media.media` or in its registry entry under ``prepare``. The
framework then checks every media input against its rule and applies the
prep before ``predict``, so no algorithm re-implements fetching, checking
or converting, and none can forget to.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

from engines.media.image import ImageInfo, ImageRule
from engines.media.image_prep import accept_image, prepare_image
from engines.media.video import VideoInfo, VideoRule, check_video
from engines.media.video_prep import extract_frames, transcode_video


class ImagePrep(BaseModel):
    """Convert and/or resize an image: ``fit`` keeps it inside ``size`` (never upscaling), ``fill`` crops to it."""

    model_config = ConfigDict(extra="forbid", frozen=True)
    kind: Literal["image"] = "image"
    format: Literal["PNG", "JPEG", "WEBP", "GIF", "AVIF"] | None = Field(None, description="convert to this")
    size: tuple[int, int] | None = Field(None, description="target [width, height]")
    mode: Literal["fit", "fill"] = "fit"
    max_side: int | None = Field(None, ge=1, le=16_384, description="cap on the longer side")
    quality: int = Field(90, ge=1, le=100, description="for JPEG, WebP and AVIF")

    @model_validator(mode="after")
    def _check(self) -> ImagePrep:
        if self.size is not None and not (min(self.size) >= 1 and max(self.size) <= 16_384):
            raise ValueError(f"size: each side must be 1..16384 (got {list(self.size)})")
        if self.mode == "fill" and self.size is None:
            raise ValueError("mode: 'fill' needs a size")
        return self


class Transcode(BaseModel):
    """Re-encode the video track (audio is dropped)."""

    model_config = ConfigDict(extra="forbid", frozen=True)
    container: Literal["mp4", "webm", "mov", "mkv"] = "mp4"
    codec: Literal["h264", "vp9", "vp8", "av1", "hevc", "mpeg4"] = "h264"
    max_side: int | None = Field(None, ge=2, le=8192)
    fps: float | None = Field(None, gt=0, le=240)


class Frames(BaseModel):
    """PNG frames: ``count`` spread evenly over the video, or one every ``every_s`` seconds."""

    model_config = ConfigDict(extra="forbid", frozen=True)
    count: int | None = Field(None, ge=1, le=1_000)
    every_s: float | None = Field(None, gt=0)
    max_frames: int = Field(100, ge=1, le=1_000)
    max_side: int | None = Field(None, ge=1, le=8192)

    @model_validator(mode="after")
    def _one(self) -> Frames:
        if (self.count is None) == (self.every_s is None):
            raise ValueError("frames: give exactly one of count or every_s")
        return self


class VideoPrep(BaseModel):
    """Transcode a video and/or extract frames from it."""

    model_config = ConfigDict(extra="forbid", frozen=True)
    kind: Literal["video"] = "video"
    transcode: Transcode | None = None
    frames: Frames | None = None


Prep = ImagePrep | VideoPrep


@dataclass(frozen=True)
class Media:
    """A checked (and prepared) media input, as ``predict`` sees the field.

    ``info`` is what the check saw in the caller's file; ``data`` and
    ``content_type`` are the bytes after the prep (the checked original when
    there is none); ``frames`` holds PNG frames when a video prep asks for them.
    """

    data: bytes
    content_type: str
    info: ImageInfo | VideoInfo
    frames: tuple[bytes, ...] = field(default=())

    @staticmethod
    def of(value: object) -> Media:
        """``Media.of(inp.image)``: the prepared field, typed; a bug if the framework did not prepare it."""
        if not isinstance(value, Media):
            raise TypeError(f"expected a prepared Media, got {type(value).__name__}: is the field declared "
                            "with engines.media.media(rule)?")
        return value


def prep_for(rule: ImageRule | VideoRule, raw: dict | Prep) -> Prep:
    """Parse a registry ``prepare`` entry as the prep matching ``rule``'s kind."""
    model = ImagePrep if isinstance(rule, ImageRule) else VideoPrep
    return raw if isinstance(raw, model) else model.model_validate(raw)


def apply(name: str, data: bytes, rule: ImageRule | VideoRule, prep: Prep | None) -> Media:
    """Check ``data`` against ``rule``, then apply ``prep``; CPU-bound, so run it off the event loop."""
    if isinstance(rule, ImageRule):
        data, image = accept_image(name, data, rule)
        if not isinstance(prep, ImagePrep):
            return Media(data, image.content_type, image)
        out, ctype = prepare_image(data, to_format=prep.format, size=prep.size, mode=prep.mode,
                                   max_side=prep.max_side, quality=prep.quality, strip_gps=rule.strip_gps,
                                   field=name, max_pixels=rule.max_pixels, max_frames=rule.max_frames)
        return Media(out, ctype, image)
    video = check_video(name, data, rule)
    if not isinstance(prep, VideoPrep):
        return Media(data, video.content_type, video)
    frames: tuple[bytes, ...] = ()
    if prep.frames is not None:
        f = prep.frames
        frames = tuple(extract_frames(data, count=f.count, every_s=f.every_s, max_frames=f.max_frames,
                                      max_side=f.max_side, field=name, max_pixels=rule.max_pixels))
    out, ctype = data, video.content_type
    if prep.transcode is not None:
        t = prep.transcode
        out, ctype = transcode_video(data, container=t.container, codec=t.codec, max_side=t.max_side, fps=t.fps,
                                     field=name, max_pixels=rule.max_pixels)
    return Media(out, ctype, video, frames)
