"""Architecture analysis (agent ``architecture_analysis``): the module import graph.

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
gathered for the workflow's task sit in the graph, most relevant first: each module's
package and layer, fan-in and fan-out, its internal imports (with their lines), who imports
it and whether it is in a cycle; the agent reports the gathered items holding those imports
as its context use (:mod:`agentrt.agents.builtin.gathered`). Elsewhere ``focus`` is None.
"""

from __future__ import annotations

import ast
import configparser
import itertools
import re
import sys
import tomllib
from collections import Counter, defaultdict, deque
from collections.abc import Iterator
from dataclasses import dataclass, replace
from pathlib import Path, PurePosixPath
from typing import Literal

import networkx as nx
from pydantic import BaseModel, Field

from agentrt.agents.agent_context import AgentContext
from agentrt.agents.builtin.common import (
    AnalyserInput,
    Finding,
    SeverityCounts,
    findings_table,
    load_python,
    md_code,
    md_table,
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
    "ModuleRole",
    "Output",
    "PackageInfo",
    "render_markdown",
    "run",
]

EdgeKind = Literal["runtime", "deferred", "type_checking"]
_KIND_STRENGTH: dict[EdgeKind, int] = {"runtime": 2, "deferred": 1, "type_checking": 0}


class Input(AnalyserInput):
    """What to analyse, and how much of it to report."""

    top_n: int = Field(default=10, ge=1, description="How many fan-in/fan-out hot spots.")
    package_depth: int | None = Field(
        default=None,
        ge=1,
        description="Name components that make a package; None: 1, or 2 when every module "
        "is inside one top-level package.",
    )
    include_deferred_in_cycles: bool = Field(
        default=False,
        description="Also count imports inside functions when looking for cycles.",
    )


class Cycle(BaseModel):
    """A set of modules that import each other at import time."""

    size: int
    modules: list[str] = Field(description="Every module of the strongly connected component.")
    path: list[str] = Field(description="One shortest cycle: first module repeated at the end.")
    imports: list[str] = Field(description="file:line of each import along `path`.")


class HotSpot(BaseModel):
    """A module many others depend on, or that depends on many others."""

    module: str
    path: str
    fan_in: int = Field(description="Internal modules importing this one.")
    fan_out: int = Field(description="Internal modules this one imports.")


class PackageInfo(BaseModel):
    """A group of modules sharing a name prefix, and its internal dependencies."""

    name: str
    modules: int
    layer: int
    in_cycle: bool = Field(description="Part of a cycle of package dependencies.")
    depends_on: list[str]
    used_by: list[str]


class ExternalImport(BaseModel):
    """An imported top-level name that is not part of the repository."""

    name: str
    stdlib: bool
    imported_by: int = Field(description="Internal modules importing it.")


class EntryPoint(BaseModel):
    """A way the code is started: a script, ``python -m``, a ``__main__`` guard."""

    kind: Literal["console_script", "gui_script", "main_module", "main_guard"]
    name: str
    target: str
    path: str
    line: int


class ImportRef(BaseModel):
    """One internal import of a module."""

    module: str = Field(description="The module imported.")
    line: int = Field(description="Line of the import in the importing file.")
    kind: EdgeKind


