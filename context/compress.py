"""Compression: the structure of a file, and renderings of it at several granularities.

A file can be delivered as

* **full text**;
* a **skeleton**: imports, class and function signatures (with decorators), the first line
  of docstrings and the first line of other top-level statements; everything else is
  replaced by one marker line per hidden block, ``...  # lines 40-88 elided``;
* **spans**: the full text of selected code units (functions, methods, class headers,
  module-level blocks, or fixed line windows of non-Python text), with their line numbers.

All three are renderings of one idea: a set of *visible* lines; :func:`render_lines` prints
visible lines verbatim and collapses each run of hidden lines into a marker.

:func:`chunks` splits any text into pieces of at most N tokens at natural boundaries.
"""

from __future__ import annotations

import ast
import re
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Literal, get_args

if TYPE_CHECKING:
    import tiktoken

__all__ = [
    "FileStructure",
    "Unit",
    "analyze",
    "chunks",
    "render_lines",
    "skeleton",
    "split_lines",
]

UnitKind = Literal[
    "function",
    "method",
    "class",
    "struct",
    "enum",
    "interface",
    "trait",
    "impl",
    "namespace",
    "module",
    "type",
    "macro",
    "variable",
    # A C or C++ prototype (a function declared, not defined: ``int f(void);``, a method
    # declared in its class); named like the definition it announces.
    "declaration",
    "block",
    "window",
]
#: Kinds of units that define a name (a function, a type…): the targets of mentions and
#: references. Blocks and windows are pieces of text; namespaces and modules only qualify
#: the names inside them.
DEFINITION_KINDS: frozenset[str] = frozenset(get_args(UnitKind)) - {
    "namespace",
    "module",
    "block",
    "window",
}

#: Non-Python text is cut into windows of this many lines, overlapping by WINDOW_OVERLAP.
WINDOW_LINES = 40
WINDOW_OVERLAP = 10
#: Python functions longer than this also get line windows, so a hit deep inside a long
#: function can be delivered without the whole function.
LONG_UNIT_LINES = 80
#: Module-level statements between definitions are grouped into blocks of at most this size.
BLOCK_LINES = 40


#: Paths of tests, in the conventions of the languages agentrt parses. Ranking weighs them
#: less (``relevance.path_prior``), and outside Python they keep line windows: in C++ trees
#: tests are a large share of the parse time and fixes are made in the code, not the tests
#: (recall: python -m bench.context_selection --set polyglot).
TEST_PATH = re.compile(
    r"(^|/)(tests?|testing|__tests__)(/|$)|(^|/)test_[^/]*$|_tests?\.py$|conftest\.py$"
    # Other languages' conventions: x_test.go, x_test.cc, x.test.ts, x.spec.js, XTest.java.
    r"|_(test|unittest)\.(go|c|cc|cpp|cxx|rs)$|[.\-](test|spec)\.[cm]?[jt]sx?$"
    r"|[a-z0-9]Tests?\.(java|kt|cs)$"
)


@dataclass(frozen=True, slots=True)
class Unit:
    """A code unit: a contiguous, 1-based, inclusive line range with a name."""

    name: str
    kind: UnitKind
    start_line: int
    end_line: int

    @property
    def n_lines(self) -> int:
        return self.end_line - self.start_line + 1

    def __reduce__(self) -> tuple[type[Unit], tuple[str, UnitKind, int, int]]:
        # An index holds tens of thousands of units; the dataclass default (state dict via
        # ``fields()`` per object) made unpickling a stored index several times slower.
        return (Unit, (self.name, self.kind, self.start_line, self.end_line))


