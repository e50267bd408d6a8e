"""Structure of source files in languages other than Python, from tree-sitter grammars.

:func:`analyze_syntax` parses a file with the tree-sitter grammar of its language (the
per-language ``tree-sitter-<lang>`` wheels, which ship the grammars compiled: nothing is
downloaded at run time) and returns the same :class:`~agentrt.context.compress.FileStructure`
as the Python analysis:

* **units**: functions, methods, classes, structs, enums, interfaces/traits, impl blocks,
  namespaces and modules, named by their qualified name with dots (``ns.Class.method``,
  ``pkg.Type.Method`` in Go, ``Type.method`` for a Rust ``impl``); a unit starts at the doc
  comments and attributes right above its definition. A container (class, struct, trait,
  namespace…) is a unit from its header to its first member definition, as a Python class
  is; its members are units of their own. In C and C++, a prototype (``int f(void);``, a
  method declared in its class) is a ``declaration`` unit with its doc comment, named as
  the definition it announces (not one of :attr:`FileStructure.definitions`), a multi-line
  table (``static const T t[] = {…};``) a ``variable`` unit, and a function the grammar
  could not parse (an ``#ifdef`` opening a brace in each branch, an unknown macro: an ERROR
  node) is recovered from its declarator up to the brace that closes it. Lines outside
  every definition (globals, macros' neighbours) become ``block`` units, with the comment
  right above them, and long functions also get line windows, as in Python;
* **skeleton**: signatures and type headers, the first lines of doc comments, member
  declarations of types (fields, enumerators, prototypes), imports and the first line of
  other top-level statements; bodies are hidden, and rendered with the same markers as
  Python's skeletons (``...  # lines 40-88 elided``);
* **imports**: what each import names, as written (see :data:`IMPORT_FORMS`), with its
  line, and how it is made where that matters (TypeScript's type-only imports, JavaScript's
  ``import()`` and nested ``require()``); they are resolved to files of the repository by
  :mod:`agentrt.context.graph`;
* **definitions**: the qualified names of the file's definition units;
* **module**: the package or namespace the file declares (Go ``package``, Java/Kotlin
  ``package``, C# and PHP ``namespace``).

The walk visits only declaration-level nodes (it never descends into function bodies), so
its cost is small next to tree-sitter's own parse. Parsers are created lazily, once per
process (index workers are forked, never sent a parser).
"""

from __future__ import annotations

import importlib
import os
import re
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from agentrt.context.compress import (
    BLOCK_LINES,
    LONG_UNIT_LINES,
    FileStructure,
    Unit,
    UnitKind,
    line_windows,
    merge_ranges,
)

if TYPE_CHECKING:
    from tree_sitter import Node, Parser

__all__ = ["IMPORT_FORMS", "LANGUAGES", "analyze_syntax", "grammar_available", "syntax_language"]

#: How each language's imports are recorded in :attr:`FileStructure.imports`.
IMPORT_FORMS = {
    "javascript": "module specifier as written: './a/b', '../c.js', 'react', '@scope/pkg/x'",
    "typescript": "module specifier as written (as for JavaScript)",
    "go": "import path: 'github.com/org/repo/pkg'",
    "rust": "'mod:name' for `mod name;`, else the use path: 'crate::a::B', 'super::c'",
    "java": "qualified name: 'com.x.Y', 'com.x.*', 'com.x.Y.member' (static)",
    "kotlin": "qualified name (as for Java)",
    "c": "included path as written, without quotes or brackets: 'dir/x.h'",
    "cpp": "included path (as for C)",
    "csharp": "namespace of a using directive: 'System.Text'",
    "php": "qualified name of a use: 'App\\Models\\User', or a required path: 'lib/x.php'",
    "ruby": "'./path' for require_relative, else the required path: 'foo/bar'",
    "swift": "imported module name",
}


@dataclass(frozen=True, slots=True)
class LanguageSpec:
    """How to read one language's syntax tree (node types by role)."""

    name: str
    #: Grammar: python module and the function returning its language pointer.
    module: str
    function: str
    #: Function-like definitions (units of kind function, or method inside a type).
    functions: frozenset[str]
    #: Type-like definitions with a body of members: node type -> unit kind.
    containers: dict[str, UnitKind]
    #: Nodes whose named children are items at the same level (#ifdef, extern "C", export).
    scopes: frozenset[str] = frozenset()
    #: Nodes that wrap one definition and start before it (template<…>, decorators).
    wrappers: frozenset[str] = frozenset()
    imports: frozenset[str] = frozenset()
    comments: frozenset[str] = frozenset({"comment"})
    #: Nodes attached to the next definition like doc comments (attributes, decorators).
    attributes: frozenset[str] = frozenset()
    #: Node types of a container's member list, when it is not the ``body`` field.
    bodies: frozenset[str] = frozenset()
    #: Node types whose members are definitions of the enclosing type (Java enum bodies).
    member_scopes: frozenset[str] = frozenset()
    #: Per-language handlers: node type -> handler(walker, node, prefix, lead, in_type).
    special: dict[str, str] = field(default_factory=dict)


_C = LanguageSpec(
    name="c",
    module="tree_sitter_c",
    function="language",
    functions=frozenset({"function_definition"}),
    containers={
        "struct_specifier": "struct",
        "union_specifier": "struct",
        "enum_specifier": "enum",
    },
    # ``extern "C" {`` (a header's C++ guard) is a linkage_specification holding a
    # declaration_list in C's grammar too: without them, zstd.h had no unit at all.
    scopes=frozenset(
        {
            "preproc_ifdef",
            "preproc_if",
            "preproc_else",
            "preproc_elif",
            "preproc_elifdef",
            "linkage_specification",
            "declaration_list",
        }
    ),
    imports=frozenset({"preproc_include"}),
    special={
        "type_definition": "c_typedef",
        "declaration": "c_declaration",
        "field_declaration": "c_declaration",
        "preproc_function_def": "macro",
    },
)

