"""Train the learned ranker (``context/ranker.json``: files, and units) on both issue sets.

For every issue of the Python set (``swe_dev.jsonl``, release trees as in
:mod:`bench.context_selection`) and of the polyglot set (``polyglot_dev.jsonl``, exact base
commits out of ``--mirrors``), the features of every file of its tree come from
:func:`agentrt.context.relevance.file_features`, the very function ``rank()`` uses; the
targets are the issue's gold files. The unit model's rows are the code units of the issue's
best ``UNIT_FILES`` files (by the hand-set score) and of its gold files, their features from
:func:`agentrt.context.relevance.unit_features`; its targets are the units overlapping a gold
hunk (the hunk's lines found in the tree as ``bench.context_selection`` finds them, the
nearest match to the hunk's line number). Both models are linear: a listwise softmax over
each issue's rows (the loss is the mean of -log p(target)), L2-regularised, fitted with
scipy's L-BFGS: nothing beyond the package's own dependencies.

Validation holds whole repositories out: the repositories are dealt into ``--folds`` groups
(by issue count), and each group's issues are ranked by a model fitted on the other groups'
repositories only. The table gives, per language, how often the worst-ranked gold file is
first, second, 3rd-10th, lower, or not indexed (the buckets of :mod:`bench.context_ranks`):
for the hand-set ranking, for the learned ranking held out (the honest figure), and for the
shipped model, fitted on every repository (in-sample: it has seen these issues). A second
table does the same for units: per issue, the worst over its gold hunks of the rank of the
best unit overlapping the hunk, among the unit model's rows.

    python -m bench.train_ranker --mirrors /work/.mirror --store /tmp/ranker-stores [--packing]

writes ``context/ranker.json`` and the table into docs/benchmarks.md (``--store`` keeps each
set's indexes in a store of its own, ``python`` and ``polyglot``, for cheap re-runs);
``--limit``, ``--language`` or ``--no-write`` leave both alone (``--out FILE`` writes the
weights elsewhere). ``--files-only`` ships (and packs with) no unit model.
"""

from __future__ import annotations

import argparse
import functools
import hashlib
import os
import pickle
import tempfile
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from agentrt.context import relevance
from agentrt.context.ranker import RANKER_FILE, LinearRanker
from agentrt.context.select import DEFAULT_EXCLUDES
from agentrt.context.sources import scan_repository
from agentrt.context.store import ContextStore
from bench.context_ranks import BUCKETS, bucket
from bench.context_selection import (
    BUDGETS,
    LANGUAGE_NAMES,
    QUICK_ISSUES,
    SETS,
    GitTrees,
    Issue,
    _resolve,
    in_order_positions,
    language_key,
    load_issues,
    sdist_tree,
    tree_file,
)
from bench.context_selection import run as run_selection
from bench.trees import MIRRORS_ENV, NoTree

DEFAULT_L2 = 1e-3
DEFAULT_FOLDS = 5
COMMAND = "python -m bench.train_ranker --mirrors /work/.mirror --store /tmp/ranker-stores"


@dataclass
class Query:
    """One issue, ready to learn from: its files' features and where its gold files are."""

    issue: str
    repo: str
    language: str
    features: np.ndarray  # files x features, float32
    #: File numbers of the gold files found in the index (empty: none is indexed).
    gold: np.ndarray
    #: Some gold file is not in the index: the issue counts as "missing" whatever the ranking.
    missing: bool
    #: Unit queries: per gold hunk, the rows of the units that overlap it.
    hunks: list[np.ndarray] = field(default_factory=list)


#: The unit model's rows of an issue: the units of its best files by the hand-set score
#: (what a selection's candidates come from) and of its gold files.
UNIT_FILES = 20


