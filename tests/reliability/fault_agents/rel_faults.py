"""A fault-injection agent for the reliability tests, configured entirely through its input.

``fault`` picks the misbehaviour; ``fail_times`` limits it to the first N calls of this
``name`` (0: every call), which is how "fail N times, then succeed" works. ``leak_env`` names
environment variables whose values go into the error (``chained``: into its cause as well)
and into a Prefect log line (``log``): secrets that must never reach any output. Calls are counted
in a file (``calls-<name>`` in the log folder, under an ``flock``), so the count survives
retries in other threads, other worker processes and a killed-and-restarted ``agentrt run``.

Every call appends a ``start`` line to ``calls.jsonl`` before doing anything, and an ``end``
or ``raise`` line when it returns or raises, so tests read from the agent's own log what
Prefect really executed and when (retry delays, timeouts, cache hits: a cached step leaves
no line at all).

The log folder is ``$AGENTRT_FAULT_LOG`` when set, else the ``workdir`` input. Keeping it
out of the inputs matters for caching: a folder given as an input is part of the cache key
*by content*, and the log folder's content changes with every call.
"""

from __future__ import annotations

import builtins
import fcntl
import hashlib
import importlib
import json
import multiprocessing
import os
import signal
import time
from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict

Fault = Literal[
    "none",
    "raise",
    "hang",
    "busy_hang",
    "memory",
    "invalid_output",
    "low_confidence",
    "kill_worker",
    "kill_worker_mid_message",
]


class TransientError(ConnectionError):
    """A subclass of a retry_on name: retried because its base class is named."""


class FaultIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    name: str
    workdir: str = ""
    fault: Fault = "none"
    exception: str = "RuntimeError"
    message: str = "injected fault"
    fail_times: int = 0
    seconds: float = 0.0
    memory_mb: int = 0
    confidence: float = 1.0
    files: list[str] = []
    nonce: str = ""
    leak_env: list[str] = []
    chained: bool = False
    log: str = ""


class FaultOut(BaseModel):
    name: str
    value: str
    files: list[str]
    confidence: float
    call: int
    pid: int
    started: float
    ended: float


def log_dir(inputs: FaultIn) -> Path:
    where = os.environ.get("AGENTRT_FAULT_LOG") or inputs.workdir
    if not where:
        raise ValueError("set AGENTRT_FAULT_LOG or give a workdir: the agent logs every call")
    folder = Path(where)
    folder.mkdir(parents=True, exist_ok=True)
    return folder


