"""Agents for the ctx.upstream tests: producers with a pydantic and an inline output schema,
and a reader that reports what it received as ctx.upstream."""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel

from agentrt.agents.agent_context import AgentContext


class Text(BaseModel):
    text: str


class Produced(BaseModel):
    value: str
    size: int


def produce(inputs: Text) -> Produced:
    return Produced(value=inputs.text, size=len(inputs.text))


def produce_raw(inputs: dict[str, Any]) -> dict[str, Any]:
    return {"value": inputs["text"].upper()}


def peek(inputs: dict[str, Any], ctx: AgentContext) -> dict[str, Any]:
    seen = {}
    for sid, value in ctx.upstream.items():
        typed = isinstance(value, BaseModel)
        seen[sid] = {
            "type": type(value).__name__,
            "value": value.value if typed else value["value"],
        }
    try:
        ctx.upstream["intruder"] = {}  # type: ignore[index]
        read_only = False
    except TypeError:
        read_only = True
    return {"seen": seen, "read_only": read_only}
