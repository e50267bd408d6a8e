"""Public API and doc comments of the languages the context manager parses (not Python).

``documentation_generation`` documents Python from :mod:`ast`; every other language it reads
from the context manager's parse (:func:`agentrt.agents.builtin.common.load_context_index`:
the index ``context_gathering`` builds, so a ``code-analysis`` run parses each file once).
A unit of that parse (:class:`agentrt.context.compress.Unit`) starts at the doc comments and
attributes right above its definition, and carries its qualified name and kind; the file's
text gives the rest: the definition's header, its modifiers, its doc comment.

**Public API**, per language (test code is left out: ``is_test_path``, and each language's
conventions, :data:`agentrt.context.compress.TEST_PATH` — ``x_test.go``, ``src/test/java``,
``x.test.ts``, ``tests/``…; ``spec/`` and ``x_spec.rb`` for Ruby; ``testdata/``):

* **Go**: exported (capitalised) functions and types, and exported methods of exported
  types; not in ``internal/`` packages nor ``package main``.
* **Rust**: ``pub`` items (``pub(crate)`` and the like are not public), ``pub`` methods of
  inherent ``impl`` blocks, the members of a ``pub trait``; not ``#[doc(hidden)]`` items,
  nor trait implementations (the trait documents them). Library code only: files under a
  ``src/`` folder, not ``src/main.rs`` nor ``src/bin/``.
* **Java, C#**: ``public`` types and ``public`` members of public types (members of an
  interface are public unless ``private``).
* **Kotlin**: declarations without ``private``, ``internal`` or ``protected`` (public is
  Kotlin's default); **Swift**: ``public`` and ``open`` ones (and a public protocol's members).
* **JavaScript, TypeScript**: ``export``-ed declarations, the names an ``export { … }`` or
  ``export default name`` lists, what ``module.exports``/``exports.name`` assign (and the
  functions assigned to properties of an exported object: express's ``res.send = function``),
  and the members of exported classes and interfaces that are not ``private``,
  ``protected``, ``#private`` or ``_``-prefixed; a JSDoc ``@private``/``@internal``/
  ``@ignore``/``@hidden`` tag takes an object out.
* **C, C++**: the declarations in headers (``.h``, ``.hh``, ``.hpp``, ``.hxx``, ``.h++``):
  not ``static`` ones at namespace scope, nothing in a ``detail``/``details``/``internal``/
  ``impl`` or anonymous namespace, and in classes only ``public:`` members (``struct``'s
  default); read from the header's own braces and access labels, so a class the grammar
  misread still has its members in it. Sources (``.c``, ``.cpp``…) hold no public API;
  amalgamations (generated single headers) repeat their sources and are left out.
* **Ruby**: classes, modules and their methods but those after a bare ``private`` or
  ``protected`` (or declared ``private def``); **PHP**: functions, types, and methods that
  are not ``private`` or ``protected``.

Everywhere constructors (``Foo.Foo``, ``constructor``, ``init``, ``initialize``), destructors
and operators are left to their class (as Python's dunder methods), as are overrides
(``@Override``, ``override``: the overridden declaration documents them); macros and
variables are not objects.

**Signature**: the definition's header as written, up to its body (``{``, ``;``, the end of
the line where a line ends it), on one line with runs of spaces collapsed. **Summary**: the
first sentence of the doc comment, markers stripped (``///``, ``//!``, ``/** … */`` and its
leading ``*``, ``#``; Javadoc/JSDoc inline tags and C# XML tags unwrapped; the paragraph
ends at a blank line or an ``@tag``/``\\tag`` line). What counts as a **doc comment**: in Go,
C and C++ any comment right above the definition (godoc's rule, and C headers' habit of
documenting with plain comments); in Rust ``///`` or ``/** */``; in C# and Swift ``///`` or
``/** */``; in Java, Kotlin, JavaScript, TypeScript and PHP ``/** */``, which may be
separated from the definition by blank lines (as JSDoc reads it); in Ruby ``#`` lines.

**Module docs** exist in Go (the package comment, above ``package x`` in one file of the
package) and Rust (``//!`` at the top of the file): there the module counts as an object
(for Go once per package: in the file holding the package comment, else ``doc.go``, the
file named after the folder, or the first file). Elsewhere the module is not counted.
"""

from __future__ import annotations

import re
from bisect import bisect_left
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import PurePosixPath
from typing import TYPE_CHECKING

from agentrt.agents.builtin.common import is_minified, is_test_path

if TYPE_CHECKING:
    from agentrt.context.compress import FileStructure, Unit
    from agentrt.context.relevance import RepoIndex
    from agentrt.context.sources import SourceFile

__all__ = [
    "DeclaredObject",
    "FileApi",
    "LanguageSources",
    "doc_text",
    "document_languages",
    "file_api",
    "first_sentence",
    "is_test_code",
]

#: Unit kinds that are API objects, and the object kind they become.
OBJECT_KINDS = {
    "function": "function",
    "method": "method",
    "declaration": "function",
    "class": "class",
    "struct": "struct",
    "enum": "enum",
    "interface": "interface",
    "trait": "trait",
    "type": "type",
}
#: Unit kinds that hold members (their members' parents).
CONTAINER_KINDS = frozenset(
    {"class", "struct", "enum", "interface", "trait", "impl", "module", "namespace"}
)
#: C/C++ header suffixes: the files that declare a C or C++ library's public API.
HEADER_SUFFIXES = frozenset({".h", ".hh", ".hpp", ".hxx", ".h++"})
#: C++ namespaces whose contents are not public API (compared case-insensitively).
PRIVATE_NAMESPACES = frozenset({"detail", "details", "internal", "impl", "priv", "private"})
#: A summary is cut at this many characters.
MAX_SUMMARY = 300
#: A signature is cut at this many characters, its header read over at most this many lines.
MAX_SIGNATURE = 300
MAX_HEADER_LINES = 12

