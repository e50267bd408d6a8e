"""Architecture analysis (agent ``architecture_analysis``): the module import graph.

It covers every language the context manager parses. **Python** is read here, with
:mod:`ast` (below). The others are read from the context manager's own parse and import
resolution (:mod:`agentrt.agents.builtin.module_graph`, from the repository index that
``context_gathering`` builds, so a ``code-analysis`` run parses each file once), with the
same output: modules, internal imports with the ``file:line`` of each, packages and
layers, cycles, hot spots, entry points and external imports, plus ``languages`` (what a
module is in each). A module is, per language: a Go package (its folder); a
JavaScript/TypeScript, C/C++ or Ruby file; a Rust module file (``crate::a::b``); a Java or
Kotlin class file (``com.x.Y``); a PHP class file; a C# namespace; a Swift module.
Outside Python, test code is left out (the context manager does not parse it; see the
coverage line), cycles are looked for only in JavaScript/TypeScript (elsewhere the
compiler forbids them, or they are harmless: ``module_graph`` says why per language), and
packages are folders (Go, JavaScript, C, Ruby, Swift), Java and PHP packages, C#
namespaces or Rust crates and their modules: one part more than all modules share, then
the biggest split further while it holds more than half of them.

Every Python file is parsed with :mod:`ast` (never imported) and its ``import`` statements are
resolved to modules of the repository:

* A file's module name is found the way Python would find it: walk up from the file while the
  directory has an ``__init__.py``; the first directory without one is the import root. So
  ``src/pkg/a.py`` is ``pkg.a`` (src layout), and a repository whose root is itself a package
  (``site-packages/prefect``) names its modules ``prefect.…``. Loose scripts (``tests/test_x.py``
  without ``__init__.py``) are importable by their bare name, as pytest makes them; when two
  files would get the same name, their nodes are named by their repository path instead.
* Relative imports are resolved against the importing module's package, and
  ``from pkg import name`` points at ``pkg.name`` when that is a module, else at ``pkg``.
* Imports of anything else are *external*, counted per top-level name (standard library
  apart from third-party).

Each edge has a kind: ``runtime`` (executed when the module is imported), ``deferred`` (inside
a function) or ``type_checking`` (under ``if TYPE_CHECKING:``). Import cycles are the strongly
connected components of the ``runtime`` edges only: deferring an import or moving it under
``TYPE_CHECKING`` is exactly how cycles are broken, so counting those would report fixed
cycles. Each cycle is shown as one shortest path through its smallest module
(``a → b → a``) with the ``file:line`` of every import on it.

Packages are groups of modules by name prefix (top-level packages, or the sub-packages when
the whole repository is a single package), linked by their modules' ``runtime`` imports; a
package's layer is 0 when it imports no other internal package, otherwise one more than the
highest layer it imports (packages in a cycle share one layer).

**Focus.** After ``context_gathering`` (``code-analysis``), ``focus`` says where the files it
gathered for the workflow's task sit in the graph, most relevant first, in any language:
each module's package and layer, fan-in and fan-out, its internal imports (with their file
and line: a gathered file's own import first, for a Go package of several files), who
imports it and whether it is in a cycle; the agent reports the gathered items holding those
imports as its context use (:mod:`agentrt.agents.builtin.gathered`). Elsewhere ``focus`` is
None.
"""

from __future__ import annotations

import ast
import configparser
import functools
import itertools
import re
import sys
import tomllib
from collections import Counter, defaultdict, deque
from collections.abc import Iterator
from dataclasses import dataclass, replace
from pathlib import Path, PurePosixPath
from typing import Any, Literal

import networkx as nx
from pydantic import BaseModel, Field

from agentrt.agents.agent_context import AgentContext
from agentrt.agents.builtin import module_graph
from agentrt.agents.builtin.common import (
    AnalyserInput,
    Finding,
    PythonSources,
    SeverityCounts,
    findings_table,
    md_code,
    md_table,
    python_sources,
    resolve_repo,
    restrict_scan,
    sort_findings,
)
from agentrt.agents.builtin.coverage import ToolCoverage, coverage_markdown
from agentrt.agents.builtin.gathered import Focus, focus_markdown, gathered_context, report_use

__all__ = [
    "ArchitectureFocus",
    "Cycle",
    "EntryPoint",
    "ExternalImport",
    "HotSpot",
    "ImportRef",
    "Input",
    "LanguageGraph",
    "ModuleRole",
    "Output",
    "PackageInfo",
    "render_markdown",
    "run",
]

EdgeKind = Literal["runtime", "deferred", "type_checking"]
_LANGUAGE = (
    "Language of the module: python, go, rust, javascript (with TypeScript), java (with "
    "Kotlin), c (with C++), csharp, ruby, php, swift."
)
_KIND_STRENGTH: dict[str, int] = module_graph.KIND_STRENGTH


class Input(AnalyserInput):
    """What to analyse, and how much of it to report."""

    top_n: int = Field(default=10, ge=1, description="How many fan-in/fan-out hot spots.")
    package_depth: int | None = Field(
        default=None,
        ge=1,
        description="Name components that make a package; None: for Python 1, or 2 when "
        "every module is inside one top-level package; for other languages one more than "
        "the parts all their modules share.",
    )
    include_deferred_in_cycles: bool = Field(
        default=False,
        description="Also count imports inside functions (JavaScript: import() and nested "
        "require()) when looking for cycles.",
    )


