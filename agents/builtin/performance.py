"""Performance validation (agent ``performance_validation``): metrics and loop hot spots.

From one parse of each Python file:

**Metrics** (radon's visitors on our syntax tree): cyclomatic complexity per function and per
file, Halstead volume, and the maintainability index with radon's formula
(:func:`radon.metrics.mi_compute`, ranks A > 19 ≥ B > 9 ≥ C). The line counts that formula
needs come from the syntax tree and the text rather than :mod:`radon.raw`, whose tokenizer
took 8 of 10 seconds on prefect: ``lloc`` is the number of statements, comment lines are the
lines that hold only a comment plus the lines of docstrings and other string statements
(radon also counts trailing comments, so its index can be a little higher).

**Loop hot spots**, found by walking the tree with the loop depth at every node: ``for``,
``async for``, ``while`` and each ``for`` clause of a comprehension add a level; a function,
lambda or class body starts again at 0 (it does not run per iteration); a ``for`` loop's
iterable and a comprehension's first iterable are evaluated once, outside the loop.

* ``nested-loops``: a loop nest at least 2 deep (one finding per outermost loop);
* ``io-in-loop``: a call that does I/O inside a loop body: ``open()`` and ``Path.open`` /
  ``read_text`` / ``write_text``…, ``.read()`` / ``.write()`` and friends, HTTP calls
  (``requests.*``, ``httpx.*``, ``urlopen``, ``session.get``/``client.post``…), subprocesses
  (``subprocess.*``, ``os.system``, ``os.popen``), database calls (``.execute()``,
  ``.executemany()``).

**Score.** Code at loop depth ``d`` runs ``n**d`` times for ``n`` iterations per loop; with
``n = 2``, the smallest count that repeats anything, ``2**d`` is a lower bound on the
blow-up. An I/O call costs its latency class: network and subprocess 5, database 4, opening
a file 3, a buffered read/write 2. So::

    io_call_score  = weight(kind) * 2**depth
    hot_spot_score = (2**max_depth if max_depth >= 2 else 0) + sum(io_call_score)

Hot spots (one per outermost loop) are ranked by that score. Performance smells are not
defects, so severities stay at ``medium`` or below: an I/O call is ``medium`` from score 8
(any network, process or database call in a loop, file I/O two loops deep), else ``low``;
a nest is ``info`` at depth 2, ``low`` at 3, ``medium`` from 4; a file of maintainability
rank C is ``low``.
"""

from __future__ import annotations

import ast
from collections.abc import Iterator
from dataclasses import dataclass, field
from statistics import fmean
from typing import Literal

from pydantic import BaseModel, Field
from radon.complexity import add_inner_blocks, cc_rank
from radon.metrics import h_visit_ast, mi_compute, mi_rank
from radon.visitors import ComplexityVisitor, Function

from agentrt.agents.builtin.common import (
    AnalyserInput,
    Finding,
    ParsedFile,
    Severity,
    SeverityCounts,
    findings_table,
    load_python,
    md_code,
    md_table,
    sort_findings,
)
from agentrt.agents.builtin.coverage import ToolCoverage, coverage_markdown

__all__ = [
    "IO_WEIGHTS",
    "FileMetrics",
    "FunctionMetrics",
    "HotSpot",
    "Input",
    "Output",
    "Totals",
    "render_markdown",
    "run",
]

IoKind = Literal["network", "process", "database", "file", "read/write"]
IO_WEIGHTS: dict[IoKind, int] = {
    "network": 5,
    "process": 5,
    "database": 4,
    "file": 3,
    "read/write": 2,
}


class Input(AnalyserInput):
    """What to measure, and how much of it to report."""

    top_n: int = Field(default=20, ge=1, description="Hot spots and functions to list.")


class FileMetrics(BaseModel):
    """Size, complexity and maintainability of one file."""

    path: str
    loc: int = Field(description="Lines.")
    sloc: int = Field(description="Lines of code: not blank, not only a comment or docstring.")
    lloc: int = Field(description="Statements.")
    comment_lines: int
    functions: int
    complexity: int = Field(description="Cyclomatic complexity of the whole file (radon).")
    max_complexity: int
    maintainability: float = Field(description="Maintainability index, 0-100.")
    maintainability_rank: str


class FunctionMetrics(BaseModel):
    """Cyclomatic complexity of one function (radon)."""

    path: str
    line: int
    name: str
    complexity: int
    rank: str


