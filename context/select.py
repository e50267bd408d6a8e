"""Context selection: the most useful context for a task, within a hard token budget.

:func:`select` ranks a repository's files and code units against a query (see
:mod:`agentrt.context.relevance`), then packs full spans of the most relevant units and
skeletons of related files (see :mod:`agentrt.context.packer`) so that the delivered Markdown
never exceeds the budget. Indexes are cached in a :class:`~agentrt.context.store.ContextStore`
per repository state and refreshed incrementally, so a repeated selection only pays for
ranking and packing.

:func:`select_texts` does the same for sources that are not files of a repository
(transcripts, agent outputs).
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from agentrt.context.companions import find_companions, with_companions
from agentrt.context.compress import DEFINITION_KINDS, analyze, split_lines
from agentrt.context.counterparts import (
    COUNTERPART_BUDGET,
    Counterpart,
    CounterpartNotes,
    find_counterparts,
)
from agentrt.context.history import CoChanges, read_history
from agentrt.context.items import SelectionItem
from agentrt.context.packer import (
    Candidate,
    FileView,
    PackedItem,
    pack,
    render_markdown,
    rendered_tokens,
)
from agentrt.context.relevance import (
    IndexStats,
    Ranking,
    RepoIndex,
    build_index,
    rank,
    rank_passages,
    tokenize,
)
from agentrt.context.sources import SourceFile, TextSource, scan_repository
from agentrt.context.tokens import TokenCounter, default_encoding_name, get_encoding

if TYPE_CHECKING:
    from agentrt.context.store import ContextStore

__all__ = ["Selection", "SelectionItem", "select", "select_texts"]

#: Units, and files, whose score (relative to the best, in [0, 1]) is below this are not
#: worth their tokens.
DEFAULT_THRESHOLD = 0.05
#: How many top-ranked units and files become packing candidates.
MAX_UNIT_CANDIDATES = 400
MAX_FILE_CANDIDATES = 40
#: A skeleton is worth this fraction of its file's score; a whole file this fraction.
SKELETON_WEIGHT = 0.5
FULL_FILE_WEIGHT = 0.9
#: The same below WIDE_BUDGET tokens. A small budget holds one or two whole files or
#: skeletons and little else, and file scores (the best file scores 1) stand far above most
#: units' (a file's fifth-best unit, where a fix often is, scores 0.2 to 0.5): at the full
#: weights the whole files and outlines of the second to fifth files were packed before the
#: top files' next units. Of the polyglot issues with every gold file delivered at 4k but a
#: gold hunk not, Go's and Java's spent most of the budget on other files whole and on
#: skeletons. With these weights polyglot hunk recall at 4k rose 15.6 -> 16.0 % (Go 13 -> 20
#: %), file recall stayed 35.5 % (python -m bench.context_selection --set polyglot);
#: Python's --quick recall is unchanged (53.8 % hunk, 71.8 % file at 4k).
SMALL_BUDGET_SKELETON_WEIGHT = 0.35
SMALL_BUDGET_FULL_FILE_WEIGHT = 0.6
#: Lines of context added before and after each unit span; SMALL_BUDGET_SPAN_PADDING below
#: WIDE_BUDGET outside Python, where the padding of every span adds up to a share of the
#: budget better spent on more files: at 4k, 1 line instead of 3 delivered every gold file
#: of 4 more polyglot issues (file recall 35.5 -> 37.1 %, hunk recall unchanged; 6 lines
#: lost 2 issues' hunks; python -m bench.context_selection --set polyglot). Python keeps 3:
#: its fixes often touch the lines right around a function (its decorators, the blank lines
#: and the next definition), and 1 line lost 4 of 39 issues' hunks at 4k (--quick).
SPAN_PADDING = 3
SMALL_BUDGET_SPAN_PADDING = 1
PADDED_SUFFIXES = (".py", ".pyi")
#: The best unit of each of the best-ranked files is also offered with BEST_UNIT_WEIGHT
#: times its file's score: the file ranking is more reliable than the unit ranking, and a
#: highly ranked file is worth seeing through its most relevant unit even when units of
#: other files (often its tests, or the many units of the file ranked first) match the
#: query's words better. How many files: BEST_UNIT_FILES, or BEST_UNIT_FILES_WIDE from a
#: budget of WIDE_BUDGET tokens. Of the polyglot issues whose gold code file was not
#: delivered at 13k, about half had it in the top 40 files while the first files' weaker
#: units filled the budget; ten files delivered 7 more of 256 issues' gold files at 13k
#: and 5 more at 27k (python -m bench.context_selection --set polyglot), and Python's hunk
#: recall at 13k rose 64.1 -> 66.7 % (--quick). At 4k the breadth cost Python 2 of 39
#: issues' hunks (53.8 -> 48.7 %): a small budget is better spent on the first file.
BEST_UNIT_WEIGHT = 0.9
BEST_UNIT_FILES = 1
BEST_UNIT_FILES_WIDE = 10
WIDE_BUDGET = 8_000
#: From this budget on, files that past commits changed together with the best files are
#: ranked up (:mod:`agentrt.context.history`). A smaller budget holds one or two files: at
#: 4k the co-changed files' outlines and units displaced the best file's units. With an
#: earlier form of the history (0.3 times the coupling added to every coupled file's score)
#: every gold hunk was delivered for 38 instead of 41 of the 256 polyglot issues at 4k, and
#: 18 instead of 19 of the first 40 Python issues on git trees (python -m
#: bench.context_selection --set polyglot / --set python-git --limit 40, with and without
#: --no-history).
HISTORY_BUDGET = WIDE_BUDGET
#: Files at most this many lines are also offered whole.
SMALL_FILE_LINES = 200
#: An overview (empty query) offers the skeletons of this many of the most central files.
OVERVIEW_FILES = 60
#: An amalgamation (a generated file concatenating others, see :mod:`agentrt.context.twins`)
#: keeps this fraction of its file score: it holds every term of its sources, and its
#: outline would duplicate theirs. Its units that have a twin in a source pass their score
#: to that twin and are delivered with it.
AMALGAMATION_WEIGHT = 0.1
#: A why names at most this many files, and this many line ranges of each.
MAX_TWIN_NOTES = 3
#: Copies of a span in an amalgamation: runs of at least this many equal lines, at the
#: offsets of the twinned units within COPY_MARGIN lines of it (else the nearest).
COPY_MIN_LINES = 3
COPY_MARGIN = 40

#: Files left out of a selection unless ``include`` is given: translations, vector images,
#: minified bundles and source maps, lockfiles and data tables. Lockfiles are kept out on
#: purpose although fixes touch them (6 of the 260 polyglot issues change a ``Cargo.lock``):
#: their hunks are what ``cargo update``/``npm install`` write after the manifest changes,
#: and their package names would match issue words all over hundreds of kilobytes.
DEFAULT_EXCLUDES = (
    "*.po",
    "*.pot",
    "*.svg",
    "*.min.js",
    "*.min.css",
    "*.map",
    "*.lock",
    "package-lock.json",
    "*.csv",
    "*.tsv",
)

#: Language tags of the Markdown code fences items are delivered in (fence_language).
_LANGUAGES = {
    ".py": "python",
    ".pyi": "python",
    ".md": "markdown",
    ".rst": "rst",
    ".js": "javascript",
    ".mjs": "javascript",
    ".cjs": "javascript",
    ".jsx": "jsx",
    ".ts": "typescript",
    ".tsx": "tsx",
    ".go": "go",
    ".rs": "rust",
    ".java": "java",
    ".kt": "kotlin",
    ".c": "c",
    ".h": "c",
    ".cc": "cpp",
    ".cpp": "cpp",
    ".cxx": "cpp",
    ".hpp": "cpp",
    ".hh": "cpp",
    ".cs": "csharp",
    ".rb": "ruby",
    ".php": "php",
    ".swift": "swift",
}


def fence_language(path: str) -> str:
    """The language tag of ``path``'s Markdown code fence ("" when none is known)."""
    return _LANGUAGES.get(Path(path).suffix, "")


