"""The module graph beyond Python, from the context manager's parse (``architecture_analysis``).

:mod:`agentrt.agents.builtin.architecture` reads Python with :mod:`ast`; every other language
the context manager parses with tree-sitter (JavaScript, TypeScript, Go, Rust, Java, Kotlin,
C, C++, C#, Ruby, PHP, Swift) is read here, from the repository index
(:func:`agentrt.agents.builtin.common.load_context_index`: the one ``context_gathering``
built, from memory or the context store, so a ``code-analysis`` run parses each file
once; built and stored here on its own): each file's imports as written,
with their lines and kinds (:class:`~agentrt.context.compress.FileStructure`), resolved to
files by :func:`agentrt.context.graph.resolved_imports`. Nothing here resolves an import
itself; it only names the nodes the resolved files belong to.

Languages come in families whose files import each other (JavaScript with TypeScript, Java
with Kotlin, C with C++); each family is a graph of its own. A node is a module as that
language's users think of one:

* **Go**: a package, i.e. a folder (``core/logx``; ``.`` at the root).
* **JavaScript/TypeScript**, **C/C++**, **Ruby**: a file, named by its path.
* **Rust**: a module file, named by its path in the crate (``grep_searcher::searcher``; the
  crate's ``lib.rs`` by the crate's name, its ``main.rs`` as ``crate::main``). ``mod x;``
  declares a child module, which is the module tree, not a dependency: it is not an edge;
  ``use x::Y`` below ``mod x;`` is resolved as ``self::x::Y``. Files outside a crate's
  ``src`` (``examples/``, ``benches/``) are named by their path.
* **Java/Kotlin**: a class file, named ``package.Class``. A class uses the classes of its
  own package without importing them, so those uses are not edges.
* **PHP**: a class file, ``Namespace\\Class``; **C#**: a namespace (``using`` names one);
  **Swift**: a module (Swift Package Manager's ``Sources/<Module>/``), other files by path.

Two files with the same name are named by their paths instead. Test code is left out: the
context manager does not parse it outside Python (:data:`agentrt.context.compress.TEST_PATH`:
``x_test.go``, ``x.test.ts``, ``src/test/java``, ``tests/``; the coverage line counts it),
and minified files (a mean line over ``MINIFIED_MEAN_LINE`` characters) with it.

Edges are resolved imports, each with the ``file:line`` of its first import (every import
making it is kept: a package's files may each import another package); their kinds are
those of Python's graph: ``runtime``, ``type_checking`` for TypeScript's ``import type``
(erased when compiled), ``deferred`` for ``import()`` and for a ``require()`` inside a
function. Only ``runtime`` edges make cycles and layers. An import naming more than
:data:`MAX_TARGET_NODES` modules (a Java wildcard over a big package) links none.

Imports that name nothing in the repository are *external*, counted per top-level name: a
Go module path (from ``go.mod``'s ``require``), an npm package (``@scope/name``; Node's
built-in modules are the standard library), a crate (``std``, ``core``, ``alloc`` are the
standard library), a Java package up to its class name (at most three parts: ``org.junit``,
``com.google.common``; ``java.*``, ``javax.*``, ``jdk.*``, ``kotlin.*`` standard), a header's
first path part (C and C++ standard and POSIX headers standard), a C# namespace's first two
parts, a PHP vendor, a Ruby library, a Swift module (Apple's and the toolchain's standard).
An import that looks internal (a relative path, ``crate::``, the repository's own Go module)
but names no file is not external: it is counted in a note.

**Cycles** are reported for JavaScript/TypeScript only, where a cycle of load-time imports
is a real hazard (a CommonJS module sees a half-initialised ``exports``; an ES module hits
the temporal dead zone). Elsewhere they mean nothing or cannot happen: Go's compiler and
Swift's build reject import cycles between packages or modules; Rust modules of a crate
use each other freely (cargo rejects crate cycles); Java, Kotlin and C# classes refer to
each other freely (cycles between their *packages* show in the layers); C and C++
include cycles behind include guards are usual; PHP's ``use`` only names a class.

**Entry points**, where they are cheap to see: Go's ``package main`` (its ``func main``),
Rust's ``src/main.rs``, ``src/bin/`` and ``[[bin]]`` targets (their ``fn main``), a Java or
Kotlin ``main`` method (or Kotlin's top-level ``fun main``), C#'s ``Main``, C and C++
``main`` functions, Swift's ``main.swift``, and ``package.json``'s ``bin`` and ``main``.
Ruby's and PHP's scripts (``bin/``, ``public/index.php``) and C#'s top-level statements are
not looked for: nothing in the parse marks them.
"""

