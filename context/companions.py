"""Companions: the lines of non-code files that go with the delivered code.

A fix is rarely code alone. The project's changelog gets an entry, the documentation of a
function it changes gets a line, a build file that lists the sources gets the new file next
to its siblings. An engineer (or an agent) about to make the change needs to see where those
lines go, and ranking by the issue's words seldom finds them: they share few words with it.

After the code is packed, :func:`find_companions` looks at what was delivered and offers,
each with a ``why``:

* the head of the changelog nearest the best delivered code file (``CHANGELOG.md``,
  ``CHANGES``, ``History.md``, ``NEWS``… in its folder or the closest folder above): from
  the top through the first lines of the second release heading, so the section a new entry
  goes in and the format of a release are visible (the top and the end of that section
  when it is long);
* documentation sections (Markdown or reStructuredText heading to the next heading) that
  name a definition the delivery holds, rare names first;
* the lines of build files (``CMakeLists.txt``, ``Makefile``, ``meson.build``…) that list
  a delivered source file, with a few lines around them.

They are small and cheap: together at most :data:`COMPANION_SHARE` of the budget, none when
that is less than :data:`MIN_COMPANION_TOKENS`. :func:`agentrt.context.select.select`
delivers them after the code and keeps the whole within the budget (see
:func:`with_companions`).
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping, Sequence
from itertools import islice
from pathlib import PurePosixPath
from typing import TYPE_CHECKING

import numpy as np

from agentrt.context.compress import DEFINITION_KINDS, TEST_PATH
from agentrt.context.packer import FileView, PackedItem, rendered_tokens

if TYPE_CHECKING:
    from agentrt.context.relevance import RepoIndex
    from agentrt.context.sources import SourceFile

__all__ = ["find_companions", "with_companions"]

#: Companions take at most this share of the budget, and none are offered when that share
#: is less than MIN_COMPANION_TOKENS. Below DISPLACE_BUDGET they only fill what the code
#: left (a tight budget goes to code); from it on, the code is packed again around them.
COMPANION_SHARE = 0.05
MIN_COMPANION_TOKENS = 150
DISPLACE_BUDGET = 8000
#: Caps per kind, in (estimated) tokens.
CHANGELOG_TOKENS = 600
DOC_TOKENS = 450
DOC_SECTION_TOKENS = 300
BUILD_TOKENS = 200
#: Lines around a build file's line that names a delivered source file.
BUILD_CONTEXT = 3
#: A changelog head goes this many lines past the second release heading.
RELEASE_LINES = 3
#: Definition names shorter than this, or named in more documentation sections than
#: MAX_NAME_SECTIONS, are too common to tie a section to the code.
MIN_NAME_CHARS = 4
MAX_NAME_SECTIONS = 6
#: At most this many documentation files are read per selection (best BM25 match first).
MAX_DOC_FILES = 30

_CHANGELOG = re.compile(
    r"^(change[-_ ]?log|changes|history|news|release[-_ ]?notes)(\.(md|markdown|rst|txt|adoc))?$",
    re.I,
)
_RELEASE_FOLDER = re.compile(r"^release[-_ ]?notes$", re.I)
_DOC_SUFFIXES = (".md", ".markdown", ".rst", ".adoc", ".txt")
_BUILD_NAMES = frozenset(
    {"cmakelists.txt", "makefile", "gnumakefile", "meson.build", "build", "build.bazel"}
)
_BUILD_SUFFIXES = (".cmake", ".mk", ".am", ".vcxproj", ".vcproj", ".gyp", ".gypi", ".bzl")
_CODE_SUFFIXES = (
    ".c", ".h", ".cc", ".cpp", ".cxx", ".hh", ".hpp", ".hxx", ".ipp", ".inl", ".tpp",
    ".rs", ".go", ".java", ".kt", ".kts", ".scala", ".py", ".pyi",
    ".js", ".mjs", ".cjs", ".jsx", ".ts", ".mts", ".cts", ".tsx", ".cs", ".rb", ".php", ".swift",
)  # fmt: skip
_VERSION = re.compile(r"\bv?\d+\.\d+|\b(unreleased|upcoming|tbd|next)\b", re.I)
_UNDERLINE = re.compile(r"^\s*([=\-~^#*+])\1{2,}\s*$")
_MD_HEADING = re.compile(r"^#{1,6}\s")


def is_code(path: str) -> bool:
    """A source file (what companions go with)."""
    return path.lower().endswith(_CODE_SUFFIXES)


def is_changelog(path: str) -> bool:
    """``CHANGELOG.md``, ``CHANGES``, ``History.md``, ``NEWS``… and the version files of a
    ``release-notes/`` folder (``release-notes/VERSION-2.x``)."""
    # String splits, not PurePosixPath: this runs on every path of the index per selection.
    head, _, name = path.rpartition("/")
    if _CHANGELOG.match(name):
        return True
    folder = head.rpartition("/")[2]
    return bool(_RELEASE_FOLDER.match(folder)) and name.lower().startswith("version")


def is_build_file(path: str) -> bool:
    name = path.rpartition("/")[2].lower()
    return name in _BUILD_NAMES or name.endswith(_BUILD_SUFFIXES)


def is_doc(path: str) -> bool:
    """Prose documentation: Markdown, reStructuredText, AsciiDoc, or text under a docs
    folder or named README (not tests, not changelogs, not CMakeLists.txt)."""
    lowered = path.lower()
    name = lowered.rpartition("/")[2]
    if TEST_PATH.search(path) or is_changelog(path) or is_build_file(path):
        return False
    if name.endswith(".txt"):
        return name.startswith("readme") or bool(re.search(r"(^|/)docs?/", lowered))
    return name.endswith(_DOC_SUFFIXES)


def _cost(view: FileView, start: int, end: int) -> int:
    """Estimated tokens of lines ``start..end`` of ``view`` (1-based, inclusive)."""
    return view.prefix[min(end, view.n_lines)] - view.prefix[start - 1]


Reader = Callable[[str], FileView | None]


def find_companions(
    index: RepoIndex,
    files: Mapping[str, SourceFile],
    delivered: Sequence[PackedItem],
    limit: int,
    view_of: Callable[[str], FileView | None],
) -> list[PackedItem]:
    """Companions of the ``delivered`` code, at most ``limit`` estimated tokens in all:
    a changelog head, then documentation sections, then build-file lines (see the module
    docstring). Nothing when no code is delivered or ``limit`` < MIN_COMPANION_TOKENS.
    ``view_of`` gives a file's lines and their token estimates (None: unreadable)."""
    if limit < MIN_COMPANION_TOKENS:
        return []
    code = [item for item in delivered if is_code(item.path)]
    if not code:
        return []

    def read(path: str) -> FileView | None:  # view_of keeps the views it made
        view = view_of(path) if path in files else None
        return view if view is not None and view.lines else None

    shown = _Shown(delivered)
    out: list[PackedItem] = []
    left = limit
    for finder, cap in (
        (_changelog_head, CHANGELOG_TOKENS),
        (_doc_sections, DOC_TOKENS),
        (_build_lines, BUILD_TOKENS),
    ):
        found = finder(index, files, code, min(cap, left), read, shown)
        for item in found:
            left -= _cost(read(item.path), item.start_line, item.end_line) + 12  # type: ignore[arg-type]
        out.extend(found)
        if left < MIN_COMPANION_TOKENS // 3:
            break
    return out