def _packed(item: SelectionItem) -> PackedItem:
    """A delivered item as the packer renders it (its code fence's language by suffix)."""
    return PackedItem(
        item.path,
        item.start_line,
        item.end_line,
        item.kind,  # type: ignore[arg-type]
        item.score,
        item.text,
        fence_language(item.path),
    )


@dataclass(slots=True)
class Selection:
    """The result of a selection.

    ``tokens`` is the sum of the items' exact token counts. The packer guarantees that it,
    the count of all item texts concatenated, and the count of :meth:`to_markdown` are all
    at most ``budget``.
    """

    budget: int
    tokens: int
    encoding: str
    items: list[SelectionItem]
    repo: str = ""
    stats: dict[str, Any] = field(default_factory=dict)
    message: str | None = None  # why there is nothing to select from (an empty repository)

    def to_json(self) -> dict[str, Any]:
        """``{"budget", "tokens", "encoding", "items": [{path, start_line, end_line, kind,
        score, tokens, text}]}`` — the stable shape external tools read."""
        return {
            "budget": self.budget,
            "tokens": self.tokens,
            "encoding": self.encoding,
            "items": [item.to_json() for item in self.items],
        }

    def to_markdown(self) -> str:
        """One ``## path:start-end (kind)`` header (`` — why`` if the item has one) and
        fenced block per item."""
        return render_markdown([replace(_packed(i), note=i.why) for i in self.items])

    @property
    def text(self) -> str:
        """All item texts concatenated."""
        return "".join(item.text for item in self.items)


def _default_store() -> ContextStore:
    from agentrt.context.store import ContextStore, default_store_dir

    return ContextStore(default_store_dir())