from __future__ import annotations

import functools
import json
import os
import re
import tomllib
from collections import Counter, defaultdict
from collections.abc import Collection, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath
from typing import TYPE_CHECKING

import networkx as nx

from agentrt.agents.builtin.common import MINIFIED_MEAN_LINE, load_context_index

if TYPE_CHECKING:
    from agentrt.agents.builtin.common import RepoFiles as ScannedFiles
    from agentrt.context.compress import FileStructure
    from agentrt.context.graph import RepoFiles
    from agentrt.context.sources import SourceFile

__all__ = ["FAMILIES", "LanguageGraph", "Reading", "language_graphs"]

#: Language (the context manager's name) -> the family whose files import each other.
FAMILIES = {
    "javascript": "javascript",
    "typescript": "javascript",
    "go": "go",
    "rust": "rust",
    "java": "java",
    "kotlin": "java",
    "c": "c",
    "cpp": "c",
    "csharp": "csharp",
    "ruby": "ruby",
    "php": "php",
    "swift": "swift",
}
_LABELS = {
    "python": "Python",
    "javascript": "JavaScript/TypeScript",
    "go": "Go",
    "rust": "Rust",
    "java": "Java/Kotlin",
    "c": "C/C++",
    "csharp": "C#",
    "ruby": "Ruby",
    "php": "PHP",
    "swift": "Swift",
}
#: What a node is, per family.
_UNITS = {
    "python": "module",
    "javascript": "file",
    "go": "package (folder)",
    "rust": "module (file)",
    "java": "class (file)",
    "c": "file",
    "csharp": "namespace",
    "ruby": "file",
    "php": "class (file)",
    "swift": "module",
}
#: A node, and nodes, in a sentence.
_NOUNS = {
    "python": ("module", "modules"),
    "javascript": ("file", "files"),
    "go": ("package", "packages"),
    "rust": ("module", "modules"),
    "java": ("class", "classes"),
    "c": ("file", "files"),
    "csharp": ("namespace", "namespaces"),
    "ruby": ("file", "files"),
    "php": ("class", "classes"),
    "swift": ("module", "modules"),
}
#: How a package's name parts are joined.
_SEPARATORS = {"java": ".", "csharp": ".", "rust": "::", "php": "\\"}
#: Why cycles are not looked for, per family (see the module docstring).
_NO_CYCLES = {
    "go": "Go's compiler rejects import cycles",
    "swift": "Swift's build rejects module cycles",
    "rust": "a crate's modules use each other freely",
    "java": "classes refer to each other freely",
    "csharp": "classes refer to each other freely",
    "c": "include cycles behind include guards are usual",
    "php": "`use` only names a class",
    "ruby": "requires are not followed",
}

_NODE_BUILTINS_TEXT = """
    assert async_hooks buffer child_process cluster console constants crypto dgram
    diagnostics_channel dns domain events fs http http2 https inspector module net os path
    perf_hooks process punycode querystring readline repl stream string_decoder sys timers
    tls trace_events tty url util v8 vm wasi worker_threads zlib test"""
_NODE_BUILTINS = frozenset(_NODE_BUILTINS_TEXT.split())
_C_SYSTEM_TEXT = """
    assert.h complex.h ctype.h errno.h fenv.h float.h inttypes.h iso646.h limits.h
    locale.h math.h setjmp.h signal.h stdalign.h stdarg.h stdatomic.h stdbool.h stddef.h
    stdint.h stdio.h stdlib.h stdnoreturn.h string.h tgmath.h threads.h time.h uchar.h
    wchar.h wctype.h unistd.h pthread.h fcntl.h dirent.h dlfcn.h poll.h sched.h
    semaphore.h strings.h termios.h syslog.h pwd.h grp.h netdb.h getopt.h libgen.h
    malloc.h alloca.h endian.h execinfo.h glob.h regex.h spawn.h utime.h sys arpa
    netinet net linux mach windows.h winsock2.h ws2tcpip.h intrin.h immintrin.h
    emmintrin.h xmmintrin.h x86intrin.h arm_neon.h io.h process.h direct.h"""
