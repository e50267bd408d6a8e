"""Documentation generation (agent ``documentation_generation``): API reference and coverage.

Every language the context manager parses is documented, from its syntax tree; nothing is
imported or run. Python is read with :mod:`ast` (below); JavaScript, TypeScript, Go, Rust,
Java, Kotlin, C, C++, C#, Ruby, PHP and Swift from the context manager's tree-sitter parse
(the index ``context_gathering`` builds: a ``code-analysis`` run parses each file once), by
the rules of :mod:`agentrt.agents.builtin.doc_comments`: what is public in each language
(Go's exported names, Rust's ``pub``, Java's ``public``, JavaScript's exports, C and C++
headers…), signatures as written, summaries from doc comments, and module docs where the
language has them (Go package comments, Rust ``//!``).

The **public API** of a Python module:

* modules whose path has no part starting with ``_`` (``pkg/_internal/x.py`` is private;
  ``__init__.py`` stands for its package), and no test code unless ``include_tests``;
* if the module assigns a literal ``__all__``, the classes and functions it names that are
  defined in the module; otherwise every top-level class and function not starting with ``_``
  (definitions inside top-level ``if``/``try`` blocks count; the first one wins);
* in public classes, methods and nested classes not starting with ``_`` (dunder methods are
  documented by the class); ``@overload`` stubs and property setters/deleters are skipped.

Signatures are rendered with :func:`ast.unparse` from the arguments, annotations, defaults and
return annotation as written; summaries are the first paragraph of the docstring, on one line.

**Coverage** per module is documented objects / public objects, the module itself counting as
one object (its docstring; in other languages only where they have module docs). Every
undocumented public object is a finding: ``low`` for functions, classes and the other types
(structs, enums, interfaces, traits, type aliases), ``info`` for modules, methods and
properties.

**Focus.** After ``context_gathering`` (``code-analysis``), ``focus`` holds the API of the
public modules (of any language) among the files it gathered for the workflow's task, most
relevant first, and their undocumented objects; the agent reports the gathered items holding
those objects as its context use (:mod:`agentrt.agents.builtin.gathered`). Elsewhere
``focus`` is None.
"""

from __future__ import annotations

import ast
from collections import Counter
from collections.abc import Iterator
from pathlib import PurePosixPath
from typing import Literal

from pydantic import BaseModel, Field

from agentrt.agents.agent_context import AgentContext
from agentrt.agents.builtin.common import (
    AnalyserInput,
    Finding,
    ParsedFile,
    PythonSources,
    Severity,
    SeverityCounts,
    findings_table,
    is_test_path,
    load_context_index,
    load_python,
    md_code,
    md_table,
    sort_findings,
)
from agentrt.agents.builtin.coverage import ToolCoverage, coverage_markdown, display_language
from agentrt.agents.builtin.doc_comments import FileApi, LanguageSources, document_languages
from agentrt.agents.builtin.gathered import Focus, focus_markdown, gathered_context, report_use

__all__ = [
    "ApiObject",
    "Coverage",
    "DocFocus",
    "Input",
    "ModuleDoc",
    "Output",
    "reference_markdown",
    "render_markdown",
    "run",
]

ObjectKind = Literal[
    "class", "struct", "enum", "interface", "trait", "type", "function", "method", "property"
]
_SEVERITY: dict[str, Severity] = {
    "module": "info",
    "class": "low",
    "struct": "low",
    "enum": "low",
    "interface": "low",
    "trait": "low",
    "type": "low",
    "function": "low",
    "method": "info",
    "property": "info",
}


class Input(AnalyserInput):
    """Which modules to document."""

    include_tests: bool = Field(default=False, description="Document test modules too.")
    include_private: bool = Field(
        default=False, description="Document modules under `_private` paths too."
    )


class Coverage(BaseModel):
    """Documented public objects out of all public objects."""

    documented: int
    total: int
    percent: float = Field(description="documented / total × 100; 100 when there is nothing.")

    @classmethod
    def of(cls, documented: int, total: int) -> Coverage:
        percent = round(100.0 * documented / total, 1) if total else 100.0
        return cls(documented=documented, total=total, percent=percent)