def select(
    repo: str | Path,
    query: str,
    budget: int,
    *,
    encoding: str | None = None,
    store: ContextStore | None = None,
    include: Sequence[str] | None = None,
    threshold: float | None = None,
    prefer: Sequence[str] = (),
    exclude: Sequence[str] = (),
    history: bool | CoChanges = True,
) -> Selection:
    """Select the context of ``repo`` most useful for ``query`` within ``budget`` tokens.

    Args:
        repo: the repository's root directory.
        query: an issue text or an agent's task. Empty: a repository overview (skeletons
            of the most central files).
        budget: hard limit, in tokens of ``encoding``, of the delivered Markdown.
        encoding: tiktoken encoding name (default ``$AGENTRT_ENCODING`` or cl100k_base).
        store: cache for indexes (default: the store under ``$AGENTRT_HOME``).
        include: gitignore-style patterns restricting which files are considered.
        threshold: minimum relative score, in [0, 1], of what is delivered.
        prefer: files (relative to ``repo``, or absolute paths inside it) packed before all
            others, such as the files a session is editing: what the query finds relevant in
            them (above ``threshold``) is delivered first, and the rest of the budget goes to
            the other files as usual. Paths outside the repository are ignored.
        exclude: more gitignore-style patterns (relative to ``repo``) of files never
            considered, on top of ``.gitignore`` and, unless ``include`` is given,
            :data:`DEFAULT_EXCLUDES`.
        history: rank up the files that past commits changed together with the best files
            (:mod:`agentrt.context.history`): True reads ``repo``'s git history (none
            outside a git work tree), False ranks without it, a
            :class:`~agentrt.context.history.CoChanges` is used as given.

    Raises:
        ValueError: ``budget`` is not positive or ``threshold`` is outside [0, 1].
        agentrt.context.sources.SourceError: ``repo`` is not a directory.
    """
    started = time.perf_counter()
    if budget <= 0:
        raise ValueError(f"budget must be a positive number of tokens, got {budget}")
    threshold = DEFAULT_THRESHOLD if threshold is None else threshold
    if not 0.0 <= threshold <= 1.0:
        raise ValueError(f"threshold must be between 0 and 1, got {threshold}")
    encoding = encoding or default_encoding_name()
    get_encoding(encoding)  # fail early (ValueError) on an unknown encoding name
    store = store if store is not None else _default_store()
    counter = TokenCounter(encoding, store)

    ignores = (() if include else DEFAULT_EXCLUDES) + tuple(exclude)
    scan = scan_repository(repo, include=include, extra_ignores=ignores)
    index_stats = IndexStats(skipped=len(scan.skipped))
    index = build_index(scan.root, scan, store, index_stats)
    ranked = time.perf_counter()
    cochanges = history_of(scan.root, history_at(history, budget), store) if query.strip() else None
    ranking = shadow_amalgamations(index, rank(index, query, cochanges))
    candidates = ranked_candidates(index, ranking, budget, threshold)
    files = {f.path: f for f in scan.files}
    counterparts = counterparts_at(index, ranking, budget, threshold, files)
    packing = prepare_packing(index, candidates, counterparts, files, counter, store)
    candidates, views, annotate = packing.candidates, packing.views, packing.annotate
    preferred = _preferred_paths(scan.root, prefer, files)

    def pack_code(limit: int) -> list[PackedItem]:
        if preferred:
            return _pack_preferred_first(views, candidates, preferred, limit, counter, annotate)
        return pack(views, candidates, limit, counter.count, annotate=annotate)

    packed = pack_code(budget)
    if not ranking.overview:  # the changelog, docs and build lines that go with the code
        packed = packing.with_companions(pack_code, packed, budget)
    items = [
        SelectionItem(
            p.path,
            p.start_line,
            p.end_line,
            p.kind,
            p.score,
            counter.count(p.text),
            p.text,
            p.note,
        )
        for p in packed
    ]
    done = time.perf_counter()
    stats = {
        "files": len(scan.files),
        "skipped": len(scan.skipped),
        "index": index_stats.as_dict(),
        "candidates": len(candidates),
        "preferred": sorted(preferred),
        "history_commits": cochanges.n_commits if cochanges is not None else 0,
        "index_seconds": round(index_stats.seconds, 4),
        "rank_pack_seconds": round(done - ranked, 4),
        "seconds": round(done - started, 4),
    }
    return Selection(
        budget=budget,
        tokens=sum(item.tokens for item in items),
        encoding=encoding,
        items=items,
        repo=str(scan.root),
        stats=stats,
        message=scan.message,
    )


def history_at(history: bool | CoChanges, budget: int) -> bool | CoChanges:
    """``history``, or False below :data:`HISTORY_BUDGET` (where it displaced the best
    file's units)."""
    return history if budget >= HISTORY_BUDGET else False


def history_of(
    root: Path, history: bool | CoChanges, store: ContextStore, rev: str = "HEAD"
) -> CoChanges | None:
    """The co-changes a selection ranks with: ``history`` itself, ``root``'s git history
    before and at ``rev`` (True) or none (False)."""
    if history is True:
        return read_history(root, rev, store=store)
    return history or None


def ranked_candidates(
    index: RepoIndex, ranking: Ranking, budget: int, threshold: float
) -> list[Candidate]:
    """The packing candidates of ``ranking`` at ``budget`` (see :func:`_candidates`): the
    best units, and per top file its best unit (the first file's, or from WIDE_BUDGET the ten
    best files'), skeleton and, when small, whole text."""
    return _candidates(
        index,
        ranking.file_scores,
        ranking.unit_scores,
        ranking.overview,
        threshold,
        best_unit_files(budget),
        file_weights(budget),
        budget,
    )


