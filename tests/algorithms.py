"""Algorithms that exist only for the tests, registered with the ``@algorithm`` decorator."""

from __future__ import annotations

import asyncio
import io
import os
import time
from pathlib import Path
from typing import Annotated

from PIL import Image
from pydantic import BaseModel, Field

from engines import Algorithm, algorithm
from engines.actors import actorless
from engines.media import Frames, ImagePrep, ImageRule, Media, VideoPrep, VideoRule, media


class SleepInput(BaseModel):
    seconds: float = Field(ge=0, le=120, description="how long to sleep", examples=[0.5])
    marker: str | None = Field(None, description="file the replica writes 'started', then 'slept' or 'cancelled'")


class SleepOutput(BaseModel):
    slept: float


@algorithm(name="test-sleep", kind="local", max_concurrency=1, max_queued=1, num_cpus=0.05)
class Sleep(Algorithm):
    """Sleep for a while; records a cancellation so tests can see it reached the replica."""

    Input = SleepInput
    Output = SleepOutput

    async def predict(self, inp: SleepInput) -> SleepOutput:
        if inp.marker:
            Path(inp.marker).write_text("started")
        try:
            await asyncio.sleep(inp.seconds)
        except asyncio.CancelledError:
            if inp.marker:
                Path(inp.marker).write_text("cancelled")
            raise
        if inp.marker:
            Path(inp.marker).write_text("slept")
        return SleepOutput(slept=inp.seconds)


@algorithm(name="test-timeout", kind="local", timeout_s=0.5, num_cpus=0.05)
class SleepPastTimeout(Sleep):
    """The same sleep, with a timeout shorter than the sleeps the tests ask for."""


@algorithm(name="test-sleep-async", kind="local", mode="async", max_concurrency=64, num_cpus=0.05,
           max_queued=1024)
class SleepAsLongJob(Sleep):
    """The same sleep as a long job: the tool answers at once with a task reference."""


@algorithm(name="test-sleep-auto", kind="local", mode="auto", num_cpus=0.05)
class SleepAuto(Sleep):
    """The same sleep in auto mode: inline when quick, a task reference when not."""


class CrashInput(BaseModel):
    crash: bool = Field(description="end the replica's process mid-call, as a segfault or the OOM killer would",
                        examples=[False])
    once_marker: str | None = Field(None, description="crash only if this file is missing (it is created first)")


class CrashOutput(BaseModel):
    pid: int


@algorithm(name="test-crash", kind="local", num_cpus=0.01)
class Crash(Algorithm):
    """Answer with the replica's pid, or kill the replica mid-call."""

    Input = CrashInput
    Output = CrashOutput

    async def predict(self, inp: CrashInput) -> CrashOutput:
        if inp.crash and not (inp.once_marker and Path(inp.once_marker).exists()):
            if inp.once_marker:
                Path(inp.once_marker).touch()
            os._exit(1)
        return CrashOutput(pid=os.getpid())


class BlobInput(BaseModel):
    size: int = Field(ge=0, le=16_000_000, description="characters in the result", examples=[1000])


class BlobOutput(BaseModel):
    blob: str


@algorithm(name="test-blob", kind="local", num_cpus=0.01)
class Blob(Algorithm):
    """A result of ``size`` characters, larger than a transport's default message limit if asked."""

    Input = BlobInput
    Output = BlobOutput

    async def predict(self, inp: BlobInput) -> BlobOutput:
        return BlobOutput(blob="x" * inp.size)


class BrokenSetup(Crash):
    """A model that cannot load (not registered here: the CLI tests name it in a registry of their own)."""

    async def setup(self) -> None:
        raise RuntimeError("weights not found at /models/broken.bin")


class Shout(Algorithm):
    """Pre- and post-processing hooks around a plain predict (not deployed; driven in-process)."""

    Input = SleepInput
    Output = SleepOutput

    async def preprocess(self, inp: SleepInput) -> SleepInput:
        return inp.model_copy(update={"seconds": round(inp.seconds)})

    async def predict(self, inp: SleepInput) -> SleepOutput:
        return SleepOutput(slept=inp.seconds)

    async def postprocess(self, inp: SleepInput, out: SleepOutput) -> SleepOutput:
        return out.model_copy(update={"slept": out.slept * 10})


PROBE_IMAGE_RULE = ImageRule(max_width=4000, max_height=4000)
PROBE_VIDEO_RULE = VideoRule(max_duration_s=10)


class ProbeInput(BaseModel):
    image: Annotated[str | None, media(PROBE_IMAGE_RULE, ImagePrep(format="PNG", max_side=64))] = Field(
        None, description="an image to look at")
    video: Annotated[str | None, media(PROBE_VIDEO_RULE, VideoPrep(frames=Frames(count=3, max_side=32)))] = Field(
        None, description="a video to look at")


class ProbeOutput(BaseModel):
    seen: dict[str, dict]


@algorithm(name="test-media-probe", kind="local", num_cpus=0.01,  # the suite fits 2 CPUs, restarts included
           prepare={"image": {"format": "WEBP", "max_side": 32}})  # the entry overrides the field's PNG/64
class MediaProbe(Algorithm):
    """Reports what ``predict`` received for each media field (deployed, and driven in-process)."""

    Input = ProbeInput
    Output = ProbeOutput

    async def predict(self, inp: ProbeInput) -> ProbeOutput:
        seen = {}
        for name in ("image", "video"):
            if (value := getattr(inp, name)) is not None:
                m = Media.of(value)
                size = Image.open(io.BytesIO(m.data)).size if name == "image" else None
                seen[name] = {"content_type": m.content_type, "size": size, "original": m.info.model_dump(),
                              "frames": [Image.open(io.BytesIO(f)).size for f in m.frames]}
        return ProbeOutput(seen=seen)


