"""Code review (agent ``code_review``): ruff's findings plus long and complex functions.

**Ruff configuration.** With ``ruff_config="auto"`` (the default) the repository's own ruff
configuration is honoured when it has one at its root (``ruff.toml``, ``.ruff.toml`` or a
``[tool.ruff]`` table in ``pyproject.toml``): the project decided what it wants checked, and
reporting rules it switched off would be noise. Its ``exclude`` patterns apply too
(``--force-exclude``). Without one, ruff runs ``--isolated`` (no configuration file anywhere
is read) with a default rule set: pycodestyle errors and warnings, pyflakes and bugbear
(``E, F, W, B``), minus ``E501`` (line length is the formatter's business, and it would bury
everything else). If the repository's configuration makes ruff fail, the default rule set is
used instead and a note says why. Ruff runs once over all selected files, with ``--no-cache``
so nothing is written into the repository.

**Severities.** Ruff does not grade its rules, so codes are mapped by prefix (longest wins, see
``_RUFF_SEVERITIES``): syntax errors are ``critical``; pyflakes errors that fail at run time
(undefined names, ``return`` outside a function, ``assert`` on a tuple) are ``high``; other
pyflakes and bugbear findings are ``medium``, unused imports/variables ``low``; style rules
are ``low``.

**Own checks** (tool ``agentrt`` and ``radon``), on the same parse of each file:

* ``long-function``: a function or method longer than ``max_function_lines`` lines (from its
  ``def`` to its last line; decorators not counted): ``low``, ``medium`` beyond twice that;
* ``cyclomatic-complexity``: radon's cyclomatic complexity at rank ``complexity_rank`` or worse
  (radon ranks: A 1-5, B 6-10, C 11-20, D 21-30, E 31-40, F 41+): ``low`` at C, else
  ``medium`` — hard to maintain, not a defect in itself.

**Other languages** (tool ``lizard``): the same two checks, with the same limits and
severities, on every file of a language lizard reads (C, C++, C#, Objective-C, Java,
JavaScript/JSX, TypeScript/TSX, Go, Rust, Kotlin, Scala, Swift, Ruby, PHP, Lua, Perl, …).
A function's length is counted from the line of its name to its closing line (annotations and
attributes above it not counted, as decorators are not in Python), its cyclomatic complexity
is lizard's (one plus each branch: ``if``, loops, ``case``, ``catch``, ``&&``, ``||``, ``?``),
graded with radon's ranks. Python stays with radon, whose numbers the Python findings have
always had. Minified bundles (a mean line longer than 250 characters) are left out.

**Coverage.** ``language_coverage`` says, per tool, which files were read by language and which
code files were left out (ruff: everything but Python; radon and lizard together: languages
neither reads, such as shell scripts), so an empty result on a repository the tools cannot
read is not mistaken for a clean one.

**Focus.** After ``context_gathering`` (``code-analysis``), ``focus`` holds the findings in
the files it gathered for the workflow's task, most relevant file first, and the agent
reports the gathered items its focus cites as its context use
(:mod:`agentrt.agents.builtin.gathered`); elsewhere ``focus`` is None.
"""

from __future__ import annotations

import ast
import json
import shutil
import subprocess
import sys
from collections import Counter
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Literal

from pydantic import BaseModel, Field
from radon.complexity import add_inner_blocks, cc_rank, cc_visit_ast
from radon.visitors import Function

from agentrt.agents.agent_context import AgentContext
from agentrt.agents.builtin.common import (
    AnalyserInput,
    Finding,
    ParsedFile,
    Severity,
    SeverityCounts,
    findings_table,
    is_minified,
    load_python,
    md_code,
    md_table,
    sort_findings,
)
from agentrt.agents.builtin.coverage import (
    CODE_LANGUAGES,
    ToolCoverage,
    coverage_markdown,
    display_language,
)

if TYPE_CHECKING:
    from agentrt.context.sources import SourceFile
from agentrt.agents.builtin.gathered import Focus, focus_markdown, gathered_context, report_use

__all__ = ["Input", "Output", "RuffRun", "RuleCount", "find_ruff", "render_markdown", "run"]

Rank = Literal["B", "C", "D", "E", "F"]