_C_SYSTEM = frozenset(_C_SYSTEM_TEXT.split())
_RUBY_STDLIB_TEXT = """
    json set time date fileutils yaml psych net uri securerandom digest open3 optparse
    pathname tempfile tmpdir logger stringio erb socket benchmark pp forwardable singleton
    ostruct csv open-uri zlib base64 openssl English etc shellwords timeout monitor
    rbconfig bigdecimal delegate observer io prettyprint ripper coverage objspace"""
_RUBY_STDLIB = frozenset(_RUBY_STDLIB_TEXT.split())
_SWIFT_SYSTEM_TEXT = """
    Swift Foundation FoundationNetworking UIKit AppKit SwiftUI Combine Darwin Glibc
    Dispatch XCTest CoreData CoreGraphics CoreFoundation CoreImage CoreLocation os
    ObjectiveC Network CryptoKit Security PackageDescription WatchKit Cocoa QuartzCore
    AVFoundation MapKit WebKit StoreKit UserNotifications Testing Observation"""
_SWIFT_SYSTEM = frozenset(_SWIFT_SYSTEM_TEXT.split())
_JVM_STANDARD = ("java", "javax", "jdk", "sun", "kotlin")
_RUST_STANDARD = frozenset({"std", "core", "alloc", "proc_macro", "test"})
#: Go hosts whose module paths have an owner part: github.com/owner/repo.
_GO_OWNER_HOSTS = frozenset(
    {"github.com", "gitlab.com", "bitbucket.org", "golang.org", "gitee.com", "codeberg.org"}
)
#: A package import naming more nodes than this links none (a wildcard over a big
#: package says little about which class is used), as in the context graph.
MAX_TARGET_NODES = 40


@dataclass
class LanguageGraph:
    """One family's module graph.

    Nodes carry ``path`` (the file, or a package's folder) and ``group`` (the name parts
    packages are formed from); edges carry ``kind``, ``path`` and ``line`` (the first import
    of that kind) and ``sites`` (every ``(file, line)`` importing it, in order).
    """

    family: str
    graph: nx.DiGraph = field(default_factory=nx.DiGraph)
    #: File -> its node.
    node_of: dict[str, str] = field(default_factory=dict)
    #: External top-level name -> (standard library?, nodes importing it).
    externals: dict[str, tuple[bool, set[str]]] = field(default_factory=dict)
    #: (kind, name, target, path, line) of each entry point.
    entry_points: list[tuple[str, str, str, str, int]] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)

    @property
    def label(self) -> str:
        return _LABELS[self.family]

    @property
    def unit(self) -> str:
        return _UNITS[self.family]

    @property
    def separator(self) -> str:
        return _SEPARATORS.get(self.family, "/")

    @property
    def cycles_checked(self) -> bool:
        return self.family not in _NO_CYCLES

    @property
    def no_cycles_because(self) -> str:
        return _NO_CYCLES.get(self.family, "")


def label(family: str) -> str:
    """``javascript`` -> ``JavaScript/TypeScript``."""
    return _LABELS[family]


def unit(family: str) -> str:
    """What a node of the family is: ``package (folder)``, ``file``…"""
    return _UNITS[family]


def noun(family: str, n: int) -> str:
    """What ``n`` nodes of the family are: ``package``, ``packages``, ``classes``…"""
    return _NOUNS[family][n != 1]


def needs_index(files: Sequence[SourceFile]) -> bool:
    """Whether any of ``files`` is code of a language read here (else no index is built)."""
    return any(f.language in FAMILIES for f in files)


@dataclass
class Reading:
    """What :func:`language_graphs` read."""

    graphs: list[LanguageGraph]
    #: Paths whose imports are in the graphs.
    analysed: set[str]
    #: Code files of these languages left out -> why (test code, minified…).
    left_out: dict[str, str]


