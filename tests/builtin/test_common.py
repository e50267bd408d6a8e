"""Shared pieces: findings, file selection, safe parsing, changed files, markdown."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import pytest

from agentrt.agents.builtin.common import (
    Finding,
    SeverityCounts,
    changed_files,
    is_test_path,
    load_context_index,
    load_python,
    md_table,
    parse_python,
    scan_files,
    select_files,
    sort_findings,
)

from .conftest import RepoFactory


def _finding(severity: str, path: str = "a.py", line: int = 1, rule: str = "X1") -> Finding:
    return Finding(path=path, line=line, rule=rule, severity=severity, message="m", tool="t")  # type: ignore[arg-type]


def test_findings_sort_and_count() -> None:
    findings = [_finding("low", "b.py"), _finding("critical", "c.py"), _finding("high", "a.py")]
    assert [f.path for f in sort_findings(findings)] == ["a.py", "b.py", "c.py"]
    assert [f.severity for f in sort_findings(findings, worst_first=True)] == [
        "critical",
        "high",
        "low",
    ]
    counts = SeverityCounts.of(findings)
    assert (counts.critical, counts.high, counts.low, counts.total) == (1, 1, 1, 3)
    assert counts.describe() == "1 critical, 1 high, 1 low"
    assert _finding("low").location == "a.py:1"


def test_select_files_honours_gitignore_and_restriction(make_repo: RepoFactory) -> None:
    root = make_repo(
        {
            ".gitignore": "generated/\n",
            "a.py": "x = 1\n",
            "pkg/b.py": "y = 2\n",
            "generated/c.py": "z = 3\n",
            "notes.md": "# notes\n",
            "stub.pyi": "def f() -> int: ...\n",
        }
    )
    assert [f.path for f in select_files(root)] == ["a.py", "pkg/b.py"]
    assert [f.path for f in select_files(root, ["./pkg/b.py", "missing.py"])] == ["pkg/b.py"]
    everything = [f.path for f in select_files(root, language=None, stubs=True)]
    assert "notes.md" in everything and "stub.pyi" in everything
    assert "generated/c.py" not in everything


def test_parse_errors_are_recorded_not_raised(make_repo: RepoFactory) -> None:
    root = make_repo({"good.py": "x = 1\n", "bad.py": "def f(:\n    pass\n"})
    sources = load_python(root)
    parsed = [p.path for p in sources]
    assert parsed == ["good.py"]
    [error] = sources.errors
    assert (error.path, error.rule, error.line) == ("bad.py", "syntax-error", 1)
    assert "does not parse" in error.message
    errors: list[Finding] = []
    [bad] = [f for f in select_files(root) if f.path == "bad.py"]
    assert parse_python(bad, errors) is None and len(errors) == 1


def test_is_test_path() -> None:
    assert is_test_path("tests/unit/helpers.py")
    assert is_test_path("pkg/test_x.py") and is_test_path("pkg/x_test.py")
    assert is_test_path("conftest.py")
    assert not is_test_path("pkg/testing.py") and not is_test_path("contest.py")


def test_md_table_escapes_pipes_and_newlines() -> None:
    table = md_table(["a", "b"], [("x|y", "one\ntwo")])
    assert table.splitlines()[2] == "| x\\|y | one two |"


# --------------------------------------------------------------------------------------------
# changed_files


def _git(root: Path, *args: str) -> None:
    env = {
        **os.environ,
        "GIT_AUTHOR_NAME": "t",
        "GIT_AUTHOR_EMAIL": "t@example.com",
        "GIT_COMMITTER_NAME": "t",
        "GIT_COMMITTER_EMAIL": "t@example.com",
        "GIT_CONFIG_GLOBAL": os.devnull,
    }
    subprocess.run(["git", "-C", str(root), *args], check=True, capture_output=True, env=env)


def test_changed_files_in_a_git_repository(make_repo: RepoFactory) -> None:
    root = make_repo(
        {
            ".gitignore": "*.log\n",
            "keep.py": "a = 1\n",
            "edit.py": "b = 1\n",
            "gone.py": "c = 1\n",
            "sub/staged.py": "d = 1\n",
        }
    )
    _git(root, "init", "-q")
    _git(root, "add", ".")
    _git(root, "commit", "-q", "-m", "initial")

    (root / "edit.py").write_text("b = 2\n")  # modified, not staged
    (root / "new.py").write_text("e = 1\n")  # untracked
    (root / "debug.log").write_text("ignored\n")  # untracked but ignored
    assert changed_files(root, "HEAD") == ["edit.py", "new.py"]

    (root / "gone.py").unlink()  # deleted: not a file to analyse
    (root / "sub/staged.py").write_text("d = 2\n")
    _git(root, "add", "sub/staged.py")
    assert changed_files(root, "HEAD") == ["edit.py", "new.py", "sub/staged.py"]
    # Paths are relative to the directory asked about, even inside a larger work tree.
    assert changed_files(root / "sub", "HEAD") == ["staged.py"]


def test_changed_files_errors(make_repo: RepoFactory) -> None:
    plain = make_repo({"a.py": "x = 1\n"})
    with pytest.raises(ValueError, match="not a git work tree"):
        changed_files(plain, "HEAD")
    _git(plain, "init", "-q")
    _git(plain, "add", ".")
    _git(plain, "commit", "-q", "-m", "initial")
    with pytest.raises(ValueError, match="unknown revision 'no-such-branch'"):
        changed_files(plain, "no-such-branch")
    with pytest.raises(ValueError, match="must not start with '-'"):
        changed_files(plain, "--output=/tmp/x")
    with pytest.raises(ValueError, match="not a directory"):
        changed_files(plain / "missing", "HEAD")


def test_context_index_is_the_one_context_gathering_builds(make_repo: RepoFactory) -> None:
    """The analysers' index is select's: same files (its default excludes), same store, so
    after context_gathering it is the index in memory, not a second parse."""
    from agentrt.context.select import select

    root = make_repo(
        {
            "main.go": "package main\n\nfunc Run() {}\n",
            "web/app.min.js": "var a=1;\n",
            "Cargo.lock": "# lock\n",
            "docs/fr.po": 'msgid "x"\n',
        }
    )
    select(root, "Run", 2000)
    index = load_context_index(root)
    assert "main.go" in index.paths and "web/app.min.js" not in index.paths
    assert "Cargo.lock" not in index.paths and "docs/fr.po" not in index.paths
    assert load_context_index(root, scan_files(root)) is index
    go = index.structures[index.position["main.go"]]
    assert (go.language, go.definitions) == ("go", ["main.Run"])
