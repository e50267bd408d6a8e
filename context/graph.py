"""The repository graph: imports resolved to files per language, and references by name.

Two graphs are built from the per-file structures (:mod:`agentrt.context.compress`,
:mod:`agentrt.context.syntax`), both language-agnostic in shape:

* :func:`import_graph`: file -> file, an edge for each import that resolves to a file of the
  repository. Each language's imports are resolved its own way (see :func:`resolve_import`):
  Python modules by dotted path; JavaScript/TypeScript relative specifiers with their
  extensions and ``index`` files, package names by ``package.json``; Go import paths by
  directory under ``go.mod``'s module path (a package is all the ``.go`` files of its
  folder); Rust ``mod x;`` and ``use crate::…``/``super::``/``self::`` paths by the module
  tree of the crate (``Cargo.toml``); Java and Kotlin imports by package; C# ``using`` by
  namespace; C/C++ ``#include`` against the including file's folder, then the tree; Ruby
  and PHP by path. An edge weighs 1, or 1/n when an import names a package of n files.
* :func:`reference_graph`: unit -> unit, "u uses a name that v defines". Each unit's
  identifiers are matched against the short names of definition units; a name defined by
  several units links to those in the same file or in files the user's file imports when
  there are any, else to all of them, each weighted 1/number of targets. Names defined
  by more than :data:`MAX_DEFINING_UNITS` units (``get``, ``size``) link nothing.
"""

from __future__ import annotations

import posixpath
from collections.abc import Collection, Iterator, Sequence
from dataclasses import dataclass, field

import numpy as np

from agentrt.context.compress import DEFINITION_KINDS, FileStructure

__all__ = [
    "IMPORT_LANGUAGES",
    "MAX_DEFINING_UNITS",
    "RepoFiles",
    "import_graph",
    "reference_graph",
    "resolve_import",
    "resolved_imports",
    "rust_module",
]

#: A name defined by more units than this is too common to link anything by reference.
MAX_DEFINING_UNITS = 8
#: Imports naming a package (Go, Java wildcard, C# namespace) of more files than this link
#: nothing: such an edge says little about which file matters.
MAX_PACKAGE_FILES = 40

#: Languages that import each other's packages (Kotlin imports Java classes and back).
_FAMILY = {"java": "jvm", "kotlin": "jvm"}
_JS_EXTENSIONS = (".ts", ".tsx", ".d.ts", ".js", ".jsx", ".mjs", ".cjs", ".mts", ".cts")
_JS_LANGUAGES = ("javascript", "typescript")


def module_name(path: str) -> str | None:
    """Dotted module of a Python path (``a/b/__init__.py`` -> ``a.b``), else None."""
    if not path.endswith(".py"):
        return None
    parts = path[:-3].split("/")
    if parts[-1] == "__init__":
        parts.pop()
    # Source trees often live under src/ or lib/; strip those so imports resolve.
    if len(parts) > 1 and parts[0] in ("src", "lib"):
        parts = parts[1:]
    return ".".join(parts) if parts else None