class ApiObject(BaseModel):
    """A public class (struct, enum, interface, trait, type), function, method or property."""

    kind: ObjectKind
    name: str = Field(description="Qualified name inside the module, e.g. Class.method.")
    line: int
    signature: str
    summary: str = Field(
        description="First paragraph of the docstring (first sentence of the doc comment in "
        "other languages); empty if none."
    )
    documented: bool


class ModuleDoc(BaseModel):
    """A public module (a source file): its docstring summary, public objects and coverage."""

    name: str = Field(
        description="Python's dotted module, Go's import path, Rust's module path, a Java or "
        "Kotlin package, a C# or PHP namespace, a C/C++ header's path, else the path without "
        "its suffix."
    )
    path: str
    summary: str
    documented: bool
    objects: list[ApiObject]
    coverage: Coverage
    language: str = "python"
    counted: bool = Field(
        default=True,
        description="Whether the module is one of its own objects: a Python docstring, a Go "
        "package comment (in one file of the package), Rust //! docs; false elsewhere.",
    )


class DocFocus(Focus):
    """The documentation of the files gathered for the task (``findings``: their
    undocumented public objects)."""

    modules: list[ModuleDoc] = Field(
        description="The public modules among the gathered files, most relevant first."
    )


class Output(BaseModel):
    """The API reference of the repository and how much of it is documented."""

    summary: str
    files_analysed: int
    modules: list[ModuleDoc]
    coverage: Coverage
    reference_markdown: str
    undocumented: list[Finding]
    counts: SeverityCounts
    notes: list[str]
    language_coverage: list[ToolCoverage] = Field(
        default_factory=list,
        description="The files documented per language, and the code files left out (tests, "
        "private modules and scripts unless asked for, C/C++ sources, amalgamations; "
        "languages without a grammar: not read).",
    )
    focus: DocFocus | None = Field(
        default=None,
        description="The modules among the files context_gathering selected for the task; "
        "None without a context_gathering step.",
    )


# --------------------------------------------------------------------------------------------
# Extraction


def _summary(node: ast.AST) -> tuple[str, bool]:
    """First paragraph of a docstring on one line, and whether there is a docstring."""
    assert isinstance(node, ast.Module | ast.ClassDef | ast.FunctionDef | ast.AsyncFunctionDef)
    docstring = ast.get_docstring(node, clean=True)
    if not docstring or not docstring.strip():
        return "", False
    paragraph = docstring.strip().split("\n\n", 1)[0]
    return " ".join(paragraph.split()), True


def _decorator_names(node: ast.FunctionDef | ast.AsyncFunctionDef | ast.ClassDef) -> list[str]:
    return [ast.unparse(d) for d in node.decorator_list]


def _function_signature(node: ast.FunctionDef | ast.AsyncFunctionDef) -> str:
    prefix = "async def" if isinstance(node, ast.AsyncFunctionDef) else "def"
    returns = f" -> {ast.unparse(node.returns)}" if node.returns else ""
    decorators = "".join(f"@{d}\n" for d in _decorator_names(node))
    return f"{decorators}{prefix} {node.name}({ast.unparse(node.args)}){returns}"


def _class_signature(node: ast.ClassDef) -> str:
    bases = [ast.unparse(b) for b in node.bases] + [ast.unparse(k) for k in node.keywords]
    decorators = "".join(f"@{d}\n" for d in _decorator_names(node))
    return f"{decorators}class {node.name}" + (f"({', '.join(bases)})" if bases else "")


def _skipped(node: ast.FunctionDef | ast.AsyncFunctionDef) -> bool:
    """``@overload`` stubs and ``@x.setter``/``@x.deleter`` repeat an object documented once."""
    for decorator in _decorator_names(node):
        if decorator in ("overload", "typing.overload", "typing_extensions.overload"):
            return True
        if decorator.endswith((".setter", ".deleter")):
            return True
    return False


