"""Diagnostic: the rank of each issue's gold files in context ranking, without packing.

Hunk recall (``bench.context_selection``) is decided mostly by the rank of the gold file, and
ranking alone takes milliseconds per issue once the indexes are stored, against seconds for
the three packed selections. This reports, over the same issues, how often the worst-ranked
gold file is first, second, 3rd-10th, lower, or not indexed at all, for the current ranking
and for variants that override module constants of :mod:`agentrt.context.relevance`:

    python -m bench.context_ranks --store /tmp/store --variant 'nopr:W_FILE_PAGERANK=0'

``--set polyglot --mirrors DIR [--language X]`` does the same on the polyglot issues (trees
as in ``bench.context_selection``).

A gain here is necessary, not sufficient: files moved to the top were often delivered
already, so confirm any change with the full ``bench.context_selection`` run.
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from agentrt.context import relevance
from agentrt.context.select import DEFAULT_EXCLUDES
from agentrt.context.sources import scan_repository
from agentrt.context.store import ContextStore
from bench.context_selection import (
    Issue,
    _resolve,
    add_set_options,
    issues_from_args,
    sdist_tree,
)
from bench.trees import NoTree

#: Bucket labels of the worst gold-file rank (0-based); -1 means a gold file is not indexed.
BUCKETS = ("first", "second", "3rd-10th", "lower", "missing")


def bucket(worst_rank: int) -> str:
    """The label of a worst gold-file rank (0-based, -1 for a gold file not indexed)."""
    if worst_rank < 0:
        return "missing"
    if worst_rank <= 1:
        return BUCKETS[worst_rank]
    return "3rd-10th" if worst_rank < 10 else "lower"


def parse_variant(spec: str) -> tuple[str, dict[str, float]]:
    """``name:CONST=value,CONST=value`` -> (name, overrides); constants must exist."""
    name, _, assignments = spec.partition(":")
    overrides: dict[str, float] = {}
    for item in filter(None, assignments.split(",")):
        key, _, value = item.partition("=")
        if not hasattr(relevance, key):
            raise ValueError(f"agentrt.context.relevance has no constant {key!r}")
        overrides[key] = float(value)
    return name, overrides


@dataclass
class Tally:
    counts: dict[str, int] = field(default_factory=lambda: dict.fromkeys(BUCKETS, 0))
    seconds: list[float] = field(default_factory=list)


def gold_ranks(index: relevance.RepoIndex, issue: Issue, file_scores: np.ndarray) -> list[int]:
    """0-based rank of each gold file by ``file_scores`` (-1: not in the index)."""
    order = np.argsort(-file_scores, kind="stable")
    position = np.empty(len(order), dtype=np.int64)
    position[order] = np.arange(len(order))
    where = {path: f for f, path in enumerate(index.paths)}
    ranks = []
    for gold in issue.gold_files:
        path = _resolve(gold, index.paths)
        ranks.append(int(position[where[path]]) if path is not None else -1)
    return ranks


def run(
    issues: Sequence[Issue],
    variants: dict[str, dict[str, float]],
    store: ContextStore,
    trees: Callable[[Issue], Path] = sdist_tree,
) -> tuple[dict[str, Tally], list[dict[str, object]]]:
    """Tallies per variant, and one row per issue (its gold ranks under each variant)."""
    defaults = {key: getattr(relevance, key) for v in variants.values() for key in v}
    tallies = {name: Tally() for name in variants}
    rows: list[dict[str, object]] = []
    by_tree: dict[tuple[str, str], list[Issue]] = {}
    for issue in issues:
        by_tree.setdefault((issue.repo, issue.version), []).append(issue)
    try:
        for group in by_tree.values():
            try:
                tree = trees(group[0])
            except NoTree:
                continue
            scan = scan_repository(tree, extra_ignores=DEFAULT_EXCLUDES)
            index = relevance.build_index(scan.root, scan, store)
            for issue in group:
                row: dict[str, object] = {"id": issue.instance_id}
                for variant, overrides in variants.items():
                    for key, value in {**defaults, **overrides}.items():
                        setattr(relevance, key, value)
                    started = time.perf_counter()
                    ranking = relevance.rank(index, issue.query)
                    tallies[variant].seconds.append(time.perf_counter() - started)
                    ranks = gold_ranks(index, issue, ranking.file_scores)
                    worst = -1 if -1 in ranks else max(ranks)
                    tallies[variant].counts[bucket(worst)] += 1
                    row[variant] = ranks
                rows.append(row)
            relevance._MEMORY.clear()
    finally:
        for key, value in defaults.items():
            setattr(relevance, key, value)
    return tallies, rows


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    add_set_options(parser)
    parser.add_argument("--store", type=Path, default=None, help="index store to (re)use")
    parser.add_argument("--variant", action="append", default=[], help="name:CONST=value,...")
    parser.add_argument("--rows", type=Path, default=None, help="write per-issue ranks (JSONL)")
    args = parser.parse_args(argv)
    _, trees, issues = issues_from_args(parser, args)
    variants = dict([("current", {}), *map(parse_variant, args.variant)])
    store = ContextStore(args.store or Path(tempfile.mkdtemp(prefix="agentrt-ranks-")))
    tallies, rows = run(issues, variants, store, trees)
    print("| variant | " + " | ".join(BUCKETS) + " | rank ms (median) |")
    print("| --- " * (len(BUCKETS) + 2) + "|")
    for name, tally in tallies.items():
        cells = " | ".join(str(tally.counts[b]) for b in BUCKETS)
        print(f"| {name} | {cells} | {1000 * float(np.median(tally.seconds or [0])):.0f} |")
    if args.rows:
        args.rows.write_text("".join(json.dumps(row) + "\n" for row in rows))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
