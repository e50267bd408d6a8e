"""Benchmark: what a subagent is handed, agentrt's hook vs the cc-sessions hook, on real sessions.

For every Task call in the real Claude Code sessions under ``shared/data/transcripts`` (and for
the session's first Task call replayed mid-session and at the very end, where cc-sessions hands
over the most), both algorithms run on the transcript exactly as it stood when the call was made:

* agentrt: :func:`agentrt.claude.condense.condense` (the default budget: 18,000 tokens in all);
* cc-sessions v0.3: :func:`bench.cc_sessions.cc_sessions_chunks` (everything after the first
  edit, as 24,000-byte pieces).

Reported per call: cl100k tokens and files of each, their ratio, whether every user prompt of
the session so far and every edited file is in what was delivered, and latency (in-process for
both; plus the agentrt hook as Claude Code runs it, a fresh process with the event on stdin).

Run: ``.venv/bin/python -m bench.transcripts``.
"""

from __future__ import annotations

import json
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

from agentrt.claude.condense import (
    Budget,
    SubagentTask,
    condense,
    strip_system_reminders,
)
from agentrt.claude.transcripts import EDIT_TOOLS, TaskCall, Transcript, parse_transcript
from agentrt.context.tokens import count_tokens
from bench.cc_sessions import cc_sessions_chunks
from bench.report import write_section

SHARED = Path(__file__).resolve().parents[1].parent / "shared" / "data" / "transcripts"
REPLAY_ID = "toolu_agentrt_bench_replay"


@dataclass
class Case:
    session: str
    label: str
    line: int
    task: TaskCall
    path: Path  # the transcript as it stood at the call


@dataclass
class Row:
    case: Case
    cc_tokens: int
    cc_files: int
    cc_seconds: float
    ours_tokens: int
    ours_files: int
    ours_seconds: float
    hook_seconds: float
    prompts: int
    cc_prompts: int
    ours_prompts: int
    edited: int
    cc_edited: int
    ours_edited: int


def _prefix_file(lines: list[str], upto: int, folder: Path, name: str, extra: str = "") -> Path:
    path = folder / name
    path.write_text("".join(lines[:upto]) + extra, encoding="utf-8")
    return path


def _replayed_call_line(original: str) -> str:
    """The Task call's line with fresh ids, so it is the transcript's newest call."""
    obj = json.loads(original)
    obj["message"]["id"] = "msg_agentrt_bench_replay"
    for block in obj["message"]["content"]:
        if block.get("type") == "tool_use":
            block["id"] = REPLAY_ID
    return json.dumps(obj) + "\n"


def cases(folder: Path) -> list[Case]:
    out = []
    for path in sorted(SHARED.glob("spotter-*.jsonl")):
        if "-agent-" in path.name:
            continue
        lines = path.read_text(encoding="utf-8").splitlines(keepends=True)
        transcript = parse_transcript(path)
        calls = transcript.task_calls()
        short = path.stem.removeprefix("spotter-")
        for call in calls:
            prefix = _prefix_file(lines, call.line, folder, f"{short}-L{call.line}.jsonl")
            out.append(Case(short, "real call", call.line, call, prefix))
        first = calls[0]
        replay = _replayed_call_line(lines[first.line - 1])
        for share in (0.5, 1.0):
            upto = int(len(lines) * share)
            prefix = _prefix_file(lines, upto, folder, f"{short}-R{upto}.jsonl", replay)
            out.append(Case(short, f"replayed at {int(share * 100)}%", upto + 1, first, prefix))
    return out


def _edited_files(view: Transcript) -> set[str]:
    return {
        c.file_path
        for c in view.tool_calls
        if c.name in EDIT_TOOLS and c.file_path and not (c.result and c.result.is_error)
    }


