"""bench.context_selection and bench.trees: the pure parts of the context benchmark.

Trees come out of tiny git repositories made here, not ../shared or real snapshots.
"""

from __future__ import annotations

import json
import os
import subprocess
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path

import pytest

import bench.impact
from agentrt.context.packer import MERGE_GAP
from bench import context_selection as cs
from bench.trees import NoTree, cached_tree, extract_tree, find_mirror
from tests.bench.helpers import git as _git
from tests.bench.helpers import isolate_git


@pytest.fixture(autouse=True)
def _isolated_git(monkeypatch: pytest.MonkeyPatch) -> None:
    isolate_git(monkeypatch)


FILES = {
    "src/parse.c": "int parse(const char *s) {\n    return s[0] == '-';\n}\n",
    "lib/index.js": "function route(path) {\n  return path.split('/');\n}\n",
    "win/crlf.java": "class A {\r\n  int x;\r\n}\r\n",
    "README.md": "# tiny\n",
}


def _snapshot(mirrors: Path, slug: str = "Owner+Tiny") -> tuple[Path, str]:
    """A bare snapshot ``mirrors/<slug>/repo`` of a one-commit repository, and the commit."""
    work = mirrors.parent / "work"
    work.mkdir(parents=True)
    for path, text in FILES.items():
        (work / path).parent.mkdir(parents=True, exist_ok=True)
        (work / path).write_bytes(text.encode())
    (work / "run.sh").write_text("#!/bin/sh\n")
    (work / "run.sh").chmod(0o755)
    os.symlink("src/parse.c", work / "link.c")
    _git("-C", str(work), "init", "-q")
    _git("-C", str(work), "add", "-A")
    _git("-C", str(work), "commit", "-q", "-m", "one")
    commit = _git("-C", str(work), "rev-parse", "HEAD")
    bare = mirrors / slug / "repo"
    _git("clone", "-q", "--bare", "--no-local", str(work), str(bare))
    # Loose objects, so that one can be taken away (a snapshot without its largest blobs).
    objects = bare / "objects"
    for pack in (objects / "pack").glob("*.pack"):
        # unpack-objects skips objects the repository has, so the pack must leave it first.
        moved = pack.rename(mirrors.parent / pack.name)
        pack.with_suffix(".idx").unlink()
        with moved.open("rb") as data:
            subprocess.run(["git", "--git-dir", str(bare), "unpack-objects", "-q"], stdin=data,
                           check=True)  # fmt: skip
    return bare, commit


def test_git_trees_read_the_history_before_the_base_commit(tmp_path: Path) -> None:
    bare, root = _snapshot(tmp_path / "mirrors")
    work = tmp_path / "work"
    commits = []
    for n, pair in enumerate((("src/parse.c", "lib/index.js"), ("README.md", "run.sh"))):
        for path in pair:
            (work / path).write_text(f"changed {n}\n")
        _git("-C", str(work), "commit", "-q", "-am", f"change {n}")
        commits.append(_git("-C", str(work), "rev-parse", "HEAD"))
    _git("-C", str(work), "push", "-q", str(bare), "HEAD:refs/heads/later")
    trees = cs.GitTrees(tmp_path / "mirrors", tmp_path / "cache")
    issue = cs.Issue("t-1", "owner/tiny", commits[0], "q", [], [], "c")
    history = trees.history(issue)
    assert history is not None and history.n_commits == 1  # not the root, nothing later
    assert history.related({"src/parse.c": 1.0}) == {"lib/index.js": pytest.approx(1.0)}
    issue.version = commits[1]
    later = trees.history(issue)
    assert later is not None and later.n_commits == 2
    issue.version = root  # only the root commit: no history
    assert trees.history(issue) is None
    assert cs.tree_history(trees, issue, cs.ContextStore(tmp_path / "store")) is False
    assert cs.tree_history(cs.sdist_tree, issue, cs.ContextStore(tmp_path / "store")) is False


def _drop_blob(bare: Path, path: str, commit: str) -> None:
    sha = _git("--git-dir", str(bare), "rev-parse", f"{commit}:{path}")
    (bare / "objects" / sha[:2] / sha[2:]).unlink()


# ------------------------------------------------------------------------------- bench.trees