class _Shown:
    """The lines already delivered verbatim (spans and whole files; not skeletons)."""

    def __init__(self, delivered: Sequence[PackedItem]) -> None:
        self.spans: dict[str, list[tuple[int, int]]] = {}
        for item in delivered:
            if item.kind != "skeleton":
                self.spans.setdefault(item.path, []).append((item.start_line, item.end_line))

    def covers(self, path: str, start: int, end: int) -> bool:
        """Lines ``start..end`` of ``path`` are all in delivered items."""
        needed = set(range(start, end + 1))
        for a, b in self.spans.get(path, ()):
            needed -= set(range(a, b + 1))
            if not needed:
                return True
        return not needed


def _item(path: str, text: FileView, start: int, end: int, why: str) -> PackedItem:
    from agentrt.context.select import fence_language

    body = "".join(text.lines[start - 1 : end])
    return PackedItem(path, start, end, "span", 0.0, body, fence_language(path), why)


# --------------------------------------------------------------------------- changelog


def _changelog_head(
    index: RepoIndex,
    files: Mapping[str, SourceFile],
    code: Sequence[PackedItem],
    cap: int,
    read: Reader,
    shown: _Shown,
) -> list[PackedItem]:
    """The head of the changelog nearest the best delivered code file."""
    changelogs = [p for p in index.paths if is_changelog(p) and p in files]
    if not changelogs:
        return []
    anchor = PurePosixPath(code[0].path).parent
    best: tuple[int, str] | None = None
    for path in changelogs:
        folder = PurePosixPath(path).parent
        if _RELEASE_FOLDER.match(folder.name):  # release-notes/VERSION: the project's
            folder = folder.parent
        if folder == anchor or folder in anchor.parents:
            depth = len(folder.parts)
            if best is None or (depth, -len(path)) > (best[0], -len(best[1])):
                best = (depth, path)
    if best is None:
        return []
    path = best[1]
    text = read(path)
    if text is None:
        return []
    headings = _release_headings(text.lines)
    n = len(text.lines)
    end = min(n, headings[1] + RELEASE_LINES) if len(headings) > 1 else min(n, 30)
    why = f"changelog: where an entry for this change goes ({code[0].path} is delivered)"
    if shown.covers(path, 1, end):
        return []
    if _cost(text, 1, end) <= cap:
        return [_item(path, text, 1, end, why)]
    # Long: its headings (with the line after), the top, the next release's first lines,
    # and the ends of the sub-sections (where entries are added), as many as fit.
    return [
        _item(path, text, a, b, why if a == 1 else "changelog: the ends of its sections")
        for a, b in _outline_with_ends(text, end, cap)
    ]


