"""References: which names each line of a file uses, and what its imports bind.

The call and reference graph of :mod:`agentrt.context.impact` is built from this: per file,
a list of :class:`Ref` (a name used at a line: called, or only mentioned; bare, or as the
attribute of a receiver such as ``self`` or an imported module) and the names its imports
bind (:class:`Binding`). Which unit a reference belongs to follows from its line and the
file's units (:class:`~agentrt.context.compress.FileStructure`), so an extractor needs to
know nothing about units.

Extractors are registered per file suffix (:data:`EXTRACTORS`, :func:`register_extractor`).
Python's is built on :mod:`ast`; other languages can plug theirs in (a tree-sitter query
that yields calls, identifiers and imports fills the same :class:`FileReferences`). A file
whose suffix has no extractor, or that does not parse, has no references.
"""

from __future__ import annotations

import ast
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Literal, NamedTuple

__all__ = [
    "EXTRACTORS",
    "Binding",
    "FileReferences",
    "Ref",
    "RefKind",
    "file_references",
    "python_references",
    "register_extractor",
]

#: ``call``: ``name(...)``; ``name``: ``name`` used otherwise (passed, subclassed, read);
#: ``attr_call``: ``receiver.name(...)``; ``attr``: ``receiver.name`` used otherwise.
RefKind = Literal["call", "name", "attr_call", "attr"]


class Ref(NamedTuple):
    """One use of a name at a line. ``receiver`` is the dotted expression before the
    attribute (``self``, ``os.path``, ``super()``), or "" for a bare name or an
    attribute of something that is not a dotted name (``f().name``)."""

    name: str
    line: int
    kind: RefKind
    receiver: str = ""

    @property
    def is_call(self) -> bool:
        return self.kind in ("call", "attr_call")


class Binding(NamedTuple):
    """What an import binds to a local name.

    ``import a.b as m``: ``m`` -> ``Binding("a.b", None)``; ``import a.b``: ``a`` ->
    ``Binding("a", None)``; ``from .x import f as g``: ``g`` -> ``Binding(".x", "f")``.
    ``module`` keeps the leading dots of a relative import.
    """

    module: str
    name: str | None
    line: int


@dataclass(slots=True)
class FileReferences:
    """The references of one file (see the module docstring)."""

    refs: list[Ref] = field(default_factory=list)
    bindings: dict[str, Binding] = field(default_factory=dict)
    #: Modules imported with ``from module import *``.
    star_imports: list[str] = field(default_factory=list)
    #: Names assigned at module level: (name, first line, last line) of the statement.
    assigned: list[tuple[str, int, int]] = field(default_factory=list)


Extractor = Callable[[str, str], "FileReferences | None"]

#: File suffix -> extractor ``(path, text) -> FileReferences | None``.
EXTRACTORS: dict[str, Extractor] = {}


def register_extractor(suffixes: Iterable[str], extractor: Extractor) -> None:
    """Use ``extractor`` for files ending with any of ``suffixes`` (e.g. ``[".js"]``)."""
    for suffix in suffixes:
        EXTRACTORS[suffix] = extractor


def file_references(path: str, text: str) -> FileReferences | None:
    """The references of ``path`` (its text given), or None when no extractor handles it."""
    suffix = path[path.rfind(".") :] if "." in path.rsplit("/", 1)[-1] else ""
    extractor = EXTRACTORS.get(suffix)
    return extractor(path, text) if extractor is not None else None


# --------------------------------------------------------------------------- Python


def _dotted(node: ast.expr) -> str:
    """``a.b.c`` for a chain of attributes on a name, ``super()`` for ``super()``, else ""."""
    parts: list[str] = []
    while isinstance(node, ast.Attribute):
        parts.append(node.attr)
        node = node.value
    if isinstance(node, ast.Name):
        parts.append(node.id)
    elif isinstance(node, ast.Call) and isinstance(node.func, ast.Name) and node.func.id == "super":
        parts.append("super()")
    else:
        return ""
    return ".".join(reversed(parts))


class _Collector(ast.NodeVisitor):
    def __init__(self) -> None:
        self.out = FileReferences()

    def visit_Call(self, node: ast.Call) -> None:
        func = node.func
        if isinstance(func, ast.Name):
            self.out.refs.append(Ref(func.id, func.lineno, "call"))
        elif isinstance(func, ast.Attribute):
            self.out.refs.append(Ref(func.attr, func.lineno, "attr_call", _dotted(func.value)))
            self.visit(func.value)
        else:
            self.visit(func)
        for arg in node.args:
            self.visit(arg)
        for keyword in node.keywords:
            self.visit(keyword.value)

    def visit_Name(self, node: ast.Name) -> None:
        if isinstance(node.ctx, ast.Load):
            self.out.refs.append(Ref(node.id, node.lineno, "name"))

    def visit_Attribute(self, node: ast.Attribute) -> None:
        self.out.refs.append(Ref(node.attr, node.lineno, "attr", _dotted(node.value)))
        self.visit(node.value)

    def visit_Import(self, node: ast.Import) -> None:
        for alias in node.names:
            if alias.asname:
                self.out.bindings[alias.asname] = Binding(alias.name, None, node.lineno)
            else:
                head = alias.name.split(".", 1)[0]
                self.out.bindings.setdefault(head, Binding(head, None, node.lineno))

    def visit_ImportFrom(self, node: ast.ImportFrom) -> None:
        module = "." * node.level + (node.module or "")
        for alias in node.names:
            if alias.name == "*":
                self.out.star_imports.append(module)
            else:
                local = alias.asname or alias.name
                self.out.bindings[local] = Binding(module, alias.name, node.lineno)


def python_references(path: str, text: str) -> FileReferences | None:
    """References of a Python file, from :mod:`ast`; None when it does not parse."""
    try:
        tree = ast.parse(text)
    except (SyntaxError, ValueError, RecursionError, MemoryError):
        return None
    collector = _Collector()
    try:
        collector.visit(tree)
    except RecursionError:
        return None
    out = collector.out
    for stmt in tree.body:
        targets: list[ast.expr] = []
        if isinstance(stmt, ast.Assign):
            targets = list(stmt.targets)
        elif isinstance(stmt, ast.AnnAssign | ast.AugAssign):
            targets = [stmt.target]
        for target in targets:
            for node in ast.walk(target):
                if isinstance(node, ast.Name):
                    out.assigned.append((node.id, stmt.lineno, stmt.end_lineno or stmt.lineno))
    return out


register_extractor([".py", ".pyi"], python_references)