def language_graphs(whole: ScannedFiles, selected: Collection[str] | None = None) -> Reading:
    """The graphs of every family with files in ``whole`` (the repository's scan), from the
    context manager's index of it (:func:`~agentrt.agents.builtin.common.load_context_index`).
    ``selected``: the paths the analysis is restricted to (imports still resolve against
    the whole repository; edges to other files are left out)."""
    from agentrt.context.graph import RepoFiles, resolved_imports

    root = whole.root
    index = load_context_index(root, whole)
    files = RepoFiles(index.paths, index.structures)
    wanted = None if selected is None else set(selected)
    sizes = {source.path: source.size for source in whole.files}
    chosen = [
        f
        for f, s in enumerate(files.structures)
        if s.parsed
        and s.language in FAMILIES
        and (wanted is None or files.paths[f] in wanted)
        and sizes.get(files.paths[f], 0) <= MINIFIED_MEAN_LINE * max(s.n_lines, 1)
    ]
    names = _Names(files, root)
    resolving = _Resolving(files, root)
    graphs: dict[str, LanguageGraph] = {}
    where: dict[int, tuple[LanguageGraph, str]] = {}
    for f in chosen:
        family = FAMILIES[files.structures[f].language]
        lg = graphs.get(family)
        if lg is None:
            lg = graphs[family] = LanguageGraph(family)
        node, group, node_path = names.node(f, family)
        where[f] = (lg, node)
        lg.node_of[files.paths[f]] = node
        if node not in lg.graph:
            lg.graph.add_node(node, path=node_path, group=group, files=0)
        lg.graph.nodes[node]["files"] += 1

    # (family, importer, imported) -> (file, line, kind) of every import making the edge
    sites: dict[tuple[str, str, str], list[tuple[str, int, str]]] = defaultdict(list)
    unresolved: dict[str, list[str]] = defaultdict(list)
    languages = {files.structures[f].language for f in chosen}
    for f, i, targets in resolved_imports(files, languages=languages, limit=None):
        placed = where.get(f)
        if placed is None:
            continue
        lg, node = placed
        structure = files.structures[f]
        imported = structure.imports[i]
        if imported.startswith("mod:"):
            continue  # a Rust module declaration: the module tree, not a dependency
        path = files.paths[f]
        line = structure.import_lines[i] if i < len(structure.import_lines) else 0
        if not targets and lg.family == "rust":
            targets = _rust_local(files, f, structure, imported)
        nodes = sorted({t for n in targets if (t := _target(where, n, lg)) is not None} - {node})
        if not targets:
            name, stdlib = _EXTERNAL[lg.family](resolving, imported)
            if name is None:
                unresolved[lg.family].append(f"{path}:{line} {imported!r}")
            else:
                known = lg.externals.get(name)
                lg.externals[name] = (stdlib, (known[1] if known else set()) | {node})
            continue
        if len(nodes) > MAX_TARGET_NODES:
            continue
        kind = _KINDS[structure.import_kinds.get(imported, "")]
        for target in nodes:
            sites[lg.family, node, target].append((path, line, kind))
    for (family, source, target), made_by in sites.items():
        made_by.sort()
        # The edge's kind is its strongest import's; its place, the first of those.
        kind = max((k for _, _, k in made_by), key=KIND_STRENGTH.__getitem__)
        path, line = next((p, n) for p, n, k in made_by if k == kind)
        graphs[family].graph.add_edge(
            source, target, kind=kind, path=path, line=line, sites=[(p, n) for p, n, _ in made_by]
        )
    for family, examples in unresolved.items():
        graphs[family].notes.append(
            f"{label(family)}: {len(examples)} import{'s' if len(examples) != 1 else ''} of "
            f"the repository's own code name no file of it (first: {examples[0]})"
        )
    for lg in graphs.values():
        lg.entry_points = sorted(_entry_points(lg, files, chosen, where, root))
    analysed = {files.paths[f] for f in chosen}
    left_out = {
        source.path: _why_left_out(files, source.path)
        for source in whole.files
        if source.language in FAMILIES
        and source.path not in analysed
        and (wanted is None or source.path in wanted)
    }
    return Reading(sorted(graphs.values(), key=lambda g: g.family), analysed, left_out)


def _why_left_out(files: RepoFiles, path: str) -> str:
    from agentrt.context.compress import TEST_PATH

    f = files.file(path)
    if f is None:  # select.DEFAULT_EXCLUDES: *.min.js is the only code among them
        return "minified" if path.endswith(".min.js") else "not indexed"
    if files.structures[f].parsed:
        return "minified"
    # The context manager keeps tests outside Python as line windows (compress.TEST_PATH).
    return "test code" if TEST_PATH.search(path) else "not parsed"


#: Edge kinds from strongest: a load-time import, a deferred one, a type-only one.
KIND_STRENGTH = {"runtime": 2, "deferred": 1, "type_checking": 0}
_KINDS = {"": "runtime", "dynamic": "deferred", "type": "type_checking"}


