"""Context agents for the token-contract tests: they deliver as many tokens of text as they
are told (by default their grant), whatever they were granted."""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict

WORDS = " ".join(f"word{i} alpha beta" for i in range(6_000))


def make_text(tokens: int) -> str:
    """Text of exactly ``tokens`` tokens (at most, for very large asks)."""
    from agentrt.context.tokens import truncate_to_tokens

    return truncate_to_tokens(WORDS, tokens) if tokens > 0 else ""


class GiveIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    workdir: str
    name: str = ""
    tokens: int = -1  # -1: the grant
    report: int | None = None  # what it tells ctx.tokens_delivered


class Piece(BaseModel):
    path: str
    text: str


class GiveOut(BaseModel):
    name: str
    grant: int | None
    limit: int | None
    items: list[Piece]


def give(inputs: GiveIn, ctx: Any = None) -> GiveOut:
    grant = ctx.budget_tokens if ctx is not None else None
    Path(inputs.workdir).mkdir(parents=True, exist_ok=True)
    with open(Path(inputs.workdir) / "events.jsonl", "a") as fh:
        fh.write(json.dumps({"name": inputs.name, "grant": grant, "t": time.time()}) + "\n")
    n = inputs.tokens if inputs.tokens >= 0 else grant or 0
    half = n // 2
    items = [Piece(path="a.py", text=make_text(half)), Piece(path="b.py", text=make_text(n - half))]
    if ctx is not None and inputs.report is not None:
        ctx.tokens_delivered = inputs.report
    return GiveOut(
        name=inputs.name,
        grant=grant,
        limit=ctx.token_limit if ctx is not None else None,
        items=items,
    )