_CPP = LanguageSpec(
    name="cpp",
    module="tree_sitter_cpp",
    function="language",
    functions=frozenset({"function_definition"}),
    containers={
        "class_specifier": "class",
        "struct_specifier": "struct",
        "union_specifier": "struct",
        "enum_specifier": "enum",
        "namespace_definition": "namespace",
    },
    scopes=_C.scopes,
    wrappers=frozenset({"template_declaration"}),
    imports=frozenset({"preproc_include"}),
    special={
        "type_definition": "c_typedef",
        "declaration": "c_declaration",
        "field_declaration": "c_declaration",
        "preproc_function_def": "macro",
    },
)

_JS_SPECIAL = {
    "export_statement": "js_export",
    "lexical_declaration": "js_variables",
    "variable_declaration": "js_variables",
    "expression_statement": "js_expression",
    "public_field_definition": "js_field",
    "field_definition": "js_field",
}

_JAVASCRIPT = LanguageSpec(
    name="javascript",
    module="tree_sitter_javascript",
    function="language",
    functions=frozenset(
        {"function_declaration", "generator_function_declaration", "method_definition"}
    ),
    containers={"class_declaration": "class", "class": "class"},
    imports=frozenset({"import_statement"}),
    attributes=frozenset({"decorator"}),
    special=_JS_SPECIAL,
)

_TS_FUNCTIONS = _JAVASCRIPT.functions | {
    "function_signature",
    "method_signature",
    "abstract_method_signature",
}
_TS_CONTAINERS: dict[str, UnitKind] = {
    **_JAVASCRIPT.containers,
    "abstract_class_declaration": "class",
    "interface_declaration": "interface",
    "enum_declaration": "enum",
    "internal_module": "namespace",
    "module": "namespace",
}
_TYPESCRIPT = LanguageSpec(
    name="typescript",
    module="tree_sitter_typescript",
    function="language_typescript",
    functions=_TS_FUNCTIONS,
    containers=_TS_CONTAINERS,
    wrappers=frozenset({"ambient_declaration"}),
    imports=frozenset({"import_statement"}),
    attributes=frozenset({"decorator"}),
    special={**_JS_SPECIAL, "type_alias_declaration": "type_alias"},
)
_TSX = LanguageSpec(
    name="typescript",
    module="tree_sitter_typescript",
    function="language_tsx",
    functions=_TS_FUNCTIONS,
    containers=_TS_CONTAINERS,
    wrappers=_TYPESCRIPT.wrappers,
    imports=_TYPESCRIPT.imports,
    attributes=_TYPESCRIPT.attributes,
    special=_TYPESCRIPT.special,
)

_GO = LanguageSpec(
    name="go",
    module="tree_sitter_go",
    function="language",
    functions=frozenset({"function_declaration", "method_declaration"}),
    containers={},
    imports=frozenset({"import_declaration"}),
    special={"type_declaration": "go_types", "package_clause": "package"},
)

_RUST = LanguageSpec(
    name="rust",
    module="tree_sitter_rust",
    function="language",
    functions=frozenset({"function_item", "function_signature_item"}),
    containers={
        "struct_item": "struct",
        "union_item": "struct",
        "enum_item": "enum",
        "trait_item": "trait",
        "impl_item": "impl",
    },
    scopes=frozenset({"foreign_mod_item"}),
    imports=frozenset({"use_declaration", "extern_crate_declaration"}),
    comments=frozenset({"line_comment", "block_comment"}),
    attributes=frozenset({"attribute_item"}),
    special={"mod_item": "rust_mod", "macro_definition": "macro", "type_item": "type_alias"},
)

_JAVA = LanguageSpec(
    name="java",
    module="tree_sitter_java",
    function="language",
    functions=frozenset(
        {"method_declaration", "constructor_declaration", "compact_constructor_declaration"}
    ),
    containers={
        "class_declaration": "class",
        "interface_declaration": "interface",
        "enum_declaration": "enum",
        "record_declaration": "class",
        "annotation_type_declaration": "interface",
    },
    imports=frozenset({"import_declaration"}),
    comments=frozenset({"line_comment", "block_comment"}),
    member_scopes=frozenset({"enum_body_declarations"}),
    special={"package_declaration": "package"},
)

_CSHARP = LanguageSpec(
    name="csharp",
    module="tree_sitter_c_sharp",
    function="language",
    functions=frozenset(
        {
            "method_declaration",
            "constructor_declaration",
            "destructor_declaration",
            "operator_declaration",
            "conversion_operator_declaration",
            "local_function_statement",
        }
    ),
    containers={
        "class_declaration": "class",
        "struct_declaration": "struct",
        "interface_declaration": "interface",
        "enum_declaration": "enum",
        "record_declaration": "class",
        "record_struct_declaration": "struct",
        "namespace_declaration": "namespace",
    },
    scopes=frozenset({"preproc_if", "preproc_region"}),
    imports=frozenset({"using_directive"}),
    special={"file_scoped_namespace_declaration": "file_namespace"},
)

_RUBY = LanguageSpec(
    name="ruby",
    module="tree_sitter_ruby",
    function="language",
    functions=frozenset({"method", "singleton_method"}),
    containers={"class": "class", "module": "module", "singleton_class": "class"},
    bodies=frozenset({"body_statement"}),
    special={"call": "ruby_require"},
)

_PHP = LanguageSpec(
    name="php",
    module="tree_sitter_php",
    function="language_php",
    functions=frozenset({"function_definition", "method_declaration"}),
    containers={
        "class_declaration": "class",
        "interface_declaration": "interface",
        "trait_declaration": "trait",
        "enum_declaration": "enum",
    },
    imports=frozenset({"namespace_use_declaration"}),
    attributes=frozenset({"attribute_list"}),
    special={"namespace_definition": "php_namespace", "expression_statement": "php_require"},
)

_KOTLIN = LanguageSpec(
    name="kotlin",
    module="tree_sitter_kotlin",
    function="language",
    functions=frozenset({"function_declaration", "secondary_constructor"}),
    containers={
        "class_declaration": "class",
        "object_declaration": "class",
        "companion_object": "class",
    },
    scopes=frozenset({"ERROR"}),
    imports=frozenset({"import", "import_header"}),
    comments=frozenset({"line_comment", "block_comment", "comment", "multiline_comment"}),
    bodies=frozenset({"class_body", "enum_class_body", "function_body"}),
    special={"package_header": "package"},
)

