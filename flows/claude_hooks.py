"""Claude Code hooks: hand a subagent its parent session's context, condensed to a budget.

``agentrt hook`` speaks Claude Code's command-hook protocol: the event arrives as JSON on stdin
(``session_id``, ``transcript_path``, ``cwd``, ``hook_event_name``, ``tool_name``,
``tool_input``, …); exit code 0 means success, and for ``PreToolUse`` a JSON object with
``hookSpecificOutput`` may be printed on stdout. Exit code 2 would block the tool call; this
hook never blocks: on any internal error it reports on stderr and exits 0.

It is a drop-in for the subagent hooks of cc-sessions (``cc_sessions/python/hooks/
subagent_hooks.py`` and the subagent part of ``post_tool_use.py``):

* ``PreToolUse`` of ``Task``/``Agent``: writes the condensed context of the parent session
  (:func:`agentrt.context.condense.condense`) to ``sessions/transcripts/<subagent_type>/
  current_transcript_NNN.txt`` under the project directory, where cc-sessions' agents read it,
  after clearing that folder's old chunk files; and sets ``flags.subagent`` in
  ``sessions/sessions-state.json`` when that file exists, under cc-sessions' lock directory.
* ``PostToolUse`` of the same tools: removes those chunk files and clears the flag.

The output folder can be moved with ``--output`` or ``AGENTRT_HOOK_OUTPUT``. Deletions are
limited to chunk files (``current_transcript_NNN.txt``) whose resolved path lies inside that
folder, the per-type folders once empty, and the lock directory the hook itself created.

``agentrt hook install`` registers the hook in ``<project>/.claude/settings.json``.

Importing this module costs little (no Prefect, no tokenizer): the heavy parts are imported when
an event needs them, since every hook call is a fresh process inside Claude Code's tool loop.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import sys
import tempfile
import time
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

from agentrt.errors import AgentrtError

if TYPE_CHECKING:
    import typer

    app: typer.Typer  # built on first access, see __getattr__

__all__ = [
    "HOOK_COMMAND",
    "MATCHER",
    "OUTPUT_ENV",
    "HookOutcome",
    "InstallError",
    "app",
    "handle_event",
    "install_hooks",
    "main",
    "run_hook",
    "set_subagent_flag",
]

HOOK_COMMAND = "agentrt hook"
#: Claude Code matches tool names against this regex; newer releases call the tool "Agent".
MATCHER = "Task|Agent"
OUTPUT_ENV = "AGENTRT_HOOK_OUTPUT"
TOTAL_ENV = "AGENTRT_HOOK_TOTAL_TOKENS"
CHUNK_ENV = "AGENTRT_HOOK_CHUNK_TOKENS"
SUBAGENT_TOOLS = frozenset({"Task", "Agent"})
DEFAULT_OUTPUT = Path("sessions") / "transcripts"
STATE_FILE = Path("sessions") / "sessions-state.json"
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
# cc-sessions state flag, under its lock-directory protocol


@contextmanager
def _state_lock(
    lock_dir: Path, *, timeout: float = 1.0, poll: float = 0.05, stale_after: float = 30.0
) -> Iterator[None]:
    """cc-sessions' lock: a directory created atomically with ``mkdir``, holding
    ``lock_info.json`` (``pid``, ``timestamp`` from ``time.monotonic()``, ``host``).

    Like cc-sessions, a lock older than ``stale_after`` seconds or held by a dead process is
    removed. Unlike cc-sessions, a live lock is never forced after ``timeout``: TimeoutError is
    raised and the caller leaves the state alone (a hook must not break another's update).
    Removal is exact (``lock_info.json``, then ``rmdir``), never recursive.
    """
    info = lock_dir / "lock_info.json"
    start = time.monotonic()
    while True:
        if lock_dir.is_dir() and _lock_is_stale(info, stale_after):
            _remove_lock(lock_dir)
        try:
            lock_dir.mkdir()
        except FileExistsError:
            if time.monotonic() - start > timeout:
                raise TimeoutError(
                    f"{lock_dir} is held by another process (waited {timeout:.1f} s)"
                ) from None
            time.sleep(poll)
            continue
        host = os.uname().nodename if hasattr(os, "uname") else "unknown"
        info.write_text(
            json.dumps({"pid": os.getpid(), "timestamp": time.monotonic(), "host": host})
        )
        break
    try:
        yield
    finally:
        _remove_lock(lock_dir)


def _lock_is_stale(info: Path, stale_after: float) -> bool:
    try:
        data = json.loads(info.read_text())
    except (OSError, ValueError):
        return False  # being written right now, or not ours to judge: wait
    if not isinstance(data, dict):
        return False
    stamp = data.get("timestamp", 0)
    if isinstance(stamp, int | float) and time.monotonic() - stamp > stale_after:
        return True
    pid = data.get("pid")
    if isinstance(pid, int) and pid > 0 and pid != os.getpid():
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return True
        except OSError:
            return False  # exists, owned by someone else
    return False


def _remove_lock(lock_dir: Path) -> None:
    try:
        (lock_dir / "lock_info.json").unlink(missing_ok=True)
        lock_dir.rmdir()
    except OSError:
        pass


def _write_json_atomic(path: Path, data: Any) -> None:
    """Write as cc-sessions does (``indent=2``), via a temporary file and ``os.replace``."""
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            json.dump(data, f, indent=2)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def set_subagent_flag(project: Path, value: bool, *, timeout: float = 1.0) -> bool | None:
    """Set ``flags.subagent`` in cc-sessions' state file, if the project has one.

    Returns the flag as left, or None when there is no state file (cc-sessions not installed).
    Other fields are kept as they are. Raises TimeoutError when the lock stays taken and
    ValueError when the state file is not a JSON object.
    """
    state_file = project / STATE_FILE
    if not state_file.is_file():
        return None
    with _state_lock(state_file.with_suffix(".lock"), timeout=timeout):
        try:
            state = json.loads(state_file.read_text(encoding="utf-8"))
        except ValueError as exc:
            raise ValueError(f"{state_file} is not valid JSON ({exc}); left unchanged") from exc
        if not isinstance(state, dict):
            raise ValueError(f"{state_file} does not hold a JSON object; left unchanged")
        flags = state.get("flags")
        if not isinstance(flags, dict):
            flags = state["flags"] = {}
        if flags.get("subagent") is not value:
            flags["subagent"] = value
            _write_json_atomic(state_file, state)
    return value


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
) -> HookOutcome:
    """Handle one decoded hook event. Errors propagate (``run_hook`` turns them into a
    non-blocking report)."""
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
    from agentrt.context.condense import Budget, SubagentTask, condense
    from agentrt.context.transcripts import find_current_transcript, parse_transcript

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
    condensed = condense(parse_transcript(path), task, budget)

    folder.mkdir(parents=True, exist_ok=True)
    if not _inside(folder, root):
        raise RuntimeError(f"output folder {folder} resolves outside {root}; nothing written")
    _clear_chunks(folder, root, outcome, remove_folder=False)
    for number, chunk in enumerate(condensed.chunks, 1):
        target = folder / f"current_transcript_{number:03d}.txt"
        target.write_text(chunk, encoding="utf-8", newline="\n")
        outcome.written.append(target)
    files = ", ".join(str(p) for p in outcome.written)
    outcome.stdout = json.dumps(
        {
            "hookSpecificOutput": {
                "hookEventName": "PreToolUse",
                "additionalContext": (
                    f"agentrt wrote the parent session's context for this {task.subagent_type} "
                    f"subagent ({condensed.total_tokens} tokens, {len(outcome.written)} "
                    f"file(s)): {files}"
                ),
            }
        }
    )
    return outcome


def run_hook(
    stdin_text: str,
    *,
    output: str | None = None,
    total_tokens: int | None = None,
    chunk_tokens: int | None = None,
    env: Mapping[str, str] | None = None,
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
            payload, output=output, total_tokens=total_tokens, chunk_tokens=chunk_tokens, env=env
        )
    except Exception as exc:  # a hook must never break Claude Code's tool call
        return HookOutcome(
            messages=[f"internal error ({type(exc).__name__}: {exc}); nothing blocked"]
        )


# --------------------------------------------------------------------------------------------
# Installing


class InstallError(AgentrtError, RuntimeError):
    """The settings file cannot be merged (e.g. it is not valid JSON)."""


def _has_command(groups: list[Any], command: str) -> bool:
    for group in groups:
        hooks = group.get("hooks") if isinstance(group, dict) else None
        if isinstance(hooks, list) and any(
            isinstance(h, dict) and h.get("command") == command for h in hooks
        ):
            return True
    return False


def install_hooks(project: Path, command: str = HOOK_COMMAND) -> dict[str, Any]:
    """Add PreToolUse and PostToolUse entries (matcher ``Task|Agent``) running ``command`` to
    ``<project>/.claude/settings.json``, keeping every other setting and hook.

    Idempotent: when both entries are present nothing is written. Before changing an existing
    file its previous content is saved to ``settings.json.bak``. Returns what was done.
    """
    settings = project / ".claude" / "settings.json"
    previous: bytes | None = settings.read_bytes() if settings.is_file() else None
    data: Any = {}
    if previous is not None and previous.strip():
        try:
            data = json.loads(previous)
        except ValueError as exc:
            raise InstallError(
                f"{settings} is not valid JSON ({exc}); fix it (or move it away) and run "
                "`agentrt hook install` again"
            ) from exc
    if not isinstance(data, dict):
        raise InstallError(f"{settings} does not hold a JSON object; fix it and run again")
    hooks = data.setdefault("hooks", {})
    if not isinstance(hooks, dict):
        raise InstallError(f'"hooks" in {settings} is not an object; fix it and run again')
    added = []
    for event in ("PreToolUse", "PostToolUse"):
        groups = hooks.setdefault(event, [])
        if not isinstance(groups, list):
            raise InstallError(f'"hooks.{event}" in {settings} is not a list; fix it and run again')
        if not _has_command(groups, command):
            groups.append({"matcher": MATCHER, "hooks": [{"type": "command", "command": command}]})
            added.append(event)
    backup = None
    if added:
        settings.parent.mkdir(parents=True, exist_ok=True)
        if previous is not None:
            backup = settings.with_name(settings.name + ".bak")
            backup.write_bytes(previous)
        fd, tmp = tempfile.mkstemp(dir=settings.parent, prefix=".settings.", suffix=".tmp")
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            f.write(json.dumps(data, indent=2, ensure_ascii=False) + "\n")
        os.replace(tmp, settings)
    return {
        "settings": str(settings),
        "changed": bool(added),
        "added": [{"event": e, "matcher": MATCHER, "command": command} for e in added],
        "backup": str(backup) if backup else None,
    }


# --------------------------------------------------------------------------------------------
# CLI


def _serve_stdin(output: str | None, total_tokens: int | None, chunk_tokens: int | None) -> int:
    """Read one event from stdin, handle it, write stdout/stderr; return the exit code."""
    if sys.stdin is None or sys.stdin.isatty():
        sys.stderr.write(
            "agentrt hook: expects a Claude Code hook event as JSON on stdin; "
            "register it with `agentrt hook install`\n"
        )
        return 0
    data = sys.stdin.buffer.read().decode("utf-8", errors="replace")
    outcome = run_hook(data, output=output, total_tokens=total_tokens, chunk_tokens=chunk_tokens)
    if outcome.stdout:
        sys.stdout.write(outcome.stdout + "\n")
    for message in outcome.messages:
        sys.stderr.write(f"agentrt hook: {message}\n")
    return outcome.exit_code


_HELP = (
    "Claude Code hook: hands Task/Agent subagents the parent session's context, condensed to a "
    "token budget (cc-sessions compatible). Without a subcommand, reads one hook event as JSON "
    "on stdin."
)


def _build_app() -> typer.Typer:
    """The typer app (``agentrt hook`` and ``agentrt hook install``).

    Built on first access of :data:`app`, so the bare hook process, which never needs it, does
    not pay typer's import.
    """
    # The commands' annotations name ``typer``; typer resolves them in this module's globals.
    global typer
    import typer

    app = typer.Typer(name="hook", invoke_without_command=True, add_completion=False, help=_HELP)

    @app.callback()
    def hook(
        ctx: typer.Context,
        output: Annotated[
            str | None,
            typer.Option(
                "--output",
                envvar=OUTPUT_ENV,
                help="Folder for the chunk files (default: <project>/sessions/transcripts).",
            ),
        ] = None,
        total_tokens: Annotated[
            int | None,
            typer.Option("--total-tokens", envvar=TOTAL_ENV, min=200, help="Token budget in all."),
        ] = None,
        chunk_tokens: Annotated[
            int | None,
            typer.Option("--chunk-tokens", envvar=CHUNK_ENV, min=100, help="Token limit per file."),
        ] = None,
    ) -> None:
        """Handle one Claude Code hook event read from stdin (exit code 0, whatever happens)."""
        if ctx.invoked_subcommand is not None:
            return
        raise typer.Exit(_serve_stdin(output, total_tokens, chunk_tokens))

    @app.command()
    def install(
        project: Annotated[
            Path,
            typer.Option("--project", help="Project whose .claude/settings.json to update."),
        ] = Path("."),
        command: Annotated[
            str, typer.Option("--command", help="Command Claude Code runs for the hook.")
        ] = HOOK_COMMAND,
        as_json: Annotated[
            bool, typer.Option("--json", help="Print what was done as JSON.")
        ] = False,
    ) -> None:
        """Register the hook (PreToolUse and PostToolUse, matcher Task|Agent) in the project."""
        try:
            report = install_hooks(project.resolve(), command)
        except (InstallError, OSError) as exc:
            typer.echo(f"agentrt hook install: {exc}", err=True)
            raise typer.Exit(1) from None
        if as_json:
            typer.echo(json.dumps(report, indent=2))
        elif report["changed"]:
            events = ", ".join(a["event"] for a in report["added"])
            backup = f" (previous file saved to {report['backup']})" if report["backup"] else ""
            typer.echo(f"Added {events} hooks to {report['settings']}{backup}.")
        else:
            typer.echo(f"Hooks already installed in {report['settings']}; nothing changed.")

    return app


def __getattr__(name: str) -> Any:
    """``app`` is built lazily (see :func:`_build_app`)."""
    if name == "app":
        built = globals()["app"] = _build_app()
        return built
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def main(argv: list[str] | None = None) -> None:
    """Entry point. The bare hook call (no arguments: how Claude Code runs it) is served
    without building the typer CLI and exits without tearing the interpreter down, which
    saves a tenth of a second on every subagent start; anything else goes to :data:`app`."""
    args = sys.argv[1:] if argv is None else argv
    if args:
        __getattr__("app")(args)
        return
    code = _serve_stdin(None, None, None)
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(code)  # the parsed transcript needs no orderly teardown


if __name__ == "__main__":
    main()
