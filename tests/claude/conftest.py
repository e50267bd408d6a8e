"""Fixtures for the Claude Code integration tests: real transcripts and a transcript builder."""

from __future__ import annotations

import json
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest


@pytest.fixture(scope="session")
def transcripts_dir(shared_dir: Path) -> Path:
    return shared_dir / "data" / "transcripts"


@pytest.fixture(scope="session")
def session_files(transcripts_dir: Path) -> list[Path]:
    """The real main-session transcripts (not the subagent's own)."""
    files = sorted(p for p in transcripts_dir.glob("spotter-*.jsonl") if "-agent-" not in p.name)
    assert len(files) == 3, files
    return files


class TranscriptBuilder:
    """Writes a transcript the way Claude Code 2.1 does: one line per content block, the lines
    of one reply sharing ``message.id``/``requestId`` and repeating its usage."""

    def __init__(self, session_id: str = "11111111-2222-3333-4444-555555555555") -> None:
        self.session_id = session_id
        self.lines: list[dict[str, Any]] = []
        self._n = 0

    def _base(self, kind: str) -> dict[str, Any]:
        self._n += 1
        return {
            "type": kind,
            "isSidechain": False,
            "sessionId": self.session_id,
            "cwd": "/work/project",
            "uuid": str(uuid.uuid4()),
            "timestamp": f"2026-02-12T16:{self._n // 60:02d}:{self._n % 60:02d}.000Z",
        }

    def user(self, text: str, **extra: Any) -> TranscriptBuilder:
        line = self._base("user")
        line["message"] = {"role": "user", "content": text}
        line.update(extra)
        self.lines.append(line)
        return self

    def reply(self, *blocks: dict[str, Any], output_tokens: int = 10) -> TranscriptBuilder:
        """One assistant reply, a line per block; the last line carries the final usage."""
        mid = f"msg_{uuid.uuid4().hex[:12]}"
        rid = f"req_{uuid.uuid4().hex[:12]}"
        for i, block in enumerate(blocks):
            line = self._base("assistant")
            final = i == len(blocks) - 1
            line["requestId"] = rid
            line["message"] = {
                "id": mid,
                "role": "assistant",
                "type": "message",
                "content": [block],
                "usage": {
                    "input_tokens": 3,
                    "output_tokens": output_tokens if final else 1,
                    "cache_creation_input_tokens": 100,
                    "cache_read_input_tokens": 1000,
                },
            }
            self.lines.append(line)
        return self

    def text(self, text: str) -> TranscriptBuilder:
        return self.reply({"type": "text", "text": text})

    def tool(
        self,
        name: str,
        tool_input: dict[str, Any],
        result: str = "ok",
        *,
        is_error: bool = False,
        tool_id: str | None = None,
    ) -> TranscriptBuilder:
        tool_id = tool_id or f"toolu_{uuid.uuid4().hex[:16]}"
        self.reply({"type": "tool_use", "id": tool_id, "name": name, "input": tool_input})
        line = self._base("user")
        block: dict[str, Any] = {"type": "tool_result", "tool_use_id": tool_id, "content": result}
        if is_error:
            block["is_error"] = True
        line["message"] = {"role": "user", "content": [block]}
        self.lines.append(line)
        return self

    def call(self, name: str, tool_input: dict[str, Any], tool_id: str) -> TranscriptBuilder:
        """A tool call whose result has not come back yet (as when a PreToolUse hook runs)."""
        return self.reply({"type": "tool_use", "id": tool_id, "name": name, "input": tool_input})

    def progress(self, n: int = 1) -> TranscriptBuilder:
        for _ in range(n):
            line = self._base("progress")
            line["data"] = {"type": "bash_progress", "output": "…"}
            self.lines.append(line)
        return self

    def raw(self, text: str) -> TranscriptBuilder:
        self.lines.append({"__raw__": text})
        return self

    def write(self, path: Path) -> Path:
        path.parent.mkdir(parents=True, exist_ok=True)
        with path.open("w", encoding="utf-8") as f:
            for line in self.lines:
                f.write(line["__raw__"] if "__raw__" in line else json.dumps(line))
                f.write("\n")
        return path


@pytest.fixture
def builder() -> Callable[..., TranscriptBuilder]:
    return TranscriptBuilder
