"""cc-sessions' ``flags.subagent`` in ``sessions/sessions-state.json``, under its lock protocol.

cc-sessions reads the flag to know a subagent is running; the hook (:mod:`agentrt.claude.hook`)
sets it before a subagent starts and clears it when the subagent is done.
"""

from __future__ import annotations

import json
import os
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

__all__ = ["STATE_FILE", "set_subagent_flag"]

STATE_FILE = Path("sessions") / "sessions-state.json"


@contextmanager
def _state_lock(
    lock_dir: Path, *, timeout: float = 1.0, poll: float = 0.05, stale_after: float = 30.0
) -> Iterator[None]:
    """cc-sessions' lock: a directory created atomically with ``mkdir``, holding
    ``lock_info.json`` (``pid``, ``timestamp`` from ``time.monotonic()``, ``host``).

    Like cc-sessions, a lock older than ``stale_after`` seconds or held by a dead process is
    removed. Unlike cc-sessions, a live lock is never forced after ``timeout``: TimeoutError is
    raised and the caller leaves the state alone (a hook must not break another's update).
    Removal is exact (``lock_info.json``, then ``rmdir``), never recursive.
    """
    info = lock_dir / "lock_info.json"
    start = time.monotonic()
    while True:
        if lock_dir.is_dir() and _lock_is_stale(info, stale_after):
            _remove_lock(lock_dir)
        try:
            lock_dir.mkdir()
        except FileExistsError:
            if time.monotonic() - start > timeout:
                raise TimeoutError(
                    f"{lock_dir} is held by another process (waited {timeout:.1f} s)"
                ) from None
            time.sleep(poll)
            continue
        host = os.uname().nodename if hasattr(os, "uname") else "unknown"
        info.write_text(
            json.dumps({"pid": os.getpid(), "timestamp": time.monotonic(), "host": host})
        )
        break
    try:
        yield
    finally:
        _remove_lock(lock_dir)


def _lock_is_stale(info: Path, stale_after: float) -> bool:
    try:
        data = json.loads(info.read_text())
    except (OSError, ValueError):
        return False  # being written right now, or not ours to judge: wait
    if not isinstance(data, dict):
        return False
    stamp = data.get("timestamp", 0)
    if isinstance(stamp, int | float) and time.monotonic() - stamp > stale_after:
        return True
    pid = data.get("pid")
    if isinstance(pid, int) and pid > 0 and pid != os.getpid():
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return True
        except OSError:
            return False  # exists, owned by someone else
    return False


def _remove_lock(lock_dir: Path) -> None:
    try:
        (lock_dir / "lock_info.json").unlink(missing_ok=True)
        lock_dir.rmdir()
    except OSError:
        pass


def _write_json_atomic(path: Path, data: Any) -> None:
    """Write as cc-sessions does (``indent=2``), via a temporary file and ``os.replace``."""
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            json.dump(data, f, indent=2)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def set_subagent_flag(project: Path, value: bool, *, timeout: float = 1.0) -> bool | None:
    """Set ``flags.subagent`` in cc-sessions' state file, if the project has one.

    Returns the flag as left, or None when there is no state file (cc-sessions not installed).
    Other fields are kept as they are. Raises TimeoutError when the lock stays taken and
    ValueError when the state file is not a JSON object.
    """
    state_file = project / STATE_FILE
    if not state_file.is_file():
        return None
    with _state_lock(state_file.with_suffix(".lock"), timeout=timeout):
        try:
            state = json.loads(state_file.read_text(encoding="utf-8"))
        except ValueError as exc:
            raise ValueError(f"{state_file} is not valid JSON ({exc}); left unchanged") from exc
        if not isinstance(state, dict):
            raise ValueError(f"{state_file} does not hold a JSON object; left unchanged")
        flags = state.get("flags")
        if not isinstance(flags, dict):
            flags = state["flags"] = {}
        if flags.get("subagent") is not value:
            flags["subagent"] = value
            _write_json_atomic(state_file, state)
    return value
