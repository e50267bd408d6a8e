"""Tests for bench.train_ranker: the fit, the repository folds, the ranks it reports, and
the unit model's targets."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from agentrt.context.relevance import (
    UNIT_FEATURES,
    build_index,
    hand_file_scores,
    query_signals,
)
from agentrt.context.sources import scan_repository
from agentrt.context.store import ContextStore
from bench.context_selection import Issue
from bench.train_ranker import Query, fit, folds_by_repo, unit_query, worst_hunk_rank, worst_rank


def _queries(n: int, seed: int = 0) -> list[Query]:
    """Issues whose gold file is the one with the largest second feature; the first is noise."""
    rng = np.random.default_rng(seed)
    out = []
    for i in range(n):
        features = rng.random((40, 2)).astype(np.float32)
        gold = int(np.argmax(features[:, 1]))
        out.append(Query(f"i{i}", f"repo{i % 4}", "python", features, np.asarray([gold]), False))
    return out


def test_fit_learns_which_feature_names_the_gold_file() -> None:
    weights = fit(_queries(30))
    assert weights[1] > 0 and abs(weights[1]) > 5 * abs(weights[0])
    held_out = _queries(10, seed=1)
    assert all(worst_rank(q, q.features @ weights) == 0 for q in held_out)


def test_worst_rank_and_folds() -> None:
    q = Query("x", "r", "go", np.zeros((3, 1), np.float32), np.asarray([0, 2]), False)
    assert worst_rank(q, np.asarray([0.9, 0.5, 0.1])) == 2
    assert worst_rank(Query("y", "r", "go", q.features, q.gold, True), np.ones(3)) == -1
    folds = folds_by_repo(_queries(12), 3)
    assert sorted(folds) == ["repo0", "repo1", "repo2", "repo3"]
    assert set(folds.values()) == {0, 1, 2}  # every fold holds a whole repository


def test_unit_targets_are_the_innermost_units_over_each_gold_hunk(tmp_path: Path) -> None:
    repo = tmp_path / "repo"
    (repo / "shop").mkdir(parents=True)
    (repo / "shop" / "cart.py").write_text(
        "class Cart:\n"
        "    def __init__(self):\n"
        "        self.items = []\n"
        "\n"
        "    def total(self):\n"
        "        return sum(i.price for i in self.items)\n"
        "\n"
        "    def count(self):\n"
        "        return len(self.items)\n"
    )
    (repo / "shop" / "prices.py").write_text("def price_of(item):\n    return item.price\n")
    scan = scan_repository(repo)
    index = build_index(scan.root, scan, ContextStore(tmp_path / "store"))
    hunk = ("shop/cart.py", ["        return sum(i.price for i in self.items)"], [])
    issue = Issue("i1", "shop", "1", "Cart total is wrong", ["shop/cart.py"], [hunk], "python", [6])
    signals = query_signals(index, issue.query)
    assert signals is not None
    gold_file = np.asarray([index.paths.index("shop/cart.py")])
    query = unit_query(issue, repo, index, signals, hand_file_scores(index, signals), gold_file)
    assert query.features.shape[1] == len(UNIT_FEATURES) and not query.missing
    rows = [k for f in range(index.n_files) for k in index.file_units(f)]
    assert len(query.features) == len(rows)
    names = [index.unit(rows[i])[1].name for i in query.gold]
    assert names == ["Cart.total"]
    assert len(query.hunks) == 1 and list(query.hunks[0]) == list(query.gold)
    scores = np.zeros(len(rows))
    assert worst_hunk_rank(query, scores) == int(query.gold[0])  # ties keep row order
    scores[query.gold] = 1.0
    assert worst_hunk_rank(query, scores) == 0
    # A hunk whose lines are not in the tree: the issue has no located hunk.
    gone = ("shop/cart.py", ["        return 42"], [])
    lost = Issue("i2", "shop", "1", "Cart total", ["shop/cart.py"], [gone], "python", [6])
    lost_query = unit_query(lost, repo, index, signals, hand_file_scores(index, signals), gold_file)
    assert lost_query.missing and worst_hunk_rank(lost_query, scores) == -1