def collect(
    issues: Sequence[Issue], trees: object, store: ContextStore, verbose: bool = True
) -> tuple[list[Query], list[Query]]:
    """The file and the unit :class:`Query` of every issue whose tree can be had."""
    by_tree: dict[tuple[str, str], list[Issue]] = {}
    for issue in issues:
        by_tree.setdefault((issue.repo, issue.version), []).append(issue)
    out: list[Query] = []
    units_out: list[Query] = []
    for n, group in enumerate(by_tree.values()):
        try:
            tree = trees(group[0])  # type: ignore[operator]
        except NoTree:
            continue
        scan = scan_repository(tree, extra_ignores=DEFAULT_EXCLUDES)
        index = relevance.build_index(scan.root, scan, store)
        where = {path: f for f, path in enumerate(index.paths)}
        for issue in group:
            signals = relevance.query_signals(index, issue.query)
            if signals is None:
                continue
            found = [_resolve(g, index.paths) for g in issue.gold_files]
            gold = np.asarray([where[p] for p in found if p is not None], dtype=np.int64)
            features = relevance.file_features(index, signals)
            out.append(
                Query(
                    issue.instance_id,
                    issue.repo,
                    issue.language,
                    features,
                    np.unique(gold),
                    None in found,
                )
            )
            units_out.append(unit_query(issue, tree, index, signals, features[:, 0], gold))
        relevance._MEMORY.clear()
        if verbose:
            print(f"  [{n + 1}/{len(by_tree)}] {group[0].repo} ({len(out)} issues)", flush=True)
    return out, units_out


def hunk_lines(issue: Issue, tree: Path, paths: Sequence[str]) -> list[tuple[str, int, int]] | None:
    """Each gold hunk as (indexed path, first line, last line) in the tree; None if some
    hunk's file is not indexed or its lines are not in it (as ``hunk_targets`` decides)."""
    out = []
    for (gold, removed, context), start in zip(
        issue.hunks, issue.hunk_starts or [0] * len(issue.hunks), strict=True
    ):
        path, indexed = tree_file(tree, gold), _resolve(gold, paths)
        if path is None or indexed is None:
            return None
        lines = path.read_text(errors="replace").split("\n")
        for wanted in (removed, context):
            near = max(start - 1, 0)
            positions = in_order_positions(wanted, lines, near) if wanted else None
            if positions:
                out.append((indexed, positions[0] + 1, positions[-1] + 1))
                break
        else:
            return None
    return out


def unit_query(
    issue: Issue,
    tree: Path,
    index: relevance.RepoIndex,
    signals: relevance.Signals,
    file_scores: np.ndarray,
    gold_files: np.ndarray,
) -> Query:
    """The unit model's rows of one issue and which of them overlap each gold hunk (the
    innermost: of nested units overlapping a hunk, those holding no other one)."""
    best = np.argsort(-file_scores, kind="stable")[:UNIT_FILES]
    files = np.union1d(best, gold_files)
    rows = np.concatenate([np.arange(r.start, r.stop) for r in map(index.file_units, files)])
    rows = rows.astype(np.int64)
    features = relevance.unit_features(index, signals, file_scores)[rows]
    where = {path: f for f, path in enumerate(index.paths)}
    located = hunk_lines(issue, tree, index.paths)
    hunks: list[np.ndarray] = []
    for path, first, last in located or []:
        f = where[path]
        spans = {
            i: (unit.start_line, unit.end_line)
            for i, k in enumerate(rows)
            if index.unit_file[k] == f
            and (unit := index.unit(int(k))[1]).start_line <= last
            and unit.end_line >= first
        }
        # The innermost: a class whose method holds the hunk, a function whose window does,
        # is not a target (it would teach the model that bigger units are better).
        hits = [
            i
            for i, (a, b) in spans.items()
            if not any(
                j != i and a <= c and d <= b and (c, d) != (a, b) for j, (c, d) in spans.items()
            )
        ]
        hunks.append(np.asarray(hits, dtype=np.int64))
    gold = np.unique(np.concatenate(hunks)) if hunks else np.zeros(0, dtype=np.int64)
    missing = located is None or any(not len(h) for h in hunks)
    return Query(issue.instance_id, issue.repo, issue.language, features, gold, missing, hunks)


# --------------------------------------------------------------------------- the model


#: Files of each issue a fit sees: the best by the hand-set score, the gold files, and a
#: sample of the others that stands for them all (weighted up: a sampled softmax).
TOP_FILES = 300
SAMPLED_FILES = 100


def training_rows(query: Query) -> tuple[np.ndarray, np.ndarray]:
    """Rows of ``query.features`` a fit sees, and the weight of each in the softmax sum."""
    n = len(query.features)
    order = np.argsort(-query.features[:, 0], kind="stable")
    top = np.union1d(order[:TOP_FILES], query.gold)
    rest = np.setdiff1d(np.arange(n), top)
    seed = int.from_bytes(hashlib.blake2b(query.issue.encode(), digest_size=4).digest(), "big")
    sample = np.random.default_rng(seed).permutation(rest)[:SAMPLED_FILES]
    rows = np.concatenate((top, np.sort(sample)))
    weights = np.ones(len(rows))
    if len(sample):
        weights[len(top) :] = len(rest) / len(sample)
    return rows, weights


