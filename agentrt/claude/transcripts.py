"""Claude Code session transcripts: parse the JSONL files Claude Code writes, as they really are.

Claude Code appends one JSON object per line to ``~/.claude/projects/<project>/<session>.jsonl``.
Facts this parser is built on (checked on real 2.1.x sessions):

* Line types include ``user``, ``assistant``, ``progress``, ``system`` (with a ``subtype`` such as
  ``compact_boundary``, ``turn_duration``, ``stop_hook_summary``), ``summary``,
  ``file-history-snapshot`` and ``queue-operation``. Others appear as Claude Code evolves; a line
  of a type we do not know is skipped and counted, never fatal.
* An assistant reply is written as one line per content block (text, thinking, tool_use); the
  lines of one reply share ``message.id`` and ``requestId`` and repeat its ``usage``, so usage is
  counted once per (``message.id``, ``requestId``) pair. The repeated usage is a streaming
  snapshot: the last line of a reply carries the final ``output_tokens``, so that one is used.
* Tool results come back as ``user`` lines whose content holds ``tool_result`` blocks, paired with
  their call by ``tool_use_id``.
* Subagents (the ``Task`` tool, named ``Agent`` in newer releases) write their own transcript to
  ``<session>/subagents/agent-<id>.jsonl`` with ``isSidechain: true`` on every line; the parent
  links to it through ``progress`` lines (``data.type == "agent_progress"``, ``data.agentId``,
  ``parentToolUseID``).
* ``/compact`` writes a ``system`` line with ``subtype: compact_boundary`` followed by a ``user``
  line with ``isCompactSummary: true`` holding the summary of everything before it.

Parsing is streaming (one line at a time, bounded line size) and uses only the standard library,
so a 3 MB transcript parses in a few tens of milliseconds.
"""

from __future__ import annotations

import json
import os
import re
from collections import Counter
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from functools import cached_property
from pathlib import Path
from typing import Any, BinaryIO

__all__ = [
    "KNOWN_LINE_TYPES",
    "SUBAGENT_TOOLS",
    "Block",
    "Compaction",
    "Entry",
    "Message",
    "OtherBlock",
    "TaskCall",
    "TextBlock",
    "ThinkingBlock",
    "ToolCall",
    "ToolResult",
    "ToolResultBlock",
    "ToolUseBlock",
    "Transcript",
    "Usage",
    "UserPrompt",
    "find_current_transcript",
    "parse_transcript",
    "subagent_transcripts",
]

#: Names of the tool that starts a subagent ("Task" up to Claude Code 2.1.x, "Agent" later).
SUBAGENT_TOOLS = frozenset({"Task", "Agent"})
#: Tools whose calls change files.
EDIT_TOOLS = frozenset({"Edit", "MultiEdit", "Write", "NotebookEdit"})
#: Line types Claude Code writes that this parser knows; any other type is skipped and counted.
KNOWN_LINE_TYPES = frozenset(
    {
        "user",
        "assistant",
        "progress",
        "system",
        "summary",
        "file-history-snapshot",
        "queue-operation",
        "custom-title",
    }
)
#: Lines longer than this are skipped (counted as ``line too large``) without being held in memory.
DEFAULT_MAX_LINE_BYTES = 64 * 1024 * 1024


# --------------------------------------------------------------------------------------------
# Content blocks


@dataclass(frozen=True, slots=True)
class TextBlock:
    """Plain text of a user or assistant message."""

    text: str
    type: str = "text"


@dataclass(frozen=True, slots=True)
class ThinkingBlock:
    """Extended thinking (``thinking`` or ``redacted_thinking``); never shown to a subagent."""

    text: str
    type: str = "thinking"


@dataclass(frozen=True, slots=True)
class ToolUseBlock:
    """A tool call the assistant made."""

    id: str
    name: str
    input: dict[str, Any]
    type: str = "tool_use"


@dataclass(frozen=True, slots=True)
class ToolResultBlock:
    """The result of a tool call, flattened to text (images become ``[image]``)."""

    tool_use_id: str
    text: str
    is_error: bool = False
    type: str = "tool_result"


@dataclass(frozen=True, slots=True)
class OtherBlock:
    """A block of another type (image, document, …), kept by type only."""

    type: str


