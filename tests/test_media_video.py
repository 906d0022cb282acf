"""Video rules and pre-processing on tiny real videos encoded here with PyAV."""

from __future__ import annotations

import contextlib
import io
import random

import av
import pytest
from PIL import Image

from engines.errors import ValidationFailed
from engines.media import VideoRule, check_video, extract_frames, transcode_video
from engines.media.video_prep import encoder_for

H264 = encoder_for("h264")
VP9 = encoder_for("vp9")
needs_h264 = pytest.mark.skipif(H264 is None, reason="this PyAV build has no H.264 encoder")
needs_vp9 = pytest.mark.skipif(VP9 is None, reason="this PyAV build has no VP9 encoder")


def make(fmt: str = "mp4", codec: str | None = None, *, seconds: float = 2, fps: int = 3,
         size: tuple[int, int] = (64, 36)) -> bytes:
    """A tiny video whose frames change colour, so every frame is distinct."""
    buf = io.BytesIO()
    with av.open(buf, mode="w", format=fmt) as out:
        stream = out.add_stream(codec or H264, rate=fps)
        stream.width, stream.height, stream.pix_fmt = size[0], size[1], "yuv420p"
        for i in range(round(seconds * fps)):
            img = Image.new("RGB", size, (i * 40 % 256, 80, 200 - i * 20 % 200))
            out.mux(stream.encode(av.VideoFrame.from_image(img)))
        out.mux(stream.encode(None))
    return buf.getvalue()


def problems(data: bytes, **rule: object) -> list[str]:
    with pytest.raises(ValidationFailed) as err:
        check_video("video", data, VideoRule(**rule))
    return err.value.problems


@pytest.fixture(scope="module")
def mp4() -> bytes:
    if H264 is None:
        pytest.skip("no H.264 encoder")
    return make("mp4")


@needs_h264
def test_h264_mp4_is_read(mp4: bytes) -> None:
    info = check_video("video", mp4, VideoRule(codecs={"h264", "vp9"}, max_duration_s=60))
    assert (info.container, info.codec, info.width, info.height) == ("mp4", "h264", 64, 36)
    assert info.content_type == "video/mp4" and info.fps == 3 and info.duration_s == pytest.approx(2, abs=0.05)


@needs_vp9
def test_vp9_webm_is_read() -> None:
    info = check_video("video", make("webm", VP9, size=(36, 64)), VideoRule(aspect_ratios=["16:9", "9:16"]))
    assert (info.container, info.codec, info.width, info.height) == ("webm", "vp9", 36, 64)
    assert info.content_type == "video/webm"


@needs_h264
def test_too_long_names_duration() -> None:
    assert problems(make(seconds=3), max_duration_s=2) == ["video: duration 3 s exceeds max 2 s"]


def test_codec_and_container_not_allowed() -> None:
    assert problems(make("mp4", "mpeg4"), codecs={"h264", "vp9"}) == [
        "video: codec mpeg4 not allowed (allowed: h264, vp9)"]
    assert problems(make("mov", "mpeg4"), codecs={"mpeg4"}) == [
        "video: container mov not allowed (allowed: mp4, webm)"]
    if H264 is not None:
        assert problems(make("matroska")) == ["video: container mkv not allowed (allowed: mp4, webm)"]


@needs_h264
def test_geometry_rules(mp4: bytes) -> None:
    assert problems(mp4, aspect_ratios=["9:16", "1:1"]) == [
        "video: aspect ratio 16:9 (1.778) not allowed (allowed: 9:16, 1:1)"]
    assert problems(make(size=(64, 48)), aspect_ratios=["16:9"]) == [
        "video: aspect ratio 4:3 (1.333) not allowed (allowed: 16:9)"]
    check_video("video", make(size=(66, 36)), VideoRule(aspect_ratios=["16:9"], aspect_tolerance=0.04))
    assert problems(mp4, min_width=128, max_height=32, sizes=["1920x1080"]) == [
        "video: width 64 below min 128", "video: height 36 exceeds max 32",
        "video: size 64x36 not allowed (allowed: 1920x1080)"]
    assert problems(mp4, max_pixels=1000) == ["video: 2304 pixels exceeds max 1000"]
    assert problems(mp4, max_bytes=100) == [f"video: {len(mp4)} bytes exceeds max 100"]