def fit(queries: Sequence[Query], l2: float = DEFAULT_L2) -> np.ndarray:
    """Weights (one per feature) minimising the mean over issues of -log p(gold file).

    p is the softmax of ``features @ weights`` over the issue's files (the files of
    :func:`training_rows`). Features are standardised for the fit and the weights mapped
    back, so they apply to raw features.
    """
    from scipy.optimize import minimize

    usable = [q for q in queries if len(q.gold)]
    picked = [training_rows(q) for q in usable]
    x = np.concatenate([q.features[rows] for q, (rows, _) in zip(usable, picked, strict=True)])
    x = x.astype(np.float64)
    row_weight = np.concatenate([w for _, w in picked])
    mean, scale = x.mean(axis=0), x.std(axis=0)
    scale[scale == 0] = 1.0
    z = (x - mean) / scale
    sizes = np.asarray([len(rows) for rows, _ in picked])
    starts = np.concatenate(([0], np.cumsum(sizes)[:-1]))
    segment = np.repeat(np.arange(len(usable)), sizes)
    gold_rows = np.concatenate(
        [
            s + np.flatnonzero(np.isin(rows, q.gold))
            for s, q, (rows, _) in zip(starts, usable, picked, strict=True)
        ]
    )
    gold_weight = np.concatenate([np.full(len(q.gold), 1.0 / len(q.gold)) for q in usable])
    z_gold_sum = gold_weight @ z[gold_rows]
    n_queries = len(usable)

    def loss(w: np.ndarray) -> tuple[float, np.ndarray]:
        logits = z @ w
        top = np.maximum.reduceat(logits, starts)
        e = np.exp(logits - top[segment]) * row_weight
        total = np.add.reduceat(e, starts)
        log_norm = top + np.log(total)
        value = float(np.sum(log_norm) - gold_weight @ logits[gold_rows])
        grad = (e / total[segment]) @ z - z_gold_sum
        return (value / n_queries + l2 * float(w @ w), grad / n_queries + 2 * l2 * w)

    result = minimize(loss, np.zeros(z.shape[1]), jac=True, method="L-BFGS-B")
    return result.x / scale


def worst_rank(query: Query, scores: np.ndarray) -> int:
    """0-based rank of the worst-ranked gold file by ``scores`` (-1: a gold file is missing)."""
    if query.missing or not len(query.gold):
        return -1
    order = np.argsort(-scores, kind="stable")
    position = np.empty(len(order), dtype=np.int64)
    position[order] = np.arange(len(order))
    return int(position[query.gold].max())


def worst_hunk_rank(query: Query, scores: np.ndarray) -> int:
    """0-based rank, worst over the gold hunks, of the best unit overlapping each hunk
    (-1: a hunk was not located, or no unit row overlaps it)."""
    if query.missing or not query.hunks:
        return -1
    order = np.argsort(-scores, kind="stable")
    position = np.empty(len(order), dtype=np.int64)
    position[order] = np.arange(len(order))
    return int(max(position[h].min() for h in query.hunks))


def folds_by_repo(queries: Sequence[Query], k: int) -> dict[str, int]:
    """Repository -> fold: the largest repositories first, each to the emptiest fold."""
    counts: dict[str, int] = {}
    for q in queries:
        counts[q.repo] = counts.get(q.repo, 0) + 1
    load = [0] * k
    out: dict[str, int] = {}
    for repo in sorted(counts, key=lambda r: (-counts[r], r)):
        fold = min(range(k), key=lambda i: (load[i], i))
        out[repo] = fold
        load[fold] += counts[repo]
    return out


def cross_validate(
    queries: Sequence[Query],
    k: int,
    l2: float,
    metric: Callable[[Query, np.ndarray], int] = worst_rank,
    fold_of: dict[str, int] | None = None,
) -> list[int]:
    """Each query's ``metric`` under a model fitted without its repository's fold."""
    fold_of = fold_of or folds_by_repo(queries, k)
    ranks = [0] * len(queries)
    for fold in range(k):
        train = [q for q in queries if fold_of[q.repo] != fold]
        weights = fit(train, l2)
        for i, q in enumerate(queries):
            if fold_of[q.repo] == fold:
                ranks[i] = metric(q, q.features.astype(np.float64) @ weights)
    return ranks