#: Languages whose doc comments are ``/** … */`` only (Javadoc, KDoc, JSDoc, PHPDoc).
_JAVADOC = frozenset({"java", "kotlin", "javascript", "typescript", "php"})
#: Languages where any comment right above a definition documents it.
_ANY_COMMENT = frozenset({"go", "c", "cpp"})
#: Languages with ``///`` doc comments (and ``/** */``).
_TRIPLE = frozenset({"rust", "csharp", "swift"})
#: Languages whose header ends with its line (no ``;``, and no ``{`` for some definitions).
_LINE_ENDED = frozenset({"go", "kotlin", "swift", "ruby"})
#: Languages whose modules have docs of their own, counted as one object.
MODULE_DOCS = frozenset({"go", "rust"})
#: Languages with ``@annotations`` or ``@decorators`` on lines of their own.
_ANNOTATED = frozenset({"java", "kotlin", "javascript", "typescript", "swift"})

_SPACES = re.compile(r"\s+")
_WORD = re.compile(r"\w")
_IDENT = re.compile(r"[A-Za-z_$][\w$]*")


@dataclass(frozen=True, slots=True)
class DeclaredObject:
    """A public object of a file: what :class:`documentation.ApiObject` is made from."""

    kind: str
    name: str
    line: int
    signature: str
    summary: str
    documented: bool


@dataclass(slots=True)
class FileApi:
    """The public API of one source file."""

    path: str
    language: str
    name: str
    objects: list[DeclaredObject]
    #: The module's own docs (Go package comment, Rust ``//!``): summary, whether present.
    summary: str = ""
    documented: bool = False
    #: Whether the module counts as an object (see the module docstring).
    counted: bool = False
    #: Rust: the modules the file declares ``pub mod name;`` (the others are private).
    public_modules: frozenset[str] = frozenset()


@dataclass(slots=True)
class LanguageSources:
    """What :func:`document_languages` made of the non-Python files."""

    files: list[FileApi] = field(default_factory=list)
    #: Paths whose API was read (with or without public objects).
    analysed: set[str] = field(default_factory=set)
    #: Code files of a parsed language left out -> why.
    excluded: dict[str, str] = field(default_factory=dict)


# --------------------------------------------------------------------------------------------
# Comments and attributes


def _block_start(lines: list[str], end: int) -> int | None:
    """The line opening the ``/* … */`` comment that closes on line ``end`` (None: none, or
    code before it on its line: a trailing comment of code, not a doc comment)."""
    for k in range(end, max(0, end - 400), -1):
        text = lines[k - 1]
        at = text.find("/*")
        if at >= 0:
            return k if not text[:at].strip() else None
    return None


def _attribute_end(lines: list[str], number: int, last: int, language: str) -> int | None:
    """The last line of the attribute or annotation starting on line ``number``
    (``#[derive(…)]``, ``[Obsolete]``, ``@Override``, ``@SuppressWarnings({…})``), None if
    the line does not start one or has code after it (``@Override public void f()``)."""
    text = lines[number - 1].strip()
    if language in ("rust", "php") and text.startswith("#"):
        match = re.match(r"#!?(?=\[)", text)
    elif language == "csharp":
        match = re.match(r"(?=\[)", text)
    elif language in _ANNOTATED:
        match = re.match(r"@[\w.]+\s*", text)
    else:
        return None
    if match is None:
        return None
    rest = text[match.end() :]
    if not rest.startswith(("(", "[")):
        return number if not rest.strip() else None
    depth = 0
    for n in range(number, min(last, number + 30) + 1):
        line = _code_part(lines[n - 1]).strip() if n > number else _code_part(rest)
        for i, char in enumerate(line):
            if char in "([":
                depth += 1
            elif char in ")]":
                depth -= 1
                if depth == 0:
                    return n if not line[i + 1 :].strip() else None
    return None


def _is_line_comment(text: str, language: str) -> bool:
    if language == "ruby":
        return text.startswith("#") and not text.startswith(("#!", "#{"))
    return text.startswith("//")


def _lead_start(lines: list[str], def_line: int, language: str) -> int:
    """First line of the comments and attributes right above ``def_line`` (``def_line``
    itself when there are none). A ``/** … */`` block may be separated from the definition
    by blank lines, unless it is the file's first text (a licence, the file's own docs)."""
    i = def_line - 1
    j = i
    while j >= 1 and not lines[j - 1].strip():
        j -= 1
    if j < i:  # blank lines between
        if j < 1 or language == "ruby" or not lines[j - 1].rstrip().endswith("*/"):
            return def_line
        k = _block_start(lines, j)
        if k is None or not lines[k - 1].lstrip().startswith(("/**", "/*!")):
            return def_line
        if not any(text.strip() for text in lines[: k - 1]):
            return def_line  # the file's opening comment
        return k
    while i >= 1:
        text = lines[i - 1].strip()
        if not text:
            break
        if text.endswith("*/") and language != "ruby":
            k = _block_start(lines, i)
            if k is None:
                break
            i = k - 1
        elif _is_line_comment(text, language) or _attribute_end(lines, i, i, language) == i:
            i -= 1
        else:
            break
    return i + 1


def _comment_blocks(
    lines: list[str], start: int, stop: int, language: str
) -> tuple[list[list[str]], list[str]]:
    """The comment blocks (runs of line comments, ``/* */`` blocks) between lines ``start``
    and ``stop - 1``, top down, and the other lines there (attributes), stripped."""
    blocks: list[list[str]] = []
    attributes: list[str] = []
    i = start
    while i < stop:
        text = lines[i - 1].strip()
        if not text:
            i += 1
        elif text.startswith("/*") and language != "ruby":
            j = i
            if "*/" not in text[2:]:
                j += 1
                while j < stop and "*/" not in lines[j - 1]:
                    j += 1
            j = min(j, stop - 1)
            blocks.append(lines[i - 1 : j])
            i = j + 1
        elif _is_line_comment(text, language):
            j = i
            while j + 1 < stop and _is_line_comment(lines[j].strip(), language):
                j += 1
            blocks.append(lines[i - 1 : j])
            i = j + 1
        else:
            attributes.append(text)
            i += 1
    return blocks, attributes