_SWIFT = LanguageSpec(
    name="swift",
    module="tree_sitter_swift",
    function="language",
    functions=frozenset(
        {
            "function_declaration",
            "init_declaration",
            "deinit_declaration",
            "protocol_function_declaration",
            "subscript_declaration",
        }
    ),
    containers={"class_declaration": "class", "protocol_declaration": "interface"},
    imports=frozenset({"import_declaration"}),
    comments=frozenset({"comment", "multiline_comment"}),
    bodies=frozenset({"class_body", "enum_class_body", "protocol_body"}),
)

#: File name suffix -> how to parse it. ``.h`` is C or C++ by its content.
LANGUAGES: dict[str, LanguageSpec] = {
    ".c": _C,
    ".h": _C,
    ".cc": _CPP,
    ".cpp": _CPP,
    ".cxx": _CPP,
    ".c++": _CPP,
    ".hpp": _CPP,
    ".hh": _CPP,
    ".hxx": _CPP,
    ".h++": _CPP,
    ".ipp": _CPP,
    ".tpp": _CPP,
    ".inl": _CPP,
    ".js": _JAVASCRIPT,
    ".mjs": _JAVASCRIPT,
    ".cjs": _JAVASCRIPT,
    ".jsx": _JAVASCRIPT,
    ".ts": _TYPESCRIPT,
    ".mts": _TYPESCRIPT,
    ".cts": _TYPESCRIPT,
    ".tsx": _TSX,
    ".go": _GO,
    ".rs": _RUST,
    ".java": _JAVA,
    ".cs": _CSHARP,
    ".rb": _RUBY,
    ".php": _PHP,
    ".kt": _KOTLIN,
    ".kts": _KOTLIN,
    ".swift": _SWIFT,
}

# A header is C++ when it uses C++ syntax; the C++ grammar reads C too, but is slower and
# would misread C that names a variable `class` or `new`.
_CPP_HINT = re.compile(
    rb"^\s*(?:namespace\b|template\s*<|class\s+\w+[^;]*$|(?:public|private|protected)\s*:)"
    rb"|\w::~?\w|#include\s*<(?:string|vector|memory|map|utility|cstdint|cstddef)>",
    re.M,
)


def syntax_language(path: str, head: bytes = b"") -> LanguageSpec | None:
    """How to parse ``path`` (None: not a language with a grammar here)."""
    dot = path.rfind(".")
    if dot < 0 or "/" in path[dot:]:
        return None
    spec = LANGUAGES.get(path[dot:].lower())
    if spec is _C and path[dot:].lower() == ".h" and _CPP_HINT.search(head):
        return _CPP
    return spec


_PARSERS: dict[tuple[str, str], Parser | None] = {}
_PARSERS_PID = 0


def _parser(spec: LanguageSpec) -> Parser | None:
    """This process's parser for ``spec`` (None when its grammar is not installed)."""
    global _PARSERS_PID
    pid = os.getpid()
    if pid != _PARSERS_PID:  # a forked worker: make its own parsers
        _PARSERS.clear()
        _PARSERS_PID = pid
    key = (spec.module, spec.function)
    if key not in _PARSERS:
        try:
            import tree_sitter

            language = tree_sitter.Language(
                getattr(importlib.import_module(spec.module), spec.function)()
            )
            _PARSERS[key] = tree_sitter.Parser(language)
        except (ImportError, AttributeError, ValueError, TypeError, OSError):
            _PARSERS[key] = None
    return _PARSERS[key]


def grammar_available(spec: LanguageSpec) -> bool:
    """Whether ``spec``'s grammar is installed and loads in this process."""
    return _parser(spec) is not None


def analyze_syntax(path: str, text: str) -> FileStructure | None:
    """The structure of ``path`` from its tree-sitter grammar (None: no grammar for it)."""
    source = text.encode("utf-8", "surrogatepass")
    spec = syntax_language(path, source)
    if spec is None:
        return None
    parser = _parser(spec)
    if parser is None:
        return None
    tree = parser.parse(source)
    walker = _Walker(spec, source, text)
    walker.visit_items(tree.root_node.named_children, "", None)
    if spec.name in ("javascript", "typescript"):
        walker.imports.extend(_js_calls(text))
    return walker.finish()


# --------------------------------------------------------------------------- the walk


def _start(node: Node) -> int:
    return node.start_point[0] + 1


def _end(node: Node) -> int:
    """Last line of ``node`` (1-based); a node ending at a line's start ends on the line before."""
    row, column = node.end_point
    if column:  # most nodes: no need to read where they start
        return row + 1
    return max(node.start_point[0] + 1, row)


_TEMPLATE_ARGS = re.compile(r"<[^<>]*>")
_NAME_JUNK = re.compile(r"[\s*&^]+")


def _clean_name(raw: str) -> str:
    """A definition's name as a dotted identifier path: no template arguments, no spaces."""
    if raw.isidentifier():  # most names: nothing to clean
        return raw
    name = raw
    for _ in range(4):  # nested template arguments, innermost first
        stripped = _TEMPLATE_ARGS.sub("", name)
        if stripped == name:
            break
        name = stripped
    name = _NAME_JUNK.sub("", name).strip("'\"`")
    name = name.replace("::", ".").replace("\\", ".").replace("->", ".")
    return name.strip(".")


#: Lines that carry nothing on their own: braces, preprocessor closers, comment lines.
_TRIVIAL = re.compile(
    r"\s*(?:[{}()\[\];,]+\s*(?://.*|/\*.*)?|#\s*(?:endif|else)\b.*|end|//.*|/\*.*|\*.*|)\s*"
)

#: A line of a comment (``//``, ``/*``, `` * ``, ``#`` is not one: it is C's preprocessor).
_COMMENT_LINE = re.compile(r"\s*(?://|/\*|\*)")

_FUNCTION_VALUES = frozenset(
    {"arrow_function", "function_expression", "function", "generator_function"}
)


