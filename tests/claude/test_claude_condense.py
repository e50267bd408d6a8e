"""Condensing a session for a subagent, and the cc-sessions baseline it is compared with."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from agentrt.claude.condense import (
    Budget,
    SubagentTask,
    condense,
    strip_system_reminders,
)
from agentrt.claude.transcripts import EDIT_TOOLS, parse_transcript
from agentrt.context.tokens import count_tokens
from bench.cc_sessions import (
    cc_sessions_chunks,
    cc_sessions_entries,
    cc_sessions_legacy_batches,
    cc_sessions_subagent_type,
    split_by_bytes,
)


def _rel(path: str, cwd: str) -> str:
    return path[len(cwd) + 1 :] if path.startswith(cwd + "/") else path


def _check_limits(condensed, budget: Budget) -> None:
    counts = [count_tokens(c) for c in condensed.chunks]
    assert counts == condensed.chunk_tokens
    assert all(n <= budget.chunk_tokens for n in counts), counts
    assert sum(counts) <= budget.total_tokens


def test_real_sessions_keep_every_prompt_and_edited_file(session_files: list[Path]) -> None:
    budget = Budget()
    for path in session_files:
        transcript = parse_transcript(path)
        cwd = next(e.raw["cwd"] for e in transcript.entries if "cwd" in e.raw)
        calls = transcript.task_calls()
        # Each real Task call, and the first one replayed at the end of the session (the late,
        # large case).
        cases = [(SubagentTask.from_task_call(c), None) for c in calls]
        cases.append((SubagentTask(calls[0].description, calls[0].prompt), transcript.n_lines))
        for task, upto in cases:
            condensed = condense(transcript, task, budget, upto_line=upto)
            _check_limits(condensed, budget)
            text = "".join(condensed.chunks)
            view = transcript.upto(condensed.position)
            prompts = view.user_prompts()
            assert condensed.prompts_total == condensed.prompts_verbatim == len(prompts)
            for prompt in prompts:
                assert strip_system_reminders(prompt.text)[0] in text
            edited = {
                c.file_path
                for c in view.tool_calls
                if c.name in EDIT_TOOLS and c.file_path and not (c.result and c.result.is_error)
            }
            assert set(condensed.edited_files) == edited
            for file in edited:
                assert f"### {_rel(file, cwd)} —" in text
            assert "signature" not in text and "[REDACTED_SIGNATURE]" not in text
            assert condensed.omitted["progress lines"] == view.line_types["progress"]


def test_late_call_fills_budget_with_edits_and_assistant_text(session_files: list[Path]) -> None:
    transcript = parse_transcript(session_files[0])
    condensed = condense(transcript, SubagentTask("Review the changes", "Review every change"))
    assert condensed.total_tokens > 15_000  # uses the budget it has
    assert condensed.kept["edit diffs"] > 10 and condensed.kept["assistant texts"] > 10
    assert condensed.kept["compaction summary"] == 1
    assert condensed.chunks[0].startswith("# Parent-session context")
    assert str(transcript.path) in condensed.chunks[0]  # how to ask for more


def test_small_chunks_and_total(session_files: list[Path]) -> None:
    budget = Budget(total_tokens=6000, chunk_tokens=1000)
    transcript = parse_transcript(session_files[1])
    condensed = condense(transcript, SubagentTask("Explore", "Explore the code"), budget)
    _check_limits(condensed, budget)
    assert len(condensed.chunks) >= 5
    assert condensed.chunks[1].startswith("(parent-session context, part 2 of")


def test_position_of_the_task_call_bounds_what_is_used(tmp_path: Path, builder) -> None:
    b = builder().user("add a cache to the loader").text("Reading the loader first.")
    b.call("Task", {"description": "Find callers", "prompt": "find loader callers"}, "toolu_X")
    b.user("a later prompt that the subagent must not see")
    transcript = parse_transcript(b.write(tmp_path / "t.jsonl"))
    task = SubagentTask("Find callers", "find loader callers", "Explore", tool_use_id="toolu_X")
    condensed = condense(transcript, task)
    assert "add a cache to the loader" in condensed.text
    assert "must not see" not in condensed.text
    assert condensed.position == 3


def test_edits_become_diffs_and_noise_is_dropped(tmp_path: Path, builder) -> None:
    b = builder().user("rename compute_total to total in billing.py")
    b.reply({"type": "thinking", "thinking": "secret musings", "signature": "SIG" * 50})
    b.tool("Read", {"file_path": "/work/project/billing.py"}, "1→def compute_total():\n2→  pass")
    b.tool("Read", {"file_path": "/work/project/billing.py"}, "1→def compute_total(x):\n2→  pass")
    b.tool(
        "Edit",
        {
            "file_path": "/work/project/billing.py",
            "old_string": "def compute_total(x):",
            "new_string": "def total(x):",
        },
        "The file has been updated.",
    )
    b.tool(
        "Edit",
        {"file_path": "/work/project/other.py", "old_string": "a", "new_string": "b"},
        "<tool_use_error>String to replace not found in file.</tool_use_error>",
        is_error=True,
    )
    b.text("Renamed.<system-reminder>internal nudge</system-reminder>")
    b.progress(5)
    transcript = parse_transcript(b.write(tmp_path / "t.jsonl"))
    condensed = condense(transcript, SubagentTask("Check billing", "check billing total"))
    text = condensed.text
    assert "-def compute_total(x):" in text and "+def total(x):" in text
    assert "### billing.py — edited 1×" in text
    assert "other.py" not in text.split("Files read")[0]  # the failed edit is not a change
    assert condensed.omitted["failed edits"] == 1
    assert "secret musings" not in text and "SIGSIG" not in text
    assert condensed.omitted["thinking blocks"] == 1
    assert "internal nudge" not in text and condensed.omitted["system reminders"] == 1
    assert condensed.omitted["duplicate reads"] == 1
    assert "compute_total():" not in text  # the older read is gone, the latest is kept
    assert condensed.omitted["progress lines"] == 5


def test_prompts_over_budget_keep_latest_whole(tmp_path: Path, builder) -> None:
    older = [f"older prompt {i}: " + "lorem ipsum dolor " * 600 for i in range(3)]
    latest = "the latest prompt: " + "fix the flaky test " * 300
    b = builder()
    for text in older:
        b.user(text).text("ok")
    b.user(latest)
    transcript = parse_transcript(b.write(tmp_path / "t.jsonl"))
    budget = Budget(total_tokens=3000, chunk_tokens=3000)
    condensed = condense(transcript, SubagentTask("x", "y"), budget)
    _check_limits(condensed, budget)
    assert latest in condensed.text
    for i in range(3):
        assert f"older prompt {i}: lorem" in condensed.text
    assert condensed.text.count("truncated; full prompt at transcript line") == 3
    assert condensed.prompts_verbatim == 1 and condensed.prompts_total == 4


def test_one_megabyte_tool_result(tmp_path: Path, builder) -> None:
    lines = [f"log line {i}: nothing to see" for i in range(30_000)]
    lines[12_345] = "ERROR: connection pool exhausted in fetch_invoices"
    huge = "\n".join(lines)
    huge += "\n" + "z" * (1_048_576 - len(huge))  # exactly 1 MiB, one very long last line
    b = builder().user("find why fetch_invoices fails")
    b.tool("Bash", {"command": "cat app.log"}, huge)
    transcript = parse_transcript(b.write(tmp_path / "t.jsonl"))
    budget = Budget(total_tokens=4000, chunk_tokens=1500)
    task = SubagentTask("Debug invoices", "Why does fetch_invoices fail? connection pool?")
    condensed = condense(transcript, task, budget)
    _check_limits(condensed, budget)
    assert "12346: ERROR: connection pool exhausted in fetch_invoices" in condensed.text
    assert "Bash $ cat app.log" in condensed.text


def test_session_without_edits_still_gives_intent(tmp_path: Path, builder) -> None:
    b = builder().user("how is auth wired?")
    b.tool("Grep", {"pattern": "login"}, "src/auth.py:10: def login(user):")
    transcript = parse_transcript(b.write(tmp_path / "t.jsonl"))
    condensed = condense(transcript, SubagentTask("Explore auth", "explore login flow"))
    assert "how is auth wired?" in condensed.text
    assert "def login(user)" in condensed.text
    assert condensed.edited_files == []


def test_budget_is_validated() -> None:
    with pytest.raises(ValueError, match="total_tokens must be at least 200"):
        Budget(total_tokens=10)


# ---- the cc-sessions baseline ----------------------------------------------------------------


def test_legacy_batches_reproduce_real_cc_sessions_files(transcripts_dir: Path) -> None:
    folder = transcripts_dir / "cc-sessions-chunks" / "5f1e4a2" / "general-purpose"
    files = sorted(folder.glob("current_transcript_*.json"))
    entries = [entry for f in files for entry in json.loads(f.read_text(encoding="utf-8"))]
    batches = cc_sessions_legacy_batches(entries)
    assert batches == [f.read_text(encoding="utf-8") for f in files]
    assert cc_sessions_subagent_type(entries) == "general-purpose"


def test_cc_sessions_chunks_start_after_first_edit(tmp_path: Path, builder) -> None:
    b = builder().user("start")
    b.tool("Read", {"file_path": "/a.py"}, "x")
    path = b.write(tmp_path / "before.jsonl")
    assert cc_sessions_chunks(path) == []  # no edit yet: nothing at all
    b.tool("Edit", {"file_path": "/a.py", "old_string": "x", "new_string": "y"}, "done")
    b.user("é" * 30_000)  # multi-byte text: the limit is in bytes
    b.call("Task", {"subagent_type": "Explore", "description": "d", "prompt": "p"}, "toolu_T")
    path = b.write(tmp_path / "after.jsonl")
    entries = cc_sessions_entries(path)
    # The line holding the first edit is consumed by cc-sessions' search loop; its result is
    # the first entry kept.
    assert entries[0]["content"][0]["type"] == "tool_result"
    assert cc_sessions_subagent_type(entries) == "Explore"
    chunks = cc_sessions_chunks(path)
    assert len(chunks) > 2
    assert all(len(c.encode("utf-8")) <= 24_000 for c in chunks)
    assert "".join(chunks) == json.dumps(entries, indent=2, ensure_ascii=False)


def test_split_by_bytes_cuts_at_newlines_then_spaces() -> None:
    text = "aaaa\nbbbb\ncccc"
    assert split_by_bytes(text, 8) == ["aaaa\n", "bbbb\n", "cccc"]
    assert split_by_bytes("aa bb cc", 4) == ["aa ", "bb ", "cc"]
    assert split_by_bytes("abcdefgh", 3) == ["abc", "def", "gh"]