class SlowStartInput(BaseModel):
    text: str = Field(description="sent back", examples=["hello"])


class SlowStart(Algorithm):
    """A model that takes a while to load (not registered here: the start-up tests name it)."""

    Input = SlowStartInput
    Output = SlowStartInput

    async def setup(self) -> None:
        await asyncio.sleep(float(os.environ.get("TEST_SLOW_START_S", "8")))

    async def predict(self, inp: SlowStartInput) -> SlowStartInput:
        return inp


class PngInput(BaseModel):
    size: int = Field(16, ge=1, le=512, description="side of the square image, in pixels")


class PngOutput(BaseModel):
    image: dict = Field(description="the stored image: {url, key, content_type, bytes}")


class MakePng(Algorithm):
    """Store a small PNG as an output and answer with its link (not registered here: tests name it)."""

    Input = PngInput
    Output = PngOutput

    async def predict(self, inp: PngInput) -> PngOutput:
        out = io.BytesIO()
        Image.new("RGB", (inp.size, inp.size), (20, 120, 240)).save(out, format="PNG")
        return PngOutput(image=await self.save_output("square.png", out.getvalue(), "image/png"))


@algorithm(name="test-busy", kind="local", max_concurrency=1, max_queued=1, timeout_s=4, num_cpus=0.01)
class SleepOneAtATime(Sleep):
    """The same sleep, one call at a time and one waiting per caller, within 4 s: busy for a third."""


@actorless(name="TestCounter", read_only=["peek"], idle_timeout_s=1)
class Counter:
    """A counter actor for the tests: passivated after 1 s idle; its state can be made large."""

    def __init__(self, start: int = 0) -> None:
        self.count = start
        self.ballast = ""

    def add(self, n: Annotated[int, Field(description="how much to add", examples=[1])] = 1) -> int:
        """Add n; the new count."""
        self.count += n
        return self.count

    def peek(self) -> int:
        """The count, read only."""
        return self.count

    def grow(self, kib: Annotated[int, Field(ge=0, le=4096, description="KiB of ballast to keep",
                                             examples=[100])]) -> int:
        """Keep kib KiB of ballast in the state (to push it past the Redis threshold); the state's size."""
        self.ballast = "x" * (kib * 1024)
        return len(self.ballast)

    def fail_midway(self) -> int:
        """Change the count, then raise: the change must not survive."""
        self.count += 1000
        raise RuntimeError("failed after changing the count")


@actorless(name="TestBatched", read_only=["peek"], checkpoint="periodic", checkpoint_every=3, checkpoint_every_s=0.5)
class BatchedCounter(Counter.target):
    """A counter checkpointed every 3 writes, or half a second after the first unsaved one."""


@actorless(name="TestLazy", read_only=["peek"])
class LazyCounter(Counter.target):
    """A counter whose registry entry (tests/conftest.py) overrides its policy to on_passivation."""


class StreamInput(BaseModel):
    id: str = Field(min_length=1, max_length=64, description="the message's id, sent back", examples=["m1"])
    fail_until: float = Field(0, description="fail (as a broken replica would) until this unix time")
    batch_sleep_s: float = Field(0, ge=0, le=30, description="the batch it is in takes this long")


class StreamOutput(BaseModel):
    id: str


@algorithm(name="test-stream", kind="local", max_concurrency=8, num_cpus=0, max_queued=64,  # the suite fits 2 CPUs
           batch={"max_batch_size": 256, "batch_wait_timeout_s": 0})
class StreamEcho(Algorithm):
    """Sends ids back, in batches that may be slow, or failing for a while (the pipeline tests)."""

    Input = StreamInput
    Output = StreamOutput

    async def predict_batch(self, inputs: list[StreamInput]) -> list[StreamOutput | Exception]:
        await asyncio.sleep(max(i.batch_sleep_s for i in inputs))
        now = time.time()
        return [RuntimeError("failing for a while") if now < i.fail_until else StreamOutput(id=i.id)
                for i in inputs]


class LiveInput(BaseModel):
    seconds: float = Field(0, ge=0, le=5, description="the batch it is in takes this long")


class LiveOutput(BaseModel):
    pid: int
    batch: int


@algorithm(name="test-live", kind="local", max_concurrency=2, max_queued=256, num_cpus=0,  # the suite fits 2 CPUs
           batch={"max_batch_size": 2, "batch_wait_timeout_s": 0.02})
class LiveLimits(Algorithm):
    """Says which replica process ran it and in how big a batch (limits changed at run time)."""

    Input = LiveInput
    Output = LiveOutput

    async def predict_batch(self, inputs: list[LiveInput]) -> list[LiveOutput]:
        await asyncio.sleep(max(i.seconds for i in inputs))
        return [LiveOutput(pid=os.getpid(), batch=len(inputs)) for _ in inputs]


@algorithm(name="test-autoscaled", kind="local", num_cpus=0, max_queued=256,
           autoscaling={"min": 1, "max": 3, "target_ongoing_requests": 1, "upscale_delay_s": 0.5,
                        "downscale_delay_s": 2})
class Autoscaled(LiveLimits):
    """The same, on replicas Serve adds under load and removes when it ends."""