DEFAULT_SELECT = ("E", "F", "W", "B")
DEFAULT_IGNORE = ("E501",)
# Keeps each ruff command line far below the kernel's argument-size limit.
_RUFF_CHUNK = 2000


class Input(AnalyserInput):
    """What to review, and the limits of the project's own checks."""

    ruff_config: Literal["auto", "repo", "default"] = Field(
        default="auto",
        description="auto: the repository's ruff config if it has one, else the default "
        "rule set; repo: always let ruff discover configuration; default: never.",
    )
    ruff_select: list[str] = Field(
        default=list(DEFAULT_SELECT), description="Rules of the default rule set."
    )
    ruff_ignore: list[str] = Field(
        default=list(DEFAULT_IGNORE), description="Rules the default rule set leaves out."
    )
    max_function_lines: int = Field(default=60, ge=1)
    complexity_rank: Rank = Field(
        default="C", description="Report functions of this radon rank or worse."
    )


class RuffRun(BaseModel):
    """How ruff was run."""

    version: str
    config: str = Field(description="Where the rules came from.")
    files: int


class RuleCount(BaseModel):
    """How many findings one rule produced."""

    rule: str
    severity: Severity
    count: int


class Output(BaseModel):
    """Review findings, sorted by place."""

    summary: str
    files_analysed: int = Field(description="Python files, and files lizard measured.")
    ruff: RuffRun
    findings: list[Finding]
    counts: SeverityCounts
    rules: list[RuleCount] = Field(description="Findings per rule, most frequent first.")
    notes: list[str]
    language_coverage: list[ToolCoverage] = Field(
        default_factory=list,
        description="Per tool (ruff; radon and lizard): files read per language, and the "
        "code files left out.",
    )
    focus: Focus | None = Field(
        default=None,
        description="The findings in the files context_gathering selected for the task, "
        "most relevant file first; None without a context_gathering step.",
    )


# --------------------------------------------------------------------------------------------
# Ruff

_RUFF_SEVERITIES: dict[str, Severity] = {
    "invalid-syntax": "critical",
    "E9": "critical",
    # pyflakes: fails at run time
    "F82": "high",  # undefined name / export / local
    "F63": "high",  # assert on a tuple, `is` with a literal, `if` on a tuple
    "F7": "high",  # break/continue/return/yield outside their place
    # pyflakes: dead code
    "F401": "low",
    "F403": "low",
    "F541": "low",
    "F841": "low",
    "F": "medium",
    "E722": "medium",  # bare except swallows KeyboardInterrupt/SystemExit
    "E": "low",
    "W605": "medium",  # invalid escape sequence: a SyntaxError in a future Python
    "W": "low",
    "B007": "low",
    "B009": "low",
    "B010": "low",
    "B028": "low",
    "B904": "low",
    "B905": "low",
    "B": "medium",
    "S": "medium",
    "PLE": "high",
    "ASYNC": "medium",
}


def ruff_severity(code: str) -> Severity:
    """Severity of a ruff rule code (longest matching prefix of ``_RUFF_SEVERITIES``)."""
    for end in range(len(code), 0, -1):
        severity = _RUFF_SEVERITIES.get(code[:end])
        if severity is not None:
            return severity
    return "low"


def find_ruff() -> str:
    """Path of the ruff executable: the one the ``ruff`` package ships, else one on PATH."""
    try:
        from ruff import find_ruff_bin

        return str(find_ruff_bin())
    except (ImportError, FileNotFoundError):
        pass
    beside = Path(sys.executable).with_name("ruff")
    if beside.is_file():
        return str(beside)
    found = shutil.which("ruff")
    if found is None:
        raise RuntimeError("ruff is not installed; install it with `pip install ruff`")
    return found


def _repo_config(root: Path) -> str | None:
    for name in ("ruff.toml", ".ruff.toml"):
        if (root / name).is_file():
            return name
    pyproject = root / "pyproject.toml"
    if pyproject.is_file():
        text = pyproject.read_text(encoding="utf-8", errors="replace")
        if "[tool.ruff" in text:
            return "pyproject.toml [tool.ruff]"
    return None


