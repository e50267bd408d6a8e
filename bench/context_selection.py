"""Benchmark: context selection on real issues, in Python and in other languages.

Two issue sets (``--set``):

* ``python`` (default): SWE-bench Verified, ``../shared/bench/swe_dev.jsonl``. Each issue's
  tree is the release closest to it (an sdist from the package index, cached unpacked under
  ``~/.cache/agentrt-bench/``).
* ``polyglot``: ``../shared/bench/polyglot_dev.jsonl``, issues of C++, Rust, Java, C,
  JavaScript, Go and TypeScript repositories. Each tree is the exact ``base_commit``, written
  out of a bare git snapshot of the repository (``--mirrors DIR`` or ``$AGENTRT_BENCH_MIRRORS``:
  the folder of ``<owner>+<name>/repo`` snapshots that the search tool's ``fetch`` makes) into
  ``~/.cache/agentrt-bench/polyglot/<owner>+<name>/<commit>/`` on first use (see
  :mod:`bench.trees`). Results are also given per language; ``--language X`` keeps one.

Each issue's tree is searched with the issue text as the query, at budgets of 4k, 13k and 27k
cl100k tokens. Measured, side by side with the SWE-bench retrieval baseline (BM25 over whole
source files, whole files added in rank order while they fit) computed in the same run:

* file recall@B: share of issues whose gold files all appear in the delivery;
* hunk recall@B: share of issues for which every gold hunk's removed lines (context lines for
  pure insertions) appear, line for line and in order, in the delivered text of their file;
* cold latency (fresh store, first selection on a tree) and warm latency (index in the store,
  a new query; the in-process cache is cleared first), and peak memory. Polyglot trees hold
  one issue each, so there warm is the same query once more with the index from the store;
* the oracle ceiling at B: the share of issues whose cheapest delivery that passes the
  scoring (every gold hunk's target lines as spans, every gold file as its cheapest line,
  rendered and counted as the packer does) fits in B, from the trees and the gold data
  alone (:func:`oracle`), so that a recall can be read against what is attainable at all;
* why the hunks of the issues missed at 13k were missed, each issue in the first reason of
  :data:`MISS_REASONS` that applies (oracle over the budget, a gold file not indexed, not
  code, an amalgamation, a hunk missed in delivered files, a gold file not delivered).

Run: ``python -m bench.context_selection [--set python|polyglot] [--mirrors DIR]
[--language X] [--quick] [--limit N] [--no-write]``. ``--quick`` takes 40 issues (a fixed,
hash-ordered sample); it, ``--limit``, ``--language`` and ``--store`` leave docs/benchmarks.md
alone. ``--selector issue`` measures :func:`agentrt.context.issue.select_issue` (the
issue-context workflow's packing, without a model) instead of ``select``, and ``--no-history``
ranks without the git history; both print and leave the docs alone.

``--rerank llm`` measures the issue-context workflow's LLM re-ranking instead, with whatever
model is configured (``AGENTRT_MODEL`` and its key; without one: one line, exit 2): per issue,
the candidates of :func:`agentrt.context.issue.issue_candidates`, the model's picks through
:func:`agentrt.agents.builtin.issue_context.rerank` (the ``issue_rerank`` agent's own manifest,
prompt, grant and output hook), and file and hunk recall of
:func:`agentrt.context.issue.select_issue` with and without the picks, side by side. The
numbers depend on the model, so they are printed, never written to docs/benchmarks.md.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import math
import os
import resource
import shutil
import statistics
import subprocess
import sys
import tarfile
import tempfile
import time
import zipfile
from collections import Counter
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Literal

import numpy as np

from agentrt.context import relevance
from agentrt.context.compress import split_lines
from agentrt.context.history import CoChanges, read_history
from agentrt.context.issue import select_issue
from agentrt.context.packer import MERGE_GAP, FileView, PackedItem, render_item, rendered_tokens
from agentrt.context.ranker import ranker_mode
from agentrt.context.select import (
    DEFAULT_EXCLUDES,
    Selection,
    fence_language,  # the code fences' language tags, so the oracle renders as select does
    line_token_counts,
    select,
)
from agentrt.context.sources import SourceFile, scan_repository
from agentrt.context.store import ContextStore
from agentrt.context.tokens import TokenCounter, count_tokens
from bench.trees import MIRRORS_ENV, NoTree, TreeInfo, cached_tree, find_mirror

if TYPE_CHECKING:
    from pydantic_ai.models import Model

SHARED = Path(__file__).resolve().parents[2] / "shared" / "bench"
DATA = SHARED / "swe_dev.jsonl"
CACHE = Path(os.environ.get("AGENTRT_BENCH_CACHE", Path.home() / ".cache" / "agentrt-bench"))
BUDGETS = (4_000, 13_000, 27_000)
QUICK_ISSUES = 40
NO_SDIST = "no sdist could be fetched or unpacked"
# Old sdists call pkg_resources in setup.py; newer setuptools removed it.
_BUILD_CONSTRAINTS = "setuptools<70\n"


# --------------------------------------------------------------------------- source trees


def fetch_tree(name: str, version: str) -> Path | None:
    """The unpacked sdist of ``name==version`` (or X.Y.0, X.Y.1), downloading it if needed."""
    tree = CACHE / "trees" / f"{name}-{version}"
    if (tree / ".complete").exists():
        return tree
    archive = _find_archive(CACHE / "sdists" / f"{name}-{version}") or _download(name, version)
    if archive is None:
        return None
    tmp = Path(tempfile.mkdtemp(dir=CACHE / "trees" if (CACHE / "trees").is_dir() else None))
    try:
        if archive.name.endswith(".zip"):
            with zipfile.ZipFile(archive) as zf:
                zf.extractall(tmp)
        else:
            with tarfile.open(archive) as tf:
                tf.extractall(tmp, filter="data")
    except (tarfile.TarError, zipfile.BadZipFile, EOFError, OSError) as exc:
        print(f"  cannot unpack {archive}: {exc}", file=sys.stderr)
        shutil.rmtree(tmp, ignore_errors=True)
        return None
    top = [p for p in tmp.iterdir()]
    root = top[0] if len(top) == 1 and top[0].is_dir() else tmp
    shutil.rmtree(tree, ignore_errors=True)
    tree.parent.mkdir(parents=True, exist_ok=True)
    root.rename(tree)
    shutil.rmtree(tmp, ignore_errors=True)
    (tree / ".complete").touch()
    return tree


def _find_archive(directory: Path) -> Path | None:
    if not directory.is_dir():
        return None
    for path in sorted(directory.iterdir()):
        if path.name.endswith((".tar.gz", ".tgz", ".zip", ".tar.bz2")):
            return path
    return None


def _download(name: str, version: str) -> Path | None:
    directory = CACHE / "sdists" / f"{name}-{version}"
    directory.mkdir(parents=True, exist_ok=True)
    constraints = CACHE / "build-constraints.txt"
    constraints.write_text(_BUILD_CONSTRAINTS)
    for candidate in (version, f"{version}.0", f"{version}.1"):
        result = subprocess.run(
            [
                sys.executable, "-m", "pip", "download", "-q", "--no-deps",
                "--no-binary", name, "--build-constraint", str(constraints),
                f"{name}=={candidate}", "-d", str(directory),
            ],
            capture_output=True,
            text=True,
            check=False,
        )  # fmt: skip
        archive = _find_archive(directory)
        if result.returncode == 0 or archive is not None:
            return archive
    return None


# --------------------------------------------------------------------------- measuring


@dataclass(slots=True)
class Issue:
    instance_id: str
    #: Where the tree comes from: a PyPI name (python set) or ``owner/name`` (polyglot).
    repo: str
    #: The release (python set) or the exact base commit (polyglot).
    version: str
    query: str
    gold_files: list[str]
    #: (path, removed lines, context lines) of each hunk of the fix.
    hunks: list[tuple[str, list[str], list[str]]]
    language: str = "python"
    #: Line of each hunk in the file the fix was made to (old side).
    hunk_starts: list[int] = field(default_factory=list)


def load_issues(path: Path = DATA, git: bool = False) -> list[Issue]:
    """The issues of a set's JSONL file (``swe_dev.jsonl`` or ``polyglot_dev.jsonl`` rows);
    ``git``: Python issues by repository and base commit (trees from git snapshots) instead
    of PyPI release."""
    issues = []
    for line in path.read_text().splitlines():
        row = json.loads(line)
        hunks = [(h["path"], h["removed"], h["context"]) for h in row["gold_hunks"]]
        if "pypi_name" in row and not git:
            repo, version = row["pypi_name"], row["version_hint"]
        else:
            repo = row.get("fetch", row["repo"]).removeprefix("github:")
            version = row["base_commit"]
        issues.append(
            Issue(
                row["instance_id"],
                repo,
                version,
                row["problem_statement"],
                row["gold_files"],
                hunks,
                row.get("language", "python"),
                [h["old_start"] for h in row["gold_hunks"]],
            )
        )
    return issues


#: Display names of the sets' ``language`` values, and names ``--language`` also accepts.
LANGUAGE_NAMES = {
    "python": "Python",
    "cpp": "C++",
    "rust": "Rust",
    "java": "Java",
    "c": "C",
    "javascript": "JavaScript",
    "go": "Go",
    "typescript": "TypeScript",
}
_LANGUAGE_ALIASES = {"c++": "cpp", "js": "javascript", "ts": "typescript", "golang": "go"}


def language_key(name: str) -> str:
    """The set's key of a language name as a user types it (``C++``, ``cpp``, ``JS`` …)."""
    lowered = name.strip().lower()
    lowered = _LANGUAGE_ALIASES.get(lowered, lowered)
    if lowered not in LANGUAGE_NAMES:
        known = ", ".join(sorted(LANGUAGE_NAMES))
        raise ValueError(f"unknown language {name!r} (known: {known})")
    return lowered