class HotSpot(BaseModel):
    """An outermost loop with deep nesting and/or I/O inside."""

    path: str
    line: int
    function: str
    depth: int = Field(description="Deepest loop nesting inside this loop.")
    io_calls: list[str] = Field(description="`call` at line (depth d) for each I/O call.")
    score: int


class Totals(BaseModel):
    """Sums and means over all files."""

    loc: int
    sloc: int
    lloc: int
    functions: int
    mean_complexity: float = Field(description="Mean cyclomatic complexity per function.")
    mean_maintainability: float
    files_by_rank: dict[str, int] = Field(description="Files per maintainability rank.")


class Output(BaseModel):
    """Metrics per file, the worst functions and the loop hot spots."""

    summary: str
    files_analysed: int
    totals: Totals
    files: list[FileMetrics]
    worst_functions: list[FunctionMetrics]
    hot_spots: list[HotSpot]
    findings: list[Finding]
    counts: SeverityCounts
    notes: list[str]
    language_coverage: list[ToolCoverage] = Field(
        default_factory=list,
        description="Python files measured, and the code files left out (radon and the loop "
        "analysis read Python only).",
    )


# --------------------------------------------------------------------------------------------
# Metrics


def _line_counts(text: str) -> tuple[int, int, int]:
    """(lines, blank lines, comment-only lines), without tokenizing (see the module docstring)."""
    lines = text.splitlines()
    blank = comments = 0
    for line in lines:
        stripped = line.lstrip()
        if not stripped:
            blank += 1
        elif stripped[0] == "#":
            comments += 1
    return len(lines), blank, comments


def _metrics(
    parsed: ParsedFile, statements: int, string_lines: int
) -> tuple[FileMetrics, list[FunctionMetrics]]:
    visitor = ComplexityVisitor.from_ast(parsed.tree)
    functions = [
        FunctionMetrics(
            path=parsed.path,
            line=block.lineno,
            name=block.fullname,
            complexity=block.complexity,
            rank=cc_rank(block.complexity),
        )
        for block in add_inner_blocks(visitor.blocks)
        if isinstance(block, Function)
    ]
    loc, blank, comments = _line_counts(parsed.text)
    comment_lines = comments + string_lines
    sloc = max(0, loc - blank - comment_lines)
    lloc = statements
    volume = h_visit_ast(parsed.tree).total.volume
    # radon.metrics.mi_parameters: comment lines (and multi-line strings) per SLOC, in percent.
    comment_percent = comment_lines / sloc * 100 if sloc else 0
    mi = round(mi_compute(volume, visitor.total_complexity, lloc, comment_percent), 2)
    metrics = FileMetrics(
        path=parsed.path,
        loc=loc,
        sloc=sloc,
        lloc=lloc,
        comment_lines=comment_lines,
        functions=len(functions),
        complexity=visitor.total_complexity,
        max_complexity=max((f.complexity for f in functions), default=0),
        maintainability=mi,
        maintainability_rank=mi_rank(mi),
    )
    return metrics, functions


# --------------------------------------------------------------------------------------------
# Loops

_HTTP_MODULES = frozenset({"requests", "httpx", "urllib3", "aiohttp"})
_HTTP_VERBS = frozenset({"get", "post", "put", "patch", "delete", "head", "options", "request"})
_SUBPROCESS = frozenset(
    {"run", "call", "check_call", "check_output", "Popen", "getoutput", "getstatusoutput"}
)
_OS_PROCESS = frozenset({"system", "popen", "spawnl", "spawnv", "execv", "execvp"})
_DB_CALLS = frozenset({"execute", "executemany", "executescript"})
_FILE_CALLS = frozenset({"open", "read_text", "write_text", "read_bytes", "write_bytes"})
_RW_CALLS = frozenset({"read", "write", "readline", "readlines", "writelines"})


def _dotted(node: ast.expr) -> list[str]:
    """``a.b.c`` as ``["a", "b", "c"]``; an empty list when the chain does not start at a name."""
    parts: list[str] = []
    while isinstance(node, ast.Attribute):
        parts.append(node.attr)
        node = node.value
    if isinstance(node, ast.Name):
        parts.append(node.id)
        return parts[::-1]
    if isinstance(node, ast.Call):  # Path(p).read_text(): the call's result is the receiver
        return ["()", *parts[::-1]]
    return []


