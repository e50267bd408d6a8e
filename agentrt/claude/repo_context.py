"""Repository context for a subagent: what its task needs from the project's files.

The hook (:mod:`agentrt.claude.hook`) hands a subagent the parent session condensed to a budget;
when the session's project directory is a git repository, the subagent's task (its
description and prompt) is also run as a context-manager query over the repository
(:func:`agentrt.context.select.select`), and the best units fill what the condensed transcript
leaves of the budget, files the session edited first (``select``'s ``prefer``).

What counts as a repository: the project directory when it, or a folder above it, holds
``.git`` (a directory, or the file a worktree or submodule has). Only the project directory
is indexed, not the whole enclosing repository. A folder that is not under git is never
indexed: it may be a home directory or a dump of anything.

Latency: the hook runs before every subagent, so the selection has a time limit
(``AGENTRT_HOOK_REPO_SECONDS``, 5 s by default). The index is cached in the context store
(``$AGENTRT_HOME/context``, by default ``<project>/.agentrt/context``) and refreshed
incrementally, so only the first selection in a repository pays for parsing it. When the
limit is reached (a large repository's first index), the repository part is skipped for this
subagent, the hook says so on stderr, and a detached background process
(``python -m agentrt.claude.repo_context warm``) finishes the index for the next one.

What is handed over is fenced and labelled as untrusted data
(:func:`agentrt.context.untrusted.fence_untrusted`): a file of the repository may hold text
written to steer a model, and it must stay material, not instructions.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from agentrt.context.select import Selection

__all__ = [
    "ENABLED_ENV",
    "SECONDS_ENV",
    "SHARE_ENV",
    "RepoContext",
    "RepoSettings",
    "find_repository",
    "render_repository_context",
    "repository_context",
    "store_directory",
]

ENABLED_ENV = "AGENTRT_HOOK_REPO_CONTEXT"
SHARE_ENV = "AGENTRT_HOOK_REPO_SHARE"
SECONDS_ENV = "AGENTRT_HOOK_REPO_SECONDS"
DEFAULT_SHARE = 0.3
MAX_SHARE = 0.9
DEFAULT_SECONDS = 5.0
#: Below this many tokens of room, a repository part is not worth its header.
MIN_TOKENS = 150
#: A warm-up lock older than this is stale whatever its process.
_WARM_LOCK_SECONDS = 30 * 60
_OFF = frozenset({"0", "off", "false", "no", "disabled"})
_ON = frozenset({"1", "on", "true", "yes", "enabled"})


@dataclass(frozen=True, slots=True)
class RepoSettings:
    """Whether the hook adds repository context, its reserved share, and its time limit."""

    enabled: bool = True
    share: float = DEFAULT_SHARE  #: of the total budget, kept from the transcript for it
    seconds: float = DEFAULT_SECONDS  #: time limit of the selection

    @classmethod
    def from_env(cls, env: Mapping[str, str], messages: list[str]) -> RepoSettings:
        """Settings from the environment; a malformed value is reported in ``messages`` and
        replaced by its default (a setting of an optional part never costs the transcript)."""
        enabled = True
        raw = env.get(ENABLED_ENV, "").strip().lower()
        if raw in _OFF:
            enabled = False
        elif raw and raw not in _ON:
            messages.append(f"{ENABLED_ENV}={raw!r} is not on or off; repository context stays on")
        share = _float_env(env, SHARE_ENV, DEFAULT_SHARE, 0.0, MAX_SHARE, messages)
        seconds = _float_env(env, SECONDS_ENV, DEFAULT_SECONDS, 0.0, 600.0, messages)
        return cls(enabled and share > 0, share, seconds)


def _float_env(
    env: Mapping[str, str],
    name: str,
    default: float,
    low: float,
    high: float,
    messages: list[str],
) -> float:
    raw = env.get(name, "").strip()
    if not raw:
        return default
    try:
        value = float(raw)
    except ValueError:
        value = float("nan")
    if not low <= value <= high:  # NaN fails too
        messages.append(
            f"{name}={raw!r} is not a number from {low:g} to {high:g}; using {default:g}"
        )
        return default
    return value


def find_repository(project: Path) -> Path | None:
    """``project`` (resolved) when it is inside a git work tree, else None."""
    try:
        root = project.resolve()
    except (OSError, RuntimeError):
        return None
    if not root.is_dir():
        return None
    for folder in (root, *root.parents):
        with contextlib.suppress(OSError):
            if (folder / ".git").exists():
                return root
    return None


def store_directory(project: Path, env: Mapping[str, str]) -> Path:
    """The context store: ``$AGENTRT_HOME/context``, ``AGENTRT_HOME`` relative to the project
    and ``<project>/.agentrt`` by default (as ``agentrt context select`` run there)."""
    home = env.get("AGENTRT_HOME")
    base = Path(home).expanduser() if home else Path(".agentrt")
    return (base if base.is_absolute() else project / base) / "context"


@dataclass
class RepoContext:
    """The repository part of what a subagent is handed (``text`` empty when there is none)."""

    text: str = ""
    tokens: int = 0
    items: int = 0
    files: list[str] = field(default_factory=list)  #: delivered files, in order
    preferred: list[str] = field(default_factory=list)  #: edited files that were delivered
    seconds: float = 0.0
    index_source: str | None = None  #: built, store or memory (see ``IndexStats``)
    message: str | None = None  #: why there is no repository part, for the hook's log


# --------------------------------------------------------------------------------------------
# Rendering


_MAX_LISTED = 8


def _header(root: Path, query_note: str, preferred: Sequence[str]) -> str:
    listed = ", ".join(preferred[:_MAX_LISTED])
    if len(preferred) > _MAX_LISTED:
        listed += f" and {len(preferred) - _MAX_LISTED} more"
    first = f"; files the parent session edited come first: {listed}" if preferred else ""
    return (
        "# Repository context (selected by agentrt for this subagent's task)\n"
        f"Repository: {root}. The parts of its files most relevant to your task ({query_note}"
        f"{first}), as they are on disk now. Each excerpt is headed `## path:start-end (kind)` "
        "with the file's own line numbers; a skeleton shows a file's outline with bodies "
        "elided. Read the files for more.\n"
    )


def render_repository_context(
    selection: Selection, root: Path, preferred: Sequence[str] = ()
) -> str:
    """The repository part as handed to the subagent: a header, then the selection's Markdown
    fenced as untrusted data."""
    from agentrt.context.untrusted import fence_untrusted

    header = _header(root, "its description and prompt were the search query", preferred)
    return header + fence_untrusted(selection.to_markdown(), "files of the repository")


# --------------------------------------------------------------------------------------------
# Selecting within a time limit


def _run_limited(fn: Callable[[], Any], seconds: float) -> tuple[bool, Any]:
    """``(True, result)`` when ``fn`` returns within ``seconds``, ``(False, None)`` otherwise.

    ``fn`` runs in a daemon thread: when it is late, the hook goes on without it (and the
    hook's process exits without waiting for it). Worker processes it started meanwhile (the
    index's parsing pool) are ended, by their ids, so none outlives the hook holding its
    output pipes open.
    """
    import multiprocessing

    before = {p.pid for p in multiprocessing.active_children()}
    box: dict[str, Any] = {}

    def target() -> None:
        try:
            box["result"] = fn()
        except BaseException as exc:  # reported by the caller
            box["error"] = exc

    thread = threading.Thread(target=target, name="agentrt-hook-repo-context", daemon=True)
    thread.start()
    thread.join(seconds)
    if thread.is_alive():
        for child in multiprocessing.active_children():
            if child.pid not in before:
                with contextlib.suppress(OSError, ValueError):
                    child.kill()
        return False, None
    if "error" in box:
        raise box["error"]
    return True, box.get("result")


def _warm_lock(store_dir: Path, root: Path) -> Path:
    digest = hashlib.blake2b(str(root).encode("utf-8", "surrogatepass"), digest_size=8)
    return store_dir / f"hook-warm-{digest.hexdigest()}.lock"


def _lock_is_live(lock: Path) -> bool:
    try:
        age = time.time() - lock.stat().st_mtime
        pid = int(lock.read_text().strip() or "0")
    except (OSError, ValueError):
        return False
    if age > _WARM_LOCK_SECONDS:
        return False
    if pid <= 0:
        return age < 10  # being written by a hook that is starting the warmer
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def start_warmer(
    root: Path,
    store_dir: Path,
    exclude: Sequence[str] = (),
    env: Mapping[str, str] | None = None,
) -> str:
    """Start a detached process that builds ``root``'s index in ``store_dir``, unless one is
    already at it. Returns what happened, for the hook's log."""
    store_dir.mkdir(parents=True, exist_ok=True)
    lock = _warm_lock(store_dir, root)
    if lock.exists():
        if _lock_is_live(lock):
            return "a background process is already indexing it"
        lock.unlink(missing_ok=True)
    try:
        fd = os.open(lock, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o644)
    except FileExistsError:
        return "a background process is already indexing it"
    try:
        process = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "agentrt.claude.repo_context",
                "warm",
                str(root),
                str(store_dir),
                str(lock),
                *exclude,
            ],
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            close_fds=True,
            start_new_session=True,
            env=dict(os.environ if env is None else env),
        )
    except OSError as exc:
        os.close(fd)
        lock.unlink(missing_ok=True)
        return f"the background indexer could not start ({exc})"
    with os.fdopen(fd, "w") as f:
        f.write(str(process.pid))
    # Reaped when it ends if this process lives that long (the hook's does not: the indexer is
    # then adopted by init).
    threading.Thread(target=process.wait, name="agentrt-hook-warm-wait", daemon=True).start()
    return f"a background process (pid {process.pid}) is indexing it for the next subagents"