class Cycle(BaseModel):
    """A set of modules that import each other at import time."""

    size: int
    modules: list[str] = Field(description="Every module of the strongly connected component.")
    path: list[str] = Field(description="One shortest cycle: first module repeated at the end.")
    imports: list[str] = Field(description="file:line of each import along `path`.")
    language: str = Field(default="python", description=_LANGUAGE)


class HotSpot(BaseModel):
    """A module many others depend on, or that depends on many others."""

    module: str
    path: str = Field(description="Its file (a Go package's, a C# namespace's: its folder).")
    fan_in: int = Field(description="Internal modules importing this one.")
    fan_out: int = Field(description="Internal modules this one imports.")
    language: str = Field(default="python", description=_LANGUAGE)


class PackageInfo(BaseModel):
    """A group of modules sharing a name prefix, and its internal dependencies."""

    name: str
    modules: int
    layer: int
    in_cycle: bool = Field(description="Part of a cycle of package dependencies.")
    depends_on: list[str]
    used_by: list[str]
    language: str = Field(default="python", description=_LANGUAGE)


class ExternalImport(BaseModel):
    """An imported top-level name that is not part of the repository."""

    name: str
    stdlib: bool = Field(description="The language's standard library (or system headers).")
    imported_by: int = Field(description="Internal modules importing it.")
    language: str = Field(default="python", description=_LANGUAGE)


class EntryPoint(BaseModel):
    """A way the code is started: a script, ``python -m``, a ``__main__`` guard, a ``main``
    function (Go, Rust, Java, Kotlin, C#, C, C++, Swift), ``package.json``'s ``bin`` or
    ``main``."""

    kind: Literal[
        "console_script",
        "gui_script",
        "main_module",
        "main_guard",
        "main_function",
        "package_bin",
        "package_main",
    ]
    name: str
    target: str
    path: str
    line: int


class ImportRef(BaseModel):
    """One internal import of a module."""

    module: str = Field(description="The module imported.")
    line: int = Field(description="Line of the import in the importing file.")
    kind: EdgeKind
    path: str = Field(
        default="",
        description="The importing file (one of a Go package's files; a gathered one first).",
    )


class ModuleRole(BaseModel):
    """Where one module sits in the import graph."""

    module: str
    path: str
    language: str = Field(default="python", description=_LANGUAGE)
    package: str
    layer: int = Field(description="Its package's layer.")
    fan_in: int
    fan_out: int
    in_cycle: bool = Field(description="Part of an import cycle (module-level imports).")
    imports: list[ImportRef] = Field(description="The internal modules it imports.")
    imported_by: list[str] = Field(description="The internal modules importing it.")


class LanguageGraph(BaseModel):
    """One language's part of the graph (languages that import each other's files, such as
    JavaScript and TypeScript, share one)."""

    language: str = Field(description=_LANGUAGE)
    name: str = Field(description="For people: 'Go', 'JavaScript/TypeScript'.")
    module: str = Field(description="What a module is: 'module', 'package (folder)', 'file'…")
    modules: int
    files: int = Field(description="Files whose imports were read.")
    edges: int
    cycles_not_looked_for: str | None = Field(
        default=None, description="Why import cycles are not looked for (None: they are)."
    )


class ArchitectureFocus(Focus):
    """The files gathered for the task in the import graph (``findings``: the cycles and
    parse errors in them)."""

    modules: list[ModuleRole] = Field(description="Their modules, most relevant first.")


class Output(BaseModel):
    """The import graph summarised."""

    summary: str
    files_analysed: int
    nodes: int = Field(description="Internal modules.")
    edges: int = Field(description="Distinct internal module → module imports.")
    edges_by_kind: dict[str, int]
    packages: list[PackageInfo]
    cycles: list[Cycle]
    hot_spots: list[HotSpot]
    entry_points: list[EntryPoint]
    external_imports: list[ExternalImport]
    findings: list[Finding] = Field(description="One per import cycle, plus unparsable files.")
    counts: SeverityCounts
    notes: list[str]
    languages: list[LanguageGraph] = Field(
        default_factory=list, description="The graph per language, Python first."
    )
    language_coverage: list[ToolCoverage] = Field(
        default_factory=list,
        description="Files whose imports were read, per language, and the code files left "
        "out (test code outside Python, minified files, languages not parsed).",
    )
    focus: ArchitectureFocus | None = Field(
        default=None,
        description="The modules of the files context_gathering selected for the task; None "
        "without a context_gathering step.",
    )


# --------------------------------------------------------------------------------------------
# Module names


@dataclass(frozen=True, slots=True)
class _Module:
    node: str  # unique node name
    import_name: str  # the name Python imports it by
    import_root: str  # directory (repository-relative) the import name is relative to
    path_name: str  # the repository path dotted (a fallback name: namespace packages)
    group: tuple[str, ...]  # name parts packages are formed from
    is_package: bool
    path: str  # repository-relative file


