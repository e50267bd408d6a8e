"""Counterparts: a C or C++ definition's declaration in a header, and the reverse.

In C and C++ a function is declared in a header and defined in a source file; a change to
one often changes the other (a new parameter, a renamed method, a ``const`` added), and an
agent that sees only the definition does not know the header it must edit. When a selection
ranks a function or method definition among its best units (any function of a source file,
``.c``, ``.cpp``…; a method a header defines outside its class, as ``-inl.h`` files do),
:func:`find_counterparts` offers the declaration of the same qualified name (``Foo::bar``
declared inside ``class Foo``, or a C prototype ``int bar(…);``) in the headers the file
includes, that share its stem (``foo.h`` for ``foo.c``) or in the file itself, as a short span:
the declaration, the comment right above it and a line around. When it ranks a class or
struct of a header, it offers the best-ranked definition of one of its members in the
source files that include the header (or share its stem). Each counterpart is a packing
candidate worth :data:`COUNTERPART_WEIGHT` times the unit's score, so the packer takes it
only when it pays its tokens, and carries a why (``declaration of Foo::bar
(src/foo.cpp:120)``) added to the delivered item's header by :class:`CounterpartNotes`.

Declarations are found in the header's lines (a prototype is a ``declaration`` unit of
:mod:`agentrt.context.syntax` too, but a declaration spread over a macro the grammar does
not know may not be): the member's name followed by ``(`` inside the class's unit (or
outside every function of a C header), up to a ``;`` before any ``{``.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace

import numpy as np

from agentrt.context.compress import Unit
from agentrt.context.packer import Candidate, PackedItem
from agentrt.context.relevance import RepoIndex

__all__ = [
    "COUNTERPART_BUDGET",
    "COUNTERPART_WEIGHT",
    "Counterpart",
    "CounterpartNotes",
    "find_counterparts",
    "find_definitions",
]

#: A counterpart is worth this fraction of the score of the unit it goes with.
COUNTERPART_WEIGHT = 0.8
#: Counterparts are offered from this budget on (select): below it, the budget is better
#: spent on the best code (at 4k, C++ lost a gold file to them and gained no hunk).
COUNTERPART_BUDGET = 8_000
#: Counterparts are looked for among this many best-ranked units (C and C++ units only).
MAX_UNITS = 40
#: At most this many declarations of one name (overloads) per header.
MAX_DECLARATIONS = 3
#: Lines delivered around a declaration (after the comment right above it, if any).
DECLARATION_PADDING = 1
#: A declaration's statement is looked for this many lines before and after its name.
STATEMENT_LINES = 6
#: At most this many lines of comment right above a declaration are delivered with it.
COMMENT_LINES = 8

SOURCE_SUFFIXES = (".c", ".cc", ".cpp", ".cxx", ".c++")
HEADER_SUFFIXES = (".h", ".hh", ".hpp", ".hxx", ".h++", ".inl", ".ipp")
_FUNCTION_KINDS = frozenset({"function", "method"})
_TYPE_KINDS = frozenset({"class", "struct"})
_IDENTIFIER = re.compile(r"[A-Za-z_~][A-Za-z_0-9]*")
_COMMENT = re.compile(r"\s*(//|/\*|\*)")


@dataclass(frozen=True, slots=True)
class Counterpart:
    """A counterpart span (``candidate``) and the why shown on the item that delivers it."""

    candidate: Candidate
    why: str


def _suffix(path: str) -> str:
    name = path.rpartition("/")[2]
    dot = name.rfind(".")
    return name[dot:].lower() if dot > 0 else ""


def _stem(path: str) -> str:
    name = path.rpartition("/")[2]
    dot = name.rfind(".")
    return name[:dot] if dot > 0 else name


def _display(name: str, cpp: bool) -> str:
    return name.replace(".", "::") if cpp else name


class _Finder:
    """Counterparts of the units of one index; file lines read once through ``read``."""

    def __init__(self, index: RepoIndex, read: Callable[[str], Sequence[str] | None]) -> None:
        self.index = index
        self.read = read
        self._lines: dict[int, Sequence[str] | None] = {}
        self._includers: dict[int, list[int]] = {}

    def lines(self, f: int) -> Sequence[str] | None:
        if f not in self._lines:
            self._lines[f] = self.read(self.index.paths[f])
        return self._lines[f]

    def same_stem(self, f: int, suffixes: tuple[str, ...]) -> list[int]:
        """Files of ``suffixes`` with ``f``'s stem: those of its folder, or of one other
        folder (``include/x.h`` for ``src/x.c``); none when the stem is ambiguous."""
        path = self.index.paths[f]
        stem, folder = _stem(path), path.rpartition("/")[0]
        found = [
            g
            for suffix in suffixes
            for g in self.index.basenames.get(stem + suffix, ())
            if g != f and _suffix(self.index.paths[g]) == suffix
        ]
        near = [g for g in found if self.index.paths[g].rpartition("/")[0] == folder]
        return near or (found if len(found) == 1 else [])

    def headers_of(self, f: int) -> list[int]:
        """The headers source file ``f`` includes, then those sharing its stem."""
        out: list[int] = []
        imports = self.index.imports
        if imports is not None:
            row = imports.getrow(f)  # type: ignore[attr-defined]
            out = [int(g) for g in row.indices if _suffix(self.index.paths[g]) in HEADER_SUFFIXES]
        for g in self.same_stem(f, HEADER_SUFFIXES):
            if g not in out:
                out.append(g)
        return out

    def includers(self, h: int) -> list[int]:
        """The files that include header ``h``."""
        found = self._includers.get(h)
        if found is None:
            imports = self.index.imports
            column = imports.getcol(h) if imports is not None else None  # type: ignore[attr-defined]
            found = [] if column is None else [int(g) for g in column.nonzero()[0]]
            self._includers[h] = found
        return found

    def sources_of(self, h: int) -> list[int]:
        """The source files that include header ``h``, or share its stem."""
        found = [g for g in self.includers(h) if _suffix(self.index.paths[g]) in SOURCE_SUFFIXES]
        for g in self.same_stem(h, SOURCE_SUFFIXES):
            if g not in found:
                found.append(g)
        return found

    def declarations(self, h: int, name: str) -> list[tuple[int, int]]:
        """Line ranges (declaration with its comment and padding) of the declarations of
        ``name`` (dotted) in header ``h``: inside a class or struct unit named as ``name``'s
        qualifier, else outside every function of the header."""
        lines = self.lines(h)
        parts = name.split(".")
        member = parts[-1]
        if lines is None or not _IDENTIFIER.fullmatch(member):
            return []
        structure = self.index.structures[h]
        if len(parts) > 1:
            owner = parts[-2]
            scopes = [
                (u.start_line, u.end_line)
                for u in structure.units
                if u.kind in _TYPE_KINDS and u.name.rsplit(".", 1)[-1] == owner
            ]
        else:
            scopes = [(1, len(lines))]
        bodies = [(u.start_line, u.end_line) for u in structure.units if u.kind in _FUNCTION_KINDS]
        pattern = re.compile(r"(?<![\w~.>:])" + re.escape(member) + r"\s*\(")
        out: list[tuple[int, int]] = []
        for first, last in scopes:
            for i in range(first, min(last, len(lines)) + 1):
                if len(out) >= MAX_DECLARATIONS:
                    return out
                text = lines[i - 1]
                if not pattern.search(text) or _COMMENT.match(text) or text.lstrip()[:1] == "#":
                    continue
                if any(s <= i <= e for s, e in bodies):
                    continue  # a call in an inline function, or an inline definition
                found = self._statement(lines, i)
                if found is not None and not any(s <= found[0] <= e for s, e in out):
                    out.append(found)
        return out

    @staticmethod
    def _statement(lines: Sequence[str], i: int) -> tuple[int, int] | None:
        """The lines of the prototype naming its function at line ``i`` (ending with ``;``
        before any ``{``), with the comment right above and DECLARATION_PADDING lines."""
        end = None
        for j in range(i, min(len(lines), i + STATEMENT_LINES) + 1):
            code = lines[j - 1].split("//", 1)[0]
            brace, semi = code.find("{"), code.find(";")
            # ``{}`` on the line is still a declaration (an empty body); another brace is not.
            if brace >= 0 and (semi < 0 or brace < semi) and not re.search(r"\{\s*\}", code):
                return None
            if semi >= 0:
                end = j
                break
        if end is None:
            return None
        start = i
        for _ in range(STATEMENT_LINES):  # the return type, template line… above the name
            above = lines[start - 2].strip() if start > 1 else ""
            if not above or above.endswith((";", "{", "}", ":", "*/")) or _COMMENT.match(above):
                break
            if above.startswith("#"):
                break
            start -= 1
        for _ in range(COMMENT_LINES):  # its comment
            if start > 1 and _COMMENT.match(lines[start - 2]) and lines[start - 2].strip():
                start -= 1
            else:
                break
        return max(1, start - DECLARATION_PADDING), min(len(lines), end + DECLARATION_PADDING)


def find_counterparts(
    index: RepoIndex,
    unit_scores: np.ndarray,
    threshold: float,
    read: Callable[[str], Sequence[str] | None],
    *,
    weight: float = COUNTERPART_WEIGHT,
    max_units: int = MAX_UNITS,
) -> list[Counterpart]:
    """The counterparts of the best-ranked C and C++ units (see the module's docstring).

    ``read`` gives a file's lines (or None when it cannot be read); only the headers and
    sources that may hold a counterpart are read.
    """
    if not len(unit_scores) or not any(
        s.language in ("c", "cpp") for s in index.structures
    ):  # fmt: skip
        return []
    finder = _Finder(index, read)
    out: list[Counterpart] = []
    seen: set[tuple[str, int, int]] = set()
    taken = 0
    for k in np.argsort(-unit_scores, kind="stable"):
        score = float(unit_scores[k])
        if score < threshold or taken >= max_units:
            break
        f = int(index.unit_file[k])
        structure = index.structures[f]
        if structure.language not in ("c", "cpp"):
            continue
        taken += 1
        path, unit = index.unit(int(k))
        suffix = _suffix(path)
        cpp = structure.language == "cpp" or suffix not in (".c", ".h")
        found: list[Counterpart] = []
        if unit.kind in _FUNCTION_KINDS and _out_of_line(structure.units, unit, suffix):
            why = f"declaration of {_display(unit.name, cpp)} ({path}:{unit.start_line})"
            for h in (*finder.headers_of(f), f):
                for start, end in finder.declarations(h, unit.name):
                    found.append(
                        Counterpart(
                            Candidate(index.paths[h], "span", score * weight, start, end), why
                        )
                    )
        elif suffix in HEADER_SUFFIXES and unit.kind in _TYPE_KINDS:
            found.extend(
                _member_definition(
                    index, finder, unit_scores, f, unit.name, unit.start_line, score * weight
                )
            )
        for c in found:
            key = (c.candidate.path, c.candidate.start_line, c.candidate.end_line)
            if key not in seen:
                seen.add(key)
                out.append(c)
    return out


def find_definitions(
    index: RepoIndex,
    units: Sequence[int],
    score: float,
    read: Callable[[str], Sequence[str] | None],
) -> list[Counterpart]:
    """The definitions of the prototypes among ``units`` (``declaration`` units of C and C++
    headers, e.g. the changed ones of a change): the functions and methods of the same
    (qualified) name in the files that include the header or share its stem, offered with
    ``score`` and a why (``definition of rect_area (src/geo.h:4)``)."""
    finder = _Finder(index, read)
    out: list[Counterpart] = []
    for k in list(units)[:MAX_UNITS]:
        path, unit = index.unit(int(k))
        h = int(index.unit_file[k])
        if unit.kind != "declaration" or _suffix(path) not in HEADER_SUFFIXES:
            continue
        parts = unit.name.split(".")
        wanted = parts[-2:]
        places = set(finder.includers(h)) | set(finder.sources_of(h))
        for j in index.definitions.get(parts[-1], ()) or ():
            g = int(index.unit_file[j])
            _, definition = index.unit(j)
            if (
                g in places
                and definition.kind in _FUNCTION_KINDS
                and definition.name.split(".")[-len(wanted) :] == wanted
            ):
                cpp = index.structures[g].language == "cpp"
                why = f"definition of {_display(unit.name, cpp)} ({path}:{unit.start_line})"
                out.append(_span(index, j, score, why))
    return out


def _out_of_line(units: Sequence[Unit], unit: Unit, suffix: str) -> bool:
    """Whether function ``unit`` may have a declaration elsewhere: any function of a source
    file, and a method of a header defined outside its class (``Foo::bar`` below the class
    or in an ``-inl.h``), not one defined in the class's body."""
    owner = unit.name.rpartition(".")[0]
    if suffix in HEADER_SUFFIXES and not owner:
        return False  # a header's free function (static inline, a template): no prototype
    return not any(
        u.kind in _TYPE_KINDS
        and u.name == owner
        and u.start_line <= unit.start_line
        and unit.end_line <= u.end_line
        for u in units
    )


def _member_definition(
    index: RepoIndex,
    finder: _Finder,
    unit_scores: np.ndarray,
    h: int,
    name: str,
    line: int,
    score: float,
) -> list[Counterpart]:
    """The best-ranked definition of a member of type ``name`` (of header ``h``) in the
    source files that include ``h`` or share its stem (none when no member matches the
    query at all), offered with ``score``."""
    owner = name.rsplit(".", 1)[-1]
    best: tuple[float, int] | None = None
    for g in finder.sources_of(h):
        for k in index.file_units(g):
            _, unit = index.unit(k)
            parts = unit.name.split(".")
            if unit.kind in _FUNCTION_KINDS and len(parts) > 1 and parts[-2] == owner:
                key = (float(unit_scores[k]), k)
                if key[0] > 0 and (best is None or key > best):
                    best = key
    return [] if best is None else _definition(index, best[1], h, name, line, score)


def _definition(
    index: RepoIndex, k: int, h: int, name: str, line: int, score: float
) -> list[Counterpart]:
    _, unit = index.unit(k)
    why = (
        f"definition of {_display(unit.name, True)}, a member of "
        f"{_display(name, True)} ({index.paths[h]}:{line})"
    )
    return [_span(index, k, score, why)]


def _span(index: RepoIndex, k: int, score: float, why: str) -> Counterpart:
    """Unit ``k`` and DECLARATION_PADDING lines around it, offered with ``score`` and ``why``."""
    path, unit = index.unit(k)
    n_lines = index.structures[int(index.unit_file[k])].n_lines
    start = max(1, unit.start_line - DECLARATION_PADDING)
    end = min(n_lines, unit.end_line + DECLARATION_PADDING)
    return Counterpart(Candidate(path, "span", score, start, end), why)


class CounterpartNotes:
    """Adds each counterpart's why to the header of the delivered item that holds it (a
    span, or its file's skeleton or whole text), for the packer's ``annotate``, after any
    other annotator ``then``."""

    def __init__(
        self,
        counterparts: Sequence[Counterpart],
        then: Callable[[list[PackedItem]], list[PackedItem]] | None = None,
    ) -> None:
        self.then = then
        self.by_path: dict[str, list[Counterpart]] = {}
        for c in counterparts:
            self.by_path.setdefault(c.candidate.path, []).append(c)

    def __call__(self, items: list[PackedItem]) -> list[PackedItem]:
        if self.then is not None:
            items = self.then(items)
        out: list[PackedItem] = []
        for item in items:
            whys = [
                c.why
                for c in self.by_path.get(item.path, ())
                if item.start_line <= c.candidate.start_line
                and c.candidate.end_line <= item.end_line
            ]
            whys = list(dict.fromkeys(w for w in whys if w not in item.note))
            if whys:
                note = "; ".join([item.note, *whys] if item.note else whys)
                item = replace(item, note=note)
            out.append(item)
        return out
