"""Condense a Claude Code session for a subagent: what it needs for its task, within a budget.

A subagent started with the ``Task``/``Agent`` tool sees only its prompt. The common remedy, the
cc-sessions PreToolUse hook, hands it the raw transcript since the first edit, which late in a
session is hundreds of thousands of tokens. :func:`condense` instead keeps, verbatim, what carries
intent and state and compresses what is bulky and mostly noise:

========================  ==================================================================
kept verbatim             every user prompt (the intent), the assistant's text, every edit
                          and write (as a condensed unified diff), the latest todo list, the
                          latest compaction summary
compressed                large tool results: a one-line reference (tool, path or command,
                          size) plus the lines most relevant to the subagent's task (BM25)
dropped (and counted)     thinking blocks and signatures, progress lines, ``<system-reminder>``
                          blocks, duplicate reads and results, failed edits
========================  ==================================================================

The budget is allocated by priority: header and user prompts, then edits, then assistant text
(most recent first), then relevant tool-result lines; a tier's unused share flows on to the
next. The output is a list of chunk texts, each at most ``Budget.chunk_tokens`` and together at
most ``Budget.total_tokens`` cl100k tokens, the first starting with a header that says what was
left out and where the full transcript is.

The module also implements the cc-sessions baseline (:func:`cc_sessions_chunks`) for comparison.
"""

from __future__ import annotations

import bisect
import difflib
import json
import os
import re
from collections import Counter
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from context.transcripts import (
    EDIT_TOOLS,
    SUBAGENT_TOOLS,
    TaskCall,
    ThinkingBlock,
    ToolCall,
    ToolResultBlock,
    Transcript,
)

__all__ = [
    "CC_SESSIONS_MAX_BYTES",
    "CC_SESSIONS_MAX_TOKENS_PER_BATCH",
    "Budget",
    "Condensed",
    "SubagentTask",
    "cc_sessions_chunks",
    "cc_sessions_entries",
    "cc_sessions_legacy_batches",
    "cc_sessions_subagent_type",
    "condense",
    "split_by_bytes",
    "strip_system_reminders",
]

DEFAULT_TOTAL_TOKENS = 18_000
DEFAULT_CHUNK_TOKENS = 18_000

_REMINDER = re.compile(r"\s*<system-reminder>.*?</system-reminder>\s*", re.S)
# Read results prefix every line with its number and an arrow: "    12→code".
_READ_PREFIX = re.compile(r"^\s*\d+→")


def strip_system_reminders(text: str) -> tuple[str, int]:
    """``text`` without Claude Code's ``<system-reminder>`` blocks, and how many were removed."""
    if "<system-reminder>" not in text:
        return text, 0
    stripped, n = _REMINDER.subn("\n", text)
    return stripped.strip(), n


# --------------------------------------------------------------------------------------------
# Inputs and outputs


@dataclass(frozen=True, slots=True)
class SubagentTask:
    """What the subagent is asked to do: the ``Task``/``Agent`` call's input."""

    description: str = ""
    prompt: str = ""
    subagent_type: str = "general-purpose"
    tool_use_id: str | None = None

    @classmethod
    def from_tool_input(
        cls, tool_input: Mapping[str, Any] | None, tool_use_id: str | None = None
    ) -> SubagentTask:
        """From a hook's ``tool_input`` (fields of the wrong type are ignored)."""
        data = tool_input if isinstance(tool_input, Mapping) else {}

        def text(key: str) -> str:
            value = data.get(key)
            return value if isinstance(value, str) else ""

        return cls(
            description=text("description"),
            prompt=text("prompt"),
            subagent_type=text("subagent_type") or "general-purpose",
            tool_use_id=tool_use_id,
        )

    @classmethod
    def from_task_call(cls, call: TaskCall) -> SubagentTask:
        return cls(call.description, call.prompt, call.subagent_type, call.id)

    @property
    def query(self) -> str:
        """Text the transcript's tool results are ranked against."""
        return f"{self.description}\n{self.prompt}".strip()