#: Source files the polyglot baseline ranks: the sets' languages and their near kin.
SOURCE_SUFFIXES = tuple(
    (  # noqa: SIM905 - one word per suffix reads better than 28 quoted strings
        ".c .h .cc .cpp .cxx .c++ .hh .hpp .hxx .h++ .ipp .tpp .inl "  # C, C++
        ".rs .go .java .kt .kts .scala .py "
        ".js .mjs .cjs .jsx .ts .mts .cts .tsx"
    ).split()
)


@dataclass(frozen=True, slots=True)
class IssueSet:
    """One set of issues: where it is, how its trees come, how its results are shown."""

    name: str
    data: Path
    section: str  # of docs/benchmarks.md
    title: str
    #: The whole-file baseline ranks the files with these suffixes.
    source_suffixes: tuple[str, ...]
    #: Trees hold one issue each: time the same query once more as the warm selection.
    warm_repeat: bool = False
    per_language: bool = False


SETS = {
    "python": IssueSet(
        "python",
        DATA,
        "context",
        "Context selection (hunk recall at a token budget)",
        (".py",),
    ),
    "polyglot": IssueSet(
        "polyglot",
        SHARED / "polyglot_dev.jsonl",
        "context-polyglot",
        "Context selection in other languages (polyglot issues, hunk recall at a token budget)",
        SOURCE_SUFFIXES,
        warm_repeat=True,
        per_language=True,
    ),
    # The Python issues on git trees at their base commits, with the history before them:
    # the release archives of the python set have none. Only repositories with a snapshot
    # under --mirrors (Django's and Matplotlib's are too large to fetch here).
    "python-git": IssueSet(
        "python-git",
        DATA,
        "context-python-git",
        "Context selection, Python issues on git trees",
        (".py",),
    ),
}


def sdist_tree(issue: Issue) -> Path:
    """The python set's tree of ``issue``: its release's sdist, unpacked."""
    tree = fetch_tree(issue.repo, issue.version)
    if tree is None:
        raise NoTree(NO_SDIST)
    return tree


class GitTrees:
    """The polyglot set's trees: each issue's base commit, out of the snapshots in ``mirrors``."""

    def __init__(self, mirrors: Path, cache: Path | None = None) -> None:
        self.mirrors = mirrors
        self.cache = cache or CACHE / "polyglot"
        self.info: dict[tuple[str, str], TreeInfo] = {}

    def __call__(self, issue: Issue) -> Path:
        tree, info = cached_tree(self.mirrors, issue.repo, issue.version, self.cache)
        self.info[(issue.repo, issue.version)] = info
        return tree

    def history(self, issue: Issue, store: ContextStore | None = None) -> CoChanges | None:
        """The co-changes of the commits before the issue's base commit, read from its
        snapshot (the extracted tree has no ``.git``; nothing after the base is read)."""
        git_dir = find_mirror(self.mirrors, issue.repo)
        if git_dir is None:
            return None
        return read_history(git_dir, issue.version, git_dir=git_dir, store=store)


def tree_history(
    trees: Callable[[Issue], Path], issue: Issue, store: ContextStore
) -> CoChanges | bool:
    """What a selection of ``issue`` ranks with (``select``'s ``history``): its snapshot's
    history for git trees, none for sdists (a release archive has no history)."""
    if isinstance(trees, GitTrees):
        return trees.history(issue, store) or False
    return False


def _in_order(needles: Sequence[str], haystack: Sequence[str]) -> bool:
    """Every needle line appears in ``haystack``, in order (a subsequence, exact lines)."""
    it = iter(haystack)
    return all(any(line == needle for line in it) for needle in needles)


def in_order_positions(
    needles: Sequence[str], haystack: Sequence[str], near: int = 0
) -> list[int] | None:
    """Where the needle lines appear in ``haystack`` in order (0-based), or None.

    Of the matches starting at each occurrence of the first needle (and spanning at most a
    few times as many lines as there are needles), the tightest one (the fewest lines from
    first to last), then the one starting nearest ``near``.
    """
    if not needles:
        return []
    best: list[int] | None = None
    limit = 4 * len(needles) + 40
    for start, line in enumerate(haystack):
        if line != needles[0]:
            continue
        positions, at = [start], start + 1
        end = min(len(haystack), start + limit)
        for needle in needles[1:]:
            while at < end and haystack[at] != needle:
                at += 1
            if at == end:
                break
            positions.append(at)
            at += 1
        if len(positions) < len(needles):
            continue
        key = (positions[-1] - positions[0], abs(start - near))
        if best is None or key < (best[-1] - best[0], abs(best[0] - near)):
            best = positions
    return best


def tree_file(tree: Path, gold: str) -> Path | None:
    """The file of the gold path ``gold`` in a release tree (sdists may add a folder)."""
    return next((p for p in (tree / gold, *tree.glob(f"*/{gold}")) if p.is_file()), None)


def _resolve(gold: str, delivered: Iterable[str]) -> str | None:
    """The delivered path of a gold path (sdists can add or drop a leading folder); the
    path itself when it is delivered (``src/lib.rs`` is not ``tracing/src/lib.rs``)."""
    delivered = delivered if isinstance(delivered, Mapping | set | frozenset) else list(delivered)
    if gold in delivered:
        return gold
    for path in delivered:
        if path == gold or path.endswith("/" + gold) or gold.endswith("/" + path):
            return path
    return None


def hunk_targets(issue: Issue, tree: Path) -> list[tuple[str, list[str]]] | None:
    """The lines each hunk needs delivered, as they are in this release; None if unattainable.

    The release closest to the issue can predate or postdate the fix by a little. A hunk's
    target is its removed lines (its context lines for a pure insertion); when the release
    no longer holds the removed lines (the fix is already in it), its context lines. When
    neither is in the file, no selection can deliver the hunk: the issue counts as a miss
    for every method, and the "attainable" column says how often that happens.
    """
    targets = []
    for gold, removed, context in issue.hunks:
        path = tree_file(tree, gold)
        if path is None:
            return None
        lines = path.read_text(errors="replace").split("\n")
        for wanted in (removed, context):
            if wanted and _in_order(wanted, lines):
                targets.append((gold, wanted))
                break
        else:
            return None
    return targets


