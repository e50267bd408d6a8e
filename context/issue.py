"""Issue context: what an agent fixing an issue must see, within a hard token budget.

An issue (or any task text) is the query. :func:`issue_candidates` ranks the repository
for it — files (with their outlines) and code units, by the ranking of
:func:`agentrt.context.select.select` (:func:`agentrt.context.relevance.rank`) — and adds
the *impact neighbours* of the best definitions: their callers and users, overrides, tests
and their modules' importers, found by the machinery of :mod:`agentrt.context.impact`
(:func:`~agentrt.context.impact.neighbours`), each with a ``why``. These candidates are
what a localisation step chooses from (an LLM re-ranker sees them as paths and outlines).

:func:`select_issue` packs the same candidates within the budget, in the order of the
ranking or, given :class:`IssuePicks` (files and units chosen in order, e.g. by a model),
picks first: the picked units, then the rest of the picked files, then everything else.
It packs them as :func:`~agentrt.context.select.select` packs its own
(:func:`~agentrt.context.select.prepare_packing`): an amalgamation's lines come as the twins
of their source, C/C++ counterparts from COUNTERPART_BUDGET on, and the changelog head,
documentation sections and build lines that go with the code after it. The neighbours are
packed in the room the rest leaves (NEIGHBOUR_LAST): select_issue delivers what select
would (less the room of the whys), then callers and tests. Every delivered item says why
it is there (``matches the issue: parse_header``, ``named in the issue: parse_header``,
``caller of parse_header``, ``re-ranked: parse_header``, ``twin of src/a.hpp:10-40``,
``changelog: …``), naming the best unit of the ranking once; the Markdown, whys included,
never exceeds the budget.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path, PurePosixPath
from typing import TYPE_CHECKING, Any

import numpy as np

from agentrt.context.compress import render_lines, split_lines
from agentrt.context.impact import (
    ImpactItem,
    _Candidates,
    _Graph,
    _pack,
    _render,
    format_reasons,
    neighbours,
    unit_targets,
)
from agentrt.context.packer import Candidate, PackedItem
from agentrt.context.relevance import IndexStats, Ranking, build_index, rank
from agentrt.context.select import (
    DEFAULT_EXCLUDES,
    DEFAULT_THRESHOLD,
    FULL_FILE_WEIGHT,
    SKELETON_WEIGHT,
    SMALL_FILE_LINES,
    SPAN_PADDING,
    Selection,
    _packed,
    counterparts_at,
    history_at,
    history_of,
    prepare_packing,
    ranked_candidates,
    shadow_amalgamations,
)
from agentrt.context.sources import scan_repository
from agentrt.context.tokens import TokenCounter, default_encoding_name, get_encoding

if TYPE_CHECKING:
    from agentrt.context.history import CoChanges
    from agentrt.context.store import ContextStore

__all__ = [
    "IssueCandidates",
    "IssueFile",
    "IssuePicks",
    "IssueSelection",
    "IssueUnit",
    "issue_candidates",
    "select_issue",
]

#: How many ranked files and units are candidates, and how many neighbours are added.
MAX_FILES = 15
MAX_UNITS = 25
MAX_NEIGHBOUR_FILES = 5
MAX_NEIGHBOUR_UNITS = 10
#: The best definitions (or the picked ones) whose callers, tests and importers are offered.
NEIGHBOURS_OF = 3
#: Neighbours' scores (``agentrt.context.impact``'s, relative to a changed hunk) are scaled
#: by this and by the score of the definition they are neighbours of (1 for a pick).
NEIGHBOUR_WEIGHT = 0.5
#: A neighbour's packing score is its score times this: below every candidate of the
#: ranking (at least DEFAULT_THRESHOLD * SMALL_BUDGET_SKELETON_WEIGHT, 0.0175) and of the
#: picks, so the packer (greedy by score ** 4 / tokens) takes what select would take first
#: and the neighbours only in the room left. Scored as the units they hang on (0.5 times
#: theirs), callers' and tests' spans and importers' skeletons displaced select's units:
#: Python --quick hunk recall was 51.3 / 59.0 / 64.1 % at 4k/13k/27k (file 71.8 / 82.1 /
#: 89.7 %), select's 53.8 / 64.1 / 71.8 % (file 71.8 / 87.2 / 94.9 %); packed last (with
#: the shorter whys of _IssueCandidates) select_issue has select's numbers exactly (8 issue
#: budgets won back: sympy-20916, astropy-14598 at 13k, sphinx-8120 at 27k, ...). Measured
#: with select and select_issue side by side on bench.context_selection's --quick sample.
#: Polyglot set (256 issues): hunk 15.2 / 28.9 / 37.1 -> 15.6 / 28.9 / 37.5 % (select 16.0 /
#: 28.9 / 37.9 %), file 37.1 / 52.0 / 60.2 -> 37.1 / 51.2 / 60.5 % (select 36.7 / 51.6 /
#: 60.2 %): at 13k two issues' gold file came only as a neighbour (select misses it too)
#: and one's is lost to the whys' room.
NEIGHBOUR_LAST = 1e-6
#: Tokens of each file's outline among the candidates.
OUTLINE_TOKENS = 120
#: With picks, the file ranked r-th (picked files, then the files of picked units) has the
#: band of scores below PICKED - r * PICKED_FILE_STEP: the spans of its i-th picked unit
#: score the top less i * PICK_STEP, its other candidates 0.03 to 0.05 less (by their own
#: score); everything else its own score times UNPICKED_WEIGHT, below every band. Picks come
#: first, in their order. At most MAX_PICKS files and MAX_PICKS units count.
PICKED = 1.0
PICKED_FILE_STEP = 0.06
PICK_STEP = 0.002
UNPICKED_WEIGHT = 0.3
MAX_PICKS = 10
#: A file path the issue names weighs at least this in the ranking's mentions (a definition
#: it names gives its file less).
_NAMED_FILE = 0.8


@dataclass(slots=True)
class IssueFile:
    """A candidate file: its score (in [0, 1]), why it is a candidate, and its outline."""

    path: str
    score: float
    why: str
    outline: str = ""

    def to_json(self) -> dict[str, Any]:
        out: dict[str, Any] = {"path": self.path, "score": round(float(self.score), 4)}
        out["why"] = self.why
        if self.outline:
            out["outline"] = self.outline
        return out


@dataclass(slots=True)
class IssueUnit:
    """A candidate code unit (function, method, class, block, window) at its lines."""

    path: str
    name: str
    kind: str
    start_line: int
    end_line: int
    score: float
    why: str

    def to_json(self) -> dict[str, Any]:
        return {
            "path": self.path,
            "name": self.name,
            "kind": self.kind,
            "start_line": self.start_line,
            "end_line": self.end_line,
            "score": round(float(self.score), 4),
            "why": self.why,
        }


@dataclass(slots=True)
class IssuePicks:
    """Files and units chosen for an issue, in order (e.g. by an LLM re-ranker): paths, and
    ``(path, name)`` pairs of units by their qualified name."""

    files: list[str] = field(default_factory=list)
    units: list[tuple[str, str]] = field(default_factory=list)


@dataclass(slots=True)
class IssueCandidates:
    """What :func:`issue_candidates` ranks: files and units, most relevant first."""

    files: list[IssueFile]
    units: list[IssueUnit]
    stats: dict[str, Any] = field(default_factory=dict)

    def to_json(self) -> dict[str, Any]:
        return {
            "files": [f.to_json() for f in self.files],
            "units": [u.to_json() for u in self.units],
        }


@dataclass(slots=True)
class IssueSelection(Selection):
    """The context of an issue: :class:`~agentrt.context.select.Selection` whose items are
    :class:`~agentrt.context.impact.ImpactItem` (with ``why``), plus the ranked ``files`` and
    ``units`` in the order they were packed (picks first), and whether picks were applied."""

    files: list[IssueFile] = field(default_factory=list)
    units: list[IssueUnit] = field(default_factory=list)
    picked: bool = False

    def to_json(self) -> dict[str, Any]:
        """``Selection.to_json()`` (items with a ``why`` each) plus ``files`` and ``units``."""
        out = Selection.to_json(self)
        out["files"] = [f.to_json() for f in self.files]
        out["units"] = [u.to_json() for u in self.units]
        out["picked"] = self.picked
        return out

    def to_markdown(self) -> str:
        """One ``## path:start-end (kind) — why`` header and fenced block per item."""
        return _render([(_packed(i), i.why) for i in self.items])


