"""agentrt.context.git: the hardened git runner and the file-reading HEAD lookup."""

from __future__ import annotations

import os
import pty
import shutil
import subprocess
import time
from pathlib import Path

import pytest

from agentrt.context.git import git_stdout, head_commit, in_work_tree, run_git


@pytest.fixture(autouse=True)
def _isolated_git(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """No user or system git config, and an identity for commits."""
    monkeypatch.setenv("HOME", str(tmp_path))
    monkeypatch.setenv("GIT_CONFIG_NOSYSTEM", "1")
    monkeypatch.setenv("GIT_CONFIG_GLOBAL", os.devnull)
    for who in ("AUTHOR", "COMMITTER"):
        monkeypatch.setenv(f"GIT_{who}_NAME", "t")
        monkeypatch.setenv(f"GIT_{who}_EMAIL", "t@example.com")


def _git(repo: Path, *args: str) -> str:
    """Plain git, for building the fixtures (and showing that the traps are live)."""
    done = subprocess.run(["git", "-C", str(repo), *args], check=True, capture_output=True)
    return done.stdout.decode().strip()


def _repo(path: Path) -> Path:
    path.mkdir(parents=True)
    _git(path, "init", "-q")
    _git(path, "symbolic-ref", "HEAD", "refs/heads/main")
    (path / "a.txt").write_text("one\n")
    _git(path, "add", "a.txt")
    _git(path, "commit", "-q", "-m", "first")
    return path


# --------------------------------------------------------------------------------------------
# run_git


@pytest.fixture
def hostile(tmp_path: Path) -> tuple[Path, Path]:
    """A repository whose .git/config makes git run programs that leave marker files."""
    repo, markers, hooks = _repo(tmp_path / "repo"), tmp_path / "markers", tmp_path / "hooks"
    markers.mkdir()
    hooks.mkdir()
    (repo / ".gitattributes").write_text("* filter=evil\n")
    _git(repo, "add", ".gitattributes")
    _git(repo, "commit", "-q", "-m", "attributes")
    trap = f"sh -c 'touch {markers}/$0' "
    for name in ("pre-commit", "post-commit"):
        for where, folder in (("config", hooks), ("default", repo / ".git" / "hooks")):
            hook = folder / name
            hook.write_text(f"#!/bin/sh\ntouch {markers}/hook-{where}-{name}\n")
            hook.chmod(0o755)
    with (repo / ".git" / "config").open("a") as fh:
        fh.write(
            f"[core]\n\tfsmonitor = {trap}fsmonitor\n\thooksPath = {hooks}\n"
            f"\tpager = {trap}pager\n"
            f'[filter "evil"]\n\tclean = {trap}clean\n\tsmudge = {trap}smudge\n'
            f"\tprocess = {trap}process\n"
        )
    (repo / "a.txt").write_text("two\n")  # git status and diff must look at the contents
    return repo, markers


def test_the_traps_are_live_for_plain_git(hostile: tuple[Path, Path]) -> None:
    repo, markers = hostile
    subprocess.run(["git", "-C", str(repo), "status"], capture_output=True, check=False)
    # (The failing fsmonitor and filter would stop the commit before its hooks.)
    no_traps = ["-c", "core.fsmonitor=false", "-c", "filter.evil.process="]
    subprocess.run(
        ["git", *no_traps, "-C", str(repo), "commit", "-q", "--allow-empty", "-m", "x"],
        capture_output=True,
        check=False,
    )
    primary, secondary = pty.openpty()  # a terminal, so git starts the pager
    try:
        subprocess.run(
            ["git", "-C", str(repo), "log", "-1"],
            stdin=subprocess.DEVNULL,
            stdout=secondary,
            stderr=subprocess.DEVNULL,
            check=False,
            timeout=30,
        )
    finally:
        os.close(primary)
        os.close(secondary)
    fired = {p.name for p in markers.iterdir()}
    assert {"fsmonitor", "hook-config-pre-commit", "pager"} <= fired, fired
    assert fired & {"clean", "process"}, fired


def test_run_git_keeps_the_repository_config_from_running_programs(
    hostile: tuple[Path, Path],
) -> None:
    repo, markers = hostile
    assert run_git(repo, "status", "--porcelain").stdout == b" M a.txt\n"
    assert run_git(repo, "diff", "--name-only").stdout == b"a.txt\n"
    assert run_git(repo, "add", "a.txt").returncode == 0  # runs the clean filter normally
    assert run_git(repo, "commit", "-q", "-m", "second").returncode == 0  # and the hooks
    assert run_git(repo, "log", "-1", "--format=%s").stdout == b"second\n"  # never paged
    assert sorted(p.name for p in markers.iterdir()) == []


def test_git_stdout_answers_or_says_none(tmp_path: Path) -> None:
    repo = _repo(tmp_path / "repo")
    assert git_stdout(repo, "rev-parse", "HEAD") == _git(repo, "rev-parse", "HEAD")
    assert git_stdout(repo, "rev-parse", "--verify", "--quiet", "nope^{commit}") is None
    plain = tmp_path / "plain"
    plain.mkdir()
    result = run_git(plain, "rev-parse", "--is-inside-work-tree")
    assert result.returncode != 0 and result.stderr


def _fake_git(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, script: str) -> None:
    script = script.replace("sleep", shutil.which("sleep") or "sleep")
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    git = bin_dir / "git"
    git.write_text(f"#!/bin/sh\n{script}\n")
    git.chmod(0o755)
    monkeypatch.setenv("PATH", str(bin_dir))


def test_a_timeout_is_honoured(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    _fake_git(tmp_path, monkeypatch, "exec sleep 30")
    start = time.monotonic()
    with pytest.raises(subprocess.TimeoutExpired):
        run_git(tmp_path, "status", timeout=0.5)
    assert git_stdout(tmp_path, "status", timeout=0.5) is None
    assert time.monotonic() - start < 10


def test_the_timeout_covers_the_whole_call(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    # Each git process takes 0.6 s: the config lookup fits in 1 s, the command no longer does.
    _fake_git(tmp_path, monkeypatch, "exec sleep 0.6")
    with pytest.raises(subprocess.TimeoutExpired):
        run_git(tmp_path, "status", timeout=1.0)


def test_missing_git_is_a_value_error(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    empty = tmp_path / "empty"
    empty.mkdir()
    monkeypatch.setenv("PATH", str(empty))
    with pytest.raises(ValueError, match="git is not installed"):
        run_git(tmp_path, "status")
    assert git_stdout(tmp_path, "status") is None


# --------------------------------------------------------------------------------------------
# head_commit


def test_head_commit_on_a_branch(tmp_path: Path) -> None:
    repo = _repo(tmp_path / "repo")
    assert (repo / ".git" / "refs" / "heads" / "main").is_file()
    assert head_commit(repo) == _git(repo, "rev-parse", "HEAD")
    assert head_commit(str(repo)) == _git(repo, "rev-parse", "HEAD")


def test_head_commit_detached(tmp_path: Path) -> None:
    repo = _repo(tmp_path / "repo")
    first = _git(repo, "rev-parse", "HEAD")
    _git(repo, "commit", "-q", "--allow-empty", "-m", "second")
    _git(repo, "checkout", "-q", "--detach", first)
    assert not (repo / ".git" / "HEAD").read_text().startswith("ref:")
    assert head_commit(repo) == _git(repo, "rev-parse", "HEAD") == first


def test_head_commit_packed_ref(tmp_path: Path) -> None:
    repo = _repo(tmp_path / "repo")
    _git(repo, "tag", "v1")  # another packed ref before the branch's line
    _git(repo, "pack-refs", "--all", "--prune")
    assert not (repo / ".git" / "refs" / "heads" / "main").exists()
    assert head_commit(repo) == _git(repo, "rev-parse", "HEAD")


def test_head_commit_unborn_branch_is_the_ref_name(tmp_path: Path) -> None:
    repo = tmp_path / "repo"
    repo.mkdir()
    _git(repo, "init", "-q")
    _git(repo, "symbolic-ref", "HEAD", "refs/heads/main")
    assert head_commit(repo) == "refs/heads/main"


def test_head_commit_outside_a_repository(tmp_path: Path) -> None:
    assert head_commit(tmp_path) is None
    assert head_commit(tmp_path / "missing") is None
    repo = _repo(tmp_path / "repo")
    (repo / "sub").mkdir()
    assert head_commit(repo / "sub") is None  # it reads repo/.git only: no search upwards


def test_in_work_tree_looks_for_a_git_at_or_above(tmp_path: Path) -> None:
    repo = tmp_path / "repo"
    (repo / "src" / "deep").mkdir(parents=True)
    assert not in_work_tree(repo / "src" / "deep")
    _git(repo, "init", "-q")
    assert in_work_tree(repo) and in_work_tree(repo / "src" / "deep")
    (tmp_path / "wt").mkdir()
    (tmp_path / "wt" / ".git").write_text("gitdir: ../repo/.git/worktrees/wt\n")  # a worktree
    assert in_work_tree(tmp_path / "wt")
