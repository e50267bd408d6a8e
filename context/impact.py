"""Change-impact context: what a reviewer of a change must see, within a hard token budget.

:func:`select_impact` takes a change — the working tree against a git revision (``since``),
or a unified diff (``diff``) that the repository holds either side of — and selects:

1. the changed hunks (always first, in diff order) with their enclosing units: the function,
   method, class header or module block each hunk is in; the copies of the hunks (and of
   every other candidate) in amalgamations, generated files that concatenate their sources
   (:mod:`agentrt.context.twins`: nlohmann/json's ``single_include/``), attached to them as
   twins the packer prices with them; and the C/C++ **counterparts** of the changed units
   (:mod:`agentrt.context.counterparts`): a changed definition's declaration in its
   header, a changed prototype's definition;
2. the code the change affects: **callers** of the changed functions, methods, classes and
   module-level names (the static call graph: direct calls, calls through ``import ... as``
   and ``from ... import ... as`` bindings, ``module.func()``, ``self.method()``, and other
   attribute calls resolved by name where exactly one definition has that name); their
   **tests** (test functions that call or use the changed units, test files that import
   the changed module, and test files named after it: ``test_<module>.py``,
   ``<module>_test.py``); the changed modules' **importers**; and the **callees** whose
   signatures the changed lines rely on;
3. the files past commits changed **together with** the changed files (the repository's git
   history before the change, :mod:`agentrt.context.history`): the most coupled ones, each
   as its best unit for the change's lines and its outline — the rest of a change is often
   linked to it by neither calls nor imports nor words (a header, a registry, a sibling
   implementation);
4. with what is left of the budget, the code most **related** to the change by content.

Each delivered item says ``why`` it is there (``changed: parse_header``, ``caller of
parse_header``, ``test of utils.py``, ``importer of utils.py``, ``callee: Header.__init__``,
``co-changed with utils.py``, ``related by content``, ``twin of include/x.hpp:120-180 …``
or ``also in single_include/x.hpp:…`` when a copy does not fit, ``declaration of Foo::bar
(src/foo.cpp:120)``, ``definition of bar (include/foo.h:12)``). Candidates are packed as
:func:`agentrt.context.select.select` packs its own
(:func:`~agentrt.context.select.prepare_packing`, :func:`agentrt.context.packer.pack`) —
the hunks first, in order, then everything else by relevance per token (the hunks' copies,
callers, counterparts and tests before co-changed files, then importers' skeletons and
callees' signatures, then related code) — and the Markdown, whys and notes included,
never exceeds the budget.

What it reads of the repository index (:mod:`agentrt.context.relevance`): ``paths``,
``hashes``, ``structures`` (units, skeleton, line count per file), ``file_units``,
``unit``, ``definitions`` and ``basenames``, and the accessors
:func:`~agentrt.context.relevance.imported_files` (import edges),
:func:`~agentrt.context.relevance.resolve_module` and
:func:`~agentrt.context.relevance.files_mentioning` (which files can use a name). Which
names each line uses comes from :mod:`agentrt.context.references` (Python via ``ast``;
other languages plug in an extractor there).
"""

from __future__ import annotations

import re
import time
from collections import OrderedDict
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path, PurePosixPath
from typing import TYPE_CHECKING, Any

import numpy as np

from agentrt.context.compress import Unit, split_lines
from agentrt.context.counterparts import (
    COUNTERPART_WEIGHT,
    Counterpart,
    find_counterparts,
    find_definitions,
)
from agentrt.context.git import run_git
from agentrt.context.history import CoChanges
from agentrt.context.items import SelectionItem
from agentrt.context.packer import Candidate, FileView, PackedItem, pack, render_item
from agentrt.context.references import Binding, FileReferences, Ref, file_references
from agentrt.context.relevance import (
    IndexStats,
    Ranking,
    RepoIndex,
    build_index,
    files_mentioning,
    imported_files,
    module_name,
    resolve_module,
)
from agentrt.context.select import (
    DEFAULT_EXCLUDES,
    Selection,
    _packed,
    _reader,
    capped,
    history_of,
    prepare_packing,
    shadow_amalgamations,
)
from agentrt.context.sources import SourceFile, scan_repository
from agentrt.context.tokens import TokenCounter, default_encoding_name, get_encoding
from agentrt.errors import AgentrtError

if TYPE_CHECKING:
    from unidiff import PatchedFile

    from agentrt.context.store import ContextStore

__all__ = [
    "ChangeError",
    "FileChange",
    "ImpactItem",
    "ImpactSelection",
    "change_sizes",
    "diff_since",
    "locate_changes",
    "select_impact",
]

#: Bump when what is cached per file (references) changes.
REFS_VERSION = 1

# Scores (relative relevance, in [0, 1]) of each kind of candidate. Hunks are packed before
# everything else whatever their score; the rest compete by score ** 4 per token.
SCORE_HUNK = 1.0
SCORE_ENCLOSING_HEADER = 0.95
SCORE_ENCLOSING = 0.9
SCORE_CALLER = 0.75
SCORE_TEST = 0.7
SCORE_CALLER_BY_NAME = 0.65
SCORE_USER = 0.6
SCORE_USER_BY_NAME = 0.5
SCORE_CHANGED_SKELETON = 0.5
SCORE_NAMED_TEST = 0.55
SCORE_TEST_FILE = 0.45
SCORE_IMPORTER = 0.4
SCORE_CALLEE = 0.38
SCORE_MAYBE_CALLEE = 0.3
SCORE_OVERRIDE = 0.7
#: A changed C/C++ unit's counterpart (its declaration in a header, a class's member
#: definition) is offered at COUNTERPART_WEIGHT (0.8) times this: between callers and tests.
SCORE_COUNTERPART_OF = SCORE_ENCLOSING
#: What is left of the budget goes to the code most related to the change by content (the
#: ranking of :func:`agentrt.context.select.select`, the changed lines as the query), its
#: scores scaled by this: below every structural neighbour.
SCORE_RELATED = 0.3
#: Files that past commits changed together with the changed files (:mod:`agentrt.context.
#: history`): the COCHANGED_FILES most coupled ones whose coupling with a changed file is at
#: least COCHANGE_MIN, offered as their best unit for the change's content and their
#: outline: below callers and tests, above importers and related-by-content code. On the
#: 187 polyglot fixes of several files, each with the history before its base commit
#: (python -m bench.impact --set polyglot --mirrors DIR, and with --no-history), every other
#: gold file was delivered at 4k / 13k for 15.5 / 27.8 % of them without co-changes and
#: 26.2 / 35.3 % with (the baseline, select with the change as its query: 22.5 / 36.4 %);
#: 27.8 / 36.4 % once the change's copies in amalgamations and its C/C++ counterparts came.
#: Tuned on the first 56 of them (--multi --limit 60): all other files at 4k / 13k for
#: 9 / 20 fixes without, 18 / 25 with these; three files: 13 / 23 (scores scaled by the
#: coupling, mostly 0.1-0.5: 12 / 23), eight: 17 / 26, units only (no outline): 19 / 25.
#: Only code files (no tests, docs, build files) as co-changes: 19 / 25 here and 20 / 27 of
#: the next 80 (20 / 26 with all files): within noise. With all files (tests among them),
#: the fixes whose test module is delivered at 4k rose from 86.2 to 96.6 % (29 fixes).
SCORE_COCHANGED_UNIT = 0.6
SCORE_COCHANGED_SKELETON = 0.5
COCHANGED_FILES = 5
COCHANGE_MIN = 0.1
#: At most this many changed files seed the co-changes (a big change couples with much).
COCHANGE_SEEDS = 20

#: Lines of context around each hunk; hunks are cut into pieces of at most HUNK_PIECE_LINES
#: lines (the packer merges them again), so a budget smaller than a big hunk still gets
#: its beginning, and a change bigger than the budget the beginning of each hunk.
HUNK_PADDING = 3
HUNK_PIECE_LINES = 8
#: A caller unit up to this many lines is offered whole; a longer one as its signature and
#: CALL_WINDOW lines around each call.
CALLER_WHOLE_LINES = 60
CALL_WINDOW = 8
#: At most this many caller/test sites, importers and callees become candidates.
MAX_CALLER_SITES = 300
MAX_IMPORTERS = 40
MAX_TEST_FILES = 20
MAX_CALLEES = 40
#: An attribute call whose name this many definitions or fewer have offers all of them.
MAX_MAYBE_CALLEES = 4
#: Subclasses followed (transitively, by base class name) to find overrides of a method.
MAX_SUBCLASSES = 30
#: Characters of the change (names, then changed lines) used as the query for related code.
MAX_RELATED_QUERY = 20_000
#: A why lists at most this many reasons (then "+N more").
MAX_REASONS = 3