def score(
    issue: Issue, targets: list[tuple[str, list[str]]] | None, delivered: dict[str, list[str]]
) -> tuple[bool, bool]:
    """(all gold files delivered, all gold hunks delivered) for ``path -> delivered lines``."""
    files_ok = all(_resolve(g, delivered) is not None for g in issue.gold_files)
    if targets is None:
        return files_ok, False
    hunks_ok = True
    for gold, lines in targets:
        path = _resolve(gold, delivered)
        if path is None or not _in_order(lines, delivered[path]):
            hunks_ok = False
            break
    return files_ok, hunks_ok


def score_parts(
    issue: Issue, targets: list[tuple[str, list[str]]] | None, delivered: dict[str, list[str]]
) -> tuple[int, int]:
    """(gold files delivered, gold hunks delivered) for ``path -> delivered lines``: the
    per-part view of :func:`score`, which asks for all of them. A hunk whose lines are not in
    the tree (``targets`` None) counts as missed."""
    files = sum(_resolve(g, delivered) is not None for g in issue.gold_files)
    if targets is None:
        return files, 0
    hunks = 0
    for gold, lines in targets:
        path = _resolve(gold, delivered)
        hunks += path is not None and _in_order(lines, delivered[path])
    return files, hunks


def delivered_lines(items: Iterable[tuple[str, int, str]]) -> dict[str, list[str]]:
    """``path -> lines`` of delivered items (path, start line, text), items in line order.

    Lines lose a CR before their LF, as the targets do (read with universal newlines), so a
    CRLF file's hunks can be found (one gold file of the polyglot set is CRLF).
    """
    per_path: dict[str, list[tuple[int, str]]] = {}
    for path, start, text in items:
        per_path.setdefault(path, []).append((start, text.replace("\r\n", "\n")))
    return {
        path: [line for _, text in sorted(parts) for line in text.split("\n")]
        for path, parts in per_path.items()
    }


# --------------------------------------------------------------------------- oracle ceiling


@dataclass(frozen=True, slots=True)
class Oracle:
    """The cheapest deliveries that satisfy :func:`score`, in tokens as the packer counts
    them (:func:`agentrt.context.packer.rendered_tokens`); None when no delivery can.

    ``hunks``: every gold hunk's target lines as spans of their file (see
    :func:`oracle_spans`; a header per item). ``files``: the cheapest single line of every
    gold file. Selections deliver units, skeletons and files, never less than a line, so
    they cannot cost less: an issue is attainable at budget B when its cost is at most B.
    """

    hunks: int | None
    files: int | None
    #: Gold files the scan does not index (no selection can deliver them).
    unindexed: tuple[str, ...] = ()

    def attainable(self, kind: str, budget: int) -> bool:
        cost = self.hunks if kind == "hunks" else self.files
        return cost is not None and cost <= budget


def _plain(lines: Sequence[str]) -> list[str]:
    """Lines as :func:`score` compares them: without their line end (LF, CRLF)."""
    return [line.removesuffix("\n").removesuffix("\r") for line in lines]


def _subsequence_positions(needles: Sequence[str], haystack: Sequence[str]) -> list[int] | None:
    """The first in-order match of ``needles`` in ``haystack`` (0-based), or None."""
    positions: list[int] = []
    at = 0
    for needle in needles:
        while at < len(haystack) and haystack[at] != needle:
            at += 1
        if at == len(haystack):
            return None
        positions.append(at)
        at += 1
    return positions


def _view(path: str, text: str, counter: TokenCounter) -> FileView:
    """``path``'s lines as :func:`agentrt.context.select.select` gives them to the packer."""
    lines = split_lines(text)
    if lines and not lines[-1].endswith(("\n", "\r")):
        lines[-1] += "\n"
    return FileView(path, lines, line_token_counts(lines, counter), [], fence_language(path))


def oracle_spans(view: FileView, needed: Iterable[int], header: int) -> list[tuple[int, int]]:
    """The cheapest spans of ``view`` that show the ``needed`` lines (1-based): runs of
    needed lines, two runs joined when the packer would merge them (``MERGE_GAP``) or when
    the lines between them cost fewer tokens than the ``header`` of a second item."""
    spans: list[tuple[int, int]] = []
    for line in sorted(set(needed)):
        if spans:
            start, end = spans[-1]
            gap = line - end - 1
            fill = view.prefix[line - 1] - view.prefix[end]
            if gap <= MERGE_GAP or fill <= header:
                spans[-1] = (start, max(end, line))
                continue
        spans.append((line, line))
    return spans


def header_tokens(path: str, counter: TokenCounter) -> int:
    """Tokens of one item's header and fences (an item of ``path`` with no text)."""
    item = PackedItem(path, 10000, 10000, "span", 0.0, "", fence_language(path))
    return counter.count(render_item(item))


def oracle_items(
    views: Mapping[str, FileView], spans: Mapping[str, Sequence[tuple[int, int]]]
) -> list[PackedItem]:
    """The items the packer delivers for exactly these line spans (1-based, inclusive):
    spans of a file closer than ``MERGE_GAP`` lines merged, a whole file as one ``file``
    item, files in path order (the packer's order for equal scores). What
    :func:`agentrt.context.packer.pack` makes of these spans as candidates when all fit
    (a test holds the two together), without its search for what fits."""
    items: list[PackedItem] = []
    for path in sorted(spans):
        view = views[path]
        merged: list[tuple[int, int]] = []
        for start, end in sorted(spans[path]):
            if merged and start - merged[-1][1] - 1 <= MERGE_GAP:
                merged[-1] = (merged[-1][0], max(merged[-1][1], end))
            else:
                merged.append((start, end))
        for start, end in merged:
            kind: Literal["file", "span"] = "file" if (start, end) == (1, view.n_lines) else "span"
            text = "".join(view.lines[start - 1 : end])
            items.append(PackedItem(path, start, end, kind, 1.0, text, view.language))
    return items


def delivery_cost(
    views: Mapping[str, FileView], spans: Mapping[str, Sequence[tuple[int, int]]],
    counter: TokenCounter,
) -> int:  # fmt: skip
    """Tokens of the packer's rendering of exactly these spans (see :func:`oracle_items`),
    as :func:`agentrt.context.packer.rendered_tokens` counts them."""
    return rendered_tokens(oracle_items(views, spans), counter.count)


def oracle(
    issue: Issue,
    targets: Sequence[tuple[str, list[str]]] | None,
    indexed: Mapping[str, SourceFile],
    counter: TokenCounter,
) -> Oracle:
    """The oracle deliveries of ``issue`` in a tree whose scan indexed ``indexed`` (path ->
    file), its hunks' ``targets`` as :func:`hunk_targets` found them.

    Each hunk's target lines are found where :func:`in_order_positions` finds them nearest
    the hunk's line; the lines of all hunks of a file are then delivered as
    :func:`oracle_spans`.
    """
    resolved: dict[str, str] = {}
    unindexed: list[str] = []
    for gold in dict.fromkeys([*issue.gold_files, *(t[0] for t in targets or ())]):
        path = _resolve(gold, indexed)
        if path is None:
            unindexed.append(gold)
        else:
            resolved[gold] = path
    views: dict[str, FileView] = {}
    plain: dict[str, list[str]] = {}

    def view(path: str) -> FileView:
        if path not in views:
            views[path] = _view(path, indexed[path].read_text(), counter)
            plain[path] = _plain(views[path].lines)
        return views[path]

    file_cost: int | None = None
    if not unindexed and all(view(resolved[g]).n_lines for g in issue.gold_files):
        cheapest: dict[str, list[tuple[int, int]]] = {}
        for gold in issue.gold_files:
            line = int(np.argmin(view(resolved[gold]).line_tokens)) + 1
            cheapest.setdefault(resolved[gold], []).append((line, line))
        file_cost = delivery_cost(views, cheapest, counter)
    hunk_cost: int | None = None
    if targets is not None and not unindexed:
        needed: dict[str, set[int]] | None = {}
        starts = issue.hunk_starts or [1] * len(targets)
        for (gold, wanted), start in zip(targets, starts, strict=False):
            path = resolved[gold]
            view(path)
            lines = plain[path]
            found = in_order_positions(wanted, lines, max(0, start - 1))
            found = found or _subsequence_positions(wanted, lines)
            if found is None:  # not line for line in the file as the selection reads it
                needed = None
                break
            needed.setdefault(path, set()).update(p + 1 for p in found)
        if needed:
            spans = {
                path: oracle_spans(view(path), lines, header_tokens(path, counter))
                for path, lines in needed.items()
            }
            hunk_cost = delivery_cost(views, spans, counter)
    return Oracle(hunk_cost, file_cost, tuple(unindexed))