_GO_DIRECTIVE = re.compile(r"^\s*//(?:go:|nolint|lint:|export |line |extern |\s*\+build)")
_RUBY_MAGIC = re.compile(r"^\s*#\s*(?:frozen_string_literal|encoding|-\*-|rubocop:|typed:)")
_TOOL_COMMENT = re.compile(r"NOLINT|clang-format|IWYU pragma|cppcheck-suppress|eslint-|prettier-")
_BANNER = re.compile(r"^\s*/\*(?:\*{2,}|[=\-]{2,}|\s*[*=\-]{3,})")


def doc_text(block: list[str], language: str) -> str | None:
    """The text of a comment block if it is a doc comment in ``language`` (markers
    stripped, lines kept), else None."""
    first = block[0].lstrip()
    if first.startswith("/*"):
        javadoc = first.startswith("/**") and not first.startswith("/**/")
        if language in _JAVADOC or language in _TRIPLE:
            if not javadoc:
                return None
        elif language not in _ANY_COMMENT:
            return None
        if _BANNER.match(block[0]):
            return None  # a section banner documents the section, not what follows
        text = "\n".join(block).strip()
        text = re.sub(r"^/\*[*!]?", "", text)
        text = re.sub(r"\*+/\s*$", "", text)
        return "\n".join(re.sub(r"^\s*\*(?!/) ?", "", line) for line in text.split("\n"))
    if language == "ruby":
        kept = [ln for ln in block if not _RUBY_MAGIC.match(ln)]
        return "\n".join(re.sub(r"^\s*#+ ?", "", ln) for ln in kept) if kept else None
    if language in _JAVADOC:
        return None
    if language in _TRIPLE:
        block = [ln for ln in block if re.match(r"\s*///(?!/)", ln)]
    elif language == "go":
        block = [ln for ln in block if not _GO_DIRECTIVE.match(ln)]
    else:
        block = [ln for ln in block if not _TOOL_COMMENT.search(ln)]
    if not block:
        return None
    return "\n".join(re.sub(r"^\s*//[/!]?\s?", "", ln) for ln in block)


_INLINE_TAG = re.compile(r"\{@(link|linkplain|code|literal|value)\s+([^}]*)\}")
_XML_REF = re.compile(r"<(?:see|seealso|paramref|typeparamref)\s+\w+=\"([^\"]*)\"\s*/>")
_XML_TAG = re.compile(r"</?[A-Za-z][\w:-]*(?:\s[^<>]*)?/?>")
_TAG_LINE = re.compile(r"^\s*[@\\][A-Za-z]+\b")
_BRIEF = re.compile(r"^\s*[@\\]brief\b\s*")
_SENTENCE_END = re.compile(r"[.!?](?=\s|$)")
_ABBREVIATIONS = ("e.g.", "i.e.", "etc.", "vs.", "cf.", "approx.", "resp.")


def _inline_tag(match: re.Match[str]) -> str:
    target, _, label = match.group(2).strip().partition(" ")
    if label.strip() and match.group(1).startswith("link"):
        return label.strip()
    return f"`{target.replace('#', '.').strip('.')}`"


def first_sentence(text: str, language: str = "") -> str:
    """The first sentence of a doc comment's text (its first paragraph, when no sentence
    ends in it), on one line, at most :data:`MAX_SUMMARY` characters."""
    if language == "csharp":
        summary = re.search(r"<summary>(.*?)</summary>", text, re.S)
        if summary:
            text = summary.group(1)
        text = _XML_TAG.sub("", _XML_REF.sub(lambda m: f"`{m.group(1)}`", text))
    text = _INLINE_TAG.sub(_inline_tag, text)
    paragraph: list[str] = []
    for line in text.split("\n"):
        if _BRIEF.match(line):
            line = _BRIEF.sub("", line)
        elif _TAG_LINE.match(line) or (language == "rust" and line.startswith("# ")):
            if paragraph:
                break
            continue
        if not line.strip():
            if paragraph:
                break
            continue
        paragraph.append(line.strip())
    joined = _SPACES.sub(" ", " ".join(paragraph)).strip()
    for match in _SENTENCE_END.finditer(joined):
        if not joined[: match.end()].endswith(_ABBREVIATIONS):
            joined = joined[: match.end()]
            break
    if len(joined) > MAX_SUMMARY:
        joined = joined[: MAX_SUMMARY - 1].rstrip() + "…"
    return joined


# --------------------------------------------------------------------------------------------
# Definitions: where they start, their headers


def _code_part(line: str) -> str:
    """A line without its trailing ``//`` comment (outside double quotes)."""
    if "//" not in line:
        return line
    quoted = False
    for i, char in enumerate(line):
        if char == '"' and (i == 0 or line[i - 1] != "\\"):
            quoted = not quoted
        elif char == "/" and not quoted and line.startswith("//", i):
            return line[:i]
    return line


def _find_word(text: str, word: str) -> int:
    """Where ``word`` occurs in ``text`` as a whole identifier (-1: nowhere)."""
    at = text.find(word)
    while at >= 0:
        before = text[at - 1] if at else " "
        after = text[at + len(word) : at + len(word) + 1] or " "
        if not (before.isalnum() or before in "_$") and not (after.isalnum() or after in "_$"):
            return at
        at = text.find(word, at + 1)
    return -1