def _definitions(body: list[ast.stmt]) -> Iterator[ast.stmt]:
    """Definitions of a block, looking inside ``if``/``try`` blocks (conditional definitions)."""
    for stmt in body:
        if isinstance(stmt, ast.FunctionDef | ast.AsyncFunctionDef | ast.ClassDef):
            yield stmt
        elif isinstance(stmt, ast.If):
            yield from _definitions(stmt.body)
            yield from _definitions(stmt.orelse)
        elif isinstance(stmt, ast.Try | ast.TryStar):
            for block in (stmt.body, *(h.body for h in stmt.handlers), stmt.orelse):
                yield from _definitions(block)


def _dunder_all(tree: ast.Module) -> set[str] | None:
    """The names of a literal ``__all__ = [...]`` (or tuple), if the module has one."""
    for stmt in tree.body:
        targets: list[ast.expr] = []
        if isinstance(stmt, ast.Assign):
            targets = stmt.targets
        elif isinstance(stmt, ast.AnnAssign) and stmt.value is not None:
            targets = [stmt.target]
        if any(isinstance(t, ast.Name) and t.id == "__all__" for t in targets):
            try:
                value = ast.literal_eval(stmt.value)  # type: ignore[arg-type]
            except ValueError:
                return None
            if isinstance(value, list | tuple) and all(isinstance(v, str) for v in value):
                return set(value)
            return None
    return None


_PROPERTIES = frozenset({"property", "cached_property", "functools.cached_property"})


def _objects(body: list[ast.stmt], prefix: str, public: set[str] | None) -> Iterator[ApiObject]:
    seen: set[str] = set()
    for node in _definitions(body):
        assert isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef | ast.ClassDef)
        name = node.name
        if name in seen or name.startswith("_") or (public is not None and name not in public):
            continue
        if not isinstance(node, ast.ClassDef) and _skipped(node):
            continue
        seen.add(name)
        summary, documented = _summary(node)
        qualname = prefix + name
        if isinstance(node, ast.ClassDef):
            yield ApiObject(
                kind="class",
                name=qualname,
                line=node.lineno,
                signature=_class_signature(node),
                summary=summary,
                documented=documented,
            )
            yield from _objects(node.body, qualname + ".", None)
            continue
        kind: ObjectKind = "function" if not prefix else "method"
        if _PROPERTIES.intersection(_decorator_names(node)):
            kind = "property"
        yield ApiObject(
            kind=kind,
            name=qualname,
            line=node.lineno,
            signature=_function_signature(node),
            summary=summary,
            documented=documented,
        )


def _is_public_module(path: str) -> bool:
    parts = PurePosixPath(path).with_suffix("").parts
    return not any(p.startswith("_") and p != "__init__" for p in parts)


def _module_name(path: str, root_name: str | None) -> str:
    parts = list(PurePosixPath(path).with_suffix("").parts)
    if parts and parts[-1] == "__init__":
        parts.pop()
    if parts and parts[0] == "src":
        parts.pop(0)  # the src layout: src/pkg/mod.py is pkg.mod
    if root_name:
        parts.insert(0, root_name)
    return ".".join(parts) or (root_name or "__init__")


def _document(parsed: ParsedFile, name: str) -> ModuleDoc:
    summary, documented = _summary(parsed.tree)
    objects = list(_objects(parsed.tree.body, "", _dunder_all(parsed.tree)))
    covered = int(documented) + sum(o.documented for o in objects)
    return ModuleDoc(
        name=name,
        path=parsed.path,
        summary=summary,
        documented=documented,
        objects=objects,
        coverage=Coverage.of(covered, 1 + len(objects)),
    )


def _module_message(module: ModuleDoc) -> str:
    if module.language == "go":
        return f"package `{module.name}` has no package comment"
    if module.language == "rust":
        return f"public module `{module.name}` has no `//!` docs"
    return f"public module `{module.name}` has no docstring"


def _object_message(module: ModuleDoc, obj: ApiObject) -> str:
    if module.language == "python":
        return f"public {obj.kind} `{module.name}.{obj.name}` has no docstring"
    return f"public {obj.kind} `{obj.name}` in `{module.name}` has no doc comment"


