"""``video-classify``: videos made in the test with PyAV, checked against the declared rule, then classified."""

from __future__ import annotations

import base64
import io

import av
import numpy as np
import pytest

from engines.errors import ValidationFailed
from engines.media.video_prep import encoder_for
from tests.conftest import Running


def video(seconds: float, fps: int = 4, size: tuple[int, int] = (128, 72), container: str = "mp4") -> bytes:
    out = io.BytesIO()
    with av.open(out, "w", format=container) as box:
        stream = box.add_stream(encoder_for("h264"), rate=fps)
        stream.width, stream.height, stream.pix_fmt = *size, "yuv420p"
        for _ in range(round(seconds * fps)):
            frame = np.full((size[1], size[0], 3), 255, dtype="uint8")
            frame[:, ::16] = 0  # vertical stripes
            frame[:, 1::16] = 0
            for packet in stream.encode(av.VideoFrame.from_ndarray(frame, format="rgb24")):
                box.mux(packet)
        for packet in stream.encode():
            box.mux(packet)
    return out.getvalue()


def data_uri(data: bytes, mime: str = "video/mp4") -> str:
    return f"data:{mime};base64,{base64.b64encode(data).decode()}"


async def test_a_short_video_is_classified_over_its_frames(server: Running):
    out = await server.gateway.runtime.calls.invoke("video-classify", {"video": data_uri(video(2)), "frames": 4})
    assert out["frames"] == 4 and out["duration_s"] == pytest.approx(2, abs=0.3)
    assert len(out["labels"]) == 5
    scores = [x["score"] for x in out["labels"]]
    assert scores == sorted(scores, reverse=True) and 0 < sum(scores) <= 1.0001


@pytest.mark.parametrize(("make", "problem"), [
    (lambda: video(121, fps=1, size=(32, 18)), "exceeds max 120 s"),
    (lambda: video(1, container="matroska"), "video: container mkv not allowed"),
    (lambda: video(1)[:300], "video: not a readable video"),
])
async def test_videos_breaking_the_rule_are_refused_naming_it(server: Running, make, problem: str):
    with pytest.raises(ValidationFailed) as info:
        await server.gateway.runtime.calls.invoke("video-classify", {"video": data_uri(make())})
    assert problem in info.value.problems[0] and info.value.problems[0].startswith("video: ")