@dataclass(frozen=True, slots=True)
class Budget:
    """Token budget of what a subagent is handed (cl100k_base unless ``encoding`` says)."""

    total_tokens: int = DEFAULT_TOTAL_TOKENS
    chunk_tokens: int = DEFAULT_CHUNK_TOKENS
    encoding: str | None = None

    def __post_init__(self) -> None:
        if self.total_tokens < 200:
            raise ValueError(
                f"Budget.total_tokens must be at least 200 (got {self.total_tokens}): the "
                "header alone needs about 150 tokens"
            )
        if self.chunk_tokens < 100:
            raise ValueError(f"Budget.chunk_tokens must be at least 100 (got {self.chunk_tokens})")


@dataclass
class Condensed:
    """What :func:`condense` hands a subagent, with an account of what it kept and left out."""

    chunks: list[str]
    chunk_tokens: list[int]
    text: str  #: the whole condensed context before it was cut into chunks
    position: int  #: last transcript line considered
    kept: Counter[str] = field(default_factory=Counter)
    omitted: Counter[str] = field(default_factory=Counter)
    prompts_total: int = 0
    prompts_verbatim: int = 0
    edited_files: list[str] = field(default_factory=list)

    @property
    def total_tokens(self) -> int:
        return sum(self.chunk_tokens)


# --------------------------------------------------------------------------------------------
# Token helpers (context.tokens does the counting; these add cutting in the middle)


def _tokens(encoding: str | None) -> tuple[Callable[[str], int], Callable[[str, int], str]]:
    from context.tokens import count_tokens, truncate_to_tokens

    return (
        lambda text: count_tokens(text, encoding),
        lambda text, n: truncate_to_tokens(text, n, encoding),
    )


def _cut_middle(text: str, max_tokens: int, count: Callable[[str], int], note: str) -> str:
    """``text`` cut to about ``max_tokens`` by dropping its middle (head and tail carry the
    framing and the conclusion), with a marker saying what was cut."""
    if count(text) <= max_tokens:
        return text
    marker_budget = count(note) + 12
    room = max(0, max_tokens - marker_budget)
    lines = text.splitlines()
    head: list[str] = []
    tail: list[str] = []
    used = 0
    i, j = 0, len(lines) - 1
    take_head = True
    while i <= j:
        line = lines[i] if take_head else lines[j]
        n = count(line) + 1
        if used + n > room:
            if take_head and not head and room > 0:  # one enormous first line: cut inside it
                from context.tokens import truncate_to_tokens

                head.append(truncate_to_tokens(line, max(0, room - used - 1)))
            break
        used += n
        if take_head:
            head.append(line)
            i += 1
        else:
            tail.insert(0, line)
            j -= 1
        # Two thirds head, one third tail.
        take_head = len(head) < 2 * (len(tail) + 1)
    dropped = max(0, j - i + 1)
    out = "\n".join(head) + f"\n[… {dropped} lines cut; {note}]\n" + "\n".join(tail)
    while count(out) > max_tokens and (head or tail):
        (head if len(head) > len(tail) else tail).pop()
        out = "\n".join(head) + f"\n[… lines cut; {note}]\n" + "\n".join(tail)
    return out if count(out) <= max_tokens else ""


# --------------------------------------------------------------------------------------------
# Items


@dataclass(slots=True)
class _Item:
    kind: str  # prompt | file | edit | todos | summary | assistant | tool
    line: int
    text: str
    tokens: int = 0
    score: float = 0.0
    group: str = ""  # file path for file/edit items


def _short(text: str, limit: int = 120) -> str:
    text = " ".join(text.split())
    return text if len(text) <= limit else text[: limit - 1] + "…"


def _rel(path: str, cwd: str | None) -> str:
    if cwd and path.startswith(cwd.rstrip("/") + "/"):
        return path[len(cwd.rstrip("/")) + 1 :]
    return path


def _diff(old: str, new: str) -> list[str]:
    """Unified diff of an edit's old and new strings, one line of context, no file headers."""
    lines = list(difflib.unified_diff(old.splitlines(), new.splitlines(), n=1, lineterm=""))
    return [ln for ln in lines[2:]]  # drop the ---/+++ headers