def _target(where: dict[int, tuple[LanguageGraph, str]], f: int, lg: LanguageGraph) -> str | None:
    placed = where.get(f)
    return placed[1] if placed is not None and placed[0] is lg else None


def _rust_local(files: RepoFiles, f: int, structure: FileStructure, imported: str) -> list[int]:
    """``use x::Y`` where ``mod x;`` is declared in the same file: a path relative to this
    module (Rust 2018), resolved as ``self::x::Y``."""
    from agentrt.context.graph import resolve_import

    head = imported.split("::", 1)[0]
    if head and f"mod:{head}" in structure.imports:
        return resolve_import(files, f, f"self::{imported}", limit=None)
    return []


# --------------------------------------------------------------------------------------------
# Node names


class _Names:
    """Each file's node, its group (package name parts) and the node's path."""

    def __init__(self, files: RepoFiles, root: Path) -> None:
        self.files = files
        self.root = root
        self.swift_module_of = {f: module for module, fs in files.swift_modules.items() for f in fs}
        # Names of every parsed file of the families (not only the analysed ones), so that
        # a file is named the same whatever the analysis is restricted to.
        self.named = {
            f: self._named(f, FAMILIES[s.language])
            for f, s in enumerate(files.structures)
            if s.parsed and s.language in FAMILIES
        }
        self.clashes = Counter(
            (FAMILIES[files.structures[f].language], name) for f, (name, _) in self.named.items()
        )

    def node(self, f: int, family: str) -> tuple[str, tuple[str, ...], str]:
        """(node, group, node's path) of file ``f``."""
        files = self.files
        path = files.paths[f]
        structure = files.structures[f]
        folder = path.rpartition("/")[0]
        if family == "go":
            return folder or ".", tuple(folder.split("/")) if folder else (), folder or "."
        if family == "csharp" and structure.module:
            return structure.module, tuple(structure.module.split(".")), folder or "."
        if family == "swift" and f in self.swift_module_of:
            module = self.swift_module_of[f]
            above = ("/" + path).rpartition("/Sources/")[0].lstrip("/")
            return module, (module,), f"{above}/Sources/{module}".lstrip("/")
        name, group = self.named[f]
        # Two files of one name (a class in two source trees): both named by their paths.
        return (name if self.clashes[family, name] == 1 else path), group, path

    def _named(self, f: int, family: str) -> tuple[str, tuple[str, ...]]:
        path = self.files.paths[f]
        structure = self.files.structures[f]
        folder = path.rpartition("/")[0]
        stem = PurePosixPath(path).stem
        if family == "java" and structure.module:
            return f"{structure.module}.{stem}", tuple(structure.module.split("."))
        if family == "php" and structure.module:  # the namespace, dotted by the parse
            parts = tuple(structure.module.split("."))
            return "\\".join([*parts, stem]), parts
        if family == "rust":
            from agentrt.context.graph import rust_module

            crate, parts = rust_module(self.files, path)
            crate_name = self.files.crates.get(crate) or crate.rpartition("/")[2] or self.root.name
            if path.startswith(f"{crate}/src/" if crate else "src/"):
                if not parts and PurePosixPath(path).name == "main.rs":
                    parts = ["main"]  # the binary's root, apart from the library's
                return "::".join([crate_name, *parts]), (crate_name, *parts)
            inside = path[len(crate) + 1 :] if crate else path
            return path, (crate_name, inside.split("/")[0])
        return path, tuple(folder.split("/")) if folder else ()


# --------------------------------------------------------------------------------------------
# External imports


@dataclass
class _Resolving:
    """What the external-name rules read: the repository's files and manifests."""

    files: RepoFiles
    root: Path

    @functools.cached_property
    def go_requires(self) -> set[str]:
        """Module paths the repository's ``go.mod`` files require."""
        found: set[str] = set()
        for folder in self.files.go_modules.values():
            try:
                text = (self.root / folder / "go.mod").read_text(errors="replace")
            except OSError:
                continue
            found.update(_GO_REQUIRE.findall(text))
        return found

    @functools.cached_property
    def php_vendors(self) -> set[str]:
        """First parts of the repository's own PHP namespaces."""
        return {m.split(".")[0] for (language, m) in self.files.packages if language == "php"}


