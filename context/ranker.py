"""The learned ranker: linear models over the ranking features, shipped as data.

:func:`agentrt.context.relevance.rank` scores files and units either with the hand-set mix
of its signals (the ``W_*`` constants of :mod:`agentrt.context.relevance`) or with these
models: a weight per feature of :func:`agentrt.context.relevance.file_features` for files
and, in the file's ``units`` part, a weight per feature of
:func:`agentrt.context.relevance.unit_features` for the code units (functions, classes,
windows) inside them. Both are fitted by ``python -m bench.train_ranker`` on the issues of
both benchmark sets (a listwise softmax over each issue's files with the gold files as the
targets; over the units of its best files and gold files with the units that overlap a gold
hunk as the targets) and stored in ``ranker.json`` beside this module. Inference is one
matrix-vector product in numpy per model: no learning library is imported at run time.

The models decide the *order* of the files and of the units. Their scores, which the packer
compares with its thresholds and trades against tokens, keep the hand-set ranking's values:
the k-th file (unit) in the learned order gets the k-th largest hand-set score, so a
selection's shape (how many files and units pass the threshold) is unchanged.

``AGENTRT_RANKER=hand|learned`` (or :data:`RANKER`) chooses for files; :data:`DEFAULT_RANKER`
is what applies when neither says. ``AGENTRT_UNIT_RANKER=hand|learned`` (or
:data:`UNIT_RANKER`, default :data:`DEFAULT_UNIT_RANKER`) chooses for units, on its own: held
out, the unit model has not yet beaten the hand-set unit scores
(``python -m bench.train_ranker``, docs/benchmarks.md), so learned files keep hand-set units
unless it is asked for.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path
from typing import Literal

import numpy as np

from agentrt.errors import AgentrtError

__all__ = [
    "DEFAULT_RANKER",
    "DEFAULT_UNIT_RANKER",
    "RANKER",
    "RANKER_ENV",
    "RANKER_FILE",
    "UNIT_RANKER",
    "UNIT_RANKER_ENV",
    "LinearRanker",
    "RankerError",
    "load_ranker",
    "ranker_mode",
    "unit_ranker_mode",
]

RankerMode = Literal["hand", "learned"]
RANKER_ENV = "AGENTRT_RANKER"
#: The ranker used when neither :data:`RANKER` nor ``$AGENTRT_RANKER`` says.
DEFAULT_RANKER: RankerMode = "hand"
#: Overrides the environment when set (benchmarks switch rankers in one process).
RANKER: RankerMode | None = None
UNIT_RANKER_ENV = "AGENTRT_UNIT_RANKER"
#: The unit ranker used when neither :data:`UNIT_RANKER` nor ``$AGENTRT_UNIT_RANKER`` says.
DEFAULT_UNIT_RANKER: RankerMode = "hand"
#: Overrides the environment when set.
UNIT_RANKER: RankerMode | None = None
#: "all": learned unit scores reorder every unit of the repository; "file": only the units
#: of each file among themselves (the files' best unit scores stay the hand-set ones).
UNIT_SCOPE: Literal["all", "file"] = "all"
#: The shipped weights (written by ``python -m bench.train_ranker``).
RANKER_FILE = Path(__file__).with_name("ranker.json")


class RankerError(AgentrtError):
    """The ranker asked for is unknown, or its weights cannot be used."""

    retryable = False
    hint = (
        "set AGENTRT_RANKER (AGENTRT_UNIT_RANKER) to 'hand' or 'learned'; if the weights file "
        "is the problem, retrain it with `python -m bench.train_ranker` or reinstall agentrt"
    )


def ranker_mode() -> RankerMode:
    """``"hand"`` or ``"learned"``: :data:`RANKER`, else ``$AGENTRT_RANKER``, else the default."""
    return _mode(RANKER, RANKER_ENV, DEFAULT_RANKER)


def unit_ranker_mode() -> RankerMode:
    """The units' ranker: :data:`UNIT_RANKER`, else ``$AGENTRT_UNIT_RANKER``, else the default."""
    return _mode(UNIT_RANKER, UNIT_RANKER_ENV, DEFAULT_UNIT_RANKER)