Block = TextBlock | ThinkingBlock | ToolUseBlock | ToolResultBlock | OtherBlock


# --------------------------------------------------------------------------------------------
# Lines, messages, usage


@dataclass(frozen=True, slots=True)
class Usage:
    """Token usage as the API reported it (summed over replies for totals)."""

    input_tokens: int = 0
    output_tokens: int = 0
    cache_creation_input_tokens: int = 0
    cache_read_input_tokens: int = 0

    def __add__(self, other: Usage) -> Usage:
        return Usage(
            self.input_tokens + other.input_tokens,
            self.output_tokens + other.output_tokens,
            self.cache_creation_input_tokens + other.cache_creation_input_tokens,
            self.cache_read_input_tokens + other.cache_read_input_tokens,
        )

    @classmethod
    def from_dict(cls, raw: Any) -> Usage | None:
        """Usage from the API's ``usage`` object; None when absent or not an object."""
        if not isinstance(raw, dict):
            return None

        def num(key: str) -> int:
            value = raw.get(key)
            return value if isinstance(value, int) and not isinstance(value, bool) else 0

        return cls(
            num("input_tokens"),
            num("output_tokens"),
            num("cache_creation_input_tokens"),
            num("cache_read_input_tokens"),
        )


@dataclass(frozen=True, slots=True)
class Entry:
    """One JSONL line of a transcript."""

    line: int  #: 1-based line number in the file
    type: str
    nbytes: int
    raw: dict[str, Any] = field(repr=False)
    subtype: str | None = None
    uuid: str | None = None
    session_id: str | None = None
    timestamp: str | None = None
    is_sidechain: bool = False
    is_meta: bool = False
    is_compact_summary: bool = False
    agent_id: str | None = None
    role: str | None = None
    message_id: str | None = None
    request_id: str | None = None
    content_is_text: bool = False  #: message.content was a plain string
    blocks: tuple[Block, ...] = ()
    usage: Usage | None = None

    @property
    def text(self) -> str:
        """The text blocks of this line, joined."""
        return "\n".join(b.text for b in self.blocks if isinstance(b, TextBlock))


@dataclass(slots=True)
class Message:
    """A user or assistant message: the lines that share one ``message.id`` (assistant) or one
    line (user)."""

    key: str
    role: str
    entries: list[Entry]

    @property
    def blocks(self) -> list[Block]:
        return [b for e in self.entries for b in e.blocks]

    @property
    def first_line(self) -> int:
        return self.entries[0].line

    @property
    def last_line(self) -> int:
        return self.entries[-1].line


@dataclass(frozen=True, slots=True)
class ToolResult:
    """A tool result with the line it came back on."""

    tool_use_id: str
    text: str
    is_error: bool
    line: int


@dataclass(slots=True)
class ToolCall:
    """A tool call (``tool_use`` block) paired with its result, if any came back yet."""

    id: str
    name: str
    input: dict[str, Any]
    line: int
    message_id: str | None
    is_sidechain: bool
    result: ToolResult | None = None

    @property
    def file_path(self) -> str | None:
        """The file a file tool (Read, Edit, Write, …) works on."""
        value = self.input.get("file_path") or self.input.get("notebook_path")
        return value if isinstance(value, str) else None


@dataclass(slots=True)
class TaskCall:
    """A call of the subagent tool (``Task``/``Agent``)."""

    call: ToolCall
    description: str
    prompt: str
    subagent_type: str
    model: str | None = None
    agent_id: str | None = None  #: id of the subagent's own transcript, when linked

    @property
    def line(self) -> int:
        """Position of the call in the transcript (1-based line)."""
        return self.call.line

    @property
    def id(self) -> str:
        return self.call.id


@dataclass(frozen=True, slots=True)
class Compaction:
    """A ``/compact`` (manual or automatic) and the summary that replaced the history."""

    line: int
    trigger: str | None
    pre_tokens: int | None
    summary_line: int | None = None
    summary: str = ""


@dataclass(frozen=True, slots=True)
class UserPrompt:
    """Something the human typed: a prompt, or a slash command with its arguments."""

    line: int
    text: str
    kind: str  #: "prompt" or "command"
    timestamp: str | None = None


# --------------------------------------------------------------------------------------------
# The transcript