def header(lines: list[str], def_line: int, last: int, language: str, kind: str) -> str:
    """The definition's header on one line: from ``def_line`` up to its body (``{`` or
    ``;`` outside brackets, the line's end where that ends it, a Kotlin ``=``), spaces
    collapsed, at most :data:`MAX_SIGNATURE` characters."""
    parts: list[str] = []
    depth = 0
    expression_body = language == "kotlin" and kind in ("function", "method")
    stop = min(last, def_line + MAX_HEADER_LINES - 1, len(lines))
    for number in range(def_line, stop + 1):
        line = _code_part(lines[number - 1])
        quoted = ""
        cut = None
        for i, char in enumerate(line):
            if quoted:
                if char == quoted and line[i - 1] != "\\":
                    quoted = ""
            elif char in '"`':
                quoted = char
            elif char in "([":
                depth += 1
            elif char in ")]":
                depth -= 1
            elif depth <= 0 and (
                char in "{;" or (char == "=" and expression_body and line[i - 1 : i] == " ")
            ):
                cut = i
                break
        if cut is not None:
            parts.append(line[:cut])
            break
        parts.append(line)
        if language == "ruby" or (language in _LINE_ENDED and depth <= 0):
            break
    text = _SPACES.sub(" ", " ".join(parts)).strip().rstrip(",:= ").strip()
    if len(parts) > 1:  # lines joined: `f( a, b, )` -> `f(a, b)`
        text = re.sub(r",?\s*([)\]])", r"\1", re.sub(r"([(\[])\s+", r"\1", text))
    if len(text) > MAX_SIGNATURE:
        text = text[: MAX_SIGNATURE - 1].rstrip() + "…"
    return text


def _definition_line(lines: list[str], unit: Unit, language: str, short: str) -> int:
    """The line where ``unit``'s definition starts, after its doc comments and attributes
    (in Go, the line naming it: the first type of a ``type (`` group starts at the group)."""
    end = min(unit.end_line, len(lines))
    number = unit.start_line
    found = unit.start_line
    while number <= end:
        text = lines[number - 1].strip()
        if not text or _is_line_comment(text, language):
            number += 1
            continue
        if text.startswith("/*") and language != "ruby":
            close = number
            rest = text[2:]
            while "*/" not in rest and close < end:
                close += 1
                rest = lines[close - 1]
            if rest.split("*/", 1)[-1].strip():
                found = close
                break
            number = close + 1
            continue
        attribute = _attribute_end(lines, number, end, language)
        if attribute is not None:
            number = attribute + 1
            continue
        found = number
        break
    if language == "go" and _find_word(lines[found - 1], short) < 0:
        for later in range(found + 1, min(end, found + 40) + 1):
            text = lines[later - 1]
            if _find_word(text, short) >= 0 and not text.lstrip().startswith(("//", "/*", "*")):
                return later
    return found


@dataclass(slots=True)
class _Definition:
    """A unit read from the text: where its definition is, its header, doc, attributes."""

    unit: Unit
    name: str
    short: str
    line: int
    header: str
    doc: str | None
    attributes: list[str]
    public: bool = False

    @property
    def modifiers(self) -> set[str]:
        """The words of the header before the definition's name."""
        at = _find_word(self.header, self.short)
        return set(_IDENT.findall(self.header[:at] if at >= 0 else self.header))


def _read_definition(lines: list[str], unit: Unit, name: str, language: str) -> _Definition:
    short = name.rsplit(".", 1)[-1]
    line = _definition_line(lines, unit, language, short)
    start = unit.start_line if unit.start_line < line else _lead_start(lines, line, language)
    blocks, attributes = _comment_blocks(lines, start, line, language)
    doc = None
    for block in reversed(blocks):  # the nearest doc comment
        doc = doc_text(block, language)
        if doc is not None:
            break
    if language == "rust":
        for attribute in attributes:
            value = re.fullmatch(r'#\[doc\s*=\s*"(.*)"\]', attribute)
            if value:
                doc = (doc + "\n" if doc else "") + value.group(1)
    text = header(lines, line, unit.end_line, language, unit.kind)
    if language == "go" and unit.kind in ("struct", "interface", "type") and text[:5] != "type ":
        text = "type " + text  # a type of a ``type (`` group
    return _Definition(unit, name, short, line, text, doc, attributes)


def _is_constructor(definition: _Definition) -> bool:
    """Constructors, destructors, operators and magic methods: their class documents them."""
    short = definition.short
    if short in ("constructor", "init", "deinit", "initialize", "__construct"):
        return True
    if short.startswith(("~", "operator", "__")):
        return True
    parts = definition.name.split(".")
    return len(parts) >= 2 and parts[-1] == parts[-2]


# --------------------------------------------------------------------------------------------
# C and C++: scopes from the header's braces


@dataclass(slots=True)
class _Scope:
    kind: str  # file, namespace, class, struct, linkage, other
    name: str
    parent: int
    line: int
    #: Access labels in this scope: (line, access), in order.
    labels: list[tuple[int, str]] = field(default_factory=list)


_C_NOISE = re.compile(
    r"//[^\n]*|/\*.*?\*/|\"(?:\\.|[^\"\\\n])*\"|'(?:\\.|[^'\\\n]){1,4}'"
    r"|^[ \t]*#(?:[^\n]*\\\n)*[^\n]*",
    re.S | re.M,
)
_ACCESS = re.compile(r"^[ \t]*(public|private|protected)[ \t]*:(?!:)", re.M)
_CLASS_HEAD = re.compile(r"\b(class|struct|union)\b(?![^<]*>)([^(){};=]*)$")
_NAMESPACE_HEAD = re.compile(r"\bnamespace\b\s*([\w:]*)[^;{}]*$")
_FUNCTION_TAIL = re.compile(r"\)\s*(?:const|noexcept|override|final|->)?[^)]*$")


def _blank(match: re.Match[str]) -> str:
    """A match replaced by spaces, its line ends kept (line numbers do not move)."""
    return re.sub(r"[^\n]", " ", match.group(0))