def test_rule_rejects_malformed_bounds() -> None:
    with pytest.raises(ValueError, match="16:9"):
        VideoRule(aspect_ratios=["wide"])
    with pytest.raises(ValueError, match="1920x1080"):
        VideoRule(sizes=["big"])


@needs_h264
@pytest.mark.parametrize("cut", ["empty", "garbage", "half", "head", "flipped"])
def test_corrupt_video_is_refused(mp4: bytes, cut: str) -> None:
    data = {"empty": b"", "garbage": b"\x00\x01junk" * 50, "half": mp4[: len(mp4) // 2], "head": mp4[:200],
            "flipped": mp4[:48] + bytes(b ^ 0xFF for b in mp4[48:])}[cut]
    assert problems(data)[0].startswith("video: not a readable video")


def test_playlists_cannot_make_ffmpeg_open_anything() -> None:
    playlist = b"#EXTM3U\n#EXT-X-TARGETDURATION:1\n#EXTINF:1,\nfile:///etc/passwd\n#EXT-X-ENDLIST\n"
    assert problems(playlist) == ["video: not a readable video"]
    concat = b"ffconcat version 1.0\nfile /etc/passwd\n"
    assert problems(concat) == ["video: not a readable video"]


@needs_h264
@needs_vp9
def test_transcode_between_containers(mp4: bytes) -> None:
    webm, ctype = transcode_video(mp4, container="webm", codec="vp9")
    assert ctype == "video/webm"
    info = check_video("video", webm, VideoRule())
    assert (info.container, info.codec, info.width, info.height) == ("webm", "vp9", 64, 36)
    assert info.duration_s == pytest.approx(2, abs=0.1)
    back, ctype = transcode_video(webm, container="mp4", codec="h264", max_side=32)
    info = check_video("video", back, VideoRule())
    assert ctype == "video/mp4" and (info.codec, info.width, info.height) == ("h264", 32, 18)


@needs_h264
def test_transcode_refuses_bad_targets_and_input(mp4: bytes) -> None:
    with pytest.raises(ValidationFailed, match="cannot write container gif"):
        transcode_video(mp4, container="gif", codec="h264")
    with pytest.raises(ValidationFailed, match="no encoder for codec nope"):
        transcode_video(mp4, container="mp4", codec="nope")
    with pytest.raises(ValidationFailed, match="not a readable video"):
        transcode_video(b"junk" * 100, container="mp4", codec="h264")
    short, _ = transcode_video(mp4, container="mp4", codec="h264", max_frames=3)
    assert check_video("video", short, VideoRule()).duration_s == pytest.approx(1, abs=0.05)


@needs_h264
def test_extract_frames(mp4: bytes) -> None:
    every = extract_frames(mp4, every_s=1)
    assert len(every) == 2
    imgs = [Image.open(io.BytesIO(png)) for png in every]
    assert all(img.format == "PNG" and img.size == (64, 36) for img in imgs)
    assert imgs[0].getpixel((10, 10)) != imgs[1].getpixel((10, 10))
    assert len(extract_frames(mp4, count=3)) == 3
    assert len(extract_frames(mp4, every_s=0.01, max_frames=4)) == 4
    assert Image.open(io.BytesIO(extract_frames(mp4, count=1, max_side=32)[0])).size == (32, 18)
    with pytest.raises(ValidationFailed, match="exactly one of every_s or count"):
        extract_frames(mp4)
    with pytest.raises(ValidationFailed, match="not a readable video"):
        extract_frames(b"\x00" * 1000, count=1)


@needs_h264
def test_hostile_mutations_never_crash(mp4: bytes) -> None:
    rng = random.Random(99)
    for _ in range(150):
        data = bytearray(mp4)
        for _ in range(rng.randint(1, 20)):
            data[rng.randrange(len(data))] = rng.randrange(256)
        if rng.random() < 0.3:
            data = data[: rng.randrange(1, len(data))]
        for call in (lambda d: check_video("video", d, VideoRule()), lambda d: extract_frames(d, count=2)):
            with contextlib.suppress(ValidationFailed):
                call(bytes(data))