# --------------------------------------------------------------------------- the report


def _buckets(ranks: Sequence[int]) -> str:
    counts = dict.fromkeys(BUCKETS, 0)
    for r in ranks:
        counts[bucket(r)] += 1
    return " / ".join(str(counts[b]) for b in BUCKETS)


FILE_CAPTION = (
    "Worst-ranked gold file of each issue: first / second / 3rd-10th / lower / not indexed "
    "(issues)."
)
UNIT_CAPTION = (
    f"Units: per issue, the worst over its gold hunks of the rank of the best unit overlapping "
    f"the hunk, among the units of its {UNIT_FILES} best files (hand-set) and its gold files: "
    "first / second / 3rd-10th / lower / not located (a hunk's file not indexed, or no unit "
    "over its lines) (issues)."
)


def table(
    queries: Sequence[Query],
    hand: Sequence[int],
    held_out: Sequence[int],
    shipped: Sequence[int],
    caption: str = FILE_CAPTION,
) -> str:
    """Per language (most issues first) and overall: the three rankings' rank buckets."""
    groups: dict[str, list[int]] = {}
    for i, q in enumerate(queries):
        groups.setdefault(q.language, []).append(i)
    rows = sorted(groups.items(), key=lambda kv: (-len(kv[1]), kv[0]))
    others = [i for i, q in enumerate(queries) if q.language != "python"]
    if others and len(others) < len(queries):
        rows.append(("all but Python", others))
    rows.append(("all", list(range(len(queries)))))
    lines = [
        caption,
        "",
        "| language | issues | hand-set | learned, repositories held out | learned, shipped "
        "(in-sample) |",
        "|---|---:|---|---|---|",
    ]
    for language, members in rows:
        name = LANGUAGE_NAMES.get(language, language)
        pick = [hand[i] for i in members], [held_out[i] for i in members]
        lines.append(
            f"| {name} | {len(members)} | {_buckets(pick[0])} | {_buckets(pick[1])} "
            f"| {_buckets([shipped[i] for i in members])} |"
        )
    return "\n".join(lines)


def held_out_packing(
    queries: Sequence[Query],
    issues: dict[str, list[Issue]],
    trees: dict[str, object],
    stores: Path,
    folds: int,
    l2: float,
    unit_queries: Sequence[Query] = (),
    sample_size: int = 0,
    with_hand: bool = False,
) -> str:
    """Hunk and file recall of packed selections with the learned ranker, repositories held out.

    Each fold's issues are selected (``bench.context_selection.run``) with models fitted
    without that fold's repositories (a unit model too, unless ``unit_queries`` is empty);
    the Python set's issues are its ``--quick`` sample, the others' the first ``sample_size``
    (all: 0). ``with_hand`` adds, for those, the hand-set ranking's row on the same issues
    (the Python sample's is ``bench.context_selection --quick``'s). Slow (three
    selections per issue): ``--packing`` asks for it.
    """
    from agentrt.context import ranker

    fold_of = folds_by_repo(queries, folds)
    scratch = Path(tempfile.mkdtemp(prefix="agentrt-ranker-folds-"))
    lines = [
        "| set | ranker | issues | hunk recall 4k / 13k / 27k | file recall 4k / 13k / 27k |",
        "|---|---|---:|---|---|",
    ]
    learned = "learned files and units" if unit_queries else "learned files"
    saved = ranker.RANKER, ranker.UNIT_RANKER, ranker.RANKER_FILE
    try:
        for name, set_issues in issues.items():
            quick = name == "python"  # the Python set's --quick sample
            sample = set_issues[:QUICK_ISSUES] if quick else set_issues[: sample_size or None]
            select = functools.partial(
                run_selection,
                verbose=False,
                store_dir=stores / name,
                issue_set=SETS[name],
                trees=trees[name],
            )
            if with_hand and not quick:
                ranker.RANKER = ranker.UNIT_RANKER = "hand"
                results = select(sample)
                lines.append(_packing_row(name, "hand-set", results.outcomes))
            ranker.RANKER = "learned"
            ranker.UNIT_RANKER = "learned" if unit_queries else "hand"
            outcomes = []
            for fold in range(folds):
                chosen = [i for i in sample if fold_of.get(i.repo) == fold]
                if not chosen:
                    continue
                weights = fit([q for q in queries if fold_of[q.repo] != fold], l2)
                units = None
                if unit_queries:
                    unit_weights = fit([q for q in unit_queries if fold_of[q.repo] != fold], l2)
                    units = LinearRanker(relevance.UNIT_FEATURES, unit_weights)
                path = scratch / f"{name}-{fold}.json"
                model = LinearRanker(relevance.FILE_FEATURES, weights, units=units)
                path.write_text(model.to_json())
                ranker.RANKER_FILE = path
                results = select(chosen)
                outcomes += results.outcomes
            lines.append(_packing_row(name, f"{learned}, held out", outcomes))
    finally:
        ranker.RANKER, ranker.UNIT_RANKER, ranker.RANKER_FILE = saved
    return "\n".join(lines)


