"""Packing: choose what to deliver of which file so relevance per token is highest.

The packer works on *candidates* — a span of lines (a function, a window), a file's
skeleton, a whole file — each with a relevance score. Each file's delivery is a set of
visible lines: spans add line ranges, a skeleton adds the file's outline, a whole file all
of it. Candidates are taken greedily by ``score ** SCORE_EXPONENT / marginal cost`` (lazy
greedy: a candidate's marginal cost is recomputed only when it reaches the top), where the
cost is an estimate from per-line token counts.

The estimate is only a guide: the final rendering is counted exactly, and the greedy is
re-run with a corrected target until the exact count fits the budget (then unused budget
is handed back once). The budget is thus a hard limit on the rendered Markdown, which is
the largest of the renderings (it adds a header per item to the item texts).

A candidate may carry *twins* (:mod:`agentrt.context.twins`): the same lines in another file
(an amalgamation) that must be delivered with it. It is then priced and taken with them;
when they do not fit, alone. An ``annotate`` function sees every trial delivery before it is
counted, so notes it adds to the items' headers (what is a twin of what, what was left out)
are inside the budget too.
"""

from __future__ import annotations

import heapq
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from typing import Literal

import numpy as np

from agentrt.context.compress import render_lines

__all__ = ["Candidate", "FileView", "PackedItem", "pack", "render_markdown", "rendered_tokens"]

Kind = Literal["file", "skeleton", "span"]

#: Higher values favour the most relevant candidates over cheap, less relevant ones.
SCORE_EXPONENT = 4.0
#: Spans of one file closer than this many lines are delivered as one (gap included). A
#: fix often touches the lines between two delivered units (a declaration, a field, the end
#: of one function and the start of the next, a new function inserted between them): of the
#: gold hunks missed in gold files that were delivered (polyglot, 4k and 13k), those with
#: every line delivered or in a gap of at most 3 / 10 / 20 lines: 0 / 18 / 42. A gap costs
#: its lines but saves an item header and is read in place. 16 (was 3), on all 256 polyglot
#: issues (select at 4k / 13k / 27k, scored as python -m bench.context_selection --set
#: polyglot does): gold hunks delivered 514 / 1034 / 1563 -> 510 / 1059 / 1576 of 4558,
#: issues with every hunk 41 / 74 / 97 -> 41 / 75 / 97 (ripgrep-1642 gained at 13k and 27k,
#: fd-866 lost at 27k), with every gold file 94 / 132 / 154 -> 94 / 134 / 154. On a tuning
#: set of 93 of them a gap of 10 added 6 hunks at 13k, 16 added 10. Python --quick unchanged
#: (53.8 / 64.1 / 71.8 % hunk, 71.8 / 87.2 / 94.9 % file recall).
MERGE_GAP = 16
#: Estimated cost of the line marking one elided run in a skeleton.
MARKER_TOKENS = 10


@dataclass(slots=True)
class FileView:
    """A file as the packer sees it: lines (with line ends), their token estimates, outline."""

    path: str
    lines: list[str]
    line_tokens: np.ndarray
    skeleton: list[tuple[int, int]] = field(default_factory=list)
    language: str = ""
    prefix: list[int] = field(init=False, repr=False, compare=False)

    @property
    def n_lines(self) -> int:
        return len(self.lines)

    def __post_init__(self) -> None:
        # prefix[i]: estimated tokens of lines 1..i, so a range costs one subtraction. The
        # greedy prices thousands of trial deliveries; summing line counts each time was
        # most of a warm selection's time on a large tree.
        self.prefix = [0, *np.cumsum(self.line_tokens, dtype=np.int64).tolist()]


@dataclass(frozen=True, slots=True)
class Candidate:
    """Something worth delivering: lines ``start_line..end_line`` of ``path`` as ``kind``."""

    path: str
    kind: Kind
    score: float
    start_line: int = 1
    end_line: int = 0  # 0: to the end of the file
    #: Lines of other files delivered together with this candidate (its twins in an
    #: amalgamation), if they fit; their score is this candidate's.
    twins: tuple[Candidate, ...] = ()


