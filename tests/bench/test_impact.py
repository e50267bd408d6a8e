"""bench.impact on git trees: a run on a tiny snapshot, with and without its history
(the set options are tested with bench.context_selection's).

Trees come out of tiny git repositories made here, not ../shared or real snapshots.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from bench import context_selection as cs
from bench import impact as bi
from tests.bench.helpers import git as _git
from tests.bench.helpers import isolate_git


@pytest.fixture(autouse=True)
def _isolated_git(monkeypatch: pytest.MonkeyPatch) -> None:
    isolate_git(monkeypatch)


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
    # A fix whose repository has no snapshot is skipped, and the header counts it among
    # the fixes it names ("2 fixes (1 skipped …): 1 changes measured").
    gone = cs.Issue("t-2", "owner/gone", base, "x", ["a.py"], [("a.py", ["x"], [])], "python", [1])
    both = bi.run([issue, gone], verbose=False, trees=trees)
    assert both.skipped == ["t-2"]
    assert bi.table(both, cs.SETS["polyglot"]).startswith(
        "2 fixes (1 skipped: no tree; 0 whose gold hunks are not in the tree; 0 errors): "
        "1 changes measured."
    )