_COMMAND_OUTPUT = ("<local-command-stdout>", "<local-command-stderr>")
_NOTIFICATION = ("<task-notification>",)
_INTERRUPT = "[Request interrupted by user"


def classify_user_text(text: str) -> str:
    """What a user line's text is: "prompt", "command" (slash command), "command-output",
    "notification" (Claude Code's own, e.g. a background task finished), "interrupt" or
    "empty"."""
    stripped = text.lstrip()
    if not stripped:
        return "empty"
    if stripped.startswith(_COMMAND_OUTPUT):
        return "command-output"
    if stripped.startswith(_NOTIFICATION):
        return "notification"
    if stripped.startswith(_INTERRUPT):
        return "interrupt"
    if "<command-name>" in stripped[:200]:
        return "command"
    return "prompt"


@dataclass
class Transcript:
    """A parsed transcript: its lines, what was skipped and why, and views derived from them."""

    path: Path | None
    entries: list[Entry]
    n_lines: int
    skipped: Counter[str] = field(default_factory=Counter)
    skipped_lines: list[tuple[int, str]] = field(default_factory=list, repr=False)

    # ---- counts -------------------------------------------------------------------------

    @cached_property
    def line_types(self) -> Counter[str]:
        """Parsed lines per type, ``system:<subtype>`` counted besides ``system``."""
        counts: Counter[str] = Counter()
        for e in self.entries:
            counts[e.type] += 1
            if e.type == "system" and e.subtype:
                counts[f"system:{e.subtype}"] += 1
        return counts

    @cached_property
    def session_id(self) -> str | None:
        return next((e.session_id for e in self.entries if e.session_id), None)

    # ---- messages, usage ------------------------------------------------------------------

    @cached_property
    def messages(self) -> list[Message]:
        """User and assistant messages in order; assistant lines grouped by ``message.id``."""
        out: list[Message] = []
        by_key: dict[str, Message] = {}
        for e in self.entries:
            if e.type not in ("user", "assistant") or e.role is None:
                continue
            key = f"{e.message_id}:{e.request_id}" if e.message_id else f"line:{e.line}"
            msg = by_key.get(key)
            if msg is None:
                msg = by_key[key] = Message(key=key, role=e.role, entries=[e])
                out.append(msg)
            else:
                msg.entries.append(e)
        return out

    @cached_property
    def usage(self) -> Usage:
        """Usage totals, each (``message.id``, ``requestId``) pair counted once (its last line,
        which carries the final output token count)."""
        per_reply: dict[tuple[str, str | None], Usage] = {}
        for e in self.entries:
            if e.usage is not None and e.message_id:
                per_reply[(e.message_id, e.request_id)] = e.usage
        total = Usage()
        for u in per_reply.values():
            total = total + u
        return total

    # ---- tool calls -----------------------------------------------------------------------

    @cached_property
    def tool_calls(self) -> list[ToolCall]:
        """Every tool call in order, each paired with its result when it came back."""
        calls: list[ToolCall] = []
        by_id: dict[str, ToolCall] = {}
        for e in self.entries:
            for b in e.blocks:
                if isinstance(b, ToolUseBlock):
                    call = ToolCall(b.id, b.name, b.input, e.line, e.message_id, e.is_sidechain)
                    calls.append(call)
                    by_id[b.id] = call
                elif isinstance(b, ToolResultBlock):
                    target = by_id.get(b.tool_use_id)
                    if target is not None and target.result is None:
                        target.result = ToolResult(b.tool_use_id, b.text, b.is_error, e.line)
        return calls

    def task_calls(self) -> list[TaskCall]:
        """Calls of the subagent tool (``Task`` or ``Agent``), linked to the subagent's id."""
        agents: dict[str, str] = {}
        for e in self.entries:
            if e.type != "progress":
                continue
            data = e.raw.get("data")
            parent = e.raw.get("parentToolUseID")
            if isinstance(data, dict) and data.get("type") == "agent_progress":
                agent_id = data.get("agentId")
                if isinstance(parent, str) and isinstance(agent_id, str):
                    agents.setdefault(parent, agent_id)
        out = []
        for call in self.tool_calls:
            if call.name not in SUBAGENT_TOOLS:
                continue
            inp = call.input

            def text(key: str, inp: dict[str, Any] = inp) -> str:
                value = inp.get(key)
                return value if isinstance(value, str) else ""

            agent_id = agents.get(call.id)
            if agent_id is None and call.result is not None:
                found = re.search(r"agentId:\s*([A-Za-z0-9_-]+)", call.result.text)
                agent_id = found.group(1) if found else None
            out.append(
                TaskCall(
                    call=call,
                    description=text("description"),
                    prompt=text("prompt"),
                    subagent_type=text("subagent_type") or "general-purpose",
                    model=text("model") or None,
                    agent_id=agent_id,
                )
            )
        return out

    # ---- what the human said ----------------------------------------------------------------

    def user_prompts(self, *, include_sidechain: bool = False) -> list[UserPrompt]:
        """What the human typed, in order: prompts and slash commands.

        Excluded: tool results, Claude Code's meta lines (``isMeta``), compact summaries, command
        output, background-task notifications and interruption markers.
        """
        out = []
        for e in self.entries:
            if e.type != "user" or e.is_meta or e.is_compact_summary:
                continue
            if e.is_sidechain and not include_sidechain:
                continue
            if any(isinstance(b, ToolResultBlock) for b in e.blocks):
                continue
            text = e.text
            kind = classify_user_text(text)
            if kind in ("prompt", "command"):
                out.append(UserPrompt(e.line, text, kind, e.timestamp))
        return out

    @cached_property
    def compactions(self) -> list[Compaction]:
        """Every compaction with the summary that followed it."""
        out: list[Compaction] = []
        pending: dict[str, Any] | None = None
        for e in self.entries:
            if e.type == "system" and e.subtype == "compact_boundary":
                if pending is not None:
                    out.append(Compaction(**pending))
                meta = e.raw.get("compactMetadata")
                meta = meta if isinstance(meta, dict) else {}
                pre, trigger = meta.get("preTokens"), meta.get("trigger")
                pending = {
                    "line": e.line,
                    "trigger": trigger if isinstance(trigger, str) else None,
                    "pre_tokens": pre if isinstance(pre, int) else None,
                }
            elif e.type == "user" and e.is_compact_summary:
                if pending is None:
                    pending = {"line": e.line, "trigger": None, "pre_tokens": None}
                out.append(Compaction(**pending, summary_line=e.line, summary=e.text))
                pending = None
        if pending is not None:
            out.append(Compaction(**pending))
        return out

    # ---- views ------------------------------------------------------------------------------

    def upto(self, line: int) -> Transcript:
        """The transcript as it was when line ``line`` had just been written."""
        return Transcript(
            path=self.path,
            entries=[e for e in self.entries if e.line <= line],
            n_lines=min(self.n_lines, line),
            skipped=Counter(reason for n, reason in self.skipped_lines if n <= line),
            skipped_lines=[(n, r) for n, r in self.skipped_lines if n <= line],
        )

    def subagent_transcripts(self) -> list[Path]:
        """The subagents' own transcripts stored next to this one."""
        return subagent_transcripts(self.path) if self.path else []