class ModuleRole(BaseModel):
    """Where one module sits in the import graph."""

    module: str
    path: str
    package: str
    layer: int = Field(description="Its package's layer.")
    fan_in: int
    fan_out: int
    in_cycle: bool = Field(description="Part of an import cycle (module-level imports).")
    imports: list[ImportRef] = Field(description="The internal modules it imports.")
    imported_by: list[str] = Field(description="The internal modules importing it.")


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
    language_coverage: list[ToolCoverage] = Field(
        default_factory=list,
        description="Python files whose imports were read, and the code files left out (the "
        "import graph is built for Python only).",
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
    sources = load_python(inputs.repo, inputs.files, stubs=True)
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
    for (source, target), (kind, line) in edges.items():
        graph.add_edge(source, target, kind=kind, line=line)
    by_node = {m.node: m for m in modules}

    cycles, findings = _cycles(graph, by_node, inputs.include_deferred_in_cycles)
    findings += sources.errors

    hot = sorted(
        (
            HotSpot(
                module=node,
                path=by_node[node].path,
                fan_in=graph.in_degree(node),
                fan_out=graph.out_degree(node),
            )
            for node in graph.nodes
        ),
        key=lambda h: (-(h.fan_in + h.fan_out), -h.fan_in, h.module),
    )
    hot_spots = [h for h in hot[: inputs.top_n] if h.fan_in + h.fan_out > 0]

    package_of = _package_of(modules, inputs.package_depth)
    packages = _packages(package_of, graph)
    entry_points += _declared_scripts(sources.root, notes)
    entry_points.sort(key=lambda e: (e.kind, e.name, e.path, e.line))
    externals = sorted(
        (
            ExternalImport(
                name=name, stdlib=name in sys.stdlib_module_names, imported_by=len(users)
            )
            for name, users in external.items()
        ),
        key=lambda e: (-e.imported_by, e.name),
    )
    kinds = Counter(kind for kind, _ in edges.values())
    findings = sort_findings(findings)
    summary = (
        f"{graph.number_of_nodes()} modules, {graph.number_of_edges()} internal imports, "
        f"{len(packages)} packages, {len(cycles)} import cycle"
        f"{'' if len(cycles) == 1 else 's'}, {len(entry_points)} entry points, "
        f"{len(externals)} external top-level imports"
    )
    focus = None
    gathered = gathered_context(ctx)
    if gathered is not None:
        files = gathered.focus_files(by_path)
        focus = ArchitectureFocus(
            task=gathered.task,
            files=files,
            findings=gathered.focus_findings(findings),
            modules=_roles([by_path[f].node for f in files], graph, package_of, packages),
        )
        summary += f"; {len(files)} of the modules gathered for the task"
        assert ctx is not None
        report_use(ctx, gathered, [focus.modules, focus.findings])
    return Output(
        summary=summary,
        files_analysed=len(sources.selected),
        nodes=graph.number_of_nodes(),
        edges=graph.number_of_edges(),
        edges_by_kind={k: kinds.get(k, 0) for k in ("runtime", "deferred", "type_checking")},
        packages=packages,
        cycles=cycles,
        hot_spots=hot_spots,
        entry_points=entry_points,
        external_imports=externals,
        findings=findings,
        counts=SeverityCounts.of(findings),
        notes=sorted(set(notes)),
        language_coverage=[sources.coverage("import graph (ast)")],
        focus=focus,
    )


def _roles(
    nodes: list[str], graph: nx.DiGraph, package_of: dict[str, str], packages: list[PackageInfo]
) -> list[ModuleRole]:
    """Each module's place in the graph, in the order of ``nodes``."""
    layer = {p.name: p.layer for p in packages}
    runtime = nx.DiGraph()
    runtime.add_edges_from((s, t) for s, t, kind in graph.edges(data="kind") if kind == "runtime")
    cyclic = {n for c in nx.strongly_connected_components(runtime) if len(c) > 1 for n in c}
    return [
        ModuleRole(
            module=node,
            path=graph.nodes[node]["path"],
            package=package_of[node],
            layer=layer[package_of[node]],
            fan_in=graph.in_degree(node),
            fan_out=graph.out_degree(node),
            in_cycle=node in cyclic,
            imports=[
                ImportRef(module=target, line=data["line"], kind=data["kind"])
                for _s, target, data in sorted(graph.out_edges(node, data=True), key=_by_line)
            ],
            imported_by=sorted(graph.predecessors(node)),
        )
        for node in nodes
    ]


def _by_line(edge: tuple[str, str, dict]) -> tuple[int, str]:
    return edge[2]["line"], edge[1]


def _cycles(
    graph: nx.DiGraph, by_node: dict[str, _Module], include_deferred: bool
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
        imports = [
            f"{by_node[a].path}:{graph.edges[a, b]['line']}" for a, b in itertools.pairwise(path)
        ]
        cycles.append(Cycle(size=len(members), modules=members, path=path, imports=imports))
        first = by_node[path[0]].path
        findings.append(
            Finding(
                path=first,
                line=graph.edges[path[0], path[1]]["line"],
                rule="import-cycle",
                severity="medium",
                confidence="high",
                message=f"import cycle of {len(members)} modules: {' → '.join(path)}",
                tool="agentrt",
            )
        )
    cycles.sort(key=lambda c: (-c.size, c.path))
    return cycles, findings


def _package_of(modules: list[_Module], depth: int | None) -> dict[str, str]:
    """Module node → its package's name."""
    depth = depth or _default_depth([m.group for m in modules])
    return {m.node: ".".join(m.group[:depth]) for m in modules}


def _packages(package_of: dict[str, str], graph: nx.DiGraph) -> list[PackageInfo]:
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
                f"- **{cycle.size} modules**: {md_code(' → '.join(cycle.path))} "
                f"(imports at {where})"
            )
    else:
        parts.append("_No import cycles among module-level imports._")
    parts += ["", "### Packages and layers", ""]
    parts.append(
        md_table(
            ["Layer", "Package", "Modules", "Depends on", "Used by"],
            [
                (
                    p.layer,
                    md_code(p.name) + (" (cycle)" if p.in_cycle else ""),
                    p.modules,
                    _short_list(p.depends_on) or "—",
                    len(p.used_by),
                )
                for p in output.packages
            ],
        )
    )
    parts += ["", "### Hot spots (fan-in + fan-out)", ""]
    parts.append(
        md_table(
            ["Module", "File", "Fan-in", "Fan-out"],
            [(md_code(h.module), md_code(h.path), h.fan_in, h.fan_out) for h in output.hot_spots],
        )
        if output.hot_spots
        else "_No internal imports._"
    )
    parts += ["", "### Entry points", ""]
    parts.append(
        md_table(
            ["Kind", "Name", "Target", "Declared at"],
            [
                (e.kind, md_code(e.name), md_code(e.target), md_code(f"{e.path}:{e.line}"))
                for e in output.entry_points
            ],
        )
        if output.entry_points
        else "_None found._"
    )
    third_party = [e for e in output.external_imports if not e.stdlib]
    parts += ["", "### Third-party imports", ""]
    parts.append(
        ", ".join(f"{md_code(e.name)} ({e.imported_by})" for e in third_party[:30])
        if third_party
        else "_None._"
    )
    if output.findings:
        parts += ["", "### Findings", "", findings_table(output.findings)]
    if output.language_coverage:
        parts += ["", coverage_markdown(output.language_coverage)]
    if output.notes:
        parts += ["", "### Notes", ""] + [f"- {n}" for n in output.notes[:20]]
    return "\n".join(parts) + "\n"