def _io_kind(call: ast.Call) -> tuple[IoKind, str] | None:
    """What kind of I/O a call does, and how to name it; None if it does not look like I/O."""
    func = call.func
    if isinstance(func, ast.Name):
        if func.id == "open":
            return "file", "open()"
        if func.id == "urlopen":
            return "network", "urlopen()"
        return None
    if not isinstance(func, ast.Attribute):
        return None
    parts = _dotted(func)
    attr = func.attr
    label = ".".join(parts[-2:]) + "()" if parts else f".{attr}()"
    root = parts[0] if parts else ""
    receiver = parts[-2].lower() if len(parts) >= 2 else ""
    if root in _HTTP_MODULES or (parts[:3] == ["urllib", "request", "urlopen"]):
        return "network", label
    if attr in _HTTP_VERBS and receiver.endswith(("session", "client")):
        return "network", label
    if (root == "subprocess" and attr in _SUBPROCESS) or (root == "os" and attr in _OS_PROCESS):
        return "process", label
    if attr in _DB_CALLS:
        return "database", label
    if attr in _FILE_CALLS:
        return "file", label
    if attr in _RW_CALLS:
        return "read/write", label
    return None


@dataclass(slots=True)
class _Nest:
    line: int
    function: str
    depth: int = 1
    loop_lines: list[int] = field(default_factory=list)
    io: list[tuple[int, int, IoKind, str]] = field(default_factory=list)  # line, depth, kind


# Nodes with nothing below them worth visiting: skipped without a call (a third of all nodes).
_LEAVES = frozenset(
    {ast.Name, ast.Constant, ast.Load, ast.Store, ast.Del, ast.alias, ast.Pass}
    | {
        cls
        for base in (ast.operator, ast.unaryop, ast.cmpop, ast.boolop)
        for cls in base.__subclasses__()
    }
)
_SCOPES = (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef, ast.Lambda)
_COMPREHENSIONS = (ast.ListComp, ast.SetComp, ast.GeneratorExp, ast.DictComp)


class _LoopWalker:
    """Walks one file's tree tracking loop depth; collects one :class:`_Nest` per outer loop.

    Also counts statements and docstring lines on the way, so that a file's tree is walked
    once here for everything but radon's own visitors.
    """

    def __init__(self) -> None:
        self.nests: list[_Nest] = []
        self.statements = 0
        self.string_lines = 0  # lines of docstrings and other string statements
        self._current: _Nest | None = None
        self._function = "<module>"

    def walk(self, node: ast.AST, depth: int = 0) -> None:
        if isinstance(node, ast.stmt):
            self.statements += 1
            if (
                type(node) is ast.Expr
                and type(node.value) is ast.Constant
                and isinstance(node.value.value, str)
            ):
                self.string_lines += (node.end_lineno or node.lineno) - node.lineno + 1
                return
        if isinstance(node, _SCOPES):
            self._scope(node)
        elif isinstance(node, ast.For | ast.AsyncFor):
            self.walk(node.iter, depth)  # evaluated once
            self._loop(node.lineno, depth, [node.target, *node.body])
            for child in node.orelse:
                self.walk(child, depth)
        elif isinstance(node, ast.While):
            self._loop(node.lineno, depth, [node.test, *node.body])
            for child in node.orelse:
                self.walk(child, depth)
        elif isinstance(node, _COMPREHENSIONS):
            self._comprehension(node, depth)
        else:
            if depth and type(node) is ast.Call:
                self._call(node, depth)  # type: ignore[arg-type]
            # ast.iter_child_nodes, inlined: this loop is most of the analyser's time.
            for name in node._fields:
                value = getattr(node, name, None)
                if type(value) is list:
                    for item in value:
                        if isinstance(item, ast.AST) and type(item) not in _LEAVES:
                            self.walk(item, depth)
                elif isinstance(value, ast.AST) and type(value) not in _LEAVES:
                    self.walk(value, depth)

    def _scope(self, node: ast.AST) -> None:
        saved = self._current, self._function
        name = getattr(node, "name", "<lambda>")
        self._function = name if saved[1] == "<module>" else f"{saved[1]}.{name}"
        self._current = None
        if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef | ast.Lambda):
            # Defaults and decorators run where the function is defined, not per call.
            for child in ast.iter_child_nodes(node.args):
                if child is not None:
                    self.walk(child, 0)
        body = node.body if isinstance(node.body, list) else [node.body]
        for child in body:
            self.walk(child, 0)
        self._current, self._function = saved

    def _enter(self, line: int, depth: int) -> None:
        if depth == 0 or self._current is None:
            self._current = _Nest(line=line, function=self._function)
            self.nests.append(self._current)
        self._current.depth = max(self._current.depth, depth + 1)
        self._current.loop_lines.append(line)

    def _loop(self, line: int, depth: int, inside: list[ast.AST]) -> None:
        self._enter(line, depth)
        for child in inside:
            self.walk(child, depth + 1)
        if depth == 0:
            self._current = None

    def _comprehension(
        self, node: ast.ListComp | ast.SetComp | ast.GeneratorExp | ast.DictComp, depth: int
    ) -> None:
        generators = node.generators
        self.walk(generators[0].iter, depth)  # the first iterable is evaluated once
        outer = depth
        for index, generator in enumerate(generators):
            self._enter(node.lineno, depth)
            depth += 1
            if index:
                self.walk(generator.iter, depth)
            for condition in generator.ifs:
                self.walk(condition, depth)
        elements = [node.key, node.value] if isinstance(node, ast.DictComp) else [node.elt]
        for element in elements:
            self.walk(element, depth)
        if outer == 0:
            self._current = None

    def _call(self, call: ast.Call, depth: int) -> None:
        kind = _io_kind(call)
        if kind is not None and self._current is not None:
            self._current.io.append((call.lineno, depth, kind[0], kind[1]))