def _outline_with_ends(text: FileView, end: int, cap: int) -> list[tuple[int, int]]:
    """Spans of lines ``1..end`` of a changelog within ``cap`` tokens: the first lines,
    every heading and the line after it, the last RELEASE_LINES + 1 lines, then the last
    lines of each section, one line of each in turn, while they fit."""
    lines = text.lines
    heads = [
        i
        for i in range(1, end + 1)
        if _MD_HEADING.match(lines[i - 1])
        or (i < end and _UNDERLINE.match(lines[i]) and lines[i - 1].strip())
        or (i > 1 and _UNDERLINE.match(lines[i - 1]))
    ]
    visible: set[int] = set(range(1, min(3, end) + 1))
    visible |= set(range(max(1, end - RELEASE_LINES), end + 1))
    for h in heads:
        visible.update((h, min(end, h + 1)))
    spent = sum(_cost(text, i, i) for i in visible) + 12 * (len(heads) + 2)
    # Section bodies: the lines between one heading and the next, filled from the bottom.
    bounds = [*heads, end + 1]
    cursors = [b - 1 for b in bounds[1:]]
    floors = [a + 1 for a in bounds[:-1]]
    progress = True
    while progress:
        progress = False
        for s, line in enumerate(cursors):
            while line >= floors[s] and line in visible:
                line -= 1
            if line < floors[s]:
                continue
            cost = _cost(text, line, line)
            if spent + cost > cap:
                return _spans(visible)
            visible.add(line)
            spent += cost
            cursors[s] = line - 1
            progress = True
    return _spans(visible)


def _spans(lines: set[int]) -> list[tuple[int, int]]:
    """Runs of consecutive line numbers, as (first, last)."""
    out: list[tuple[int, int]] = []
    for line in sorted(lines):
        if out and line == out[-1][1] + 1:
            out[-1] = (out[-1][0], line)
        else:
            out.append((line, line))
    return out


def _release_headings(lines: Sequence[str]) -> list[int]:
    """Line numbers (1-based) of the headings of release sections, first two only."""
    out: list[int] = []
    for i, raw in enumerate(lines):
        line = raw.strip()
        if not line or len(line) > 100 or not _VERSION.search(line):
            continue
        underlined = i + 1 < len(lines) and _UNDERLINE.match(lines[i + 1]) is not None
        heading = _MD_HEADING.match(line) or underlined or re.match(r"^v?\d+\.\d+", line)
        if heading and not _UNDERLINE.match(line):
            out.append(i + 1)
            if len(out) == 2:
                break
    return out


def _fit_down(text: FileView, start: int, end: int, cap: int) -> int:
    """The last line from ``start`` on such that ``start..it`` costs at most ``cap``."""
    spent, last = 0, start
    for line in range(start, end + 1):
        spent += int(text.line_tokens[line - 1])
        if spent > cap:
            break
        last = line
    return last


# --------------------------------------------------------------------------- documentation