def _packing_row(name: str, label: str, outcomes: Sequence[object]) -> str:
    hunks = " / ".join(f"{_recall(outcomes, 'hunks', b)}" for b in BUDGETS)
    files = " / ".join(f"{_recall(outcomes, 'files', b)}" for b in BUDGETS)
    return f"| {name} | {label} | {len(outcomes)} | {hunks} % | {files} % |"


def _recall(outcomes: Sequence[object], kind: str, budget: int) -> str:
    hits = sum(getattr(o, kind)[budget] for o in outcomes)
    return f"{100 * hits / max(len(outcomes), 1):.1f}"


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument(
        "--mirrors",
        type=Path,
        default=os.environ.get(MIRRORS_ENV) or None,
        help=f"folder of the polyglot set's bare git snapshots (${MIRRORS_ENV})",
    )
    parser.add_argument(
        "--store", type=Path, default=None, help="folder of index stores to (re)use, one per set"
    )
    parser.add_argument("--set", choices=[*sorted(SETS), "both"], default="both")
    parser.add_argument("--language", default=None, help="only this language's issues")
    parser.add_argument("--limit", type=int, default=None, help="at most N issues per set")
    parser.add_argument("--folds", type=int, default=DEFAULT_FOLDS)
    parser.add_argument("--l2", type=float, default=DEFAULT_L2)
    parser.add_argument("--out", type=Path, default=None, help="write the weights here")
    parser.add_argument("--no-write", action="store_true", help="write neither weights nor docs")
    parser.add_argument("--quiet", action="store_true")
    parser.add_argument(
        "--packing",
        action="store_true",
        help="also pack selections with fold models (repositories held out): slow",
    )
    parser.add_argument(
        "--files-only", action="store_true", help="no unit model (units keep hand-set scores)"
    )
    parser.add_argument(
        "--unit-scope",
        choices=["all", "file"],
        default="all",
        help="packing: learned unit scores reorder all units, or each file's among themselves",
    )
    parser.add_argument(
        "--packing-sample",
        type=int,
        default=0,
        help="pack only the first N polyglot issues (hash order), and the hand-set ranking too",
    )
    parser.add_argument(
        "--queries",
        type=Path,
        default=None,
        help="keep each set's collected features in FILE.<set>.pickle and reuse them",
    )
    args = parser.parse_args(argv)
    names = sorted(SETS) if args.set == "both" else [args.set]
    if "polyglot" in names and (args.mirrors is None or not Path(args.mirrors).is_dir()):
        parser.error(f"the polyglot set needs --mirrors DIR (or ${MIRRORS_ENV})")
    wanted = None
    if args.language:
        try:
            wanted = language_key(args.language)
        except ValueError as exc:
            parser.error(str(exc))
    started = time.perf_counter()
    stores = args.store or Path(tempfile.mkdtemp(prefix="agentrt-train-"))
    queries: list[Query] = []
    unit_queries: list[Query] = []
    issues_by_set: dict[str, list[Issue]] = {}
    trees_by_set: dict[str, object] = {}
    for name in names:
        issue_set = SETS[name]
        if not issue_set.data.is_file():
            parser.error(f"no issue file {issue_set.data} (it comes with ../shared)")
        issues = [i for i in load_issues(issue_set.data) if wanted in (None, i.language)]
        issues.sort(key=lambda i: hashlib.blake2b(i.instance_id.encode()).hexdigest())
        issues = issues[: args.limit] if args.limit else issues
        trees = GitTrees(Path(args.mirrors)) if name == "polyglot" else sdist_tree
        issues_by_set[name], trees_by_set[name] = issues, trees
        saved_queries = (
            args.queries.with_name(f"{args.queries.name}.{name}-{wanted}-{args.limit}.pickle")
            if args.queries
            else None
        )
        if saved_queries is not None and saved_queries.is_file():
            got = pickle.loads(saved_queries.read_bytes())
        else:
            got = collect(issues, trees, ContextStore(stores / name), verbose=not args.quiet)
            if saved_queries is not None:
                saved_queries.write_bytes(pickle.dumps(got))
        queries += got[0]
        unit_queries += got[1]
    if args.files_only:
        unit_queries = []
    collected = time.perf_counter()
    hand = [worst_rank(q, q.features[:, 0]) for q in queries]
    held_out = cross_validate(queries, args.folds, args.l2)
    weights = fit(queries, args.l2)
    shipped = [worst_rank(q, q.features.astype(np.float64) @ weights) for q in queries]
    body = table(queries, hand, held_out, shipped)
    repos = len({q.repo for q in queries})
    body += (
        f"\n\n{len(queries)} issues of {repos} repositories; {args.folds} folds of whole "
        f"repositories; L2 {args.l2:g}. Features: `agentrt.context.relevance.FILE_FEATURES` "
        f"({len(relevance.FILE_FEATURES)}). Shipped weights: `context/ranker.json`."
    )
    unit_weights = None
    if unit_queries:
        fold_of = folds_by_repo(queries, args.folds)
        unit_hand = [worst_hunk_rank(q, q.features[:, 0]) for q in unit_queries]
        unit_held_out = cross_validate(unit_queries, args.folds, args.l2, worst_hunk_rank, fold_of)
        unit_weights = fit(unit_queries, args.l2)
        unit_shipped = [
            worst_hunk_rank(q, q.features.astype(np.float64) @ unit_weights) for q in unit_queries
        ]
        body += "\n\n" + table(unit_queries, unit_hand, unit_held_out, unit_shipped, UNIT_CAPTION)
        body += (
            f"\n\nUnit features: `agentrt.context.relevance.UNIT_FEATURES` "
            f"({len(relevance.UNIT_FEATURES)}); the same folds and L2."
        )
    if args.packing:
        from agentrt.context import ranker as ranker_module

        ranker_module.UNIT_SCOPE = args.unit_scope
        models = "models" if unit_queries else "a file model"
        body += (
            "\n\nPacked selections (`bench.context_selection`'s measure; the Python set's "
            "--quick sample"
            + (
                f", the first {args.packing_sample} polyglot issues in hash order"
                if args.packing_sample
                else ""
            )
            + f"), each fold's issues with {models} fitted without its repositories:\n\n"
            + held_out_packing(
                queries,
                issues_by_set,
                trees_by_set,
                stores,
                args.folds,
                args.l2,
                unit_queries,
                args.packing_sample,
                with_hand=bool(args.packing_sample),
            )
        )
    print(body)
    print(
        f"({collected - started:.0f} s collecting features, "
        f"{time.perf_counter() - collected:.0f} s fitting)"
    )
    partial = bool(args.limit or args.language or args.set != "both")
    ranker = LinearRanker(
        relevance.FILE_FEATURES,
        weights,
        {
            "command": COMMAND,
            "issues": len(queries),
            "repositories": repos,
            "l2": args.l2,
            "folds": args.folds,
            "held_out_worst_gold_rank": {"hand": _buckets(hand), "learned": _buckets(held_out)},
            **(
                {
                    "held_out_worst_hunk_unit_rank": {
                        "hand": _buckets(unit_hand),
                        "learned": _buckets(unit_held_out),
                    }
                }
                if unit_weights is not None
                else {}
            ),
        },
        None if unit_weights is None else LinearRanker(relevance.UNIT_FEATURES, unit_weights),
    )
    if args.out is not None:
        args.out.write_text(ranker.to_json())
    elif not (args.no_write or partial):
        RANKER_FILE.write_text(ranker.to_json())
    if not (args.no_write or partial):
        from bench.report import write_section

        write_section("ranker", "Learned ranker, files and units (both issue sets)", body)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