_TEST_PATH = re.compile(
    r"(^|/)(tests?|testing|__tests__)(/|$)|(^|/)test_[^/]*$|_tests?\.[^/.]+$|"
    r"\.(test|spec)\.[^/.]+$|(^|/)conftest\.py$"
)
_DEF_LINE = re.compile(r"^\s*(?:async\s+)?(?:def|class)\s+([A-Za-z_]\w*)")
_CALL = re.compile(r"(?:([A-Za-z_][\w.]*)\.)?([A-Za-z_]\w*)\s*\(")
_DEF_KINDS = ("function", "method", "class")
#: Attribute names of built-in types (``append``, ``get``, ``items``): a call
#: ``x.append(...)`` is far more likely a list's than the one repository method of that name.
_BUILTIN_ATTRS = frozenset(
    name
    for kind in (object, list, dict, set, frozenset, tuple, str, bytes, int, float)
    for name in dir(kind)
)
#: Hunks of code files are packed before hunks of these (documentation, data, settings).
_PROSE_SUFFIXES = frozenset(
    {".md", ".rst", ".txt", ".json", ".yaml", ".yml", ".toml", ".cfg", ".ini", ".csv", ""}
)
#: Which unit encloses a line: the innermost definition, else a module block, else a window.
_KIND_RANK = {"function": 0, "method": 0, "class": 1, "block": 2, "window": 3}


class ChangeError(AgentrtError, ValueError):
    """The change cannot be read: not a git work tree, an unknown revision, a diff that
    does not apply to the repository or names files that are not in it."""

    retryable = False
    hint = (
        "pass a revision that exists in the repository (`git log --oneline`), or a unified "
        "diff of files in it, taken before or after the change"
    )


def is_test_path(path: str) -> bool:
    """Whether ``path`` looks like a test file (``tests/``, ``test_*``, ``*_test.*``, ...)."""
    return bool(_TEST_PATH.search(path))


# =========================================================================== the change


@dataclass(slots=True)
class FileChange:
    """One file of a change, located in the repository as it is."""

    path: str
    #: "modified", "added", "deleted" or "renamed".
    status: str
    #: Changed lines of the file as it is in the repository, sorted inclusive ranges
    #: (removals in a tree that holds the new side mark the lines around them). Empty when
    #: the file is not in the repository (a deletion that was applied, or an addition that
    #: was not).
    lines: list[tuple[int, int]] = field(default_factory=list)
    #: Texts of the added and removed lines.
    added: list[str] = field(default_factory=list)
    removed: list[str] = field(default_factory=list)
    #: Whether the repository holds the new side of the change (else the old side).
    applied: bool = True
    old_path: str | None = None
    #: Names of the changed units (filled by :func:`select_impact`).
    units: list[str] = field(default_factory=list)

    @property
    def in_tree(self) -> bool:
        return bool(self.lines)

    def to_json(self) -> dict[str, Any]:
        return {
            "path": self.path,
            "status": self.status,
            "lines": [list(r) for r in self.lines],
            "applied": self.applied,
            "units": list(self.units),
        }


def diff_since(repo: str | Path, since: str) -> tuple[str, list[str]]:
    """``(diff, untracked)``: the working tree of ``repo`` against revision ``since``.

    The diff covers committed, staged and unstaged changes (``git diff REV``, paths
    relative to ``repo``); ``untracked`` lists new files git does not track yet (not
    ignored), which the diff leaves out.

    Raises:
        ChangeError: ``repo`` is not in a git work tree, or ``since`` is not a revision.
    """
    root = Path(repo)
    inside = run_git(root, "rev-parse", "--is-inside-work-tree")
    if inside.returncode != 0 or inside.stdout.strip() != b"true":
        raise ChangeError(f"{root} is not a git work tree; --since needs a git repository")
    if since.startswith("-"):  # never let a revision be read as an option
        raise ChangeError(f"revision {since!r} is not valid: it must not start with '-'")
    verified = run_git(root, "rev-parse", "--verify", "--quiet", f"{since}^{{commit}}")
    if verified.returncode != 0:
        raise ChangeError(f"unknown revision {since!r} in {root} (see `git log --oneline`)")
    commit = verified.stdout.decode().strip()
    diff = run_git(
        root,
        "-c", "core.quotepath=false",
        "diff", "--no-color", "--no-ext-diff", "--no-textconv", "--relative", "-M",
        commit, "--",
    )  # fmt: skip
    untracked = run_git(root, "ls-files", "--others", "--exclude-standard", "-z", "--", ".")
    for result in (diff, untracked):
        if result.returncode != 0:
            detail = result.stderr.decode(errors="replace").strip()
            raise ChangeError(f"git failed in {root}: {detail}")
    names = [p for p in untracked.stdout.decode(errors="replace").split("\0") if p]
    return diff.stdout.decode("utf-8", errors="replace"), sorted(names)


def _parse_diff(text: str) -> list[PatchedFile]:
    from unidiff import PatchSet
    from unidiff.errors import UnidiffParseError

    try:
        return list(PatchSet(text))
    except UnidiffParseError as exc:
        raise ChangeError(f"the diff cannot be read: {exc}") from None


def _strip_path(raw: str) -> list[str]:
    """Repository paths a diff's file name may stand for: as given, then without its first
    component (``a/x.py``, ``b/x.py`` or any other prefix, as ``patch -p1`` reads it)."""
    raw = raw.strip().split("\t", 1)[0]
    if len(raw) > 1 and raw[0] == raw[-1] == '"':  # git quotes unusual names
        raw = raw[1:-1]
    if not raw:
        return []
    if "/" not in raw:
        return [raw]
    stripped = raw.split("/", 1)[1]
    # git's a/ and b/ prefixes: the stripped name is the likelier one.
    return [stripped, raw] if raw.startswith(("a/", "b/")) else [raw, stripped]


def _lines_of(text: str) -> list[str]:
    return [line.rstrip("\r") for line in text.split("\n")]


def _find_block(lines: Sequence[str], block: Sequence[str], expected: int) -> int | None:
    """0-based position of ``block`` in ``lines``, the one nearest ``expected``."""
    n, m = len(lines), len(block)
    expected = min(max(expected, 0), n)
    if m == 0:
        return expected
    first = block[0]
    for delta in range(n + 1):
        for pos in (expected - delta, expected + delta) if delta else (expected,):
            if 0 <= pos <= n - m and lines[pos] == first and list(lines[pos : pos + m]) == block:
                return pos
        if expected - delta < 0 and expected + delta > n - m:
            break
    return None


def _hunk_lines(patched: PatchedFile, lines: Sequence[str], new_side: bool) -> set[int] | None:
    """Changed line numbers of ``lines`` (1-based) if every hunk matches that side, else None.

    On the side the tree holds, the lines of the other side (removals when the tree is the
    new side) are not there: the lines on both sides of where they were are marked.
    """
    mine, other = ("+", "-") if new_side else ("-", "+")
    changed: set[int] = set()
    n = len(lines)
    for hunk in patched:
        block: list[str] = []
        marks: list[tuple[str, int]] = []  # ("line", index in block) or ("gap", index)
        kinds = [line.line_type for line in hunk]
        for i, line in enumerate(hunk):
            kind = kinds[i]
            if kind == " " or kind == mine:
                if kind == mine:
                    marks.append(("line", len(block)))
                block.append(line.value.rstrip("\n").rstrip("\r"))
            elif kind == other:
                # A replacement marks its lines on this side; a pure removal (or insertion)
                # marks the lines around where it was.
                run = _run_around(kinds, i, other)
                if mine not in run:
                    marks.append(("gap", len(block)))
        start, length = (
            (hunk.target_start, hunk.target_length)
            if new_side
            else (hunk.source_start, hunk.source_length)
        )
        expected = start - 1 if length else start
        pos = _find_block(lines, block, expected)
        if pos is None:
            return None
        for what, i in marks:
            if what == "line":
                changed.add(pos + i + 1)
            else:  # between block lines i-1 and i
                changed.update(x for x in (pos + i, pos + i + 1) if 1 <= x <= n)
    return changed