def counterparts_at(
    index: RepoIndex,
    ranking: Ranking,
    budget: int,
    threshold: float,
    files: dict[str, SourceFile],
) -> list[Counterpart]:
    """The C/C++ declarations and definitions that go with the best units of ``ranking``,
    from COUNTERPART_BUDGET on (a small budget goes to the code)."""
    if budget < COUNTERPART_BUDGET:
        return []
    return find_counterparts(index, ranking.unit_scores, threshold, _reader(files))


#: Adds notes to (and may reorder) a trial delivery: the packer's ``annotate``.
Annotate = Callable[[list[PackedItem]], list[PackedItem]]


@dataclass(slots=True)
class Packing:
    """What a selection packs: the candidates (each with the copies of its lines in
    amalgamations attached as twins), the views of their files, and the notes (twins,
    counterparts) the packer adds to a delivery; then the companions of the packed code.
    Made by :func:`prepare_packing`; :func:`select` and
    :func:`agentrt.context.issue.select_issue` pack with it."""

    candidates: list[Candidate]
    views: dict[str, FileView]
    annotate: Annotate | None
    index: RepoIndex
    files: dict[str, SourceFile]
    counter: TokenCounter
    store: ContextStore

    def view_of(self, path: str) -> FileView | None:
        """The view of ``path``, read (and cached) on first use."""
        if path not in self.views:
            self.views.update(_views(self.index, {path}, self.files, self.counter, self.store))
        return self.views.get(path)

    def companions(self, code: list[PackedItem], limit: int) -> list[PackedItem]:
        """The changelog head, documentation sections and build lines that go with ``code``
        (see :func:`agentrt.context.companions.find_companions`)."""
        return find_companions(self.index, self.files, code, limit, self.view_of)

    def with_companions(
        self, pack_code: Callable[[int], list[PackedItem]], packed: list[PackedItem], budget: int
    ) -> list[PackedItem]:
        """``packed`` (code packed by ``pack_code`` within ``budget``) and its companions,
        all within ``budget`` (see :func:`agentrt.context.companions.with_companions`)."""
        return with_companions(pack_code, packed, budget, self.companions, self.counter.count)


def prepare_packing(
    index: RepoIndex,
    candidates: Sequence[Candidate],
    counterparts: Sequence[Counterpart],
    files: dict[str, SourceFile],
    counter: TokenCounter,
    store: ContextStore,
) -> Packing:
    """``candidates`` and the ``counterparts``' spans ready to pack: views of their files
    (and of the amalgamations that copy them), copies attached, twin and counterpart notes."""
    out = [*candidates, *(c.candidate for c in counterparts)]
    paths = {c.path for c in out}
    copies = Copies(index) if index.twins is not None and len(index.twins.shadow_to) else None
    if copies is not None:
        paths |= copies.amalgamations_of(paths)
    views = _views(index, paths, files, counter, store)
    if copies is not None:
        out = [copies.attach(c, views) for c in out]
    annotate: Annotate | None = (
        TwinNotes(index, views, copies) if index.twins is not None and index.twins.pairs else None
    )
    if counterparts:
        annotate = CounterpartNotes(counterparts, annotate)
    return Packing(out, views, annotate, index, files, counter, store)


def _preferred_paths(root: Path, prefer: Sequence[str], files: dict[str, SourceFile]) -> set[str]:
    """The repository-relative paths of ``prefer`` that are files of the scan."""
    out: set[str] = set()
    for raw in prefer:
        path = Path(raw)
        if path.is_absolute():
            try:
                path = path.resolve().relative_to(root)
            except (OSError, ValueError):
                continue  # outside the repository
        rel = path.as_posix()
        if rel in files:
            out.add(rel)
    return out


def _pack_preferred_first(
    views: dict[str, FileView],
    candidates: Sequence[Candidate],
    preferred: set[str],
    budget: int,
    counter: TokenCounter,
    annotate: Annotate | None = None,
) -> list[PackedItem]:
    """Pack the preferred files' candidates within ``budget``, then the others' in what is
    left; the least relevant of the others are dropped if the joined rendering is over."""
    first_candidates = [c for c in candidates if c.path in preferred]
    first = pack(views, first_candidates, budget, counter.count, annotate=annotate)
    left = budget - rendered_tokens(first, counter.count)
    rest = [c for c in candidates if c.path not in preferred]
    others = pack(views, rest, left, counter.count, annotate=annotate) if left > 0 and rest else []
    joined = first + others
    if annotate is not None:  # notes across the two parts (a twin packed in the other)
        joined = annotate([replace(item, note="") for item in joined])
    # Joining two renderings can shift a token at the seam: the exact count decides.
    while others and rendered_tokens(joined, counter.count) > budget:
        others.remove(min(others, key=lambda item: item.score))
        joined = first + others
        if annotate is not None:
            joined = annotate([replace(item, note="") for item in joined])
    return joined


def best_unit_files(budget: int) -> int:
    """How many of the best-ranked files offer their best unit at a budget (see
    :data:`BEST_UNIT_FILES_WIDE`)."""
    return BEST_UNIT_FILES_WIDE if budget >= WIDE_BUDGET else BEST_UNIT_FILES