def _ruff_argv(ruff: str, inputs: Input, use_repo: bool) -> list[str]:
    argv = [ruff, "check", "--output-format", "json", "--no-cache", "--exit-zero"]
    if use_repo:
        return [*argv, "--force-exclude"]
    target = f"py3{sys.version_info.minor}"  # what this interpreter's ast.parse accepts too
    argv += ["--isolated", "--target-version", target, "--select", ",".join(inputs.ruff_select)]
    if inputs.ruff_ignore:
        argv += ["--ignore", ",".join(inputs.ruff_ignore)]
    return argv


def _run_ruff(argv: list[str], root: Path, paths: list[str]) -> list[dict[str, object]]:
    """Ruff's JSON diagnostics for ``paths``; RuntimeError with ruff's message if it fails."""
    diagnostics: list[dict[str, object]] = []
    for start in range(0, len(paths), _RUFF_CHUNK):
        chunk = paths[start : start + _RUFF_CHUNK]
        try:
            result = subprocess.run(
                [*argv, "--", *chunk], cwd=root, capture_output=True, text=True, timeout=600
            )
        except subprocess.TimeoutExpired as exc:
            raise RuntimeError("ruff did not finish within 600 s") from exc
        if result.returncode != 0:
            message = result.stderr.strip().splitlines()
            raise RuntimeError(
                f"ruff failed (exit {result.returncode}): {' '.join(message[-3:]) or 'no output'}"
            )
        diagnostics += json.loads(result.stdout or "[]")
    return diagnostics


def _ruff_findings(diagnostics: list[dict[str, object]], root: Path) -> Iterator[Finding]:
    for d in diagnostics:
        code = str(d.get("code") or "invalid-syntax")
        location = d.get("location") or {}
        assert isinstance(location, dict)
        path = Path(str(d["filename"]))
        try:
            relative = path.relative_to(root).as_posix()
        except ValueError:
            relative = path.as_posix()
        yield Finding(
            path=relative,
            line=int(location.get("row") or 0),
            column=int(location.get("column") or 0) or None,
            rule=code,
            severity=ruff_severity(code),
            message=str(d.get("message", "")),
            tool="ruff",
        )


def _ruff_version(ruff: str) -> str:
    result = subprocess.run([ruff, "--version"], capture_output=True, text=True, timeout=60)
    return result.stdout.strip().removeprefix("ruff ") or "unknown"


# --------------------------------------------------------------------------------------------
# Own checks


def _functions(
    tree: ast.Module,
) -> Iterator[tuple[str, ast.FunctionDef | ast.AsyncFunctionDef]]:
    """Every function and method with its qualified name (``Class.method.<locals>.inner``)."""
    stack: list[tuple[str, ast.AST]] = [("", tree)]
    while stack:
        prefix, node = stack.pop()
        for child in ast.iter_child_nodes(node):
            if isinstance(child, ast.FunctionDef | ast.AsyncFunctionDef):
                name = prefix + child.name
                yield name, child
                stack.append((name + ".<locals>.", child))
            elif isinstance(child, ast.ClassDef):
                stack.append((prefix + child.name + ".", child))
            elif not isinstance(child, ast.expr):  # functions live in statements only
                stack.append((prefix, child))


@dataclass(frozen=True, slots=True)
class _Function:
    """A function as the two checks see it, from whichever tool measured it."""

    path: str
    line: int
    column: int | None
    name: str
    tool: str


def _long_function(function: _Function, length: int, limit: int) -> Iterator[Finding]:
    if length > limit:
        yield Finding(
            path=function.path,
            line=function.line,
            column=function.column,
            rule="long-function",
            severity="medium" if length > 2 * limit else "low",
            confidence="high",
            message=f"function `{function.name}` is {length} lines long (limit {limit})",
            tool=function.tool,
        )


def _complex_function(function: _Function, complexity: int, min_rank: Rank) -> Iterator[Finding]:
    rank = cc_rank(complexity)
    if rank >= min_rank:
        yield Finding(
            path=function.path,
            line=function.line,
            column=function.column,
            rule="cyclomatic-complexity",
            severity="low" if rank == "C" else "medium",
            confidence="high",
            message=f"function `{function.name}` has cyclomatic complexity {complexity} "
            f"(rank {rank}; reported from rank {min_rank})",
            tool=function.tool,
        )


