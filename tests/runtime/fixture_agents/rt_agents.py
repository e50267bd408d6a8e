"""Agents used by the runtime tests. They record what happened in files under ``workdir``."""

from __future__ import annotations

import json
import os
import time
from pathlib import Path

from pydantic import BaseModel, ConfigDict


class WorkIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    workdir: str
    name: str = ""
    seconds: float = 0.0
    fail_times: int = 0
    confidence: float | None = None


class WorkOut(BaseModel):
    name: str
    started: float
    ended: float
    pid: int
    confidence: float | None = None
    files: list[str] = []


def _log(workdir: str, event: dict) -> None:
    with open(Path(workdir) / "events.jsonl", "a") as fh:
        fh.write(json.dumps(event) + "\n")


def work(inputs: WorkIn) -> WorkOut:
    """Sleep, log, return; fail the first ``fail_times`` calls with ConnectionError."""
    started = time.time()
    counter = Path(inputs.workdir) / f"calls-{inputs.name}"
    calls = int(counter.read_text()) + 1 if counter.exists() else 1
    counter.write_text(str(calls))
    _log(inputs.workdir, {"name": inputs.name, "call": calls, "t": started})
    if calls <= inputs.fail_times:
        raise ConnectionError(f"{inputs.name}: transient failure {calls}")
    time.sleep(inputs.seconds)
    return WorkOut(
        name=inputs.name,
        started=started,
        ended=time.time(),
        pid=os.getpid(),
        confidence=inputs.confidence,
        files=[f"{inputs.name}.py"],
    )


def broken(inputs: WorkIn) -> WorkOut:
    _log(inputs.workdir, {"name": "broken", "t": time.time()})
    raise ValueError("broken agent: this is a bug, not a transient error")


def hang(inputs: WorkIn) -> WorkOut:
    _log(inputs.workdir, {"name": "hang", "t": time.time()})
    time.sleep(60)
    raise AssertionError("unreachable")


class ConsumeIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    workdir: str
    files: list[str]
    count: int = 0


class ConsumeOut(BaseModel):
    received: list[str]


def consume(inputs: ConsumeIn) -> ConsumeOut:
    _log(inputs.workdir, {"name": "consume", "files": inputs.files, "t": time.time()})
    return ConsumeOut(received=inputs.files)


def read_file(inputs: dict) -> dict:
    """Agent with inline JSON Schemas: reads a file, logs next to it (not in it)."""
    text = Path(inputs["path"]).read_text()
    with open(inputs["path"] + ".calls", "a") as fh:
        fh.write("call\n")
    return {"length": len(text)}


NOT_CALLABLE = 42


def leak(inputs: WorkIn) -> WorkOut:
    """Fails with an error that quotes an API key from the environment."""
    raise RuntimeError(f"provider rejected key {os.environ.get('AGENTRT_TEST_API_KEY')}")