def file_weights(budget: int) -> tuple[float, float]:
    """The weights of a file's skeleton and of the whole file at a budget (see
    :data:`SMALL_BUDGET_FULL_FILE_WEIGHT`)."""
    if budget >= WIDE_BUDGET:
        return SKELETON_WEIGHT, FULL_FILE_WEIGHT
    return SMALL_BUDGET_SKELETON_WEIGHT, SMALL_BUDGET_FULL_FILE_WEIGHT


def span_padding(budget: int, path: str = "") -> int:
    """Lines of context around a unit span of ``path`` at a budget (see :data:`SPAN_PADDING`)."""
    if budget >= WIDE_BUDGET or path.endswith(PADDED_SUFFIXES):
        return SPAN_PADDING
    return SMALL_BUDGET_SPAN_PADDING


def _candidates(
    index: RepoIndex,
    file_scores: np.ndarray,
    unit_scores: np.ndarray,
    overview: bool,
    threshold: float,
    best_unit_files: int = BEST_UNIT_FILES,
    weights: tuple[float, float] = (SKELETON_WEIGHT, FULL_FILE_WEIGHT),
    budget: int = WIDE_BUDGET,
) -> list[Candidate]:
    """The packing candidates: the best units, then per top file its best unit (for the
    ``best_unit_files`` best files), skeleton and, when small, whole text (``weights``: a
    skeleton's and a whole file's fraction of the file score, :func:`file_weights`; ``budget``
    sets the lines around each unit, :func:`span_padding`)."""
    skeleton_weight, full_file_weight = weights
    candidates: list[Candidate] = []
    if overview:
        # Overview: outlines of the most central files.
        for f in np.argsort(-file_scores, kind="stable")[:OVERVIEW_FILES]:
            if file_scores[f] > 0:
                candidates.append(Candidate(index.paths[f], "skeleton", float(file_scores[f])))
        return candidates
    top_units = np.argsort(-unit_scores, kind="stable")[:MAX_UNIT_CANDIDATES]
    for k in top_units:
        score = float(unit_scores[k])
        if score < threshold:
            break
        path, unit = index.unit(int(k))
        # A few lines around each unit: a fix often inserts right before or after one (its
        # context straddles two units), and the padding makes neighbouring spans merge.
        n_lines = index.structures[int(index.unit_file[k])].n_lines
        padding = span_padding(budget, path)
        start = max(1, unit.start_line - padding)
        end = min(n_lines, unit.end_line + padding)
        candidates.append(Candidate(path, "span", score, start, end))
    for position, f in enumerate(np.argsort(-file_scores, kind="stable")[:MAX_FILE_CANDIDATES]):
        score = float(file_scores[f])
        if score < threshold:
            break
        structure = index.structures[f]
        units = index.file_units(int(f))
        if position < best_unit_files and len(units):
            best = units.start + int(np.argmax(unit_scores[units.start : units.stop]))
            if 0 < unit_scores[best] < score * BEST_UNIT_WEIGHT:
                _, unit = index.unit(best)
                padding = span_padding(budget, index.paths[f])
                start = max(1, unit.start_line - padding)
                end = min(structure.n_lines, unit.end_line + padding)
                candidates.append(
                    Candidate(index.paths[f], "span", score * BEST_UNIT_WEIGHT, start, end)
                )
        if structure.skeleton:
            candidates.append(Candidate(index.paths[f], "skeleton", score * skeleton_weight))
        if structure.n_lines <= SMALL_FILE_LINES:
            candidates.append(Candidate(index.paths[f], "file", score * full_file_weight))
    return candidates