def _delivered_names(index: RepoIndex, code: Sequence[PackedItem]) -> dict[str, float]:
    """Names of the definitions the delivered code spans hold whole, each with the best
    score of an item holding it."""
    position = index.position
    names: dict[str, float] = {}
    for item in code:
        f = position.get(item.path)
        if f is None or item.kind == "skeleton":
            continue
        for unit in index.structures[f].units:
            if (
                unit.kind in DEFINITION_KINDS
                and item.start_line <= unit.start_line
                and unit.end_line <= item.end_line
            ):
                name = re.split(r"\.|::", unit.name)[-1]
                if len(name) >= MIN_NAME_CHARS and name.isidentifier():
                    names[name] = max(names.get(name, 0.0), item.score)
    return names


def _compound(name: str) -> bool:
    """An identifier no prose word spells: ``snake_case``, ``camelCase``, ``PascalCase``."""
    return "_" in name.strip("_") or re.search(r"[a-z][A-Z]", name) is not None


def _code_mentions(pattern: re.Pattern[str], text: str) -> set[str]:
    """Names ``pattern`` finds in ``text`` written as code: compound identifiers anywhere,
    other names in backticks, called (``name(``) or qualified (``::name``, ``.name``)."""
    out: set[str] = set()
    for match in pattern.finditer(text):
        name = match.group(1)
        if name in out:
            continue
        before = text[match.start() - 1] if match.start() else ""
        after = text[match.end()] if match.end() < len(text) else ""
        if _compound(name) or (before in "`:." and before) or (after in "`(" and after):
            out.add(name)
    return out


def _sections(text: FileView, markdown: bool) -> list[tuple[int, int]]:
    """(start, end) of each section: a heading to the line before the next heading."""
    starts = [1]
    lines = text.lines
    fence = False
    for i, line in enumerate(lines, start=1):
        if line.lstrip().startswith(("```", "~~~")):
            fence = not fence
        if fence:
            continue
        if (markdown and _MD_HEADING.match(line)) or (
            i > 1 and _UNDERLINE.match(line) and lines[i - 2].strip()
        ):
            start = i if markdown and _MD_HEADING.match(line) else i - 1
            if start > starts[-1]:
                starts.append(start)
    ends = [s - 1 for s in starts[1:]] + [len(lines)]
    return list(zip(starts, ends, strict=True))


def _doc_sections(
    index: RepoIndex,
    files: Mapping[str, SourceFile],
    code: Sequence[PackedItem],
    cap: int,
    read: Reader,
    shown: _Shown,
) -> list[PackedItem]:
    """Documentation sections naming delivered definitions, rarest names first."""
    names = _delivered_names(index, code)
    if not names:
        return []
    from agentrt.context.relevance import term_id

    ids = np.asarray([term_id(n.lower()) for n in names], dtype=np.int64)
    scores = index.file_bm25.scores(ids)
    positive = np.flatnonzero(scores > 0)
    ordered = positive[np.argsort(-scores[positive], kind="stable")]
    docs = list(islice((int(f) for f in ordered if is_doc(index.paths[f])), MAX_DOC_FILES))
    if not docs:
        return []
    pattern = re.compile(r"(?<![\w-])(" + "|".join(map(re.escape, names)) + r")(?![\w-])")
    found: list[tuple[str, int, int, set[str]]] = []
    for f in docs:
        path = index.paths[f]
        text = read(path)
        if text is None:
            continue
        markdown = path.lower().endswith((".md", ".markdown"))
        stem = PurePosixPath(path).name.split(".")[0]
        for start, end in _sections(text, markdown):
            hits = _code_mentions(pattern, "".join(text.lines[start - 1 : end]))
            if stem in names:  # the page of a definition (``docs/api/value.md``)
                hits.add(stem)
            if hits:
                found.append((path, start, end, hits))
    frequency: dict[str, int] = {}
    for *_, hits in found:
        for name in hits:
            frequency[name] = frequency.get(name, 0) + 1
    ranked = []
    for path, start, end, hits in found:
        rare = {n for n in hits if frequency[n] <= MAX_NAME_SECTIONS}
        if rare:
            weight = sum(names[n] / frequency[n] for n in rare)
            ranked.append((-weight, end - start, path, start, end, sorted(rare)))
    ranked.sort()
    out: list[PackedItem] = []
    spent = 0
    for _, _, path, start, end, rare in ranked:
        text = read(path)
        assert text is not None
        if _cost(text, start, end) > DOC_SECTION_TOKENS:
            end = _fit_down(text, start, end, DOC_SECTION_TOKENS)
        if shown.covers(path, start, end):
            continue
        cost = _cost(text, start, end) + 12
        if spent + cost > cap:
            continue
        spent += cost
        out.append(_item(path, text, start, end, f"documents {', '.join(rare[:3])} (delivered)"))
    return out


