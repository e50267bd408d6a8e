"""Agents for the chunking tests: deterministic outputs, and a log of every call."""

from __future__ import annotations

import json
from pathlib import Path

from pydantic import BaseModel, ConfigDict


class ItemsIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    workdir: str
    items: list[str]
    fail_on: str = ""
    fail_always: str = ""


class ItemsOut(BaseModel):
    upper: list[str]
    total: int
    seen: list[str]
    longest: int
    label: str


class TextIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    workdir: str
    text: str


class TextOut(BaseModel):
    lines: list[str]
    text: str
    count: int


def _log(workdir: str, entry: object) -> None:
    with open(Path(workdir) / "calls.jsonl", "a") as fh:
        fh.write(json.dumps(entry) + "\n")


def items(inputs: ItemsIn) -> ItemsOut:
    """Logs the items of each call; fails the first call that sees ``fail_on``."""
    _log(inputs.workdir, inputs.items)
    marker = Path(inputs.workdir) / "failed-once"
    if inputs.fail_on in inputs.items and not marker.exists():
        marker.write_text("1")
        raise ConnectionError(f"transient failure on {inputs.fail_on}")
    if inputs.fail_always in inputs.items:
        raise ConnectionError(f"permanent failure on {inputs.fail_always}")
    return ItemsOut(
        upper=[i.upper() for i in inputs.items],
        total=sum(len(i) for i in inputs.items),
        seen=list(dict.fromkeys(i.split()[0] for i in inputs.items)),
        longest=max((len(i) for i in inputs.items), default=0),
        label="items",
    )


def text(inputs: TextIn) -> TextOut:
    _log(inputs.workdir, inputs.text)
    lines = inputs.text.splitlines()
    return TextOut(lines=lines, text=inputs.text.upper(), count=len(lines))


def longest_first(values: list[list[str]]) -> list[str]:
    """A custom merge: every chunk's items, longest first."""
    return sorted((x for v in values for x in v), key=len, reverse=True)


def lenient(inputs: ItemsIn) -> ItemsOut:
    """``items`` without its failures: a fallback."""
    return items(inputs.model_copy(update={"fail_on": "", "fail_always": ""}))


def say_many(values: list[int]) -> str:
    """A merge function whose result the output model rejects (an int field)."""
    return "many"