def _edit_text(call: ToolCall, cwd: str | None) -> tuple[str, int, int]:
    """Rendered change of one edit call, and lines added/removed."""
    inp = call.input
    out: list[str] = []
    if call.name == "Write":
        content = inp.get("content") if isinstance(inp.get("content"), str) else ""
        lines = content.splitlines()
        out.append(f"[L{call.line}] Write: whole file, {len(lines)} lines")
        out.append("```")
        out.extend(lines)
        out.append("```")
        return "\n".join(out), len(lines), 0
    if call.name == "NotebookEdit":
        src = inp.get("new_source") if isinstance(inp.get("new_source"), str) else ""
        mode = inp.get("edit_mode", "replace")
        out.append(f"[L{call.line}] NotebookEdit ({mode}) cell {inp.get('cell_id', '?')}")
        out.append("```")
        out.extend(src.splitlines())
        out.append("```")
        return "\n".join(out), len(src.splitlines()), 0
    edits = inp.get("edits") if call.name == "MultiEdit" else [inp]
    added = removed = 0
    flag = " (replace_all)" if inp.get("replace_all") is True else ""
    out.append(f"[L{call.line}] {call.name}{flag}")
    out.append("```diff")
    for edit in edits if isinstance(edits, list) else []:
        if not isinstance(edit, dict):
            continue
        old = edit.get("old_string") if isinstance(edit.get("old_string"), str) else ""
        new = edit.get("new_string") if isinstance(edit.get("new_string"), str) else ""
        for ln in _diff(old, new):
            if ln.startswith("+"):
                added += 1
            elif ln.startswith("-"):
                removed += 1
            out.append(ln)
    out.append("```")
    return "\n".join(out), added, removed


def _tool_ref(call: ToolCall, cwd: str | None) -> str:
    """One line naming a tool call: tool, path or command, size of its result."""
    inp = call.input
    name = call.name
    if call.file_path:
        what = _rel(call.file_path, cwd)
        if name == "Read" and (inp.get("offset") or inp.get("limit")):
            what += f" (offset {inp.get('offset', 0)}, limit {inp.get('limit', '-')})"
    elif name == "Bash":
        what = "$ " + _short(str(inp.get("command", "")), 140)
    elif name in ("Grep", "Glob"):
        where = inp.get("path")
        what = repr(inp.get("pattern", ""))
        if isinstance(where, str):
            what += " in " + _rel(where, cwd)
    elif name in SUBAGENT_TOOLS:
        kind = inp.get("subagent_type", "general-purpose")
        what = f"({kind}) {_short(str(inp.get('description', '')))}"
    elif name == "WebFetch":
        what = str(inp.get("url", ""))
    elif name == "WebSearch":
        what = repr(inp.get("query", ""))
    else:
        what = _short(json.dumps(inp, ensure_ascii=False), 120)
    result = call.result
    if result is None:
        size = "no result yet"
    else:
        n_lines = result.text.count("\n") + 1 if result.text else 0
        size = f"{n_lines} lines, ~{len(result.text) // 4} tokens"
        if result.is_error:
            size = "error, " + size
    return f"[L{call.line}] {name} {what} → {size}"


# --------------------------------------------------------------------------------------------
# Condensing


def _select_position(transcript: Transcript, task: SubagentTask, upto_line: int | None) -> int:
    if upto_line is not None:
        return upto_line
    if task.tool_use_id:
        for call in transcript.tool_calls:
            if call.id == task.tool_use_id:
                return call.line
    return transcript.n_lines


def _query_terms(query: str) -> list[str]:
    """Distinctive lower-case terms of the query (a cheap pre-filter before BM25)."""
    from context.relevance import tokenize

    return sorted({t for t in tokenize(query) if len(t) >= 3})