class _Walker:
    """Collects units, skeleton ranges, imports and definitions of one parsed file."""

    def __init__(self, spec: LanguageSpec, source: bytes, text: str) -> None:
        self.spec = spec
        self.source = source
        self.lines = text.split("\n")
        if self.lines and self.lines[-1] == "":
            self.lines.pop()
        self.units: list[Unit] = []
        self.keep: list[tuple[int, int]] = []
        #: (what is imported, its line, how: "" or a kind of FileStructure.import_kinds)
        self.imports: list[tuple[str, int, str]] = []
        self.definitions: list[str] = []
        self.module = ""
        #: Prefix of every later top-level name (a file-scoped namespace, a Go package).
        self.file_prefix = ""

    # ------------------------------------------------------------------ helpers

    def text(self, node: Node | None) -> str:
        if node is None:
            return ""
        return self.source[node.start_byte : node.end_byte].decode("utf-8", "replace")

    def keep_statement(self, start: int, end: int) -> None:
        """Short statements whole, long ones by their first line (as for Python)."""
        self.keep.append((start, end if end - start < 3 else start))

    def keep_doc(self, start: int, end: int) -> None:
        """The first line of a doc comment run that says something, and its first line."""
        self.keep.append((start, start))
        for line in range(start, min(end, start + 2) + 1):
            if re.search(r"\w", self.lines[line - 1] if line <= len(self.lines) else ""):
                self.keep.append((line, line))
                break

    def body_of(self, node: Node) -> Node | None:
        body = node.child_by_field_name("body")
        if body is None and self.spec.bodies:
            for child in node.named_children:
                if child.type in self.spec.bodies:
                    return child
        return body

    def header_end(self, node: Node, body: Node | None) -> int:
        """Last line of a definition's header (up to where its body starts)."""
        if body is None:
            return _end(node)
        line = _start(body)
        first = self.source[body.start_byte : body.start_byte + 1]
        # A body that opens with a bracket starts on the header's last line; one that
        # starts with a statement (Ruby, Python-like bodies) starts after it.
        if first and first not in b"{([=:" and line > _start(node):
            line -= 1
        return max(_start(node), line)

    def add_unit(self, name: str, kind: UnitKind, start: int, end: int) -> None:
        self.units.append(Unit(name, kind, start, end))
        if kind not in ("block", "window", "namespace", "module", "declaration"):
            self.definitions.append(name)

    # ------------------------------------------------------------------ items

    def visit_items(self, nodes: Iterable[Node], prefix: str, in_type: str | None) -> int | None:
        """Visit a list of sibling items; returns the first line of the first definition."""
        spec = self.spec
        first_def: int | None = None
        pending: tuple[int, int] | None = None  # doc comments / attributes run
        glued: tuple[int, int] | None = None  # (lead, last line) of a misparsed piece
        for node in nodes:
            kind = node.type
            start = _start(node)
            if kind in spec.comments or kind in spec.attributes:
                end = _end(node)
                if kind in spec.attributes:  # part of the signature, like a decorator
                    self.keep_statement(start, end)
                if pending is not None and start <= pending[1] + 1:
                    pending = (pending[0], end)
                else:
                    pending = (start, end)
                continue
            lead = start
            if pending is not None and pending[1] >= start - 1:
                lead = pending[0]
                self.keep_doc(pending[0], pending[1])
            pending = None
            if glued is not None and glued[1] >= start:
                # An unknown macro (``FORCE_INLINE T f();``, ``DEPRECATED("…") API`` on
                # the lines above) split off the start of this item: the item starts where
                # that piece did, comment included.
                lead = min(lead, glued[0])
            defined = self.visit(node, prefix, lead, in_type)
            glued = None
            if not defined and node.has_error:
                end = _end(node)
                # A short unparsed run of macros also glues to the item on the next line.
                glued = (lead, end + 1 if kind == "ERROR" and end - start < 3 else end)
            if defined and first_def is None:
                first_def = lead
        return first_def

    def visit(self, node: Node, prefix: str, lead: int, in_type: str | None) -> bool:
        """Visit one item; True if it is (or holds) a definition unit."""
        spec = self.spec
        kind = node.type
        if kind in spec.functions:
            return self.function(node, prefix, lead, in_type)
        container = spec.containers.get(kind)
        if container is not None:
            return self.container(node, container, prefix, lead)
        handler = spec.special.get(kind)
        if handler is not None:
            return bool(getattr(self, "on_" + handler)(node, prefix, lead, in_type))
        if kind in spec.imports:
            self.add_import(node)
            end = _end(node)  # an import block whole, unless it is very long
            self.keep.append((lead, end if end - lead < 12 else lead))
            return False
        if kind in spec.wrappers:
            inner = [c for c in node.named_children if c.type not in spec.comments]
            target = inner[-1] if inner else None
            if target is not None:
                if _start(target) > _start(node):  # template<…> or decorator lines
                    self.keep.append((_start(node), _start(target) - 1))
                return self.visit(target, prefix, lead, in_type)
            return False
        # A region the grammar could not parse (a macro it does not know, say) still holds
        # definitions: its children are visited as items.
        if kind == "ERROR" and spec.name in ("c", "cpp"):
            return self.recover_c(node, prefix, lead, in_type)
        if kind in spec.scopes or kind == "ERROR" or (kind in spec.member_scopes and in_type):
            return self.visit_items(node.named_children, prefix, in_type) is not None
        self.keep_statement(lead, _end(node))
        return False

    def function(
        self, node: Node, prefix: str, lead: int, in_type: str | None, name: str | None = None
    ) -> bool:
        if name is None:
            name = self.name_of(node)
        start, end = lead, _end(node)
        if not name:
            name = f"<function>:{start}"
        qualified = prefix + name
        is_method = in_type is not None or "." in name
        self.add_unit(qualified, "method" if is_method else "function", start, end)
        body = self.body_of(node)
        header_end = self.header_end(node, body)
        self.keep.append((_start(node), header_end))
        if end - start + 1 > LONG_UNIT_LINES and body is not None:
            self.units.extend(line_windows(header_end + 1, end, "window", qualified))
        return True

    def container(
        self,
        node: Node,
        kind: UnitKind,
        prefix: str,
        lead: int,
        name: str | None = None,
        body: Node | None = None,
    ) -> bool:
        if name is None:
            name = self.name_of(node)
        if body is None:
            body = self.body_of(node)
        start, end = lead, _end(node)
        if not name:
            if body is None:  # a forward declaration or a use (`struct x *p;`)
                self.keep_statement(lead, end)
                return False
            name = f"<{kind}>:{start}"
        qualified = prefix + name
        if kind == "namespace" and not prefix and not self.module:
            self.module = name
        header_end = self.header_end(node, body)
        self.keep.append((_start(node), header_end))
        first_member = None
        if body is not None:
            member_of = None if kind in ("namespace", "module") else kind
            first_member = self.visit_items(body.named_children, qualified + ".", member_of)
            if _end(node) > header_end:
                last = self.lines[end - 1].strip() if end <= len(self.lines) else ""
                if len(last) <= 24:  # a closing `};`, `end`, `} // namespace x`
                    self.keep.append((end, end))
        unit_end = end if first_member is None else max(header_end, first_member - 1)
        unit_end = max(start, min(unit_end, end))
        self.add_unit(qualified, kind, start, unit_end)
        return True

    def recover_c(self, node: Node, prefix: str, lead: int, in_type: str | None) -> bool:
        """The items of a C/C++ region the grammar could not parse, and the functions in it.

        An ``#ifdef`` that opens a brace in each branch, or a macro the grammar does not
        know, turns a function and what follows it into one ERROR node whose children are
        the function's pieces: its declarator, then its statements. A function declarator
        followed by ``{`` is recovered as a function that ends at the first line closing a
        brace at the header's indentation (C style puts it at column 0); the other
        children are visited as items.
        """
        children = node.named_children
        defined = False
        items: list[Node] = []
        done = 0  # last line of the last recovered function
        node_end = _end(node)
        for child in children:
            if _start(child) <= done:
                continue
            if child.type != "function_declarator" or not self._body_follows(child):
                items.append(child)
                continue
            header = _start(child)
            while items and items[-1].type not in self.spec.comments:
                before = items[-1]
                if _start(before) < header - 3 or before.type.endswith(_C_STATEMENT_ENDS):
                    break
                header = _start(items.pop())
            start = header
            while items and items[-1].type in self.spec.comments and _end(items[-1]) >= start - 1:
                start = _start(items.pop())
            if not items and not done:  # the node's first item: its comment came before it
                start = min(start, lead)
            close = self._closing_line(header, _end(child), node_end)
            if close is None:
                items.append(child)
                continue
            if items and self.visit_items(items, prefix, in_type) is not None:
                defined = True
            items = []
            name = self.declarator_name(child) or f"<function>:{header}"
            qualified = prefix + name
            is_method = in_type is not None or "." in name
            self.add_unit(qualified, "method" if is_method else "function", start, close)
            self.keep.append((header, _end(child)))
            if close - start + 1 > LONG_UNIT_LINES:
                self.units.extend(line_windows(_end(child) + 1, close, "window", qualified))
            done = close
            defined = True
        if items and self.visit_items(items, prefix, in_type) is not None:
            defined = True
        return defined

    def _body_follows(self, declarator: Node) -> bool:
        """Whether a ``{`` comes after ``declarator`` before any ``;`` (a definition)."""
        after = self.source[declarator.end_byte : declarator.end_byte + 400]
        brace, semi = after.find(b"{"), after.find(b";")
        return brace >= 0 and (semi < 0 or brace < semi)

    def _closing_line(self, header: int, after: int, limit: int) -> int | None:
        """The first line after ``after`` (up to ``limit``) that closes a brace at the
        indentation of line ``header``."""
        lines = self.lines
        first = lines[header - 1] if header <= len(lines) else ""
        indent = first[: len(first) - len(first.lstrip())]
        # Bounded: a large ERROR node with many declarators and no closing brace found
        # must not cost a scan of the rest of the node per declarator.
        for line in range(after + 1, min(limit, len(lines), after + MAX_RECOVERED_LINES) + 1):
            text = lines[line - 1]
            if text.startswith(indent + "}"):
                return line
        return None

    def add_import(self, node: Node) -> None:
        line = _start(node)
        kind = "type" if self.spec.name == "typescript" and _type_only(self.text(node)) else ""
        for imported, offset in _IMPORTS[self.spec.name](self, node):
            self.imports.append((imported, line + offset, kind))

    # ------------------------------------------------------------------ names

    def name_of(self, node: Node) -> str:
        if node.type == "impl_item":  # Rust: methods of `impl Trait for Type` are Type's
            return _clean_name(self.text(node.child_by_field_name("type")))
        if node.type == "method_declaration" and self.spec.name == "go":
            receiver = node.child_by_field_name("receiver")
            owner = _clean_name(re.sub(r"\[.*", "", self.text(receiver).strip("()").split()[-1]))
            return f"{owner}.{_clean_name(self.text(node.child_by_field_name('name')))}"
        named = node.child_by_field_name("name")
        if named is not None:
            return _clean_name(self.text(named))
        declarator = node.child_by_field_name("declarator")
        if declarator is not None:
            return self.declarator_name(declarator)
        if self.spec.name == "kotlin" or self.spec.name == "swift":
            for child in node.named_children:
                if child.type in ("type_identifier", "simple_identifier", "identifier"):
                    return _clean_name(self.text(child))
        return ""

    def declarator_name(self, node: Node) -> str:
        """The name inside a C/C++ declarator (``*f(int)``, ``Foo::bar(…) const``)."""
        for _ in range(8):
            if node.type == "operator_cast":  # ``operator bool() const``
                return "operator" + _clean_name(self.text(node.child_by_field_name("type")))
            inner = node.child_by_field_name("declarator")
            if node.type == "function_declarator" or inner is None:
                target = inner if inner is not None else node
                return _clean_name(self.text(target))
            node = inner
        return ""

    # ------------------------------------------------------------------ special nodes

    def on_package(self, node: Node, prefix: str, lead: int, in_type: str | None) -> bool:
        names = [c for c in node.named_children if c.type not in self.spec.comments]
        self.module = _clean_name(self.text(names[-1])) if names else ""
        if self.spec.name == "go" and self.module:
            self.file_prefix = self.module + "."
        self.keep_statement(lead, _end(node))
        return False

    def on_file_namespace(self, node: Node, prefix: str, lead: int, in_type: str | None) -> bool:
        self.module = self.module or self.name_of(node)
        self.file_prefix = self.name_of(node) + "."
        self.keep_statement(lead, _end(node))
        return False

    def on_php_namespace(self, node: Node, prefix: str, lead: int, in_type: str | None) -> bool:
        name = self.name_of(node)
        self.module = self.module or name
        body = node.child_by_field_name("body")
        if body is None:
            self.file_prefix = name + "." if name else ""
            self.keep_statement(lead, _end(node))
            return False
        return self.container(node, "namespace", prefix, lead, name=name, body=body)

    def on_macro(self, node: Node, prefix: str, lead: int, in_type: str | None) -> bool:
        name = self.name_of(node)
        self.add_unit(prefix + name, "macro", lead, _end(node))
        self.keep.append((_start(node), _start(node)))
        return True

    def on_type_alias(self, node: Node, prefix: str, lead: int, in_type: str | None) -> bool:
        self.add_unit(prefix + self.name_of(node), "type", lead, _end(node))
        self.keep_statement(_start(node), _end(node))
        return True

    def on_c_typedef(self, node: Node, prefix: str, lead: int, in_type: str | None) -> bool:
        inner = node.child_by_field_name("type")
        declarator = node.child_by_field_name("declarator")
        name = self.declarator_name(declarator) if declarator is not None else ""
        if inner is not None and inner.child_by_field_name("body") is not None:
            kind = self.spec.containers.get(inner.type)
            if kind is not None:
                return self.container(
                    node,
                    kind,
                    prefix,
                    lead,
                    name=name or None,
                    body=inner.child_by_field_name("body"),
                )
        if name:
            self.add_unit(prefix + name, "type", lead, _end(node))
        self.keep_statement(_start(node), _end(node))
        return bool(name)

    def on_c_declaration(self, node: Node, prefix: str, lead: int, in_type: str | None) -> bool:
        inner = node.child_by_field_name("type")
        if (
            inner is not None
            and inner.type in self.spec.containers
            and inner.child_by_field_name("body") is not None
        ):
            return self.container(inner, self.spec.containers[inner.type], prefix, lead)
        end = _end(node)
        self.keep_statement(lead, end)
        declarator = node.child_by_field_name("declarator")
        if declarator is None:
            return False
        if _function_declarator(declarator) is not None:
            # A prototype (with its doc comment): a unit of its own, so that a mention of
            # the function finds the header's declaration and its documentation. Not a
            # definition: the return value does not end the enclosing class's unit.
            name = self.declarator_name(declarator)
            if name:
                self.add_unit(prefix + name, "declaration", lead, end)
            return False
        if declarator.type == "init_declarator" and end - _start(node) >= 2:
            # A table or a long initialiser (``static const T table[] = {…};``): a named unit.
            value = declarator.child_by_field_name("value")
            if value is not None and value.type in (
                "initializer_list",
                "compound_literal_expression",
            ):
                name = self.declarator_name(
                    declarator.child_by_field_name("declarator") or declarator
                )
                if name and name.isidentifier():
                    self.add_unit(prefix + name, "variable", lead, end)
                    return True
        return False

    def on_go_types(self, node: Node, prefix: str, lead: int, in_type: str | None) -> bool:
        specs = [c for c in node.named_children if c.type in ("type_spec", "type_alias")]
        self.keep.extend(((_start(node), _start(node)), (_end(node), _end(node))))
        defined = False
        for i, spec in enumerate(specs):
            start = lead if i == 0 else _start(spec)
            name = self.name_of(spec)
            type_node = spec.child_by_field_name("type")
            kind: UnitKind = "type"
            body = None
            if type_node is not None and type_node.type == "struct_type":
                kind = "struct"
                body = next(
                    (c for c in type_node.named_children if c.type == "field_declaration_list"),
                    None,
                )
            elif type_node is not None and type_node.type == "interface_type":
                kind, body = "interface", type_node
            if body is not None:
                qualified = prefix + name
                header_end = self.header_end(spec, body)
                self.keep.append((_start(node) if i == 0 else _start(spec), header_end))
                for member in body.named_children:
                    if member.type not in self.spec.comments:
                        self.keep_statement(_start(member), _end(member))
                self.keep.append((_end(spec), _end(spec)))
                self.add_unit(qualified, kind, start, _end(spec) if len(specs) > 1 else _end(node))
            else:
                self.add_unit(prefix + name, kind, start, _end(spec))
                self.keep_statement(_start(spec), _end(spec))
            defined = True
        return defined

    def on_rust_mod(self, node: Node, prefix: str, lead: int, in_type: str | None) -> bool:
        name = self.name_of(node)
        if node.child_by_field_name("body") is None:
            self.imports.append((f"mod:{name}", _start(node), ""))
            self.keep_statement(lead, _end(node))
            return False
        return self.container(node, "module", prefix, lead, name=name)

    def on_js_export(self, node: Node, prefix: str, lead: int, in_type: str | None) -> bool:
        declaration = node.child_by_field_name("declaration")
        if declaration is None:
            value = node.child_by_field_name("value")
            if value is not None and value.type in _FUNCTION_VALUES | {"class"}:
                declaration = value
        if declaration is not None:
            return self.visit(declaration, prefix, lead, in_type)
        source = node.child_by_field_name("source")
        if source is not None:
            kind = "type" if self.spec.name == "typescript" and _type_only(self.text(node)) else ""
            self.imports.append((_unquote(self.text(source)), _start(node), kind))
        self.keep_statement(lead, _end(node))
        return False

    def on_js_variables(self, node: Node, prefix: str, lead: int, in_type: str | None) -> bool:
        declarators = [c for c in node.named_children if c.type == "variable_declarator"]
        end = _end(node)
        if len(declarators) != 1:
            self.keep_statement(lead, end)
            return False
        declarator = declarators[0]
        value = declarator.child_by_field_name("value")
        name = _clean_name(self.text(declarator.child_by_field_name("name")))
        if value is not None and value.type in ("class", "class_expression"):
            return self.container(value, "class", prefix, lead, name=name)
        if value is not None and value.type in _FUNCTION_VALUES:
            return self.function(value, prefix, lead, in_type, name=name)
        if end - _start(node) >= 2 and name and "{" not in name and "[" not in name:
            # A multi-line declaration (a component made by a call, a table): named unit.
            kind: UnitKind = "function" if _calls_function(value) else "variable"
            self.add_unit(prefix + name, kind, lead, end)
            self.keep.append((_start(node), _start(node)))
            return True
        self.keep_statement(lead, end)
        return False

    def on_js_field(self, node: Node, prefix: str, lead: int, in_type: str | None) -> bool:
        value = node.child_by_field_name("value")
        if value is not None and value.type in _FUNCTION_VALUES:
            name = _clean_name(
                self.text(node.child_by_field_name("property") or node.child_by_field_name("name"))
            )
            return self.function(value, prefix, lead, in_type, name=name or None)
        self.keep_statement(lead, _end(node))
        return False

    def on_js_expression(self, node: Node, prefix: str, lead: int, in_type: str | None) -> bool:
        inner = node.named_children[0] if node.named_child_count else None
        if inner is not None and inner.type in self.spec.containers:
            return self.visit(inner, prefix, lead, in_type)
        if inner is not None and inner.type == "assignment_expression":
            left, right = inner.child_by_field_name("left"), inner.child_by_field_name("right")
            if right is not None and right.type in _FUNCTION_VALUES:
                name = _clean_name(self.text(left)).removeprefix("module.").removeprefix("exports.")
                name = name.replace(".prototype.", ".")
                return self.function(right, prefix, lead, in_type, name=name or None)
        self.keep_statement(lead, _end(node))
        return False

    def on_ruby_require(self, node: Node, prefix: str, lead: int, in_type: str | None) -> bool:
        method = self.text(node.child_by_field_name("method"))
        if method in ("require", "require_relative", "load"):
            match = re.search(r"""['"]([^'"]+)['"]""", self.text(node))
            if match:
                target = match.group(1)
                target = ("./" + target) if method == "require_relative" else target
                self.imports.append((target, _start(node), ""))
        self.keep_statement(lead, _end(node))
        return False

    def on_php_require(self, node: Node, prefix: str, lead: int, in_type: str | None) -> bool:
        text = self.text(node)
        match = re.match(r"\s*(?:require|include)(?:_once)?\b[\s(]*['\"]([^'\"]+)['\"]", text)
        if match:
            self.imports.append((match.group(1), _start(node), ""))
        self.keep_statement(lead, _end(node))
        return False

    # ------------------------------------------------------------------ result

    def finish(self) -> FileStructure:
        n = len(self.lines)
        if self.file_prefix:  # a Go package, a file-scoped namespace: qualifies every name
            self.units = [
                Unit(self.file_prefix + u.name, u.kind, u.start_line, u.end_line)
                if u.kind not in ("block", "window")
                else u
                for u in self.units
            ]
            self.definitions = [self.file_prefix + d for d in self.definitions]
        units = self.units + self._gap_blocks(n)
        units.sort(key=lambda u: (u.start_line, u.kind == "window", -u.end_line))
        imports, lines, kinds = _distinct_imports(self.imports)
        return FileStructure(
            n_lines=n,
            units=units,
            skeleton=[(s, min(e, n)) for s, e in merge_ranges(self.keep) if s <= n],
            imports=imports,
            definitions=list(dict.fromkeys(self.definitions)),
            parsed=True,
            language=self.spec.name,
            module=self.module,
            import_lines=lines,
            import_kinds=kinds,
        )

    def _gap_blocks(self, n: int) -> list[Unit]:
        """Block units for runs of lines that no definition covers and that hold code."""
        spans = sorted((u.start_line, u.end_line) for u in self.units if u.kind != "window")
        lines = self.lines
        trivial = _TRIVIAL.fullmatch
        blocks: list[Unit] = []
        # The file's first line with text: a comment starting there opens the file.
        first_text = next((i for i, text in enumerate(lines, 1) if text.strip()), n + 1)
        line = 1
        for start, end in [*spans, (n + 1, n + 1)]:
            if start > line:  # lines line..start-1 are uncovered: trim trivial ones
                first, last = line, min(start - 1, n)
                while first <= last and trivial(lines[first - 1]):
                    first += 1
                while last >= first and trivial(lines[last - 1]):
                    last -= 1
                # The comment right above the first code line documents it (a global, a
                # macro): it belongs to the block. Not a long one, nor the file's first
                # (a licence, a module's docs above its imports): those document no line
                # below, and joined to the imports they cut them into windows.
                top = first
                while top > line and top <= last and _COMMENT_LINE.match(lines[top - 2]):
                    top -= 1
                if first - top <= BLOCK_COMMENT_LINES and top > first_text:
                    first = top
                if first <= last:
                    if last - first + 1 <= BLOCK_LINES:
                        blocks.append(Unit(f"<module>:{first}", "block", first, last))
                    else:
                        blocks.extend(line_windows(first, last, "block", "<module>"))
            line = max(line, end + 1)
        return blocks