#: Suffixes of code (what a fix's logic lives in); other gold files are docs, build files,
#: CI configuration, changelogs, lockfiles, manual pages, test expectations.
CODE_SUFFIXES = (*SOURCE_SUFFIXES, ".re2c", ".cs", ".rb", ".php", ".swift", ".m", ".mm", ".pyi")
#: Path parts of generated single-file amalgamations (regenerated from the real sources).
AMALGAMATION_MARKS = ("single_include/", "singleheader/", "amalgamat")

#: The budget whose misses :func:`miss_table` sorts by reason.
TAXONOMY_BUDGET = 13_000
#: Why an issue's hunks were missed at a budget: the first that applies, in this order.
MISS_REASONS = (
    ("oracle", "not attainable: the oracle is over the budget (or a hunk's lines not in its file)"),
    ("unindexed", "a gold file not indexed (ignored, excluded, binary, too large, absent)"),
    ("noncode", "a gold file is not code (docs, build, CI, changelog, test expectations)"),
    ("amalgamation", "a gold file is a generated amalgamation (single_include/, …)"),
    ("hunk", "every gold file delivered, a gold hunk not"),
    ("rank", "a gold code file not delivered (ranked too low)"),
)


def is_code(path: str) -> bool:
    return path.lower().endswith(CODE_SUFFIXES)


def is_amalgamation(path: str) -> bool:
    lowered = path.lower()
    return any(mark in lowered for mark in AMALGAMATION_MARKS)


def miss_reason(
    issue: Issue, ceiling: Oracle, hunks_ok: bool, files_ok: bool, budget: int
) -> str | None:
    """Why ``issue``'s gold hunks were missed at ``budget`` (a key of :data:`MISS_REASONS`),
    None when they were delivered."""
    if hunks_ok:
        return None
    # An unindexed gold file makes the oracle infinite too: that is (b), not (a).
    if not ceiling.unindexed and not ceiling.attainable("hunks", budget):
        return "oracle"
    if ceiling.unindexed:
        return "unindexed"
    if any(not is_code(g) for g in issue.gold_files):
        return "noncode"
    if any(is_amalgamation(g) for g in issue.gold_files):
        return "amalgamation"
    return "hunk" if files_ok else "rank"


class Baseline:
    """SWE-bench's BM25 retrieval: whole source files ranked by BM25 of the issue text."""

    def __init__(self, tree: Path, suffixes: tuple[str, ...] = (".py",)) -> None:
        scan = scan_repository(tree, extra_ignores=DEFAULT_EXCLUDES)
        #: Every file the scan found (what a selection can deliver at all), by path.
        self.files = {source.path: source for source in scan.files}
        self.scanned = set(self.files)
        self.paths: list[str] = []
        self.texts: list[str] = []
        for source in scan.files:
            if source.path.lower().endswith(suffixes):
                self.paths.append(source.path)
                self.texts.append(source.read_text())
        self.index = relevance.Bm25.from_id_lists([relevance.text_ids(t) for t in self.texts])
        self.tokens = [count_tokens(t) for t in self.texts]

    def select(self, query: str, budget: int) -> dict[str, list[str]]:
        scores = self.index.scores(relevance.text_ids(query))
        chosen: list[tuple[str, int, str]] = []
        spent = 0
        for f in scores.argsort()[::-1]:
            if scores[f] <= 0:
                break
            cost = self.tokens[f] + 8  # the file's text and a path header
            if spent + cost <= budget:
                chosen.append((self.paths[f], 1, self.texts[f]))
                spent += cost
            if budget - spent < 50:
                break
        return delivered_lines(chosen)


@dataclass(slots=True)
class Outcome:
    """One issue's result: per budget, all gold files / all gold hunks delivered."""

    instance_id: str
    language: str
    files: dict[int, bool] = field(default_factory=dict)
    hunks: dict[int, bool] = field(default_factory=dict)
    base_files: dict[int, bool] = field(default_factory=dict)
    base_hunks: dict[int, bool] = field(default_factory=dict)
    #: The cheapest deliveries that satisfy the scoring (None: not computed).
    ceiling: Oracle | None = None
    #: Why the hunks were missed at :data:`TAXONOMY_BUDGET` (a key of MISS_REASONS).
    miss: str | None = None
    #: Every gold file is source code (:func:`is_code`): no docs, build files or changelogs.
    code_only: bool = True
    #: Per budget, how many gold files / gold hunks were delivered (:func:`score_parts`),
    #: and the BM25 baseline's; out of ``n_files`` / ``n_hunks``.
    file_parts: dict[int, int] = field(default_factory=dict)
    hunk_parts: dict[int, int] = field(default_factory=dict)
    base_hunk_parts: dict[int, int] = field(default_factory=dict)
    n_files: int = 0
    n_hunks: int = 0

    def attainable(self, kind: str, budget: int) -> bool:
        return self.ceiling is not None and self.ceiling.attainable(kind, budget)


@dataclass
class Results:
    issues: int = 0
    #: instance id -> why it was skipped (no tree).
    skipped: dict[str, str] = field(default_factory=dict)
    outcomes: list[Outcome] = field(default_factory=list)
    file_hits: dict[int, int] = field(default_factory=lambda: dict.fromkeys(BUDGETS, 0))
    hunk_hits: dict[int, int] = field(default_factory=lambda: dict.fromkeys(BUDGETS, 0))
    base_file_hits: dict[int, int] = field(default_factory=lambda: dict.fromkeys(BUDGETS, 0))
    base_hunk_hits: dict[int, int] = field(default_factory=lambda: dict.fromkeys(BUDGETS, 0))
    over_budget: int = 0
    attainable: int = 0
    cold: list[tuple[str, int, float]] = field(default_factory=list)  # tree, files, seconds
    #: CPU seconds (this process and its workers) of each cold selection: less sensitive
    #: than wall time to other jobs on a shared machine.
    cold_cpu: list[float] = field(default_factory=list)
    warm: list[float] = field(default_factory=list)
    #: tree label -> its warm selections (seconds).
    warm_by_tree: dict[str, list[float]] = field(default_factory=dict)
    load: list[float] = field(default_factory=list)  # 1-minute load average, per issue
    #: Issues with a gold file that no selection can deliver (the scan does not index it:
    #: default ignores, excluded patterns, binary, or a blob the snapshot lacks).
    unindexed: int = 0
    #: Which function selected (a key of :data:`SELECTORS`).
    selector: str = "select"


#: What ``--selector`` measures: ``select`` (``agentrt context select``), or ``issue``
#: (:func:`agentrt.context.issue.select_issue`, the issue-context workflow's packing of the
#: ranking without a model's picks: neighbours, then the ranking's order).
SELECTORS: dict[str, Callable[..., Selection]] = {"select": select, "issue": select_issue}