def test_extract_tree_writes_the_commit_byte_for_byte(tmp_path: Path) -> None:
    bare, commit = _snapshot(tmp_path / "mirrors")
    info = extract_tree(bare, commit, tmp_path / "tree")
    tree = tmp_path / "tree"
    for path, text in FILES.items():
        assert (tree / path).read_bytes() == text.encode()
    assert os.access(tree / "run.sh", os.X_OK)
    assert os.readlink(tree / "link.c") == "src/parse.c"
    assert (info.files, info.symlinks, info.missing, info.submodules) == (5, 1, [], [])
    assert [p.name for p in tmp_path.iterdir() if p.name.startswith(".")] == []  # no temp left


def test_blobs_the_snapshot_lacks_are_skipped_and_counted(tmp_path: Path) -> None:
    bare, commit = _snapshot(tmp_path / "mirrors")
    _drop_blob(bare, "lib/index.js", commit)
    info = extract_tree(bare, commit, tmp_path / "tree")
    assert info.missing == ["lib/index.js"]
    assert not (tmp_path / "tree" / "lib" / "index.js").exists()
    assert (tmp_path / "tree" / "src" / "parse.c").read_text() == FILES["src/parse.c"]


def test_a_commit_missing_from_the_snapshot_is_a_reason_to_skip(tmp_path: Path) -> None:
    _snapshot(tmp_path / "mirrors")
    with pytest.raises(NoTree, match="base commit not in the snapshot of owner/tiny"):
        cached_tree(tmp_path / "mirrors", "owner/tiny", "0" * 40, tmp_path / "cache")
    with pytest.raises(NoTree, match="no snapshot of other/repo"):
        cached_tree(tmp_path / "mirrors", "other/repo", "0" * 40, tmp_path / "cache")
    assert not (tmp_path / "cache" / "owner+tiny" / ("0" * 40)).exists()


def test_find_mirror_ignores_case_and_takes_either_layout(tmp_path: Path) -> None:
    bare, _ = _snapshot(tmp_path / "mirrors")
    assert find_mirror(tmp_path / "mirrors", "github:owner/TINY") == bare
    assert find_mirror(tmp_path / "mirrors", "owner/other") is None
    flat = tmp_path / "mirrors" / "x+y.git"
    _git("clone", "-q", "--bare", str(bare), str(flat))
    assert find_mirror(tmp_path / "mirrors", "x/y") == flat


def test_cached_tree_is_extracted_once(tmp_path: Path) -> None:
    bare, commit = _snapshot(tmp_path / "mirrors")
    _drop_blob(bare, "README.md", commit)
    tree, info = cached_tree(tmp_path / "mirrors", "owner/tiny", commit, tmp_path / "cache")
    assert tree == tmp_path / "cache" / "owner+tiny" / commit
    assert not (tree / f"{commit}.json").exists()  # the record is beside the tree, not in it
    (tmp_path / "mirrors" / "Owner+Tiny" / "repo").rename(tmp_path / "gone")
    again, info_again = cached_tree(tmp_path / "mirrors", "owner/tiny", commit, tmp_path / "cache")
    assert (again, info_again) == (tree, info)
    assert info_again.missing == ["README.md"]


def test_cached_tree_of_some_folders_writes_only_them(tmp_path: Path) -> None:
    # bench.index_cost's C++ tree: DuckDB's source folders without its tests and data.
    _, commit = _snapshot(tmp_path / "mirrors")
    tree, info = cached_tree(
        tmp_path / "mirrors", "owner/tiny", commit, tmp_path / "cache", ("lib", "src")
    )
    assert tree == tmp_path / "cache" / "owner+tiny" / f"{commit}-lib-src"
    written = sorted(str(p.relative_to(tree)) for p in tree.rglob("*") if p.is_file())
    assert written == ["lib/index.js", "src/parse.c"]
    assert info.files == 2


# ------------------------------------------------------------------ issues, scoring, tables


def test_load_issues_reads_both_sets(tmp_path: Path) -> None:
    hunk = {"path": "a.c", "old_start": 1, "old_len": 1, "removed": ["x"], "context": []}
    common = {"repo": "o/r", "base_commit": "abc", "problem_statement": "q"}
    python_row = {**common, "instance_id": "p-1", "gold_files": ["a.py"], "gold_hunks": [],
                  "pypi_name": "P", "version_hint": "1.0"}  # fmt: skip
    poly_row = {**common, "instance_id": "g-1", "gold_files": ["a.c"], "gold_hunks": [hunk],
                "language": "c", "fetch": "github:O/G"}  # fmt: skip
    data = tmp_path / "set.jsonl"
    data.write_text(json.dumps(python_row) + "\n" + json.dumps(poly_row) + "\n")
    python, poly = cs.load_issues(data)
    assert (python.repo, python.version, python.language) == ("P", "1.0", "python")
    assert (poly.repo, poly.version, poly.language) == ("O/G", "abc", "c")
    assert poly.hunks == [("a.c", ["x"], [])]