@dataclass(slots=True)
class PackedItem:
    """One delivered piece: verbatim lines, or a skeleton with elided runs."""

    path: str
    start_line: int
    end_line: int
    kind: Kind
    score: float
    text: str
    language: str = ""
    #: Shown after the header (``## path:a-b (kind) — note``): why the item is there.
    note: str = ""


def _fence(text: str) -> str:
    """A Markdown code fence longer than any backtick run inside ``text``."""
    longest = run = 0
    for char in text:
        run = run + 1 if char == "`" else 0
        longest = max(longest, run)
    return "`" * max(3, longest + 1)


def render_item(item: PackedItem) -> str:
    fence = _fence(item.text)
    note = f" — {item.note}" if item.note else ""
    return (
        f"## {item.path}:{item.start_line}-{item.end_line} ({item.kind}){note}\n"
        f"{fence}{item.language}\n{item.text}{fence}\n\n"
    )


def render_markdown(items: Sequence[PackedItem]) -> str:
    """The Markdown delivery of ``items``: one ``## path:start-end (kind)`` block each."""
    return "".join(render_item(item) for item in items)


class _FileState:
    """Which lines of one file are delivered, and how."""

    __slots__ = ("_cost", "best", "header_tokens", "line_score", "skeleton", "view", "visible")

    def __init__(self, view: FileView, header_tokens: int) -> None:
        self.view = view
        self.visible = np.zeros(view.n_lines + 2, dtype=bool)  # 1-based, padded both ends
        self.line_score = np.zeros(view.n_lines + 2, dtype=np.float32)
        self.skeleton = False
        self.best = 0.0
        self.header_tokens = header_tokens
        self._cost: int | None = None

    def copy(self) -> _FileState:
        other = _FileState.__new__(_FileState)
        other.view, other.header_tokens = self.view, self.header_tokens
        other.visible, other.skeleton, other.best = self.visible.copy(), self.skeleton, self.best
        other.line_score = self.line_score  # copied on write, in apply()
        other._cost = self._cost
        return other

    def apply(self, candidate: Candidate) -> None:
        self._cost = None
        n = self.view.n_lines
        self.line_score = self.line_score.copy()
        if candidate.kind == "file":
            self.visible[1 : n + 1] = True
            np.maximum(self.line_score, candidate.score, out=self.line_score)
        elif candidate.kind == "skeleton":
            self.skeleton = True
            for start, end in self.view.skeleton:
                self.visible[start : end + 1] = True
                span = self.line_score[start : end + 1]
                np.maximum(span, candidate.score, out=span)
        else:
            end = candidate.end_line or n
            self.visible[candidate.start_line : end + 1] = True
            span = self.line_score[candidate.start_line : end + 1]
            np.maximum(span, candidate.score, out=span)
        self.best = max(self.best, candidate.score)

    def covers(self, candidate: Candidate) -> bool:
        n = self.view.n_lines
        if candidate.kind == "skeleton":
            return self.skeleton or bool(self.visible[1 : n + 1].all())
        start = candidate.start_line if candidate.kind == "span" else 1
        end = (candidate.end_line or n) if candidate.kind == "span" else n
        return bool(self.visible[start : end + 1].all())

    def ranges(self) -> list[tuple[int, int]]:
        """Visible ranges; in span mode, close ranges are merged with their gap."""
        vis = self.visible.astype(np.int8)
        edges = np.flatnonzero(np.diff(vis))
        starts, ends = edges[::2] + 1, edges[1::2]
        ranges = [(int(s), int(e)) for s, e in zip(starts, ends, strict=True)]
        if self.skeleton:
            return ranges
        merged: list[tuple[int, int]] = []
        for start, end in ranges:
            if merged and start - merged[-1][1] - 1 <= MERGE_GAP:
                merged[-1] = (merged[-1][0], end)
            else:
                merged.append((start, end))
        return merged

    def cost(self) -> int:
        """Estimated tokens of this file's delivery (0 if nothing is visible)."""
        if self._cost is None:
            self._cost = self._estimate()
        return self._cost

    def _estimate(self) -> int:
        ranges = self.ranges()
        if not ranges:
            return 0
        prefix = self.view.prefix
        if self.skeleton:
            body = sum(prefix[e] - prefix[s - 1] for s, e in ranges)
            hidden_runs = len(ranges) + 1 - (ranges[0][0] == 1) - (ranges[-1][1] == len(prefix) - 1)
            return self.header_tokens + body + MARKER_TOKENS * hidden_runs
        return sum(self.header_tokens + prefix[e] - prefix[s - 1] for s, e in ranges)

    def items(self) -> list[PackedItem]:
        view, n = self.view, self.view.n_lines
        ranges = self.ranges()
        if not ranges:
            return []
        if ranges == [(1, n)]:
            return [
                PackedItem(view.path, 1, n, "file", self.best, "".join(view.lines), view.language)
            ]
        if self.skeleton:
            text = render_lines(view.lines, ranges)
            return [PackedItem(view.path, 1, n, "skeleton", self.best, text, view.language)]
        return [
            PackedItem(
                view.path,
                s,
                e,
                "span",
                float(self.line_score[s : e + 1].max()),
                "".join(view.lines[s - 1 : e]),
                view.language,
            )
            for s, e in ranges
        ]