class Copies:
    """Where lines of source files are copied into amalgamations, found from their twins.

    Each unit of a source file twinned in an amalgamation fixes an offset between the two
    files; lines near it are copied at that offset when they are equal (stripped). So a
    span of a source file is mapped to the amalgamation with the offsets of the twinned
    units around it and checked line by line: its copies are the runs of equal lines. This
    also finds the copies of lines no twinned unit holds (a short declaration, the lines
    between two functions), which a fix touches as often as the functions.
    """

    def __init__(self, index: RepoIndex) -> None:
        self.index = index
        self.position = index.position
        twins = index.twins
        entries: dict[int, list[tuple[int, int, int, int]]] = {}
        if twins is not None:
            for a, k in zip(twins.shadow_from.tolist(), twins.shadow_to.tolist(), strict=True):
                _, unit = index.unit(k)
                _, copy = index.unit(a)
                entries.setdefault(int(index.unit_file[k]), []).append(
                    (unit.start_line, unit.end_line, int(index.unit_file[a]),
                     copy.start_line - unit.start_line)
                )  # fmt: skip
        self.entries = {f: sorted(e) for f, e in entries.items()}

    def amalgamations_of(self, paths: set[str]) -> set[str]:
        """The amalgamations that copy any of ``paths``."""
        out: set[str] = set()
        for path in paths:
            f = self.position.get(path)
            for _, _, a, _ in self.entries.get(f, ()) if f is not None else ():
                out.add(self.index.paths[a])
        return out

    def regions(
        self, path: str, start: int, end: int, views: dict[str, FileView]
    ) -> list[tuple[str, int, int, int]]:
        """The copies of lines ``start..end`` of ``path``: (amalgamation, first and last line
        there, offset), runs of at least COPY_MIN_LINES equal lines."""
        f = self.position.get(path)
        entries = self.entries.get(f, ()) if f is not None else ()
        view = views.get(path)
        if not entries or view is None:
            return []
        # The offsets of the twinned units overlapping the span (with a margin), else of
        # the nearest one to each side.
        near: dict[tuple[int, int], int] = {}
        for unit_start, unit_end, a, offset in entries:
            distance = max(0, unit_start - end, start - unit_end)
            key = (a, offset)
            near[key] = min(near.get(key, distance), distance)
        closest = min(near.values())
        offsets = [key for key, d in near.items() if d <= max(closest, COPY_MARGIN)]
        out: list[tuple[str, int, int, int]] = []
        lines = view.lines
        for a, offset in offsets:
            copy = views.get(self.index.paths[a])
            if copy is None:
                continue
            first = max(start, 1 - offset, 1)
            last = min(end, len(lines), len(copy.lines) - offset)
            run_start = None
            for line in range(first, last + 2):
                same = line <= last and (
                    lines[line - 1].strip() == copy.lines[line - 1 + offset].strip()
                )
                if same and run_start is None:
                    run_start = line
                elif not same and run_start is not None:
                    run = lines[run_start - 1 : line - 1]
                    if len(run) >= COPY_MIN_LINES and sum(len(x.strip()) for x in run) >= 40:
                        out.append((copy.path, run_start + offset, line - 1 + offset, offset))
                    run_start = None
        return out

    def attach(self, candidate: Candidate, views: dict[str, FileView]) -> Candidate:
        """``candidate`` with the copies of its lines as twins (spans and whole files)."""
        if candidate.kind == "skeleton" or candidate.path not in views:
            return candidate
        end = candidate.end_line or views[candidate.path].n_lines
        regions = self.regions(candidate.path, candidate.start_line, end, views)
        if not regions:
            return candidate
        twins = tuple(Candidate(p, "span", candidate.score, s, e) for p, s, e, _ in regions)
        return replace(candidate, twins=twins)


def shadow_amalgamations(index: RepoIndex, ranking: Ranking) -> Ranking:
    """``ranking`` with amalgamations out of their sources' way: each amalgamation unit that
    has a twin outside amalgamations passes its score to that twin (the same code) and drops
    to 0 (its source brings it along, see :class:`Copies`); an amalgamation's file score is
    scaled by AMALGAMATION_WEIGHT. Unchanged when the index has no amalgamation."""
    twins = index.twins
    if twins is None or ranking.overview or not twins.amalgamation.any():
        return ranking
    units = ranking.unit_scores.copy()
    if len(twins.shadow_from):
        np.maximum.at(units, twins.shadow_to, ranking.unit_scores[twins.shadow_from])
        units[twins.shadow_from] = 0.0
    files = ranking.file_scores.copy()
    files[twins.amalgamation] *= AMALGAMATION_WEIGHT
    return replace(ranking, file_scores=files, unit_scores=units)