def _module_names(paths: list[str], root: Path) -> list[_Module]:
    """Name every file as Python would import it (see the module docstring)."""
    package_dirs = {PurePosixPath(p).parent.parts for p in paths if p.endswith("__init__.py")}
    modules: list[_Module] = []
    for path in paths:
        pure = PurePosixPath(path)
        is_package = pure.stem == "__init__"
        directory = pure.parent.parts
        path_parts = directory if is_package else (*directory, pure.stem)
        # The outermost enclosing package decides the name; directories between it and the
        # file may lack an __init__.py (namespace portions) and still be part of the name.
        top = next((i for i in range(len(directory) + 1) if directory[:i] in package_dirs), None)
        if top is None:  # a loose script: importable by its bare name from its directory
            import_root, name_parts = directory, (pure.stem,)
            group = path_parts  # grouped by where it lives, not by its bare name
        elif top == 0:  # the repository root is itself a package
            import_root, name_parts = (), (root.name, *path_parts)
            group = name_parts
        else:
            import_root, name_parts = directory[: top - 1], path_parts[top - 1 :]
            group = name_parts
        modules.append(
            _Module(
                node=".".join(name_parts),
                import_name=".".join(name_parts),
                import_root="/".join(import_root) or ".",
                path_name=".".join(path_parts) or root.name,
                group=group,
                is_package=is_package,
                path=path,
            )
        )
    # Two loose scripts may share a bare name (tests/a/conftest.py, tests/b/conftest.py):
    # their nodes take the dotted path, and failing that (a.py beside a/__init__.py) the path.
    clashes = Counter(m.node for m in modules)
    modules = [m if clashes[m.node] == 1 else replace(m, node=m.path_name) for m in modules]
    clashes = Counter(m.node for m in modules)
    return [m if clashes[m.node] == 1 else replace(m, node=m.path) for m in modules]


# --------------------------------------------------------------------------------------------
# Imports


@dataclass(frozen=True, slots=True)
class _Import:
    line: int
    module: str  # absolute dotted name ("" if unresolvable)
    names: tuple[str, ...]  # for `from module import a, b`; empty for `import module`
    kind: EdgeKind


def _is_type_checking(test: ast.expr) -> bool:
    return (isinstance(test, ast.Name) and test.id == "TYPE_CHECKING") or (
        isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING"
    )


def _is_main_guard(test: ast.expr) -> bool:
    if not (isinstance(test, ast.Compare) and len(test.ops) == 1):
        return False
    if not isinstance(test.ops[0], ast.Eq):
        return False
    sides = [test.left, test.comparators[0]]
    has_name = any(isinstance(s, ast.Name) and s.id == "__name__" for s in sides)
    has_main = any(isinstance(s, ast.Constant) and s.value == "__main__" for s in sides)
    return has_name and has_main


_NESTED_BODIES = ("body", "orelse", "finalbody", "handlers", "cases")


def _walk_imports(statements: list[ast.stmt], module: _Module, kind: EdgeKind) -> Iterator[_Import]:
    """Import statements, walking statements only (imports are never expressions)."""
    for stmt in statements:
        if isinstance(stmt, ast.Import):
            for alias in stmt.names:
                yield _Import(stmt.lineno, alias.name, (), kind)
        elif isinstance(stmt, ast.ImportFrom):
            base = _absolute(module, stmt.module, stmt.level)
            names = tuple(a.name for a in stmt.names if a.name != "*")
            yield _Import(stmt.lineno, base or "", names, kind)
        elif isinstance(stmt, ast.FunctionDef | ast.AsyncFunctionDef):
            inner: EdgeKind = "type_checking" if kind == "type_checking" else "deferred"
            yield from _walk_imports(stmt.body, module, inner)
        elif isinstance(stmt, ast.If) and _is_type_checking(stmt.test):
            yield from _walk_imports(stmt.body, module, "type_checking")
            yield from _walk_imports(stmt.orelse, module, kind)
        else:
            for name in _NESTED_BODIES:
                block = getattr(stmt, name, None)
                if block:
                    yield from _walk_imports(_statements(block), module, kind)


def _statements(block: list[ast.AST]) -> list[ast.stmt]:
    """Statements of a block; except handlers and match cases hold theirs in ``.body``."""
    out: list[ast.stmt] = []
    for item in block:
        if isinstance(item, ast.excepthandler | ast.match_case):
            out.extend(item.body)
        elif isinstance(item, ast.stmt):
            out.append(item)
    return out


def _absolute(module: _Module, name: str | None, level: int) -> str | None:
    """The absolute module a ``from`` import names; None if it climbs above the root."""
    if level == 0:
        return name
    package = module.import_name.split(".")
    if not module.is_package:
        package = package[:-1]
    if level - 1 > len(package):
        return None
    package = package[: len(package) - (level - 1)]
    parts = [*package, *(name.split(".") if name else [])]
    return ".".join(parts) or None


class _Resolver:
    """Maps imported names to internal modules, preferring the importer's own import root."""

    def __init__(self, modules: list[_Module]) -> None:
        self._by_name: dict[str, list[_Module]] = defaultdict(list)
        self._by_path: dict[str, list[_Module]] = defaultdict(list)
        for m in modules:
            self._by_name[m.import_name].append(m)
            self._by_path[m.path_name].append(m)
        names = [*self._by_name, *self._by_path]
        self.internal_tops = {name.split(".")[0] for name in names}

    def _lookup(self, name: str, importer: _Module) -> _Module | None:
        # Import names first; the dotted path catches imports through namespace packages
        # at the top (no __init__.py anywhere), as in `import tools.helpers`.
        candidates = self._by_name.get(name) or self._by_path.get(name)
        if not candidates:
            return None
        if len(candidates) == 1:
            return candidates[0]
        same_root = [c for c in candidates if c.import_root == importer.import_root]
        return same_root[0] if len(same_root) == 1 else None

    def resolve(self, dotted: str, importer: _Module) -> _Module | None:
        """The deepest internal module that ``dotted`` (or a prefix of it) names."""
        parts = dotted.split(".")
        for end in range(len(parts), 0, -1):
            found = self._lookup(".".join(parts[:end]), importer)
            if found is not None:
                return found
        return None