# --------------------------------------------------------------------------------------------
# Parsing


def _flatten_result(content: Any) -> str:
    """Text of a tool_result's content (a string, or a list of text/image blocks)."""
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        parts = []
        for item in content:
            if isinstance(item, dict):
                if item.get("type") == "text" and isinstance(item.get("text"), str):
                    parts.append(item["text"])
                else:
                    parts.append(f"[{item.get('type', 'block')}]")
            elif isinstance(item, str):
                parts.append(item)
        return "\n".join(parts)
    return "" if content is None else str(content)


def _parse_blocks(content: Any, counts: Counter[str]) -> tuple[Block, ...] | None:
    """Blocks of ``message.content``; None when content has the wrong type."""
    if isinstance(content, str):
        return (TextBlock(content),)
    if not isinstance(content, list):
        return None
    blocks: list[Block] = []
    for raw in content:
        kind = raw.get("type") if isinstance(raw, dict) else None
        if not isinstance(kind, str):
            counts["bad content block"] += 1
            continue
        if kind == "text":
            text = raw.get("text")
            if isinstance(text, str):
                blocks.append(TextBlock(text))
            else:
                counts["bad content block"] += 1
        elif kind in ("thinking", "redacted_thinking"):
            text = raw.get("thinking")
            blocks.append(ThinkingBlock(text if isinstance(text, str) else ""))
        elif kind == "tool_use":
            tid, name, inp = raw.get("id"), raw.get("name"), raw.get("input")
            if isinstance(tid, str) and isinstance(name, str) and isinstance(inp, dict):
                blocks.append(ToolUseBlock(tid, name, inp))
            else:
                counts["bad content block"] += 1
        elif kind == "tool_result":
            tid = raw.get("tool_use_id")
            if isinstance(tid, str):
                text = _flatten_result(raw.get("content"))
                blocks.append(ToolResultBlock(tid, text, raw.get("is_error") is True))
            else:
                counts["bad content block"] += 1
        else:
            blocks.append(OtherBlock(kind))
    return tuple(blocks)


