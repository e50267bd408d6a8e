"""Tests for the learned ranker (agentrt.context.ranker: files and units) and its features.

The repositories are small trees written in tmp_path and indexed as ``select`` indexes one.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from agentrt.context import ranker
from agentrt.context.ranker import (
    LinearRanker,
    RankerError,
    load_ranker,
    ranker_mode,
    unit_ranker_mode,
)
from agentrt.context.relevance import (
    FILE_FEATURES,
    UNIT_FEATURES,
    RepoIndex,
    build_index,
    file_features,
    hand_file_scores,
    hand_unit_scores,
    query_signals,
    rank,
    unit_features,
)
from agentrt.context.sources import scan_repository
from agentrt.context.store import ContextStore

FILES = {
    "shop/cart.py": (
        "from shop.prices import price_of\n\n"
        "class Cart:\n"
        "    def total(self, items):\n"
        "        return sum(price_of(i) for i in items)\n"
    ),
    "shop/prices.py": "def price_of(item):\n    return item.price * item.quantity\n",
    "shop/discounts.py": (
        "def discount(total, code):\n"
        "    # a discount code lowers the total price of the cart\n"
        "    return total * 0.9 if code else total\n"
    ),
    "shop/shipping.py": "def shipping_cost(weight):\n    return 5 + weight * 0.1\n",
    "tests/test_cart.py": (
        "from shop.cart import Cart\n\ndef test_total():\n    assert Cart().total([]) == 0\n"
    ),
    "README.md": "# shop\n\nA cart with prices, discounts and shipping.\n",
}


@pytest.fixture(scope="module")
def index(tmp_path_factory: pytest.TempPathFactory) -> RepoIndex:
    repo = tmp_path_factory.mktemp("repo")
    for path, text in FILES.items():
        (repo / path).parent.mkdir(parents=True, exist_ok=True)
        (repo / path).write_text(text)
    scan = scan_repository(repo)
    return build_index(scan.root, scan, ContextStore(tmp_path_factory.mktemp("store")))


def test_shipped_weights_load_for_the_current_features() -> None:
    model = load_ranker()
    assert model.features == FILE_FEATURES
    assert model.weights.shape == (len(FILE_FEATURES),)
    assert np.isfinite(model.weights).all() and np.abs(model.weights).sum() > 0
    assert "bench.train_ranker" in str(model.meta["command"])


def test_shipped_unit_weights_load_for_the_current_unit_features() -> None:
    units = load_ranker().units
    assert units is not None
    assert units.features == UNIT_FEATURES
    assert units.weights.shape == (len(UNIT_FEATURES),)
    assert np.isfinite(units.weights).all() and np.abs(units.weights).sum() > 0


def test_weights_round_trip_with_their_unit_model(tmp_path: Path) -> None:
    model = LinearRanker(
        FILE_FEATURES,
        np.arange(len(FILE_FEATURES), dtype=np.float64),
        {"command": "test"},
        LinearRanker(UNIT_FEATURES, np.linspace(-1, 1, len(UNIT_FEATURES))),
    )
    (tmp_path / "ranker.json").write_text(model.to_json())
    loaded = load_ranker(tmp_path / "ranker.json")
    np.testing.assert_allclose(loaded.weights, model.weights)
    assert loaded.units is not None and loaded.units.features == UNIT_FEATURES
    np.testing.assert_allclose(loaded.units.weights, model.units.weights, atol=1e-6)  # type: ignore[union-attr]
    # Without a unit part, units keep their hand-set scores.
    data = json.loads(model.to_json())
    del data["units"]
    (tmp_path / "files.json").write_text(json.dumps(data))
    assert load_ranker(tmp_path / "files.json").units is None


def test_weights_for_other_features_are_refused(tmp_path: Path) -> None:
    data = json.loads(ranker.RANKER_FILE.read_text())
    data["features"] = list(reversed(data["features"]))
    wrong = tmp_path / "ranker.json"
    wrong.write_text(json.dumps(data))
    with pytest.raises(RankerError, match="features"):
        load_ranker(wrong)
    data = json.loads(ranker.RANKER_FILE.read_text())
    data["units"] = {"features": ["hand", "lex"], "weights": [1.0, 0.5]}
    wrong.write_text(json.dumps(data))
    with pytest.raises(RankerError, match="'lex'"):
        load_ranker(wrong)
    (tmp_path / "broken.json").write_text("{not json")
    with pytest.raises(RankerError, match="cannot read"):
        load_ranker(tmp_path / "broken.json")


def test_feature_matrix_shape_and_stability(index: RepoIndex) -> None:
    query = "Cart total is wrong\n\nThe cart total ignores the discount code."
    signals = query_signals(index, query)
    assert signals is not None
    features = file_features(index, signals)
    assert features.shape == (index.n_files, len(FILE_FEATURES))
    assert features.dtype == np.float32 and np.isfinite(features).all()
    # The same query gives the same features; the first column is the hand-set score.
    again = query_signals(index, query)
    assert again is not None
    np.testing.assert_array_equal(features, file_features(index, again))
    np.testing.assert_allclose(features[:, 0], hand_file_scores(index, signals), rtol=1e-6)
    column = dict(zip(FILE_FEATURES, features.T, strict=True))
    test = index.paths.index("tests/test_cart.py")
    readme = index.paths.index("README.md")
    assert column["test"][test] == 1 and column["test"].sum() == 1
    assert column["doc"][readme] == 1 and column["doc"].sum() == 1
    # "cart" names shop/cart.py: its file name is wholly covered by the query's terms.
    assert column["name_cover"][index.paths.index("shop/cart.py")] == 1
    assert column["name_cover"][index.paths.index("shop/shipping.py")] == 0
    assert query_signals(index, "   ") is None


def test_unit_feature_matrix_shape_and_stability(index: RepoIndex) -> None:
    query = "Discount is applied twice\n\nThe `discount` of a code lowers the cart total again."
    signals = query_signals(index, query)
    assert signals is not None
    file_scores = hand_file_scores(index, signals)
    features = unit_features(index, signals, file_scores)
    n_units = len(index.unit_file)
    assert features.shape == (n_units, len(UNIT_FEATURES)) and n_units > len(FILES)
    assert features.dtype == np.float32 and np.isfinite(features).all()
    again = query_signals(index, query)
    assert again is not None
    np.testing.assert_array_equal(features, unit_features(index, again, file_scores))
    np.testing.assert_allclose(
        features[:, 0], hand_unit_scores(index, signals, file_scores), rtol=1e-6
    )
    column = dict(zip(UNIT_FEATURES, features.T, strict=True))
    names = [index.unit(k)[1].name for k in range(n_units)]
    discount = names.index("discount")
    assert column["mention"][discount] > 0 and column["callable"][discount] == 1
    assert column["name_cover"][discount] == 1 and column["lex_rank_in_file"][discount] == 1
    assert column["type"][names.index("Cart")] == 1
    in_test = [index.unit(k)[0] == "tests/test_cart.py" for k in range(n_units)]
    assert column["test"].tolist() == in_test and sum(in_test) >= 1
    # The file columns repeat the file's values on each of its units.
    f = index.paths.index("shop/discounts.py")
    assert column["file"][discount] == pytest.approx(file_scores[f])


def test_learned_unit_scores_put_the_mentioned_function_first(
    index: RepoIndex, monkeypatch: pytest.MonkeyPatch
) -> None:
    query = (
        "Shipping cost is too high for heavy parcels\n\n"
        "`shipping_cost(weight)` charges 5 plus a tenth of the weight; the cart total "
        "and its prices look right."
    )
    monkeypatch.setattr(ranker, "RANKER", "learned")
    monkeypatch.setattr(ranker, "UNIT_RANKER", "learned")
    ranking = rank(index, query)
    best = int(np.argmax(ranking.unit_scores))
    assert index.unit(best)[1].name == "shipping_cost"
    # Learned unit scores keep the values of the hand-set unit scores (of the learned files).
    signals = query_signals(index, query)
    assert signals is not None
    hand = hand_unit_scores(index, signals, ranking.file_scores)
    np.testing.assert_allclose(np.sort(ranking.unit_scores), np.sort(hand), rtol=1e-6)


def test_learned_ranker_puts_a_mentioned_file_first(
    index: RepoIndex, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(ranker, "RANKER", "learned")
    query = "Shipping is charged twice\n\nSee shop/shipping.py: the cost of heavy parcels."
    ranking = rank(index, query)
    assert index.paths[int(np.argmax(ranking.file_scores))] == "shop/shipping.py"
    # Learned scores keep the hand-set scores' values (only the order is learned).
    monkeypatch.setattr(ranker, "RANKER", "hand")
    hand = rank(index, query)
    np.testing.assert_allclose(np.sort(ranking.file_scores), np.sort(hand.file_scores))


def test_file_scores_reorder_the_hand_values() -> None:
    model = LinearRanker(("a", "b"), np.asarray([0.0, 1.0]))
    features = np.asarray([[1, 0.1], [0, 0.9], [0, 0.5]], dtype=np.float32)
    hand = np.asarray([1.0, 0.2, 0.0], dtype=np.float32)
    np.testing.assert_allclose(model.file_scores(features, hand), [0.0, 1.0, 0.2])
    # In groups (units by file), rows trade values only with their group's rows.
    groups = np.asarray([0, 0, 1])
    np.testing.assert_allclose(model.file_scores(features, hand, groups), [0.2, 1.0, 0.0])
    with pytest.raises(RankerError, match="2 weights for 3 features"):
        model.logits(np.zeros((1, 3)))


def test_ranker_mode_from_constant_or_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(ranker, "RANKER", None)
    monkeypatch.setenv(ranker.RANKER_ENV, "Learned")
    assert ranker_mode() == "learned"
    monkeypatch.setenv(ranker.RANKER_ENV, "")
    assert ranker_mode() == ranker.DEFAULT_RANKER
    monkeypatch.setattr(ranker, "RANKER", "hand")
    monkeypatch.setenv(ranker.RANKER_ENV, "learned")
    assert ranker_mode() == "hand"
    monkeypatch.setattr(ranker, "RANKER", None)
    monkeypatch.setenv(ranker.RANKER_ENV, "gbm")
    with pytest.raises(RankerError, match="'hand' or 'learned'"):
        ranker_mode()
    # Units have a switch of their own, off by default.
    monkeypatch.setattr(ranker, "UNIT_RANKER", None)
    monkeypatch.delenv(ranker.UNIT_RANKER_ENV, raising=False)
    assert unit_ranker_mode() == ranker.DEFAULT_UNIT_RANKER == "hand"
    monkeypatch.setenv(ranker.UNIT_RANKER_ENV, "learned")
    assert unit_ranker_mode() == "learned"


def test_learned_inference_imports_no_learning_library(tmp_path: Path) -> None:
    (tmp_path / "a.py").write_text("def alpha():\n    return 1\n")
    (tmp_path / "b.py").write_text("def beta():\n    return 2\n")
    code = (
        "import sys\n"
        "from agentrt.context.select import select\n"
        "from agentrt.context.store import ContextStore\n"
        f"s = select({str(tmp_path)!r}, 'beta is wrong', 2000, "
        f"store=ContextStore({str(tmp_path / 'store')!r}))\n"
        "assert s.items and s.items[0].path == 'b.py', s.items\n"
        "banned = [m for m in sys.modules if m.split('.')[0] in "
        "('sklearn', 'lightgbm', 'xgboost', 'torch')]\n"
        "assert not banned and 'scipy.optimize' not in sys.modules, banned\n"
        "print('ok')\n"
    )
    env = {**os.environ, "AGENTRT_RANKER": "learned", "AGENTRT_UNIT_RANKER": "learned"}
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, env=env, check=False
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "ok"