def run(
    issues: Sequence[Issue],
    verbose: bool = True,
    store_dir: Path | None = None,
    *,
    issue_set: IssueSet = SETS["python"],
    trees: Callable[[Issue], Path] = sdist_tree,
    history: bool = True,
    selector: str = "select",
) -> Results:
    """Select for each issue at each budget, score, and time it (``history``: rank with the
    history before each issue's base commit on git trees, :func:`tree_history`;
    ``selector``: a key of :data:`SELECTORS`)."""
    results = Results(selector=selector)
    select_at = SELECTORS[selector]
    counter = TokenCounter()  # select's default encoding, as the budgets are counted in
    by_tree: dict[tuple[str, str], list[Issue]] = {}
    for issue in issues:
        by_tree.setdefault((issue.repo, issue.version), []).append(issue)
    for (name, version), group in by_tree.items():
        try:
            tree = trees(group[0])
        except NoTree as exc:
            results.skipped.update(dict.fromkeys((i.instance_id for i in group), str(exc)))
            print(f"  no source tree for {name} {version} ({exc}); skipping {len(group)}",
                  file=sys.stderr)  # fmt: skip
            continue
        label = f"{name}-{version}" if issue_set.name == "python" else f"{name}@{version[:10]}"
        baseline = Baseline(tree, issue_set.source_suffixes)
        tree_store = store_dir or Path(tempfile.mkdtemp(prefix="agentrt-bench-store-"))
        try:
            store = ContextStore(tree_store)
            for n, issue in enumerate(group):
                relevance._MEMORY.clear()  # warm means: index in the store, new process
                results.load.append(os.getloadavg()[0])
                cpu = _cpu_seconds()
                started = time.perf_counter()
                # Timed: select reads it too.
                cochanges = tree_history(trees, issue, store) if history else False
                selection = select_at(tree, issue.query, BUDGETS[0], store=store, history=cochanges)
                elapsed = time.perf_counter() - started
                if n == 0:
                    results.cold.append((label, selection.stats["files"], elapsed))
                    results.cold_cpu.append(_cpu_seconds() - cpu)
                else:
                    results.warm.append(elapsed)
                    results.warm_by_tree.setdefault(label, []).append(elapsed)
                results.issues += 1
                targets = hunk_targets(issue, tree)
                results.attainable += targets is not None
                results.unindexed += not all(
                    _resolve(g, baseline.scanned) is not None for g in issue.gold_files
                )
                ceiling = oracle(issue, targets, baseline.files, counter)
                record = Outcome(
                    issue.instance_id,
                    issue.language,
                    ceiling=ceiling,
                    code_only=all(is_code(g) for g in issue.gold_files),
                    n_files=len(issue.gold_files),
                    n_hunks=len(issue.hunks),
                )
                outcome = []
                for budget in BUDGETS:
                    if budget != BUDGETS[0]:
                        selection = select_at(
                            tree, issue.query, budget, store=store, history=cochanges
                        )
                    if count_tokens(selection.to_markdown()) > budget:
                        results.over_budget += 1
                    got = delivered_lines((i.path, i.start_line, i.text) for i in selection.items)
                    files_ok, hunks_ok = score(issue, targets, got)
                    results.file_hits[budget] += files_ok
                    results.hunk_hits[budget] += hunks_ok
                    record.file_parts[budget], record.hunk_parts[budget] = score_parts(
                        issue, targets, got
                    )
                    base = baseline.select(issue.query, budget)
                    b_files, b_hunks = score(issue, targets, base)
                    record.base_hunk_parts[budget] = score_parts(issue, targets, base)[1]
                    results.base_file_hits[budget] += b_files
                    results.base_hunk_hits[budget] += b_hunks
                    record.files[budget], record.hunks[budget] = files_ok, hunks_ok
                    record.base_files[budget], record.base_hunks[budget] = b_files, b_hunks
                    outcome.append(f"{'F' if files_ok else '.'}{'H' if hunks_ok else '.'}")
                record.miss = miss_reason(
                    issue,
                    ceiling,
                    record.hunks[TAXONOMY_BUDGET],
                    record.files[TAXONOMY_BUDGET],
                    TAXONOMY_BUDGET,
                )
                results.outcomes.append(record)
                if issue_set.warm_repeat and len(group) == 1:
                    relevance._MEMORY.clear()
                    started = time.perf_counter()
                    select_at(tree, issue.query, BUDGETS[0], store=store, history=cochanges)
                    results.warm.append(time.perf_counter() - started)
                    results.warm_by_tree.setdefault(label, []).append(results.warm[-1])
                if verbose:
                    print(
                        f"  {issue.instance_id:40s} {' '.join(outcome)}  {elapsed:.2f}s  "
                        f"oracle {_cost(ceiling.hunks)} / {_cost(ceiling.files)}"
                        + (f"  miss: {record.miss}" if record.miss else ""),
                        flush=True,
                    )
        finally:
            relevance._MEMORY.clear()
            if store_dir is None:
                shutil.rmtree(tree_store, ignore_errors=True)
    return results


def _cpu_seconds() -> float:
    own = resource.getrusage(resource.RUSAGE_SELF)
    children = resource.getrusage(resource.RUSAGE_CHILDREN)
    return own.ru_utime + own.ru_stime + children.ru_utime + children.ru_stime


def peak_memory_mb() -> float:
    """Peak resident memory of this process and of its (worker) children, in MB."""
    own = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    children = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
    return max(own, children) / 1024


def _pct(hits: int, total: int) -> str:
    return f"{100 * hits / total:.1f}%" if total else "n/a"


#: Targets of issue #22 for each language with at least TARGET_MIN_ISSUES issues.
TARGET_MIN_ISSUES = 15
TARGETS = (("hunk 4k", "hunks", 4_000, 55), ("hunk 13k", "hunks", 13_000, 75),
           ("file 13k", "files", 13_000, 85))  # fmt: skip


def _skip_note(skipped: dict[str, str]) -> str:
    """``N skipped: reason`` (several reasons: each with its count)."""
    reasons = Counter(skipped.values())
    if not reasons:
        return "0 skipped"
    if len(reasons) == 1:
        return f"{len(skipped)} skipped: {next(iter(reasons))}"
    return f"{len(skipped)} skipped: " + "; ".join(f"{r} ({n})" for r, n in reasons.items())


def _cost(tokens: int | None) -> str:
    return "∞" if tokens is None else f"{tokens / 1000:.1f}k"


def _share(outcomes: Sequence[Outcome], kind: str, budget: int) -> float:
    return 100 * sum(getattr(o, kind)[budget] for o in outcomes) / len(outcomes)


def _percents(values: Iterable[float]) -> str:
    """``12 / 23 / 34 %``: one percentage per budget."""
    return " / ".join(f"{v:.0f}" for v in values) + " %"


def _shares(outcomes: Sequence[Outcome], kind: str, budgets: Sequence[int]) -> str:
    return _percents(_share(outcomes, kind, b) for b in budgets)


def _ceilings(outcomes: Sequence[Outcome], kind: str, budgets: Sequence[int] = BUDGETS) -> str:
    """Shares of ``outcomes`` whose oracle delivery of ``kind`` fits each budget."""
    n = len(outcomes)
    return _percents(100 * sum(o.attainable(kind, b) for o in outcomes) / n for b in budgets)


def _targets(outcomes: Sequence[Outcome]) -> str:
    if len(outcomes) < TARGET_MIN_ISSUES:
        return "–"
    missed = [name for name, kind, b, goal in TARGETS if _share(outcomes, kind, b) < goal]
    return "missed: " + ", ".join(missed) if missed else "met"


def _by_language(outcomes: Sequence[Outcome]) -> list[tuple[str, list[Outcome]]]:
    """Outcomes per language, most issues first, then all of them (several languages)."""
    by_language: dict[str, list[Outcome]] = {}
    for outcome in outcomes:
        by_language.setdefault(outcome.language, []).append(outcome)
    rows = sorted(by_language.items(), key=lambda kv: (-len(kv[1]), kv[0]))
    if len(rows) > 1:
        rows.append(("all", list(outcomes)))
    return rows


def language_table(outcomes: Sequence[Outcome]) -> str:
    """Per language (most issues first) and overall: hunk and file recall, ours and BM25's,
    and the shares the oracle deliveries make attainable at each budget."""
    rows = _by_language(outcomes)
    file_budgets = BUDGETS[:2]
    lines = [
        "| language | issues | hunk recall 4k / 13k / 27k | hunks attainable 4k / 13k / 27k "
        "| file recall 4k / 13k | files attainable 4k / 13k / 27k "
        "| BM25 hunk recall 4k / 13k / 27k | BM25 file recall 4k / 13k | targets |",
        "|---|---:|---|---|---|---|---|---|---|",
    ]
    for language, group in rows:
        name = LANGUAGE_NAMES.get(language, language)
        lines.append(
            f"| {name} | {len(group)} | {_shares(group, 'hunks', BUDGETS)} "
            f"| {_ceilings(group, 'hunks')} "
            f"| {_shares(group, 'files', file_budgets)} | {_ceilings(group, 'files')} "
            f"| {_shares(group, 'base_hunks', BUDGETS)} "
            f"| {_shares(group, 'base_files', file_budgets)} | {_targets(group)} |"
        )
    return "\n".join(lines)