def issue_candidates(
    repo: str | Path,
    issue: str,
    *,
    max_files: int = MAX_FILES,
    max_units: int = MAX_UNITS,
    outline_tokens: int = OUTLINE_TOKENS,
    encoding: str | None = None,
    store: ContextStore | None = None,
    include: Sequence[str] | None = None,
    history: bool | CoChanges = True,
) -> IssueCandidates:
    """The files (with outlines of at most ``outline_tokens`` tokens) and units of ``repo``
    most relevant to ``issue``, then the impact neighbours of the best definitions (callers,
    tests, importers), each with a ``why``. ``history``: as
    :func:`~agentrt.context.select.select`'s (files the repository's past commits changed
    together with the best ones are ranked up).

    Raises:
        agentrt.context.sources.SourceError: ``repo`` is not a directory.
    """
    started = time.perf_counter()
    ranked = _Ranked.build(repo, issue, encoding, store, include, history)
    out = ranked.offer(None)
    files, units = ranked.listing(out, max_files, max_units, None)
    if outline_tokens > 0:
        from agentrt.context.tokens import truncate_to_tokens

        for entry in files:
            outline = ranked.outline(entry.path)
            if outline:
                cut = truncate_to_tokens(outline, outline_tokens, ranked.counter.encoding_name)
                entry.outline = cut if cut == outline else cut.rstrip() + "\n…\n"
    stats = {**ranked.stats, "seconds": round(time.perf_counter() - started, 4)}
    return IssueCandidates(files, units, stats)