def _run_timed(args: list[str], stdin: str, runs: int) -> tuple[list[float], list[float]]:
    """Wall and CPU seconds of ``runs`` fresh processes."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("CLAUDE_", "AGENTRT_HOOK"))}
    walls, cpus = [], []
    for _ in range(runs):
        before = resource.getrusage(resource.RUSAGE_CHILDREN)
        start = time.perf_counter()
        done = subprocess.run(args, input=stdin, capture_output=True, text=True, env=env)
        walls.append(time.perf_counter() - start)
        after = resource.getrusage(resource.RUSAGE_CHILDREN)
        cpus.append(after.ru_utime - before.ru_utime + after.ru_stime - before.ru_stime)
        if done.returncode != 0:
            raise RuntimeError(f"{args} failed: {done.stderr}")
        if "agentrt.cli.hook" in args and '"hookSpecificOutput"' not in done.stdout:
            raise RuntimeError(f"the hook wrote no context: {done.stderr}")
    return walls, cpus


def _hook_seconds(case: Case, project: Path, runs: int = 1) -> tuple[list[float], list[float]]:
    """Wall and CPU seconds of the hook as Claude Code runs it (a fresh process per event)."""
    payload = json.dumps(
        {
            "session_id": case.task.call.id,
            "transcript_path": str(case.path),
            "cwd": str(project),
            "hook_event_name": "PreToolUse",
            "tool_name": "Task",
            "tool_input": dict(case.task.call.input),
        }
    )
    return _run_timed([sys.executable, "-m", "agentrt.cli.hook"], payload, runs)


# What every hook process pays before reading the transcript: interpreter start, the tokenizer's
# BPE table, and the BM25 stack behind agentrt.context.relevance (numpy, scipy.sparse).
_FLOOR = (
    "import numpy, scipy.sparse\n"
    "from agentrt.context.tokens import count_tokens\n"
    "count_tokens('warm up the encoding')\n"
)


def measure(case: Case, project: Path, budget: Budget) -> Row:
    start = time.perf_counter()
    transcript = parse_transcript(case.path)
    task = SubagentTask.from_task_call(transcript.task_calls()[-1])
    ours = condense(transcript, task, budget)
    ours_seconds = time.perf_counter() - start

    start = time.perf_counter()
    cc = cc_sessions_chunks(case.path)
    cc_seconds = time.perf_counter() - start
    cc_text = "".join(cc)
    cc_tokens = sum(count_tokens(c) for c in cc)

    view = transcript.upto(ours.position)
    prompts = [strip_system_reminders(p.text)[0] for p in view.user_prompts()]
    ours_text = "".join(ours.chunks)
    edited = _edited_files(view)
    cwd = next((e.raw["cwd"] for e in view.entries if "cwd" in e.raw), "")
    rel = {f: f.removeprefix(cwd.rstrip("/") + "/") for f in edited}
    hook_wall = _hook_seconds(case, project)[0][0]
    return Row(
        case=case,
        cc_tokens=cc_tokens,
        cc_files=len(cc),
        cc_seconds=cc_seconds,
        ours_tokens=ours.total_tokens,
        ours_files=len(ours.chunks),
        ours_seconds=ours_seconds,
        hook_seconds=hook_wall,
        prompts=len(prompts),
        cc_prompts=sum(json.dumps(p, ensure_ascii=False)[1:-1] in cc_text for p in prompts),
        ours_prompts=sum(p in ours_text for p in prompts),
        edited=len(edited),
        cc_edited=sum(json.dumps(f)[1:-1] in cc_text for f in edited),
        ours_edited=sum(f"### {rel[f]} —" in ours_text for f in edited),
    )


def _table(rows: list[Row]) -> str:
    head = (
        "| session | call | line | subagent | cc-sessions tokens (files) | agentrt tokens (files) "
        "| ratio | user prompts kept (cc / agentrt) | edited files kept (cc / agentrt) "
        "| latency cc / agentrt (in-process) | agentrt hook (process) |\n"
        "|---|---|---|---|---|---|---|---|---|---|---|\n"
    )
    body = []
    for r in rows:
        ratio = f"{r.cc_tokens / r.ours_tokens:.1f}×" if r.cc_tokens else "— (cc: nothing)"
        body.append(
            f"| {r.case.session} | {r.case.label} | {r.case.line} | {r.case.task.subagent_type} "
            f"| {r.cc_tokens:,} ({r.cc_files}) | {r.ours_tokens:,} ({r.ours_files}) | {ratio} "
            f"| {r.cc_prompts}/{r.prompts} / {r.ours_prompts}/{r.prompts} "
            f"| {r.cc_edited}/{r.edited} / {r.ours_edited}/{r.edited} "
            f"| {r.cc_seconds:.2f} s / {r.ours_seconds:.2f} s | {r.hook_seconds:.2f} s |"
        )
    return head + "\n".join(body)


def main() -> None:
    budget = Budget()
    with tempfile.TemporaryDirectory(prefix="agentrt-bench-transcripts-") as tmp:
        folder = Path(tmp)
        project = folder / "project"
        (project / ".claude").mkdir(parents=True)
        all_cases = cases(folder)
        rows = []
        for case in all_cases:
            row = measure(case, project, budget)
            print(
                f"{case.session} {case.label:>16} L{case.line:<5} cc {row.cc_tokens:>8,} "
                f"agentrt {row.ours_tokens:>6,}  hook {row.hook_seconds:.2f} s",
                flush=True,
            )
            rows.append(row)
        # Hook latency on the largest full transcript, as Claude Code runs it.
        largest = max(
            (c for c in all_cases if c.label == "replayed at 100%"),
            key=lambda c: c.path.stat().st_size,
        )
        walls, cpus = _hook_seconds(largest, project, runs=7)
        floor_walls, floor_cpus = _run_timed([sys.executable, "-c", _FLOOR], "", runs=7)
        size_mb = largest.path.stat().st_size / 1e6

    big = [r for r in rows if r.cc_tokens > 90_000]
    before_edit = [r for r in rows if r.cc_tokens == 0]
    summary = [
        f"- Budget: {budget.total_tokens:,} tokens in all, {budget.chunk_tokens:,} per file. "
        f"Largest agentrt delivery: {max(r.ours_tokens for r in rows):,} tokens "
        f"(target: never above {budget.total_tokens:,}).",
        f"- Where cc-sessions hands over more than 90k tokens ({len(big)} calls): agentrt "
        f"delivers {min(r.cc_tokens / r.ours_tokens for r in big):.1f}× to "
        f"{max(r.cc_tokens / r.ours_tokens for r in big):.1f}× fewer tokens (target: ≥ 5×)."
        if big
        else "- No call where cc-sessions hands over more than 90k tokens.",
        f"- Calls before the first edit ({len(before_edit)}): cc-sessions delivers nothing; "
        "agentrt delivers "
        + ", ".join(f"{r.ours_tokens:,}" for r in before_edit)
        + " tokens with every user prompt so far and the task-relevant tool-result lines.",
        "- Every user prompt kept verbatim by agentrt in every case: "
        f"{all(r.ours_prompts == r.prompts for r in rows)}; every edited file listed with its "
        f"change: {all(r.ours_edited == r.edited for r in rows)}.",
        f"- Hook latency as Claude Code runs it (fresh process, stdin event, files written) on "
        f"the largest transcript ({size_mb:.1f} MB), 7 runs: wall median "
        f"{statistics.median(walls):.2f} s (best {min(walls):.2f} s), CPU median "
        f"{statistics.median(cpus):.2f} s (target: well under 1 s). Of this, "
        f"{statistics.median(floor_cpus):.2f} s CPU (wall best {min(floor_walls):.2f} s) is the "
        "floor every process pays before reading the transcript: interpreter start, the cl100k "
        "BPE table and the numpy/scipy stack behind `rank_passages`. Wall times include "
        "waiting for the 2 shared cores; CPU times do not.",
        "- Reference: the real cc-sessions chunk files in shared/ (`cc-sessions-chunks/`, the "
        "earlier 18,000-token-batch version of the hook) hold 115,388 tokens in 8 files for one "
        "general-purpose subagent.",
        "- cc-sessions column: the v0.3 hook (`subagent_hooks.py`): entries after the first "
        "Edit/MultiEdit/Write, `json.dumps(indent=2)`, 24,000-byte pieces. “replayed” rows run the "
        "session's first Task call again at that point of the session (same input, fresh id).",
    ]
    body = _table(rows) + "\n\n" + "\n".join(summary)
    print("\n" + body)
    doc = write_section(
        "transcripts",
        "Subagent context from Claude Code transcripts: agentrt vs cc-sessions",
        body,
        command=".venv/bin/python -m bench.transcripts",
    )
    print(f"\nwrote {doc}")


if __name__ == "__main__":
    main()