class TwinNotes:
    """Notes on the twins of delivered items, and the twins right after what they copy.

    Called by the packer on every trial delivery (see :func:`agentrt.context.packer.pack`),
    so the notes count in the budget. For each delivered span or whole file of a source, its
    copies in amalgamations (:class:`Copies`), and its twinned units (the outermost ones it
    holds whole) in plain copies: a twin that is delivered too is noted on its own item
    (``twin of path:a-b name (identical)``) and moved right after it; one that is not, on
    this item (``also in path:a-b (identical)``).
    """

    def __init__(
        self, index: RepoIndex, views: dict[str, FileView], copies: Copies | None = None
    ) -> None:
        self.index = index
        self.position = index.position
        self.views = views
        self.copies = copies
        self._regions: dict[tuple[str, int, int], list[tuple[str, int, int, int]]] = {}

    def __call__(self, items: list[PackedItem]) -> list[PackedItem]:
        index, twins = self.index, self.index.twins
        if twins is None:
            return items
        delivered: dict[str, list[tuple[int, int, int]]] = {}
        for i, item in enumerate(items):
            if item.kind != "skeleton":
                delivered.setdefault(item.path, []).append((item.start_line, item.end_line, i))

        def delivered_at(path: str, start: int, end: int) -> int | None:
            return next((n for s, e, n in delivered.get(path, ()) if s <= start and end <= e), None)

        notes: list[dict[tuple[str, str], list[str]]] = [{} for _ in items]
        follows: dict[int, list[int]] = {}
        led: set[int] = set()

        def lead(i: int, hit: int) -> None:
            if hit not in led and hit != i:
                led.add(hit)
                follows.setdefault(i, []).append(hit)

        seen: set[tuple[int, int]] = set()
        for i, item in enumerate(items):
            f = self.position.get(item.path)
            if f is None or twins.amalgamation[f]:
                continue
            # A skeleton shows the spans taken in its file among its outline: the copies of
            # those spans come with it and are its twins, but what it elides is not
            # delivered, so it names no copy it lacks ("also in") and holds no unit whole.
            outline = item.kind == "skeleton"
            if outline and (
                self.copies is None
                or not self.copies.amalgamations_of({item.path}).intersection(delivered)
            ):
                continue  # none of its copies is delivered: it has no twin to name
            for path, start, end, offset in self._copies(item):
                cursor = start  # the part of the copy not delivered yet starts here
                for s, e, hit in sorted(delivered.get(path, ())):
                    a, b = max(s, start), min(e, end)
                    if a > b:
                        continue
                    label = self._label(f, a - offset, b - offset)
                    notes[hit].setdefault(("twin of", item.path), []).append(label)
                    lead(i, hit)
                    if a > cursor and not outline:
                        notes[i].setdefault(("also in", path), []).append(f"{cursor}-{a - 1}")
                    cursor = max(cursor, b + 1)
                if cursor <= end and not outline:
                    notes[i].setdefault(("also in", path), []).append(f"{cursor}-{end}")
            if outline:
                continue
            units = index.file_units(f)
            for k in self._outermost(f, twins.in_range(units.start, units.stop), item):
                _, unit = index.unit(k)
                for j in twins.of(k, index.unit_file):
                    if (j, k) in seen or twins.amalgamation[index.unit_file[j]]:
                        continue  # noted from the other side, or a copy (above)
                    seen.add((k, j))
                    path, twin = index.unit(j)
                    hit = delivered_at(path, twin.start_line, twin.end_line)
                    if hit is not None:
                        label = self._label(f, unit.start_line, unit.end_line)
                        notes[hit].setdefault(("twin of", item.path), []).append(label)
                        lead(i, hit)
                    else:
                        lines = f"{twin.start_line}-{twin.end_line}"
                        notes[i].setdefault(("also in", path), []).append(lines)
        if not follows and not any(notes):
            return items
        out: list[PackedItem] = []
        placed: set[int] = set()

        def place(i: int) -> None:
            placed.add(i)
            note = _twin_note(notes[i])
            out.append(replace(items[i], note=note) if note else items[i])
            for t in follows.get(i, ()):
                if t not in placed:
                    place(t)

        for i in range(len(items)):
            if i not in placed and i not in led:
                place(i)
        for i in range(len(items)):  # twins whose lead was itself led (never: kept safe)
            if i not in placed:
                place(i)
        return out

    def _copies(self, item: PackedItem) -> list[tuple[str, int, int, int]]:
        if self.copies is None:
            return []
        key = (item.path, item.start_line, item.end_line)
        found = self._regions.get(key)
        if found is None:
            found = self._regions[key] = self.copies.regions(
                item.path, item.start_line, item.end_line, self.views
            )
        return found

    def _label(self, f: int, start: int, end: int) -> str:
        """``start-end`` and the names of the (outermost) definitions those lines hold."""
        names: list[str] = []
        reach = 0
        for unit in self.index.structures[f].units:
            if (
                start <= unit.start_line
                and unit.end_line <= end
                and unit.start_line > reach
                and unit.kind in DEFINITION_KINDS
            ):
                names.append(unit.name)
                reach = unit.end_line
        label = f"{start}-{end}"
        if names:
            label += " " + ", ".join(names[:2]) + (" …" if len(names) > 2 else "")
        return label

    def _outermost(self, f: int, units: np.ndarray, item: PackedItem) -> list[int]:
        """The twinned units ``item`` holds whole, without those inside another of them."""
        index = self.index
        inside = []
        for k in units.tolist():
            unit = index.structures[f].units[int(index.unit_local[k])]
            if item.start_line <= unit.start_line and unit.end_line <= item.end_line:
                inside.append((unit.start_line, -unit.end_line, k))
        inside.sort()
        out: list[int] = []
        reach = 0
        for start, negative_end, k in inside:
            if start <= reach and -negative_end <= reach:
                continue
            out.append(k)
            reach = max(reach, -negative_end)
        return out


def capped(names: Sequence[str], limit: int) -> str:
    """The first ``limit`` of ``names``, comma-separated, and how many more there are."""
    text = ", ".join(names[:limit])
    if len(names) > limit:
        text += f" (+{len(names) - limit} more)"
    return text


def _twin_note(notes: dict[tuple[str, str], list[str]]) -> str:
    """``twin of a.hpp:10-40 f (identical); also in b.hpp:5-9, 20-31 (+2 more) (identical)``."""
    parts = []
    for (label, path), ranges in list(notes.items())[:MAX_TWIN_NOTES]:
        parts.append(f"{label} {path}:{capped(ranges, MAX_TWIN_NOTES)} (identical)")
    if len(notes) > MAX_TWIN_NOTES:
        parts.append(f"+{len(notes) - MAX_TWIN_NOTES} more files")
    return "; ".join(parts)


def _reader(files: dict[str, SourceFile]) -> Callable[[str], list[str] | None]:
    """A file's lines by path (None when it is not a file of the scan or is unreadable)."""

    def read(path: str) -> list[str] | None:
        source = files.get(path)
        try:
            return split_lines(source.read_text()) if source is not None else None
        except OSError:
            return None

    return read


