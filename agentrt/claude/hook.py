"""The Claude Code hook: hand a subagent its parent session's context, condensed to a budget.

``agentrt hook`` (:mod:`agentrt.cli.hook`) speaks Claude Code's command-hook protocol: the event
arrives as JSON on stdin (``session_id``, ``transcript_path``, ``cwd``, ``hook_event_name``,
``tool_name``, ``tool_input``, …); exit code 0 means success, and for ``PreToolUse`` a JSON
object with ``hookSpecificOutput`` may be printed on stdout. Exit code 2 would block the tool
call; this hook never blocks: on any internal error it reports on stderr and exits 0. This
module handles one decoded event (:func:`handle_event`, :func:`run_hook`).

It is a drop-in for the subagent hooks of cc-sessions (``cc_sessions/python/hooks/
subagent_hooks.py`` and the subagent part of ``post_tool_use.py``):

* ``PreToolUse`` of ``Task``/``Agent``: writes the condensed context of the parent session
  (:func:`agentrt.claude.condense.condense`) to ``sessions/transcripts/<subagent_type>/
  current_transcript_NNN.txt`` under the project directory, where cc-sessions' agents read it,
  after clearing that folder's old chunk files; and sets ``flags.subagent`` in
  ``sessions/sessions-state.json`` when that file exists, under cc-sessions' lock directory
  (:mod:`agentrt.claude.session_flag`).
* ``PostToolUse`` of the same tools: removes those chunk files and clears the flag.

When the project directory is in a git repository, the ``PreToolUse`` context gets one more
file: the repository context for the subagent's task (:mod:`agentrt.claude.repo_context`),
within what the condensed transcript leaves of the budget. A share of the budget
(``AGENTRT_HOOK_REPO_SHARE``, 0.3) is kept from the transcript for it and handed back when the
repository has nothing for the task; all files together stay within the budget. Both parts
are fenced as untrusted data (:mod:`agentrt.context.untrusted`).

The output folder can be moved with ``--output`` or ``AGENTRT_HOOK_OUTPUT``. Deletions are
limited to chunk files (``current_transcript_NNN.txt``) whose resolved path lies inside that
folder, the per-type folders once empty, and the lock directory the hook itself created.

``agentrt hook install`` registers the hook in ``<project>/.claude/settings.json``
(:mod:`agentrt.claude.install`).

Importing this module costs little (no Prefect, no tokenizer): the heavy parts are imported when
an event needs them, since every hook call is a fresh process inside Claude Code's tool loop.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

from agentrt.claude.session_flag import set_subagent_flag

if TYPE_CHECKING:
    from agentrt.claude.condense import Budget, Condensed, SubagentTask
    from agentrt.claude.repo_context import RepoContext, RepoSettings
    from agentrt.claude.transcripts import Transcript

__all__ = [
    "CHUNK_ENV",
    "OUTPUT_ENV",
    "TOTAL_ENV",
    "HookOutcome",
    "handle_event",
    "run_hook",
]

OUTPUT_ENV = "AGENTRT_HOOK_OUTPUT"
TOTAL_ENV = "AGENTRT_HOOK_TOTAL_TOKENS"
CHUNK_ENV = "AGENTRT_HOOK_CHUNK_TOKENS"
SUBAGENT_TOOLS = frozenset({"Task", "Agent"})
DEFAULT_OUTPUT = Path("sessions") / "transcripts"
_CHUNK_NAME = re.compile(r"current_transcript_\d{3,}\.txt")
_SAFE_TYPE = re.compile(r"[^A-Za-z0-9._-]+")


@dataclass
class HookOutcome:
    """What one hook call did (the CLI turns it into exit code, stdout and stderr)."""

    exit_code: int = 0
    stdout: str = ""
    messages: list[str] = field(default_factory=list)  #: for stderr
    written: list[Path] = field(default_factory=list)
    removed: list[Path] = field(default_factory=list)
    flag: bool | None = None  #: the subagent flag as left, None when there is no state file
    repo: RepoContext | None = None  #: the repository part, when the project is a repository


# --------------------------------------------------------------------------------------------
# Paths and guarded deletion


def project_dir(payload: Mapping[str, Any], env: Mapping[str, str] | None = None) -> Path:
    """The project a hook event belongs to, found as cc-sessions finds it: ``CLAUDE_PROJECT_DIR``,
    else the nearest folder holding ``.claude`` from the event's ``cwd`` upwards, else that
    ``cwd`` (else the process's)."""
    env = os.environ if env is None else env
    if env.get("CLAUDE_PROJECT_DIR"):
        return Path(env["CLAUDE_PROJECT_DIR"])
    cwd_value = payload.get("cwd")
    cwd = Path(cwd_value) if isinstance(cwd_value, str) and cwd_value else Path.cwd()
    for parent in (cwd, *cwd.parents):
        if (parent / ".claude").is_dir():
            return parent
    return cwd


def output_root(project: Path, override: str | None) -> Path:
    """The folder chunk files go to (``override`` may be relative to the project)."""
    if override:
        path = Path(override).expanduser()
        return path if path.is_absolute() else project / path
    return project / DEFAULT_OUTPUT


def subagent_folder_name(subagent_type: Any) -> str:
    """A folder name for a subagent type: it comes from the model's tool call, so anything that
    could climb out of the output folder (separators, ``..``) is replaced."""
    name = _SAFE_TYPE.sub("-", subagent_type) if isinstance(subagent_type, str) else ""
    name = name.strip(".-")
    return name or "shared"


def _inside(path: Path, root: Path) -> bool:
    """True when ``path``, resolved (symlinks followed), lies strictly inside ``root``."""
    try:
        resolved, base = path.resolve(), root.resolve()
    except (OSError, RuntimeError):
        return False
    return resolved != base and resolved.is_relative_to(base)


def _clear_chunks(folder: Path, root: Path, outcome: HookOutcome, *, remove_folder: bool) -> None:
    """Delete the chunk files in ``folder`` (only those, only inside ``root``)."""
    if not folder.is_dir() or not _inside(folder, root):
        return
    for item in sorted(folder.iterdir()):
        if not _CHUNK_NAME.fullmatch(item.name) or item.is_dir():
            continue
        if not _inside(item, root):
            outcome.messages.append(f"left {item} alone: it resolves outside {root}")
            continue
        item.unlink(missing_ok=True)
        outcome.removed.append(item)
    if remove_folder:
        # rmdir only succeeds on an empty folder: files of others stay, and so does the folder.
        with contextlib.suppress(OSError):
            folder.rmdir()


# --------------------------------------------------------------------------------------------
# Handling events


def _int_env(env: Mapping[str, str], name: str, default: int) -> int:
    raw = env.get(name)
    if not raw:
        return default
    try:
        return int(raw)
    except ValueError:
        raise ValueError(f"{name}={raw!r} is not an integer number of tokens") from None


def handle_event(
    payload: Mapping[str, Any],
    *,
    output: str | None = None,
    total_tokens: int | None = None,
    chunk_tokens: int | None = None,
    env: Mapping[str, str] | None = None,
    repo_settings: RepoSettings | None = None,
) -> HookOutcome:
    """Handle one decoded hook event. Errors propagate (``run_hook`` turns them into a
    non-blocking report). ``repo_settings``: the repository part's settings (default: from
    ``env``, see :class:`agentrt.claude.repo_context.RepoSettings`)."""
    env = os.environ if env is None else env
    outcome = HookOutcome()
    event = payload.get("hook_event_name")
    tool = payload.get("tool_name")
    if tool not in SUBAGENT_TOOLS or event not in ("PreToolUse", "PostToolUse"):
        return outcome
    project = project_dir(payload, env)
    root = output_root(project, output if output is not None else env.get(OUTPUT_ENV))
    tool_input = payload.get("tool_input")
    tool_input = tool_input if isinstance(tool_input, Mapping) else {}
    folder = root / subagent_folder_name(tool_input.get("subagent_type") or "general-purpose")

    if event == "PostToolUse":
        _clear_chunks(folder, root, outcome, remove_folder=True)
        try:
            outcome.flag = set_subagent_flag(project, False)
        except (TimeoutError, ValueError, OSError) as exc:
            outcome.messages.append(f"could not clear the cc-sessions subagent flag: {exc}")
        return outcome

    # PreToolUse: flag first (as cc-sessions does), then the context files.
    try:
        outcome.flag = set_subagent_flag(project, True)
    except (TimeoutError, ValueError, OSError) as exc:
        outcome.messages.append(f"could not set the cc-sessions subagent flag: {exc}")

    raw_path = payload.get("transcript_path")
    if not isinstance(raw_path, str) or not raw_path:
        outcome.messages.append("the event has no transcript_path; no context written")
        return outcome
    from agentrt.claude.condense import Budget, SubagentTask, condense
    from agentrt.claude.repo_context import RepoSettings, find_repository
    from agentrt.claude.transcripts import find_current_transcript, parse_transcript

    session = payload.get("session_id")
    path = find_current_transcript(raw_path, session if isinstance(session, str) else None)
    if not path.is_file():
        outcome.messages.append(f"transcript {path} does not exist; no context written")
        return outcome
    budget = Budget(
        total_tokens=total_tokens or _int_env(env, TOTAL_ENV, 18_000),
        chunk_tokens=chunk_tokens or _int_env(env, CHUNK_ENV, 18_000),
    )
    tool_use_id = payload.get("tool_use_id")
    task = SubagentTask.from_tool_input(
        tool_input, tool_use_id if isinstance(tool_use_id, str) else None
    )
    transcript = parse_transcript(path)
    settings = (
        repo_settings if repo_settings is not None else RepoSettings.from_env(env, outcome.messages)
    )
    repository = find_repository(project) if settings.enabled else None
    # The repository part's share is kept from the transcript; it gets whatever the condensed
    # transcript leaves, and the transcript gets everything when there is no repository part.
    reserve = int(budget.total_tokens * settings.share) if repository is not None else 0
    if budget.total_tokens - reserve < 200:
        reserve = 0
    condensed = condense(
        transcript, task, replace(budget, total_tokens=budget.total_tokens - reserve)
    )
    chunks = list(condensed.chunks)
    if repository is not None:
        from agentrt.claude.repo_context import RepoContext

        try:
            outcome.repo = _repository_part(
                repository, project, root, env, transcript, task, budget, condensed, settings
            )
        except Exception as exc:  # an optional part never costs the subagent its transcript
            outcome.repo = RepoContext(
                message=f"repository context skipped: {type(exc).__name__}: {exc}"
            )
        if outcome.repo.message:
            outcome.messages.append(outcome.repo.message)
        if outcome.repo.text:
            chunks.append(outcome.repo.text)
        elif reserve:  # nothing to add: the transcript may have the whole budget
            condensed = condense(transcript, task, budget)
            chunks = list(condensed.chunks)

    folder.mkdir(parents=True, exist_ok=True)
    if not _inside(folder, root):
        raise RuntimeError(f"output folder {folder} resolves outside {root}; nothing written")
    _clear_chunks(folder, root, outcome, remove_folder=False)
    for number, chunk in enumerate(chunks, 1):
        target = folder / f"current_transcript_{number:03d}.txt"
        target.write_text(chunk, encoding="utf-8", newline="\n")
        outcome.written.append(target)
    files = ", ".join(str(p) for p in outcome.written)
    what = f"the parent session's context ({condensed.total_tokens} tokens)"
    if outcome.repo is not None and outcome.repo.text:
        what += (
            f" and repository context for its task ({outcome.repo.tokens} tokens, "
            f"{outcome.repo.items} excerpts of {len(outcome.repo.files)} files)"
        )
    outcome.stdout = json.dumps(
        {
            "hookSpecificOutput": {
                "hookEventName": "PreToolUse",
                "additionalContext": (
                    f"agentrt wrote {what} for this {task.subagent_type} subagent, "
                    f"{len(outcome.written)} file(s): {files}"
                ),
            }
        }
    )
    return outcome


def _transcript_cwd(transcript: Transcript) -> str | None:
    return next(
        (e.raw["cwd"] for e in transcript.entries if isinstance(e.raw.get("cwd"), str)), None
    )


def edited_in_project(
    edited: Sequence[str], project: Path, transcript_cwd: str | None
) -> list[str]:
    """The edited files (paths as the transcript has them) as paths relative to ``project``,
    most recently edited first; paths outside the project are left out."""
    out: list[str] = []
    bases = [str(project), str(project.resolve())]
    if transcript_cwd:
        bases.append(transcript_cwd)
    for path in edited:
        rel = path if not os.path.isabs(path) else None
        for base in bases:
            prefix = base.rstrip("/") + "/"
            if rel is None and path.startswith(prefix):
                rel = path[len(prefix) :]
        if rel and not rel.startswith("../") and rel not in out:
            out.append(rel)
    return out


def _repository_part(
    repository: Path,
    project: Path,
    output: Path,
    env: Mapping[str, str],
    transcript: Transcript,
    task: SubagentTask,
    budget: Budget,
    condensed: Condensed,
    settings: RepoSettings,
) -> RepoContext:
    """The repository part within what the condensed transcript leaves (one file at most)."""
    from agentrt.claude.repo_context import repository_context, store_directory

    room = min(budget.total_tokens - condensed.total_tokens, budget.chunk_tokens)
    prefer = edited_in_project(condensed.edited_files, repository, _transcript_cwd(transcript))
    # The hook's own output (other subagents' context files) is not repository content.
    exclude: list[str] = []
    with contextlib.suppress(OSError, ValueError):
        exclude.append("/" + output.resolve().relative_to(repository).as_posix() + "/")
    return repository_context(
        repository,
        task.query,
        room,
        prefer=prefer,
        exclude=exclude,
        store_dir=store_directory(project, env),
        seconds=settings.seconds,
        encoding=budget.encoding,
        env=env,
    )


def run_hook(
    stdin_text: str,
    *,
    output: str | None = None,
    total_tokens: int | None = None,
    chunk_tokens: int | None = None,
    env: Mapping[str, str] | None = None,
    repo_settings: RepoSettings | None = None,
) -> HookOutcome:
    """Decode the event and handle it; never raises and never blocks (exit code 0)."""
    try:
        payload = json.loads(stdin_text)
    except ValueError as exc:
        return HookOutcome(messages=[f"stdin is not a JSON hook event ({exc}); nothing done"])
    if not isinstance(payload, dict):
        return HookOutcome(messages=["stdin is JSON but not an object; nothing done"])
    try:
        return handle_event(
            payload,
            output=output,
            total_tokens=total_tokens,
            chunk_tokens=chunk_tokens,
            env=env,
            repo_settings=repo_settings,
        )
    except Exception as exc:  # a hook must never break Claude Code's tool call
        return HookOutcome(
            messages=[f"internal error ({type(exc).__name__}: {exc}); nothing blocked"]
        )