@dataclass
class RepoFiles:
    """Lookup tables over a repository's files, shared by the import resolvers."""

    paths: Sequence[str]
    structures: Sequence[FileStructure]
    index: dict[str, int] = field(init=False)
    #: Folder -> its files.
    folders: dict[str, list[int]] = field(init=False)
    #: File name -> files of that name.
    basenames: dict[str, list[int]] = field(init=False)
    #: Python dotted module -> file.
    modules: dict[str, int] = field(init=False)
    #: Declared package or namespace (Java, Kotlin, C#, PHP, Go) -> files, by language.
    packages: dict[tuple[str, str], list[int]] = field(init=False)
    #: Manifests: go.mod module path -> folder; package.json name -> folder;
    #: Cargo.toml folder -> crate name (with ``-`` as ``_``) and back.
    go_modules: dict[str, str] = field(init=False)
    js_packages: dict[str, str] = field(init=False)
    crates: dict[str, str] = field(init=False)
    crate_names: dict[str, str] = field(init=False)
    #: Swift module -> its files: Swift Package Manager's ``Sources/<Module>/`` (at any
    #: depth, subfolders included).
    swift_modules: dict[str, list[int]] = field(init=False)

    def __post_init__(self) -> None:
        self.index = {path: f for f, path in enumerate(self.paths)}
        self.folders, self.basenames, self.modules = {}, {}, {}
        self.packages, self.go_modules, self.js_packages = {}, {}, {}
        self.crates, self.crate_names = {}, {}
        self.swift_modules = {}
        for f, (path, structure) in enumerate(zip(self.paths, self.structures, strict=True)):
            folder, _, name = path.rpartition("/")
            if name.endswith(".swift"):
                _, sources, rest = ("/" + folder).rpartition("/Sources/")
                if sources and rest:
                    self.swift_modules.setdefault(rest.split("/", 1)[0], []).append(f)
            self.folders.setdefault(folder, []).append(f)
            self.basenames.setdefault(name, []).append(f)
            module = module_name(path)
            if module and module not in self.modules:
                self.modules[module] = f
            if structure.module:
                if name == "go.mod":
                    self.go_modules[structure.module] = folder
                elif name == "package.json":
                    self.js_packages.setdefault(structure.module, folder)
                elif name == "Cargo.toml":
                    crate = structure.module.replace("-", "_")
                    self.crates[folder] = crate
                    self.crate_names.setdefault(crate, folder)
                elif structure.language:
                    key = (_FAMILY.get(structure.language, structure.language), structure.module)
                    self.packages.setdefault(key, []).append(f)

    def mention_modules(self) -> dict[str, int]:
        """Dotted names an issue may use for files of languages other than Python.

        Java and Kotlin: ``package.File`` (``com.x.Item``); Rust: the module path in its
        crate (``discount``, ``tax.rates``), also behind ``crate.`` and the crate's name.
        """
        out: dict[str, int] = {}
        for f, (path, structure) in enumerate(zip(self.paths, self.structures, strict=True)):
            language = structure.language
            if language in ("java", "kotlin") and structure.module:
                stem = path.rpartition("/")[2].rpartition(".")[0]
                out.setdefault(f"{structure.module}.{stem}", f)
            elif language == "rust":
                crate, parts = rust_module(self, path)
                if not parts:
                    continue
                name = ".".join(parts)
                out.setdefault(name, f)
                out.setdefault(f"crate.{name}", f)
                if crate in self.crates:
                    out.setdefault(f"{self.crates[crate]}.{name}", f)
        return out

    def file(self, path: str) -> int | None:
        return self.index.get(path)

    def by_suffix(self, parts: Sequence[str]) -> list[int]:
        """Files whose path ends with ``parts`` (``["shop", "hash.h"]``)."""
        candidates = self.basenames.get(parts[-1], [])
        if len(parts) == 1:
            return list(candidates)
        tail = "/" + "/".join(parts)
        return [f for f in candidates if ("/" + self.paths[f]).endswith(tail)]


def _closest(files: Sequence[int], paths: Sequence[str], near: str) -> list[int]:
    """Of ``files``, those sharing the longest leading folders with the path ``near``."""
    if len(files) <= 1:
        return list(files)
    here = near.split("/")[:-1]

    def shared(f: int) -> int:
        n = 0
        for a, b in zip(here, paths[f].split("/")[:-1], strict=False):
            if a != b:
                break
            n += 1
        return n

    best = max(shared(f) for f in files)
    return [f for f in files if shared(f) == best]


def _join(folder: str, relative: str) -> str:
    return (
        posixpath.normpath(posixpath.join(folder, relative))
        if folder
        else posixpath.normpath(relative)
    )


# --------------------------------------------------------------------------- per language


def _python(files: RepoFiles, f: int, imported: str) -> list[int]:
    path = files.paths[f]
    package = (module_name(path) or "").split(".")
    if not path.endswith("__init__.py"):
        package = package[:-1]
    if imported.startswith("."):
        level = len(imported) - len(imported.lstrip("."))
        base = package[: len(package) - (level - 1)] if level > 1 else package
        imported = ".".join([*base, imported.lstrip(".")]).strip(".")
    while imported:
        target = files.modules.get(imported)
        if target is not None:
            return [target]
        imported = imported.rpartition(".")[0]
    return []