def code_only_table(outcomes: Sequence[Outcome]) -> str:
    """:func:`language_table`'s recall columns over the issues whose gold files are all code.

    The fix of many issues also edits docs, changelogs, build or CI files, or test
    expectations, and recall needs those lines too: this table shows what selection achieves
    on the code alone, beside the whole set's numbers.
    """
    code = [o for o in outcomes if o.code_only]
    if not code:
        return "(no issue whose gold files are all code)"
    lines = [
        "| language | issues (of all) | hunk recall 4k / 13k / 27k "
        "| hunks attainable 4k / 13k / 27k | file recall 4k / 13k |",
        "|---|---:|---|---|---|",
    ]
    totals = Counter(o.language for o in outcomes)
    for language, group in _by_language(code):
        total = len(outcomes) if language == "all" else totals[language]
        lines.append(
            f"| {LANGUAGE_NAMES.get(language, language)} | {len(group)} ({total}) "
            f"| {_shares(group, 'hunks', BUDGETS)} | {_ceilings(group, 'hunks')} "
            f"| {_shares(group, 'files', BUDGETS[:2])} |"
        )
    return "\n".join(lines)


def _part_shares(outcomes: Sequence[Outcome], parts: str, total: str) -> str:
    whole = max(1, sum(getattr(o, total) for o in outcomes))
    return _percents(
        100 * sum(getattr(o, parts).get(b, 0) for o in outcomes) / whole for b in BUDGETS
    )


def _mean_shares(outcomes: Sequence[Outcome]) -> str:
    """The mean over issues of the share of each issue's hunks delivered, per budget."""
    counted = [o for o in outcomes if o.n_hunks]

    def mean(budget: int) -> float:
        shares = [o.hunk_parts.get(budget, 0) / o.n_hunks for o in counted]
        return 100 * sum(shares) / max(1, len(shares))

    return _percents(mean(b) for b in BUDGETS)


def parts_table(outcomes: Sequence[Outcome]) -> str:
    """Per language: the share of all gold hunks (files) delivered at each budget, ours and
    BM25's, and the mean over issues of the share of an issue's hunks delivered (a few fixes
    of hundreds of hunks weigh less there). Recall asks for every hunk of an issue, so a
    selection that delivers 9 of a fix's 10 hunks counts as a miss there; this table shows
    the progress such a miss hides."""
    lines = [
        "| language | gold hunks | hunks delivered 4k / 13k / 27k "
        "| per issue, mean share of its hunks 4k / 13k / 27k "
        "| BM25 hunks delivered 4k / 13k / 27k | gold files | files delivered 4k / 13k / 27k |",
        "|---|---:|---|---|---|---:|---|",
    ]
    for language, group in _by_language(outcomes):
        lines.append(
            f"| {LANGUAGE_NAMES.get(language, language)} | {sum(o.n_hunks for o in group)} "
            f"| {_part_shares(group, 'hunk_parts', 'n_hunks')} | {_mean_shares(group)} "
            f"| {_part_shares(group, 'base_hunk_parts', 'n_hunks')} "
            f"| {sum(o.n_files for o in group)} "
            f"| {_part_shares(group, 'file_parts', 'n_files')} |"
        )
    return "\n".join(lines)


#: Sizes of a fix, in gold hunks: (label, fewest, most).
FIX_SIZES = (("1 hunk", 1, 1), ("2-3 hunks", 2, 3), ("4-9 hunks", 4, 9), ("10+ hunks", 10, None))


def size_table(outcomes: Sequence[Outcome]) -> str:
    """Recall by the size of the fix (its number of gold hunks), ours and BM25's.

    Recall asks for every hunk of an issue, and the sets differ in how big their fixes are
    (most SWE-bench fixes are one hunk; the polyglot set's median is six): this table
    compares issues of one size across sets and languages.
    """
    lines = [
        "| fix size | issues | hunk recall 4k / 13k / 27k | hunks attainable 4k / 13k / 27k "
        "| file recall 4k / 13k | BM25 hunk recall 4k / 13k / 27k |",
        "|---|---:|---|---|---|---|",
    ]
    groups = [
        (label, [o for o in outcomes if low <= o.n_hunks and (high is None or o.n_hunks <= high)])
        for label, low, high in FIX_SIZES
    ]
    for label, group in [*groups, ("all", list(outcomes))]:
        if not group:
            continue
        lines.append(
            f"| {label} | {len(group)} | {_shares(group, 'hunks', BUDGETS)} "
            f"| {_ceilings(group, 'hunks')} | {_shares(group, 'files', BUDGETS[:2])} "
            f"| {_shares(group, 'base_hunks', BUDGETS)} |"
        )
    return "\n".join(lines)


def language_size_table(outcomes: Sequence[Outcome]) -> str:
    """Per language: its issues by fix size, which of them had every hunk delivered, and what
    the hunk targets (:data:`TARGETS`) ask of its fixes of 10 or more hunks.

    ``at most`` is the hunk recall the language would reach if every fix of fewer hunks were
    delivered whole and the big ones stayed as they are; ``big fixes needed`` is how many of
    its big fixes the target needs delivered whole then (how many are now in brackets).
    """
    big = FIX_SIZES[-1][1]
    hunk_targets = [(b, goal) for _, kind, b, goal in TARGETS if kind == "hunks"]
    labels = " / ".join(f"{b // 1000}k" for b, _ in hunk_targets)
    lines = [
        "| language | issues by fix size 1 / 2-3 / 4-9 / 10+ "
        f"| every hunk delivered at {TAXONOMY_BUDGET // 1000}k, by fix size "
        f"| at most, smaller fixes all whole: {labels} "
        f"| {big}+-hunk fixes the hunk targets need whole: {labels} (now) |",
        "|---|---|---|---|---|",
    ]
    for language, group in _by_language(outcomes):
        sizes = [
            [o for o in group if low <= o.n_hunks and (high is None or o.n_hunks <= high)]
            for _, low, high in FIX_SIZES
        ]
        large = sizes[-1]
        small = len(group) - len(large)
        ceilings, needs = [], []
        for budget, goal in hunk_targets:
            now = sum(o.hunks[budget] for o in large)
            ceilings.append(100 * (small + now) / len(group))
            need = max(0, math.ceil(goal * len(group) / 100) - small)
            needs.append(f"{need} ({now})")
        whole = " · ".join(f"{sum(o.hunks[TAXONOMY_BUDGET] for o in s)}/{len(s)}" for s in sizes)
        lines.append(
            f"| {LANGUAGE_NAMES.get(language, language)} "
            f"| {' / '.join(str(len(s)) for s in sizes)} | {whole} "
            f"| {_percents(ceilings)} | {' / '.join(needs)} of {len(large)} |"
        )
    return "\n".join(lines)


def miss_table(outcomes: Sequence[Outcome], budget: int = TAXONOMY_BUDGET) -> str:
    """Per language: the issues whose hunks were missed at ``budget``, by reason (each in the
    first of :data:`MISS_REASONS` that applies), and a legend of the reasons."""
    keys = [key for key, _ in MISS_REASONS]
    letters = "abcdefghij"
    label = f"{budget // 1000}k"
    lines = [
        f"| language | issues | hunks missed at {label} | "
        + " | ".join(f"({letters[i]}) {key}" for i, key in enumerate(keys))
        + " |",
        "|---|---:|---:|" + "---:|" * len(keys),
    ]
    for language, group in _by_language(outcomes):
        reasons = Counter(o.miss for o in group if o.miss is not None)
        missed = sum(not o.hunks[budget] for o in group)
        lines.append(
            f"| {LANGUAGE_NAMES.get(language, language)} | {len(group)} | {missed} | "
            + " | ".join(str(reasons[key]) for key in keys)
            + " |"
        )
    lines += [
        "",
        "Each missed issue counts once, in the first of these that applies: "
        + "; ".join(f"({letters[i]}) {text}" for i, (_, text) in enumerate(MISS_REASONS))
        + ".",
    ]
    return "\n".join(lines)