def _run_around(kinds: Sequence[str], i: int, other: str) -> set[str]:
    """Line types just before and after the run of ``other`` lines around position ``i``."""
    start = stop = i
    while start > 0 and kinds[start - 1] == other:
        start -= 1
    while stop < len(kinds) - 1 and kinds[stop + 1] == other:
        stop += 1
    return {kinds[start - 1] if start > 0 else "", kinds[stop + 1] if stop + 1 < len(kinds) else ""}


def _ranges(numbers: Iterable[int]) -> list[tuple[int, int]]:
    out: list[tuple[int, int]] = []
    for x in sorted(set(numbers)):
        if out and x == out[-1][1] + 1:
            out[-1] = (out[-1][0], x)
        else:
            out.append((x, x))
    return out


def locate_changes(
    repo: str | Path, diff: str, *, untracked: Sequence[str] = (), applied: bool | None = None
) -> list[FileChange]:
    """The files of a unified ``diff`` and their changed lines in ``repo`` as it is.

    Each file's hunks are matched against the file (at their line numbers, else at the
    nearest place they match, as ``patch`` does): against the new side first (the change
    is in the tree), then the old side (the tree is before the change). ``applied`` forces
    one side. ``untracked`` files are whole-file additions.

    Raises:
        ChangeError: the diff cannot be read or has no file in it, names a file that is
            not in ``repo``, or a hunk matches neither side of its file.
    """
    root = Path(repo)
    patched_files = _parse_diff(diff) if diff.strip() else []
    if diff.strip() and not patched_files:
        raise ChangeError("the diff has no file changes in it (is it a unified diff?)")
    changes: list[FileChange] = []
    for patched in patched_files:
        changes.append(_locate_file(root, patched, applied))
    for path in untracked:
        try:
            text = (root / path).read_text(encoding="utf-8", errors="replace")
        except OSError:
            continue
        lines = split_lines(text)
        if lines:
            changes.append(
                FileChange(path, "added", [(1, len(lines))], [x.rstrip("\n") for x in lines])
            )
    return changes


def _locate_file(root: Path, patched: PatchedFile, applied: bool | None) -> FileChange:
    source, target = patched.source_file or "", patched.target_file or ""
    added_file = patched.is_added_file or source == "/dev/null"
    removed_file = patched.is_removed_file or target == "/dev/null"
    old_names = [] if added_file else _strip_path(source)
    new_names = [] if removed_file else _strip_path(target)
    status = (
        "added"
        if added_file
        else "deleted"
        if removed_file
        else "renamed"
        if old_names and new_names and set(old_names).isdisjoint(new_names)
        else "modified"
    )
    added = [line.value.rstrip("\n") for hunk in patched for line in hunk if line.is_added]
    removed = [line.value.rstrip("\n") for hunk in patched for line in hunk if line.is_removed]
    display = (new_names or old_names or [target or source])[0]
    sides = [True, False] if applied is None else [applied]
    for new_side in sides:
        names = new_names if new_side else old_names
        path = next((p for p in names if (root / p).is_file()), None)
        if path is None:
            continue
        if patched.is_binary_file:
            return FileChange(path, status, [], added, removed, new_side)
        try:
            text = (root / path).read_text(encoding="utf-8", errors="replace")
        except OSError:
            continue
        lines = _lines_of(text)
        if lines and lines[-1] == "":
            lines.pop()
        changed = _hunk_lines(patched, lines, new_side)
        if changed is not None:
            old = old_names[0] if status == "renamed" and old_names else None
            return FileChange(path, status, _ranges(changed), added, removed, new_side, old)
    # Not in the tree on either side: fine for a file the change adds (the tree is before
    # it) or deletes (the tree is after it); anything else does not belong to this tree.
    if (
        added_file
        and (applied is None or applied is False)
        and not any((root / p).exists() for p in new_names)
    ):
        return FileChange(display, status, [], added, removed, applied=False)
    if (
        removed_file
        and (applied is None or applied)
        and not any((root / p).exists() for p in old_names)
    ):
        return FileChange(display, status, [], added, removed, applied=True)
    if not any((root / p).is_file() for p in [*new_names, *old_names]):
        raise ChangeError(f"the diff changes {display}, which is not a file in {root}")
    header = str(next(iter(patched), "")).split("\n", 1)[0] if len(patched) else ""
    raise ChangeError(
        f"the diff does not apply to {display} in {root}: hunk {header.strip()} matches the "
        "file neither before nor after the change"
    )


# =========================================================================== the graph


@dataclass(frozen=True, slots=True)
class _Target:
    """A changed definition whose callers, tests and users are wanted."""

    name: str  # qualified: parse_header, Header.parse, TIMEOUT
    short: str
    file: int
    unit: int | None  # global unit number; None for module-level names and removed defs
    kind: str  # function, method, class, name, removed

    @property
    def top_level(self) -> bool:
        return "." not in self.name

    @property
    def owner(self) -> str:
        return self.name.rsplit(".", 1)[0] if "." in self.name else ""


# References and class bases of recently seen file versions (by suffix and content hash), so
# repeated selections in one process (a service, a benchmark) skip the store round trips.
_REFS_MEMORY: OrderedDict[str, FileReferences | None] = OrderedDict()
_REFS_MEMORY_SIZE = 2000
_BASES_MEMORY: OrderedDict[str, dict[str, frozenset[str]]] = OrderedDict()
_BASES_MEMORY_SIZE = 50_000


class _Graph:
    """Per-file references and import edges of an index, computed on demand."""

    def __init__(self, index: RepoIndex, files: dict[str, SourceFile], store: ContextStore):
        self.index = index
        self.files = files
        self.store = store
        self.position = index.position
        self._refs: dict[int, FileReferences | None] = {}
        self._importers: dict[int, list[int]] | None = None
        self._imports: dict[int, list[int]] = {}
        self.parsed = 0

    def units(self, f: int) -> list[Unit]:
        return self.index.structures[f].units

    def unit(self, k: int) -> Unit:
        return self.index.unit(k)[1]

    def refs(self, f: int) -> FileReferences | None:
        """The references of file ``f``: from this run, recent runs, the store, or parsed."""
        if f in self._refs:
            return self._refs[f]
        path = self.index.paths[f]
        memory_key = f"{path.rsplit('.', 1)[-1]}:{self.index.hashes[f]}"
        if memory_key in _REFS_MEMORY:
            _REFS_MEMORY.move_to_end(memory_key)
            refs = _REFS_MEMORY[memory_key]
        else:
            key = self.store.make_key("impact-refs", REFS_VERSION, memory_key)
            cached = self.store.get(key)
            if isinstance(cached, FileReferences) or cached == "none":
                refs = cached if isinstance(cached, FileReferences) else None
            else:
                source = self.files.get(path)
                try:
                    text = source.read_text() if source is not None else ""
                except OSError:
                    text = ""
                refs = file_references(path, text)
                self.parsed += 1
                self.store.set(key, refs if refs is not None else "none")
            _REFS_MEMORY[memory_key] = refs
            while len(_REFS_MEMORY) > _REFS_MEMORY_SIZE:
                _REFS_MEMORY.popitem(last=False)
        self._refs[f] = refs
        return refs

    def class_bases(self, f: int) -> dict[str, frozenset[str]]:
        """Top-level classes of file ``f`` -> the names their headers use (their bases)."""
        key = f"{self.index.paths[f].rsplit('.', 1)[-1]}:{self.index.hashes[f]}"
        found = _BASES_MEMORY.get(key)
        if found is None:
            found = {}
            refs = self.refs(f)
            for unit in self.units(f) if refs is not None else []:
                if unit.kind == "class" and "." not in unit.name:
                    start, end = _header(self.index, f, unit)
                    found[unit.name] = frozenset(
                        r.name
                        for r in refs.refs  # type: ignore[union-attr]
                        if start <= r.line <= end and r.kind in ("name", "attr")
                    )
            _BASES_MEMORY[key] = found
            while len(_BASES_MEMORY) > _BASES_MEMORY_SIZE:
                _BASES_MEMORY.popitem(last=False)
        return found

    def imports(self, f: int) -> list[int]:
        if f not in self._imports:
            self._imports[f] = imported_files(self.index, f)
        return self._imports[f]

    def importers(self, f: int) -> list[int]:
        if self._importers is None:
            self._importers = {}
            for g in range(self.index.n_files):
                for t in self.imports(g):
                    self._importers.setdefault(t, []).append(g)
        return self._importers.get(f, [])

    def module_file(self, module: str, from_file: int, *, exact: bool) -> int | None:
        """The file of ``module`` as imported from ``from_file``; with ``exact``, only when
        the module itself is a file (not a name inside one)."""
        f = resolve_module(self.index, module, from_file)
        if f is None or not exact:
            return f
        name = module_name(self.index.paths[f]) or ""
        wanted = module.lstrip(".").split(".")
        return f if name.split(".")[-len(wanted) :] == wanted else None

    def enclosing(self, f: int, line: int) -> int | None:
        """Global number of the innermost unit of file ``f`` that contains ``line``."""
        best: tuple[int, int] | None = None
        found: int | None = None
        base = self.index.file_units(f).start
        for local, unit in enumerate(self.units(f)):
            if unit.start_line <= line <= unit.end_line:
                key = (_KIND_RANK.get(unit.kind, 4), unit.n_lines)
                if best is None or key < best:
                    best, found = key, base + local
        return found

    def defs_named(self, short: str) -> set[int]:
        """Unit numbers of every function, method or class whose (short) name is ``short``."""
        return {
            k
            for k in self.index.definitions.get(short, ())
            if self.unit(k).name.rsplit(".", 1)[-1] == short
        }

    def def_in(self, f: int, name: str) -> int | None:
        """The unit of file ``f`` that defines ``name`` (``parse``, ``Header.parse``)."""
        base = self.index.file_units(f).start
        for local, unit in enumerate(self.units(f)):
            if unit.name == name and unit.kind in _DEF_KINDS:
                return base + local
        return None

    def reexports(self, package_file: int, f: int) -> bool:
        return f in self.imports(package_file)