# --------------------------------------------------------------------------------------------
# Entry points


def _main_guards(module: _Module, tree: ast.Module) -> Iterator[EntryPoint]:
    path = module.path
    if PurePosixPath(path).name == "__main__.py":
        package = module.import_name.rsplit(".", 1)[0]
        yield EntryPoint(
            kind="main_module", name=package, target=f"python -m {package}", path=path, line=1
        )
    for stmt in tree.body:
        if isinstance(stmt, ast.If) and _is_main_guard(stmt.test):
            yield EntryPoint(
                kind="main_guard",
                name=module.node,
                target=f"python {path}",
                path=path,
                line=stmt.lineno,
            )


def _line_of(text: str, name: str) -> int:
    """Line of the first ``name =`` (name quoted or not) in a config file; 0 if not found."""
    pattern = re.compile(rf"^[ \t]*[\"']?{re.escape(name)}[\"']?[ \t]*=", re.MULTILINE)
    match = pattern.search(text)
    return text.count("\n", 0, match.start()) + 1 if match else 0


def _declared_scripts(root: Path, notes: list[str]) -> Iterator[EntryPoint]:
    """Scripts declared in pyproject.toml, setup.cfg and setup.py (read, never run)."""
    pyproject = root / "pyproject.toml"
    if pyproject.is_file():
        text = pyproject.read_text(encoding="utf-8", errors="replace")
        try:
            data = tomllib.loads(text)
        except tomllib.TOMLDecodeError as exc:
            notes.append(f"pyproject.toml does not parse: {exc}")
            data = {}
        project = data.get("project", {})
        poetry = data.get("tool", {}).get("poetry", {})
        tables: list[tuple[Literal["console_script", "gui_script"], object]] = [
            ("console_script", project.get("scripts", {})),
            ("gui_script", project.get("gui-scripts", {})),
            ("console_script", poetry.get("scripts", {})),
        ]
        for kind, table in tables:
            if not isinstance(table, dict):
                continue
            for name, target in sorted(table.items()):
                if isinstance(target, dict):  # poetry: {reference = "...", type = "file"}
                    target = target.get("reference") or target.get("callable") or ""
                yield EntryPoint(
                    kind=kind,
                    name=name,
                    target=str(target),
                    path="pyproject.toml",
                    line=_line_of(text, name),
                )
    setup_cfg = root / "setup.cfg"
    if setup_cfg.is_file():
        text = setup_cfg.read_text(encoding="utf-8", errors="replace")
        parser = configparser.ConfigParser(interpolation=None)
        try:
            parser.read_string(text)
        except configparser.Error as exc:
            notes.append(f"setup.cfg does not parse: {exc}")
        else:
            if parser.has_section("options.entry_points"):
                section = parser["options.entry_points"]
                for group, kind in (
                    ("console_scripts", "console_script"),
                    ("gui_scripts", "gui_script"),
                ):
                    for entry in _entry_lines(section.get(group, "")):
                        yield _entry(kind, entry, "setup.cfg", text)
    setup_py = root / "setup.py"
    if setup_py.is_file():
        text = setup_py.read_text(encoding="utf-8", errors="replace")
        for kind, entry in _setup_py_entries(text):
            yield _entry(kind, entry, "setup.py", text)


def _entry_lines(value: str | list[str]) -> list[str]:
    lines = value.splitlines() if isinstance(value, str) else value
    return [line.strip() for line in lines if "=" in line]


def _entry(
    kind: Literal["console_script", "gui_script"], entry: str, path: str, text: str
) -> EntryPoint:
    name, _, target = entry.partition("=")
    name = name.strip()
    return EntryPoint(
        kind=kind, name=name, target=target.strip(), path=path, line=_line_of(text, name)
    )


def _setup_py_entries(text: str) -> Iterator[tuple[Literal["console_script", "gui_script"], str]]:
    """``entry_points={...}`` of a ``setup(...)`` call, when it is a literal."""
    try:
        tree = ast.parse(text)
    except (SyntaxError, ValueError):
        return
    for node in ast.walk(tree):
        if not isinstance(node, ast.Call):
            continue
        for keyword in node.keywords:
            if keyword.arg != "entry_points":
                continue
            try:
                value = ast.literal_eval(keyword.value)
            except ValueError:
                continue
            if not isinstance(value, dict):
                continue
            for group, kind in (
                ("console_scripts", "console_script"),
                ("gui_scripts", "gui_script"),
            ):
                for entry in _entry_lines(value.get(group, [])):
                    yield kind, entry  # type: ignore[misc]


# --------------------------------------------------------------------------------------------
# Graph analysis


def _shortest_cycle(graph: nx.DiGraph, start: str) -> list[str]:
    """Shortest path start → … → start (BFS over sorted successors, so deterministic)."""
    parents: dict[str, str | None] = {start: None}
    queue = deque([start])
    while queue:
        node = queue.popleft()
        for succ in sorted(graph.successors(node)):
            if succ == start:
                path = [node]
                while (parent := parents[path[-1]]) is not None:
                    path.append(parent)
                return [*reversed(path), start]
            if succ not in parents:
                parents[succ] = node
                queue.append(succ)
    return [start, start]  # unreachable for a component of two or more nodes


def _default_depth(groups: list[tuple[str, ...]]) -> int:
    """1, or 2 when every module sits inside one top-level package."""
    tops = {group[0] for group in groups}
    return 2 if len(tops) == 1 and len(groups) > 1 else 1