def _go_external(r: _Resolving, imported: str) -> tuple[str | None, bool]:
    if any(imported == m or imported.startswith(m + "/") for m in r.files.go_modules):
        return None, False
    parts = imported.split("/")
    if "." not in parts[0]:
        return imported, True
    module = max((m for m in r.go_requires if imported == m or imported.startswith(m + "/")),
                 key=len, default=None)  # fmt: skip
    if module is None:
        keep = 3 if parts[0] in _GO_OWNER_HOSTS else 2
        if len(parts) > keep and re.fullmatch(r"v\d+", parts[keep]):
            keep += 1
        module = "/".join(parts[:keep])
    return module, False


_GO_REQUIRE = re.compile(r"^\s*(?:require\s+)?([\w.\-~/]+\.[\w.\-~/]+)\s+v\d", re.M)


def _js_external(r: _Resolving, imported: str) -> tuple[str | None, bool]:
    if imported.startswith((".", "/", "@/", "~/", "#")):
        return None, False
    if imported.startswith("node:"):
        return imported[5:].split("/")[0], True
    parts = imported.split("/")
    name = "/".join(parts[:2]) if imported.startswith("@") and len(parts) > 1 else parts[0]
    if name in r.files.js_packages or (name in r.files.folders and not imported.startswith("@")):
        return None, False  # a workspace package, or a path alias naming a top folder
    return name, name in _NODE_BUILTINS


def _rust_external(r: _Resolving, imported: str) -> tuple[str | None, bool]:
    head = imported.lstrip(":").split("::", 1)[0]
    if head in ("crate", "self", "super", "") or head in r.files.crate_names:
        return None, False
    return head, head in _RUST_STANDARD


def _jvm_external(r: _Resolving, imported: str) -> tuple[str | None, bool]:
    parts = [p for p in imported.split(".") if p != "*"]
    for cut in range(len(parts) - 1, 1, -1):
        if ("jvm", ".".join(parts[:cut])) in r.files.packages:
            return None, False
    standard = parts[0] in _JVM_STANDARD
    package: list[str] = []
    for part in parts[: 2 if standard else 3]:
        if part[:1].isupper():
            break
        package.append(part)
    return ".".join(package or parts[:1]), standard


def _c_external(r: _Resolving, imported: str) -> tuple[str | None, bool]:
    if imported.startswith("."):
        return None, False
    first = imported.split("/")[0]
    standard = first in _C_SYSTEM or ("." not in imported and "/" not in imported)
    return first, standard


def _csharp_external(r: _Resolving, imported: str) -> tuple[str | None, bool]:
    parts = imported.split(".")
    for cut in range(len(parts), 0, -1):
        if ("csharp", ".".join(parts[:cut])) in r.files.packages:
            return None, False
    return ".".join(parts[:2]), parts[0] in ("System", "Microsoft", "Windows")


def _php_external(r: _Resolving, imported: str) -> tuple[str | None, bool]:
    if imported.endswith(".php"):
        return None, False
    vendor = imported.strip("\\").split("\\")[0]
    return (None, False) if vendor in r.php_vendors else (vendor, False)


def _ruby_external(r: _Resolving, imported: str) -> tuple[str | None, bool]:
    if imported.startswith("."):
        return None, False
    name = imported.split("/")[0]
    return name, name in _RUBY_STDLIB


def _swift_external(r: _Resolving, imported: str) -> tuple[str | None, bool]:
    name = imported.split(".")[0]
    return name, name in _SWIFT_SYSTEM


_EXTERNAL = {
    "go": _go_external,
    "javascript": _js_external,
    "rust": _rust_external,
    "java": _jvm_external,
    "c": _c_external,
    "csharp": _csharp_external,
    "php": _php_external,
    "ruby": _ruby_external,
    "swift": _swift_external,
}


# --------------------------------------------------------------------------------------------
# Entry points


def _main_line(root: Path, path: str, structure: FileStructure, name: str) -> int | None:
    """The line of the function or method ``name`` (``main``; ``Main`` in C#) of a file:
    the line that names it, below its doc comment (None: it has none)."""
    unit = next(
        (
            u
            for u in structure.units
            if u.kind in ("function", "method") and u.name.rpartition(".")[2] == name
        ),
        None,
    )
    if unit is None:
        return None
    try:
        lines = (root / path).read_text(errors="replace").split("\n")
    except OSError:
        return unit.start_line
    named = re.compile(rf"\b{name}\s*\(")
    return next(
        (
            i
            for i in range(unit.start_line, min(unit.end_line, len(lines)) + 1)
            if named.search(lines[i - 1])
        ),
        unit.start_line,
    )