@pytest.mark.parametrize(("typed", "key"), [("C++", "cpp"), ("js", "javascript"), ("Go", "go")])
def test_language_names_as_users_type_them(typed: str, key: str) -> None:
    assert cs.language_key(typed) == key


def test_an_unknown_language_names_the_known_ones() -> None:
    with pytest.raises(ValueError, match="known: c, cpp"):
        cs.language_key("cobol")


def test_crlf_files_score_like_lf_files() -> None:
    issue = cs.Issue("i", "o/r", "c", "q", ["A.java"], [("A.java", ["  int x;"], [])])
    delivered = cs.delivered_lines([("A.java", 1, "class A {\r\n  int x;\r\n}\r\n")])
    assert cs.score(issue, [("A.java", ["  int x;"])], delivered) == (True, True)


def test_score_parts_counts_each_gold_file_and_hunk() -> None:
    issue = cs.Issue(
        "i", "o/r", "c", "q", ["a.c", "b.c", "c.c"],
        [("a.c", ["int x;"], []), ("a.c", ["int y;"], []), ("b.c", ["int z;"], [])],
    )  # fmt: skip
    targets = [("a.c", ["int x;"]), ("a.c", ["int y;"]), ("b.c", ["int z;"])]
    delivered = cs.delivered_lines([("a.c", 1, "int x;\n"), ("b.c", 4, "int w;\n")])
    # a.c and b.c delivered, c.c not; of the hunks only a.c's first.
    assert cs.score_parts(issue, targets, delivered) == (2, 1)
    assert cs.score(issue, targets, delivered) == (False, False)
    # Hunks whose lines are not in the tree count as missed, files still count.
    assert cs.score_parts(issue, None, delivered) == (2, 0)


def test_parts_table_shares_are_of_all_gold_hunks_and_files() -> None:
    one = _outcome("cpp", (False, False, True))
    one.n_hunks, one.n_files = 9, 3
    one.hunk_parts = dict(zip(cs.BUDGETS, (3, 6, 9), strict=True))
    one.base_hunk_parts = dict(zip(cs.BUDGETS, (0, 1, 2), strict=True))
    one.file_parts = dict(zip(cs.BUDGETS, (1, 2, 3), strict=True))
    two = _outcome("cpp", (True, True, True))
    two.n_hunks, two.n_files = 1, 1
    two.hunk_parts = dict.fromkeys(cs.BUDGETS, 1)
    two.base_hunk_parts = dict.fromkeys(cs.BUDGETS, 0)
    two.file_parts = dict.fromkeys(cs.BUDGETS, 1)
    lines = cs.parts_table([one, two]).splitlines()
    assert lines[0].startswith("| language | gold hunks | hunks delivered 4k / 13k / 27k |")
    # 4 / 7 / 10 of 10 hunks; per issue (3/9 + 1) / 2, (6/9 + 1) / 2, 1; BM25 0 / 1 / 2 of
    # 10; files 2 / 3 / 4 of 4.
    assert lines[2] == (
        "| C++ | 10 | 40 / 70 / 100 % | 67 / 83 / 100 % | 0 / 10 / 20 % | 4 | 50 / 75 / 100 % |"
    )


def _outcome(
    language: str,
    hunks: tuple[bool, bool, bool],
    files: bool = True,
    ceiling: cs.Oracle | None = None,
    miss: str | None = None,
) -> cs.Outcome:
    budgets = dict(zip(cs.BUDGETS, hunks, strict=True))
    return cs.Outcome(
        "id",
        language,
        files=dict.fromkeys(cs.BUDGETS, files),
        hunks=budgets,
        base_files=dict.fromkeys(cs.BUDGETS, False),
        base_hunks=dict.fromkeys(cs.BUDGETS, False),
        ceiling=ceiling or cs.Oracle(hunks=3_000, files=100),
        miss=miss,
    )