def _mode(override: RankerMode | None, env: str, default: RankerMode) -> RankerMode:
    mode = override or os.environ.get(env, "").strip().lower() or default
    if mode not in ("hand", "learned"):
        raise RankerError(f"{env}={mode!r}: expected 'hand' or 'learned'")
    return mode  # type: ignore[return-value]


@dataclass(frozen=True)
class LinearRanker:
    """A weight per feature: a file's learned score is ``features @ weights``."""

    features: tuple[str, ...]
    weights: np.ndarray
    #: How the weights were made (command, data, held-out metrics): shown, never used.
    meta: dict[str, object] = field(default_factory=dict)
    #: The unit model (over :data:`agentrt.context.relevance.UNIT_FEATURES`); None: units
    #: keep their hand-set scores.
    units: LinearRanker | None = None

    def logits(self, features: np.ndarray) -> np.ndarray:
        """The learned score of each row of ``features`` (files x features)."""
        if features.shape[1] != len(self.weights):
            raise RankerError(
                f"the ranker has {len(self.weights)} weights for {features.shape[1]} features"
            )
        return features.astype(np.float64) @ self.weights

    def file_scores(
        self, features: np.ndarray, hand_scores: np.ndarray, groups: np.ndarray | None = None
    ) -> np.ndarray:
        """Scores in the learned order with the hand-set scores' values (see the module doc).

        The k-th best row (file, or unit for the unit model) by :meth:`logits` gets the k-th
        largest of ``hand_scores``; ties keep row order. With ``groups`` (sorted, one per row:
        the units' files), rows are reordered only inside their group, among its values.
        """
        logits = self.logits(features)
        if groups is None:
            order = np.argsort(-logits, kind="stable")
            out = np.empty_like(hand_scores)
            out[order] = np.sort(hand_scores)[::-1]
            return out
        order = np.lexsort((-logits, groups))
        values = hand_scores[np.lexsort((-hand_scores, groups))]
        out = np.empty_like(hand_scores)
        out[order] = values
        return out

    def to_json(self) -> str:
        """The weights file's text (what :func:`load_ranker` reads)."""
        data: dict[str, object] = {
            "model": "linear",
            "features": list(self.features),
            "weights": [round(float(w), 6) for w in self.weights],
        }
        if self.units is not None:
            data["units"] = {
                "features": list(self.units.features),
                "weights": [round(float(w), 6) for w in self.units.weights],
            }
        data["meta"] = self.meta
        return json.dumps(data, indent=1) + "\n"


def load_ranker(path: Path | None = None) -> LinearRanker:
    """The ranker whose weights are in ``path`` (by default :data:`RANKER_FILE`, the shipped one).

    Raises :class:`RankerError` when the file is missing or unreadable, or when its features
    are not :data:`agentrt.context.relevance.FILE_FEATURES` (its unit model's
    :data:`~agentrt.context.relevance.UNIT_FEATURES`), in order: weights fitted on other
    features would rank at random.
    """
    return _load(path or RANKER_FILE)


@lru_cache(maxsize=4)
def _load(path: Path) -> LinearRanker:
    from agentrt.context.relevance import FILE_FEATURES, UNIT_FEATURES

    try:
        data = json.loads(path.read_text())
        features = tuple(str(name) for name in data["features"])
        weights = np.asarray(data["weights"], dtype=np.float64)
        meta = dict(data.get("meta", {}))
        unit_data = data.get("units")
        if unit_data is not None:
            unit_features = tuple(str(name) for name in unit_data["features"])
            unit_weights = np.asarray(unit_data["weights"], dtype=np.float64)
    except (OSError, ValueError, KeyError, TypeError) as exc:
        raise RankerError(f"cannot read the ranker weights {path}: {exc}") from exc
    _check(path, features, weights, FILE_FEATURES)
    units = None
    if unit_data is not None:
        _check(path, unit_features, unit_weights, UNIT_FEATURES)
        units = LinearRanker(unit_features, unit_weights)
    return LinearRanker(features, weights, meta, units)


def _check(
    path: Path, features: tuple[str, ...], weights: np.ndarray, expected: tuple[str, ...]
) -> None:
    if features != expected or weights.shape != (len(features),):
        raise RankerError(
            f"the ranker weights {path} are for features {list(features)}, not for {list(expected)}"
        )