@dataclass(slots=True)
class FileStructure:
    """What :func:`analyze` learns about one file; cheap to pickle and cache."""

    n_lines: int
    units: list[Unit] = field(default_factory=list)
    #: Lines of the skeleton, as sorted, disjoint, inclusive ranges.
    skeleton: list[tuple[int, int]] = field(default_factory=list)
    #: What the file imports, as written: Python module names (absolute, or relative with
    #: leading dots); for other languages see :data:`agentrt.context.syntax.IMPORT_FORMS`.
    imports: list[str] = field(default_factory=list)
    #: Qualified names of the file's definition units (``Class.method``, ``ns.Type.fn``).
    definitions: list[str] = field(default_factory=list)
    #: Parsed by a grammar (Python's ``ast`` or tree-sitter), not cut into line windows.
    parsed: bool = False
    #: Language whose grammar parsed the file ("python", "go", "cpp"…; "" if none did).
    language: str = ""
    #: The package or namespace the file declares (Go, Java, Kotlin, C#, PHP), or the
    #: module a manifest names (``go.mod``'s module path, ``package.json``'s and
    #: ``Cargo.toml``'s package name); "" if none.
    module: str = ""
    #: The line of each entry of :attr:`imports` (1-based; its first one when repeated).
    import_lines: list[int] = field(default_factory=list)
    #: Imports that are not plain load-time imports, by how they are made: ``"type"``
    #: (TypeScript ``import type``: erased when compiled), ``"dynamic"`` (JavaScript and
    #: TypeScript ``import()``, or ``require()`` on an indented line: inside a function or
    #: block). An import written both ways counts as its plainest.
    import_kinds: dict[str, str] = field(default_factory=dict)

    def add_import(self, imported: str, line: int) -> None:
        """Record an import and its line (:attr:`imports` and :attr:`import_lines` stay
        parallel)."""
        self.imports.append(imported)
        self.import_lines.append(line)

    def __reduce__(self) -> tuple[type[FileStructure], tuple[object, ...]]:
        # As Unit's: the slots dataclass default goes through ``fields()`` per object.
        return (
            FileStructure,
            (
                self.n_lines,
                self.units,
                self.skeleton,
                self.imports,
                self.definitions,
                self.parsed,
                self.language,
                self.module,
                self.import_lines,
                self.import_kinds,
            ),
        )


# --------------------------------------------------------------------------- rendering


def split_lines(text: str) -> list[str]:
    """Lines of ``text`` with their line ends, split at ``\\n`` only.

    ``str.splitlines`` also splits at form feeds and other separators that Python's parser
    (and every editor's line numbering) does not count, which would shift line numbers.
    """
    if not text:
        return []
    lines = text.split("\n")
    last = lines.pop()
    out = [line + "\n" for line in lines]
    if last:
        out.append(last)
    return out


def _marker(lines: Sequence[str], start: int, end: int) -> str:
    """One line standing for hidden lines ``start..end`` (1-based), indented like them."""
    indent = ""
    for i in range(start - 1, end):
        text = lines[i]
        if text.strip():
            indent = text[: len(text) - len(text.lstrip())]
            break
    return f"{indent}...  # lines {start}-{end} elided\n"


def render_lines(
    lines: Sequence[str], visible: Iterable[tuple[int, int]], *, first: int = 1, last: int = 0
) -> str:
    """Render ``lines`` (with line ends) showing only the ``visible`` ranges.

    Each run of hidden lines between ``first`` and ``last`` (default: the whole file) becomes
    one marker line; a run of only blank lines is shown as is, since it costs about as much
    as its marker.
    """
    last = last or len(lines)
    out: list[str] = []
    cursor = first
    for start, end in merge_ranges(visible):
        start, end = max(start, first), min(end, last)
        if start > end:
            continue
        if start > cursor:
            out.append(_hidden(lines, cursor, start - 1))
        out.append("".join(lines[start - 1 : end]))
        cursor = end + 1
    if cursor <= last:
        out.append(_hidden(lines, cursor, last))
    text = "".join(out)
    return text if not text or text.endswith("\n") else text + "\n"


def _hidden(lines: Sequence[str], start: int, end: int) -> str:
    block = lines[start - 1 : end]
    if all(not line.strip() for line in block):
        return "".join(block)
    # Blank lines around the hidden content stay visible: they separate definitions, and
    # the marker then names exactly the lines it stands for.
    leading = trailing = 0
    while not block[leading].strip():
        leading += 1
    while not block[-1 - trailing].strip():
        trailing += 1
    return (
        "".join(block[:leading])
        + _marker(lines, start + leading, end - trailing)
        + "".join(block[len(block) - trailing :])
    )


def merge_ranges(ranges: Iterable[tuple[int, int]]) -> list[tuple[int, int]]:
    """Sort and merge overlapping or touching inclusive ranges."""
    merged: list[tuple[int, int]] = []
    for start, end in sorted(ranges):
        if merged and start <= merged[-1][1] + 1:
            if end > merged[-1][1]:
                merged[-1] = (merged[-1][0], end)
        else:
            merged.append((start, end))
    return merged