def _js_file(files: RepoFiles, base: str) -> int | None:
    """The file a JavaScript/TypeScript specifier resolved to ``base`` names, if any."""
    for candidate in (base, *(base + ext for ext in _JS_EXTENSIONS)):
        f = files.file(candidate)
        if f is not None:
            return f
    stem, dot, ext = base.rpartition(".")
    if dot and ext in ("js", "jsx", "mjs", "cjs"):  # TypeScript's ESM style: './a.js' is a.ts
        for other in (".ts", ".tsx", ".mts", ".cts"):
            f = files.file(stem + other)
            if f is not None:
                return f
    folder = "" if base == "." else base + "/"  # '..' from a top folder: the root's index
    for ext in _JS_EXTENSIONS:
        f = files.file(f"{folder}index{ext}")
        if f is not None:
            return f
    return None


def _javascript(files: RepoFiles, f: int, spec: str) -> list[int]:
    path = files.paths[f]
    if spec.startswith("."):
        target = _js_file(files, _join(path.rpartition("/")[0], spec))
        return [target] if target is not None else []
    # A package of this repository (a workspace), by the name in its package.json.
    parts = spec.split("/")
    name_len = 2 if spec.startswith("@") and len(parts) > 1 else 1
    folder = files.js_packages.get("/".join(parts[:name_len]))
    if folder is not None:
        rest = "/".join(parts[name_len:])
        for base in [rest, f"src/{rest}"] if rest else ["index", "src/index", "lib/index"]:
            target = _js_file(files, _join(folder, base))
            if target is not None:
                return [target]
        return []
    # Path aliases ('@/components/x', '~/x', 'src/x'): match the path's tail in the tree.
    tail = [p for p in parts if p not in ("@", "~", "")]
    if spec.startswith(("@/", "~/")) or len(tail) >= 2:
        for suffix in ("", *_JS_EXTENSIONS):
            found = files.by_suffix([*tail[:-1], tail[-1] + suffix]) if tail else []
            if not found and suffix:
                found = files.by_suffix([*tail, "index" + suffix])
            if found:
                return _closest(found, files.paths, path)[:1]
    return []


def _go(files: RepoFiles, f: int, spec: str) -> list[int]:
    folder = None
    for module, root in files.go_modules.items():
        if spec == module or spec.startswith(module + "/"):
            folder = _join(root, spec[len(module) + 1 :]) if spec != module else root
            break
    candidates: list[int] = []
    if folder is not None:
        candidates = files.folders.get("" if folder == "." else folder, [])
    else:  # vendored or unknown module: the folder whose path ends like the import path
        parts = spec.split("/")
        if len(parts) >= 2:
            tail = "/" + "/".join(parts[-2:])
            candidates = next(
                (fs for d, fs in files.folders.items() if ("/" + d).endswith(tail)), []
            )
    return [
        c
        for c in candidates
        if files.paths[c].endswith(".go") and not files.paths[c].endswith("_test.go")
    ]


def _rust_crate(files: RepoFiles, path: str) -> tuple[str, str]:
    """(crate folder, source root) of a Rust file: its nearest Cargo.toml folder's src/."""
    folder = path.rpartition("/")[0]
    probe = folder
    while True:
        if probe in files.crates:
            src = _join(probe, "src")
            if (folder + "/").startswith(src + "/") or folder == src:
                return probe, src
            return probe, folder  # tests/, examples/, benches/: each file is a crate root
        if not probe:
            break
        probe = probe.rpartition("/")[0]
    # No Cargo.toml: the nearest folder named src, else the file's folder.
    parts = folder.split("/")
    if "src" in parts:
        src = "/".join(parts[: len(parts) - parts[::-1].index("src")])
        return src.rpartition("/")[0], src
    return folder, folder


def rust_module(files: RepoFiles, path: str) -> tuple[str, list[str]]:
    """(crate folder, module path in the crate) of a Rust file: ``src/a/b.rs`` and
    ``src/a/b/mod.rs`` are ``["a", "b"]``, ``src/lib.rs`` and ``src/main.rs`` ``[]``; a
    file directly in ``tests/``, ``examples/`` or ``benches/`` (a crate root of its own)
    is its name: ``tests/x.rs`` is ``["x"]``."""
    crate, src = _rust_crate(files, path)
    if src and not path.startswith(src + "/"):
        return crate, []
    parts = path[len(src) + 1 if src else 0 : -3].split("/")
    if parts[-1] in ("mod", "lib", "main"):
        parts.pop()
    return crate, parts


