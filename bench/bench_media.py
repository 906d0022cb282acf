"""Validation and pre-processing cost beside the algorithm's own time (issue: inputs and media).

A 1-megapixel JPEG: ``check_image`` (header, rules, full decode) and
``prepare_image`` (resize to 256 px), next to EfficientNet-Lite0 classifying
it. A 10 s 720p H.264 video: ``check_video`` (container, codec, geometry,
duration from every packet) and ``extract_frames`` (8 frames), next to
classifying those 8 frames in one batch. Everything runs in this process, no
Ray: these are the costs a replica pays per call.

Run from the repo root: ``python bench/bench_media.py``.
"""

from __future__ import annotations

import asyncio
import io
import time
from collections.abc import Callable

import av
import numpy as np
from _common import note, percentile, print_table
from PIL import Image

from engines.builtin.classify import IMAGE_RULE, EfficientNetLite0
from engines.media import VideoRule, check_image, check_video, extract_frames, prepare_image
from engines.media.video_prep import encoder_for

REPEATS = 7
VIDEO_RULE = VideoRule(max_duration_s=60, containers={"mp4"}, codecs={"h264"}, aspect_ratios=["16:9"])


def jpeg_1mp() -> bytes:
    rng = np.random.default_rng(0)
    pixels = (rng.random((1000, 1000, 3)) * 255).astype("uint8")
    out = io.BytesIO()
    Image.fromarray(pixels).save(out, format="JPEG", quality=90)
    return out.getvalue()


def video_720p(seconds: int = 10, fps: int = 24) -> bytes:
    out = io.BytesIO()
    with av.open(out, "w", format="mp4") as container:
        stream = container.add_stream(encoder_for("h264"), rate=fps)
        stream.width, stream.height, stream.pix_fmt = 1280, 720, "yuv420p"
        for i in range(seconds * fps):
            frame = np.full((720, 1280, 3), (i * 3) % 255, dtype="uint8")
            frame[:, (i * 10) % 1280:] = 40
            for packet in stream.encode(av.VideoFrame.from_ndarray(frame, format="rgb24")):
                container.mux(packet)
        for packet in stream.encode():
            container.mux(packet)
    return out.getvalue()


def timed(fn: Callable[[], object]) -> float:
    """Median milliseconds of REPEATS runs."""
    runs = []
    for _ in range(REPEATS):
        start = time.perf_counter()
        fn()
        runs.append(time.perf_counter() - start)
    return percentile(runs, 50) * 1e3


async def main() -> None:
    model = EfficientNetLite0()
    await model.setup()
    image = jpeg_1mp()
    note("encoding a 10 s 720p video")
    video = video_720p()
    frames = extract_frames(video, count=8, max_side=256)
    steps: list[tuple[str, str, Callable[[], object]]] = [
        ("1 MP JPEG", "check_image (rules + full decode)", lambda: check_image("image", image, IMAGE_RULE)),
        ("1 MP JPEG", "prepare_image (resize to 256 px)", lambda: prepare_image(image, max_side=256)),
        ("1 MP JPEG", "algorithm: EfficientNet-Lite0, 1 image", lambda: model._classify([image], [5])),
        ("10 s 720p H.264", "check_video (rules, every packet)", lambda: check_video("video", video, VIDEO_RULE)),
        ("10 s 720p H.264", "extract_frames (8, max side 256)",
         lambda: extract_frames(video, count=8, max_side=256)),
        ("10 s 720p H.264", "algorithm: EfficientNet-Lite0, 8 frames",
         lambda: model._classify(frames, [5] * len(frames))),
    ]
    rows = [[what, step, f"{timed(fn):.1f}"] for what, step, fn in steps]
    print(f"Media validation and pre-processing beside the algorithm; median of {REPEATS} runs, in-process.\n")
    print_table(["input", "step", "ms"], rows)


if __name__ == "__main__":
    asyncio.run(main())
