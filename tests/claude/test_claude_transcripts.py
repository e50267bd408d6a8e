"""Parsing real and malformed Claude Code transcripts."""

from __future__ import annotations

import json
import os
import time
from collections import Counter
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from agentrt.claude.transcripts import (
    Usage,
    find_current_transcript,
    parse_transcript,
    subagent_transcripts,
)

# From shared/data/transcripts/SOURCES.md (1-based lines, tool_use id, subagent_type).
TASK_CALLS = {
    "spotter-fa812bfe.jsonl": [
        (44, "toolu_01Y64XEaRvUYinzv9rW9qZXd", "Explore"),
        (691, "toolu_013mmyY3eDBg4Ji6oAszYt6p", "Explore"),
    ],
    "spotter-ae4a77f8.jsonl": [(71, "toolu_01Hf8v1Za7y4af8VUwSR4CXU", "general-purpose")],
    "spotter-4d5611e5.jsonl": [(44, "toolu_017pLRuPHYTX5t99EnLyV53m", "Explore")],
    "spotter-4d5611e5-agent-a2898e3.jsonl": [],
}


def reference_usage(path: Path) -> Usage:
    """Independent count: usage of each unique (message.id, requestId) pair (its last line)."""
    per_pair = {}
    for line in path.read_text(encoding="utf-8").splitlines():
        obj = json.loads(line)
        message = obj.get("message")
        if obj.get("type") == "assistant" and isinstance(message, dict) and "usage" in message:
            per_pair[(message["id"], obj.get("requestId"))] = message["usage"]
    keys = ("input_tokens", "output_tokens", "cache_creation_input_tokens")
    sums = [sum(u.get(k, 0) for u in per_pair.values()) for k in (*keys, "cache_read_input_tokens")]
    return Usage(*sums)


@pytest.mark.parametrize("name", sorted(TASK_CALLS))
def test_real_transcripts_parse_completely(transcripts_dir: Path, name: str) -> None:
    path = transcripts_dir / name
    transcript = parse_transcript(path)
    raw = [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines()]

    assert transcript.skipped == Counter()
    assert transcript.n_lines == len(raw) == len(transcript.entries)
    assert transcript.usage == reference_usage(path)
    assert transcript.usage.output_tokens > 0
    types = Counter(obj["type"] for obj in raw)
    assert {t: n for t, n in transcript.line_types.items() if ":" not in t} == dict(types)

    calls = transcript.task_calls()
    assert [(c.line, c.id, c.subagent_type) for c in calls] == TASK_CALLS[name]
    for call in calls:
        assert call.description and call.prompt
        assert call.call.result is not None  # paired with its tool_result
        assert call.agent_id  # linked to the subagent's own transcript

    # Every tool call of a finished session got its result back.
    assert all(c.result is not None for c in transcript.tool_calls)


def test_reply_lines_group_into_one_message(transcripts_dir: Path) -> None:
    transcript = parse_transcript(transcripts_dir / "spotter-4d5611e5.jsonl")
    assistant = [m for m in transcript.messages if m.role == "assistant"]
    pairs = {(e.message_id, e.request_id) for e in transcript.entries if e.type == "assistant"}
    assert len(assistant) == len(pairs)
    assert any(len(m.entries) > 1 for m in assistant)


def test_user_prompts_and_compaction(transcripts_dir: Path) -> None:
    transcript = parse_transcript(transcripts_dir / "spotter-ae4a77f8.jsonl")
    prompts = transcript.user_prompts()
    assert [p.line for p in prompts] == [7, 1484, 1491]
    assert prompts[0].text.startswith("Work on bead spotter-4te")
    assert prompts[1].kind == "command"  # "/compact and continue with the remaining tasks"
    (compaction,) = transcript.compactions
    assert compaction.trigger == "manual" and compaction.pre_tokens == 142431
    assert compaction.summary.startswith("This session is being continued")


def test_subagent_transcript_is_sidechain(transcripts_dir: Path) -> None:
    transcript = parse_transcript(transcripts_dir / "spotter-4d5611e5-agent-a2898e3.jsonl")
    assert all(e.is_sidechain for e in transcript.entries)
    assert {e.agent_id for e in transcript.entries} == {"a2898e3"}
    assert transcript.user_prompts() == []
    assert len(transcript.user_prompts(include_sidechain=True)) == 1