def skeleton(text: str, structure: FileStructure | None = None, path: str = "") -> str:
    """The skeleton rendering of ``text`` (see the module docstring)."""
    structure = structure or analyze(path, text)
    return render_lines(split_lines(text), structure.skeleton)


# --------------------------------------------------------------------------- analysis


_LONE_CR = re.compile(r"\r(?!\n)")


def analyze(path: str, text: str) -> FileStructure:
    """Units, skeleton lines, imports and definitions of one file.

    Python files are parsed with :mod:`ast`; source files of the languages in
    :data:`agentrt.context.syntax.LANGUAGES` with their tree-sitter grammars, their tests
    excepted (see :data:`TEST_PATH`); other text (and Python that does not parse) is cut
    into overlapping line windows with a heuristic skeleton.
    """
    if path.endswith((".py", ".pyi")):
        try:
            # ast counts a lone carriage return as a line end, split_lines does not: blank
            # it (one character for one) so both number the lines alike.
            tree = ast.parse(_LONE_CR.sub(" ", text) if "\r" in text else text)
        except (SyntaxError, ValueError, RecursionError, MemoryError):
            pass
        else:
            return _analyze_python(tree, text)
    elif not TEST_PATH.search(path):
        from agentrt.context.syntax import analyze_syntax

        try:
            structure = analyze_syntax(path, text)
        except (RecursionError, MemoryError, ValueError):
            structure = None
        if structure is not None:
            return structure
    return _analyze_text(path, text)


def line_windows(start: int, end: int, kind: UnitKind, name: str) -> list[Unit]:
    units: list[Unit] = []
    step = WINDOW_LINES - WINDOW_OVERLAP
    line = start
    while True:
        stop = min(end, line + WINDOW_LINES - 1)
        units.append(Unit(f"{name}:{line}", kind, line, stop))
        if stop >= end:
            return units
        line += step


_TEXT_DEF = re.compile(
    r"^\s*(?:export\s+|public\s+|private\s+|protected\s+|static\s+|async\s+|pub\s+)*"
    r"(?:def|function|class|interface|struct|enum|fn|func|impl|trait|module|package|type)\b"
    r"|^\s*(?:#include|import|from\s+\S+\s+import)\b"
)
_RST_UNDERLINE = re.compile(r"^([=\-~^\"'`#*+])\1{2,}\s*$")


def _analyze_text(path: str, text: str) -> FileStructure:
    lines = split_lines(text)
    n = len(lines)
    structure = FileStructure(n_lines=n)
    if n == 0:
        return structure
    structure.units = line_windows(1, n, "window", path)
    keep: list[tuple[int, int]] = [(1, min(n, 3))]
    is_markdown = path.endswith((".md", ".markdown"))
    for i, line in enumerate(lines, start=1):
        if (
            (is_markdown and line.startswith("#"))
            or _TEXT_DEF.match(line)
            or (i > 1 and _RST_UNDERLINE.match(line) and lines[i - 2].strip())
        ):
            keep.append((max(1, i - 1), i) if _RST_UNDERLINE.match(line) else (i, i))
    structure.skeleton = merge_ranges(keep)
    manifest = _MANIFESTS.get(path.rsplit("/", 1)[-1])
    if manifest is not None:
        match = manifest.search(text)
        structure.module = match.group(1) if match else ""
    return structure


#: Manifests that name the module or package of their folder (imports resolve against it).
_MANIFESTS = {
    "go.mod": re.compile(r"^module\s+\"?([^\s\"]+)", re.M),
    "package.json": re.compile(r'\A\s*\{[^{]*?"name"\s*:\s*"([^"]+)"', re.S),
    "Cargo.toml": re.compile(r"^\[package\][^\[]*?^name\s*=\s*\"([^\"]+)\"", re.M | re.S),
}


def _body_start(node: ast.AST) -> int:
    """First line of the body of a def/class (the header may span several lines)."""
    body = node.body  # type: ignore[attr-defined]
    return body[0].lineno if body else node.end_lineno  # type: ignore[attr-defined]


def _docstring_node(node: ast.AST) -> ast.Expr | None:
    body = getattr(node, "body", None)
    if (
        body
        and isinstance(body[0], ast.Expr)
        and isinstance(body[0].value, ast.Constant)
        and isinstance(body[0].value.value, str)
    ):
        return body[0]
    return None