def _undocumented(module: ModuleDoc) -> Iterator[Finding]:
    if module.counted and not module.documented:
        yield Finding(
            path=module.path,
            line=1,
            rule="undocumented-module",
            severity=_SEVERITY["module"],
            confidence="high",
            message=_module_message(module),
            tool="agentrt",
        )
    for obj in module.objects:
        if not obj.documented:
            yield Finding(
                path=module.path,
                line=obj.line,
                rule=f"undocumented-{obj.kind}",
                severity=_SEVERITY[obj.kind],
                confidence="high",
                message=_object_message(module, obj),
                tool="agentrt",
            )


def _from_file(api: FileApi) -> ModuleDoc:
    """The module of a file in another language than Python (see :mod:`doc_comments`)."""
    objects = [
        ApiObject(
            kind=o.kind,  # type: ignore[arg-type]
            name=o.name,
            line=o.line,
            signature=o.signature,
            summary=o.summary,
            documented=o.documented,
        )
        for o in api.objects
    ]
    covered = int(api.counted and api.documented) + sum(o.documented for o in objects)
    return ModuleDoc(
        name=api.name,
        path=api.path,
        summary=api.summary,
        documented=api.documented,
        objects=objects,
        coverage=Coverage.of(covered, int(api.counted) + len(objects)),
        language=api.language,
        counted=api.counted,
    )


# --------------------------------------------------------------------------------------------
# Markdown


def _fence(path: str) -> str:
    from agentrt.context.select import fence_language  # deferred: only for other languages

    return fence_language(path)


def reference_markdown(modules: list[ModuleDoc], level: int = 1) -> str:
    """The API reference: one section per module (per package where a package's files share
    its name), one subsection per public object.

    ``level`` is the heading level of the title (module headings are one deeper).
    """
    h = "#" * level
    lines = [f"{h} API reference", ""]
    previous = None
    for module in modules:
        if module.name != previous:  # the files of one package (Go, Java) share a heading
            lines += [f"{h}# `{module.name}`", ""]
        previous = module.name
        lines += [f"_Source: {md_code(module.path)}_", ""]
        if module.summary:
            lines += [module.summary, ""]
        fence = "python" if module.language == "python" else _fence(module.path)
        for obj in module.objects:
            heading = "#" * min(6, level + 2 + obj.name.count("."))
            lines += [
                f"{heading} `{obj.name}`",
                "",
                f"```{fence}",
                obj.signature,
                "```",
                "",
                obj.summary or "_Undocumented._",
                "",
            ]
    return "\n".join(lines).rstrip() + "\n"


def render_markdown(output: Output) -> str:
    """The documentation section of the run report, the API reference included."""
    c = output.coverage
    parts = [
        "## Documentation",
        "",
        output.summary,
        "",
        md_table(
            ["Modules", "Public objects", "Documented", "Coverage"],
            [(len(output.modules), c.total, c.documented, f"{c.percent}%")],
        ),
    ]
    least = sorted(output.modules, key=lambda m: (m.coverage.percent, m.name))
    least = [m for m in least if m.coverage.percent < 100][:20]
    if least:
        parts += ["", "### Least documented modules", ""]
        parts.append(
            md_table(
                ["Module", "File", "Documented", "Coverage"],
                [
                    (
                        md_code(m.name),
                        md_code(m.path),
                        f"{m.coverage.documented}/{m.coverage.total}",
                        f"{m.coverage.percent}%",
                    )
                    for m in least
                ],
            )
        )
    if output.focus is not None:
        parts += ["", *focus_markdown(output.focus)]
        if output.focus.modules:
            rows = [
                (
                    md_code(m.name),
                    md_code(m.path),
                    f"{m.coverage.documented}/{m.coverage.total}",
                    ", ".join(md_code(o.name) for o in m.objects[:8])
                    + (f" (+{len(m.objects) - 8})" if len(m.objects) > 8 else ""),
                )
                for m in output.focus.modules
            ]
            parts += ["", md_table(["Module", "File", "Documented", "Public objects"], rows)]
    if output.undocumented:
        parts += ["", "### Undocumented public objects", "", findings_table(output.undocumented)]
    if output.language_coverage:
        parts += ["", coverage_markdown(output.language_coverage)]
    if output.notes:
        parts += ["", "### Notes", ""] + [f"- {n}" for n in output.notes[:20]]
    parts += ["", reference_markdown(output.modules, level=3)]
    return "\n".join(parts).rstrip() + "\n"