def _ceiling_note() -> str:
    return (
        "Attainable: the share of issues whose oracle delivery fits the budget (computed from "
        "the tree and the gold data, no selection). Hunks: the target lines of every gold "
        "hunk as spans of their files — runs of target lines, joined where the packer would "
        "merge them or where the lines between cost less than another item's header; files: "
        "the cheapest single line of every gold file. Both are rendered as the packer renders "
        "spans and counted as it counts a delivery (`agentrt.context.packer.rendered_tokens`, "
        "a header per item). A selection delivers whole lines with the same headers, so none "
        "can pass the scoring for less: the attainable columns are the ceilings of the recall "
        "columns at each budget."
    )


def table(results: Results, issue_set: IssueSet = SETS["python"]) -> str:
    n = results.issues
    if not issue_set.per_language:
        head = [
            f"{n} issues ({_skip_note(results.skipped)}). "
            f"Hunks present in the release trees (the ceiling of hunk recall at an unlimited "
            f"budget): {_pct(results.attainable, n)}.",
            "",
            _ceiling_note(),
        ]
    else:
        head = [
            f"{n} issues ({_skip_note(results.skipped)}), each on the tree of its exact base "
            f"commit. Hunks present in those trees (the ceiling of hunk recall at an "
            f"unlimited budget): {_pct(results.attainable, n)}; issues with a gold file no "
            f"selection can deliver (not indexed: default ignores, excluded patterns, binary): "
            f"{results.unindexed}.",
            "",
            "Recall is the share of issues with every gold hunk (file) delivered. BM25 is the "
            "whole-file baseline over the tree's source files, in the same run. Targets "
            f"(issue #22, languages with ≥ {TARGET_MIN_ISSUES} issues): hunk recall ≥ 55 % at "
            "4k and ≥ 75 % at 13k, file recall ≥ 85 % at 13k. " + _ceiling_note(),
            "",
            language_table(results.outcomes) if results.outcomes else "(no issue measured)",
            "",
            "The same, over the issues whose gold files are all source code (the fixes of the "
            "others also edit docs, changelogs, build or CI files, or test expectations, whose "
            "lines recall needs too):",
            "",
            code_only_table(results.outcomes),
            "",
            "Overall:",
        ]
    attainable = {
        (kind, b): sum(o.attainable(kind, b) for o in results.outcomes)
        for kind in ("hunks", "files")
        for b in BUDGETS
    }
    lines = [
        *head,
        "",
        "| budget | file recall | hunk recall | baseline file recall | baseline hunk recall "
        "| files attainable | hunks attainable |",
        "| --- | --- | --- | --- | --- | --- | --- |",
    ]
    for budget in BUDGETS:
        lines.append(
            f"| {budget // 1000}k | {_pct(results.file_hits[budget], n)} "
            f"| {_pct(results.hunk_hits[budget], n)} "
            f"| {_pct(results.base_file_hits[budget], n)} "
            f"| {_pct(results.base_hunk_hits[budget], n)} "
            f"| {_pct(attainable['files', budget], n)} "
            f"| {_pct(attainable['hunks', budget], n)} |"
        )
    if results.outcomes:
        lines += [
            "",
            "Per hunk and per file: the share of all gold hunks (files) delivered, whichever "
            "issue they belong to (recall above asks for every hunk of an issue):",
            "",
            parts_table(results.outcomes),
            "",
            "By the size of the fix (its gold hunks; the issue counts once, all its hunks needed):",
            "",
            size_table(results.outcomes),
            "",
            "By language and fix size (the hunk targets against the fixes of many hunks):",
            "",
            language_size_table(results.outcomes),
            "",
            f"Why hunks were missed at {TAXONOMY_BUDGET // 1000}k:",
            "",
            miss_table(results.outcomes),
        ]
    cold = [s for _, _, s in results.cold]
    largest = max(results.cold, key=lambda c: c[1], default=None)
    warm_note = "new query" if not issue_set.warm_repeat else "the same query again"
    lines += [
        "",
        "| latency | median | max |",
        "| --- | --- | --- |",
        f"| cold (fresh store, first query on a tree; {len(cold)} trees) "
        f"| {_median(cold)} | {max(cold, default=0):.2f} s |",
        f"| cold, CPU time (process and index workers) "
        f"| {_median(results.cold_cpu)} | {max(results.cold_cpu, default=0):.2f} s |",
        f"| warm (index from the store, {warm_note}; {len(results.warm)} selections) "
        f"| {_median(results.warm)} | {max(results.warm, default=0):.2f} s |",
        "",
        f"Machine load during the run (1-minute load average on {os.cpu_count()} cores, "
        f"shared with other jobs): median {statistics.median(results.load or [0]):.1f}, "
        f"max {max(results.load, default=0):.1f}. Wall times grow with it; CPU times less so.",
        "",
    ]
    if largest is not None:
        tree, files, seconds = largest
        line = f"Largest tree: {tree}, {files} files indexed, cold {seconds:.2f} s wall"
        if issue_set.per_language:
            cpu = results.cold_cpu[results.cold.index(largest)]
            warm = results.warm_by_tree.get(largest[0], [])
            line += f" ({cpu:.2f} s CPU), warm {_median(warm)}"
        lines.append(line + ".")
    lines.append(f"Peak memory (RSS, process or a worker): {peak_memory_mb():.0f} MB.")
    lines.append(f"Deliveries over budget: {results.over_budget} (must be 0).")
    lines.append(f"File ranker: {ranker_mode()} (`AGENTRT_RANKER`, `agentrt.context.ranker`).")
    if results.selector != "select":
        lines.append(f"Selector: `{SELECTORS[results.selector].__name__}` (`--selector`).")
    return "\n".join(lines)


def _median(values: Sequence[float]) -> str:
    return f"{statistics.median(values):.2f} s" if values else "n/a"


def add_set_options(parser: argparse.ArgumentParser) -> None:
    """The options choosing the issues: ``--set``, ``--mirrors``, ``--language``, ``--quick``,
    ``--limit`` (read back with :func:`issues_from_args`)."""
    parser.add_argument("--set", choices=sorted(SETS), default="python", help="issue set")
    parser.add_argument(
        "--mirrors",
        type=Path,
        default=os.environ.get(MIRRORS_ENV) or None,
        help=f"polyglot: folder of the bare git snapshots, <owner>+<name>/repo (${MIRRORS_ENV})",
    )
    parser.add_argument("--language", default=None, help="only this language's issues")
    parser.add_argument("--quick", action="store_true", help=f"{QUICK_ISSUES} issues")
    parser.add_argument("--limit", type=int, default=None, help="at most N issues")


def issues_from_args(
    parser: argparse.ArgumentParser, args: argparse.Namespace
) -> tuple[IssueSet, Callable[[Issue], Path], list[Issue]]:
    """The set, its trees and its issues (filtered, in a fixed order, limited) of ``args``.

    Bad input (no data file, polyglot without snapshots, an unknown language) exits through
    ``parser.error`` (one line, exit status 2).
    """
    issue_set = SETS[args.set]
    trees: Callable[[Issue], Path] = sdist_tree
    git = issue_set.name != "python"
    if git:
        if args.mirrors is None or not Path(args.mirrors).is_dir():
            parser.error(
                f"--set {issue_set.name} needs --mirrors DIR (or ${MIRRORS_ENV}): the folder "
                "of the repositories' bare git snapshots, fetched once with the search tool's "
                "fetch"
            )
        trees = GitTrees(Path(args.mirrors), CACHE / issue_set.name)
    if not issue_set.data.is_file():
        parser.error(f"no issue file {issue_set.data} (it comes with ../shared)")
    issues = load_issues(issue_set.data, git=git)
    if issue_set.name == "python-git":
        issues = [i for i in issues if find_mirror(Path(args.mirrors), i.repo) is not None]
    if args.language:
        try:
            wanted = language_key(args.language)
        except ValueError as exc:
            parser.error(str(exc))
        issues = [i for i in issues if i.language == wanted]
    # A fixed sample that mixes repositories: order by a hash of the issue id.
    issues.sort(key=lambda i: hashlib.blake2b(i.instance_id.encode()).hexdigest())
    limit = args.limit or (QUICK_ISSUES if args.quick else None)
    return issue_set, trees, issues[:limit] if limit else issues


# --------------------------------------------------------------------------- --rerank llm


