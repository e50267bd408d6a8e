"""The cc-sessions subagent hook, re-implemented: the baseline ``bench.transcripts`` compares
agentrt's hook with.

cc-sessions (``cc_sessions/python/hooks/subagent_hooks.py``) hands a subagent the raw transcript
since the first edit; :func:`cc_sessions_chunks` reproduces what it writes, and
:func:`cc_sessions_legacy_batches` the format of earlier releases. This is benchmark code, not
part of agentrt.
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable, Mapping, Sequence
from typing import Any

__all__ = [
    "CC_SESSIONS_MAX_BYTES",
    "CC_SESSIONS_MAX_TOKENS_PER_BATCH",
    "cc_sessions_chunks",
    "cc_sessions_entries",
    "cc_sessions_legacy_batches",
    "cc_sessions_subagent_type",
    "split_by_bytes",
]


#: cc-sessions (v0.3, ``cc_sessions/python/hooks/subagent_hooks.py``) cuts at this many bytes.
CC_SESSIONS_MAX_BYTES = 24_000
#: Earlier cc-sessions (``.claude/hooks/task-transcript-link.py``) batched entries by tokens.
CC_SESSIONS_MAX_TOKENS_PER_BATCH = 18_000


def cc_sessions_entries(transcript_path: str | os.PathLike[str]) -> list[dict[str, Any]]:
    """The entries cc-sessions hands a subagent: ``{role, content}`` of every user/assistant
    line *after* the line holding the first Edit/MultiEdit/Write call (that line itself is
    consumed by cc-sessions' search loop and not kept). Empty when no edit was made yet.

    Like cc-sessions, the file is read with ``errors="backslashreplace"``; unlike it, a
    malformed line is skipped instead of crashing the hook.
    """
    records: list[dict[str, Any]] = []
    with open(transcript_path, encoding="utf-8", errors="backslashreplace") as f:
        for line in f:
            try:
                obj = json.loads(line)
            except ValueError:
                continue
            if isinstance(obj, dict):
                records.append(obj)
    start = None
    for i, entry in enumerate(records):
        message = entry.get("message")
        content = message.get("content") if isinstance(message, dict) else None
        if isinstance(content, list) and any(
            isinstance(b, dict)
            and b.get("type") == "tool_use"
            and b.get("name") in ("Edit", "MultiEdit", "Write")
            for b in content
        ):
            start = i + 1
            break
    if start is None:
        return []
    out = []
    for entry in records[start:]:
        message = entry.get("message")
        if message and entry.get("type") in ("user", "assistant") and isinstance(message, dict):
            out.append({"role": message.get("role"), "content": message.get("content")})
    return out


def cc_sessions_subagent_type(entries: Sequence[Mapping[str, Any]]) -> str:
    """The folder cc-sessions writes to: ``subagent_type`` of a Task call in the last entry,
    else ``shared``."""
    if not entries:
        return "shared"
    content = entries[-1].get("content")
    kind = "shared"
    if isinstance(content, list):
        for block in content:
            if (
                isinstance(block, dict)
                and block.get("type") == "tool_use"
                and block.get("name") == "Task"
            ):
                value = (block.get("input") or {}).get("subagent_type", kind)
                kind = value if isinstance(value, str) else kind
    return kind


def split_by_bytes(text: str, max_bytes: int = CC_SESSIONS_MAX_BYTES) -> list[str]:
    """cc-sessions' chunker, ported line for line: pieces of at most ``max_bytes`` UTF-8 bytes,
    cut after the last newline in the buffer (else after the last space seen before any newline,
    else hard); breakpoints are forgotten after each cut, as in the original."""
    chunks: list[str] = []
    buf: list[str] = []
    buf_bytes = 0
    last_newline: int | None = None
    last_space: int | None = None
    for ch in text:
        ch_b = len(ch.encode("utf-8", "surrogatepass"))
        if buf_bytes + ch_b > max_bytes:
            cut = last_newline if last_newline is not None else last_space
            if cut is not None and cut > 0:
                chunks.append("".join(buf[:cut]))
                buf = buf[cut:]
                buf_bytes = sum(len(c.encode("utf-8", "surrogatepass")) for c in buf)
            else:
                if buf:
                    chunks.append("".join(buf))
                buf, buf_bytes = [], 0
            last_newline = last_space = None
        buf.append(ch)
        buf_bytes += ch_b
        if ch == "\n":
            last_newline, last_space = len(buf), None
        elif ch == " " and last_newline is None:
            last_space = len(buf)
    if buf:
        chunks.append("".join(buf))
    return chunks


def cc_sessions_chunks(transcript_path: str | os.PathLike[str]) -> list[str]:
    """What the cc-sessions v0.3 PreToolUse hook writes for a subagent: the entries since the
    first edit, serialised with ``json.dumps(indent=2, ensure_ascii=False)``, cut into pieces of
    at most 24,000 bytes (``current_transcript_NNN.txt``). Empty before the first edit."""
    entries = cc_sessions_entries(transcript_path)
    if not entries:
        return []
    return split_by_bytes(json.dumps(entries, indent=2, ensure_ascii=False))


def cc_sessions_legacy_batches(
    entries: Sequence[Mapping[str, Any]],
    max_tokens: int = CC_SESSIONS_MAX_TOKENS_PER_BATCH,
    count: Callable[[str], int] | None = None,
) -> list[str]:
    """The earlier cc-sessions format (``current_transcript_NNN.json``): entries batched so each
    batch's entries, counted one by one as compact JSON, total at most ``max_tokens``; each batch
    written as ``json.dumps(batch, indent=2, ensure_ascii=False)``."""
    if count is None:
        from agentrt.context.tokens import count_tokens as count
    batches: list[list[Mapping[str, Any]]] = []
    batch: list[Mapping[str, Any]] = []
    used = 0
    for entry in entries:
        n = count(json.dumps(entry, ensure_ascii=False))
        if used + n > max_tokens and batch:
            batches.append(batch)
            batch, used = [], 0
        batch.append(entry)
        used += n
    if batch:
        batches.append(batch)
    return [json.dumps(b, indent=2, ensure_ascii=False) for b in batches]