#: A comment above a block joins it when it has at most this many lines.
BLOCK_COMMENT_LINES = 8

#: A function recovered from an ERROR node is at most this long (its closing brace is
#: looked for this far).
MAX_RECOVERED_LINES = 4000

#: Node types that end a statement: what comes after them is not a function's header.
_C_STATEMENT_ENDS = ("statement", "declaration", "definition", "include", "def")


def _function_declarator(node: Node) -> Node | None:
    """The function declarator a C/C++ declarator declares (``*f(int)``, ``&g() const``),
    None for a variable, a pointer to a function included (``(*fp)(int)``)."""
    for _ in range(8):
        if node.type == "operator_cast":
            return node
        if node.type == "function_declarator":
            inner = node.child_by_field_name("declarator")
            return None if inner is not None and inner.type == "parenthesized_declarator" else node
        if node.type not in ("pointer_declarator", "reference_declarator", "attributed_declarator"):
            return None
        inner = node.child_by_field_name("declarator")
        if inner is None:
            named = node.named_children
            if not named:
                return None
            inner = named[-1]
        node = inner
    return None


def _calls_function(value: Node | None) -> bool:
    """A call taking a function (``forwardRef((props, ref) => …)``, ``styled(…)``)."""
    if value is None or value.type != "call_expression":
        return False
    arguments = value.child_by_field_name("arguments")
    return arguments is not None and any(
        a.type in _FUNCTION_VALUES for a in arguments.named_children
    )