class _CScopes:
    """The brace scopes of a C/C++ header: which namespace or class each line is in, and
    the access labels of each class. Comments, strings and preprocessor lines are blanked
    first; both branches of an ``#if`` are read, as the parse does."""

    def __init__(self, text: str) -> None:
        clean = _C_NOISE.sub(_blank, text)
        starts = [0] + [m.end() for m in re.finditer("\n", clean)]
        self.scopes = [_Scope("file", "", 0, 0)]
        self.line_scope: list[int] = []
        current = 0
        previous = 0  # after the last `{`, `}` or `;`: a scope's head starts there
        line = 0
        for match in re.finditer(r"[{};]", clean):
            position = match.start()
            while line < len(starts) and starts[line] <= position:
                self.line_scope.append(current)
                line += 1
            char = match.group(0)
            if char == "{":
                number = bisect_left(starts, position + 1)
                self.scopes.append(_c_scope(clean[previous:position], current, number))
                current = len(self.scopes) - 1
            elif char == "}" and current:
                current = self.scopes[current].parent
            previous = position + 1
        self.line_scope.extend([current] * (len(starts) - line))
        for match in _ACCESS.finditer(clean):
            number = bisect_left(starts, match.start() + 1)
            self.scopes[self.of(number)].labels.append((number, match.group(1)))

    def of(self, line: int) -> int:
        """The innermost scope open at the start of ``line``."""
        return self.line_scope[min(line, len(self.line_scope)) - 1] if self.line_scope else 0

    def chain(self, line: int) -> Iterator[_Scope]:
        """The scopes around ``line``, innermost first."""
        s = self.of(line)
        while s:
            yield self.scopes[s]
            s = self.scopes[s].parent

    def place(self, line: int) -> tuple[bool, list[str], bool]:
        """Whether a declaration on ``line`` is public, the names of the namespaces and
        classes around it (outermost first), and whether it is in a class."""
        names: list[str] = []
        public = True
        in_class = False
        at = line
        for scope in self.chain(line):
            if scope.kind == "other":
                public = False  # in a function's body, an initialiser, an enum: not API
            elif scope.kind == "namespace":
                if not scope.name or scope.name.lower() in PRIVATE_NAMESPACES:
                    public = False
                names.append(scope.name)
            elif scope.kind in ("class", "struct"):
                in_class = in_class or at == line
                labels = scope.labels
                before = bisect_left(labels, (at, "")) - 1
                access = labels[before][1] if before >= 0 else (
                    "private" if scope.kind == "class" else "public"
                )  # fmt: skip
                public = public and access == "public"
                names.append(scope.name)
            at = scope.line
        parts = [p for n in reversed(names) for p in n.split(".") if p]
        return public, parts, in_class


def _c_scope(head: str, parent: int, line: int) -> _Scope:
    """What the ``{`` after ``head`` opens."""
    head = _SPACES.sub(" ", head).strip()
    namespace = _NAMESPACE_HEAD.search(head)
    if namespace:
        return _Scope("namespace", namespace.group(1).replace("::", "."), parent, line)
    if head == "extern":  # extern "C" { (its string blanked)
        return _Scope("linkage", "", parent, line)
    klass = _CLASS_HEAD.search(head)
    if klass and not re.search(r"\benum\b", head) and not _FUNCTION_TAIL.search(head):
        tail = klass.group(2)
        for _ in range(4):  # template arguments, innermost first
            tail = re.sub(r"<[^<>]*>", "", tail)
        tail = re.split(r"(?<!:):(?!:)", tail, maxsplit=1)[0]
        names = [n for n in _IDENT.findall(tail) if n not in ("final", "alignas")]
        kind = "class" if klass.group(1) == "class" else "struct"
        return _Scope(kind, names[-1] if names else "", parent, line)
    return _Scope("other", "", parent, line)


def _c_qualified(outer: list[str], name: str) -> str:
    """``name`` inside the namespaces and classes ``outer`` (the leading parts of a name
    the grammar qualified are kept where they repeat ``outer``)."""
    parts = name.split(".")
    i = 0
    for scope in outer:
        if i < len(parts) - 1 and parts[i] == scope:
            i += 1
    return ".".join([*outer, *parts[i:]])


# --------------------------------------------------------------------------------------------
# JavaScript and TypeScript exports

_EXPORT_LIST = re.compile(r"^\s*export\s+(?:type\s+)?\{([^}]*)\}\s*;?\s*$", re.M)
_EXPORT_DEFAULT = re.compile(r"^\s*export\s+default\s+([A-Za-z_$][\w$]*)\s*;?\s*$", re.M)
_MODULE_EXPORTS = re.compile(
    r"^\s*(?:exports\s*=\s*)?module\.exports\s*=\s*(?:exports\s*=\s*)?([A-Za-z_$][\w$]*)\s*;?\s*$",
    re.M,
)
_MODULE_EXPORTS_OBJECT = re.compile(r"^\s*module\.exports\s*=\s*\{([^}]*)\}", re.M)
#: ``var app = exports = module.exports = {}``: the variable is the exported object.
_EXPORTS_VARIABLE = re.compile(
    r"^\s*(?:var|let|const)\s+([A-Za-z_$][\w$]*)\s*=\s*(?:exports\s*=\s*)?module\.exports\s*=",
    re.M,
)
_JSDOC_PRIVATE = re.compile(r"@(?:private|internal|ignore|hidden)\b|@api\s+private\b")


def _js_exported_names(text: str) -> set[str]:
    """Local names a JavaScript/TypeScript module exports by name (``export { a, b as c }``,
    ``export default a``, ``module.exports = a`` or ``= { a, b: c }``, ``var a =
    module.exports = …``)."""
    names: set[str] = set()
    for match in _EXPORT_LIST.finditer(text):
        for item in match.group(1).split(","):
            words = _IDENT.findall(re.sub(r"^\s*type\s", " ", item))
            if words:
                names.add(words[0])
    names.update(m.group(1) for m in _EXPORT_DEFAULT.finditer(text))
    names.update(m.group(1) for m in _MODULE_EXPORTS.finditer(text))
    names.update(m.group(1) for m in _EXPORTS_VARIABLE.finditer(text))
    for match in _MODULE_EXPORTS_OBJECT.finditer(text):
        for item in match.group(1).split(","):
            names.update(_IDENT.findall(item.split("(")[0]))
    return names


# --------------------------------------------------------------------------------------------
# Visibility