def _greedy(
    views: Mapping[str, FileView],
    candidates: Sequence[Candidate],
    target: int,
    header_tokens: Callable[[str], int],
    first: Sequence[Candidate] = (),
) -> dict[str, _FileState]:
    states: dict[str, _FileState] = {}
    spent = 0

    def state_of(path: str) -> _FileState:
        state = states.get(path)
        if state is None:
            state = states[path] = _FileState(views[path], header_tokens(path))
        return state

    def priority(candidate: Candidate) -> tuple[float, int]:
        state = state_of(candidate.path)
        own = not state.covers(candidate)
        delta = 0
        if own:
            trial = state.copy()
            trial.apply(candidate)
            delta = trial.cost() - state.cost()
        # Twins (in an amalgamation: a long file, whose exact re-pricing dominated packing)
        # are priced by their lines not yet visible and a header; exactly when taken.
        twins = sum(twin_estimate(t) for t in candidate.twins if t.path in views)
        if not own and not twins:
            return 0.0, 0
        delta = max(1, delta + twins)
        return candidate.score**SCORE_EXPONENT / delta, delta

    def twin_estimate(twin: Candidate) -> int:
        state = state_of(twin.path)
        end = twin.end_line or state.view.n_lines
        visible = state.visible[twin.start_line : end + 1]
        hidden = int(
            state.view.line_tokens[twin.start_line - 1 : end][
                ~visible[: end - twin.start_line + 1]
            ].sum()
        )
        if not hidden:
            return 0
        return hidden + (0 if visible.any() else state.header_tokens)

    def with_twins(candidate: Candidate, twins: bool) -> tuple[int, dict[str, _FileState]]:
        """The cost of taking ``candidate`` (and its twins), and the states it would make."""
        trials: dict[str, _FileState] = {}
        for part in (candidate, *candidate.twins) if twins else (candidate,):
            if part.path not in views:
                continue
            trial = trials.get(part.path)
            if trial is None:
                if state_of(part.path).covers(part):
                    continue
                trial = trials[part.path] = state_of(part.path).copy()
            trial.apply(part)
        return sum(t.cost() - states[p].cost() for p, t in trials.items()), trials

    def stamp(candidate: Candidate) -> int:
        """Changes when the candidate's file changes (versions only grow). Not when its
        twins' files do: their cost is re-estimated only with the candidate's own (an
        amalgamation changes with every source span taken, and re-pricing every twinned
        candidate each time cost more than the whole packing), and counted exactly when
        the candidate is taken."""
        return version.get(candidate.path, 0)

    version: dict[str, int] = {}
    for candidate in first:  # in order, until one does not fit
        if candidate.path not in views:
            continue
        state = state_of(candidate.path)
        if state.covers(candidate):
            continue
        trial = state.copy()
        trial.apply(candidate)
        delta = trial.cost() - state.cost()
        if spent + delta > target:  # the rest only once all of ``first`` is in
            return {path: s for path, s in states.items() if s.visible.any()}
        states[candidate.path] = trial
        spent += delta
        version[candidate.path] = version.get(candidate.path, 0) + 1
    heap: list[tuple[float, int, int]] = []
    for i, candidate in enumerate(candidates):
        if candidate.score <= 0 or candidate.path not in views:
            continue
        value, _ = priority(candidate)
        if value > 0:
            heap.append((-value, i, 0))
    heapq.heapify(heap)
    while heap and spent < target:
        _, i, seen_version = heapq.heappop(heap)
        candidate = candidates[i]
        current = stamp(candidate)
        if seen_version != current:
            value, _ = priority(candidate)
            if value > 0:
                heapq.heappush(heap, (-value, i, current))
            continue
        if candidate.twins:
            delta, trials = with_twins(candidate, True)
            if trials and spent + delta > target:  # its twins do not fit: it alone may
                delta, trials = with_twins(candidate, False)
            if not trials or spent + delta > target:
                continue
            for path, trial in trials.items():
                states[path] = trial
                version[path] = version.get(path, 0) + 1
            spent += delta
            continue
        state = state_of(candidate.path)
        if state.covers(candidate):
            continue
        before = state.cost()
        trial = state.copy()
        trial.apply(candidate)
        delta = trial.cost() - before
        if spent + delta > target:
            continue  # does not fit; a cheaper candidate still may
        states[candidate.path] = trial
        spent += delta
        version[candidate.path] = current + 1
    return {path: s for path, s in states.items() if s.visible.any()}