def _rust_module_file(files: RepoFiles, folder: str, parts: Sequence[str]) -> int | None:
    """The file of module ``parts`` below ``folder`` (``a/b.rs`` or ``a/b/mod.rs``)."""
    for cut in range(len(parts), 0, -1):
        base = _join(folder, "/".join(parts[:cut]))
        for candidate in (base + ".rs", base + "/mod.rs"):
            f = files.file(candidate)
            if f is not None:
                return f
    return None


def _rust_module_dir(path: str, src: str) -> str:
    """The folder holding the child modules of the module that ``path`` is.

    ``lib.rs``, ``main.rs`` and ``mod.rs`` own their folder, as does any file directly in
    a crate root that is not a ``src`` folder (``tests/x.rs``); ``a/b.rs`` owns ``a/b/``.
    """
    folder, _, name = path.rpartition("/")
    crate_root = folder == src and src.rpartition("/")[2] != "src"
    if name in ("mod.rs", "lib.rs", "main.rs") or crate_root or not name.endswith(".rs"):
        return folder
    return _join(folder, name[:-3])


def _rust(files: RepoFiles, f: int, spec: str) -> list[int]:
    path = files.paths[f]
    _, src = _rust_crate(files, path)
    here = _rust_module_dir(path, src)
    if spec.startswith("mod:"):
        target = _rust_module_file(files, here, [spec[4:]])
        return [target] if target is not None else []
    parts = [p for p in spec.split("::") if p and p != "*"]
    if not parts:
        return []
    head = parts[0]
    if head == "crate":
        folder, rest = src, parts[1:]
    elif head == "self":
        folder, rest = here, parts[1:]
    elif head == "super":
        folder, rest = here, parts
        while rest and rest[0] == "super":
            folder = folder.rpartition("/")[0] if folder != src else src
            rest = rest[1:]
    elif head in files.crate_names:  # another crate of the workspace
        folder, rest = _join(files.crate_names[head], "src"), parts[1:]
    else:
        return []
    if not rest:
        root = next(
            (
                files.file(_join(folder, n))
                for n in ("lib.rs", "main.rs", "mod.rs")
                if files.file(_join(folder, n)) is not None
            ),
            None,
        )
        return [root] if root is not None and root != f else []
    target = _rust_module_file(files, folder, rest)
    if target is None and (folder == src or head in files.crate_names):
        # An item of a crate's root (defined or re-exported there): `crate::Foo`, and
        # `other_crate::Foo` for another crate of the workspace.
        target = next(
            (
                files.file(_join(folder, n))
                for n in ("lib.rs", "main.rs")
                if files.file(_join(folder, n)) is not None
            ),
            None,
        )
    return [target] if target is not None and target != f else []


def _package_member(files: RepoFiles, language: str, spec: str) -> list[int]:
    """Java/Kotlin: the file of class ``a.b.C`` (or of a static member), or a package's."""
    family = _FAMILY.get(language, language)
    parts = spec.split(".")
    wildcard = parts[-1] == "*"
    if wildcard:
        return list(files.packages.get((family, ".".join(parts[:-1])), []))
    for cut in range(len(parts) - 1, 0, -1):
        package = files.packages.get((family, ".".join(parts[:cut])))
        if package:
            name = parts[cut]
            exact = [
                p for p in package if files.paths[p].rpartition("/")[2].rpartition(".")[0] == name
            ]
            if exact:
                return exact
            defining = [
                p
                for p in package
                if any(
                    d == name or d.startswith(name + ".") for d in files.structures[p].definitions
                )
            ]
            return defining
    # No package declared (or not in the tree): by path, com/x/Y.java.
    return [f for ext in (".java", ".kt") for f in files.by_suffix([*parts[:-1], parts[-1] + ext])]


def _java(files: RepoFiles, f: int, spec: str) -> list[int]:
    return _package_member(files, files.structures[f].language, spec)


def _csharp(files: RepoFiles, f: int, spec: str) -> list[int]:
    return list(files.packages.get(("csharp", spec), []))