def _layers(graph: nx.DiGraph) -> tuple[dict[str, int], set[str]]:
    """Layer of every package, and the packages that are in a dependency cycle."""
    condensed = nx.condensation(graph)
    layer_of_component: dict[int, int] = {}
    # Dependencies point from user to used: reverse topological order visits used first.
    for component in reversed(list(nx.topological_sort(condensed))):
        below = [layer_of_component[s] for s in condensed.successors(component)]
        layer_of_component[component] = 1 + max(below) if below else 0
    layers: dict[str, int] = {}
    cyclic: set[str] = set()
    for component, data in condensed.nodes(data=True):
        members = data["members"]
        for member in members:
            layers[member] = layer_of_component[component]
        if len(members) > 1:
            cyclic.update(members)
    return layers, cyclic


def run(inputs: Input, ctx: AgentContext | None = None) -> Output:
    """Build the import graph of ``inputs.repo`` and summarise it; place the files gathered
    for the task in it when ``ctx.upstream`` has them."""
    from agentrt.context.sources import scan_repository  # deferred: keeps `import agents` light

    # One walk of the tree: Python's files, the index's (other languages) and the coverage.
    scan = scan_repository(resolve_repo(inputs.repo))
    repo_files = restrict_scan(scan, inputs.files)
    sources = python_sources(repo_files, stubs=True)
    python, entry_points, notes = _python_graph(sources, inputs)
    others: list[_Graph] = []
    reading = None
    if module_graph.needs_index(repo_files.files):
        selected = None if inputs.files is None else [f.path for f in repo_files.files]
        whole = repo_files if inputs.files is None else restrict_scan(scan)
        reading = module_graph.language_graphs(whole, selected)
        others = [_Graph.of(lg, inputs) for lg in reading.graphs]
        for lg in reading.graphs:
            notes += lg.notes
            entry_points += (
                EntryPoint(kind=kind, name=name, target=target, path=path, line=line)  # type: ignore[arg-type]
                for kind, name, target, path, line in lg.entry_points
            )
    # Python's graph, even empty, when there is nothing else: the output of old.
    graphs = ([python] if python.graph.number_of_nodes() or not others else []) + others

    cycles: list[Cycle] = []
    findings = list(sources.errors)
    for g in graphs:
        if g.cycles_not_looked_for is None:
            found, found_findings = _cycles(g.graph, inputs.include_deferred_in_cycles, g.language)
            cycles += found
            findings += found_findings
    cycles.sort(key=lambda c: (-c.size, c.path))
    hot = sorted(
        (hot for g in graphs for hot in g.hot_spots()),
        key=lambda h: (-(h.fan_in + h.fan_out), -h.fan_in, h.module),
    )
    hot_spots = [h for h in hot[: inputs.top_n] if h.fan_in + h.fan_out > 0]
    packages = [p for g in graphs for p in g.packages]
    entry_points.sort(key=lambda e: (e.kind, e.name, e.path, e.line))
    externals = [e for g in graphs for e in g.externals]
    kinds = Counter(kind for g in graphs for _, _, kind in g.graph.edges(data="kind"))
    findings = sort_findings(findings)
    nodes = sum(g.graph.number_of_nodes() for g in graphs)
    edges = sum(g.graph.number_of_edges() for g in graphs)
    languages = [g.summary() for g in graphs]
    per_language = ""
    if any(g.language != "python" for g in graphs):
        per_language = " (" + ", ".join(f"{g.name}: {g.modules_phrase()}" for g in graphs) + ")"
    summary = (
        f"{nodes} modules{per_language}, {edges} internal imports, "
        f"{len(packages)} packages, {len(cycles)} import cycle"
        f"{'' if len(cycles) == 1 else 's'}, {len(entry_points)} entry points, "
        f"{len(externals)} external top-level imports"
    )
    focus = None
    gathered = gathered_context(ctx)
    if gathered is not None:
        where = {path: g for g in graphs for path in g.node_of}
        files = gathered.focus_files(where)
        focus = ArchitectureFocus(
            task=gathered.task,
            files=files,
            findings=gathered.focus_findings(findings),
            modules=_focus_roles(files, where),
        )
        if len(focus.modules) == len(files):
            summary += f"; {len(files)} of the modules gathered for the task"
        else:  # several files of one module (a Go package)
            summary += f"; {len(focus.modules)} modules of the {len(files)} files gathered"
        assert ctx is not None
        report_use(ctx, gathered, [focus.modules, focus.findings])
    analysed = reading.analysed if reading is not None else set()
    tool = "import graph (ast, tree-sitter)"
    coverage = sources.coverage(
        tool, analysed=analysed, excluded=reading.left_out if reading is not None else None
    )
    return Output(
        summary=summary,
        files_analysed=len(sources.selected) + len(analysed),
        nodes=nodes,
        edges=edges,
        edges_by_kind={k: kinds.get(k, 0) for k in ("runtime", "deferred", "type_checking")},
        packages=packages,
        cycles=cycles,
        hot_spots=hot_spots,
        entry_points=entry_points,
        external_imports=externals,
        findings=findings,
        counts=SeverityCounts.of(findings),
        notes=sorted(set(notes)),
        languages=languages,
        language_coverage=[coverage],
        focus=focus,
    )