def repository_context(
    root: Path,
    query: str,
    budget: int,
    *,
    prefer: Sequence[str] = (),
    exclude: Sequence[str] = (),
    store_dir: Path,
    seconds: float = DEFAULT_SECONDS,
    encoding: str | None = None,
    env: Mapping[str, str] | None = None,
) -> RepoContext:
    """The repository part for a subagent whose task is ``query``, at most ``budget`` tokens
    of ``encoding`` as rendered (header and fence included), files in ``prefer`` first and
    files matching ``exclude`` (gitignore-style patterns, such as the hook's own output folder)
    never.

    Never raises for a problem of the repository: the returned ``message`` says why there is
    no repository part (nothing relevant, too little room, the time limit, an error).
    """
    started = time.perf_counter()
    if not query.strip():
        return RepoContext(message="the subagent's task has no description or prompt to query")
    from agentrt.context.tokens import count_tokens, default_encoding_name

    encoding = encoding or default_encoding_name()

    def count(text: str) -> int:
        return count_tokens(text, encoding)

    # What the frame costs: the header (with every preferred file listed: an upper bound) and
    # the fence, around an empty selection.
    frame = _header(root, "its description and prompt were the search query", list(prefer))
    from agentrt.context.untrusted import fence_untrusted

    overhead = count(frame + fence_untrusted("", "files of the repository")) + 16
    if budget - overhead < MIN_TOKENS:
        return RepoContext(message=f"no room for repository context ({budget} tokens left)")

    def run() -> Selection:
        from agentrt.context.select import select
        from agentrt.context.store import ContextStore

        store = ContextStore(store_dir)
        return select(
            root,
            query,
            budget - overhead,
            encoding=encoding,
            store=store,
            prefer=prefer,
            exclude=exclude,
        )

    if seconds <= 0:
        done, selection = False, None
    else:
        done, selection = _run_limited(run, seconds)
    if not done:
        warm = start_warmer(root, store_dir, exclude, env)
        return RepoContext(
            seconds=time.perf_counter() - started,
            message=(
                f"repository context skipped: selecting from {root} took longer than "
                f"{seconds:g} s (its first index?); {warm}"
            ),
        )
    assert selection is not None
    preferred_set = set(selection.stats.get("preferred", []))
    items = list(selection.items)
    while items:
        delivered = list(dict.fromkeys(i.path for i in items))
        preferred = [p for p in delivered if p in preferred_set]
        selection.items = items
        text = render_repository_context(selection, root, preferred)
        tokens = count(text)
        if tokens <= budget:
            return RepoContext(
                text=text,
                tokens=tokens,
                items=len(items),
                files=delivered,
                preferred=preferred,
                seconds=time.perf_counter() - started,
                index_source=selection.stats.get("index", {}).get("index_source"),
            )
        items.remove(min(items, key=lambda item: item.score))
    return RepoContext(
        seconds=time.perf_counter() - started,
        index_source=selection.stats.get("index", {}).get("index_source"),
        message=selection.message or f"nothing in {root} is relevant to the subagent's task",
    )


# --------------------------------------------------------------------------------------------
# The background indexer


def _warm(root: str, store_dir: str, lock: str, exclude: Sequence[str]) -> int:
    """Build ``root``'s index in the store (what a later selection will find), then release
    the lock."""
    try:
        from agentrt.context.select import select
        from agentrt.context.store import ContextStore

        select(root, "", 1, store=ContextStore(store_dir), exclude=exclude)
        return 0
    except Exception:
        return 1
    finally:
        with contextlib.suppress(OSError):
            Path(lock).unlink()


def main(argv: list[str] | None = None) -> int:
    """``python -m agentrt.claude.repo_context warm ROOT STORE LOCK [EXCLUDE…]`` (started by
    the hook; the same ``EXCLUDE`` patterns as the hook's selection, so it finds the index)."""
    args = sys.argv[1:] if argv is None else argv
    if len(args) < 4 or args[0] != "warm":
        sys.stderr.write(
            "usage: python -m agentrt.claude.repo_context warm ROOT STORE LOCK [EXCLUDE...]\n"
        )
        return 2
    return _warm(args[1], args[2], args[3], args[4:])


if __name__ == "__main__":
    sys.exit(main())