def _matching_lines(text: str, terms: Sequence[str], is_read: bool) -> list[tuple[int, str]]:
    """(1-based line number, line) of the lines of ``text`` containing any of ``terms``.

    Searches the lower-cased text once per term with ``str.find`` (C speed) instead of running
    a regex over every line: tool results run to tens of thousands of lines.
    """
    low = text.lower()
    starts = [0]
    find = text.find
    pos = find("\n")
    while pos != -1:
        starts.append(pos + 1)
        pos = find("\n", pos + 1)
    hits: set[int] = set()
    for term in terms:
        i = low.find(term)
        while i != -1:
            k = bisect.bisect_right(starts, i) - 1
            hits.add(k)
            end = starts[k + 1] if k + 1 < len(starts) else len(low)
            i = low.find(term, end)
    out = []
    for k in sorted(hits):
        end = starts[k + 1] - 1 if k + 1 < len(starts) else len(text)
        line = text[starts[k] : end]
        body = _READ_PREFIX.sub("", line, count=1) if is_read else line
        if len(body.strip()) >= 4:
            out.append((k + 1, line))
    return out


def _rank_tool_items(
    calls: Sequence[ToolCall],
    query: str,
    cwd: str | None,
    max_lines_per_call: int,
) -> list[_Item]:
    """A tool item per call: its reference line and, for results sharing terms with the query,
    the most relevant lines of the result."""
    terms = _query_terms(query)
    passages: list[str] = []
    owners: list[tuple[int, int, str]] = []  # (call index, line number, line)
    small_full: dict[int, str] = {}
    for ci, call in enumerate(calls):
        assert call.result is not None
        text, _ = strip_system_reminders(call.result.text)
        if len(text) <= 400 and text.strip():
            small_full[ci] = text.strip()
        for number, line in _matching_lines(text, terms, call.name == "Read"):
            passages.append(line[:1000])
            owners.append((ci, number, line))
    scores: list[float] = []
    if passages:
        from context.relevance import rank_passages

        scores = rank_passages(query, passages)
    per_call: dict[int, list[tuple[float, int, str]]] = {}
    for (ci, number, line), score in zip(owners, scores, strict=True):
        if score > 0:
            per_call.setdefault(ci, []).append((score, number, line))
    items = []
    for ci, call in enumerate(calls):
        ref = _tool_ref(call, cwd)
        hits = sorted(per_call.get(ci, []), reverse=True)
        best = hits[0][0] if hits else 0.0
        if call.name in SUBAGENT_TOOLS:
            best += 0.5  # an earlier subagent's report is dense, task-level context
        body = ""
        if ci in small_full:
            body = "\n".join("    " + ln for ln in small_full[ci].splitlines())
        elif hits:
            keep = sorted(h for h in hits[:max_lines_per_call] if h[0] >= 0.25 * hits[0][0])
            keep.sort(key=lambda h: h[1])
            body = "\n".join(f"    {n}: {_short(line, 300)}" for _, n, line in keep)
            ref += " — relevant lines:"
        items.append(_Item("tool", call.line, ref + ("\n" + body if body else ""), score=best))
    return items


