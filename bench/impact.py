"""Benchmark: change-impact context on real fixes (SWE-bench Verified: ../shared/bench).

The fixes are those of ../shared/bench/swe_dev.jsonl.

For each fix, the hunks of one gold file (the first whose hunks are found in the release
tree, an sdist unpacked under ``~/.cache/agentrt-bench/`` as for ``bench.context_selection``)
become the change: a unified diff against the tree, whose old side is the tree (each hunk's
removed lines are edited; a hunk that only inserts gets a line between its context lines).
:func:`agentrt.context.impact.select_impact` selects that change's context at 4k and 13k
cl100k tokens. Measured, side by side with a baseline in the same run:

* **other gold files** (fixes that touch several files): the share of fixes whose other gold
  files all appear in the delivery, and the share of those files that do — the rest of the
  change a reviewer must see;
* **test module** (every fix whose tree has a test module named after the changed module,
  ``test_<module>.py`` or ``<module>_test.py``): the share whose delivery holds one;
* **the change's hunks**: the share whose delivery holds every changed line of the change
  (the edited lines; for an insertion, the lines on both sides of it): the change goes first.

Baseline: ``context select`` with the changed file's path and the hunks' lines as the query
(what one would ask for without impact), same budgets, same store.

The issue sets are those of :mod:`bench.context_selection` (``--set``): the Python fixes on
their release trees (default; no git history), or on git trees at their base commits
(``--set python-git``, ``--set polyglot``, with ``--mirrors DIR``), where impact and the
baseline both get the co-change history of the commits before the base
(:meth:`bench.context_selection.GitTrees.history`; ``--no-history``: neither does).

Run: ``python -m bench.impact [--set python|python-git|polyglot] [--mirrors DIR]
[--language X] [--limit N] [--multi] [--no-history] [--no-write]``.
"""

from __future__ import annotations

import argparse
import difflib
import os
import shutil
import statistics
import sys
import tempfile
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath

from agentrt.context import relevance
from agentrt.context.history import MAX_COMMIT_FILES, CoChanges
from agentrt.context.impact import ChangeError, select_impact
from agentrt.context.select import DEFAULT_EXCLUDES, select
from agentrt.context.sources import scan_repository
from agentrt.context.store import ContextStore
from agentrt.context.tokens import count_tokens
from bench.context_selection import (
    QUICK_ISSUES,
    SETS,
    GitTrees,
    Issue,
    IssueSet,
    _in_order,
    _resolve,
    add_set_options,
    delivered_lines,
    in_order_positions,
    issues_from_args,
    sdist_tree,
    tree_file,
    tree_history,
)
from bench.trees import NoTree

BUDGETS = (4_000, 13_000)
METHODS = ("impact", "graph", "baseline")
LABELS = {
    "impact": "impact",
    "graph": "impact, graph only (related=False)",
    "baseline": "baseline: select (path + hunk text)",
}


@dataclass(slots=True)
class Change:
    gold: str  # the gold path whose hunks are the change
    path: str  # its path in the tree
    diff: str
    #: Lines each hunk needs delivered: its removed (edited) lines, or for an insertion
    #: the lines on both sides of it.
    targets: list[list[str]]
    query: str  # the baseline's query: the path and the hunks' lines


