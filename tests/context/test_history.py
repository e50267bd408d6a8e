"""Co-change history: read from real git repositories, and what it does to a selection."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import pytest

from agentrt.context.history import MAX_COMMIT_FILES, CoChanges, read_history
from agentrt.context.issue import issue_candidates, select_issue
from agentrt.context.select import HISTORY_BUDGET, select
from agentrt.context.store import ContextStore


def _git(repo: Path, *args: str) -> None:
    subprocess.run(
        ["git", "-c", "user.name=t", "-c", "user.email=t@example.com", "-C", str(repo), *args],
        check=True,
        capture_output=True,
    )


def _commit(repo: Path, files: dict[str, str], message: str) -> None:
    for path, text in files.items():
        (repo / path).parent.mkdir(parents=True, exist_ok=True)
        (repo / path).write_text(text)
    _git(repo, "add", "-A")
    _git(repo, "commit", "-q", "-m", message)


#: The query finds the tokenizer by its words; the registry of token kinds and the page
#: renderer share one word with it each (a file score of about 0.06), but every past change
#: of the tokenizer changed the registry too.
TOKENIZER = '''def scan_numbers(source):
    """Scan numeric literals: integers, floats, hexadecimal literals."""
    out = []
    for word in source.split():
        if word.isdigit():
            out.append(("number", word))
    return out
'''
REGISTRY = """KINDS = {
    "number": 1,
    "name": 2,
}


def kind_of_literals(kind):
    return KINDS[kind]
"""
OTHER = """def render_literals(title, body):
    return "<h1>" + title + "</h1>" + body
"""


@pytest.fixture
def repo(tmp_path: Path) -> Path:
    root = tmp_path / "repo"
    root.mkdir()
    _git(root, "init", "-q")
    _commit(
        root, {"lex/scan.py": TOKENIZER, "lex/kinds.py": REGISTRY, "web/page.py": OTHER}, "import"
    )
    for n in range(3):
        _commit(
            root,
            {
                "lex/scan.py": TOKENIZER + f"\n# revision {n}\n",
                "lex/kinds.py": REGISTRY + f"\n# revision {n}\n",
            },
            f"scanner change {n}",
        )
        _commit(root, {"web/page.py": OTHER + f"\n# page {n}\n"}, f"page {n}")
    return root


def test_read_history_couples_files_changed_together(repo: Path, tmp_path: Path) -> None:
    history = read_history(repo, store=ContextStore(tmp_path / "store"))
    assert history is not None
    # The root commit (an import of everything) and one-file commits couple nothing.
    assert history.n_commits == 3
    related = history.related({"lex/scan.py": 1.0})
    assert related == {"lex/kinds.py": pytest.approx(1.0)}
    assert history.related({"web/page.py": 1.0}) == {}


def test_read_history_reads_only_the_past_of_a_revision(repo: Path) -> None:
    history = read_history(repo, "HEAD~4")  # after the first scanner change only
    assert history is not None and history.n_commits == 1


def test_read_history_of_a_folder_names_paths_inside_it(repo: Path) -> None:
    history = read_history(repo / "lex")
    assert history is not None
    assert history.related({"scan.py": 1.0}) == {"kinds.py": pytest.approx(1.0)}


def test_no_history_outside_git_and_for_big_commits(tmp_path: Path) -> None:
    plain = tmp_path / "plain"
    plain.mkdir()
    assert read_history(plain) is None
    big = tmp_path / "big"
    big.mkdir()
    _git(big, "init", "-q")
    _commit(big, {"a.txt": "a"}, "root")
    _commit(big, {f"f{n}.txt": str(n) for n in range(MAX_COMMIT_FILES + 1)}, "everything")
    assert read_history(big) is None  # a reformatting couples nothing


def test_coupling_discounts_files_that_change_in_every_commit() -> None:
    commits = [["src/a.c", "CHANGELOG"], ["src/a.c", "src/a.h", "CHANGELOG"]]
    commits += [[f"src/x{n}.c", "CHANGELOG"] for n in range(8)]
    related = CoChanges.from_commits(commits).related({"src/a.c": 1.0})
    # The changelog changed with a.c in 2 of 2 commits, a.h in 1: but the changelog changed
    # in all 10 commits, a.h only in that one.
    assert related["src/a.h"] > related["CHANGELOG"]


def test_select_delivers_the_file_that_changes_with_the_best_one(
    repo: Path, tmp_path: Path
) -> None:
    store = ContextStore(tmp_path / "store")
    query = "scan numeric literals: hexadecimal literals are scanned as words"
    # Above this relative score a file is delivered: the registry's own evidence is below it,
    # and its history lifts it above (at most twice its score).
    threshold = 0.08
    without = select(repo, query, HISTORY_BUDGET, store=store, threshold=threshold, history=False)
    assert "lex/kinds.py" not in {item.path for item in without.items}
    assert without.stats["history_commits"] == 0
    with_history = select(repo, query, HISTORY_BUDGET, store=store, threshold=threshold)
    paths = [item.path for item in with_history.items]
    assert paths[0] == "lex/scan.py"
    assert "lex/kinds.py" in paths
    assert "web/page.py" not in paths
    assert with_history.stats["history_commits"] == 3
    # A small budget goes to the best file: no history read.
    small = select(repo, query, HISTORY_BUDGET - 1, store=store, threshold=threshold)
    assert small.stats["history_commits"] == 0
    assert "lex/kinds.py" not in {item.path for item in small.items}


def test_issue_context_ranks_with_history(repo: Path, tmp_path: Path) -> None:
    store = ContextStore(tmp_path / "store")
    query = "scan numeric literals: hexadecimal literals are scanned as words"

    def score(history: bool) -> float:
        found = issue_candidates(repo, query, store=store, history=history)
        return next(f.score for f in found.files if f.path == "lex/kinds.py")

    assert score(True) == pytest.approx(2 * score(False))  # coupled in every commit
    chosen = select_issue(repo, query, HISTORY_BUDGET, store=store)
    assert chosen.stats["history_commits"] == 3


def test_context_select_no_history(repo: Path, tmp_path: Path) -> None:
    from typer.testing import CliRunner

    from agentrt.cli.context import app

    query = "scan numeric literals: hexadecimal literals are scanned as words"
    args = ["select", "--repo", str(repo), "--query", query, "--budget", str(HISTORY_BUDGET)]
    args += ["--format", "json"]
    env = {"AGENTRT_HOME": str(tmp_path / "home")}
    runner = CliRunner()

    def registry_score(*flags: str) -> float:
        result = runner.invoke(app, [*args, *flags], env=env)
        assert result.exit_code == 0, result.output
        items = json.loads(result.stdout)["items"]
        return next(item["score"] for item in items if item["path"] == "lex/kinds.py")

    assert registry_score() > 1.5 * registry_score("--no-history")