def _str(value: Any) -> str | None:
    return value if isinstance(value, str) else None


def _entry(line: int, obj: dict[str, Any], nbytes: int, counts: Counter[str]) -> Entry | str:
    """An Entry for one decoded line, or the reason it is skipped."""
    kind = obj.get("type")
    if not isinstance(kind, str):
        return "no type"
    if kind not in KNOWN_LINE_TYPES:
        return f"unknown type {kind!r}"
    common: dict[str, Any] = {
        "line": line,
        "type": kind,
        "nbytes": nbytes,
        "raw": obj,
        "subtype": _str(obj.get("subtype")),
        "uuid": _str(obj.get("uuid")),
        "session_id": _str(obj.get("sessionId")),
        "timestamp": _str(obj.get("timestamp")),
        "is_sidechain": obj.get("isSidechain") is True,
        "is_meta": obj.get("isMeta") is True,
        "is_compact_summary": obj.get("isCompactSummary") is True,
        "agent_id": _str(obj.get("agentId")),
    }
    if kind in ("user", "assistant"):
        message = obj.get("message")
        if not isinstance(message, dict):
            return f"{kind} line without a message object"
        role = message.get("role")
        if role not in ("user", "assistant"):
            return f"{kind} line with role {role!r}"
        blocks = _parse_blocks(message.get("content"), counts)
        if blocks is None:
            return f"{kind} message content is neither text nor a list"
        common.update(
            role=role,
            message_id=_str(message.get("id")),
            request_id=_str(obj.get("requestId")),
            content_is_text=isinstance(message.get("content"), str),
            blocks=blocks,
            usage=Usage.from_dict(message.get("usage")) if role == "assistant" else None,
        )
    return Entry(**common)


def _iter_raw_lines(f: BinaryIO, max_line_bytes: int) -> Iterator[tuple[int, bytes | None]]:
    """(line number, bytes) for each line; bytes is None for a line over ``max_line_bytes``,
    which is read past in bounded pieces rather than held in memory."""
    number = 0
    while True:
        chunk = f.readline(max_line_bytes + 1)
        if not chunk:
            return
        number += 1
        if len(chunk) > max_line_bytes and not chunk.endswith(b"\n"):
            while True:
                rest = f.readline(1 << 20)
                if not rest or rest.endswith(b"\n"):
                    break
            yield number, None
            continue
        yield number, chunk


def parse_lines(lines: Iterable[tuple[int, bytes | None]], path: Path | None = None) -> Transcript:
    """A Transcript from (line number, raw bytes or None if too large) pairs."""
    entries: list[Entry] = []
    skipped: Counter[str] = Counter()
    skipped_lines: list[tuple[int, str]] = []
    n_lines = 0

    def skip(number: int, reason: str) -> None:
        skipped[reason] += 1
        skipped_lines.append((number, reason))

    for number, raw in lines:
        n_lines = number
        if raw is None:
            skip(number, "line too large")
            continue
        if not raw.strip():
            continue  # blank lines (e.g. a trailing newline) are not content
        try:
            obj = json.loads(raw)
        except (ValueError, RecursionError):
            skip(number, "malformed JSON")
            continue
        if not isinstance(obj, dict):
            skip(number, "not a JSON object")
            continue
        block_counts: Counter[str] = Counter()
        result = _entry(number, obj, len(raw), block_counts)
        for reason, n in block_counts.items():
            skipped[reason] += n
            skipped_lines.extend([(number, reason)] * n)
        if isinstance(result, str):
            skip(number, result)
        else:
            entries.append(result)
    return Transcript(path, entries, n_lines, skipped, skipped_lines)