def build_change(issue: Issue, tree: Path) -> Change | None:
    """The change made of one gold file's hunks, as a diff against ``tree``; None when no
    gold file's hunks are all found in the tree."""
    for gold in issue.gold_files:
        path = tree_file(tree, gold)
        if path is None:
            continue
        text = path.read_text(errors="replace")
        lines = text.split("\n")
        if text.endswith("\n"):
            lines.pop()  # no line after the last line end
        edited: set[int] = set()
        inserted: set[int] = set()
        targets: list[list[str]] = []
        starts = issue.hunk_starts or [1] * len(issue.hunks)
        for (hunk_path, removed, context), start in zip(issue.hunks, starts, strict=True):
            if hunk_path != gold:
                continue
            positions = in_order_positions(removed, lines, start - 1) if removed else None
            if positions:
                edited.update(positions)
                targets.append(removed)
                continue
            positions = in_order_positions(context, lines, start - 1) if context else None
            if not positions:
                break
            after = positions[max(0, len(positions) // 2 - 1)]
            inserted.add(after)
            targets.append(lines[after : after + 2])  # the lines around the insertion
        else:
            if not targets:
                continue
            new: list[str] = []
            for i, line in enumerate(lines):
                new.append(line + "  # changed" if i in edited else line)
                if i in inserted:
                    indent = line[: len(line) - len(line.lstrip())]
                    new.append(f"{indent}pass  # inserted")
            rel = path.relative_to(tree).as_posix()
            diff = "".join(
                difflib.unified_diff(
                    [x + "\n" for x in lines], [x + "\n" for x in new], f"a/{rel}", f"b/{rel}"
                )
            )
            hunk_text = "\n".join(line for target in targets for line in target)
            return Change(gold, rel, diff, targets, f"{rel}\n{hunk_text}")
    return None


def named_tests(paths: Sequence[str], path: str) -> set[str]:
    """Test modules named after the module ``path``, anywhere in the tree
    (``test_<module>.py``, ``<module>_test.go``: the changed file's suffix)."""
    pure = PurePosixPath(path)
    stem = pure.parent.name if pure.stem == "__init__" else pure.stem
    names = {f"test_{stem}{pure.suffix}", f"{stem}_test{pure.suffix}"}
    return {p for p in paths if PurePosixPath(p).name in names}


@dataclass
class Tally:
    hits: int = 0
    total: int = 0

    def add(self, hit: bool) -> None:
        self.hits += hit
        self.total += 1

    def pct(self) -> str:
        return f"{100 * self.hits / self.total:.1f}%" if self.total else "n/a"


def _tallies() -> dict[tuple[str, int], Tally]:
    return {(m, b): Tally() for m in METHODS for b in BUDGETS}


@dataclass
class Results:
    fixes: int = 0
    skipped: list[str] = field(default_factory=list)
    no_change: int = 0  # no gold file's hunks found in the tree
    errors: list[str] = field(default_factory=list)
    multi: int = 0
    others_in_tree: int = 0
    others_total: int = 0
    all_others: dict[tuple[str, int], Tally] = field(default_factory=_tallies)
    other_files: dict[tuple[str, int], Tally] = field(default_factory=_tallies)
    tests: dict[tuple[str, int], Tally] = field(default_factory=_tallies)
    change: dict[tuple[str, int], Tally] = field(default_factory=_tallies)
    over_budget: int = 0
    latency: list[float] = field(default_factory=list)  # impact, index in memory
    first_latency: list[float] = field(default_factory=list)  # impact, index built
    why_counts: dict[str, int] = field(default_factory=dict)
    load: list[float] = field(default_factory=list)
    #: Fixes whose selections had a history (git trees), and its median number of commits.
    with_history: list[int] = field(default_factory=list)


def run(
    issues: Sequence[Issue],
    verbose: bool = True,
    *,
    trees: Callable[[Issue], Path] = sdist_tree,
    history: bool = True,
) -> Results:
    """Measure each fix (``trees``: where its tree comes from; ``history``: impact and the
    baseline get the history before each base commit on git trees, :func:`tree_history`)."""
    results = Results()
    by_tree: dict[tuple[str, str], list[Issue]] = {}
    for issue in issues:
        by_tree.setdefault((issue.repo, issue.version), []).append(issue)
    for (name, version), group in by_tree.items():
        try:
            tree = trees(group[0])
        except NoTree as exc:
            results.skipped.extend(i.instance_id for i in group)
            print(f"  no source tree for {name} {version} ({exc}); skipping {len(group)}",
                  file=sys.stderr)  # fmt: skip
            continue
        paths = [f.path for f in scan_repository(tree, extra_ignores=DEFAULT_EXCLUDES).files]
        store_dir = Path(tempfile.mkdtemp(prefix="agentrt-bench-impact-"))
        first = True
        try:
            store = ContextStore(store_dir)
            for issue in group:
                results.fixes += 1
                results.load.append(os.getloadavg()[0])
                change = build_change(issue, tree)
                if change is None:
                    results.no_change += 1
                    continue
                cochanges = tree_history(trees, issue, store) if history else False
                if cochanges:
                    results.with_history.append(cochanges.n_commits)  # type: ignore[union-attr]
                outcome = _measure(issue, tree, paths, change, store, results, first, cochanges)
                first = False
                if verbose:
                    print(f"  {issue.instance_id:40s} {outcome}", flush=True)
        finally:
            relevance._MEMORY.clear()
            shutil.rmtree(store_dir, ignore_errors=True)
    return results


def _measure(
    issue: Issue,
    tree: Path,
    paths: list[str],
    change: Change,
    store: ContextStore,
    results: Results,
    first: bool,
    history: CoChanges | bool = False,
) -> str:
    others = [g for g in issue.gold_files if g != change.gold]
    tests = named_tests(paths, change.path)
    if others:
        results.multi += 1
        results.others_total += len(others)
        results.others_in_tree += sum(tree_file(tree, g) is not None for g in others)
    outcome = []
    for budget in BUDGETS:
        started = time.perf_counter()
        try:
            impact = select_impact(tree, budget, diff=change.diff, store=store, history=history)
        except ChangeError as exc:
            results.errors.append(f"{issue.instance_id}: {exc}")
            return f"error: {exc}"
        elapsed = time.perf_counter() - started
        (results.first_latency if first and budget == BUDGETS[0] else results.latency).append(
            elapsed
        )
        for item in impact.items:
            for reason in item.why.split("; "):
                if not reason.startswith("+"):
                    label = reason.split(" ", 1)[0].rstrip(":")
                    results.why_counts[label] = results.why_counts.get(label, 0) + 1
        graph = select_impact(
            tree, budget, diff=change.diff, store=store, related=False, history=history
        )
        baseline = select(tree, change.query, budget, store=store, history=history)
        for method, selection in (("impact", impact), ("graph", graph), ("baseline", baseline)):
            if count_tokens(selection.to_markdown()) > budget:
                results.over_budget += 1
            got = delivered_lines((i.path, i.start_line, i.text) for i in selection.items)
            key = (method, budget)
            if others:
                found = [_resolve(g, got) is not None for g in others]
                results.all_others[key].add(all(found))
                for hit in found:
                    results.other_files[key].add(hit)
            if tests:
                results.tests[key].add(any(t in got for t in tests))
            delivered = got.get(change.path, [])
            hunks = all(_in_order(t, delivered) for t in change.targets)
            results.change[key].add(hunks)
            if method in ("impact", "baseline"):
                marks = (
                    ("O" if all(_resolve(g, got) for g in others) else "o") if others else "-",
                    ("T" if any(t in got for t in tests) else "t") if tests else "-",
                    "H" if hunks else "h",
                )
                outcome.append("".join(marks))
    # Per budget: impact's marks, then the baseline's (in brackets).
    pairs = [f"{outcome[i]} [{outcome[i + 1]}]" for i in range(0, len(outcome), 2)]
    return " ".join(pairs) + f"  {elapsed:.2f}s"


def _median(values: Sequence[float]) -> str:
    return f"{statistics.median(values):.2f} s" if values else "n/a"


def table(results: Results, issue_set: IssueSet = SETS["python"]) -> str:
    r = results
    n = r.fixes - r.no_change - len(r.errors)
    any_tests = next(iter(r.tests.values())).total
    release = issue_set.name == "python"
    tree, no_tree = ("release tree", "no sdist") if release else ("tree", "no tree")
    lines = [
        f"{r.fixes + len(r.skipped)} fixes ({len(r.skipped)} skipped: {no_tree}; {r.no_change} "
        "whose gold hunks "
        f"are not in the {tree}; {len(r.errors)} errors): {n} changes measured. "
        f"{r.multi} touch several files, with {r.others_total} other gold files "
        f"({r.others_in_tree} of them in the {tree}s: the ceiling). "
        f"{any_tests} have a test module named after the changed module in their tree.",
        "",
        "| budget | method | other gold files: all of them | other gold files: each "
        "| test module of the changed module | the change's hunks |",
        "| --- | --- | --- | --- | --- | --- |",
    ]
    for budget in BUDGETS:
        for method in METHODS:
            key = (method, budget)
            lines.append(
                f"| {budget // 1000}k | {LABELS[method]} | {r.all_others[key].pct()} "
                f"| {r.other_files[key].pct()} | {r.tests[key].pct()} | {r.change[key].pct()} |"
            )
    if not release:
        commits = f"{statistics.median(r.with_history):.0f}" if r.with_history else "n/a"
        lines += [
            "",
            f"Trees: each fix's base commit. {len(r.with_history)} of {n} changes had a "
            f"history (median {commits} commits before the base, of at most "
            f"{MAX_COMMIT_FILES} files each), "
            "given to impact (co-changed files) and to the baseline (its ranking, from "
            "8k on) alike.",
        ]
    reasons = ", ".join(
        f"{label} {count}"
        for label, count in sorted(r.why_counts.items(), key=lambda item: -item[1])
    )
    lines += [
        "",
        f"The change: the hunks of the first gold file found in the {tree}, as a diff "
        "whose old side is the tree. Other gold files: the fix's other files "
        + (
            "(SWE-bench keeps test changes apart, so these are source files). Test module: a "
            "file named `test_<module>.py` or `<module>_test.py` anywhere in the tree; "
            if release
            else "(the sets keep test changes apart: these are code, docs or build files). "
            "Test module: a file named `test_<module>` or `<module>_test` with the changed "
            "file's suffix anywhere in the tree; "
        )
        + "impact finds such "
        "files by that same convention, so for impact the column measures delivery within "
        "the budget, for the baseline whether the query finds them. Baseline: `context "
        "select` with the changed file's path and the hunks' lines as the query.",
        "",
        f"Impact latency: first change on a tree (index built, references parsed) median "
        f"{_median(r.first_latency)}; later changes median {_median(r.latency)}, max "
        f"{max(r.latency, default=0):.2f} s. Machine load (1-minute average on "
        f"{os.cpu_count()} cores, shared): median {statistics.median(r.load or [0]):.1f}.",
        f"Reasons of delivered impact items (an item can have several): {reasons}.",
        f"Deliveries over budget: {r.over_budget} (must be 0).",
    ]
    if r.errors:
        lines.append("Errors: " + "; ".join(r.errors[:5]))
    return "\n".join(lines)


#: docs/benchmarks.md sections of the issue sets (the release trees' is the first).
SECTIONS = {
    "python": (
        "impact",
        "Change-impact context (the rest of a fix, and its tests, at a token budget)",
    ),
    "python-git": ("impact-python-git", "Change-impact context, Python fixes on git trees"),
    "polyglot": ("impact-polyglot", "Change-impact context in other languages (polyglot fixes)"),
}


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    add_set_options(parser)
    parser.add_argument("--multi", action="store_true", help="only fixes of several files")
    parser.add_argument(
        "--no-history",
        action="store_true",
        help="no git history before each base commit for impact nor the baseline (git trees)",
    )
    parser.add_argument("--no-write", action="store_true", help="do not update docs")
    parser.add_argument("--quiet", action="store_true")
    args = parser.parse_args(argv)
    # --multi filters before --limit / --quick take the first fixes.
    limit = args.limit or (QUICK_ISSUES if args.quick else None)
    everything = argparse.Namespace(**{**vars(args), "limit": None, "quick": False})
    issue_set, trees, issues = issues_from_args(parser, everything)
    if args.multi:
        issues = [i for i in issues if len(i.gold_files) > 1]
    if limit:
        issues = issues[:limit]
    started = time.perf_counter()
    results = run(issues, verbose=not args.quiet, trees=trees, history=not args.no_history)
    body = table(results, issue_set)
    print(body)
    print(f"({time.perf_counter() - started:.0f} s)")
    if not (limit or args.multi or args.no_write or args.language or args.no_history):
        from bench.report import write_section

        command = "python -m bench.impact"
        if isinstance(trees, GitTrees):
            command += f" --set {issue_set.name} --mirrors {args.mirrors}"
        write_section(*SECTIONS[issue_set.name], body, command)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
