"""The hook end to end, as Claude Code runs it: a process with the event as JSON on stdin."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

from agentrt.claude.install import install_hooks
from agentrt.claude.session_flag import set_subagent_flag
from agentrt.cli.hook import app
from agentrt.context.tokens import count_tokens

SESSION = "11111111-2222-3333-4444-555555555555"


def run_hook(payload: Any, env: dict[str, str] | None = None) -> subprocess.CompletedProcess:
    data = payload if isinstance(payload, str) else json.dumps(payload)
    full_env = {
        k: v for k, v in os.environ.items() if not k.startswith(("CLAUDE_", "AGENTRT_HOOK"))
    }
    full_env.update(env or {})
    return subprocess.run(
        [sys.executable, "-m", "agentrt.cli.hook"],
        input=data,
        capture_output=True,
        text=True,
        env=full_env,
        timeout=60,
    )


def event(project: Path, transcript: Path, name: str = "PreToolUse", **tool_input: Any) -> dict:
    return {
        "session_id": SESSION,
        "transcript_path": str(transcript),
        "cwd": str(project),
        "hook_event_name": name,
        "tool_name": "Task",
        "tool_input": {"subagent_type": "Explore", "description": "Map billing", **tool_input},
        "tool_use_id": "toolu_T",
    }


@pytest.fixture
def project(tmp_path: Path) -> Path:
    root = tmp_path / "project"
    (root / ".claude").mkdir(parents=True)
    return root


@pytest.fixture
def transcript(tmp_path: Path, builder) -> Path:
    b = builder(SESSION).user("make billing totals exact (use Decimal)")
    b.tool(
        "Read", {"file_path": "/work/project/billing.py"}, "1→def total(xs):\n2→  return sum(xs)"
    )
    b.tool(
        "Edit",
        {
            "file_path": "/work/project/billing.py",
            "old_string": "  return sum(xs)",
            "new_string": "  return sum(map(Decimal, xs))",
        },
        "The file has been updated.",
    )
    b.call("Task", {"subagent_type": "Explore", "description": "Map billing"}, "toolu_T")
    return b.write(tmp_path / "claude" / f"{SESSION}.jsonl")


def with_state(project: Path) -> Path:
    state = project / "sessions" / "sessions-state.json"
    state.parent.mkdir(parents=True, exist_ok=True)
    state.write_text(
        json.dumps({"mode": "implementation", "flags": {"subagent": False, "noob": True}})
    )
    return state


def test_pre_and_post_with_cc_sessions_state(project: Path, transcript: Path) -> None:
    state = with_state(project)
    folder = project / "sessions" / "transcripts" / "Explore"
    folder.mkdir(parents=True)
    (folder / "current_transcript_009.txt").write_text("stale chunk of an earlier subagent")
    (folder / "notes.md").write_text("not ours")

    pre = run_hook(event(project, transcript, prompt="find every caller of total"))
    assert pre.returncode == 0, pre.stderr
    output = json.loads(pre.stdout)["hookSpecificOutput"]
    assert output["hookEventName"] == "PreToolUse"
    chunks = sorted(folder.glob("current_transcript_*.txt"))
    assert [c.name for c in chunks] == ["current_transcript_001.txt"]
    text = chunks[0].read_text()
    assert "make billing totals exact (use Decimal)" in text
    assert "+  return sum(map(Decimal, xs))" in text
    assert count_tokens(text) <= 18_000
    saved = json.loads(state.read_text())
    assert saved == {"mode": "implementation", "flags": {"subagent": True, "noob": True}}
    assert not (project / "sessions" / "sessions-state.lock").exists()

    post = run_hook(event(project, transcript, "PostToolUse"))
    assert post.returncode == 0 and post.stdout == ""
    assert list(folder.glob("current_transcript_*")) == []
    assert (folder / "notes.md").read_text() == "not ours"
    assert json.loads(state.read_text())["flags"]["subagent"] is False


def test_without_cc_sessions_nothing_else_is_created(project: Path, transcript: Path) -> None:
    result = run_hook(event(project, transcript))
    assert result.returncode == 0, result.stderr
    assert not (project / "sessions" / "sessions-state.json").exists()
    assert (
        project / "sessions" / "transcripts" / "Explore" / "current_transcript_001.txt"
    ).is_file()


@pytest.mark.parametrize("stdin", ["", "{not json", "[1, 2]", '{"hook_event_name": 5}'])
def test_malformed_stdin_never_blocks(stdin: str) -> None:
    result = run_hook(stdin)
    assert result.returncode == 0
    assert result.stdout == ""
    if stdin != '{"hook_event_name": 5}':
        assert "agentrt hook:" in result.stderr


def test_missing_transcript(project: Path, tmp_path: Path) -> None:
    result = run_hook(event(project, tmp_path / "nowhere.jsonl"))
    assert result.returncode == 0
    assert "does not exist" in result.stderr
    assert not list(project.rglob("current_transcript_*"))


def test_other_tools_are_ignored(project: Path, transcript: Path) -> None:
    payload = event(project, transcript) | {"tool_name": "Bash"}
    result = run_hook(payload)
    assert (result.returncode, result.stdout, result.stderr) == (0, "", "")
    assert not (project / "sessions").exists()


def test_transcript_without_edits(project: Path, tmp_path: Path, builder) -> None:
    b = builder(SESSION).user("where is the retry logic?")
    b.tool("Grep", {"pattern": "retry"}, "net/client.py:40: def retry(fn, attempts=3):")
    path = b.write(tmp_path / "t.jsonl")
    result = run_hook(event(project, path, description="Find retry logic", prompt="retry"))
    assert result.returncode == 0, result.stderr
    text = (project / "sessions/transcripts/Explore/current_transcript_001.txt").read_text()
    assert "where is the retry logic?" in text and "def retry(fn, attempts=3)" in text


def test_one_megabyte_tool_result_respects_chunk_limit(
    project: Path, tmp_path: Path, builder
) -> None:
    rows = [f"row {i} invoice ok" for i in range(60_000)]
    rows[31_337] = "row 31337 invoice total mismatch: rounding in to_cents"
    body = "\n".join(rows)[:1_048_576]
    # The latest prompt is kept whole; at ~1,500 tokens it is larger than one chunk.
    prompt = "why do invoice totals mismatch? " + "the totals drift by a cent. " * 200
    b = builder(SESSION).user(prompt)
    b.tool("Bash", {"command": "psql -c 'select * from invoices'"}, body)
    path = b.write(tmp_path / "t.jsonl")
    env = {"AGENTRT_HOOK_CHUNK_TOKENS": "700", "AGENTRT_HOOK_TOTAL_TOKENS": "3000"}
    result = run_hook(event(project, path, prompt="invoice totals mismatch rounding"), env)
    assert result.returncode == 0, result.stderr
    chunks = sorted((project / "sessions/transcripts/Explore").glob("current_transcript_*.txt"))
    texts = [c.read_text() for c in chunks]
    counts = [count_tokens(t) for t in texts]
    assert len(chunks) >= 3 and max(counts) <= 700 and sum(counts) <= 3000
    assert "31338: row 31337 invoice total mismatch: rounding in to_cents" in "".join(texts)


def test_never_deletes_outside_its_folder(project: Path, transcript: Path, tmp_path: Path) -> None:
    victim = tmp_path / "victim.txt"
    victim.write_text("precious")
    outside = tmp_path / "outside"
    outside.mkdir()
    (outside / "current_transcript_001.txt").write_text("precious too")
    out = tmp_path / "ctx"
    folder = out / "Explore"
    folder.mkdir(parents=True)
    (folder / "current_transcript_002.txt").symlink_to(victim)
    env = {"AGENTRT_HOOK_OUTPUT": str(out)}
    # A subagent type that tries to climb out of the output folder.
    for kind in ("../outside", "../../outside", "Explore"):
        for name in ("PreToolUse", "PostToolUse"):
            result = run_hook(event(project, transcript, name, subagent_type=kind), env)
            assert result.returncode == 0, result.stderr
    assert victim.read_text() == "precious"
    assert (outside / "current_transcript_001.txt").read_text() == "precious too"
    assert (folder / "current_transcript_002.txt").is_symlink()  # resolves outside: left alone
    assert "resolves outside" in result.stderr
    assert not (project / "sessions").exists()


def test_live_lock_is_respected_and_stale_lock_removed(project: Path, transcript: Path) -> None:
    state = with_state(project)
    lock = state.with_suffix(".lock")
    lock.mkdir()
    info = {"pid": os.getpid(), "timestamp": time.monotonic(), "host": "test"}
    (lock / "lock_info.json").write_text(json.dumps(info))
    result = run_hook(event(project, transcript))
    assert result.returncode == 0
    assert "could not set the cc-sessions subagent flag" in result.stderr
    assert json.loads(state.read_text())["flags"]["subagent"] is False
    assert lock.is_dir()  # a live lock is never forced
    assert (project / "sessions/transcripts/Explore/current_transcript_001.txt").is_file()

    dead = subprocess.run(
        [sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True
    )
    info["pid"] = int(dead.stdout)
    (lock / "lock_info.json").write_text(json.dumps(info))
    assert set_subagent_flag(project, True) is True  # the dead owner's lock is cleared
    assert not lock.exists()
    assert json.loads(state.read_text())["flags"]["subagent"] is True


# ---- the typer app ---------------------------------------------------------------------------


def test_app_reads_event_from_stdin(project: Path, transcript: Path) -> None:
    result = CliRunner().invoke(app, [], input=json.dumps(event(project, transcript)))
    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout)["hookSpecificOutput"]["hookEventName"] == "PreToolUse"


def test_install_merges_and_is_idempotent(project: Path) -> None:
    settings = project / ".claude" / "settings.json"
    existing = {
        "model": "opus",
        "hooks": {
            "PreToolUse": [
                {"matcher": "Bash", "hooks": [{"type": "command", "command": "guard.sh"}]}
            ],
            "Stop": [{"hooks": [{"type": "command", "command": "notify.sh"}]}],
        },
    }
    settings.write_text(json.dumps(existing))
    before = settings.read_bytes()
    runner = CliRunner()
    first = runner.invoke(app, ["install", "--project", str(project), "--json"])
    assert first.exit_code == 0, first.output
    report = json.loads(first.stdout)
    assert report["changed"] is True and {a["event"] for a in report["added"]} == {
        "PreToolUse",
        "PostToolUse",
    }
    assert Path(report["backup"]).read_bytes() == before
    merged = json.loads(settings.read_text())
    assert merged["model"] == "opus"
    assert merged["hooks"]["Stop"] == existing["hooks"]["Stop"]
    assert merged["hooks"]["PreToolUse"][0] == existing["hooks"]["PreToolUse"][0]
    ours = {"matcher": "Task|Agent", "hooks": [{"type": "command", "command": "agentrt hook"}]}
    assert merged["hooks"]["PreToolUse"][1] == ours and merged["hooks"]["PostToolUse"] == [ours]

    after_first = settings.read_bytes()
    second = runner.invoke(app, ["install", "--project", str(project), "--json"])
    assert second.exit_code == 0 and json.loads(second.stdout)["changed"] is False
    assert settings.read_bytes() == after_first


def test_install_refuses_invalid_settings(project: Path, tmp_path: Path) -> None:
    settings = project / ".claude" / "settings.json"
    settings.write_text("{broken")
    result = CliRunner().invoke(app, ["install", "--project", str(project)])
    assert result.exit_code == 1
    assert "is not valid JSON" in result.output
    assert settings.read_text() == "{broken"
    fresh = install_hooks(tmp_path / "new-project")
    assert fresh["changed"] and fresh["backup"] is None
