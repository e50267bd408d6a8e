"""bench.impact on git trees: the set options, and a run on a tiny snapshot with history.

Trees come out of tiny git repositories made here, not ../shared or real snapshots.
"""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import pytest

from bench import context_selection as cs
from bench import impact as bi


@pytest.fixture(autouse=True)
def _isolated_git(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("GIT_CONFIG_NOSYSTEM", "1")
    monkeypatch.setenv("GIT_CONFIG_GLOBAL", os.devnull)
    for who in ("AUTHOR", "COMMITTER"):
        monkeypatch.setenv(f"GIT_{who}_NAME", "t")
        monkeypatch.setenv(f"GIT_{who}_EMAIL", "t@example.com")


def _git(*args: str) -> str:
    return subprocess.run(["git", *args], check=True, capture_output=True).stdout.decode().strip()


@pytest.mark.parametrize("name", ["polyglot", "python-git"])
def test_git_sets_need_their_snapshots(
    name: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    with pytest.raises(SystemExit) as exit_:
        bi.main(["--set", name, "--mirrors", str(tmp_path / "none"), "--no-write"])
    assert exit_.value.code == 2
    err = capsys.readouterr().err
    assert f"--set {name} needs --mirrors" in err and "Traceback" not in err


PARSER = "def parse_dash(text):\n    return text.startswith('-')\n"
#: Shares no word with the parser: only the history ties it to the parser.
SETTINGS = "WINDOW_WIDTH = 80\nCOLOUR_DEPTH = 24\n"


def test_a_fix_of_two_files_on_a_snapshot_tree_with_and_without_history(
    tmp_path: Path,
) -> None:
    work = tmp_path / "work"
    (work / "src").mkdir(parents=True)
    (work / "src" / "parse.py").write_text(PARSER)
    (work / "src" / "settings.py").write_text(SETTINGS)
    _git("-C", str(work), "init", "-q")
    _git("-C", str(work), "add", "-A")
    _git("-C", str(work), "commit", "-q", "-m", "import")
    for n in range(3):  # the parser never changed without the settings
        (work / "src" / "parse.py").write_text(PARSER + f"# {n}\n")
        (work / "src" / "settings.py").write_text(SETTINGS + f"# {n}\n")
        _git("-C", str(work), "commit", "-q", "-am", f"parser and settings {n}")
    base = _git("-C", str(work), "rev-parse", "HEAD")
    _git("clone", "-q", "--bare", str(work), str(tmp_path / "mirrors" / "Owner+Tiny" / "repo"))
    issue = cs.Issue(
        "t-1", "owner/tiny", base, "dashes", ["src/parse.py", "src/settings.py"],
        [("src/parse.py", ["    return text.startswith('-')"], [])], "python", [2],
    )  # fmt: skip
    trees = cs.GitTrees(tmp_path / "mirrors", tmp_path / "cache")
    with_history = bi.run([issue], verbose=False, trees=trees)
    without = bi.run([issue], verbose=False, trees=trees, history=False)
    assert with_history.with_history == [3] and without.with_history == []
    for budget in bi.BUDGETS:
        assert with_history.all_others[("impact", budget)].hits == 1
        assert without.all_others[("impact", budget)].hits == 0
        assert with_history.change[("impact", budget)].hits == 1  # the hunks still first
    assert with_history.why_counts.get("co-changed") and "co-changed" not in without.why_counts
    assert "3 commits before the base" in bi.table(with_history, cs.SETS["polyglot"])