def _python_graph(
    sources: PythonSources, inputs: Input
) -> tuple[_Graph, list[EntryPoint], list[str]]:
    """Python's graph, from :mod:`ast` (see the module docstring), its entry points and
    notes."""
    # A stub (.pyi) stands for a module only when there is no source for it (an extension).
    shadowed = {f.path + "i" for f in sources.selected if f.path.endswith(".py")}
    sources.selected = [f for f in sources.selected if f.path not in shadowed]
    modules = _module_names([f.path for f in sources.selected], sources.root)
    by_path = {m.path: m for m in modules}
    resolver = _Resolver(modules)
    notes: list[str] = []
    entry_points: list[EntryPoint] = []

    # edge (source node, target node) -> (strongest kind, line of the first such import)
    edges: dict[tuple[str, str], tuple[EdgeKind, int]] = {}
    external: dict[str, set[str]] = defaultdict(set)
    for parsed in sources:  # each file parsed once; its tree dropped after this iteration
        module = by_path[parsed.path]
        entry_points += _main_guards(module, parsed.tree)
        for imp in _walk_imports(parsed.tree.body, module, "runtime"):
            if not imp.module:
                notes.append(
                    f"{module.path}:{imp.line}: relative import climbs above the "
                    "repository root; not resolved"
                )
                continue
            dotted = [f"{imp.module}.{n}" for n in imp.names] or [imp.module]
            for name in dotted:
                target = resolver.resolve(name, module)
                if target is None:
                    top = name.split(".")[0]
                    if top not in resolver.internal_tops:
                        external[top].add(module.node)
                    continue
                if target.node == module.node:
                    continue  # `from pkg import name` inside pkg/__init__.py
                key = (module.node, target.node)
                previous = edges.get(key)
                if previous is None or _KIND_STRENGTH[imp.kind] > _KIND_STRENGTH[previous[0]]:
                    edges[key] = (imp.kind, imp.line)
    notes += sources.notes

    graph = nx.DiGraph()
    graph.add_nodes_from((m.node, {"path": m.path}) for m in modules)
    path_of = {m.node: m.path for m in modules}
    for (source, target), (kind, line) in edges.items():
        graph.add_edge(source, target, kind=kind, line=line, path=path_of[source])
    package_of = _package_of(modules, inputs.package_depth)
    entry_points += _declared_scripts(sources.root, notes)
    externals = sorted(
        (
            ExternalImport(
                name=name, stdlib=name in sys.stdlib_module_names, imported_by=len(users)
            )
            for name, users in external.items()
        ),
        key=lambda e: (-e.imported_by, e.name),
    )
    python = _Graph(
        language="python",
        graph=graph,
        package_of=package_of,
        packages=_packages(package_of, graph, "python"),
        externals=externals,
        node_of={m.path: m.node for m in modules},
        files=len(sources.selected),
    )
    return python, entry_points, notes


@dataclass
class _Graph:
    """One language's graph and what is derived from it."""

    language: str
    graph: nx.DiGraph
    package_of: dict[str, str]
    packages: list[PackageInfo]
    externals: list[ExternalImport]
    #: File -> its node.
    node_of: dict[str, str]
    files: int
    cycles_not_looked_for: str | None = None

    @classmethod
    def of(cls, lg: module_graph.LanguageGraph, inputs: Input) -> _Graph:
        package_of = _group_packages(lg, inputs.package_depth)
        externals = sorted(
            (
                ExternalImport(name=name, stdlib=stdlib, imported_by=len(users), language=lg.family)
                for name, (stdlib, users) in lg.externals.items()
            ),
            key=lambda e: (-e.imported_by, e.name),
        )
        return cls(
            language=lg.family,
            graph=lg.graph,
            package_of=package_of,
            packages=_packages(package_of, lg.graph, lg.family),
            externals=externals,
            node_of=lg.node_of,
            files=sum(files for _, files in lg.graph.nodes(data="files")),
            cycles_not_looked_for=None if lg.cycles_checked else lg.no_cycles_because,
        )

    @property
    def name(self) -> str:
        return module_graph.label(self.language)

    def modules_phrase(self) -> str:
        """``129 packages``, ``1 class``."""
        n = self.graph.number_of_nodes()
        return f"{n} {module_graph.noun(self.language, n)}"

    def summary(self) -> LanguageGraph:
        return LanguageGraph(
            language=self.language,
            name=self.name,
            module=module_graph.unit(self.language),
            modules=self.graph.number_of_nodes(),
            files=self.files,
            edges=self.graph.number_of_edges(),
            cycles_not_looked_for=self.cycles_not_looked_for,
        )

    def hot_spots(self) -> Iterator[HotSpot]:
        graph = self.graph
        for node, path in graph.nodes(data="path"):
            yield HotSpot(
                module=node,
                path=path,
                fan_in=graph.in_degree(node),
                fan_out=graph.out_degree(node),
                language=self.language,
            )

    @functools.cached_property
    def cyclic(self) -> set[str]:
        """Nodes in a cycle of module-level imports (none where cycles are not looked for)."""
        if self.cycles_not_looked_for is not None:
            return set()
        runtime = nx.DiGraph()
        runtime.add_edges_from(
            (s, t) for s, t, kind in self.graph.edges(data="kind") if kind == "runtime"
        )
        return {n for c in nx.strongly_connected_components(runtime) if len(c) > 1 for n in c}

    def role(self, node: str, gathered: str) -> ModuleRole:
        """Where ``node`` sits; its imports at their lines in file ``gathered`` when it has
        them (a Go package's imports are in several files)."""
        graph = self.graph
        layer = {p.name: p.layer for p in self.packages}
        package = self.package_of[node]
        return ModuleRole(
            module=node,
            path=graph.nodes[node]["path"],
            language=self.language,
            package=package,
            layer=layer[package],
            fan_in=graph.in_degree(node),
            fan_out=graph.out_degree(node),
            in_cycle=node in self.cyclic,
            imports=sorted(
                (
                    _import_ref(target, data, gathered)
                    for _, target, data in graph.out_edges(node, data=True)
                ),
                key=lambda i: (i.path != gathered, i.path, i.line, i.module),
            ),
            imported_by=sorted(graph.predecessors(node)),
        )