def _entry_points(
    lg: LanguageGraph,
    files: RepoFiles,
    chosen: list[int],
    where: dict[int, tuple[LanguageGraph, str]],
    root: Path,
) -> Iterator[tuple[str, str, str, str, int]]:
    family = lg.family
    bins = _rust_bins(files, root) if family == "rust" else {}
    seen: set[str] = set()
    for f in chosen:
        placed = where[f]
        if placed[0] is not lg:
            continue
        node = placed[1]
        path = files.paths[f]
        structure = files.structures[f]
        main = _main_line(root, path, structure, "Main" if family == "csharp" else "main")
        if family == "go" and structure.module == "main" and main is not None:
            if node not in seen:
                seen.add(node)
                target = "go run ." if node == "." else f"go run ./{node}"
                yield "main_function", node, target, path, main
        elif family == "rust" and path in bins and main is not None:
            yield "main_function", bins[path], f"cargo run --bin {bins[path]}", path, main
        elif family == "java" and main is not None:
            command = "java" if structure.language == "java" else "kotlin"
            target = node if structure.language == "java" else f"{node}Kt"
            yield "main_function", node, f"{command} {target}", path, main
        elif family == "c" and main is not None:
            yield "main_function", node, path, path, main
        elif family == "csharp" and main is not None:
            yield "main_function", node, "dotnet run", path, main
        elif family == "swift" and PurePosixPath(path).name == "main.swift":
            yield "main_function", node, f"swift run {node}", path, 1
    if family == "javascript":
        yield from _package_json_entries(files, root)


def _rust_bins(files: RepoFiles, root: Path) -> dict[str, str]:
    """Binary crate roots -> their names: ``src/main.rs`` (the package's), ``src/bin/x.rs``
    and ``src/bin/x/main.rs``, and the ``[[bin]]`` targets of each ``Cargo.toml``."""
    bins: dict[str, str] = {}
    for folder in files.crates:
        manifest = root / folder / "Cargo.toml" if folder else root / "Cargo.toml"
        try:
            data = tomllib.loads(manifest.read_text(errors="replace"))
        except (OSError, tomllib.TOMLDecodeError):
            data = {}
        package = data.get("package", {})
        name = package.get("name") if isinstance(package, dict) else None
        prefix = f"{folder}/" if folder else ""
        bins[f"{prefix}src/main.rs"] = str(name or folder.rpartition("/")[2] or root.name)
        for target in data.get("bin", []) if isinstance(data.get("bin"), list) else []:
            if isinstance(target, dict) and isinstance(target.get("name"), str):
                where = target.get("path") or f"src/bin/{target['name']}.rs"
                bins[os.path.normpath(prefix + str(where))] = target["name"]
        for path in files.paths:
            if path.startswith(f"{prefix}src/bin/") and path.endswith(".rs"):
                rest = path[len(prefix) + len("src/bin/") : -3].split("/")
                if len(rest) == 1 or rest[1:] == ["main"]:
                    bins.setdefault(path, rest[0])
    return bins


def _package_json_entries(files: RepoFiles, root: Path) -> Iterator[tuple[str, str, str, str, int]]:
    """``bin`` and ``main`` of every ``package.json`` (node_modules is never scanned)."""
    for path in files.paths:
        if path.rpartition("/")[2] != "package.json":
            continue
        try:
            text = (root / path).read_text(errors="replace")
            data = json.loads(text)
        except (OSError, ValueError):
            continue
        if not isinstance(data, dict):
            continue
        folder = path.rpartition("/")[0]
        name = str(data.get("name") or folder or root.name)
        bins = data.get("bin")
        if isinstance(bins, str):
            bins = {name.rpartition("/")[2]: bins}
        if isinstance(bins, dict):
            for command, script in sorted(bins.items()):
                if isinstance(script, str):
                    target = os.path.normpath(f"{folder}/{script}" if folder else script)
                    yield "package_bin", command, target, path, _key_line(text, "bin")
        main = data.get("main")
        if isinstance(main, str):
            target = os.path.normpath(f"{folder}/{main}" if folder else main)
            yield "package_main", name, target, path, _key_line(text, "main")


def _key_line(text: str, key: str) -> int:
    """Line of the first ``"key":`` in a JSON text; 0 if not found."""
    match = re.search(rf'"{re.escape(key)}"\s*:', text)
    return text.count("\n", 0, match.start()) + 1 if match else 0