def test_malformed_lines_are_skipped_and_counted(tmp_path: Path, builder) -> None:
    b = builder().user("fix the parser")
    b.raw('{"type": "assistant", "message": {"role": "assist')  # truncated JSON
    b.raw("[1, 2, 3]")  # not an object
    b.raw('{"type": "user", "message": "not an object"}')
    b.raw('{"type": "user", "message": {"role": "user", "content": 42}}')
    b.raw('{"type": "brand-new-line-type", "x": 1}')
    bad_blocks = [7, {"type": "tool_use"}]  # a non-object block; a tool_use without id/input
    b.raw(
        json.dumps({"type": "assistant", "message": {"role": "assistant", "content": bad_blocks}})
    )
    b.raw("x" * 5000)  # a gigantic single line (over the limit below)
    b.raw("")
    b.text("done")
    path = b.write(tmp_path / "t.jsonl")
    transcript = parse_transcript(path, max_line_bytes=4096)
    assert transcript.skipped == Counter(
        {
            "malformed JSON": 1,
            "not a JSON object": 1,
            "user line without a message object": 1,
            "user message content is neither text nor a list": 1,
            "unknown type 'brand-new-line-type'": 1,
            "bad content block": 2,
            "line too large": 1,
        }
    )
    assert [p.text for p in transcript.user_prompts()] == ["fix the parser"]
    assert transcript.entries[-1].text == "done"
    assert transcript.n_lines == 10


def test_invalid_utf8_and_empty_file(tmp_path: Path) -> None:
    path = tmp_path / "bad.jsonl"
    path.write_bytes(b'{"type": "user", "message": {"role": "user", "content": "\xff\xfe"}}\n')
    assert parse_transcript(path).skipped == Counter({"malformed JSON": 1})
    empty = tmp_path / "empty.jsonl"
    empty.write_bytes(b"")
    assert parse_transcript(empty).entries == []


def test_agent_tool_counts_as_task_call(tmp_path: Path, builder) -> None:
    b = builder().user("look around")
    b.tool("Agent", {"description": "Scan", "prompt": "scan the repo", "subagent_type": "Explore"})
    (call,) = parse_transcript(b.write(tmp_path / "t.jsonl")).task_calls()
    assert (call.description, call.subagent_type) == ("Scan", "Explore")


def _stamp(delta: timedelta) -> str:
    return (datetime.now(UTC) - delta).isoformat().replace("+00:00", "Z")


def test_find_current_transcript_prefers_fresh_file_of_same_session(tmp_path: Path) -> None:
    sid = "abc"
    stale = tmp_path / "old.jsonl"
    stale.write_text(json.dumps({"sessionId": sid, "timestamp": _stamp(timedelta(hours=1))}) + "\n")
    other = tmp_path / "other.jsonl"
    other.write_text(json.dumps({"sessionId": "zzz", "timestamp": _stamp(timedelta())}) + "\n")
    fresh = tmp_path / "new.jsonl"
    fresh.write_text(json.dumps({"sessionId": sid, "timestamp": _stamp(timedelta())}) + "\n")
    now = time.time()
    os.utime(stale, (now - 100, now - 100))
    assert find_current_transcript(stale, sid) == fresh
    assert find_current_transcript(fresh, sid) == fresh  # fresh: used as given
    assert find_current_transcript(stale, "nobody") == stale  # nothing better: unchanged
    missing = tmp_path / "gone.jsonl"
    assert find_current_transcript(missing, sid) == missing
    (tmp_path / f"{sid}.jsonl").write_text("{}\n")
    assert find_current_transcript(missing, sid) == tmp_path / f"{sid}.jsonl"


def test_subagent_transcripts_are_found_next_to_the_session(tmp_path: Path) -> None:
    session = tmp_path / "s1.jsonl"
    session.write_text("")
    (tmp_path / "s1" / "subagents").mkdir(parents=True)
    agent = tmp_path / "s1" / "subagents" / "agent-a1.jsonl"
    agent.write_text("")
    assert subagent_transcripts(session) == [agent]
    assert parse_transcript(session).subagent_transcripts() == [agent]