def _log(folder: Path, event: dict[str, object]) -> None:
    # One write() of one short line on an O_APPEND descriptor: lines from concurrent
    # threads and processes never interleave.
    line = (json.dumps(event) + "\n").encode()
    fd = os.open(folder / "calls.jsonl", os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
    try:
        os.write(fd, line)
    finally:
        os.close(fd)


def _next_call(folder: Path, name: str) -> int:
    with open(folder / f"calls-{name}", "a+") as fh:
        fcntl.flock(fh, fcntl.LOCK_EX)
        fh.seek(0)
        calls = int(fh.read() or 0) + 1
        fh.seek(0)
        fh.truncate()
        fh.write(str(calls))
    return calls


def exception_class(name: str) -> type[BaseException]:
    """``ValueError``, ``TransientError``, ``package.module.Class``; unknown names become a
    new ``Exception`` subclass of that name (for retry_on matching by name)."""
    if name in globals() and isinstance(globals()[name], type):
        return globals()[name]
    found = getattr(builtins, name, None)
    if isinstance(found, type) and issubclass(found, BaseException):
        return found
    module, _, attr = name.rpartition(".")
    if module:
        found = getattr(importlib.import_module(module), attr, None)
        if isinstance(found, type) and issubclass(found, BaseException):
            return found
    return type(name, (Exception,), {"__module__": __name__})


def _in_worker_process() -> bool:
    """True inside a ProcessPoolExecutor worker; False in the test (or CLI) process itself."""
    return multiprocessing.parent_process() is not None


def _leaked(inputs: FaultIn) -> str:
    """The values of the environment variables named in ``leak_env`` (secrets, in tests)."""
    return " ".join(os.environ.get(name, "") for name in inputs.leak_env)


def _log_through_prefect(inputs: FaultIn) -> None:
    try:
        from prefect.logging import get_run_logger

        get_run_logger().warning("%s %s", inputs.log, _leaked(inputs))
    except Exception:  # no run context (called outside a flow)
        pass


def _misbehave(inputs: FaultIn, folder: Path, call: int) -> dict[str, object] | None:
    """Do the configured fault. Returns a bad output for output faults, else raises/hangs."""
    fault = inputs.fault
    if fault == "raise":
        text = f"{inputs.name}: {inputs.message} (call {call})"
        leaked = _leaked(inputs)
        error = exception_class(inputs.exception)(f"{text} {leaked}" if leaked else text)
        if inputs.chained:
            try:
                raise ValueError(f"the cause: {leaked}")
            except ValueError as cause:
                raise error from cause
        raise error
    if fault == "hang":  # stuck in a C call: only a watchdog can get past it
        time.sleep(inputs.seconds or 3600)
    if fault == "busy_hang":  # stuck in Python code, bounded so it never burns a core for long
        deadline = time.monotonic() + min(inputs.seconds or 10, 30)
        while time.monotonic() < deadline:
            pass
    if fault == "memory":
        # Really allocate (and touch) memory_mb, then ask for more than any machine has:
        # the allocator's own MemoryError, not one raised by hand.
        chunks = [bytearray(1 << 20) for _ in range(inputs.memory_mb)]
        _log(folder, {"name": inputs.name, "event": "allocated", "mb": len(chunks)})
        del chunks
        bytearray(1 << 62)
    if fault == "invalid_output":
        return {"name": inputs.name, "value": 42, "files": "not a list"}
    if fault in ("kill_worker", "kill_worker_mid_message"):
        if not _in_worker_process():
            raise RuntimeError(f"{fault} needs the process task runner (--task-runner process)")
        _log(folder, {"name": inputs.name, "event": "killing", "pid": os.getpid()})
        if fault == "kill_worker_mid_message":
            _hold_message_queue_locks()
        os.kill(os.getpid(), signal.SIGKILL)
    return None


def _hold_message_queue_locks() -> None:
    """Die as a worker killed while sending a log line or event to its parent would: holding
    the write lock of the task runner's message queue (shared with the parent process)."""
    import gc
    from multiprocessing.queues import Queue

    # Exactly multiprocessing's Queue: Prefect's message queue. The process pool's own call
    # queue (a subclass) is only read by workers, so a dying worker never holds its lock.
    for obj in gc.get_objects():
        if type(obj) is Queue and obj._wlock is not None:
            obj._wlock.acquire(timeout=5)


def run(inputs: FaultIn | dict[str, object]) -> dict[str, object]:
    """Misbehave as configured, or return a deterministic output (``value`` depends only on
    the name and the upstream files, so runs can be compared)."""
    if isinstance(inputs, dict):  # an inline JSON Schema input (fault_last_resort)
        inputs = FaultIn.model_validate(inputs)
    folder = log_dir(inputs)
    started = time.time()
    call = _next_call(folder, inputs.name)
    _log(
        folder,
        {"name": inputs.name, "event": "start", "call": call, "t": started, "pid": os.getpid()},
    )
    active = inputs.fault != "none" and (inputs.fail_times == 0 or call <= inputs.fail_times)
    if inputs.log:
        _log_through_prefect(inputs)
    try:
        bad = _misbehave(inputs, folder, call) if active else None
        if bad is not None:
            _log(folder, {"name": inputs.name, "event": "end", "call": call, "t": time.time()})
            return bad
        if inputs.seconds and inputs.fault not in ("hang", "busy_hang"):
            time.sleep(inputs.seconds)
    except BaseException as exc:
        _log(
            folder,
            {
                "name": inputs.name,
                "event": "raise",
                "call": call,
                "t": time.time(),
                "error": type(exc).__name__,
            },
        )
        raise
    digest = hashlib.blake2b(
        json.dumps([inputs.name, sorted(inputs.files)]).encode(), digest_size=8
    ).hexdigest()
    confidence = inputs.confidence if active and inputs.fault == "low_confidence" else 1.0
    ended = time.time()
    _log(folder, {"name": inputs.name, "event": "end", "call": call, "t": ended})
    return FaultOut(
        name=inputs.name,
        value=digest,
        files=[*inputs.files, f"{inputs.name}.out"],
        confidence=confidence,
        call=call,
        pid=os.getpid(),
        started=started,
        ended=ended,
    ).model_dump()


def calls(folder: Path) -> list[dict[str, object]]:
    """The agent's log, oldest first (for tests)."""
    path = folder / "calls.jsonl"
    if not path.exists():
        return []
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]
