"""Git, run the one hardened way, and the checked-out commit read without running git.

A repository under analysis is *data*: its ``.git/config`` can name programs (an fsmonitor
hook, a hooks directory, a pager, filter drivers) that a plain ``git`` command would run.
:func:`run_git` is the only way agentrt runs git; it switches those off for every call,
never waits on a terminal, and gives up after ``timeout`` seconds. :func:`git_stdout` is
the same call for callers that only want the answer or None.

:func:`head_commit` reads ``.git/HEAD`` (and the ref it names) as files: it is on the hot
path of the result cache's key, where starting a process per key costs too much.

This module imports nothing from agentrt (and no Prefect): every layer may use it.
"""

from __future__ import annotations

import os
import subprocess
import time
from pathlib import Path

__all__ = ["DEFAULT_TIMEOUT", "git_stdout", "head_commit", "in_work_tree", "run_git"]

#: Seconds a git command may take (the whole call, the config lookup included).
DEFAULT_TIMEOUT = 120.0

# Switched off for every call whatever the repository's config says: ``--no-pager`` and
# an empty hooks directory are belt and braces (output is captured, and the commands agentrt
# runs read the repository without running hooks), ``core.fsmonitor`` runs on any command
# that looks at the work tree.
_ALWAYS = ("--no-pager", "-c", "core.fsmonitor=false", "-c", f"core.hooksPath={os.devnull}")


def _run(argv: list[str], timeout: float) -> subprocess.CompletedProcess[bytes]:
    try:
        return subprocess.run(
            argv, capture_output=True, stdin=subprocess.DEVNULL, check=False, timeout=timeout
        )
    except FileNotFoundError as exc:
        raise ValueError("git is not installed (no `git` on PATH); install git") from exc


def run_git(
    repo: str | os.PathLike[str], *args: str, timeout: float = DEFAULT_TIMEOUT
) -> subprocess.CompletedProcess[bytes]:
    """``git -C repo ARGS``, with the repository's own config kept from running programs.

    Besides the switches of every call (no pager, no hooks, no fsmonitor), every filter
    driver the repository's config defines is disabled (listing config runs nothing; empty
    values disable a driver). Callers of ``git diff`` that produce patches pass
    ``--no-ext-diff --no-textconv`` themselves. stdin is closed, output is captured as
    bytes and the return code is the caller's to check.

    Raises ValueError when git is not installed and :class:`subprocess.TimeoutExpired` when
    the call takes longer than ``timeout`` seconds in all.
    """
    deadline = time.monotonic() + timeout
    where = ["-C", os.fspath(repo)]
    listed = _run(["git", *where, "config", "--name-only", "--get-regexp", r"^filter\."], timeout)
    drivers = {
        name.rsplit(".", 1)[0]
        for name in os.fsdecode(listed.stdout).split()
        if name.startswith("filter.") and name.count(".") >= 2
    }
    safe = list(_ALWAYS)
    for driver in sorted(drivers):
        for key in ("process", "clean", "smudge"):
            safe += ["-c", f"{driver}.{key}="]
    left = deadline - time.monotonic()
    if left <= 0:
        raise subprocess.TimeoutExpired(["git", *where, *args], timeout)
    return _run(["git", *safe, *where, *args], left)


def git_stdout(
    repo: str | os.PathLike[str], *args: str, timeout: float = DEFAULT_TIMEOUT
) -> str | None:
    """:func:`run_git`'s stripped stdout, or None when git fails, is missing or times out."""
    try:
        done = run_git(repo, *args, timeout=timeout)
    except (OSError, ValueError, subprocess.TimeoutExpired):
        return None
    return done.stdout.decode(errors="replace").strip() if done.returncode == 0 else None


def in_work_tree(path: str | os.PathLike[str]) -> bool:
    """Whether a ``.git`` (a directory, or a worktree's or submodule's file) is at ``path`` or
    a folder above it: whether asking git about ``path`` can answer, found without running
    git."""
    here = os.path.abspath(path)
    while not os.path.exists(os.path.join(here, ".git")):
        parent = os.path.dirname(here)
        if parent == here:
            return False
        here = parent
    return True


def head_commit(repo: str | os.PathLike[str]) -> str | None:
    """The commit checked out in ``repo``, read from ``repo/.git`` as files (no git process).

    A detached HEAD, a loose ref and a packed ref give the commit id; an unborn branch gives
    the ref's name (``refs/heads/main``); None when ``repo/.git`` is not a readable
    directory (not a repository root, or a worktree/submodule whose ``.git`` is a file).
    """
    git = Path(repo) / ".git"
    try:
        head = (git / "HEAD").read_text().strip()
    except OSError:
        return None
    if not head.startswith("ref: "):
        return head
    ref = head[5:]
    try:
        return (git / ref).read_text().strip()
    except OSError:
        pass
    try:
        for line in (git / "packed-refs").read_text().splitlines():
            if line.endswith(" " + ref):
                return line.split()[0]
    except OSError:
        pass
    return ref  # an unborn branch
