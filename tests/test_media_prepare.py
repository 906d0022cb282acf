"""Declared pre-processing: the replica loads, checks and prepares media fields before ``predict``.

Mostly driven in-process through the replica class (no Ray), with media made
in the test and passed as ``data:`` URIs; one test goes through the deployed
``test-media-probe``, whose registry entry overrides the field's prep.
"""

from __future__ import annotations

import base64
from typing import Any

import pytest

from engines.algorithms.registry import AlgorithmSpec, Registry
from engines.errors import RegistryError, ValidationFailed
from tests.conftest import Running
from tests.test_media_image import make as make_image
from tests.test_media_image import png_header
from tests.test_media_video import H264, VP9
from tests.test_media_video import make as make_video
from tests.test_replica import replica

PROBE = "tests.algorithms:MediaProbe"


def data_uri(data: bytes, mime: str) -> str:
    return f"data:{mime};base64,{base64.b64encode(data).decode()}"


async def probe(inp: dict[str, Any], prepare: dict | None = None) -> dict:
    return (await (await replica(PROBE, prepare=prepare))(inp))["seen"]


async def test_the_declared_image_prep_reaches_predict():
    seen = await probe({"image": data_uri(make_image("JPEG", (300, 200)), "image/jpeg")})
    image = seen["image"]
    assert image["content_type"] == "image/png" and image["size"] == [64, 43]  # PNG, long side 64
    assert image["original"]["format"] == "JPEG" and image["original"]["width"] == 300


async def test_the_deployed_replica_applies_its_registry_entrys_prep(server: Running):
    out = await server.gateway.runtime.calls.invoke("test-media-probe",
                                             {"image": data_uri(make_image("JPEG", (300, 200)), "image/jpeg")})
    assert out["seen"]["image"]["content_type"] == "image/webp" and out["seen"]["image"]["size"] == [32, 21]


async def test_the_registry_entry_overrides_the_prep():
    seen = await probe({"image": data_uri(make_image("PNG", (300, 200)), "image/png")},
                       prepare={"image": {"format": "JPEG", "size": [32, 32], "mode": "fill"}})
    assert seen["image"]["content_type"] == "image/jpeg" and seen["image"]["size"] == [32, 32]


@pytest.mark.skipif(H264 is None, reason="no H.264 encoder")
async def test_video_frames_are_extracted_before_predict():
    seen = await probe({"video": data_uri(make_video("mp4", seconds=2, size=(64, 36)), "video/mp4")})
    video = seen["video"]
    assert video["frames"] == [[32, 18]] * 3
    assert video["content_type"] == "video/mp4" and video["original"]["codec"] == "h264"


@pytest.mark.skipif(H264 is None or VP9 is None, reason="needs H.264 and VP9 encoders")
async def test_a_registry_transcode_hands_predict_the_new_container():
    mp4 = make_video("mp4", seconds=1, size=(64, 36))
    seen = await probe({"video": data_uri(mp4, "video/mp4")},
                       prepare={"video": {"transcode": {"container": "webm", "codec": "vp9", "max_side": 32}}})
    assert seen["video"]["content_type"] == "video/webm" and seen["video"]["frames"] == []


@pytest.mark.parametrize(("inp", "problem"), [
    ({"image": data_uri(make_image("PNG", (4100, 10)), "image/png")}, "image: width 4100 exceeds max 4000"),
    ({"image": data_uri(make_image("PNG")[:60], "image/png")}, "image: not a readable image"),
    ({"image": data_uri(png_header(60_000, 60_000), "image/png")}, "image: 3600000000 pixels exceeds max"),
    ({"image": "http://127.0.0.1:9/cat.png"}, "image: address 127.0.0.1 is not public"),
    ({"image": "data:image/png;base64,@@@@"}, "image: data URI is not valid base64"),
    ({"video": data_uri(b"\x00" * 4096, "video/mp4")}, "video: not a readable video"),
])
async def test_bad_media_is_refused_naming_the_field(inp: dict, problem: str):
    with pytest.raises(ValidationFailed) as err:
        await probe(inp)
    assert any(problem in line for line in err.value.problems), err.value.problems


@pytest.mark.parametrize(("prepare", "message"), [
    ({"photo": {}}, "prepare.photo: not a media field of ProbeInput (media fields: image, video)"),
    ({"image": {"mode": "fill"}}, "'fill' needs a size"),
    ({"image": {"format": "BMP"}}, "prepare.image.format"),
    ({"image": {"frames": {"count": 2}}}, "prepare.image.frames: unknown field"),
    ({"video": {"frames": {"count": 2, "every_s": 1}}}, "give exactly one of count or every_s"),
    ({"video": {"transcode": {"codec": "gif"}}}, "prepare.video.transcode.codec"),
])
def test_a_wrong_prepare_entry_stops_start_up(prepare: dict, message: str):
    spec = AlgorithmSpec(name="probe", kind="local", target=PROBE, prepare=prepare)
    with pytest.raises(RegistryError, match="probe") as err:
        Registry.from_specs([("entry 1 (probe)", spec)])
    assert message in str(err.value)