@dataclass
class RerankResults:
    """Per budget, issues with every gold file (hunk) delivered, by the ranking and with the
    model's picks first; the re-ranks that failed (the ranking stands in for them)."""

    model: str
    budgets: tuple[int, ...]
    issues: int = 0
    skipped: dict[str, str] = field(default_factory=dict)
    ranked_files: Counter[int] = field(default_factory=Counter)
    ranked_hunks: Counter[int] = field(default_factory=Counter)
    picked_files: Counter[int] = field(default_factory=Counter)
    picked_hunks: Counter[int] = field(default_factory=Counter)
    #: Issues whose first picked file is a gold file, and whose best-ranked file is.
    top_picked: int = 0
    top_ranked: int = 0
    failures: list[str] = field(default_factory=list)
    over_budget: int = 0


def run_rerank(
    issues: Sequence[Issue],
    trees: Callable[[Issue], Path],
    *,
    model: Model | None = None,
    budgets: Sequence[int] = BUDGETS,
    store_dir: Path | None = None,
    verbose: bool = True,
) -> RerankResults:
    """Recall of the issue context with and without the re-ranker's picks (``model``: a
    pydantic-ai model instead of the configured one, as tests pass a FunctionModel)."""
    from agentrt.agents.builtin.issue_context import as_candidates, picks_of, rerank
    from agentrt.agents.llm import LLMUnavailableError
    from agentrt.context.issue import issue_candidates, select_issue

    name = getattr(model, "model_name", None) or _configured_model() or "?"
    results = RerankResults(str(name), tuple(budgets))
    store_root = store_dir or Path(tempfile.mkdtemp(prefix="agentrt-bench-rerank-"))
    try:
        store = ContextStore(store_root)
        for issue in issues:
            try:
                tree = trees(issue)
            except NoTree as exc:
                results.skipped[issue.instance_id] = str(exc)
                continue
            results.issues += 1
            found = issue_candidates(tree, issue.query, store=store)
            candidates = as_candidates(found)
            try:
                picks = picks_of(rerank(issue.query, candidates, model=model))
            except LLMUnavailableError as exc:
                results.failures.append(f"{issue.instance_id}: {exc}")
                picks = None
            first = picks.files[0] if picks and picks.files else None
            top = found.files[0].path if found.files else None
            results.top_picked += _is_gold(first, issue)
            results.top_ranked += _is_gold(top, issue)
            targets = hunk_targets(issue, tree)
            marks = []
            for budget in budgets:
                for picked, files, hunks in (
                    (None, results.ranked_files, results.ranked_hunks),
                    (picks, results.picked_files, results.picked_hunks),
                ):
                    selection = select_issue(tree, issue.query, budget, picks=picked, store=store)
                    results.over_budget += count_tokens(selection.to_markdown()) > budget
                    got = delivered_lines((i.path, i.start_line, i.text) for i in selection.items)
                    files_ok, hunks_ok = score(issue, targets, got)
                    files[budget] += files_ok
                    hunks[budget] += hunks_ok
                    marks.append(f"{'F' if files_ok else '.'}{'H' if hunks_ok else '.'}")
            if verbose:
                print(f"  {issue.instance_id:40s} {' '.join(marks)}", flush=True)
    finally:
        if store_dir is None:
            shutil.rmtree(store_root, ignore_errors=True)
    return results


def _is_gold(path: str | None, issue: Issue) -> bool:
    return path is not None and _resolve(path, issue.gold_files) is not None


def _configured_model() -> str | None:
    """The model ``issue_rerank`` would call, or None when none is configured."""
    from agentrt.agents.llm import model_not_configured
    from agentrt.agents.registry import Registry

    agent = Registry.discover(env=False, entry_points=False).get("issue_rerank")
    if model_not_configured(agent) is not None:
        return None
    return os.environ.get("AGENTRT_MODEL") or agent.manifest.model


def rerank_table(results: RerankResults) -> str:
    n = results.issues
    lines = [
        f"Model: `{results.model}`. {n} issues ({_skip_note(results.skipped)}); re-ranks "
        f"that failed (the ranking stands in): {len(results.failures)}. First file a gold "
        f"file: ranking {_pct(results.top_ranked, n)}, model's first pick "
        f"{_pct(results.top_picked, n)}.",
        "",
        "| budget | file recall (ranking) | file recall (re-ranked) | hunk recall (ranking) "
        "| hunk recall (re-ranked) |",
        "| --- | --- | --- | --- | --- |",
    ]
    for budget in results.budgets:
        label = f"{budget // 1000}k" if budget >= 1000 else str(budget)
        lines.append(
            f"| {label} | {_pct(results.ranked_files[budget], n)} "
            f"| {_pct(results.picked_files[budget], n)} "
            f"| {_pct(results.ranked_hunks[budget], n)} "
            f"| {_pct(results.picked_hunks[budget], n)} |"
        )
    lines.append(f"Deliveries over budget: {results.over_budget} (must be 0).")
    return "\n".join(lines)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    add_set_options(parser)
    parser.add_argument(
        "--rerank",
        choices=["llm"],
        default=None,
        help="measure the issue-context LLM re-ranking with the configured model (AGENTRT_MODEL)",
    )
    parser.add_argument("--no-write", action="store_true", help="do not update docs")
    parser.add_argument("--quiet", action="store_true")
    parser.add_argument(
        "--no-history",
        action="store_true",
        help="rank without the git history before each base commit (git trees have it)",
    )
    parser.add_argument(
        "--selector",
        choices=sorted(SELECTORS),
        default="select",
        help="what selects: select (agentrt context select) or issue (select_issue, the "
        "issue-context workflow's packing without a model)",
    )
    parser.add_argument(
        "--store",
        type=Path,
        default=None,
        help="keep indexes in this store across runs (for iterating on ranking; cold "
        "latencies are then not cold)",
    )
    args = parser.parse_args(argv)
    if args.rerank:
        return _main_rerank(parser, args)
    issue_set, trees, issues = issues_from_args(parser, args)
    started = time.perf_counter()
    results = run(
        issues,
        verbose=not args.quiet,
        store_dir=args.store,
        issue_set=issue_set,
        trees=trees,
        history=not args.no_history,
        selector=args.selector,
    )
    body = table(results, issue_set)
    if isinstance(trees, GitTrees):
        body += "\n" + _snapshot_note(trees)
    print(body)
    print(f"({time.perf_counter() - started:.0f} s)")
    if not (
        args.quick
        or args.limit
        or args.no_write
        or args.store
        or args.language
        or args.no_history
        or args.selector != "select"
    ):
        from bench.report import write_section

        command = "python -m bench.context_selection"
        if issue_set.name != "python":
            command += f" --set {issue_set.name} --mirrors {args.mirrors}"
        write_section(issue_set.section, issue_set.title, body, command)
    return 0


def _main_rerank(parser: argparse.ArgumentParser, args: argparse.Namespace) -> int:
    if _configured_model() is None:
        print(
            "error: --rerank llm needs a model: no model configured: issue_rerank cannot run "
            "(set AGENTRT_MODEL and a key)",
            file=sys.stderr,
        )
        return 2
    _issue_set, trees, issues = issues_from_args(parser, args)
    started = time.perf_counter()
    results = run_rerank(issues, trees, store_dir=args.store, verbose=not args.quiet)
    print(rerank_table(results))
    for failure in results.failures[:5]:
        print(f"  re-rank failed: {failure}", file=sys.stderr)
    print(f"({time.perf_counter() - started:.0f} s)")
    return 0


def _snapshot_note(trees: GitTrees) -> str:
    """What the snapshots lacked: blobs (their largest files) and submodules, over all trees."""
    infos = trees.info.values()
    missing = sum(len(i.missing) for i in infos)
    short = sum(1 for i in infos if i.missing)
    submodules = sum(len(i.submodules) for i in infos)
    return (
        f"Trees: {len(trees.info)} commits of {len({repo for repo, _ in trees.info})} "
        f"repositories; {missing} blobs the snapshots lack (largest files; skipped) in {short} "
        f"trees; {submodules} submodule entries (not written)."
    )


if __name__ == "__main__":
    raise SystemExit(main())