class _Visibility:
    """Whether a definition of one file (not C/C++) is public API; see the module docstring.

    ``parent`` is the container the definition is in (None: top level, or not in this file:
    a Go method of a type declared elsewhere, a property assigned to an object); a member
    of a container that is not public is not public either.
    """

    def __init__(self, language: str, text: str) -> None:
        self.language = language
        self.exported = (
            _js_exported_names(text) if language in ("javascript", "typescript") else set()
        )
        self.lines = text.split("\n")

    def public(
        self, item: _Definition, parent: _Definition | None, owner: _Definition | None
    ) -> bool:
        """``owner``: for a Rust ``impl``, the type it implements, when in this file."""
        if parent is not None and not parent.public:
            return False
        kind = item.unit.kind
        words = item.modifiers
        if kind == "namespace" and self.language != "typescript":
            return True  # C#, PHP: namespaces qualify names, their members say what is public
        if kind in ("function", "method", "declaration"):
            if "override" in words or "@Override" in item.header or _is_constructor(item):
                return False
            if any(a.startswith("@Override") for a in item.attributes):
                return False
        rule = getattr(self, "_" + self.language, None)
        return bool(rule(item, parent, owner, words)) if rule is not None else True

    def _go(self, item: _Definition, parent: _Definition | None, owner: _Definition | None,
            words: set[str]) -> bool:  # fmt: skip
        return all(part[:1].isupper() for part in item.name.split("."))

    def _rust(self, item: _Definition, parent: _Definition | None, owner: _Definition | None,
              words: set[str]) -> bool:  # fmt: skip
        if any(re.match(r"#\[doc\s*\(\s*hidden", a) for a in item.attributes):
            return False
        if item.unit.kind == "impl":  # inherent impls of public types hold API
            return " for " not in item.header and (owner is None or owner.public)
        if parent is not None and parent.unit.kind == "trait":
            return True
        return item.header.startswith("pub ")

    def _java(self, item: _Definition, parent: _Definition | None, owner: _Definition | None,
              words: set[str]) -> bool:  # fmt: skip
        if parent is not None and parent.unit.kind == "interface":
            return "private" not in words
        return "public" in words

    _csharp = _java

    def _kotlin(self, item: _Definition, parent: _Definition | None, owner: _Definition | None,
                words: set[str]) -> bool:  # fmt: skip
        return not words & {"private", "internal", "protected"}

    def _swift(self, item: _Definition, parent: _Definition | None, owner: _Definition | None,
               words: set[str]) -> bool:  # fmt: skip
        if item.header.startswith("extension "):
            return True  # an extension's members say what is public
        if parent is not None and parent.unit.kind == "interface":
            return not words & {"private", "fileprivate"}
        return bool(words & {"public", "open"})

    def _php(self, item: _Definition, parent: _Definition | None, owner: _Definition | None,
             words: set[str]) -> bool:  # fmt: skip
        return not words & {"private", "protected"}

    def _ruby(self, item: _Definition, parent: _Definition | None, owner: _Definition | None,
              words: set[str]) -> bool:  # fmt: skip
        if item.unit.kind not in ("function", "method") or parent is None:
            return True
        if words & {"private", "protected"}:
            return False
        line = self.lines[item.line - 1]
        indent = len(line) - len(line.lstrip())
        for number in range(item.line - 1, parent.line, -1):  # a bare `private` above
            text = self.lines[number - 1]
            label = text.strip()
            if label in ("private", "protected", "public") and text.index(label) == indent:
                return label == "public"
        return True

    def _javascript(self, item: _Definition, parent: _Definition | None,
                    owner: _Definition | None, words: set[str]) -> bool:  # fmt: skip
        if item.doc is not None and _JSDOC_PRIVATE.search(item.doc):
            return False
        if parent is not None and parent.unit.kind != "namespace":  # a class member
            if words & {"private", "protected"} or item.short.startswith(("#", "_")):
                return False
            return not item.header.startswith(("set ", "static set "))
        if item.header.startswith(("export ", "exports.", "module.exports.", "declare ")):
            return True
        return item.name.split(".", 1)[0] in self.exported and not item.short.startswith("_")

    _typescript = _javascript


# --------------------------------------------------------------------------------------------
# One file


def _stripped_name(name: str, prefix: str) -> str:
    """A unit's name without its file's package or namespace (``logx.Info`` -> ``Info``)
    and anything a declarator added after the name (``f(int)``)."""
    name = name.split("(", 1)[0]
    if prefix and name.startswith(prefix + "."):
        name = name[len(prefix) + 1 :]
    return name


def _c_object(item: _Definition, scopes: _CScopes) -> tuple[bool, bool]:
    """Whether a C/C++ definition is public API, and whether it is a class member; its
    name is qualified by the namespaces and classes around it."""
    public, outer, in_class = scopes.place(item.line)
    words = item.modifiers
    if "static" in words and not in_class:
        public = False  # internal linkage
    if words & {"friend"} or item.short.startswith("_") or _is_constructor(item):
        public = False
    if re.search(r"\)\s*(?:const\s*)?(?:noexcept\s*)?(?:override|final)\b", item.header):
        public = False
    item.name = _c_qualified(outer, item.name)
    return public, in_class


_C_TYPE = re.compile(r"\b(class|struct|union)\s+(?:[A-Z_]+\s+)*(\w+)\s*(?::|$)")


_SWIFT_TYPE = re.compile(r"\b(class|struct|enum|actor|extension)\b")
#: Swift's types by keyword (an extension adds members to a type: it is no object itself).
_SWIFT_KINDS = {"struct": "struct", "enum": "enum", "actor": "class", "extension": ""}