def _header(index: RepoIndex, f: int, unit: Unit) -> tuple[int, int]:
    """Lines of a definition's signature (decorators, header, first docstring line)."""
    end = unit.start_line
    skeleton = index.structures[f].skeleton
    for start, stop in skeleton:
        if start <= unit.start_line <= stop:
            end = stop
            break
    for start, stop in skeleton:
        if start == end + 1:
            end = stop
            break
    return unit.start_line, max(unit.start_line, min(end, unit.end_line))


def _display(path: str) -> str:
    return PurePosixPath(path).name


# =========================================================================== the selection


@dataclass(slots=True)
class ImpactItem(SelectionItem):
    """A delivered piece of change-impact context; ``why`` says what puts it there."""

    def to_json(self) -> dict[str, Any]:
        out = SelectionItem.to_json(self)
        out["why"] = self.why
        return out


@dataclass(slots=True)
class ImpactSelection(Selection):
    """The context of a change: :class:`~agentrt.context.select.Selection` whose items are
    :class:`ImpactItem`, plus the change's files (``changes``)."""

    changes: list[FileChange] = field(default_factory=list)

    def to_json(self) -> dict[str, Any]:
        """``Selection.to_json()`` (items with a ``why`` each) plus ``changes``: per file,
        ``{path, status, lines, applied, units}``."""
        out = Selection.to_json(self)
        out["changes"] = [c.to_json() for c in self.changes]
        return out

    def to_markdown(self) -> str:
        """One ``## path:start-end (kind) — why`` header and fenced block per item."""
        return _render([(_packed(i), i.why) for i in self.items])


def _render(items: Iterable[tuple[PackedItem, str]]) -> str:
    out = []
    for item, why in items:
        text = render_item(item)
        if why:
            header, rest = text.split("\n", 1)
            text = f"{header} — {why}\n{rest}"
        out.append(text)
    return "".join(out)


#: A reason: a label and its subject, e.g. ("caller of", "parse_header"). Reasons of one
#: item with the same label are listed together: "caller of parse_header, Header.parse".
Reason = tuple[str, str]


class _Candidates:
    """Candidates with their reasons; the same lines offered twice keep the best score."""

    def __init__(self) -> None:
        self._first: list[tuple[tuple[int, ...], Candidate]] = []
        self.rest: dict[tuple[str, str, int, int], Candidate] = {}
        self.reasons: dict[tuple[str, str, int, int], dict[Reason, float]] = {}

    def add(
        self, path: str, kind: str, score: float, why: Reason, start: int = 1, end: int = 0,
        *, first: tuple[int, ...] | None = None,
    ) -> None:  # fmt: skip
        """Offer lines ``start..end`` of ``path`` as ``kind``; ``first``: a hunk, taken
        before everything else in the order of this key."""
        key = (path, kind, start, end)
        candidate = Candidate(path, kind, score, start, end)  # type: ignore[arg-type]
        if first is not None:
            self._first.append((first, candidate))
        else:
            old = self.rest.get(key)
            if old is None or old.score < score:
                self.rest[key] = candidate
        reasons = self.reasons.setdefault(key, {})
        reasons[why] = max(reasons.get(why, 0.0), score)

    @property
    def first(self) -> list[Candidate]:
        return [c for _, c in sorted(self._first, key=lambda pair: pair[0])]

    def paths(self) -> set[str]:
        return {c.path for _, c in self._first} | {key[0] for key in self.rest}

    def why(self, item: PackedItem, n_lines: int) -> str:
        """The reasons of the candidates whose lines ``item`` delivers, best first."""
        return format_reasons(self.reasons_of(item, n_lines))

    def reasons_of(self, item: PackedItem, n_lines: int) -> dict[Reason, float]:
        """The reasons (with their best scores) of the candidates whose lines ``item``
        delivers."""
        visible = _visible(item, n_lines)
        found: dict[Reason, float] = {}
        for (path, kind, start, end), reasons in self.reasons.items():
            if path != item.path:
                continue
            if kind == "skeleton":
                hit = item.kind in ("skeleton", "file")
            else:
                stop = end or n_lines
                hit = any(a <= stop and start <= b for a, b in visible)
            if hit:
                for why, score in reasons.items():
                    found[why] = max(found.get(why, 0.0), score)
        return found


def format_reasons(reasons: dict[Reason, float]) -> str:
    """``changed: parse_header; caller of parse_header, Header.parse (+2 more)``: labels
    by their best score, subjects by score, at most MAX_REASONS of each (empty subjects are
    not listed)."""
    groups: dict[str, dict[str, float]] = {}
    for (label, subject), score in reasons.items():
        group = groups.setdefault(label, {})
        group[subject] = max(group.get(subject, 0.0), score)
    ordered = sorted(groups.items(), key=lambda item: (-max(item[1].values()), item[0]))
    parts = []
    for label, subjects in ordered[:MAX_REASONS]:
        names = sorted((n for n in subjects if n), key=lambda name: (-subjects[name], name))
        # A reason without a subject (lines the header already names) is its label alone.
        parts.append(f"{label} {capped(names, MAX_REASONS)}" if names else label.rstrip(":"))
    if len(ordered) > MAX_REASONS:
        parts.append(f"+{len(ordered) - MAX_REASONS} more")
    return "; ".join(parts)


_ELIDED = re.compile(r"^\s*\.\.\.  # lines (\d+)-(\d+) elided$", re.M)


def _visible(item: PackedItem, n_lines: int) -> list[tuple[int, int]]:
    """Line ranges ``item`` shows (a skeleton's are what its elision markers leave)."""
    if item.kind != "skeleton":
        return [(item.start_line, item.end_line)]
    out: list[tuple[int, int]] = []
    cursor = 1
    for match in _ELIDED.finditer(item.text):
        start, end = int(match.group(1)), int(match.group(2))
        if start > cursor:
            out.append((cursor, start - 1))
        cursor = end + 1
    if cursor <= n_lines:
        out.append((cursor, n_lines))
    return out