def _long_functions(parsed: ParsedFile, limit: int) -> Iterator[Finding]:
    for name, node in _functions(parsed.tree):
        length = (node.end_lineno or node.lineno) - node.lineno + 1
        where = _Function(parsed.path, node.lineno, node.col_offset + 1, name, "agentrt")
        yield from _long_function(where, length, limit)


def _complex_functions(parsed: ParsedFile, min_rank: Rank) -> Iterator[Finding]:
    for block in add_inner_blocks(cc_visit_ast(parsed.tree)):
        if not isinstance(block, Function):
            continue  # a class's score is its methods', which are reported themselves
        where = _Function(parsed.path, block.lineno, block.col_offset + 1, block.fullname, "radon")
        yield from _complex_function(where, block.complexity, min_rank)


# --------------------------------------------------------------------------------------------
# Other languages: lizard

_FUNCTIONS_TOOL = "functions (radon, lizard)"


def _lizard_files(files: list[SourceFile]) -> list[SourceFile]:
    """The files lizard measures: code of a language it reads, Python excepted (radon's)."""
    from lizard_languages import get_reader_for

    return [
        f
        for f in files
        if f.language in CODE_LANGUAGES and f.language != "python" and get_reader_for(f.path)
    ]


def _lizard_findings(
    files: list[SourceFile], inputs: Input
) -> tuple[list[Finding], set[str], dict[str, str]]:
    """Long and complex functions of ``files`` by lizard; the paths measured; the paths left
    out with the reason."""
    # lizard_core, not the `lizard` facade module: that one puts its own directory and the
    # running script's on sys.path when imported.
    from lizard_core.extensions import get_extensions
    from lizard_core.file_analyzer import FileAnalyzer

    analyse = FileAnalyzer(get_extensions([])).analyze_source_code
    limit, min_rank = inputs.max_function_lines, inputs.complexity_rank
    findings: list[Finding] = []
    measured: set[str] = set()
    excluded: dict[str, str] = {}
    for source_file in files:
        try:
            text = source_file.read_text()
        except OSError:
            excluded[source_file.path] = "unreadable"
            continue
        if is_minified(text):
            excluded[source_file.path] = "minified"
            continue
        try:
            functions = analyse(source_file.path, text).function_list
        except Exception as exc:  # a reader that chokes on odd input loses one file, not all
            excluded[source_file.path] = f"lizard failed: {type(exc).__name__}"
            continue
        measured.add(source_file.path)
        for function in functions:
            line = function.start_line
            where = _Function(source_file.path, line, None, function.name, "lizard")
            findings += _long_function(where, function.end_line - line + 1, limit)
            findings += _complex_function(where, function.cyclomatic_complexity, min_rank)
    return findings, measured, excluded


def _languages(coverage: ToolCoverage, leave_out: str) -> str:
    """``"Go (212), TypeScript (128)"``: the languages a coverage analysed, but one."""
    return ", ".join(
        f"{display_language(c.language)} ({c.files})"
        for c in coverage.analysed
        if c.language != leave_out
    )


# --------------------------------------------------------------------------------------------
# Entry point


def _ruff_diagnostics(
    inputs: Input, root: Path, paths: list[str]
) -> tuple[list[dict[str, object]], str, list[str]]:
    """Ruff's diagnostics, where its rules came from, and notes (see the module docstring)."""
    ruff = find_ruff()
    repo_config = _repo_config(root)
    use_repo = inputs.ruff_config == "repo" or (
        inputs.ruff_config == "auto" and repo_config is not None
    )
    default_label = f"default: select {','.join(inputs.ruff_select)}" + (
        f", ignore {','.join(inputs.ruff_ignore)}" if inputs.ruff_ignore else ""
    )
    if not paths:
        return [], default_label, []
    if not use_repo:
        return _run_ruff(_ruff_argv(ruff, inputs, False), root, paths), default_label, []
    try:
        diagnostics = _run_ruff(_ruff_argv(ruff, inputs, True), root, paths)
    except RuntimeError as exc:
        note = f"the repository's ruff configuration failed ({exc}); used defaults"
        return _run_ruff(_ruff_argv(ruff, inputs, False), root, paths), default_label, [note]
    return diagnostics, f"repository: {repo_config or 'discovered by ruff'}", []