# --------------------------------------------------------------------------------------------
# Entry point


def run(inputs: Input, ctx: AgentContext | None = None) -> Output:
    """Document the public modules of ``inputs.repo`` from one parse of each file (Python's
    own, the context manager's index for the other languages); focus on the files gathered
    for the task when ``ctx.upstream`` has them."""
    sources = load_python(inputs.repo, inputs.files)
    sources.selected = [
        f
        for f in sources.selected
        if (inputs.include_private or _is_public_module(f.path))
        and (inputs.include_tests or not is_test_path(f.path))
        and PurePosixPath(f.path).name not in ("__main__.py", "setup.py", "conftest.py")
    ]
    root_name = (
        sources.root.name if any(f.path == "__init__.py" for f in sources.selected) else None
    )
    modules = [_document(parsed, _module_name(parsed.path, root_name)) for parsed in sources]
    others = _other_languages(sources, inputs)
    modules += [_from_file(api) for api in others.files if api.objects or api.counted]
    # By name; in a package of several files (Go), the one with its comment first.
    modules.sort(key=lambda m: (m.name, not m.counted, m.path))
    undocumented = sort_findings(f for m in modules for f in _undocumented(m))
    documented = sum(m.coverage.documented for m in modules)
    total = sum(m.coverage.total for m in modules)
    coverage = Coverage.of(documented, total)
    counts = SeverityCounts.of(undocumented)
    summary = (
        f"{len(modules)} public modules, {total} public objects (modules included), "
        f"{coverage.percent}% documented; {len(undocumented)} undocumented"
    )
    if others.analysed:
        languages = Counter(m.language for m in modules)
        summary = (
            f"{len(modules)} public modules ("
            + ", ".join(f"{display_language(lang)} {n}" for lang, n in languages.most_common())
            + f"), {total} public objects (modules included where the language has module "
            f"docs), {coverage.percent}% documented; {len(undocumented)} undocumented"
        )
    focus = None
    gathered = gathered_context(ctx)
    if gathered is not None:
        files = gathered.focus_files(m.path for m in modules)
        by_path = {m.path: m for m in modules}
        focus = DocFocus(
            task=gathered.task,
            files=files,
            findings=gathered.focus_findings(undocumented),
            modules=[by_path[f] for f in files],
        )
        summary += f"; {len(files)} of the modules gathered for the task"
        assert ctx is not None
        report_use(ctx, gathered, [focus.modules, focus.findings])
    tool = "docstrings (ast)"
    if others.analysed:
        python = any(f.language == "python" for f in sources.everything)
        tool = ("docstrings (ast), " if python else "") + "doc comments (tree-sitter)"
    return Output(
        summary=summary,
        files_analysed=len(sources.selected) + len(others.analysed),
        modules=modules,
        coverage=coverage,
        reference_markdown=reference_markdown(modules),
        undocumented=undocumented,
        counts=counts,
        notes=sources.notes,
        language_coverage=[
            sources.coverage(
                tool, "not public API", analysed=others.analysed, excluded=others.excluded
            )
        ],
        focus=focus,
    )


def _other_languages(sources: PythonSources, inputs: Input) -> LanguageSources:
    """The API of the files in the other languages the context manager parses, from its
    index (built, or reused from ``context_gathering``, only when there are such files)."""
    from agentrt.context.syntax import syntax_language  # deferred: keeps `import agents` light

    candidates = [
        f
        for f in sources.everything
        if f.language != "python" and syntax_language(f.path) is not None
    ]
    if not candidates:
        return LanguageSources()
    # The scan made for Python is the whole repository's unless the run names some files.
    whole = sources.repo_files if inputs.files is None else None
    index = load_context_index(sources.root, whole)
    return document_languages(
        index,
        candidates,
        include_tests=inputs.include_tests,
        include_private=inputs.include_private,
    )