def _include(files: RepoFiles, f: int, spec: str) -> list[int]:
    path = files.paths[f]
    target = files.file(_join(path.rpartition("/")[0], spec))
    if target is not None:
        return [target]
    parts = [p for p in spec.split("/") if p not in ("", ".", "..")]
    if not parts:
        return []
    found = files.by_suffix(parts)
    return _closest(found, files.paths, path)[:4]


def _swift(files: RepoFiles, f: int, spec: str) -> list[int]:
    """``import Module`` (or ``import struct Module.Type``): the files of the module's
    ``Sources/<Module>/`` folder (Swift Package Manager); system modules resolve to nothing."""
    return list(files.swift_modules.get(spec.split(".", 1)[0], []))


def _ruby(files: RepoFiles, f: int, spec: str) -> list[int]:
    path = files.paths[f]
    name = spec if spec.endswith(".rb") else spec + ".rb"
    if spec.startswith("./"):
        target = files.file(_join(path.rpartition("/")[0], name))
        return [target] if target is not None else []
    found = files.by_suffix(name.split("/"))
    return _closest(found, files.paths, path)[:1]


def _php(files: RepoFiles, f: int, spec: str) -> list[int]:
    path = files.paths[f]
    if spec.endswith(".php"):
        target = files.file(_join(path.rpartition("/")[0], spec))
        if target is not None:
            return [target]
        return _closest(files.by_suffix(spec.split("/")), files.paths, path)[:1]
    parts = [p for p in spec.split("\\") if p]
    # PSR-4: App\Models\User lives in .../Models/User.php (the vendor prefix maps to a folder).
    for keep in range(len(parts), 1, -1):
        found = files.by_suffix([*parts[-keep:-1], parts[-1] + ".php"])
        if found:
            return _closest(found, files.paths, path)[:1]
    return []


_RESOLVERS = {
    "python": _python,
    "javascript": _javascript,
    "typescript": _javascript,
    "go": _go,
    "rust": _rust,
    "java": _java,
    "kotlin": _java,
    "csharp": _csharp,
    "c": _include,
    "cpp": _include,
    "ruby": _ruby,
    "php": _php,
    "swift": _swift,
}


#: Languages whose imports are resolved to files.
IMPORT_LANGUAGES = frozenset(_RESOLVERS)


def resolve_import(
    files: RepoFiles, f: int, imported: str, *, limit: int | None = MAX_PACKAGE_FILES
) -> list[int]:
    """Files of the repository that import ``imported`` of file ``f`` names (maybe none).

    An import naming more than ``limit`` files (a package: Go, a Java wildcard, a C#
    namespace, a Swift module) names none of them; ``limit=None`` keeps them all.
    """
    resolver = _RESOLVERS.get(files.structures[f].language)
    if resolver is None:
        return []
    return _within([t for t in resolver(files, f, imported) if t != f], limit)


def _within(targets: list[int], limit: int | None) -> list[int]:
    return targets if limit is None or len(targets) <= limit else []


def resolved_imports(
    files: RepoFiles,
    *,
    languages: Collection[str] | None = None,
    limit: int | None = MAX_PACKAGE_FILES,
) -> Iterator[tuple[int, int, list[int]]]:
    """``(file, i, targets)`` for the i-th import of every file (of ``languages``, or
    all): the files it names, as :func:`resolve_import` finds them (same ``limit``)."""
    # Outside Python and Rust, what an import names depends only on the importer's folder:
    # files of one folder share their resolutions (a thousand files include one header).
    cache: dict[tuple[str, str, str], list[int]] = {}
    for f, structure in enumerate(files.structures):
        language = structure.language
        if languages is not None and language not in languages:
            continue
        folder = files.paths[f].rpartition("/")[0]
        for i, imported in enumerate(structure.imports):
            if language == "python" or language == "rust":
                targets = resolve_import(files, f, imported, limit=limit)
            else:
                key = (language, folder, imported)
                found = cache.get(key)
                if found is None:
                    resolver = _RESOLVERS.get(language)
                    found = cache[key] = resolver(files, f, imported) if resolver else []
                targets = _within([t for t in found if t != f], limit)
            yield f, i, targets