def condense(
    transcript: Transcript,
    task: SubagentTask | None = None,
    budget: Budget | None = None,
    *,
    upto_line: int | None = None,
    transcript_path: str | os.PathLike[str] | None = None,
) -> Condensed:
    """Condense ``transcript`` for a subagent doing ``task``, within ``budget``.

    Args:
        transcript: the parent session's parsed transcript.
        task: the subagent's task (the Task/Agent call's input). Its ``tool_use_id``, when found
            in the transcript, marks the position: nothing after that call is used.
        budget: total and per-chunk token limits (default 18,000 and 18,000).
        upto_line: consider only lines up to this one (overrides the position from the task).
        transcript_path: path named in the header (default: ``transcript.path``).

    Returns:
        The chunks (each within ``budget.chunk_tokens``, together within
        ``budget.total_tokens``), and counts of what was kept and omitted.
    """
    task = task or SubagentTask()
    budget = budget or Budget()
    count, _truncate = _tokens(budget.encoding)
    position = _select_position(transcript, task, upto_line)
    view = transcript.upto(position) if position < transcript.n_lines else transcript
    path = transcript_path or transcript.path
    cwd = next((e.raw.get("cwd") for e in view.entries if isinstance(e.raw.get("cwd"), str)), None)

    omitted: Counter[str] = Counter()
    kept: Counter[str] = Counter()
    omitted["progress lines"] = view.line_types.get("progress", 0)
    omitted["other lines (system, snapshots, queue)"] = sum(
        n
        for t, n in view.line_types.items()
        if t in ("system", "file-history-snapshot", "queue-operation", "summary", "custom-title")
    )
    for reason, n in view.skipped.items():
        omitted[f"unreadable lines ({reason})"] += n

    # ---- gather ---------------------------------------------------------------------------
    prompts = view.user_prompts()
    prompt_items = []
    for p in prompts:
        text, n = strip_system_reminders(p.text)
        omitted["system reminders"] += n
        prompt_items.append(_Item("prompt", p.line, text))

    assistant_items: list[_Item] = []
    seen_text: dict[str, int] = {}
    for e in view.entries:
        if e.is_sidechain or e.role != "assistant":
            continue
        for b in e.blocks:
            if isinstance(b, ThinkingBlock):
                omitted["thinking blocks"] += 1
            elif b.type == "text":
                text, n = strip_system_reminders(b.text)  # type: ignore[union-attr]
                omitted["system reminders"] += n
                if not text.strip():
                    continue
                if text in seen_text:  # exact duplicate: keep the latest
                    assistant_items[seen_text[text]].text = ""
                    omitted["duplicate assistant texts"] += 1
                seen_text[text] = len(assistant_items)
                assistant_items.append(_Item("assistant", e.line, text))
    assistant_items = [i for i in assistant_items if i.text]
    for e in view.entries:
        if e.type == "user" and not e.is_sidechain:
            for b in e.blocks:
                if isinstance(b, ToolResultBlock):
                    omitted["system reminders"] += b.text.count("<system-reminder>")

    calls = [c for c in view.tool_calls if not c.is_sidechain and c.id != task.tool_use_id]
    # File edits, grouped by file (latest state of every file touched).
    files: dict[str, list[tuple[ToolCall, str, int, int]]] = {}
    for c in calls:
        if c.name not in EDIT_TOOLS or not c.file_path:
            continue
        if c.result is not None and c.result.is_error:
            omitted["failed edits"] += 1
            continue
        text, added, removed = _edit_text(c, cwd)
        files.setdefault(c.file_path, []).append((c, text, added, removed))
    edited_files = sorted(files, key=lambda f: files[f][-1][0].line, reverse=True)

    latest_todos = next((c for c in reversed(calls) if c.name == "TodoWrite"), None)
    compaction = next((c for c in reversed(view.compactions) if c.summary), None)

    # Tool results other than edits: deduplicate (same file read twice -> latest; same text).
    tool_calls: list[ToolCall] = []
    seen_reads: set[tuple[str, str]] = set()
    seen_results: set[str] = set()
    for c in reversed(calls):
        if c.name in EDIT_TOOLS or c.name == "TodoWrite" or c.result is None:
            continue
        if c.name == "Read" and c.file_path:
            key = (c.file_path, f"{c.input.get('offset')}:{c.input.get('limit')}")
            if key in seen_reads:
                omitted["duplicate reads"] += 1
                continue
            seen_reads.add(key)
        if len(c.result.text) > 200:
            if c.result.text in seen_results:
                omitted["duplicate tool results"] += 1
                continue
            seen_results.add(c.result.text)
        tool_calls.append(c)
    tool_calls.reverse()

    # ---- budget ---------------------------------------------------------------------------
    header_reserve = 320 + 12 * len(omitted)
    available = budget.total_tokens - header_reserve - 24  # margin for joins and chunk seams
    n_parts_guess = max(1, -(-budget.total_tokens // budget.chunk_tokens))
    available -= 24 * (n_parts_guess - 1)

    for item in prompt_items:
        item.tokens = count(item.text) + 8
    prompts_tokens = sum(i.tokens for i in prompt_items)
    prompts_verbatim = len(prompt_items)
    if prompts_tokens > available and prompt_items:
        # Keep the latest prompt whole, truncate the older ones evenly (with a marker).
        latest = prompt_items[-1]
        if latest.tokens > available // 2 and len(prompt_items) > 1:
            cap_latest = max(available // 2, available - 40 * (len(prompt_items) - 1))
        else:
            cap_latest = available
        if latest.tokens > cap_latest:
            latest.text = _cut_middle(
                latest.text, cap_latest - 8, count, f"full prompt at transcript line {latest.line}"
            )
            latest.tokens = count(latest.text) + 8
            prompts_verbatim -= 1
        older = prompt_items[:-1]
        share = max(0, (available - latest.tokens) // max(1, len(older)))
        for item in older:
            if item.tokens > share:
                note = f"truncated; full prompt at transcript line {item.line}"
                item.text = _truncate(item.text, max(0, share - 30)) + f" [… {note}]"
                item.tokens = count(item.text) + 8
                prompts_verbatim -= 1
        prompts_tokens = sum(i.tokens for i in prompt_items)
    kept["user prompts"] = len(prompt_items)

    remaining = max(0, available - prompts_tokens)

    # Every edited file gets its header line, whatever the budget (the edits' minimum).
    file_items: list[_Item] = []
    edit_items: list[_Item] = []
    for f in edited_files:
        changes = files[f]
        writes = sum(1 for c, *_ in changes if c.name == "Write")
        edits = len(changes) - writes
        added = sum(a for *_, a, _ in changes)
        removed = sum(r for *_, r in changes)
        verbs = ", ".join(
            part
            for part in (
                f"written {writes}×" if writes else "",
                f"edited {edits}×" if edits else "",
            )
            if part
        )
        lines = ", ".join(f"L{c.line}" for c, *_ in changes[-4:])
        header = f"### {_rel(f, cwd)} — {verbs} (+{added} −{removed} lines) [{lines}]"
        file_items.append(_Item("file", changes[-1][0].line, header, count(header) + 2, group=f))
        for c, text, _, _ in changes:
            edit_items.append(_Item("edit", c.line, text, group=f))
    files_tokens = sum(i.tokens for i in file_items)
    remaining = max(0, remaining - files_tokens)

    todos_item: _Item | None = None
    if latest_todos is not None:
        todos = latest_todos.input.get("todos")
        if isinstance(todos, list):
            rows = [
                f"- [{t.get('status', '?')}] {t.get('content', '')}"
                for t in todos
                if isinstance(t, dict)
            ]
            if rows:
                text = f"[L{latest_todos.line}] latest TodoWrite:\n" + "\n".join(rows)
                todos_item = _Item("todos", latest_todos.line, text, count(text) + 4)

    summary_item: _Item | None = None
    if compaction is not None:
        summary_item = _Item(
            "summary", compaction.summary_line or compaction.line, compaction.summary
        )

    tool_items = _rank_tool_items(
        tool_calls, task.query or (prompts[-1].text if prompts else ""), cwd, 8
    )

    # Tier caps (shares of what is left after prompts and file headers); unused share flows on.
    caps = {"edit": 0.45, "summary": 0.15, "assistant": 0.25, "tool": 0.15}
    per_item_cap = max(200, int(remaining * 0.12))

    def fit(item: _Item, cap: int) -> _Item:
        """Count ``item``; cut its middle when it alone exceeds ``cap``."""
        if not item.tokens:
            item.tokens = count(item.text) + 4
        if item.tokens > cap:
            note = f"see transcript line {item.line}"
            item.text = _cut_middle(item.text, cap - 4, count, note)
            item.tokens = count(item.text) + 4 if item.text else 0
        return item

    queues: dict[str, list[_Item]] = {
        # preference order inside a tier
        "edit": sorted(edit_items, key=lambda i: i.line, reverse=True),
        "summary": [summary_item] if summary_item else [],
        "assistant": sorted(assistant_items, key=lambda i: i.line, reverse=True),
        "tool": sorted(tool_items, key=lambda i: (i.score, i.line), reverse=True),
    }
    if todos_item is not None:
        queues["edit"].insert(0, todos_item)
    for tier, queue in queues.items():
        if tier != "summary":
            for item in queue:
                fit(item, per_item_cap)
    chosen: dict[str, list[_Item]] = {k: [] for k in queues}

    def fill(tier: str, limit: int) -> int:
        """Take items of ``tier`` in preference order while they fit in ``limit``; an item
        that does not fit is passed over (a later pass with more room may take it)."""
        spent = 0
        passed: list[_Item] = []
        queue = queues[tier]
        while queue:
            item = queue.pop(0)
            room = limit - spent
            if tier == "summary" and item.tokens == 0:
                item.tokens = count(item.text) + 4
            if tier == "summary" and item.tokens > room >= 400:
                fit(item, room)  # the summary is worth having cut rather than not at all
            if item.text and 0 < item.tokens <= room:
                chosen[tier].append(item)
                spent += item.tokens
            else:
                passed.append(item)
        queue.extend(passed)
        return spent

    used = 0
    for tier, share in caps.items():
        used += fill(tier, int(remaining * share))
    for tier in ("edit", "assistant", "summary", "tool"):
        used += fill(tier, remaining - used)

    # ---- render, verify, shrink if needed --------------------------------------------------
    all_tool_calls = len([c for c in calls if c.name not in EDIT_TOOLS and c.name != "TodoWrite"])
    reads = sorted({_rel(c.file_path, cwd) for c in calls if c.name == "Read" and c.file_path})

    def account() -> tuple[Counter[str], Counter[str]]:
        """What is kept and what is omitted, by kind, for the current choice."""
        k = Counter(kept)
        k["files edited (all listed)"] = len(file_items)
        k["edit diffs"] = sum(1 for i in chosen["edit"] if i.kind == "edit")
        k["todo list"] = sum(1 for i in chosen["edit"] if i.kind == "todos")
        k["compaction summary"] = len(chosen["summary"])
        k["assistant texts"] = len(chosen["assistant"])
        k["tool results (reference + relevant lines)"] = len(chosen["tool"])
        o = Counter(omitted)
        o["edit diffs (file still listed)"] = len(edit_items) - k["edit diffs"]
        o["assistant texts"] = len(assistant_items) - k["assistant texts"]
        o["tool results"] = all_tool_calls - k["tool results (reference + relevant lines)"]
        o["compaction summary"] = int(summary_item is not None) - k["compaction summary"]
        return +k, +o

    def render() -> str:
        k, o = account()
        out = ["# Parent-session context (condensed by agentrt)"]
        if task.description or task.subagent_type:
            out.append(f"Task: {task.description or '-'} (subagent: {task.subagent_type})")
        where = f"{path}" if path else "(transcript path unknown)"
        out.append(
            f"Source: Claude Code transcript {where}, lines 1-{position} (JSONL, one object per "
            "line). [L123] cites its line 123; for anything left out, read those lines of the "
            "transcript (e.g. with the Read tool's offset/limit)."
        )
        out.append("Kept: " + ", ".join(f"{n} {what}" for what, n in k.items() if n) + ".")
        dropped = ", ".join(f"{n} {what}" for what, n in o.items() if n > 0)
        out.append(f"Omitted: {dropped or 'nothing'}.")
        out.append("")
        out.append("## What the user asked (every prompt, oldest first)")
        out.extend(f"[L{i.line}] {i.text}" for i in prompt_items)
        if file_items or chosen["edit"]:
            out.append("")
            out.append("## Files changed (most recently changed first; diffs oldest first)")
            todo = [i for i in chosen["edit"] if i.kind == "todos"]
            for fi in file_items:
                out.append(fi.text)
                diffs = sorted(
                    (i for i in chosen["edit"] if i.kind == "edit" and i.group == fi.group),
                    key=lambda i: i.line,
                )
                out.extend(d.text for d in diffs)
            if todo:
                out.append("")
                out.append("## Plan (latest todo list)")
                out.extend(t.text for t in todo)
        elif any(i.kind == "todos" for i in chosen["edit"]):
            out.append("")
            out.append("## Plan (latest todo list)")
            out.extend(t.text for t in chosen["edit"] if t.kind == "todos")
        if reads:
            out.append("")
            out.append("Files read: " + ", ".join(reads))
        if chosen["summary"]:
            s = chosen["summary"][0]
            out.append("")
            out.append(f"## Summary of the earlier conversation (written at compaction, L{s.line})")
            out.append(s.text)
        timeline = sorted(chosen["assistant"] + chosen["tool"], key=lambda i: i.line)
        if timeline:
            out.append("")
            out.append("## Conversation (assistant text and tool results, oldest first)")
            for i in timeline:
                out.append(f"[L{i.line}] assistant: {i.text}" if i.kind == "assistant" else i.text)
        return "\n".join(out) + "\n"

    def shrink_once() -> bool:
        """Drop the least valuable chosen item; False when nothing is left to drop."""
        if chosen["tool"]:
            chosen["tool"].pop()  # lowest score / oldest
        elif chosen["assistant"]:
            chosen["assistant"].remove(min(chosen["assistant"], key=lambda i: i.line))
        elif chosen["summary"]:
            chosen["summary"].pop()
        elif any(i.kind == "edit" for i in chosen["edit"]):
            chosen["edit"].remove(
                min((i for i in chosen["edit"] if i.kind == "edit"), key=lambda i: i.line)
            )
        elif chosen["edit"]:
            chosen["edit"].pop()
        else:
            return False
        return True

    text = render()
    while True:
        parts = _split(text, budget, count)
        counts = [count(p) for p in parts]
        if sum(counts) <= budget.total_tokens and all(c <= budget.chunk_tokens for c in counts):
            break
        if not shrink_once():
            # Only the header, prompts and file list are left: cut the text itself.
            text = _truncate(text, max(0, budget.total_tokens - 40 * len(parts) - 40))
            parts = _split(text, budget, count)
            counts = [count(p) for p in parts]
            break
        text = render()

    kept_final, omitted_final = account()
    return Condensed(
        chunks=parts,
        chunk_tokens=counts,
        text=text,
        position=position,
        kept=kept_final,
        omitted=omitted_final,
        prompts_total=len(prompts),
        prompts_verbatim=prompts_verbatim,
        edited_files=edited_files,
    )


def _split(text: str, budget: Budget, count: Callable[[str], int]) -> list[str]:
    """Cut ``text`` into chunks of at most ``budget.chunk_tokens`` tokens, continuation chunks
    labelled so a reader knows they belong together."""
    if count(text) <= budget.chunk_tokens:
        return [text]
    label_room = 24
    pieces = list(_chunks(text, budget.chunk_tokens - label_room, budget.encoding))
    n = len(pieces)
    return [
        p if k == 0 else f"(parent-session context, part {k + 1} of {n})\n{p}"
        for k, p in enumerate(pieces)
    ]


def _chunks(text: str, max_tokens: int, encoding: str | None) -> Iterator[str]:
    """Chunks of at most ``max_tokens`` at natural boundaries (``context.packer.chunks``)."""
    try:
        from context.packer import chunks
    except ImportError:  # packer not there yet: a line-based splitter that keeps the limit
        yield from _fallback_chunks(text, max_tokens, encoding)
        return
    yield from chunks(text, max_tokens, encoding)


def _fallback_chunks(text: str, max_tokens: int, encoding: str | None) -> Iterator[str]:
    from context.tokens import count_tokens, get_encoding

    enc = get_encoding(encoding)
    buf: list[str] = []
    used = 0
    for line in text.splitlines(keepends=True):
        n = count_tokens(line, encoding)
        if n > max_tokens:  # one huge line: cut it into token windows
            if buf:
                yield "".join(buf)
                buf, used = [], 0
            ids = enc.encode_ordinary(line)
            start = 0
            while start < len(ids):
                stop = min(len(ids), start + max_tokens)
                piece = enc.decode(ids[start:stop])
                while count_tokens(piece, encoding) > max_tokens:
                    stop -= 1
                    piece = enc.decode(ids[start:stop])
                yield piece
                start = stop
            continue
        if used + n > max_tokens and buf:
            chunk = "".join(buf)
            yield chunk
            buf, used = [], 0
        buf.append(line)
        used += n
        if used > max_tokens - 2:  # joins can merge tokens differently: re-check exactly
            joined = "".join(buf)
            if count_tokens(joined, encoding) > max_tokens:
                last = buf.pop()
                yield "".join(buf)
                buf, used = [last], count_tokens(last, encoding)
    if buf:
        yield "".join(buf)


# --------------------------------------------------------------------------------------------
# The cc-sessions baseline


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
        from context.tokens import count_tokens as count
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