def _start_with_decorators(node: ast.AST) -> int:
    decorators = getattr(node, "decorator_list", [])
    return min([node.lineno, *(d.lineno for d in decorators)])  # type: ignore[attr-defined]


_NESTED_IMPORT = re.compile(
    r"^[ \t]+(?:from[ \t]+(\.*[\w.]*)[ \t]+import\b|import[ \t]+([\w.]+))", re.M
)
_DEFS = (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)


def _analyze_python(tree: ast.Module, text: str) -> FileStructure:
    n = text.count("\n") + (0 if text.endswith("\n") or not text else 1)
    structure = FileStructure(n_lines=n, parsed=True, language="python")
    keep: list[tuple[int, int]] = []
    units: list[Unit] = []

    def keep_docstring(node: ast.AST) -> None:
        doc = _docstring_node(node)
        if doc is not None:
            keep.append((doc.lineno, doc.lineno))
            if doc.end_lineno and doc.end_lineno > doc.lineno:
                keep.append((doc.end_lineno, doc.end_lineno))

    def keep_statement(stmt: ast.stmt) -> None:
        """Top-level or class-level statements: short ones whole, long ones by first line."""
        end = stmt.end_lineno or stmt.lineno
        keep.append((stmt.lineno, end if end - stmt.lineno < 3 else stmt.lineno))

    def visit_def(node: ast.AST, prefix: str, in_class: bool) -> None:
        start = _start_with_decorators(node)
        end = node.end_lineno or node.lineno  # type: ignore[attr-defined]
        name = f"{prefix}{node.name}"  # type: ignore[attr-defined]
        body_start = _body_start(node)
        # Header: decorators and the (possibly multi-line) signature.
        header_end = max(start, body_start - 1) if body_start > node.lineno else node.lineno  # type: ignore[attr-defined]
        keep.append((start, header_end))
        keep_docstring(node)
        structure.definitions.append(name)
        if isinstance(node, ast.ClassDef):
            body = node.body
            first_def = next((s.lineno for s in body if isinstance(s, _DEFS)), None)
            header_unit_end = (
                end if first_def is None else max(header_end, _first_decorated(body) - 1)
            )
            units.append(Unit(name, "class", start, header_unit_end))
            for stmt in body:
                if isinstance(stmt, _DEFS):
                    visit_def(stmt, f"{name}.", in_class=True)
                elif not (stmt is body[0] and _docstring_node(node) is not None):
                    keep_statement(stmt)
        else:
            units.append(Unit(name, "method" if in_class else "function", start, end))
            if end - start + 1 > LONG_UNIT_LINES:
                units.extend(line_windows(body_start, end, "window", name))

    block: list[ast.stmt] = []

    def flush_block() -> None:
        if not block:
            return
        start, end = block[0].lineno, block[-1].end_lineno or block[-1].lineno
        if end - start + 1 <= BLOCK_LINES:
            units.append(Unit(f"<module>:{start}", "block", start, end))
        else:
            units.extend(line_windows(start, end, "block", "<module>"))
        block.clear()

    keep_docstring(tree)
    for stmt in tree.body:
        if isinstance(stmt, _DEFS):
            flush_block()
            visit_def(stmt, "", in_class=False)
            continue
        block.append(stmt)
        if isinstance(stmt, ast.Import):
            for alias in stmt.names:
                structure.add_import(alias.name, stmt.lineno)
        elif isinstance(stmt, ast.ImportFrom):
            base = "." * stmt.level + (stmt.module or "")
            structure.add_import(base, stmt.lineno)
            # "from pkg import module" imports a module as often as a name.
            for alias in stmt.names:
                if alias.name != "*":
                    name = f"{base}.{alias.name}" if stmt.module else base + alias.name
                    structure.add_import(name, stmt.lineno)
        if isinstance(stmt, ast.Expr) and stmt is tree.body[0] and _docstring_node(tree):
            continue
        keep_statement(stmt)
    flush_block()
    # Imports nested in functions and try blocks matter for the import graph too; a regex
    # finds them at a fraction of the cost of walking the whole tree.
    line, counted = 1, 0
    for match in _NESTED_IMPORT.finditer(text):
        line += text.count("\n", counted, match.start())
        counted = match.start()
        structure.add_import(match.group(1) or match.group(2), line)
    structure.units = units
    structure.skeleton = merge_ranges(keep)
    return structure


