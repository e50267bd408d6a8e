"""Agents for the orchestration benchmark: a no-op and an I/O-bound sleeper."""

from __future__ import annotations

import time

from pydantic import BaseModel


class In(BaseModel):
    i: int
    seconds: float = 0.0


class Out(BaseModel):
    i: int


def noop(inputs: In) -> Out:
    return Out(i=inputs.i)


def sleep(inputs: In) -> Out:
    time.sleep(inputs.seconds)
    return Out(i=inputs.i)