def select_issue(
    repo: str | Path,
    issue: str,
    budget: int,
    *,
    picks: IssuePicks | None = None,
    max_files: int = MAX_FILES,
    max_units: int = MAX_UNITS,
    encoding: str | None = None,
    store: ContextStore | None = None,
    include: Sequence[str] | None = None,
    history: bool | CoChanges = True,
) -> IssueSelection:
    """Pack the candidates of :func:`issue_candidates` within ``budget`` tokens: in the
    ranking's order, or with ``picks`` first (the picked units, then the picked files, in
    their order; the neighbours are then those of the picked definitions). Picks that name
    nothing in the repository are ignored. ``history``: as
    :func:`~agentrt.context.select.select`'s, from the same budget on.

    Raises:
        ValueError: ``budget`` is not positive.
        agentrt.context.sources.SourceError: ``repo`` is not a directory.
    """
    started = time.perf_counter()
    if budget <= 0:
        raise ValueError(f"budget must be a positive number of tokens, got {budget}")
    ranked = _Ranked.build(repo, issue, encoding, store, include, history_at(history, budget))
    resolved = ranked.resolve(picks) if picks is not None else None
    out = ranked.offer(resolved, budget)
    files, units = ranked.listing(out, max_files, max_units, resolved)
    # As select packs: C/C++ counterparts, copies in amalgamations, then companions.
    counter = ranked.counter
    counterparts = counterparts_at(
        ranked.index, ranked.ranking, budget, DEFAULT_THRESHOLD, ranked.files
    )
    if resolved is not None:
        rescored = ranked.pick_scorer(resolved)
        counterparts = [
            replace(c, candidate=replace(c.candidate, score=rescored(c.candidate)))
            for c in counterparts
        ]
    packing = prepare_packing(
        ranked.index, list(out.rest.values()), counterparts, ranked.files, counter, ranked.store
    )

    def pack_code(limit: int) -> list[PackedItem]:
        found = _pack(
            packing.views, out, limit, counter, rest=packing.candidates, annotate=packing.annotate
        )
        return [replace(p, score=_own_score(p.score), note=why) for p, why in found]

    packed = pack_code(budget)
    if not ranked.ranking.overview:  # the changelog, docs and build lines that go with the code
        packed = packing.with_companions(pack_code, packed, budget)
    items = [
        ImpactItem(
            p.path, p.start_line, p.end_line, p.kind, p.score, counter.count(p.text), p.text, p.note
        )
        for p in packed
    ]
    stats = {**ranked.stats, "seconds": round(time.perf_counter() - started, 4)}
    return IssueSelection(
        budget=budget,
        tokens=sum(item.tokens for item in items),
        encoding=ranked.counter.encoding_name,
        items=items,  # type: ignore[arg-type]
        repo=str(ranked.root),
        stats=stats,
        message=ranked.message,
        files=files,
        units=units,
        picked=bool(resolved and (resolved.files or resolved.units)),
    )