def _views(
    index: RepoIndex,
    paths: set[str],
    files: dict[str, SourceFile],
    counter: TokenCounter,
    store: ContextStore,
) -> dict[str, FileView]:
    """Lines and per-line token estimates of the candidate files (cached per content)."""
    views: dict[str, FileView] = {}
    position = index.position
    for path in paths:
        source = files.get(path)
        if source is None:
            continue
        try:
            text = source.read_text()
        except OSError:
            continue  # vanished since the scan
        lines = split_lines(text)
        if lines and not lines[-1].endswith(("\n", "\r")):
            lines[-1] += "\n"  # every delivered line ends with a newline
        f = position[path]
        key = store.make_key("line-tokens", counter.encoding_name, index.hashes[f])
        line_tokens = store.get(key)
        if not isinstance(line_tokens, np.ndarray) or len(line_tokens) != len(lines):
            line_tokens = line_token_counts(lines, counter)
            store.set(key, line_tokens)
        views[path] = FileView(
            path,
            lines,
            line_tokens,
            index.structures[f].skeleton,
            fence_language(path),
        )
    return views


#: Per encoding (by identity): the byte length of every token id, or None (see below).
_TOKEN_BYTES: dict[int, tuple[object, np.ndarray | None]] = {}


def _token_byte_lengths(enc: Any) -> np.ndarray | None:
    """The length in bytes of each token id of ``enc``, as an array indexed by id.

    Read from the encoding's ranks once, so a file's token lengths are one array lookup
    rather than a bytes object per token (``decode_tokens_bytes``: most of the time of
    counting a large file). None when the encoding does not expose its ranks.
    """
    cached = _TOKEN_BYTES.get(id(enc))
    if cached is not None and cached[0] is enc:
        return cached[1]
    ranks = getattr(enc, "_mergeable_ranks", None)
    specials = getattr(enc, "_special_tokens", None) or {}
    table: np.ndarray | None = None
    if isinstance(ranks, dict) and ranks:
        size = max(max(ranks.values()), max(specials.values(), default=0)) + 1
        table = np.zeros(size, dtype=np.int64)
        table[np.fromiter(ranks.values(), np.int64, len(ranks))] = np.fromiter(
            map(len, ranks), np.int64, len(ranks)
        )
        for name, rank in specials.items():
            table[rank] = len(name.encode("utf-8"))
    _TOKEN_BYTES[id(enc)] = (enc, table)
    return table


def line_token_counts(lines: Sequence[str], counter: TokenCounter) -> np.ndarray:
    """Tokens of each line, from one encoding of the whole text.

    A token that spans a line end counts for the line it starts on, so the counts add up to
    the token count of the whole text, which is what the packer's estimates need.
    """
    if not lines:
        return np.zeros(0, dtype=np.int32)
    enc = counter.encoding
    try:
        tokens = enc.encode_ordinary("".join(lines))
        line_bytes = [len(line.encode("utf-8")) for line in lines]
    except UnicodeError:  # lone surrogates: count line by line instead
        return np.asarray(counter.count_batch(lines), dtype=np.int32)
    table = _token_byte_lengths(enc)
    if table is not None:
        byte_lengths = table[np.asarray(tokens, dtype=np.int64)]
    else:
        byte_lengths = np.asarray([len(b) for b in enc.decode_tokens_bytes(tokens)], np.int64)
    token_starts = np.cumsum(byte_lengths) - byte_lengths
    line_ends = np.cumsum(line_bytes)
    line_of = np.searchsorted(line_ends, token_starts, side="right")
    return np.bincount(line_of, minlength=len(lines))[: len(lines)].astype(np.int32)


def select_texts(
    sources: Sequence[TextSource],
    query: str,
    budget: int,
    *,
    encoding: str | None = None,
    threshold: float | None = None,
) -> Selection:
    """Like :func:`select`, for texts that are not repository files (transcripts, outputs).

    Each source is cut into overlapping line windows, ranked by BM25 against ``query``, and
    the best windows are delivered as spans (``path`` is the source's name). With an empty
    query the beginnings of the sources are delivered.
    """
    if budget <= 0:
        raise ValueError(f"budget must be a positive number of tokens, got {budget}")
    threshold = DEFAULT_THRESHOLD if threshold is None else threshold
    encoding = encoding or default_encoding_name()
    get_encoding(encoding)
    counter = TokenCounter(encoding)
    views: dict[str, FileView] = {}
    spans: list[tuple[str, int, int]] = []
    passages: list[str] = []
    for source in sources:
        lines = split_lines(source.text)
        if lines and not lines[-1].endswith(("\n", "\r")):
            lines[-1] += "\n"
        structure = analyze(source.name, source.text)
        views[source.name] = FileView(
            source.name,
            lines,
            line_token_counts(lines, counter),
            structure.skeleton,
        )
        for unit in structure.units:
            spans.append((source.name, unit.start_line, unit.end_line))
            passages.append("".join(lines[unit.start_line - 1 : unit.end_line]))
    if tokenize(query):
        scores = rank_passages(query, passages)
    else:  # no query: earlier windows first
        scores = [1.0 / (1 + i) for i in range(len(passages))]
    candidates = [
        Candidate(name, "span", score, start, end)
        for (name, start, end), score in zip(spans, scores, strict=True)
        if score >= threshold
    ]
    packed = pack(views, candidates, budget, counter.count)
    items = [
        SelectionItem(
            p.path, p.start_line, p.end_line, p.kind, p.score, counter.count(p.text), p.text
        )
        for p in packed
    ]
    return Selection(budget, sum(i.tokens for i in items), encoding, items)
