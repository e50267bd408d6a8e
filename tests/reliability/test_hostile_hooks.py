"""``agentrt hook`` under hostile input: broken stdin, wrong types, broken and gigantic
transcripts, missing files, paths that climb out. It always exits 0 (a hook must never block
Claude Code), reports on stderr, never prints a traceback, and writes only inside its
output folder.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from tests.reliability.conftest import cli_env

SUBAGENT_TRANSCRIPT = "spotter-4d5611e5-agent-a2898e3.jsonl"  # a real Claude Code transcript
GIANT_LINE = 70 * 1024**2  # above the parser's 64 MiB line limit


def _event(transcript: Path | Any, project: Path, **changes: Any) -> dict[str, Any]:
    event = {
        "session_id": "4d5611e5-0000-0000-0000-000000000000",
        "transcript_path": str(transcript) if isinstance(transcript, Path) else transcript,
        "cwd": str(project),
        "hook_event_name": "PreToolUse",
        "tool_name": "Task",
        "tool_input": {
            "subagent_type": "general-purpose",
            "description": "retries",
            "prompt": "Find where the retry logic lives and summarise it.",
        },
        "tool_use_id": "toolu_01",
    }
    event.update(changes)
    return event


def _hook(
    stdin: bytes, project: Path, home: Path, timeout: float = 120
) -> subprocess.CompletedProcess[bytes]:
    return subprocess.run(
        [sys.executable, "-m", "agentrt.cli", "hook"],
        input=stdin,
        capture_output=True,
        cwd=project,
        env=cli_env(home, CLAUDE_PROJECT_DIR=str(project)),
        timeout=timeout,
    )


@pytest.fixture
def project(tmp_path: Path) -> Path:
    folder = tmp_path / "project"
    (folder / ".claude").mkdir(parents=True)
    return folder


@pytest.fixture
def real_lines(shared_dir: Path) -> list[bytes]:
    path = shared_dir / "data" / "transcripts" / SUBAGENT_TRANSCRIPT
    return path.read_bytes().splitlines(keepends=True)


def _written(project: Path) -> list[Path]:
    root = project / "sessions" / "transcripts"
    return sorted(p for p in root.rglob("*") if p.is_file()) if root.exists() else []


def _check(done: subprocess.CompletedProcess[bytes], project: Path) -> str:
    stderr = done.stderr.decode(errors="replace")
    assert done.returncode == 0, stderr
    assert "Traceback" not in stderr, stderr
    if done.stdout.strip():
        output = json.loads(done.stdout)
        assert output["hookSpecificOutput"]["hookEventName"] == "PreToolUse"
    root = (project / "sessions" / "transcripts").resolve()
    for path in _written(project):
        assert path.resolve().is_relative_to(root), path
    # Nothing else appeared in the project (or above it).
    others = {
        p.relative_to(project.parent).as_posix()
        for p in project.parent.rglob("*")
        if p.is_file() and not p.resolve().is_relative_to(root)
    }
    assert others <= {"transcript.jsonl"}, others
    return stderr


# -- broken stdin --------------------------------------------------------------------
STDIN_CASES: dict[str, tuple[bytes, str]] = {
    "empty": (b"", "not a JSON hook event"),
    "garbage": (b"hello, hook", "not a JSON hook event"),
    "truncated": (b'{"hook_event_name": "PreToolUse", "tool_na', "not a JSON hook event"),
    "array": (b'[{"hook_event_name": "PreToolUse"}]', "not an object"),
    "invalid_utf8": (b'{"hook_event_name": "Pre\xff\xfeToolUse"', "not a JSON hook event"),
    "nul_bytes": (b"\x00" * 1024, "not a JSON hook event"),
}


@pytest.mark.parametrize("case", sorted(STDIN_CASES))
def test_broken_stdin(case: str, project: Path, tmp_path: Path) -> None:
    stdin, message = STDIN_CASES[case]
    stderr = _check(_hook(stdin, project, tmp_path / "home"), project)
    assert f"agentrt hook: stdin {message}" in stderr or message in stderr, stderr
    assert _written(project) == []


# -- wrong types and missing files --------------------------------------------------
def _fifo(tmp_path: Path) -> Path:
    path = tmp_path / "fifo.jsonl"
    os.mkfifo(path)  # reading it would block the hook forever
    return path


EVENT_CASES: dict[str, tuple[Callable[[Path, Path], dict[str, Any]], str]] = {
    "transcript_path_number": (
        lambda t, p: _event(42, p),
        "no transcript_path",
    ),
    "transcript_path_missing": (
        lambda t, p: _event(t.parent / "nope.jsonl", p),
        "does not exist",
    ),
    "transcript_path_directory": (lambda t, p: _event(t.parent, p), "does not exist"),
    "transcript_path_device": (lambda t, p: _event("/dev/zero", p), "does not exist"),
    "tool_input_string": (
        lambda t, p: _event(t, p, tool_input="rm -rf /"),
        "",
    ),
    "fields_of_wrong_types": (
        lambda t, p: _event(t, p, session_id=[1, 2], cwd=7, tool_use_id={"x": 1}),
        "",
    ),
    "subagent_type_traversal": (
        lambda t, p: _event(
            t, p, tool_input={"subagent_type": "../../../../escape", "prompt": "x"}
        ),
        "",
    ),
}


@pytest.mark.parametrize("case", sorted(EVENT_CASES))
def test_hostile_event_fields(
    case: str, project: Path, tmp_path: Path, real_lines: list[bytes]
) -> None:
    transcript = tmp_path / "transcript.jsonl"
    transcript.write_bytes(b"".join(real_lines[:200]))
    build, message = EVENT_CASES[case]
    event = build(transcript, project)
    stderr = _check(_hook(json.dumps(event).encode(), project, tmp_path / "home"), project)
    assert message in stderr, stderr
    if case == "subagent_type_traversal":
        (folder,) = {p.parent.name for p in _written(project)}
        assert folder == "escape"


@pytest.mark.parametrize("where", ["transcript_path", "stale_sibling"])
def test_fifo_never_blocks_the_hook(
    where: str, project: Path, tmp_path: Path, real_lines: list[bytes]
) -> None:
    transcript = tmp_path / "transcript.jsonl"
    transcript.write_bytes(b"".join(real_lines[:50]))  # last line from February: stale
    fifo = _fifo(tmp_path)
    event = _event(fifo if where == "transcript_path" else transcript, project)
    try:
        done = _hook(json.dumps(event).encode(), project, tmp_path / "home", timeout=5)
    except subprocess.TimeoutExpired:
        pytest.fail("agentrt hook blocked on a FIFO for 5 s")
    _check(done, project)


# -- broken transcripts -------------------------------------------------------------
def _truncated(lines: list[bytes]) -> bytes:
    # Every tenth line cut in half, and the file ends in the middle of a line.
    cut = [line[: len(line) // 2] + b"\n" if i % 10 == 5 else line for i, line in enumerate(lines)]
    return b"".join(cut)[:-200]


def _wrong_types(lines: list[bytes]) -> bytes:
    junk = [
        b'{"type": "assistant", "message": 5}\n',
        b'{"type": "user", "message": {"role": "user", "content": {"not": "a list"}}}\n',
        b'{"type": "assistant", "message": {"content": [{"type": "tool_use", "input": 3}]}}\n',
        b'{"type": 12, "uuid": null}\n',
        b"[1, 2, 3]\n",
        b'"just a string"\n',
        b"null\n",
    ]
    return b"".join(line for pair in zip(lines, junk * 100, strict=False) for line in pair)


def _invalid_utf8(lines: list[bytes]) -> bytes:
    return b"".join(line.replace(b"e", b"\xe9\xff", 1) if i % 3 else line
                    for i, line in enumerate(lines))  # fmt: skip


def _giant_line(lines: list[bytes]) -> bytes:
    giant = b'{"type": "user", "message": {"role": "user", "content": "' + b"a" * GIANT_LINE
    return b"".join(lines[:100]) + giant + b'"}}\n' + b"".join(lines[100:200])


def _only_garbage(lines: list[bytes]) -> bytes:
    return b"not json at all\n" * 1000


TRANSCRIPT_CASES: dict[str, Callable[[list[bytes]], bytes]] = {
    "truncated_lines": _truncated,
    "wrong_types": _wrong_types,
    "invalid_utf8": _invalid_utf8,
    "giant_single_line": _giant_line,
    "only_garbage": _only_garbage,
    "empty_file": lambda lines: b"",
}


@pytest.mark.parametrize("case", sorted(TRANSCRIPT_CASES))
def test_broken_transcript(
    case: str, project: Path, tmp_path: Path, real_lines: list[bytes]
) -> None:
    transcript = tmp_path / "transcript.jsonl"
    transcript.write_bytes(TRANSCRIPT_CASES[case](real_lines[:400]))
    done = _hook(json.dumps(_event(transcript, project)).encode(), project, tmp_path / "home")
    _check(done, project)
    written = _written(project)
    # The condensed context is written whenever the transcript had usable lines; the task's
    # prompt is always in it.
    if case not in ("only_garbage", "empty_file"):
        assert written, done.stderr.decode(errors="replace")
    if written:
        text = "".join(p.read_text() for p in written)
        assert len(text) < 200_000
        if case == "giant_single_line":
            assert "a" * 10_000 not in text
