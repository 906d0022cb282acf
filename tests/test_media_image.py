"""Image rules and pre-processing on real files made here with Pillow."""

from __future__ import annotations

import contextlib
import io
import random
import resource
import struct
import zlib
from typing import Annotated

import pytest
from PIL import ExifTags, Image, features
from pydantic import BaseModel

from engines.errors import ValidationFailed
from engines.media import (
    ImageRule,
    accept_image,
    check_image,
    media,
    media_rules,
    prepare_image,
    rule_schema_extra,
    strip_gps,
)

AVIF = features.check("avif")
FORMATS = ["PNG", "JPEG", "WEBP", "GIF",
           pytest.param("AVIF", marks=pytest.mark.skipif(not AVIF, reason="Pillow built without AVIF"))]


def gps_exif() -> Image.Exif:
    exif = Image.Exif()
    exif[ExifTags.Base.Make] = "Acme"
    exif[ExifTags.Base.GPSInfo] = {ExifTags.GPS.GPSLatitudeRef: "N", ExifTags.GPS.GPSLatitude: (48.0, 51.0, 30.0)}
    exif.get_ifd(ExifTags.IFD.Exif)[ExifTags.Base.DateTimeOriginal] = "2024:01:02 03:04:05"
    return exif


def make(fmt: str, size: tuple[int, int] = (40, 20), exif: Image.Exif | None = None, mode: str = "RGB") -> bytes:
    img = Image.new(mode, size, "red" if mode != "RGBA" else (255, 0, 0, 128))
    buf = io.BytesIO()
    img.save(buf, format=fmt, **({"exif": exif} if exif is not None else {}))
    return buf.getvalue()


def problems(data: bytes, **rule: object) -> list[str]:
    with pytest.raises(ValidationFailed) as err:
        check_image("image", data, ImageRule(**rule))
    return err.value.problems


def png_header(width: int, height: int) -> bytes:
    """A PNG that declares a huge 1-bit image but carries almost no data."""
    def chunk(kind: bytes, body: bytes) -> bytes:
        return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body))
    ihdr = struct.pack(">IIBBBBB", width, height, 1, 0, 0, 0, 0)
    return (b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", zlib.compress(b"\x00" * 64))
            + chunk(b"IEND", b""))


@pytest.mark.parametrize("fmt", FORMATS)
def test_accepts_each_allowed_format(fmt: str) -> None:
    info = check_image("image", make(fmt), ImageRule())
    assert (info.format, info.width, info.height, info.frames) == (fmt, 40, 20, 1)
    assert info.content_type == Image.MIME[fmt]


def test_dimension_rules_name_field_rule_and_value() -> None:
    assert problems(make("PNG", (9000, 10)), max_width=4096) == ["image: width 9000 exceeds max 4096"]
    assert problems(make("PNG", (40, 20)), min_height=32, min_width=64) == [
        "image: width 40 below min 64", "image: height 20 below min 32"]


def test_format_and_bytes_rules() -> None:
    assert problems(make("BMP"), formats={"png", "jpg"}) == ["image: format BMP not allowed (allowed: JPEG, PNG)"]
    data = make("PNG", (300, 300))
    assert problems(data, max_bytes=100) == [f"image: {len(data)} bytes exceeds max 100"]


@pytest.mark.parametrize("data", [b"", b"hello world" * 10, bytes(range(256)) * 4])
def test_unknown_bytes_are_refused(data: bytes) -> None:
    assert problems(data)[0].startswith("image: not a readable image")