def file_api(
    path: str, text: str, structure: FileStructure, name: str, language: str = ""
) -> FileApi:
    """The public objects of one file from its structure (``language``: the structure's
    unless given) and its text; ``name`` is the module's name in the reference."""
    language = language or structure.language
    lines = text.split("\n")
    if lines and lines[-1] == "":
        lines.pop()
    api = FileApi(path=path, language=language, name=name, objects=[])
    if language == "go":
        _go_package_doc(api, lines)
    elif language == "rust":
        _rust_module_doc(api, lines)
        api.public_modules = frozenset(_PUB_MOD.findall(text))
    api.counted = language in MODULE_DOCS
    visibility = _Visibility(language, text)
    scopes = _CScopes(text) if language in ("c", "cpp") else None
    containers: dict[str, _Definition] = {}
    types: dict[str, _Definition] = {}
    declared: dict[str, list[int]] = {}  # C/C++: names -> their objects' positions
    objects: list[DeclaredObject] = []
    for unit in structure.units:
        if unit.kind not in OBJECT_KINDS and unit.kind not in CONTAINER_KINDS:
            continue
        if unit.start_line > len(lines):
            continue
        name = _stripped_name(unit.name, structure.module)
        if not name or "<" in name:
            continue  # an anonymous definition
        item = _read_definition(lines, unit, name, language)
        kind = OBJECT_KINDS.get(unit.kind, "")
        if scopes is not None:
            public, member = _c_object(item, scopes)
            item.public = public
            typed = _C_TYPE.search(item.header)
            if kind in ("function", "method") and typed and "(" not in item.header:
                kind = "class" if typed.group(1) == "class" else "struct"  # a misread class
        else:
            parent = containers.get(name.rsplit(".", 1)[0]) if "." in name else None
            owner = types.get(name) if unit.kind == "impl" else None
            item.public = visibility.public(item, parent, owner)
            member = (parent is not None and parent.unit.kind not in ("module", "namespace")) or (
                parent is None and "." in name
            )
            if unit.kind in CONTAINER_KINDS:
                containers[name] = item
                if unit.kind != "impl":
                    types[name] = item
        if language == "swift" and kind == "class":  # the grammar's one kind for all types
            word = _SWIFT_TYPE.search(item.header)
            kind = _SWIFT_KINDS.get(word.group(1), kind) if word else kind
        if not kind or not item.public:
            continue
        if kind == "function" and member:
            kind = "method"
        if kind == "method" and item.header.startswith(("get ", "static get ")):
            kind = "property"
        documented = item.doc is not None and bool(_WORD.search(item.doc))
        summary = first_sentence(item.doc, language) if item.doc and documented else ""
        if scopes is not None and kind in ("function", "method"):
            # A prototype and the definition it announces are one object, documented if
            # either is; overloads declared apart stay apart.
            if unit.kind != "declaration" and item.name in declared:
                for at in declared[item.name]:
                    if documented and not objects[at].documented:
                        old = objects[at]
                        objects[at] = DeclaredObject(
                            old.kind, old.name, old.line, old.signature, summary, True
                        )
                continue
            if unit.kind == "declaration":
                declared.setdefault(item.name, []).append(len(objects))
        objects.append(DeclaredObject(kind, item.name, item.line, item.header, summary, documented))
    api.objects = objects
    return api


def _go_package_doc(api: FileApi, lines: list[str]) -> None:
    """The package comment of a Go file: the comment right above ``package x``."""
    for number, line in enumerate(lines, 1):
        if line.startswith("package "):
            blocks, _ = _comment_blocks(lines, _lead_start(lines, number, "go"), number, "go")
            doc = doc_text(blocks[-1], "go") if blocks else None
            if doc is not None and _WORD.search(doc):
                api.documented = True
                api.summary = first_sentence(doc, "go")
            return


def _rust_module_doc(api: FileApi, lines: list[str]) -> None:
    """The ``//!`` (or ``/*! */``, ``#![doc = "…"]``) docs at the top of a Rust file."""
    inner: list[str] = []
    in_block = False
    for line in lines:
        text = line.strip()
        if in_block:
            inner.append(re.sub(r"^\*(?!/) ?", "", text.split("*/", 1)[0]))
            in_block = "*/" not in text
        elif text.startswith("//!"):
            inner.append(re.sub(r"^//!\s?", "", text))
        elif text.startswith("/*!"):
            inner.append(text[3:].split("*/", 1)[0])
            in_block = "*/" not in text
        elif match := re.fullmatch(r'#!\[doc\s*=\s*"(.*)"\]', text):
            inner.append(match.group(1))
        elif text and not text.startswith(("//", "#![")):
            break
    doc = "\n".join(inner)
    if _WORD.search(doc):
        api.documented = True
        api.summary = first_sentence(doc, "rust")


# --------------------------------------------------------------------------------------------
# Which files, and their modules' names

#: Folders of code that is not a library's API: examples, benchmarks.
_NOT_LIBRARY = frozenset(
    {"example", "examples", "sample", "samples", "demo", "demos", "bench", "benches"}
    | {"benchmark", "benchmarks"}
)
#: The marker of generated code (Go's convention, and ``@generated``) in a file's first lines.
_GENERATED = re.compile(
    r"^\s*(?://|#|/?\*)\s*(?:Code generated\b.*\bDO NOT EDIT\b|@generated\b)", re.M
)
_RUBY_TESTS = re.compile(r"(^|/)spec/|_spec\.rb$")
_TEST_DATA = re.compile(r"(^|/)(testdata|__mocks__|__fixtures__)/")


def is_test_code(path: str) -> bool:
    """Test code in any language's conventions (see the module docstring)."""
    from agentrt.context.compress import TEST_PATH

    return bool(
        is_test_path(path)
        or TEST_PATH.search(path)
        or _RUBY_TESTS.search(path)
        or _TEST_DATA.search(path)
    )


def _not_public(path: str, language: str, package: str) -> str | None:
    """Why a file holds no public API by where it is (None: it may hold some)."""
    pure = PurePosixPath(path)
    if language in ("c", "cpp") and pure.suffix.lower() not in HEADER_SUFFIXES:
        return "not a header"
    if _NOT_LIBRARY.intersection(p.lower() for p in pure.parts[:-1]):
        return "not public API"
    if language == "go" and ("internal" in pure.parts[:-1] or package == "main"):
        return "not public API"
    if language == "rust":
        parts = pure.parts
        if "src" not in parts[:-1]:
            return "not public API"
        inside = parts[parts.index("src") + 1 :]
        if inside[0] == "bin" or inside == ("main.rs",):
            return "not public API"
    return None


