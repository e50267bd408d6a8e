"""Agents for the metrics tests: a context deliverer, a consumer citing part of it, and an
agent reporting token usage the way an LLM agent does (through its AgentContext)."""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict


class Item(BaseModel):
    path: str
    tokens: int


class DeliverIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    items: list[Item]


class DeliverOut(BaseModel):
    files: list[str]
    items: list[Item]


def deliver(inputs: DeliverIn, ctx: Any = None) -> DeliverOut:
    """Deliver the given context items (as context_gathering does) and report their size."""
    if ctx is not None:
        ctx.tokens_delivered = sum(i.tokens for i in inputs.items)
    return DeliverOut(files=[i.path for i in inputs.items], items=inputs.items)


class CiteIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    files: list[str]
    cite: int = 1


class Finding(BaseModel):
    path: str
    message: str


class CiteOut(BaseModel):
    findings: list[Finding]


def cite(inputs: CiteIn) -> CiteOut:
    """Report findings in the first ``cite`` files it was given."""
    return CiteOut(
        findings=[Finding(path=p, message="looked at it") for p in inputs.files[: inputs.cite]]
    )


class UsageIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    input_tokens: int
    output_tokens: int
    delivered: int
    referenced: int
    model: str | None = None


class UsageOut(BaseModel):
    summary: str


def usage(inputs: UsageIn, ctx: Any = None) -> UsageOut:
    """Report token usage through the context, as the LLM runner does for a provider call."""
    if ctx is not None:
        ctx.llm_input_tokens = inputs.input_tokens
        ctx.llm_output_tokens = inputs.output_tokens
        ctx.tokens_delivered = inputs.delivered
        ctx.tokens_referenced = inputs.referenced
        ctx.llm_model = inputs.model  # the runtime prices the tokens (cost_usd)
    return UsageOut(summary="ok")


class MeetIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    folder: str
    name: str
    peers: int = 2


class MeetOut(BaseModel):
    met: list[str]


def meet(inputs: MeetIn) -> MeetOut:
    """Wait until ``peers`` agents (in any process) have arrived in ``folder``: proves that
    the flows running them overlap."""
    import time
    from pathlib import Path

    folder = Path(inputs.folder)
    (folder / inputs.name).touch()
    deadline = time.monotonic() + 60
    while len(arrived := sorted(p.name for p in folder.iterdir())) < inputs.peers:
        if time.monotonic() > deadline:
            raise TimeoutError(f"only {arrived} arrived in {folder}")
        time.sleep(0.02)
    return MeetOut(met=arrived)