def _unquote(text: str) -> str:
    return text.strip().strip("'\"`")


# --------------------------------------------------------------------------- imports

_QUOTED = re.compile(r"""['"`]([^'"`\n]+)['"`]""")
_JS_DYNAMIC = re.compile(r"""\b(?:require|import)\s*\(\s*['"`]([^'"`\n]+)['"`]\s*\)""")


_TYPE_ONLY = re.compile(r"\s*(?:import|export)\s+type\s+(?!from\s*['\"])")
_NAMED_IMPORTS = re.compile(r"\s*import\s*\{([^}]*)\}\s*from\b")


def _type_only(statement: str) -> bool:
    """Whether a TypeScript import or re-export brings in types only (it is erased when
    compiled): ``import type …``, ``export type … from``, ``import { type A, type B } …``."""
    if _TYPE_ONLY.match(statement):
        return True
    named = _NAMED_IMPORTS.match(statement)
    if named is None:
        return False
    items = [item.strip() for item in named.group(1).split(",") if item.strip()]
    return bool(items) and all(item.startswith("type ") for item in items)


def _js_calls(text: str) -> Iterator[tuple[str, int, str]]:
    """``require('x')`` and ``import('x')`` anywhere in the text, with their lines: dynamic
    unless a ``require`` at the start of a line (a module-level CommonJS import)."""
    line, counted = 1, 0
    for match in _JS_DYNAMIC.finditer(text):
        line += text.count("\n", counted, match.start())
        counted = match.start()
        start = text.rfind("\n", 0, match.start()) + 1
        indented = text[start : start + 1] in (" ", "\t")
        dynamic = match.group(0).startswith("import") or indented
        yield match.group(1), line, "dynamic" if dynamic else ""