class _IssueCandidates(_Candidates):
    """Candidates whose whys name, of the ranking's and the picks' reasons, only the best
    subject of each (``matches the issue: Printer._print_Sum``, not three names and ``+8
    more``): the header gives the lines, the code their names, and every word costs the
    budget; a ranking's reason without a subject (a file's: the header names it) only when
    no other has one. The neighbours' reasons (``caller of rate``) keep their names."""

    def why(self, item: PackedItem, n_lines: int) -> str:
        found = self.reasons_of(item, n_lines)
        best: dict[str, tuple[float, str]] = {}  # ranking label -> its best subject
        for (label, subject), score in found.items():
            if label not in _RANKING_LABELS or not subject:
                continue
            if label not in best or (-score, subject) < (-best[label][0], best[label][1]):
                best[label] = (score, subject)

        def kept(label: str, subject: str) -> bool:
            if label not in _RANKING_LABELS:
                return True
            if not subject:  # a file's reason: when no unit is named
                return not best
            return best[label][1] == subject

        return format_reasons({reason: s for reason, s in found.items() if kept(*reason)})


def _neighbours_last(out: _Candidates) -> None:
    """Score the candidates of ``out`` for packing as the ranking (or the picks) scores
    them: one only a neighbour offers (a caller, a test, an importer) at its score times
    NEIGHBOUR_LAST, so that they fill the room the others leave and never displace one of
    them; one the ranking offers too at the ranking's score (an importer's skeleton, scored
    as a neighbour, came before the ranked files select packs)."""
    for key, candidate in out.rest.items():
        own = [s for (label, _), s in out.reasons.get(key, {}).items() if label in _RANKING_LABELS]
        score = max(own) if own else candidate.score * NEIGHBOUR_LAST
        if score != candidate.score:
            out.rest[key] = replace(candidate, score=score)


def _own_score(score: float) -> float:
    """A packed item's score as offered (a neighbour's without NEIGHBOUR_LAST)."""
    return score / NEIGHBOUR_LAST if score < 10 * NEIGHBOUR_LAST else score


@dataclass(slots=True)
class _Resolved:
    """Picks as index numbers: files (in order) and units (global unit numbers, in order)."""

    files: list[int]
    units: list[int]