def select_impact(
    repo: str | Path,
    budget: int,
    *,
    since: str | None = None,
    diff: str | None = None,
    encoding: str | None = None,
    store: ContextStore | None = None,
    include: Sequence[str] | None = None,
    related: bool = True,
    paths: Sequence[str] | None = None,
    history: bool | CoChanges = True,
) -> ImpactSelection:
    """Select what a reviewer of a change in ``repo`` must see, within ``budget`` tokens.

    Args:
        repo: the repository's root directory.
        budget: hard limit, in tokens of ``encoding``, of the delivered Markdown.
        since: a git revision: the change is the working tree (committed, staged,
            unstaged and untracked files) against it.
        diff: a unified diff (``git diff``, ``diff -u``); the repository may hold either
            side of it. Exactly one of ``since`` and ``diff``.
        encoding: tiktoken encoding name (default ``$AGENTRT_ENCODING`` or cl100k_base).
        store: cache for indexes and references (default: the store under
            ``$AGENTRT_HOME``).
        include: gitignore-style patterns restricting which files are considered.
        related: fill what the change's structural neighbours leave of the budget with the
            code most related to it by content (``related by content``).
        paths: review only these files of the change (repository-relative): the other
            changed files' hunks are left out, and so are their callers, tests, importers
            and callees, and the other changed files are not offered as related by content
            (they may still appear as callers, tests or importers of these). A chunked
            review reviews each group of files with the impact of that group alone.
        history: offer the files that past commits changed together with the changed files
            (``co-changed with``, :mod:`agentrt.context.history`): True reads ``repo``'s git
            history (before ``since`` when it is given; none outside a git work tree or in a
            shallow clone), False selects without it, a
            :class:`~agentrt.context.history.CoChanges` is used as given.

    Raises:
        ValueError: ``budget`` is not positive, or not exactly one of ``since``/``diff``.
        ChangeError: the change cannot be read (see :class:`ChangeError`).
        agentrt.context.sources.SourceError: ``repo`` is not a directory.
    """
    started = time.perf_counter()
    if budget <= 0:
        raise ValueError(f"budget must be a positive number of tokens, got {budget}")
    if (since is None) == (diff is None):
        raise ValueError("give exactly one of since (a git revision) or diff (a unified diff)")
    encoding = encoding or default_encoding_name()
    get_encoding(encoding)
    if store is None:
        from agentrt.context.store import ContextStore, default_store_dir

        store = ContextStore(default_store_dir())
    counter = TokenCounter(encoding, store)
    scan = scan_repository(repo, include=include, extra_ignores=() if include else DEFAULT_EXCLUDES)
    root = scan.root
    if since is not None:
        text, untracked = diff_since(root, since)
        scanned = {s.path for s in scan.files}
        changes = locate_changes(
            root, text, untracked=[p for p in untracked if p in scanned], applied=True
        )
        message = None if changes else f"no changes since {since}"
    else:
        if not (diff or "").strip():
            raise ChangeError("the diff is empty")
        changes = locate_changes(root, diff or "")
        message = None
    others: set[str] = set()
    if paths is not None:
        wanted = set(paths)
        others = {c.path for c in changes if c.path not in wanted}
        changes = [c for c in changes if c.path in wanted]
    index_stats = IndexStats(skipped=len(scan.skipped))
    index = build_index(root, scan, store, index_stats)
    files = {f.path: f for f in scan.files}
    graph = _Graph(index, files, store)
    candidates = _Candidates()
    # The past of the change: its own commits (since..HEAD) are not history.
    cochanges = history_of(root, history, store, since or "HEAD")
    counts = _collect(graph, changes, candidates, related, others, cochanges)
    counterparts = _counterparts(graph, changes, files)
    # As select packs: each candidate with its copies in amalgamations as twins, and the
    # hunks again after them (covered by then) so that their copies follow them.
    packing = prepare_packing(
        index, [*candidates.first, *candidates.rest.values()], counterparts, files, counter, store
    )
    packed = _pack(
        packing.views,
        candidates,
        budget,
        counter,
        rest=packing.candidates,
        annotate=packing.annotate,
    )
    items = [
        ImpactItem(
            p.path, p.start_line, p.end_line, p.kind, p.score, counter.count(p.text), p.text, why
        )
        for p, why in packed
    ]
    stats = {
        "files": len(scan.files),
        "index": index_stats.as_dict(),
        "parsed_for_references": graph.parsed,
        **counts,
        "counterparts": len(counterparts),
        "history_commits": cochanges.n_commits if cochanges is not None else 0,
        "seconds": round(time.perf_counter() - started, 4),
    }
    return ImpactSelection(
        budget=budget,
        tokens=sum(item.tokens for item in items),
        encoding=encoding,
        items=items,  # type: ignore[arg-type]
        repo=str(root),
        stats=stats,
        message=message or scan.message,
        changes=changes,
    )


#: About what the header of one delivered hunk piece costs (``## path:a-b (span) — changed:
#: name`` and the code fence), for :func:`change_sizes`.
HUNK_HEADER_TOKENS = 24