def _distinct_imports(
    imports: list[tuple[str, int, str]],
) -> tuple[list[str], list[int], dict[str, str]]:
    """Each import once, at its first line; its kind the plainest it is written in."""
    lines: dict[str, int] = {}
    kinds: dict[str, str] = {}
    for imported, line, kind in imports:
        if imported not in lines:
            lines[imported] = line
            kinds[imported] = kind
        elif _KIND_ORDER[kind] < _KIND_ORDER[kinds[imported]]:
            kinds[imported] = kind
    return list(lines), list(lines.values()), {i: k for i, k in kinds.items() if k}


#: Import kinds from plainest: a plain import, then a dynamic one, then types only.
_KIND_ORDER = {"": 0, "dynamic": 1, "type": 2}


def _imports_c(walker: _Walker, node: Node) -> list[tuple[str, int]]:
    path = node.child_by_field_name("path")
    return [(walker.text(path).strip().strip('"<>'), 0)] if path is not None else []


def _imports_js(walker: _Walker, node: Node) -> list[tuple[str, int]]:
    source = node.child_by_field_name("source")
    return [(_unquote(walker.text(source)), 0)] if source is not None else []


def _imports_go(walker: _Walker, node: Node) -> list[tuple[str, int]]:
    """Each path of an import (block), at its own line."""
    text = walker.text(node)
    return [(m.group(1), text.count("\n", 0, m.start())) for m in _QUOTED.finditer(text)]