def test_language_table_has_a_row_per_language_and_checks_targets() -> None:
    # 16 C++ issues: 10 with every hunk at 4k (62 %), 13 at 13k (81 %), files all found.
    cpp = [_outcome("cpp", (n < 10, n < 13, True)) for n in range(16)]
    # 15 Rust issues: 6 at 4k (40 %): hunk 4k missed, and files at 13k missed too.
    rust = [_outcome("rust", (n < 6, n < 12, n < 12), files=n < 10) for n in range(15)]
    go = [_outcome("go", (True, True, True))]  # too few issues for the targets
    lines = cs.language_table([*cpp, *rust, *go]).splitlines()
    assert lines[0].startswith("| language | issues | hunk recall 4k / 13k / 27k |")
    rows = {line.split(" | ")[0].removeprefix("| "): line for line in lines[2:]}
    assert list(rows) == ["C++", "Rust", "Go", "all"]
    assert rows["C++"] == (
        "| C++ | 16 | 62 / 81 / 100 % | 100 / 100 / 100 % | 100 / 100 % | 100 / 100 / 100 % "
        "| 0 / 0 / 0 % | 0 / 0 % | met |"
    )
    assert rows["Rust"].endswith("| missed: hunk 4k, file 13k |")
    assert rows["Go"].endswith("| – |")
    assert rows["all"].startswith("| all | 32 | 53 / 81 / 91 % |")


def test_code_only_table_counts_only_issues_whose_gold_is_all_code() -> None:
    cpp = [_outcome("cpp", (n < 2, n < 3, True)) for n in range(4)]
    cpp.append(_outcome("cpp", (False, False, False)))
    cpp[-1].code_only = False  # its fix also edits a changelog: left out of this table
    rust = [_outcome("rust", (False, False, False))]
    rust[0].code_only = False
    lines = cs.code_only_table([*cpp, *rust]).splitlines()
    rows = {line.split(" | ")[0].removeprefix("| "): line for line in lines[2:]}
    assert list(rows) == ["C++"]  # no Rust issue is code only; one language: no "all" row
    assert rows["C++"] == "| C++ | 4 (5) | 50 / 75 / 100 % | 100 / 100 / 100 % | 100 / 100 % |"
    assert cs.code_only_table(rust) == "(no issue whose gold files are all code)"


def test_size_table_groups_issues_by_their_number_of_gold_hunks() -> None:
    small = [replace(_outcome("c", (True, True, True)), n_hunks=1) for _ in range(3)]
    mid = [replace(_outcome("rust", (n == 0, True, True)), n_hunks=5) for n in range(2)]
    big = [replace(_outcome("c", (False, False, n == 0)), n_hunks=12) for n in range(4)]
    rows = cs.size_table([*small, *mid, *big]).splitlines()[2:]
    assert [row.split(" | ")[:3] for row in rows] == [
        ["| 1 hunk", "3", "100 / 100 / 100 %"],
        ["| 4-9 hunks", "2", "50 / 100 / 100 %"],  # no fix of 2-3 hunks: no row
        ["| 10+ hunks", "4", "0 / 0 / 25 %"],
        ["| all", "9", "44 / 56 / 67 %"],
    ]


def test_language_size_table_says_what_the_targets_ask_of_big_fixes() -> None:
    # C: 3 one-hunk fixes (2 delivered whole at 13k), 5 fixes of 12 hunks (1 whole at 4k
    # and at 13k). With every small fix whole: 4/8 = 50 % at both; the targets (55 % of 8:
    # 5 issues, 75 %: 6) need 2 and 3 of the 5 big ones whole.
    small = [replace(_outcome("c", (n == 0, n < 2, True)), n_hunks=1) for n in range(3)]
    big = [replace(_outcome("c", (n == 0, n == 0, n < 2)), n_hunks=12) for n in range(5)]
    rust = [replace(_outcome("rust", (True, True, True)), n_hunks=2)]
    rows = cs.language_size_table([*small, *big, *rust]).splitlines()
    assert rows[0].startswith("| language | issues by fix size 1 / 2-3 / 4-9 / 10+ |")
    assert rows[2] == (
        "| C | 3 / 0 / 0 / 5 | 2/3 · 0/0 · 0/0 · 1/5 | 50 / 50 % | 2 (1) / 3 (1) of 5 |"
    )
    assert (
        rows[3]
        == "| Rust | 0 / 1 / 0 / 0 | 0/0 · 1/1 · 0/0 · 0/0 | 100 / 100 % | 0 (0) / 0 (0) of 0 |"
    )
    assert rows[4].startswith("| all | 3 / 1 / 0 / 5 |")


def test_one_language_has_no_all_row() -> None:
    lines = cs.language_table([_outcome("c", (False, True, True))]).splitlines()
    assert len(lines) == 3


