"""``video-classify``: what a short video shows, by classifying frames spread over it.

The replica checks the video against the declared :class:`VideoRule` (container,
codec, size, duration) before ``predict``; ``frames`` frames are extracted with
PyAV and classified in one EfficientNet-Lite0 batch, and the labels are averaged
over the frames.
"""

from __future__ import annotations

import asyncio
from collections import defaultdict
from typing import Annotated

from pydantic import BaseModel, ConfigDict, Field

from engines.builtin.classify import ClassifyOutput, EfficientNetLite0, Label
from engines.errors import ValidationFailed
from engines.media import Media, VideoInfo, VideoRule, extract_frames, media
from engines.media.source import MEDIA_REF_HELP, MEDIA_REF_PATTERN

VIDEO_RULE = VideoRule(max_bytes=100 * 1024 * 1024, containers={"mp4", "webm"}, codecs={"h264", "vp9", "av1"},
                       max_width=3840, max_height=2160, max_duration_s=120)


class VideoClassifyInput(BaseModel):
    model_config = ConfigDict(extra="forbid")

    video: Annotated[str, media(VIDEO_RULE, fetch_timeout_s=60)] = Field(
        min_length=1, max_length=VIDEO_RULE.max_bytes * 4 // 3 + 100, pattern=MEDIA_REF_PATTERN,
        description=f"the video: {MEDIA_REF_HELP}; MP4 or WebM (H.264, VP9, AV1), at most 120 s",
        examples=["https://upload.wikimedia.org/wikipedia/commons/transcoded/c/c0/Big_Buck_Bunny_4K.webm/"
                  "Big_Buck_Bunny_4K.webm.360p.webm"])
    frames: int = Field(8, ge=1, le=32, description="frames to look at, spread evenly over the video")
    top_k: int = Field(5, ge=1, le=10, description="how many labels to return, best first")


class VideoClassifyOutput(ClassifyOutput):
    duration_s: float = Field(description="the video's measured duration")
    frames: int = Field(description="frames classified")


class VideoClassify(EfficientNetLite0):
    """Classify what a video shows (ImageNet classes), averaging EfficientNet-Lite0 over its frames."""

    Input = VideoClassifyInput
    Output = VideoClassifyOutput

    def _video(self, video: Media, inp: VideoClassifyInput) -> VideoClassifyOutput:
        assert isinstance(video.info, VideoInfo)
        info = video.info
        frames = extract_frames(video.data, count=inp.frames, max_frames=inp.frames, max_side=512)
        if not frames:
            raise ValidationFailed(["video: no frame could be decoded"])
        totals: dict[str, float] = defaultdict(float)
        for result in self._classify(frames, [10] * len(frames)):
            if isinstance(result, Exception):
                raise result
            for label in result.labels:
                totals[label.label] += label.score / len(frames)
        best = sorted(totals.items(), key=lambda kv: -kv[1])[: inp.top_k]
        return VideoClassifyOutput(labels=[Label(label=k, score=round(v, 5)) for k, v in best],
                                   duration_s=round(info.duration_s or 0.0, 3), frames=len(frames))

    async def predict(self, inp: VideoClassifyInput) -> VideoClassifyOutput:
        """The replica has already fetched the video and checked it against ``VIDEO_RULE``."""
        return await self.run_model(self._video, Media.of(inp.video), inp)

    async def predict_batch(self, inputs: list[VideoClassifyInput]) -> list[VideoClassifyOutput | Exception]:
        return list(await asyncio.gather(*(self.predict(i) for i in inputs), return_exceptions=True))