def import_graph(files: RepoFiles) -> object:
    """File import graph: a sparse matrix, ``[a, b]`` > 0 when file a imports file b.

    An import naming one file weighs 1; one naming a package of n files, 1/n per file;
    weights add up over a file's imports (``from p import m`` names both p.m and p).
    """
    import scipy.sparse as sp

    rows: list[int] = []
    cols: list[int] = []
    weights: list[float] = []
    for f, _, targets in resolved_imports(files):
        for t in targets:
            rows.append(f)
            cols.append(t)
            weights.append(1.0 / len(targets))
    n = len(files.paths)
    return sp.csr_matrix(
        (
            np.asarray(weights, dtype=np.float64),
            (np.asarray(rows, dtype=np.int64), np.asarray(cols, dtype=np.int64)),
        ),
        shape=(n, n),
    )


def reference_graph(
    structures: Sequence[FileStructure],
    unit_file: np.ndarray,
    unit_names: Sequence[str],
    unit_kinds: Sequence[str],
    ref_unit: np.ndarray,
    ref_id: np.ndarray,
    name_id: dict[str, int],
    imports: object,
) -> object:
    """Unit reference graph: a sparse matrix, ``[u, v]`` > 0 when unit u uses v's name.

    ``ref_unit``/``ref_id`` list, for every unit, the term ids (see
    :func:`agentrt.context.relevance.term_id`) of the distinct identifiers it contains;
    ``name_id`` gives the term id of a definition's short name. ``imports`` is the file
    import graph (:func:`import_graph`).
    """
    import scipy.sparse as sp

    n_units = len(unit_names)
    def_ids: list[int] = []
    def_units: list[int] = []
    for k, (name, kind) in enumerate(zip(unit_names, unit_kinds, strict=True)):
        # A use of a name refers to its definition, not to a prototype declaring it.
        if kind in DEFINITION_KINDS and kind != "declaration":
            short = name.rsplit(".", 1)[-1]
            if len(short) >= 3 and not short.startswith("<"):
                def_ids.append(name_id[short])
                def_units.append(k)
    empty = sp.csr_matrix((n_units, n_units), dtype=np.float32)
    if not def_ids or not len(ref_id):
        return empty
    d_id = np.asarray(def_ids, dtype=np.int64)
    d_unit = np.asarray(def_units, dtype=np.int64)
    order = np.argsort(d_id, kind="stable")
    d_id, d_unit = d_id[order], d_unit[order]
    # One search of the millions of references among the distinct definition ids (not two
    # among all of them): where each id's run of definitions starts and how long it is.
    runs = np.flatnonzero(np.diff(d_id, prepend=d_id[0] - 1))
    run_ids = d_id[runs]
    run_count = np.diff(runs, append=len(d_id))
    at = np.minimum(np.searchsorted(run_ids, ref_id), len(run_ids) - 1)
    found = run_ids[at] == ref_id
    lo = runs[at]
    count = np.where(found, run_count[at], 0)
    keep = (count > 0) & (count <= MAX_DEFINING_UNITS)
    lo, count, source = lo[keep], count[keep], ref_unit[keep].astype(np.int64)
    if not len(lo):
        return empty
    # One row per (reference, candidate definition).
    group = np.repeat(np.arange(len(lo), dtype=np.int64), count)
    first = np.cumsum(count) - count
    target = d_unit[lo[group] + (np.arange(int(count.sum()), dtype=np.int64) - first[group])]
    src = source[group]
    # Of several candidates, prefer those in the same file or in a file it imports.
    src_file = unit_file[src].astype(np.int64)
    dst_file = unit_file[target].astype(np.int64)
    n_files = len(structures)
    coo = sp.coo_matrix(imports)  # type: ignore[arg-type]
    linked = np.unique(
        np.concatenate(
            (coo.row.astype(np.int64) * n_files + coo.col, np.arange(n_files) * (n_files + 1))
        )
    )
    near = np.isin(src_file * n_files + dst_file, linked)
    near_count = np.bincount(group, weights=near, minlength=len(lo))
    chosen = near | (near_count[group] == 0)
    chosen &= src != target
    group, src, target = group[chosen], src[chosen], target[chosen]
    per_group = np.bincount(group, minlength=len(lo)).astype(np.float32)
    weight = 1.0 / per_group[group]
    matrix = sp.csr_matrix((weight, (src, target)), shape=(n_units, n_units), dtype=np.float32)
    return matrix