def test_skip_note_counts_each_reason() -> None:
    assert cs._skip_note({}) == "0 skipped"
    assert cs._skip_note({"a": cs.NO_SDIST, "b": cs.NO_SDIST}) == f"2 skipped: {cs.NO_SDIST}"
    note = cs._skip_note({"a": "x", "b": "y", "c": "x"})
    assert note == "3 skipped: x (2); y (1)"


@pytest.mark.parametrize("main", [cs.main, bench.impact.main], ids=["selection", "impact"])
@pytest.mark.parametrize("name", ["polyglot", "python-git"])
def test_git_sets_need_their_snapshots(
    main: Callable[[list[str]], int], name: str, tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:  # fmt: skip
    """Both benchmarks take the sets' options (bench.impact through add_set_options)."""
    with pytest.raises(SystemExit) as exit_:
        main(["--set", name, "--mirrors", str(tmp_path / "none"), "--no-write"])
    assert exit_.value.code == 2
    assert f"--set {name} needs --mirrors" in capsys.readouterr().err


# ----------------------------------------------------------------------------- one real run


def test_run_on_a_snapshot_tree_scores_each_language(tmp_path: Path) -> None:
    mirrors = tmp_path / "mirrors"
    _, commit = _snapshot(mirrors)
    issues = [
        cs.Issue("t-1", "owner/tiny", commit, "parse a dash", ["src/parse.c"],
                 [("src/parse.c", ["    return s[0] == '-';"], [])], "c"),
        cs.Issue("t-2", "owner/tiny", commit, "route split path", ["lib/index.js"],
                 [("lib/index.js", ["  return path.split('/');"], [])], "javascript"),
        cs.Issue("t-3", "owner/tiny", "f" * 40, "gone", ["x.c"], [], "c"),
    ]  # fmt: skip
    trees = cs.GitTrees(mirrors, cache=tmp_path / "cache")
    results = cs.run(issues, verbose=False, issue_set=cs.SETS["polyglot"], trees=trees)
    assert results.skipped == {"t-3": "base commit not in the snapshot of owner/tiny"}
    assert results.issues == 2
    assert results.attainable == 2
    # A tiny tree fits every budget whole: every gold hunk is delivered, by both methods.
    for outcome in results.outcomes:
        assert all(outcome.hunks.values()) and all(outcome.files.values())
        assert all(outcome.base_hunks.values())
        assert outcome.n_hunks == 1 and set(outcome.hunk_parts.values()) == {1}
    body = cs.table(results, cs.SETS["polyglot"])
    assert "| C | 1 | 100 / 100 / 100 % |" in body
    assert "| JavaScript | 1 |" in body
    assert "| C | 1 | 100 / 100 / 100 % | 100 / 100 / 100 % | 100 / 100 / 100 % | 1 |" in body
    assert "2 issues (1 skipped: base commit not in the snapshot of owner/tiny)" in body


def test_selector_issue_measures_select_issue(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    mirrors = tmp_path / "mirrors"
    _, commit = _snapshot(mirrors)
    issue = cs.Issue("t-1", "owner/tiny", commit, "parse a dash", ["src/parse.c"],
                     [("src/parse.c", ["    return s[0] == '-';"], [])], "c")  # fmt: skip
    calls: list[int] = []

    def recorded(repo: Path, query: str, budget: int, **kwargs: object) -> cs.Selection:
        calls.append(budget)
        return cs.select_issue(repo, query, budget, **kwargs)  # type: ignore[arg-type]

    monkeypatch.setitem(cs.SELECTORS, "issue", recorded)
    trees = cs.GitTrees(mirrors, cache=tmp_path / "cache")
    results = cs.run(
        [issue], verbose=False, issue_set=cs.SETS["polyglot"], trees=trees, selector="issue"
    )
    # Every budget through select_issue, then the warm repeat of a one-issue tree.
    assert calls == [*cs.BUDGETS, cs.BUDGETS[0]]
    (outcome,) = results.outcomes
    assert all(outcome.hunks.values()) and all(outcome.files.values())
    assert "Selector: `recorded` (`--selector`)." in cs.table(results, cs.SETS["polyglot"])


def test_unknown_selector_is_bad_input(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exit_:
        cs.main(["--selector", "bm25", "--no-write"])
    assert exit_.value.code == 2
    assert "invalid choice: 'bm25'" in capsys.readouterr().err


# ------------------------------------------------------------------------- --rerank llm


def test_rerank_without_a_model_is_one_line_and_exit_2(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    for name in ("AGENTRT_MODEL", "OPENAI_API_KEY", "AGENTRT_LLM_BASE_URL", "OPENAI_BASE_URL"):
        monkeypatch.delenv(name, raising=False)
    assert cs.main(["--rerank", "llm", "--quick"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert err == [
        "error: --rerank llm needs a model: no model configured: issue_rerank cannot run "
        "(set AGENTRT_MODEL and a key)"
    ]


def test_rerank_measures_recall_through_the_agents_rerank(tmp_path: Path) -> None:
    """A FunctionModel that picks the gold file the ranking puts last: recall with the
    picks, and without them, at budgets too small for everything (a tiny fixture)."""
    from pydantic_ai.models.function import FunctionModel

    from tests.llm.test_issue_context import FILES, ISSUE
    from tests.llm.test_run import Recorder

    for rel, text in FILES.items():
        (tmp_path / rel).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / rel).write_text(text)
    gold = "    print(discount(10.0, 5))"
    hunks = [("shop/cli.py", [gold], [])]
    issue = cs.Issue("shop-1", "o/shop", "abc", ISSUE, ["shop/cli.py"], hunks)
    recorder = Recorder({"files": ["shop/cli.py"], "units": [], "reason": "The entry point."})
    results = cs.run_rerank(
        [issue], lambda _issue: tmp_path, model=FunctionModel(recorder), budgets=(100,),
        verbose=False,
    )  # fmt: skip
    assert results.issues == 1 and results.failures == [] and results.over_budget == 0
    assert (results.ranked_files[100], results.picked_files[100]) == (0, 1)
    assert (results.ranked_hunks[100], results.picked_hunks[100]) == (0, 1)
    assert (results.top_ranked, results.top_picked) == (0, 1)
    # The agent's own prompt: the candidates fenced as untrusted data, the issue as the task.
    assert len(recorder.calls) == 1
    shown = recorder.user_text(0)
    assert "<untrusted-data" in shown and "### issue_candidates" in shown
    assert "KeyError for an unknown region" in shown
    table = cs.rerank_table(results)
    assert "| 100 | 0.0% | 100.0% | 0.0% | 100.0% |" in table and "function:" in table


# ---------------------------------------------------------------------------- oracle ceiling

#: A C file of four functions, 6 lines each, and a README: the oracle's fixture.
ORACLE_C = "".join(
    f"int f{n}(int x) {{\n    int y = x * {n};\n    y += {n} + x;\n    return y;\n}}\n\n"
    for n in range(8)
)


def _oracle_tree(tmp_path: Path) -> tuple[Path, dict[str, cs.SourceFile]]:
    tree = tmp_path / "tree"
    (tree / "src").mkdir(parents=True)
    (tree / "src" / "f.c").write_text(ORACLE_C)
    (tree / "README.md").write_text("# f\n\nCompute f0 to f3.\n")
    files = {f.path: f for f in cs.scan_repository(tree).files}
    return tree, files


def _by_hand(path: str, start: int, end: int, kind: str = "span") -> cs.PackedItem:
    lines = ORACLE_C.splitlines(keepends=True)
    text = "".join(lines[start - 1 : end])
    return cs.PackedItem(path, start, end, kind, 1.0, text, "c")  # type: ignore[arg-type]


def _issue(hunks: list[tuple[str, list[str]]], starts: list[int], gold: list[str]) -> cs.Issue:
    return cs.Issue(
        "o-1", "o/r", "c", "f1 multiplies wrongly", gold,
        [(path, removed, []) for path, removed in hunks], "c", starts,
    )  # fmt: skip


def test_oracle_hunk_cost_is_the_packers_rendering_of_the_target_lines(tmp_path: Path) -> None:
    tree, files = _oracle_tree(tmp_path)
    counter = cs.TokenCounter()
    # Lines 8-9 (f1's body) and 10 (its return): one run, one item.
    issue = _issue([("src/f.c", ["    int y = x * 1;", "    y += 1 + x;"]),
                    ("src/f.c", ["    return y;"])], [8, 10], ["src/f.c"])  # fmt: skip
    ceiling = cs.oracle(issue, cs.hunk_targets(issue, tree), files, counter)
    assert ceiling.hunks == cs.rendered_tokens([_by_hand("src/f.c", 8, 10)], counter.count)
    # The same hunk's lines in f0 and in f3: far apart, two items (filling the 13 lines
    # between them costs more than a second header).
    far = _issue([("src/f.c", ["    int y = x * 0;"]), ("src/f.c", ["    int y = x * 3;"])],
                 [2, 20], ["src/f.c"])  # fmt: skip
    two = cs.oracle(far, cs.hunk_targets(far, tree), files, counter)
    items = [_by_hand("src/f.c", 2, 2), _by_hand("src/f.c", 20, 20)]
    assert two.hunks == cs.rendered_tokens(items, counter.count)
    # Every line of the file: the packer delivers it as one whole-file item.
    lines = ORACLE_C.split("\n")[:-1]  # every line, the last (empty) one too
    whole = _issue([("src/f.c", lines)], [1], ["src/f.c"])
    file_item = _by_hand("src/f.c", 1, len(ORACLE_C.splitlines()), "file")
    assert cs.oracle(whole, cs.hunk_targets(whole, tree), files, counter).hunks == (
        cs.rendered_tokens([file_item], counter.count)
    )


def test_oracle_file_cost_is_one_cheap_line_per_gold_file(tmp_path: Path) -> None:
    tree, files = _oracle_tree(tmp_path)
    counter = cs.TokenCounter()
    issue = _issue([("src/f.c", ["    y += 2 + x;"]), ("README.md", ["Compute f0 to f3."])],
                   [15, 3], ["src/f.c", "README.md"])  # fmt: skip
    ceiling = cs.oracle(issue, cs.hunk_targets(issue, tree), files, counter)
    assert ceiling.unindexed == ()
    assert ceiling.files is not None and ceiling.hunks is not None
    assert ceiling.files < ceiling.hunks
    # Two items, a line of each file: the cheapest such pair (by per-line estimates, so
    # within a token or two of the cheapest rendering of all pairs).
    readme = "# f\n\nCompute f0 to f3.\n".splitlines(keepends=True)
    pairs = [
        cs.rendered_tokens(
            [_by_hand("src/f.c", c, c),
             cs.PackedItem("README.md", r, r, "span", 1.0, readme[r - 1], "markdown")],
            counter.count,
        )
        for c in range(1, 25)
        for r in range(1, 4)
    ]  # fmt: skip
    assert min(pairs) <= ceiling.files <= min(pairs) + 2
    assert ceiling.attainable("files", ceiling.files)
    assert not ceiling.attainable("files", ceiling.files - 1)


def test_oracle_of_an_unindexed_gold_file_is_unattainable(tmp_path: Path) -> None:
    tree, files = _oracle_tree(tmp_path)
    (tree / "Cargo.lock").write_text('[[package]]\nname = "f"\n')
    issue = _issue([("Cargo.lock", ['name = "f"'])], [2], ["Cargo.lock", "src/f.c"])
    ceiling = cs.oracle(issue, cs.hunk_targets(issue, tree), files, cs.TokenCounter())
    assert (ceiling.hunks, ceiling.files, ceiling.unindexed) == (None, None, ("Cargo.lock",))
    assert not ceiling.attainable("hunks", 10**9)
    assert cs.miss_reason(issue, ceiling, False, False, 13_000) == "unindexed"


def test_oracle_is_a_lower_bound_of_what_select_delivers(tmp_path: Path) -> None:
    """At every budget where a real selection passes the scoring, it cost at least the
    oracle; the oracle fits a budget whenever a selection passes at it."""
    tree, files = _oracle_tree(tmp_path)
    counter = cs.TokenCounter()
    issue = _issue([("src/f.c", ["    y += 2 + x;", "    return y;"])], [15], ["src/f.c"])
    issue.query = "f2 returns the wrong y: y += 2 + x"
    targets = cs.hunk_targets(issue, tree)
    ceiling = cs.oracle(issue, targets, files, counter)
    assert ceiling.hunks is not None and ceiling.files is not None
    store = cs.ContextStore(tmp_path / "store")
    passed = 0
    for budget in range(20, 400, 20):
        selection = cs.select(tree, issue.query, budget, store=store)
        got = cs.delivered_lines((i.path, i.start_line, i.text) for i in selection.items)
        files_ok, hunks_ok = cs.score(issue, targets, got)
        spent = counter.count(selection.to_markdown())
        if hunks_ok:
            passed += 1
            assert spent >= ceiling.hunks and ceiling.attainable("hunks", budget)
        if files_ok:
            assert spent >= ceiling.files and ceiling.attainable("files", budget)
    assert passed  # the selection passes at some budget: the test compares something


def test_oracle_items_are_what_the_packer_delivers_for_those_spans(tmp_path: Path) -> None:
    from agentrt.context.packer import Candidate, pack

    _, files = _oracle_tree(tmp_path)
    counter = cs.TokenCounter()
    views = {path: cs._view(path, f.read_text(), counter) for path, f in files.items()}
    # f.c: 2-3 and 5-6 merge (one line between), 40 alone (farther than MERGE_GAP); README.md
    # whole: a file item.
    spans = {"src/f.c": [(5, 6), (2, 3), (40, 40)], "README.md": [(1, 2), (3, 3)]}
    candidates = [Candidate(p, "span", 1.0, s, e) for p, ranges in spans.items() for s, e in ranges]
    packed = pack(views, candidates, 10_000, counter.count)
    ours = cs.oracle_items(views, spans)
    assert [(i.path, i.start_line, i.end_line, i.kind) for i in ours] == [
        ("README.md", 1, 3, "file"), ("src/f.c", 2, 6, "span"), ("src/f.c", 40, 40, "span"),
    ]  # fmt: skip
    assert ours == packed
    assert cs.delivery_cost(views, spans, counter) == cs.rendered_tokens(packed, counter.count)


def test_oracle_spans_fill_a_gap_only_when_it_is_cheaper_than_a_header() -> None:
    code = MERGE_GAP + 4  # more lines than the packer merges across
    text = "a\n" + "\n" * code + "b\n"
    text += "".join(f"long_line_{n} = compute({n})\n" for n in range(code + 2))
    view = cs._view("x.py", text, cs.TokenCounter())
    b = code + 2
    # Empty lines between lines 1 and b cost less than a header: one span.
    assert cs.oracle_spans(view, [1, b], header=10) == [(1, b)]
    # As many code lines between b and the last cost more: two spans. Close lines always
    # merge.
    assert cs.oracle_spans(view, [b, b + code + 1], header=10) == [(b, b), (b + code + 1,) * 2]
    assert cs.oracle_spans(view, [b, b + 4, b + 2], header=0) == [(b, b + 4)]


@pytest.mark.parametrize(
    ("gold", "ceiling", "hunks_ok", "files_ok", "reason"),
    [
        (["a.c"], cs.Oracle(500, 20), True, True, None),
        (["a.c"], cs.Oracle(20_000, 20), False, True, "oracle"),
        (["a.c", "Cargo.lock"], cs.Oracle(None, None, ("Cargo.lock",)), False, False,
         "unindexed"),
        (["a.c", "CHANGELOG.md"], cs.Oracle(500, 20), False, True, "noncode"),
        (["projects/SelfTest/Baselines/xml.sw.approved.txt"], cs.Oracle(500, 20), False, False,
         "noncode"),
        (["single_include/nlohmann/json.hpp", "include/a.hpp"], cs.Oracle(500, 20), False,
         False, "amalgamation"),
        (["a.c", "b.c"], cs.Oracle(500, 20), False, True, "hunk"),
        (["a.c", "b.c"], cs.Oracle(500, 20), False, False, "rank"),
    ],
)  # fmt: skip
def test_a_miss_counts_in_the_first_reason_that_applies(
    gold: list[str], ceiling: cs.Oracle, hunks_ok: bool, files_ok: bool, reason: str | None
) -> None:
    issue = _issue([], [], gold)
    assert cs.miss_reason(issue, ceiling, hunks_ok, files_ok, 13_000) == reason


def test_miss_table_counts_reasons_per_language() -> None:
    outcomes = [
        _outcome("rust", (False, False, False), miss="rank"),
        _outcome("rust", (False, False, True), miss="oracle"),
        _outcome("rust", (True, True, True)),
        _outcome("go", (False, False, False), miss="rank"),
    ]
    lines = cs.miss_table(outcomes).splitlines()
    assert lines[0].startswith("| language | issues | hunks missed at 13k | (a) oracle |")
    assert lines[2] == "| Rust | 3 | 2 | 1 | 0 | 0 | 0 | 0 | 1 |"
    assert lines[3] == "| Go | 1 | 1 | 0 | 0 | 0 | 0 | 0 | 1 |"
    assert lines[4] == "| all | 4 | 3 | 1 | 0 | 0 | 0 | 0 | 2 |"
    assert "first of these that applies" in lines[-1]