def _import_ref(target: str, data: dict[str, Any], gathered: str) -> ImportRef:
    """The import of ``target`` in file ``gathered`` if there is one, else the first."""
    path, line = data["path"], data["line"]
    for site_path, site_line in data.get("sites", ()):
        if site_path == gathered:
            path, line = site_path, site_line
            break
    return ImportRef(module=target, line=line, kind=data["kind"], path=path)


def _focus_roles(files: list[str], where: dict[str, _Graph]) -> list[ModuleRole]:
    """The module of each gathered file, in their order, each once."""
    roles: list[ModuleRole] = []
    seen: set[tuple[str, str]] = set()
    for path in files:
        g = where[path]
        node = g.node_of[path]
        if (g.language, node) not in seen:
            seen.add((g.language, node))
            roles.append(g.role(node, path))
    return roles


def _cycles(
    graph: nx.DiGraph, include_deferred: bool, language: str
) -> tuple[list[Cycle], list[Finding]]:
    kinds = {"runtime", "deferred"} if include_deferred else {"runtime"}
    runtime = nx.DiGraph()
    runtime.add_edges_from((s, t) for s, t, kind in graph.edges(data="kind") if kind in kinds)
    cycles: list[Cycle] = []
    findings: list[Finding] = []
    for component in nx.strongly_connected_components(runtime):
        if len(component) < 2:
            continue
        members = sorted(component)
        path = _shortest_cycle(runtime.subgraph(component), members[0])
        steps = [graph.edges[a, b] for a, b in itertools.pairwise(path)]
        imports = [f"{e['path']}:{e['line']}" for e in steps]
        cycles.append(
            Cycle(size=len(members), modules=members, path=path, imports=imports, language=language)
        )
        findings.append(
            Finding(
                path=steps[0]["path"],
                line=steps[0]["line"],
                rule="import-cycle",
                severity="medium",
                confidence="high",
                message=f"import cycle of {len(members)} modules: {' → '.join(path)}",
                tool="agentrt",
            )
        )
    return cycles, findings


def _group_packages(lg: module_graph.LanguageGraph, depth: int | None) -> dict[str, str]:
    """Node -> its package: the first ``depth`` parts of its group, joined the language's
    way; by default, the parts :func:`_default_packages` chooses."""
    nodes = list(lg.graph.nodes(data="group"))
    groups: list[tuple[str, ...]] = [group for _, group in nodes]
    cut = [g[:depth] for g in groups] if depth is not None else _default_packages(groups)
    return {
        node: lg.separator.join(parts) or "." for (node, _), parts in zip(nodes, cut, strict=True)
    }


#: Packages the default split makes at most (a package is split only while this holds).
MAX_DEFAULT_PACKAGES = 30


def _default_packages(groups: list[tuple[str, ...]]) -> list[tuple[str, ...]]:
    """Each group's package: one part more than all groups share (files at the top aside),
    then the biggest package split into its next parts while it holds more than half of the
    modules and there are at most :data:`MAX_DEFAULT_PACKAGES` (a monorepo's
    ``packages/app/src``, a Java tree whose classes are nearly all in ``com.x.lib``)."""
    inner = [g for g in groups if g]
    # The parts all groups share are those the first and the last in order share.
    first, last = min(inner, default=()), max(inner, default=())
    depth = 1 + next(
        (i for i, (a, b) in enumerate(zip(first, last, strict=False)) if a != b),
        min(len(first), len(last)),
    )
    packages = [g[:depth] for g in groups]
    while packages:
        sizes = Counter(packages)
        biggest, size = max(sizes.items(), key=lambda item: (item[1], item[0]))
        if size * 2 <= len(groups):
            break
        n = len(biggest) + 1
        split = [g[:n] if p == biggest else p for g, p in zip(groups, packages, strict=True)]
        if split == packages or len(set(split)) > MAX_DEFAULT_PACKAGES:
            break  # nothing below the biggest, or too many packages
        packages = split
    return packages


def _package_of(modules: list[_Module], depth: int | None) -> dict[str, str]:
    """Module node → its package's name."""
    depth = depth or _default_depth([m.group for m in modules])
    return {m.node: ".".join(m.group[:depth]) for m in modules}


def _packages(package_of: dict[str, str], graph: nx.DiGraph, language: str) -> list[PackageInfo]:
    package_graph = nx.DiGraph()
    package_graph.add_nodes_from(package_of.values())
    for source, target, kind in graph.edges(data="kind"):
        # Module-level imports only, as for cycles: they fix the order packages load in.
        if kind == "runtime" and package_of[source] != package_of[target]:
            package_graph.add_edge(package_of[source], package_of[target])
    layers, cyclic = _layers(package_graph)
    sizes = Counter(package_of.values())
    return sorted(
        (
            PackageInfo(
                name=name,
                modules=sizes[name],
                layer=layers[name],
                in_cycle=name in cyclic,
                depends_on=sorted(package_graph.successors(name)),
                used_by=sorted(package_graph.predecessors(name)),
                language=language,
            )
            for name in package_graph.nodes
        ),
        key=lambda p: (p.layer, p.name),
    )


# --------------------------------------------------------------------------------------------
# Report


