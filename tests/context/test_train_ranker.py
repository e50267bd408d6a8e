"""Tests for bench.train_ranker: the fit, the repository folds, the rank it reports."""

from __future__ import annotations

import numpy as np

from bench.train_ranker import Query, fit, folds_by_repo, worst_rank


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