@pytest.mark.parametrize("fmt", ["PNG", "JPEG", "WEBP", "GIF"])
def test_truncated_file_is_refused(fmt: str) -> None:
    noisy = Image.effect_noise((200, 200), 64).convert("RGB")
    buf = io.BytesIO()
    noisy.save(buf, format=fmt)
    data = buf.getvalue()
    assert problems(data[: len(data) // 2]) == ["image: not a readable image (truncated or corrupt)"]


def test_corrupt_png_data_is_refused() -> None:
    data = bytearray(make("PNG", (64, 64)))
    idat = data.index(b"IDAT")
    data[idat + 6: idat + 14] = b"\xff" * 8
    assert problems(bytes(data)) == ["image: not a readable image (truncated or corrupt)"]


def test_decompression_bomb_refused_without_allocating() -> None:
    bomb = png_header(50_000, 50_000)
    assert len(bomb) < 200
    before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    assert problems(bomb) == ["image: 2500000000 pixels exceeds max 40000000 (decompression bomb?)"]
    # Below Pillow's own global limit: our per-call cap still refuses it.
    assert problems(png_header(8_000, 8_000)) == [
        "image: 64000000 pixels exceeds max 40000000 (decompression bomb?)"]
    assert problems(png_header(3_000, 3_000), max_pixels=1_000_000) == [
        "image: 9000000 pixels exceeds max 1000000 (decompression bomb?)"]
    grown_kib = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - before
    assert grown_kib < 100_000  # a decoded 50000x50000 image would need gigabytes


@pytest.mark.parametrize("fmt", ["PNG", "JPEG", "WEBP",
                                 pytest.param("AVIF", marks=pytest.mark.skipif(not AVIF, reason="no AVIF"))])
def test_exif_summary_and_field_rules(fmt: str) -> None:
    data = make(fmt, exif=gps_exif())
    info = check_image("image", data, ImageRule())
    assert info.has_gps
    assert {"Make", "GPSInfo", "GPSLatitude", "DateTimeOriginal"} <= set(info.exif_fields)
    assert problems(data, forbid_exif_fields={"GPSInfo"}, require_exif_fields={"Model", "Make"}) == [
        "image: EXIF field GPSInfo is forbidden", "image: EXIF field Model is required but missing"]


@pytest.mark.parametrize("fmt", ["PNG", "JPEG", "WEBP",
                                 pytest.param("AVIF", marks=pytest.mark.skipif(not AVIF, reason="no AVIF"))])
def test_accept_image_strips_gps_and_keeps_other_exif(fmt: str) -> None:
    data = make(fmt, exif=gps_exif())
    out, info = accept_image("image", data, ImageRule())
    assert not info.has_gps and "Make" in info.exif_fields
    again = check_image("image", out, ImageRule())
    assert not again.has_gps
    assert {"Make", "DateTimeOriginal"} <= set(again.exif_fields)
    assert not any(name.startswith("GPS") for name in again.exif_fields)


def test_jpeg_gps_strip_is_lossless() -> None:
    noisy = Image.effect_noise((64, 64), 64).convert("RGB")
    buf = io.BytesIO()
    noisy.save(buf, format="JPEG", exif=gps_exif(), quality=80)
    data = buf.getvalue()
    out = strip_gps(data)
    assert out[out.index(b"\xff\xda"):] == data[data.index(b"\xff\xda"):]  # scan data untouched
    assert Image.open(io.BytesIO(out)).tobytes() == Image.open(io.BytesIO(data)).tobytes()
    assert strip_gps(make("PNG")) == make("PNG")  # nothing to strip: unchanged


def test_prepare_converts_format_with_alpha_onto_white() -> None:
    out, ctype = prepare_image(make("PNG", mode="RGBA"), to_format="jpg")
    assert ctype == "image/jpeg"
    img = Image.open(io.BytesIO(out))
    assert (img.format, img.mode, img.size) == ("JPEG", "RGB", (40, 20))
    r, g, _b = img.getpixel((5, 5))
    assert r > 240 and 100 < g < 160  # half-transparent red over white


@pytest.mark.parametrize("fmt", ["PNG", "WEBP", "GIF",
                                 pytest.param("AVIF", marks=pytest.mark.skipif(not AVIF, reason="no AVIF"))])
def test_prepare_converts_to_each_format(fmt: str) -> None:
    out, ctype = prepare_image(make("JPEG", (100, 50)), to_format=fmt, max_side=50)
    assert ctype == Image.MIME[fmt]
    info = check_image("image", out, ImageRule())
    assert (info.format, info.width, info.height) == (fmt, 50, 25)


def test_prepare_resize_modes() -> None:
    data = make("PNG", (400, 200))
    fit, _ = prepare_image(data, size=(100, 100), mode="fit")
    assert Image.open(io.BytesIO(fit)).size == (100, 50)
    fill, _ = prepare_image(data, size=(100, 100), mode="fill")
    assert Image.open(io.BytesIO(fill)).size == (100, 100)
    small, _ = prepare_image(make("PNG", (40, 20)), size=(100, 100), mode="fit")
    assert Image.open(io.BytesIO(small)).size == (40, 20)  # fit never upscales
    side, _ = prepare_image(data, max_side=100)
    assert Image.open(io.BytesIO(side)).size == (100, 50)
    assert prepare_image(data, strip_gps=False) == (data, "image/png")  # nothing to do


def test_prepare_applies_orientation_and_strips_gps() -> None:
    exif = gps_exif()
    exif[ExifTags.Base.Orientation] = 6  # rotate 90 degrees on display
    out, _ = prepare_image(make("JPEG", (40, 20), exif=exif), max_side=30)
    info = check_image("image", out, ImageRule())
    assert (info.width, info.height) == (15, 30)
    assert not info.has_gps and "Orientation" not in info.exif_fields and "Make" in info.exif_fields


def test_prepare_keeps_animation() -> None:
    frames = [Image.new("RGB", (60, 30), c) for c in ("red", "green", "blue")]
    buf = io.BytesIO()
    frames[0].save(buf, format="GIF", save_all=True, append_images=frames[1:], duration=100, loop=0)
    assert check_image("image", buf.getvalue(), ImageRule()).frames == 3
    out, _ = prepare_image(buf.getvalue(), max_side=20, to_format="webp")
    info = check_image("image", out, ImageRule())
    assert (info.format, info.frames, info.width, info.height) == ("WEBP", 3, 20, 10)
    assert problems(buf.getvalue(), max_frames=2) == ["image: 3 frames exceeds max 2"]


def test_prepare_refuses_bad_parameters_and_bombs() -> None:
    with pytest.raises(ValidationFailed, match=r"outside 1\.\.40000000 pixels"):
        prepare_image(make("PNG"), size=(100_000, 100_000), mode="fill")
    with pytest.raises(ValidationFailed, match="needs a size"):
        prepare_image(make("PNG"), mode="fill")
    with pytest.raises(ValidationFailed, match="cannot convert to XCF"):
        prepare_image(make("PNG"), to_format="xcf")
    with pytest.raises(ValidationFailed, match="decompression bomb"):
        prepare_image(png_header(50_000, 50_000), max_side=10)


@pytest.mark.filterwarnings("ignore::UserWarning")  # Pillow warns on corrupt EXIF
def test_hostile_mutations_never_crash() -> None:
    rng = random.Random(1234)
    seeds = [make(f, (32, 24), exif=gps_exif() if f != "GIF" else None) for f in ("PNG", "JPEG", "WEBP", "GIF")]
    for _ in range(300):
        data = bytearray(rng.choice(seeds))
        for _ in range(rng.randint(1, 8)):
            data[rng.randrange(len(data))] = rng.randrange(256)
        if rng.random() < 0.3:
            data = data[: rng.randrange(1, len(data))]
        for call in (lambda d: check_image("image", d, ImageRule()), lambda d: accept_image("image", d, ImageRule()),
                     lambda d: prepare_image(d, max_side=16, to_format="PNG")):
            with contextlib.suppress(ValidationFailed):
                call(bytes(data))


def test_rule_in_input_model_schema() -> None:
    rule = ImageRule(max_width=4096, formats={"png", "jpeg"})

    class Input(BaseModel):
        image: Annotated[bytes, media(rule)]
        caption: str = ""

    extra = rule_schema_extra(rule)["x-media-rules"]
    assert extra["kind"] == "image" and extra["max_width"] == 4096 and extra["formats"] == ["JPEG", "PNG"]
    assert "min_width" not in extra  # unset bounds are left out
    prop = Input.model_json_schema()["properties"]["image"]
    assert prop["x-media-rules"] == extra and prop["type"] == "string"
    assert media_rules(Input) == {"image": rule}