def change_sizes(
    repo: str | Path, *, since: str, paths: Sequence[str] | None = None
) -> dict[str, int]:
    """About how many tokens each changed file's hunks take when :func:`select_impact`
    delivers them (changed lines, ``HUNK_PADDING`` lines around them, a header per piece of
    ``HUNK_PIECE_LINES`` lines): the part of a review's prompt that a file of the change
    costs before any of its neighbours. Files of the change that are not in the working
    tree (deleted) count 0; ``paths`` limits the answer to those files.

    Raises:
        ChangeError: as :func:`diff_since`.
    """
    from agentrt.context.tokens import count_batch

    root = Path(repo).resolve()
    text, untracked = diff_since(root, since)
    changes = locate_changes(root, text, untracked=untracked, applied=True)
    wanted = set(paths) if paths is not None else None
    sizes: dict[str, int] = {}
    texts: list[str] = []
    owners: list[str] = []
    for change in changes:
        if wanted is not None and change.path not in wanted:
            continue
        sizes.setdefault(change.path, 0)
        if not change.lines:
            continue
        try:
            lines = split_lines((root / change.path).read_text(encoding="utf-8", errors="replace"))
        except OSError:
            continue
        for a, b in change.lines:
            start, end = max(1, a - HUNK_PADDING), min(len(lines), b + HUNK_PADDING)
            pieces = -(-(end - start + 1) // HUNK_PIECE_LINES)
            sizes[change.path] += pieces * HUNK_HEADER_TOKENS
            texts.append("".join(lines[start - 1 : end]))
            owners.append(change.path)
    for path, n in zip(owners, count_batch(texts), strict=True):
        sizes[path] += n
    return sizes


def _pack(
    views: dict[str, FileView],
    candidates: _Candidates,
    budget: int,
    counter: TokenCounter,
    *,
    rest: Sequence[Candidate] | None = None,
    annotate: Callable[[list[PackedItem]], list[PackedItem]] | None = None,
) -> list[tuple[PackedItem, str]]:
    """Pack, then make room for the whys in the headers until the Markdown fits. ``rest``:
    the candidates' ``rest`` as they are packed (with their twins attached), ``annotate``:
    the packer's notes (twins, counterparts), shown after the reasons."""
    rest = list(candidates.rest.values()) if rest is None else list(rest)

    def why(item: PackedItem) -> str:
        reasons = candidates.why(item, views[item.path].n_lines)
        return "; ".join(part for part in (reasons, item.note) if part)

    target = budget
    annotated: list[tuple[PackedItem, str]] = []
    for _attempt in range(5):
        packed = pack(views, rest, target, counter.count, first=candidates.first, annotate=annotate)
        annotated = [(replace(p, note=""), why(p)) for p in packed]
        over = counter.count(_render(annotated)) - budget
        if over <= 0:
            return annotated
        target -= over + max(8, budget // 100)
        if target <= 0:
            break
    while annotated and counter.count(_render(annotated)) > budget:
        annotated.remove(min(annotated, key=lambda pair: pair[0].score))
    return annotated


# --------------------------------------------------------------------------- candidates


def _collect(
    graph: _Graph,
    changes: list[FileChange],
    out: _Candidates,
    related: bool,
    others: set[str],
    history: CoChanges | None = None,
) -> dict[str, int]:
    targets: list[_Target] = []
    changed_units: set[int] = set()
    changed_files: list[int] = []
    call_names: list[tuple[int, Ref]] = []  # (file, ref) of calls made by changed lines
    for order, change in enumerate(changes):
        f = graph.position.get(change.path)
        if f is None:
            continue  # not indexed (binary, too large, excluded) or not in the tree
        changed_files.append(f)
        refs = graph.refs(f)
        file_targets = _changed(graph, f, order, change, refs, out, changed_units)
        targets.extend(file_targets)
        change.units = sorted({t.name for t in file_targets if t.kind != "removed"})
        if refs is not None:
            in_change = [r for r in refs.refs if r.is_call and _in_ranges(r.line, change.lines)]
            call_names.extend((f, r) for r in in_change)
        if not change.applied:  # the new code is not in the tree: read its calls from the diff
            for line in change.added:
                for match in _CALL.finditer(line):
                    receiver, name = match.group(1) or "", match.group(2)
                    kind = "attr_call" if receiver else "call"
                    call_names.append((f, Ref(name, 0, kind, receiver)))  # type: ignore[arg-type]
    counts = neighbours(graph, targets, changed_units, changed_files, out)
    callees = _callees(graph, call_names, changed_units, out)
    ranking = _change_ranking(graph, changes) if changes and (related or history) else None
    if ranking is not None:  # an amalgamation's copies come with their sources (twins)
        ranking = shadow_amalgamations(graph.index, ranking)
    cochanged = (
        _cochanged(graph, changed_files, history, ranking, out, others)
        if history is not None and ranking is not None
        else 0
    )
    related_count = _related(graph, ranking, out, others) if related and ranking is not None else 0
    return {
        "changed_files": len(changes),
        "changed_units": len(changed_units),
        **counts,
        "callees": callees,
        "cochanged": cochanged,
        "related": related_count,
    }


def neighbours(
    graph: _Graph,
    targets: list[_Target],
    units: set[int],
    files: list[int],
    out: _Candidates,
) -> dict[str, int]:
    """The code around ``targets`` (definitions: changed ones, or the units an issue is
    about) offered to ``out``: their callers and users, overrides, tests, and the importers of
    ``files`` (their modules); uses inside ``units`` (the targets' own code) are not callers.
    How many of each were found."""
    return {
        "caller_sites": _callers(graph, targets, units, out),
        "overrides": _overrides(graph, targets, out),
        "test_files": _tests(graph, files, targets, out),
        "importers": _importers(graph, files, targets, out),
    }


def unit_targets(graph: _Graph, units: Iterable[int]) -> list[_Target]:
    """The definitions (functions, methods, classes) among ``units`` (global unit numbers),
    as targets of :func:`neighbours`."""
    targets = []
    for k in units:
        f, unit = int(graph.index.unit_file[k]), graph.unit(k)
        if unit.kind in _DEF_KINDS:
            targets.append(_Target(unit.name, unit.name.rsplit(".", 1)[-1], f, k, unit.kind))
    return targets


def _in_ranges(line: int, ranges: Sequence[tuple[int, int]]) -> bool:
    return any(a <= line <= b for a, b in ranges)


def _changed(
    graph: _Graph,
    f: int,
    order: int,
    change: FileChange,
    refs: FileReferences | None,
    out: _Candidates,
    changed_units: set[int],
) -> list[_Target]:
    """Candidates for the changed lines of file ``f`` (the ``order``-th of the change); the
    changed definitions."""
    index = graph.index
    path = index.paths[f]
    structure = index.structures[f]
    n = structure.n_lines
    base = index.file_units(f).start
    targets: dict[str, _Target] = {}
    assigned = refs.assigned if refs is not None else []
    for a, b in change.lines:
        for local, unit in enumerate(structure.units):
            if unit.end_line < a or unit.start_line > b:
                continue
            k = base + local
            if unit.kind in _DEF_KINDS:
                # (A class's unit is its header: a change in a method changes the method.)
                changed_units.add(k)
                short = unit.name.rsplit(".", 1)[-1]
                targets.setdefault(unit.name, _Target(unit.name, short, f, k, unit.kind))
                why = ("changed:", unit.name)
                hs, he = _header(index, f, unit)
                out.add(path, "span", SCORE_ENCLOSING_HEADER, why, hs, he)
                out.add(path, "span", SCORE_ENCLOSING, why, unit.start_line, unit.end_line)
            elif unit.kind == "block":
                changed_units.add(k)
                names = [name for name, s, e in assigned if s <= b and a <= e]
                for name in names:
                    targets.setdefault(name, _Target(name, name, f, None, "name"))
                reasons = [("changed:", name) for name in names] or [("changed lines", f"{a}-{b}")]
                for why in reasons:
                    out.add(path, "span", SCORE_ENCLOSING, why, unit.start_line, unit.end_line)
            elif unit.kind == "window" and not structure.parsed:
                out.add(path, "span", SCORE_ENCLOSING * 0.9, ("changed lines", f"{a}-{b}"),
                        unit.start_line, unit.end_line)  # fmt: skip
    # Definitions the change removes (their callers may now be broken).
    for line in change.removed if change.applied else []:
        match = _DEF_LINE.match(line)
        if match and match.group(1) not in targets:
            name = match.group(1)
            targets[name] = _Target(name, name, f, None, "removed")
    code = 1 if PurePosixPath(path).suffix in _PROSE_SUFFIXES else 0
    for a, b in change.lines:
        start, end = max(1, a - HUNK_PADDING), min(n, b + HUNK_PADDING)
        for number, piece in enumerate(range(start, end + 1, HUNK_PIECE_LINES)):
            stop = min(end, piece + HUNK_PIECE_LINES - 1)
            names = _names_in(structure.units, assigned, piece, stop, a, b)
            lines = f"{max(a, piece)}-{min(b, stop)}" if a <= stop and piece <= b else f"{a}-{b}"
            reasons = [("changed:", name) for name in names] or [("changed lines", lines)]
            for why in reasons:
                out.add(path, "span", SCORE_HUNK, why, piece, stop,
                        first=(number, code, order, piece))  # fmt: skip
    if structure.skeleton:
        out.add(path, "skeleton", SCORE_CHANGED_SKELETON, ("outline of changed", _display(path)))
    return list(targets.values())


def _names_in(
    units: Sequence[Unit],
    assigned: Sequence[tuple[str, int, int]],
    start: int,
    end: int,
    a: int,
    b: int,
) -> list[str]:
    """Names of the definitions (and module-level assignments) that lines ``start..end``
    show of the change at lines ``a..b``."""
    lo, hi = max(start, a), min(end, b)
    if lo > hi:  # a piece of padding only
        lo, hi = start, end
    names = [
        u.name for u in units if u.kind in _DEF_KINDS and u.start_line <= hi and lo <= u.end_line
    ]
    names += [name for name, s, e in assigned if s <= hi and lo <= e]
    return list(dict.fromkeys(names))


def _match(
    graph: _Graph,
    g: int,
    refs: FileReferences,
    ref: Ref,
    by_short: dict[str, list[_Target]],
) -> tuple[list[_Target], bool]:
    """The changed definitions ``ref`` (in file ``g``) resolves to, and whether it resolved
    through names alone (an attribute whose name only one definition has)."""
    if not ref.receiver and ref.kind in ("call", "name"):
        binding = refs.bindings.get(ref.name)
        if binding is not None:
            return _through_binding(graph, g, binding, ref.name, by_short), False
        wanted = by_short.get(ref.name, [])
        local = [t for t in wanted if t.top_level and t.file == g]
        if local:
            return local, False
        for module in refs.star_imports:
            source = graph.module_file(module, g, exact=True)
            found = [t for t in wanted if t.top_level and t.file == source]
            if found:
                return found, False
        return [], False
    wanted = by_short.get(ref.name, [])
    if not wanted:
        return [], False
    head, _, rest = ref.receiver.partition(".")
    if head in ("self", "cls", "super()") and not rest:
        owner = ""
        k = graph.enclosing(g, ref.line)
        if k is not None:
            owner = graph.unit(k).name.rsplit(".", 1)[0] if "." in graph.unit(k).name else ""
        found = [t for t in wanted if t.kind == "method" and t.file == g and t.owner == owner]
        if found and head != "super()":
            return found, False
    elif head:
        binding = refs.bindings.get(head)
        if binding is not None:
            module = binding.module if binding.name is None else f"{binding.module}.{binding.name}"
            module = f"{module}.{rest}" if rest else module
            source = graph.module_file(module, g, exact=True)
            if source is not None:
                return [t for t in wanted if t.top_level and t.file == source], False
            if binding.name is not None and not rest:  # an imported class: Header.parse
                owner_file = graph.module_file(binding.module, g, exact=False)
                found = [
                    t
                    for t in wanted
                    if t.owner == binding.name and (t.file == owner_file or _unique_owner(graph, t))
                ]
                if found:
                    return found, False
        elif not rest:
            found = [t for t in wanted if t.owner == head and t.file == g]
            if found:
                return found, False
    # By name: the attribute's name is defined exactly once in the repository.
    found = []
    if ref.name in _BUILTIN_ATTRS:
        return found, True
    for t in wanted:
        if t.kind == "name":
            continue
        defs = graph.defs_named(t.short)
        if (t.unit is not None and defs == {t.unit}) or (t.kind == "removed" and not defs):
            found.append(t)
    return found, True


def _unique_owner(graph: _Graph, target: _Target) -> bool:
    return target.unit is not None and graph.defs_named(target.short) == {target.unit}


def _through_binding(
    graph: _Graph, g: int, binding: Binding, local: str, by_short: dict[str, list[_Target]]
) -> list[_Target]:
    if binding.name is None:
        return []  # the name is a module
    wanted = by_short.get(binding.name, [])
    if not wanted:
        return []
    if graph.module_file(f"{binding.module}.{binding.name}", g, exact=True) is not None:
        return []  # `from pkg import module`: the name is a module
    source = graph.module_file(binding.module, g, exact=False)
    found = []
    for t in wanted:
        if not t.top_level:
            continue
        if t.file == source or (source is not None and graph.reexports(source, t.file)):
            found.append(t)
        elif t.unit is not None and {
            k for k in graph.defs_named(t.short) if "." not in graph.unit(k).name
        } == {t.unit}:
            found.append(t)  # re-exported further away, but defined only there
    return found


def _callers(
    graph: _Graph, targets: list[_Target], changed_units: set[int], out: _Candidates
) -> int:
    """Caller and user candidates of ``targets`` (tests among them as tests); their count."""
    if not targets:
        return 0
    index = graph.index
    by_short: dict[str, list[_Target]] = {}
    for t in targets:
        by_short.setdefault(t.short, []).append(t)
    mentioning = files_mentioning(index, by_short)
    files = sorted(mentioning) if mentioning is not None else range(index.n_files)
    # (file, unit) -> reason -> (score, lines)
    sites: dict[tuple[int, int | None], dict[Reason, tuple[float, list[int]]]] = {}
    for g in files:
        refs = graph.refs(g)
        if refs is None:
            continue
        test = is_test_path(index.paths[g])
        for ref in refs.refs:
            name = ref.name
            if not ref.receiver and ref.kind in ("call", "name"):
                binding = refs.bindings.get(name)
                if binding is not None and binding.name:
                    name = binding.name
            if name not in by_short:
                continue
            found, by_name = _match(graph, g, refs, ref, by_short)
            if not found:
                continue
            k = graph.enclosing(g, ref.line)
            if k is not None and k in changed_units:
                continue
            for t in found:
                verb = "test of" if test else "caller of" if ref.is_call else "uses"
                if test:
                    score = SCORE_TEST if ref.is_call else SCORE_TEST * 0.9
                elif ref.is_call:
                    score = SCORE_CALLER_BY_NAME if by_name else SCORE_CALLER
                else:
                    score = SCORE_USER_BY_NAME if by_name else SCORE_USER
                reasons = sites.setdefault((g, k), {})
                why = (verb, t.name)
                old = reasons.get(why)
                lines = [*(old[1] if old else []), ref.line]
                reasons[why] = (max(score, old[0] if old else 0.0), lines)
    ranked = sorted(sites.items(), key=lambda item: -max(score for score, _ in item[1].values()))[
        :MAX_CALLER_SITES
    ]
    for (g, k), reasons in ranked:
        path = index.paths[g]
        for why, (score, lines) in reasons.items():
            for start, end in _site_spans(graph, g, k, lines):
                out.add(path, "span", score, why, start, end)
    return len(ranked)


def _site_spans(graph: _Graph, g: int, k: int | None, lines: list[int]) -> list[tuple[int, int]]:
    n = graph.index.structures[g].n_lines
    if k is None:
        return [(max(1, x - CALL_WINDOW // 2), min(n, x + CALL_WINDOW // 2)) for x in lines]
    unit = graph.unit(k)
    if unit.n_lines <= CALLER_WHOLE_LINES:
        return [(unit.start_line, unit.end_line)]
    spans = [_header(graph.index, g, unit)]
    for x in sorted(set(lines)):
        spans.append((max(unit.start_line, x - CALL_WINDOW), min(unit.end_line, x + CALL_WINDOW)))
    return spans


def _tests(
    graph: _Graph, changed_files: list[int], targets: list[_Target], out: _Candidates
) -> int:
    """Test files of the changed modules: files named after them (``test_<module>.py``)
    first, then test files that import them; test functions of the former that use a
    changed name are offered as spans."""
    index = graph.index
    shorts = {t.short for t in targets}
    mentioning = files_mentioning(index, shorts) if shorts else set()
    found: set[int] = set()
    for f in changed_files:
        path = index.paths[f]
        if is_test_path(path):
            continue
        label = ("test of", _display(path))
        for g in _named_tests(index, path):
            if g in changed_files or g in found:
                continue
            found.add(g)
            out.add(index.paths[g], "skeleton", SCORE_NAMED_TEST, label)
            refs = graph.refs(g)
            for ref in refs.refs if refs is not None else []:
                if ref.name in shorts:
                    k = graph.enclosing(g, ref.line)
                    for start, end in _site_spans(graph, g, k, [ref.line]):
                        out.add(index.paths[g], "span", SCORE_CALLER_BY_NAME,
                                ("test of", ref.name), start, end)  # fmt: skip
        importing = [
            g
            for g in graph.importers(f)
            if is_test_path(index.paths[g]) and g not in changed_files and g not in found
        ]
        for g in sorted(importing, key=lambda g: _closeness(index, f, g, mentioning))[
            :MAX_TEST_FILES
        ]:
            found.add(g)
            out.add(index.paths[g], "skeleton", SCORE_TEST_FILE, label)
    return len(found)


def _closeness(
    index: RepoIndex, f: int, g: int, mentioning: set[int] | None
) -> tuple[int, int, str]:
    """Sort key of a neighbour ``g`` of file ``f``: files that mention a changed name
    first, then those sharing more of ``f``'s directories, then by path."""
    parts, other = index.paths[f].split("/"), index.paths[g].split("/")
    n = 0
    while n < min(len(parts), len(other)) and parts[n] == other[n]:
        n += 1
    uses = mentioning is None or g in mentioning
    return (0 if uses else 1, -n, index.paths[g])


def _named_tests(index: RepoIndex, path: str) -> list[int]:
    """Test files named after the module ``path`` (``test_<module>.py``,
    ``<module>_test.py``, ``<module>.test.js`` ...), the ones nearest to it."""
    pure = PurePosixPath(path)
    stem, suffix = pure.stem, pure.suffix
    if stem == "__init__":
        stem = pure.parent.name
    if not stem:
        return []
    names = [f"test_{stem}{suffix}", f"{stem}_test{suffix}", f"{stem}.test{suffix}",
             f"{stem}.spec{suffix}", f"tests_{stem}{suffix}"]  # fmt: skip
    matches = [g for name in names for g in index.basenames.get(name, [])]
    if not matches:
        return []
    parts = pure.parent.parts

    def shared(g: int) -> int:
        other = PurePosixPath(index.paths[g]).parent.parts
        n = 0
        while n < min(len(parts), len(other)) and parts[n] == other[n]:
            n += 1
        return n

    best = max(shared(g) for g in matches)
    return [g for g in matches if shared(g) == best][:3]


def _importers(
    graph: _Graph, changed_files: list[int], targets: list[_Target], out: _Candidates
) -> int:
    """Skeletons of the files that import a changed module (tests are :func:`_tests`')."""
    index = graph.index
    mentioning = files_mentioning(index, {t.short for t in targets}) if targets else set()
    count = 0
    for f in changed_files:
        importers = [
            g
            for g in graph.importers(f)
            if g not in changed_files and not is_test_path(index.paths[g])
        ]
        chosen = sorted(importers, key=lambda g: _closeness(index, f, g, mentioning))
        for g in chosen[:MAX_IMPORTERS]:
            out.add(index.paths[g], "skeleton", SCORE_IMPORTER,
                    ("importer of", _display(index.paths[f])))  # fmt: skip
            count += 1
    return count


def _overrides(graph: _Graph, targets: list[_Target], out: _Candidates) -> int:
    """Overrides of the changed methods in subclasses (found by base-class name, through
    up to MAX_SUBCLASSES subclasses); their count."""
    methods = [t for t in targets if t.kind == "method" and t.owner and "." not in t.owner]
    if not methods:
        return 0
    index = graph.index
    descendants: dict[str, list[tuple[int, str]]] = {}
    for owner in {t.owner for t in methods}:
        found: list[tuple[int, str]] = []
        queue, seen = [owner], {owner}
        while queue and len(found) < MAX_SUBCLASSES:
            base = queue.pop(0)
            for g, name in _subclasses(graph, base):
                if name not in seen:
                    seen.add(name)
                    found.append((g, name))
                    queue.append(name)
        descendants[owner] = found
    count = 0
    for t in methods:
        for g, name in descendants[t.owner]:
            k = graph.def_in(g, f"{name}.{t.short}")
            if k is None:
                continue
            count += 1
            for start, end in _site_spans(graph, g, k, []):
                out.add(index.paths[g], "span", SCORE_OVERRIDE, ("override of", t.name),
                        start, end)  # fmt: skip
    return count


def _subclasses(graph: _Graph, base: str) -> list[tuple[int, str]]:
    """Top-level classes that name ``base`` in their header (``class D(base):``)."""
    out: list[tuple[int, str]] = []
    for g in sorted(files_mentioning(graph.index, [base]) or ()):
        for name, bases in graph.class_bases(g).items():
            if base in bases and name != base:
                out.append((g, name))
    return out


def _change_ranking(graph: _Graph, changes: list[FileChange]) -> Ranking:
    """The index ranked for the change's content: its paths and changed units' names, then
    its changed lines, as the query (:func:`agentrt.context.relevance.rank`)."""
    from agentrt.context.relevance import rank

    title = " ".join([c.path for c in changes] + [u for c in changes for u in c.units])
    body = "\n".join(line for c in changes for line in (*c.removed, *c.added))
    return rank(graph.index, f"{title}\n{body}"[:MAX_RELATED_QUERY])


def _related(graph: _Graph, ranking: Ranking, out: _Candidates, others: set[str]) -> int:
    """The code most related to the change by content (``ranking``), at scaled-down scores;
    not the ``others`` (files of the change left to another group's review: they are alike,
    and reviewed there)."""
    from agentrt.context.select import DEFAULT_THRESHOLD, _candidates

    candidates = _candidates(
        graph.index, ranking.file_scores, ranking.unit_scores, ranking.overview, DEFAULT_THRESHOLD
    )
    candidates = [c for c in candidates if c.path not in others]
    for c in candidates:
        out.add(c.path, c.kind, c.score * SCORE_RELATED, ("related", "by content"),
                c.start_line, c.end_line)  # fmt: skip
    return len(candidates)


def _cochanged(
    graph: _Graph,
    changed_files: list[int],
    history: CoChanges,
    ranking: Ranking,
    out: _Candidates,
    others: set[str],
) -> int:
    """The COCHANGED_FILES indexed files most coupled by past commits with a changed file
    (:meth:`CoChanges.related`, per changed file), not the changed files nor the ``others``:
    each file's best unit for the change's content (``ranking``) and its outline. How many
    files were offered."""
    index = graph.index
    changed = {index.paths[f] for f in changed_files}
    best: dict[str, tuple[float, str]] = {}
    for seed in list(dict.fromkeys(index.paths[f] for f in changed_files))[:COCHANGE_SEEDS]:
        for path, coupling in history.related({seed: 1.0}).items():
            if coupling < COCHANGE_MIN or path in changed or path in others:
                continue
            if path in index.position and coupling > best.get(path, (0.0, ""))[0]:
                best[path] = (coupling, seed)
    chosen = sorted(best.items(), key=lambda item: (-item[1][0], item[0]))[:COCHANGED_FILES]
    for path, (_, seed) in chosen:
        g = index.position[path]
        why = ("co-changed with", _display(seed))
        units = index.file_units(g)
        scores = ranking.unit_scores[units.start : units.stop]
        k = units.start + int(scores.argmax()) if len(units) else None
        if k is not None and ranking.unit_scores[k] > 0:
            unit = graph.unit(k)
            out.add(path, "span", SCORE_COCHANGED_UNIT, why,
                    unit.start_line, unit.end_line)  # fmt: skip
        if index.structures[g].skeleton:
            out.add(path, "skeleton", SCORE_COCHANGED_SKELETON, why)
    return len(chosen)


def _counterparts(
    graph: _Graph, changes: list[FileChange], files: dict[str, SourceFile]
) -> list[Counterpart]:
    """The C/C++ counterparts of the changed units (:mod:`agentrt.context.counterparts`):
    the declaration of a changed definition in its header (``declaration of Foo::bar``),
    the definition of a changed prototype (``definition of bar``); worth
    COUNTERPART_WEIGHT times SCORE_COUNTERPART_OF."""
    index = graph.index
    scores = np.zeros(len(index.unit_file), dtype=np.float64)
    for change in changes:
        f = graph.position.get(change.path)
        if f is None or index.structures[f].language not in ("c", "cpp"):
            continue
        base = index.file_units(f).start
        for local, unit in enumerate(index.structures[f].units):
            if any(unit.start_line <= b and a <= unit.end_line for a, b in change.lines):
                scores[base + local] = SCORE_COUNTERPART_OF
    if not scores.any():
        return []
    read = _reader(files)
    found = find_counterparts(index, scores, SCORE_COUNTERPART_OF, read)
    score = SCORE_COUNTERPART_OF * COUNTERPART_WEIGHT
    return found + find_definitions(index, np.flatnonzero(scores).tolist(), score, read)


def _callees(
    graph: _Graph, calls: list[tuple[int, Ref]], changed_units: set[int], out: _Candidates
) -> int:
    """Signatures of the definitions the changed lines call (``callee:``), and of the few
    definitions an attribute call may reach when its name has several (``may call``)."""
    index = graph.index
    seen: set[int] = set()
    for f, ref in calls:
        if len(seen) >= MAX_CALLEES:
            break
        found, certain = _definition(graph, f, ref)
        for k in found:
            if k in changed_units or k in seen:
                continue
            seen.add(k)
            g = int(index.unit_file[k])
            unit = graph.unit(k)
            start, end = _header(index, g, unit)
            if certain:
                out.add(index.paths[g], "span", SCORE_CALLEE, ("callee:", unit.name), start, end)
            else:
                out.add(index.paths[g], "span", SCORE_MAYBE_CALLEE, ("may call", unit.name),
                        start, end)  # fmt: skip
    return len(seen)


def _definition(graph: _Graph, f: int, ref: Ref) -> tuple[list[int], bool]:
    """The units a call in file ``f`` calls (a class's ``__init__`` for a class), and whether
    that is certain; an attribute call whose name has a few definitions may call any."""
    refs = graph.refs(f)
    bindings = refs.bindings if refs is not None else {}
    k: int | None = None
    if not ref.receiver:
        binding = bindings.get(ref.name)
        if binding is not None and binding.name:
            source = graph.module_file(binding.module, f, exact=False)
            if source is not None:
                k = graph.def_in(source, binding.name)
            if k is None:
                k = _unique(graph, binding.name, top_level=True)
        elif binding is None:
            k = graph.def_in(f, ref.name)
        return ([_init(graph, k)] if k is not None else []), True
    head, _, rest = ref.receiver.partition(".")
    if head in ("self", "cls") and not rest and ref.line:
        enclosing = graph.enclosing(f, ref.line)
        if enclosing is not None and "." in graph.unit(enclosing).name:
            owner = graph.unit(enclosing).name.rsplit(".", 1)[0]
            k = graph.def_in(f, f"{owner}.{ref.name}")
    elif head in bindings:
        binding = bindings[head]
        module = binding.module if binding.name is None else f"{binding.module}.{binding.name}"
        module = f"{module}.{rest}" if rest else module
        source = graph.module_file(module, f, exact=True)
        if source is not None:
            k = graph.def_in(source, ref.name)
        elif binding.name is not None and not rest:
            source = graph.module_file(binding.module, f, exact=False)
            if source is not None:
                k = graph.def_in(source, f"{binding.name}.{ref.name}")
    elif not rest and head:
        k = graph.def_in(f, f"{head}.{ref.name}")
    if k is not None:
        return [_init(graph, k)], True
    if ref.name in _BUILTIN_ATTRS:
        return [], False
    defs = sorted(graph.defs_named(ref.name))
    if len(defs) == 1:
        return [_init(graph, defs[0])], True
    return (defs if len(defs) <= MAX_MAYBE_CALLEES else []), False


def _init(graph: _Graph, k: int) -> int:
    """A class's ``__init__`` (what a call of the class runs), else ``k``."""
    if graph.unit(k).kind != "class":
        return k
    g = int(graph.index.unit_file[k])
    init = graph.def_in(g, f"{graph.unit(k).name}.__init__")
    return init if init is not None else k


def _unique(graph: _Graph, name: str, *, top_level: bool) -> int | None:
    defs = graph.defs_named(name)
    if top_level:
        defs = {k for k in defs if "." not in graph.unit(k).name}
    return next(iter(defs)) if len(defs) == 1 else None