def run(inputs: Input, ctx: AgentContext | None = None) -> Output:
    """Run ruff once over the selected files, then the own checks on one parse per file and
    lizard's on the files of other languages; focus on the files gathered for the task when
    ``ctx.upstream`` has them."""
    sources = load_python(inputs.repo, inputs.files)
    paths = [f.path for f in sources.selected]
    findings: list[Finding] = []
    with ThreadPoolExecutor(max_workers=1) as pool:
        # Ruff works in its own process while this thread parses and measures functions.
        pending = pool.submit(_ruff_diagnostics, inputs, sources.root, paths)
        for parsed in sources:
            findings += _long_functions(parsed, inputs.max_function_lines)
            findings += _complex_functions(parsed, inputs.complexity_rank)
        other, measured, left_out = _lizard_findings(_lizard_files(sources.everything), inputs)
        findings += other
        diagnostics, config, notes = pending.result()
    findings += _ruff_findings(diagnostics, sources.root)
    # Ruff reports syntax errors itself, in more detail; ours only fill in what it missed.
    ruff_syntax = {f.path for f in findings if f.rule == "invalid-syntax"}
    findings += [e for e in sources.errors if e.path not in ruff_syntax]

    findings = sort_findings(findings)
    counts = SeverityCounts.of(findings)
    by_rule = Counter((f.rule, f.severity) for f in findings)
    rules = [
        RuleCount(rule=rule, severity=severity, count=count)
        for (rule, severity), count in sorted(by_rule.items(), key=lambda i: (-i[1], i[0]))
    ]
    ruff_coverage = sources.coverage("ruff")
    functions_coverage = sources.coverage(_FUNCTIONS_TOOL, analysed=measured, excluded=left_out)
    others = (
        f" and {len(measured)} file{'s' if len(measured) != 1 else ''} in "
        f"{_languages(functions_coverage, 'python')}"
    )
    summary = (
        f"{len(findings)} finding{'s' if len(findings) != 1 else ''} in {len(paths)} Python "
        f"file{'s' if len(paths) != 1 else ''}"
        f"{others if measured else ''} ({counts.describe()}); ruff rules: {config}"
    )
    focus = None
    gathered = gathered_context(ctx)
    if gathered is not None:
        focus = Focus(
            task=gathered.task,
            files=gathered.focus_files(paths),
            findings=gathered.focus_findings(findings),
        )
        summary += f"; {len(focus.findings)} in the {len(focus.files)} files gathered for the task"
        assert ctx is not None
        report_use(ctx, gathered, focus.findings)
    return Output(
        summary=summary,
        files_analysed=len(paths) + len(measured),
        ruff=RuffRun(version=_ruff_version(find_ruff()), config=config, files=len(paths)),
        findings=findings,
        counts=counts,
        rules=rules,
        notes=notes,
        language_coverage=[ruff_coverage, functions_coverage],
        focus=focus,
    )


def render_markdown(output: Output) -> str:
    """The code review section of the run report."""
    c = output.counts
    parts = [
        "## Code review",
        "",
        output.summary,
        "",
        md_table(
            ["Critical", "High", "Medium", "Low", "Info", "Files"],
            [(c.critical, c.high, c.medium, c.low, c.info, output.files_analysed)],
        ),
        "",
        f"Ruff {output.ruff.version}, rules from {output.ruff.config}.",
    ]
    if output.language_coverage:
        parts += ["", coverage_markdown(output.language_coverage)]
    if output.rules:
        parts += ["", "### Rules", ""]
        parts.append(
            md_table(
                ["Rule", "Severity", "Count"],
                [(md_code(r.rule), r.severity, r.count) for r in output.rules[:20]],
            )
        )
    if output.focus is not None:
        parts += ["", *focus_markdown(output.focus)]
    parts += ["", "### Findings (worst first)", "", findings_table(output.findings)]
    if output.notes:
        parts += ["", "### Notes", ""] + [f"- {n}" for n in output.notes]
    return "\n".join(parts) + "\n"