@dataclass(slots=True)
class _Ranked:
    """One repository's index, graph and ranking for one issue."""

    root: Path
    graph: _Graph
    ranking: Ranking
    counter: TokenCounter
    store: ContextStore
    files: dict[str, Any]
    stats: dict[str, Any]
    message: str | None

    @property
    def index(self) -> Any:
        return self.graph.index

    @classmethod
    def build(
        cls,
        repo: str | Path,
        issue: str,
        encoding: str | None,
        store: ContextStore | None,
        include: Sequence[str] | None,
        history: bool | CoChanges = False,
    ) -> _Ranked:
        encoding = encoding or default_encoding_name()
        get_encoding(encoding)  # fail early (ValueError) on an unknown encoding name
        if store is None:
            from agentrt.context.store import ContextStore, default_store_dir

            store = ContextStore(default_store_dir())
        scan = scan_repository(
            repo, include=include, extra_ignores=() if include else DEFAULT_EXCLUDES
        )
        index_stats = IndexStats(skipped=len(scan.skipped))
        index = build_index(scan.root, scan, store, index_stats)
        files = {f.path: f for f in scan.files}
        graph = _Graph(index, files, store)
        cochanges = history_of(scan.root, history, store) if issue.strip() else None
        stats = {
            "files": len(scan.files),
            "index": index_stats.as_dict(),
            "history_commits": cochanges.n_commits if cochanges is not None else 0,
        }
        return cls(
            scan.root,
            graph,
            shadow_amalgamations(index, rank(index, issue, cochanges)),
            TokenCounter(encoding, store),
            store,
            files,
            stats,
            scan.message,
        )

    # ---------------------------------------------------------------- units and files

    def _unit_of_span(self, f: int, start: int, end: int) -> int | None:
        """The unit whose padded span (as :func:`~agentrt.context.select.select` offers
        it) is ``start..end`` of file ``f``, else the innermost unit holding ``start``."""
        n = self.index.structures[f].n_lines
        base = self.index.file_units(f).start
        for local, unit in enumerate(self.graph.units(f)):
            if (max(1, unit.start_line - SPAN_PADDING), min(n, unit.end_line + SPAN_PADDING)) == (
                start,
                end,
            ):
                return base + local
        return self.graph.enclosing(f, start)

    def _subject(self, f: int, k: int | None) -> str:
        """What a span of unit ``k`` of file ``f`` is about, for its why: the unit's name; a
        line window's is the name of what it is cut from (``parse:120`` is of ``parse``),
        none when that is the file itself (its path, ``<module>``): the item's header
        already says which lines it holds, and every word of a why costs the budget."""
        if k is None:
            return ""
        unit = self.graph.unit(k)
        base, _, line = unit.name.rpartition(":")
        if not base or line != str(unit.start_line):
            return unit.name
        path = self.index.paths[f]
        return "" if base in (path, PurePosixPath(path).name, "<module>") else base

    def _named(self, f: int) -> bool:
        return self.ranking.mentions.files.get(f, 0.0) > _NAMED_FILE

    def resolve(self, picks: IssuePicks) -> _Resolved:
        files: list[int] = []
        for path in picks.files[:MAX_PICKS]:
            f = self.graph.position.get(path)
            if f is not None and f not in files:
                files.append(f)
        units: list[int] = []
        for path, name in picks.units[:MAX_PICKS]:
            f = self.graph.position.get(path)
            if f is None:
                continue
            base = self.index.file_units(f).start
            for local, unit in enumerate(self.graph.units(f)):
                if unit.name == name and base + local not in units:
                    units.append(base + local)
                    break
        return _Resolved(files, units)

    def _top_units(self, limit: int) -> list[int]:
        scores = self.ranking.unit_scores
        if self.ranking.overview or not len(scores):
            return []
        top = np.argsort(-scores, kind="stable")[:limit]
        return [int(k) for k in top if scores[k] >= DEFAULT_THRESHOLD]

    def _top_files(self, limit: int) -> list[int]:
        scores = self.ranking.file_scores
        top = np.argsort(-scores, kind="stable")[:limit]
        return [int(f) for f in top if scores[f] >= DEFAULT_THRESHOLD]

    # ---------------------------------------------------------------- candidates

    def offer(self, picks: _Resolved | None, budget: int = 0) -> _Candidates:
        """The packing candidates with their reasons: the ranking's (as ``select`` offers
        them at ``budget``; 0: as at its smallest), the neighbours of the best (or picked)
        definitions, re-scored by ``picks``."""
        index, graph = self.index, self.graph
        out = _IssueCandidates()
        base = ranked_candidates(index, self.ranking, budget, DEFAULT_THRESHOLD)
        for c in base:
            f = graph.position[c.path]
            if c.kind == "span":
                k = self._unit_of_span(f, c.start_line, c.end_line)
                subject = self._subject(f, k)
                named = k is not None and k in self.ranking.mentions.units
            else:  # the header names the file
                subject, named = "", self._named(f)
            label = "named in the issue:" if named else "matches the issue:"
            out.add(c.path, c.kind, c.score, (label, subject), c.start_line, c.end_line)
        if picks is not None:
            self._offer_picks(picks, out)
        around = [k for k in (picks.units if picks else []) if graph.unit(k).kind != "window"]
        for k in self._top_units(MAX_UNITS):
            if len(unit_targets(graph, around)) >= NEIGHBOURS_OF:
                break
            if k not in around:
                around.append(k)
        targets = unit_targets(graph, around)[:NEIGHBOURS_OF]
        picked = set(picks.units) if picks is not None else set()
        totals: dict[str, int] = {}
        for target in targets:
            # Each definition's neighbours, weighed by how much it matters for the issue.
            found = _Candidates()
            own = {target.unit} if target.unit is not None else set()
            counts = neighbours(graph, [target], own, [target.file], found)
            for name, n in counts.items():
                totals[name] = totals.get(name, 0) + n
            weight = NEIGHBOUR_WEIGHT * (
                1.0 if target.unit in picked else float(self.ranking.unit_scores[target.unit])
            )
            for (path, kind, start, end), reasons in found.reasons.items():
                for why, score in reasons.items():
                    out.add(path, kind, score * weight, why, start, end)
        self.stats.update(neighbours_of=[t.name for t in targets], **totals)
        _neighbours_last(out)
        if picks is not None:
            self._rescore(picks, out)
        return out

    def _offer_picks(self, picks: _Resolved, out: _Candidates) -> None:
        """Candidates for what was picked, whether or not the ranking offered them."""
        index = self.index
        for f in picks.files:
            path, structure = index.paths[f], index.structures[f]
            why = ("re-ranked:", "")  # the header names the file
            if structure.skeleton:
                out.add(path, "skeleton", SKELETON_WEIGHT, why)
            if structure.n_lines <= SMALL_FILE_LINES:
                out.add(path, "file", FULL_FILE_WEIGHT, why)
        for k in picks.units:
            f, unit = int(index.unit_file[k]), self.graph.unit(k)
            n = index.structures[f].n_lines
            start = max(1, unit.start_line - SPAN_PADDING)
            end = min(n, unit.end_line + SPAN_PADDING)
            out.add(index.paths[f], "span", 1.0, ("re-ranked:", unit.name), start, end)

    def file_order(self, picks: _Resolved) -> list[int]:
        """The picked files, then the files of picked units that are not among them."""
        order = list(picks.files)
        for k in picks.units:
            f = int(self.index.unit_file[k])
            if f not in order:
                order.append(f)
        return order

    def _rescore(self, picks: _Resolved, out: _Candidates) -> None:
        """The candidates of picked files first, in the files' order, and in each file its
        picked units first; then the rest, in their order."""
        score = self.pick_scorer(picks)
        for key, candidate in list(out.rest.items()):
            out.rest[key] = replace(candidate, score=score(candidate))

    def pick_scorer(self, picks: _Resolved) -> Callable[[Candidate], float]:
        """A candidate's score with ``picks`` first (see PICKED)."""
        index = self.index
        file_rank = {index.paths[f]: i for i, f in enumerate(self.file_order(picks))}
        unit_spans = []
        for k in picks.units:
            unit = self.graph.unit(k)
            unit_spans.append(
                (index.paths[int(index.unit_file[k])], unit.start_line, unit.end_line)
            )

        def score(candidate: Candidate) -> float:
            path, start, end = candidate.path, candidate.start_line, candidate.end_line
            if path not in file_rank:
                return candidate.score * UNPICKED_WEIGHT
            top = PICKED - PICKED_FILE_STEP * file_rank[path]
            if candidate.kind == "span":
                for i, (p, a, b) in enumerate(unit_spans):
                    if p == path and start <= b and a <= (end or b):
                        return top - PICK_STEP * i
            return top - 0.05 + 0.02 * min(candidate.score, 1.0)

        return score

    # ---------------------------------------------------------------- listings

    def listing(
        self, out: _Candidates, max_files: int, max_units: int, picks: _Resolved | None
    ) -> tuple[list[IssueFile], list[IssueUnit]]:
        """The ranked files and units (picks first), then the neighbours not among them;
        an entry's why has its neighbour reasons too (a test that matches the issue)."""
        index, graph = self.index, self.graph
        file_scores = self.ranking.file_scores
        # The neighbours' reasons: of units (callers, tests that use them) and of files
        # (tests, importers), with their best (scaled) score.
        unit_reasons: dict[int, dict[Any, float]] = {}
        file_reasons: dict[str, dict[Any, float]] = {}
        for (path, kind, start, _end), reasons in out.reasons.items():
            near = {why: s for why, s in reasons.items() if why[0] not in _RANKING_LABELS}
            if not near:
                continue
            if kind == "span":
                k = graph.enclosing(graph.position[path], start)
                if k is not None:
                    unit_reasons.setdefault(k, {}).update(near)
            else:
                file_reasons.setdefault(path, {}).update(near)

        def why(own: dict[Any, float], near: dict[Any, float] | None) -> str:
            return format_reasons({**own, **(near or {})})

        file_order = self.file_order(picks) if picks else []
        files: list[IssueFile] = []
        seen_files: set[str] = set()
        for position, f in enumerate(file_order):
            path = index.paths[f]
            own = {("re-ranked", f"#{position + 1}"): 2.0}
            files.append(IssueFile(path, float(file_scores[f]), why(own, file_reasons.get(path))))
            seen_files.add(path)
        for f in self._top_files(max_files):
            path = index.paths[f]
            if path in seen_files:
                continue
            label = "named in the issue:" if self._named(f) else "matches the issue:"
            own = {(label, PurePosixPath(path).name): 2.0}
            files.append(IssueFile(path, float(file_scores[f]), why(own, file_reasons.get(path))))
            seen_files.add(path)
        units: list[IssueUnit] = []
        seen_units: set[int] = set()
        for position, k in enumerate(picks.units if picks else []):
            own = {("re-ranked", f"#{position + 1}"): 2.0}
            units.append(self._unit_entry(k, why(own, unit_reasons.get(k))))
            seen_units.add(k)
        for k in self._top_units(max_units):
            if k in seen_units:
                continue
            named = k in self.ranking.mentions.units
            label = "named in the issue:" if named else "matches the issue:"
            own = {(label, graph.unit(k).name): 2.0}
            units.append(self._unit_entry(k, why(own, unit_reasons.get(k))))
            seen_units.add(k)
        extra_files = [(p, r) for p, r in file_reasons.items() if p not in seen_files]
        extra_files.sort(key=lambda pr: -max(pr[1].values()))
        for path, reasons in extra_files[:MAX_NEIGHBOUR_FILES]:
            files.append(IssueFile(path, max(reasons.values()), format_reasons(reasons)))
        extra_units = [(k, r) for k, r in unit_reasons.items() if k not in seen_units]
        extra_units.sort(key=lambda kr: -max(kr[1].values()))
        for k, reasons in extra_units[:MAX_NEIGHBOUR_UNITS]:
            entry = self._unit_entry(k, format_reasons(reasons))
            entry.score = max(reasons.values())
            units.append(entry)
        return files, units

    def _unit_entry(self, k: int, why: str) -> IssueUnit:
        f, unit = int(self.index.unit_file[k]), self.graph.unit(k)
        score = float(self.ranking.unit_scores[k])
        return IssueUnit(
            self.index.paths[f], unit.name, unit.kind, unit.start_line, unit.end_line, score, why
        )

    def outline(self, path: str) -> str:
        """The skeleton of ``path`` (its first lines when it has none)."""
        f = self.graph.position.get(path)
        source = self.files.get(path)
        if f is None or source is None:
            return ""
        try:
            lines = split_lines(source.read_text())
        except OSError:
            return ""
        skeleton = self.index.structures[f].skeleton
        if not skeleton:
            return "".join(lines[:20])
        return render_lines(lines, skeleton)


#: Reasons the ranking gives (the rest are the neighbours'); see :meth:`_Ranked.offer`.
_RANKING_LABELS = frozenset(
    {"matches the issue:", "named in the issue:", "re-ranked", "re-ranked:"}
)