# --------------------------------------------------------------------------- build files


def _build_lines(
    index: RepoIndex,
    files: Mapping[str, SourceFile],
    code: Sequence[PackedItem],
    cap: int,
    read: Reader,
    shown: _Shown,
) -> list[PackedItem]:
    """Lines of build files that list a delivered source file, with a few around them."""
    builds = [p for p in index.paths if is_build_file(p) and p in files]
    if not builds:
        return []
    delivered = list(dict.fromkeys(item.path for item in code))
    # Each build file is read and searched once, for the names of the delivered sources in
    # its folder or below (a build file lists those).
    lines_of: dict[tuple[str, str], list[int]] = {}
    folders = {s: {str(p) for p in PurePosixPath(s).parents} for s in delivered}
    for path in builds:
        folder = str(PurePosixPath(path).parent)
        below = [s for s in delivered if folder in folders[s]]  # "." is everyone's parent
        if not below:
            continue
        text = read(path)
        if text is None:
            continue
        names = {PurePosixPath(s).name for s in below}
        alternatives = "|".join(map(re.escape, sorted(names)))
        pattern = re.compile(r"(?<![\w.-])(" + alternatives + r")(?![\w-])")
        for number, line in enumerate(text.lines, start=1):
            for match in pattern.finditer(line):
                for source in below:
                    if PurePosixPath(source).name == match.group(1):
                        lines_of.setdefault((source, path), []).append(number)
    out: list[PackedItem] = []
    spent = 0
    for source in delivered:
        for path in builds:
            lines = sorted(set(lines_of.get((source, path), ())))
            if not lines or len(lines) > 3:
                continue
            text = read(path)
            assert text is not None
            for line in lines:
                start = max(1, line - BUILD_CONTEXT)
                end = min(len(text.lines), line + BUILD_CONTEXT)
                if shown.covers(path, start, end):
                    continue
                cost = _cost(text, start, end) + 12
                if spent + cost > cap:
                    return _merged(out)
                spent += cost
                out.append(_item(path, text, start, end, f"build file listing {source}"))
    return _merged(out)


def _merged(items: list[PackedItem]) -> list[PackedItem]:
    """Overlapping items of one file as one (their why: the first)."""
    out: list[PackedItem] = []
    for item in sorted(items, key=lambda i: (i.path, i.start_line)):
        last = out[-1] if out else None
        if last is not None and last.path == item.path and item.start_line <= last.end_line + 1:
            if item.end_line > last.end_line:
                extra = item.text.splitlines(keepends=True)[last.end_line - item.start_line + 1 :]
                out[-1] = PackedItem(
                    last.path, last.start_line, item.end_line, last.kind, last.score,
                    last.text + "".join(extra), last.language, last.note,
                )  # fmt: skip
            continue
        out.append(item)
    return out


# --------------------------------------------------------------------------- packing


def with_companions(
    pack_code: Callable[[int], list[PackedItem]],
    packed: list[PackedItem],
    budget: int,
    companions: Callable[[list[PackedItem], int], list[PackedItem]],
    count: Callable[[str], int],
) -> list[PackedItem]:
    """``packed`` (the code, packed within ``budget``) followed by its companions, all
    within ``budget``. When they do not fit in what the code left: below DISPLACE_BUDGET,
    the last are dropped until they do (the code stays as it is); from it on, the code is
    packed again (``pack_code``) in the budget less the companions, and companions that
    still do not fit are dropped, last first."""
    allowance = int(budget * COMPANION_SHARE)
    found = companions(packed, allowance)
    if not found:
        return packed
    joined = packed + found
    if rendered_tokens(joined, count) <= budget:
        return joined
    if budget < DISPLACE_BUDGET:
        while found and rendered_tokens(packed + found, count) > budget:
            found.pop()
        return packed + found
    room = budget - rendered_tokens(found, count)
    if room <= 0:
        return packed
    code = pack_code(room)
    found = companions(code, allowance)
    while found and rendered_tokens(code + found, count) > budget:
        found.pop()
    return code + found if found else packed