def _first_decorated(body: list[ast.stmt]) -> int:
    for stmt in body:
        if isinstance(stmt, _DEFS):
            return _start_with_decorators(stmt)
    return body[-1].end_lineno or body[-1].lineno


# --------------------------------------------------------------------------- chunking


def chunks(text: str, max_tokens: int, encoding: str | None = None) -> Iterator[str]:
    """Split ``text`` into consecutive pieces of at most ``max_tokens`` tokens each.

    Pieces end at natural boundaries when possible: first blank lines and top-level
    definitions (paragraphs), then line ends, then — for a single line longer than the
    limit — inside the line at token boundaries. ``"".join(chunks(text, n)) == text``.
    """
    from agentrt.context.tokens import count_tokens, get_encoding

    if max_tokens <= 0:
        raise ValueError(f"max_tokens must be positive, got {max_tokens}")
    if not text:
        return
    enc = get_encoding(encoding)

    def count(s: str) -> int:
        return count_tokens(s, encoding)

    current: list[str] = []
    current_tokens = 0

    for para in _paragraphs(text):
        para_tokens = count(para)
        if para_tokens > max_tokens:
            if current:
                yield "".join(current)
                current, current_tokens = [], 0
            yield from _split_lines(para, max_tokens, count, enc)
            continue
        if current and current_tokens + para_tokens > max_tokens:
            joined = "".join(current)
            yield joined
            current, current_tokens = [], 0
        current.append(para)
        # Token counts of concatenations are not additive; recount the joined text so the
        # promise "never over the limit" holds exactly.
        current_tokens = count("".join(current)) if len(current) > 1 else para_tokens
        if current_tokens > max_tokens:
            current.pop()
            yield "".join(current)
            current, current_tokens = [para], para_tokens
    if current:
        yield "".join(current)


_PARA_BREAK = re.compile(r"\n(?=\s*\n)|\n(?=(?:def|class|async def|@)\b)")


_DECORATORS_ONLY = re.compile(r"\n*(?:@[^\n]*\n(?:[ \t)][^\n]*\n)*)+$")


def _paragraphs(text: str) -> Iterator[str]:
    """Pieces of ``text`` ending at blank lines or before top-level definitions."""
    start = 0
    for match in _PARA_BREAK.finditer(text):
        end = match.end()
        if end > start:
            piece = text[start:end]
            if _DECORATORS_ONLY.match(piece):
                continue  # keep decorators with the definition they decorate
            yield piece
            start = end
    if start < len(text):
        yield text[start:]


def _split_lines(
    text: str, max_tokens: int, count: Callable[[str], int], enc: tiktoken.Encoding
) -> Iterator[str]:
    current = ""
    for line in text.splitlines(keepends=True):
        if count(line) > max_tokens:
            if current:
                yield current
                current = ""
            yield from _split_inside_line(line, max_tokens, count, enc)
            continue
        candidate = current + line
        if current and count(candidate) > max_tokens:
            yield current
            current = line
        else:
            current = candidate
    if current:
        yield current


def _split_inside_line(
    line: str, max_tokens: int, count: Callable[[str], int], enc: tiktoken.Encoding
) -> Iterator[str]:
    """Split one over-long line at token boundaries.

    The first ``max_tokens`` token ids of the rest of the line give a candidate piece
    (partial multi-byte characters dropped); re-tokenising a piece on its own can differ,
    so it is recounted and shrunk until it fits. A single character that alone needs more
    than ``max_tokens`` tokens (possible only for tiny limits) is emitted as is.
    """
    pos = 0
    window = max_tokens * 64 + 64  # no token is longer than this many characters
    while pos < len(line):
        rest = line[pos : pos + window]
        ids = enc.encode_ordinary(rest)
        if pos + window >= len(line) and len(ids) <= max_tokens:
            yield rest
            return
        length = len(enc.decode_bytes(ids[:max_tokens]).decode("utf-8", errors="ignore"))
        length = max(1, min(length, len(rest)))
        while length > 1 and count(rest[:length]) > max_tokens:
            length = max(1, min(length - 1, length * 7 // 8))
        yield rest[:length]
        pos += length
