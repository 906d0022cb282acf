"""``local-echo``: the cheapest possible algorithm, for health checks and benchmarks."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field

from engines.algorithms.base import Algorithm


class EchoInput(BaseModel):
    model_config = ConfigDict(extra="forbid")

    text: str = Field(max_length=100_000, description="text to send back unchanged",
                      examples=["hello"])


class EchoOutput(BaseModel):
    text: str = Field(description="the input text, unchanged")


class Echo(Algorithm):
    """Return the text it is given; measures the serving path itself."""

    Input = EchoInput
    Output = EchoOutput

    async def predict(self, inp: EchoInput) -> EchoOutput:
        return EchoOutput(text=inp.text)