def pack(
    views: Mapping[str, FileView],
    candidates: Sequence[Candidate],
    budget: int,
    count: Callable[[str], int],
    *,
    first: Sequence[Candidate] = (),
    annotate: Callable[[list[PackedItem]], list[PackedItem]] | None = None,
) -> list[PackedItem]:
    """Choose items from ``candidates`` whose Markdown rendering has at most ``budget`` tokens.

    ``count`` must be the exact token counter of the budget's encoding. ``first``: candidates
    taken before all others, in their order, until one does not fit (what must be seen
    whatever else is relevant, such as the hunks of a change); ``candidates`` are considered
    only when all of ``first`` fits. Items come out grouped by file, files in order of their
    best score, items in line order; then ``annotate`` (if given) may add notes to them and
    reorder them, before they are counted.
    """
    if budget <= 0 or not (candidates or first):
        return []

    def header_tokens(path: str) -> int:
        # The header and fences of an item; its language tag is a token or two.
        return count(render_item(PackedItem(path, 10000, 10000, "skeleton", 0.0, "", "python")))

    best: list[PackedItem] = []
    best_tokens = -1
    target = budget
    for _attempt in range(4):
        states = _greedy(views, candidates, target, header_tokens, first)
        items = _order(states)
        if annotate is not None:
            items = annotate(items)
        tokens = rendered_tokens(items, count)
        if tokens <= budget and tokens > best_tokens:
            best, best_tokens = items, tokens
        if tokens > budget:
            target -= tokens - budget + max(8, budget // 100)
        elif budget - tokens > max(16, budget // 50):
            target += (budget - tokens) * 9 // 10  # the estimate was pessimistic
        else:
            break
        if target <= 0:
            break
    if best_tokens < 0:  # never fitted: drop the least relevant items until it does
        items = _order(_greedy(views, candidates, max(1, target), header_tokens, first))
        if annotate is not None:
            items = annotate(items)
        while items and rendered_tokens(items, count) > budget:
            items.remove(min(items, key=lambda item: item.score))
            if annotate is not None:  # the notes name what is delivered: make them anew
                items = annotate([replace(item, note="") for item in items])
        best = items
    return best


def rendered_tokens(items: Sequence[PackedItem], count: Callable[[str], int]) -> int:
    """Tokens of the largest rendering of ``items`` (what a selection promises to keep within
    its budget: the Markdown, the concatenated texts, the sum of the texts)."""
    if not items:
        return 0
    return max(
        count(render_markdown(items)),
        count("".join(item.text for item in items)),
        sum(count(item.text) for item in items),
    )


def _order(states: Mapping[str, _FileState]) -> list[PackedItem]:
    ordered = sorted(states.values(), key=lambda s: (-s.best, s.view.path))
    return [item for state in ordered for item in state.items()]