def _short_list(names: list[str], limit: int = 6) -> str:
    shown = ", ".join(names[:limit])
    return shown + (f" (+{len(names) - limit})" if len(names) > limit else "")


def render_markdown(output: Output) -> str:
    """The architecture section of the run report."""
    names = {g.language: g.name for g in output.languages}
    several = len(output.languages) > 1

    def named(language: str, text: str) -> str:
        """``text``, led by its language when the graph has several."""
        return f"{names.get(language, language)}: {text}" if several else text

    parts = ["## Architecture", "", output.summary, ""]
    parts += [
        md_table(
            ["Modules", "Internal imports", "runtime", "deferred", "type_checking", "Packages"],
            [
                (
                    output.nodes,
                    output.edges,
                    output.edges_by_kind.get("runtime", 0),
                    output.edges_by_kind.get("deferred", 0),
                    output.edges_by_kind.get("type_checking", 0),
                    len(output.packages),
                )
            ],
        ),
        "",
    ]
    if any(g.language != "python" for g in output.languages):
        parts += [
            md_table(
                ["Language", "A module is", "Modules", "Files read", "Internal imports", "Cycles"],
                [
                    (
                        g.name,
                        g.module,
                        g.modules,
                        g.files,
                        g.edges,
                        "looked for"
                        if g.cycles_not_looked_for is None
                        else f"not looked for: {g.cycles_not_looked_for}",
                    )
                    for g in output.languages
                ],
            ),
            "",
        ]
    if output.focus is not None:
        parts += [*focus_markdown(output.focus), ""]
        if output.focus.modules:
            rows = [
                (
                    md_code(m.module),
                    f"{md_code(m.package)} ({m.layer})",
                    m.fan_in,
                    m.fan_out,
                    _short_list([i.module for i in m.imports], 4) or "—",
                    "yes" if m.in_cycle else "",
                )
                for m in output.focus.modules
            ]
            headers = ["Module", "Package (layer)", "Fan-in", "Fan-out", "Imports", "Cycle"]
            parts += [md_table(headers, rows), ""]
    parts += ["### Import cycles", ""]
    if output.cycles:
        for cycle in output.cycles:
            where = ", ".join(md_code(i) for i in cycle.imports)
            parts.append(
                f"- {named(cycle.language, '')}**{cycle.size} modules**: "
                f"{md_code(' → '.join(cycle.path))} (imports at {where})"
            )
    else:
        parts.append("_No import cycles among module-level imports._")
    unchecked = [g for g in output.languages if g.cycles_not_looked_for is not None]
    if unchecked:
        parts += ["", "Not looked for in " + "; ".join(
            f"{g.name} ({g.cycles_not_looked_for})" for g in unchecked
        ) + "."]  # fmt: skip
    parts += ["", "### Packages and layers", ""]
    headers = ["Layer", "Package", "Modules", "Depends on", "Used by"]
    rows = [
        (
            p.layer,
            md_code(p.name) + (" (cycle)" if p.in_cycle else ""),
            p.modules,
            _short_list(p.depends_on) or "—",
            len(p.used_by),
        )
        for p in output.packages
    ]
    if several:
        headers = ["Language", *headers]
        rows = [
            (names.get(p.language, p.language), *row)
            for p, row in zip(output.packages, rows, strict=True)
        ]
    parts.append(md_table(headers, rows))
    parts += ["", "### Hot spots (fan-in + fan-out)", ""]
    parts.append(
        md_table(
            ["Module", "Path", "Fan-in", "Fan-out"],
            [
                # A JavaScript or C file is named by its path; a Go package, by its folder.
                (
                    md_code(h.module),
                    "—" if h.path == h.module else md_code(h.path),
                    h.fan_in,
                    h.fan_out,
                )
                for h in output.hot_spots
            ],
        )
        if output.hot_spots
        else "_No internal imports._"
    )
    parts += ["", "### Entry points", ""]
    shown = output.entry_points[:_MAX_ENTRY_ROWS]
    parts.append(
        md_table(
            ["Kind", "Name", "Target", "Declared at"],
            [
                (e.kind, md_code(e.name), md_code(e.target), md_code(f"{e.path}:{e.line}"))
                for e in shown
            ],
        )
        if shown
        else "_None found._"
    )
    if len(output.entry_points) > len(shown):
        parts += ["", f"_…and {len(output.entry_points) - len(shown)} more (see the JSON output)._"]
    third_party = [e for e in output.external_imports if not e.stdlib]
    parts += ["", "### Third-party imports", ""]
    if not third_party:
        parts.append("_None._")
    elif not several:
        parts.append(", ".join(f"{md_code(e.name)} ({e.imported_by})" for e in third_party[:30]))
    else:
        for g in output.languages:
            mine = [e for e in third_party if e.language == g.language]
            if mine:
                listed = ", ".join(f"{md_code(e.name)} ({e.imported_by})" for e in mine[:20])
                more = f" (+{len(mine) - 20})" if len(mine) > 20 else ""
                parts.append(f"- **{g.name}**: {listed}{more}")
    if output.findings:
        parts += ["", "### Findings", "", findings_table(output.findings)]
    if output.language_coverage:
        parts += ["", coverage_markdown(output.language_coverage)]
    if output.notes:
        parts += ["", "### Notes", ""] + [f"- {n}" for n in output.notes[:20]]
    return "\n".join(parts) + "\n"


#: Entry points listed in the report (a C++ tree's examples and tools have hundreds).
_MAX_ENTRY_ROWS = 30