def _nest_findings(path: str, nests: list[_Nest]) -> Iterator[tuple[HotSpot, list[Finding]]]:
    for nest in nests:
        if nest.depth < 2 and not nest.io:
            continue
        findings: list[Finding] = []
        score = 2**nest.depth if nest.depth >= 2 else 0
        if nest.depth >= 2:
            severity: Severity = (
                "info" if nest.depth == 2 else "low" if nest.depth == 3 else "medium"
            )
            lines = ", ".join(str(n) for n in sorted(set(nest.loop_lines)))
            findings.append(
                Finding(
                    path=path,
                    line=nest.line,
                    rule="nested-loops",
                    severity=severity,
                    confidence="high",
                    message=f"loops nested {nest.depth} deep in `{nest.function}` "
                    f"(loops at lines {lines})",
                    tool="agentrt",
                )
            )
        io_calls = []
        for line, depth, kind, label in sorted(nest.io):
            call_score = IO_WEIGHTS[kind] * 2**depth
            score += call_score
            io_calls.append(f"{label} at line {line} (depth {depth})")
            findings.append(
                Finding(
                    path=path,
                    line=line,
                    rule="io-in-loop",
                    severity="medium" if call_score >= 8 else "low",
                    confidence="medium",
                    message=f"{kind} I/O `{label}` inside a loop (depth {depth}) in "
                    f"`{nest.function}`; batch it or move it out of the loop",
                    tool="agentrt",
                )
            )
        hot = HotSpot(
            path=path,
            line=nest.line,
            function=nest.function,
            depth=nest.depth,
            io_calls=io_calls,
            score=score,
        )
        yield hot, findings


# --------------------------------------------------------------------------------------------
# Entry point