def _nearest(manifests: dict[str, str], folder: str) -> tuple[str, str] | None:
    """The nearest ``(folder, name)`` of ``manifests`` at or above ``folder``."""
    while True:
        if folder in manifests:
            return folder, manifests[folder]
        if not folder:
            return None
        folder = folder.rpartition("/")[0]


class _ModuleNames:
    """Module names as each language writes them: Go import paths (``go.mod``'s module
    path and the folder), Rust module paths (``crate::a::b``, the crate named in
    ``Cargo.toml``), Java/Kotlin packages, C# and PHP namespaces, C/C++ header paths, and
    the path without its suffix elsewhere (``lib/router/index``)."""

    def __init__(self, index: RepoIndex) -> None:
        self.go: dict[str, str] = {}
        self.cargo: dict[str, str] = {}
        for path, structure in zip(index.paths, index.structures, strict=True):
            folder, _, base = path.rpartition("/")
            if base == "go.mod" and structure.module:
                self.go[folder] = structure.module
            elif base == "Cargo.toml" and structure.module:
                self.cargo[folder] = structure.module.replace("-", "_")

    def of(self, path: str, language: str, module: str) -> str:
        pure = PurePosixPath(path)
        folder = pure.parent.as_posix() if pure.parent.as_posix() != "." else ""
        if language == "go":
            found = _nearest(self.go, folder)
            if found is None:
                return folder or module
            inside = folder[len(found[0]) :].strip("/") if found[0] else folder
            return "/".join(p for p in (found[1], inside) if p)
        if language == "rust":
            parts = list(pure.with_suffix("").parts)
            if "src" not in parts[:-1]:
                return "::".join(parts)
            src = parts.index("src")
            crate = self.cargo.get("/".join(parts[:src])) or (parts[src - 1] if src else "crate")
            inside = parts[src + 1 :]
            if inside and inside[-1] in ("lib", "main", "mod"):
                inside.pop()
            return "::".join([crate.replace("-", "_"), *inside])
        if language in ("java", "kotlin", "csharp") and module:
            return module
        if language == "php" and module:
            return module.replace(".", "\\")
        if language in ("c", "cpp"):
            return path
        return pure.with_suffix("").as_posix()


_PUB_MOD = re.compile(r"^[ \t]*pub[ \t]+mod[ \t]+(\w+)[ \t]*;", re.M)


def _rust_modules(files: list[FileApi]) -> None:
    """A Rust module counts (its ``//!`` docs are expected) when it is public: a crate's
    root, or declared ``pub mod`` by its parent. A private module's items still count
    (``pub use`` re-exports them), not its own docs."""
    by_path = {api.path: api for api in files if api.language == "rust"}
    for api in by_path.values():
        pure = PurePosixPath(api.path)
        name = pure.parent.name if pure.name == "mod.rs" else pure.stem
        if name in ("lib", "main") and pure.parent.name == "src":
            continue
        folder = pure.parent.parent if pure.name == "mod.rs" else pure.parent
        parents = [f"{folder}.rs", f"{folder}/mod.rs", f"{folder}/lib.rs", f"{folder}/main.rs"]
        parent = next((by_path[p] for p in parents if p in by_path), None)
        if parent is not None and name not in parent.public_modules:
            api.counted = False


def _go_packages(files: list[FileApi]) -> None:
    """Count each Go package's comment once: in the file holding it, else in ``doc.go``,
    the file named after the folder, or the package's first file."""
    packages: dict[str, list[FileApi]] = {}
    for api in files:
        if api.language == "go":
            packages.setdefault(api.name, []).append(api)
    for group in packages.values():
        documented = [a for a in group if a.documented]
        if documented:
            chosen = documented[0]
        else:
            folder = PurePosixPath(group[0].path).parent.name
            chosen = next(
                (a for a in group if PurePosixPath(a.path).name in ("doc.go", f"{folder}.go")),
                group[0],
            )
        for api in group:
            api.counted = api is chosen
            api.documented = bool(documented)
            if api is not chosen:
                api.summary = ""


def document_languages(
    index: RepoIndex,
    files: Iterable[SourceFile],
    *,
    include_tests: bool = False,
    include_private: bool = False,
) -> LanguageSources:
    """The public API of those of ``files`` in a language the context manager parses
    (Python excepted), from ``index``'s structures and the files' text."""
    from agentrt.context.syntax import analyze_syntax, syntax_language

    out = LanguageSources()
    names = _ModuleNames(index)
    position = index.position
    amalgamation = index.twins.amalgamation if index.twins is not None else None
    for source in files:
        path = source.path
        if source.language == "python" or syntax_language(path) is None:
            continue
        test = is_test_code(path)
        if test and not include_tests:
            out.excluded[path] = "test code"
            continue
        f = position.get(path)
        if f is None:
            out.excluded[path] = "minified" if ".min." in path else "not indexed"
            continue
        structure = index.structures[f]
        language = structure.language or source.language
        why = _not_public(path, language, structure.module)
        if why is not None and not (include_private and why == "not public API"):
            out.excluded[path] = why
            continue
        if language in ("c", "cpp") and amalgamation is not None and amalgamation[f]:
            out.excluded[path] = "amalgamation"
            continue
        try:
            text = source.read_text()
        except (OSError, UnicodeDecodeError):
            out.excluded[path] = "unreadable"
            continue
        if is_minified(text):
            out.excluded[path] = "minified"
            continue
        if _GENERATED.search(text, 0, 3000):
            out.excluded[path] = "generated"
            continue
        if test and not structure.parsed:  # the index keeps tests as line windows
            structure = analyze_syntax(path, text) or structure
            language = structure.language or language
        if not structure.parsed:
            out.excluded[path] = "not parsed"
            continue
        name = names.of(path, language, structure.module)
        out.files.append(file_api(path, text, structure, name, language))
        out.analysed.add(path)
    _go_packages(out.files)
    _rust_modules(out.files)
    return out