def _first_line(specs: list[str]) -> list[tuple[str, int]]:
    return [(spec, 0) for spec in specs]


def _imports_rust(walker: _Walker, node: Node) -> list[tuple[str, int]]:
    text = walker.text(node)
    if node.type == "extern_crate_declaration":
        match = re.search(r"crate\s+(\w+)", text)
        return [(match.group(1), 0)] if match else []
    text = re.sub(r"^\s*(?:pub(?:\([^)]*\))?\s+)?use\s+|;\s*$", "", text).strip()
    return _first_line(_expand_use(text))


def _expand_use(path: str) -> list[str]:
    """``a::{b, c::D}`` -> ``a::b``, ``a::c::D`` (one level of braces; aliases dropped)."""
    path = re.sub(r"\s+as\s+\w+", "", re.sub(r"\s+", " ", path))
    brace = path.find("{")
    if brace < 0:
        return [path.strip()]
    base = path[:brace].rstrip(":").strip()
    inner = path[brace + 1 : path.rfind("}")]
    items = [item.strip() for item in re.split(r",(?![^{]*})", inner) if item.strip()]
    out = [base]
    for item in items:
        if item == "self":
            continue
        out.extend(_expand_use(f"{base}::{item}") if "{" in item else [f"{base}::{item}"])
    return out


def _imports_java(walker: _Walker, node: Node) -> list[tuple[str, int]]:
    text = re.sub(r"^\s*import\s+(?:static\s+)?|\s*;\s*$", "", walker.text(node))
    return [(re.sub(r"\s+", "", text), 0)]


def _imports_csharp(walker: _Walker, node: Node) -> list[tuple[str, int]]:
    text = re.sub(
        r"^\s*(?:global\s+)?using\s+(?:static\s+)?(?:\w+\s*=\s*)?|\s*;\s*$", "", walker.text(node)
    )
    return [(re.sub(r"\s+", "", text), 0)]


def _imports_php(walker: _Walker, node: Node) -> list[tuple[str, int]]:
    text = re.sub(r"^\s*use\s+(?:function\s+|const\s+)?|\s*;\s*$", "", walker.text(node))
    out = []
    for item in _expand_use(text.replace("\\", "::")):
        out.append(item.replace("::", "\\").strip("\\"))
    return _first_line(out)


def _imports_kotlin(walker: _Walker, node: Node) -> list[tuple[str, int]]:
    text = re.sub(r"^\s*import\s+|\s+as\s+\w+|\s*;?\s*$", "", walker.text(node))
    return [(re.sub(r"\s+", "", text), 0)]


def _imports_swift(walker: _Walker, node: Node) -> list[tuple[str, int]]:
    text = walker.text(node)
    return [(re.sub(r"^\s*(?:@\w+\s+)*import\s+(?:\w+\s+)?", "", text).strip(), 0)]


_IMPORTS: dict[str, Callable[[_Walker, Any], list[tuple[str, int]]]] = {
    "c": _imports_c,
    "cpp": _imports_c,
    "javascript": _imports_js,
    "typescript": _imports_js,
    "go": _imports_go,
    "rust": _imports_rust,
    "java": _imports_java,
    "kotlin": _imports_kotlin,
    "csharp": _imports_csharp,
    "php": _imports_php,
    "ruby": lambda walker, node: [],
    "swift": _imports_swift,
}