def run(inputs: Input) -> Output:
    """Measure every selected Python file and find its loop hot spots, one parse per file."""
    sources = load_python(inputs.repo, inputs.files)
    files: list[FileMetrics] = []
    functions: list[FunctionMetrics] = []
    hot_spots: list[HotSpot] = []
    findings: list[Finding] = []
    notes: list[str] = []
    for parsed in sources:
        walker = _LoopWalker()
        try:
            for statement in parsed.tree.body:
                walker.walk(statement)
        except RecursionError:  # expressions nested deeper than Python's recursion limit
            notes.append(f"{parsed.path}: not analysed: nesting too deep")
            continue
        for hot, nest_findings in _nest_findings(parsed.path, walker.nests):
            hot_spots.append(hot)
            findings += nest_findings
        try:
            metrics, file_functions = _metrics(parsed, walker.statements, walker.string_lines)
        except RecursionError:
            notes.append(f"{parsed.path}: metrics not computed: nesting too deep")
            continue
        files.append(metrics)
        functions += file_functions
        if metrics.maintainability_rank == "C":
            findings.append(
                Finding(
                    path=parsed.path,
                    line=0,
                    rule="low-maintainability",
                    severity="low",
                    confidence="medium",
                    message=f"maintainability index {metrics.maintainability:.1f} (rank C); "
                    f"{metrics.sloc} lines of code, complexity {metrics.complexity}",
                    tool="radon",
                )
            )
    notes += sources.notes

    hot_spots.sort(key=lambda h: (-h.score, h.path, h.line))
    functions.sort(key=lambda f: (-f.complexity, f.path, f.line))
    ranks = {rank: sum(1 for f in files if f.maintainability_rank == rank) for rank in "ABC"}
    totals = Totals(
        loc=sum(f.loc for f in files),
        sloc=sum(f.sloc for f in files),
        lloc=sum(f.lloc for f in files),
        functions=len(functions),
        mean_complexity=round(fmean(f.complexity for f in functions), 2) if functions else 0.0,
        mean_maintainability=round(fmean(f.maintainability for f in files), 2) if files else 0.0,
        files_by_rank=ranks,
    )
    findings = sort_findings(findings)
    counts = SeverityCounts.of(findings)
    io_calls = sum(1 for f in findings if f.rule == "io-in-loop")
    nested = sum(1 for f in findings if f.rule == "nested-loops")
    summary = (
        f"{len(files)} files, {totals.sloc} lines of code, {totals.functions} functions "
        f"(mean complexity {totals.mean_complexity}, mean maintainability "
        f"{totals.mean_maintainability}); {nested} nested loops, {io_calls} I/O calls in loops"
    )
    return Output(
        summary=summary,
        files_analysed=len(sources.selected),
        totals=totals,
        files=sorted(files, key=lambda f: f.path),
        worst_functions=functions[: inputs.top_n],
        hot_spots=hot_spots[: inputs.top_n],
        findings=findings,
        counts=counts,
        notes=sorted(notes),
        language_coverage=[sources.coverage("radon")],
    )


def render_markdown(output: Output) -> str:
    """The performance section of the run report."""
    t = output.totals
    parts = [
        "## Performance",
        "",
        output.summary,
        "",
        md_table(
            ["Files", "LOC", "SLOC", "Statements", "Functions", "Mean CC", "Mean MI", "MI A/B/C"],
            [
                (
                    len(output.files),
                    t.loc,
                    t.sloc,
                    t.lloc,
                    t.functions,
                    t.mean_complexity,
                    t.mean_maintainability,
                    "/".join(str(t.files_by_rank.get(r, 0)) for r in "ABC"),
                )
            ],
        ),
        "",
        "### Loop hot spots",
        "",
        "Score: 2^depth for nests at least 2 deep, plus weight × 2^depth per I/O call "
        "(network/process 5, database 4, open 3, read/write 2).",
        "",
    ]
    parts.append(
        md_table(
            ["Score", "Location", "Function", "Depth", "I/O calls in the loop"],
            [
                (
                    h.score,
                    md_code(f"{h.path}:{h.line}"),
                    md_code(h.function),
                    h.depth,
                    "; ".join(h.io_calls[:4]) + (" …" if len(h.io_calls) > 4 else "") or "—",
                )
                for h in output.hot_spots
            ],
        )
        if output.hot_spots
        else "_No nested loops or I/O in loops._"
    )
    parts += ["", "### Most complex functions", ""]
    parts.append(
        md_table(
            ["Complexity", "Rank", "Function", "Location"],
            [
                (f.complexity, f.rank, md_code(f.name), md_code(f"{f.path}:{f.line}"))
                for f in output.worst_functions
            ],
        )
        if output.worst_functions
        else "_No functions._"
    )
    worst_files = sorted(output.files, key=lambda f: (f.maintainability, f.path))[:10]
    if worst_files:
        parts += ["", "### Least maintainable files", ""]
        parts.append(
            md_table(
                ["MI", "Rank", "File", "SLOC", "Complexity"],
                [
                    (
                        f.maintainability,
                        f.maintainability_rank,
                        md_code(f.path),
                        f.sloc,
                        f.complexity,
                    )
                    for f in worst_files
                ],
            )
        )
    parts += ["", "### Findings (worst first)", "", findings_table(output.findings)]
    if output.language_coverage:
        parts += ["", coverage_markdown(output.language_coverage)]
    if output.notes:
        parts += ["", "### Notes", ""] + [f"- {n}" for n in output.notes[:20]]
    return "\n".join(parts) + "\n"