def parse_transcript(
    path: str | os.PathLike[str], *, max_line_bytes: int = DEFAULT_MAX_LINE_BYTES
) -> Transcript:
    """Parse a Claude Code transcript file.

    Malformed lines (truncated JSON, wrong types, lines over ``max_line_bytes``) and lines of
    unknown types are skipped and counted in ``Transcript.skipped``; only an unreadable file
    raises (``OSError``).
    """
    p = Path(path)
    with p.open("rb") as f:
        return parse_lines(_iter_raw_lines(f, max_line_bytes), p)


# --------------------------------------------------------------------------------------------
# Locating transcripts


def subagent_transcripts(path: str | os.PathLike[str]) -> list[Path]:
    """``<session>/subagents/agent-*.jsonl`` next to the session transcript ``<session>.jsonl``."""
    p = Path(path)
    folder = p.with_suffix("") / "subagents"
    return sorted(folder.glob("agent-*.jsonl")) if folder.is_dir() else []


def _last_line(path: Path, max_bytes: int = 4 << 20) -> bytes | None:
    """The last non-empty line of a file, read from its end (at most ``max_bytes``)."""
    with path.open("rb") as f:
        f.seek(0, os.SEEK_END)
        end = f.tell()
        pos, buf = end, b""
        while pos > 0 and end - pos < max_bytes:
            step = min(65536, pos)
            pos -= step
            f.seek(pos)
            buf = f.read(step) + buf
            stripped = buf.rstrip(b"\r\n")
            cut = stripped.rfind(b"\n")
            if cut >= 0:
                return stripped[cut + 1 :] or None
        if pos > 0:
            return None  # a last line longer than max_bytes: treat as unreadable
        return buf.rstrip(b"\r\n") or None


def _last_record(path: Path) -> dict[str, Any] | None:
    try:
        # Only regular files: opening a FIFO blocks until a writer comes (the hook would hang).
        if not path.is_file():
            return None
        raw = _last_line(path)
        obj = json.loads(raw) if raw else None
    except (OSError, ValueError, RecursionError):
        return None
    return obj if isinstance(obj, dict) else None


def _age_seconds(record: dict[str, Any], now: datetime) -> float | None:
    stamp = record.get("timestamp")
    if not isinstance(stamp, str):
        return None
    try:
        when = datetime.fromisoformat(stamp.replace("Z", "+00:00"))
    except ValueError:
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    return (now - when).total_seconds()


def find_current_transcript(
    transcript_path: str | os.PathLike[str],
    session_id: str | None,
    *,
    stale_after: float = 30.0,
    now: datetime | None = None,
) -> Path:
    """The transcript to read for ``session_id``, as cc-sessions locates it.

    Claude Code sometimes hands hooks a stale ``transcript_path`` (e.g. after a resume forks the
    session file). If the given file's last line is older than ``stale_after`` seconds, the five
    newest ``*.jsonl`` files in the same folder are checked and the first whose last line has the
    same ``sessionId`` and is fresh is used. If the given file does not exist,
    ``<session_id>.jsonl`` in the same folder is tried. Otherwise the given path is returned
    unchanged. Only regular files are ever opened (a FIFO would block).
    """
    path = Path(transcript_path)
    now = now or datetime.now(UTC)
    if not path.exists():
        if session_id:
            sibling = path.parent / f"{session_id}.jsonl"
            if sibling.is_file():
                return sibling
        return path
    last = _last_record(path)
    age = _age_seconds(last, now) if last else None
    if age is None or age <= stale_after:
        return path
    try:
        candidates = sorted(
            path.parent.glob("*.jsonl"), key=lambda p: p.stat().st_mtime, reverse=True
        )[:5]
    except OSError:
        return path
    for candidate in candidates:
        record = _last_record(candidate)
        if not record or record.get("sessionId") != session_id:
            continue
        candidate_age = _age_seconds(record, now)
        if candidate_age is not None and candidate_age <= stale_after:
            return candidate
    return path
