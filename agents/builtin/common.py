"""Shared pieces of the built-in analysis agents.

Every analyser works on repository content as *data*: files are read and parsed with
:mod:`ast` (or handed to ruff/bandit, which parse them too), never imported or executed.

This module holds what they share:

* :class:`Finding`, the one shape every analyser reports problems in, with a
  :data:`Severity` scale and :class:`SeverityCounts`;
* :class:`AnalyserInput`, the ``repo`` + ``files`` fields every analyser accepts;
* file selection (:func:`scan_files`, :func:`select_files`, :func:`load_python`) on top of
  :func:`agentrt.context.sources.scan_repository`, which honours ``.gitignore`` and default ignores;
* what an analyser covered (:meth:`PythonSources.coverage`, built on
  :func:`agentrt.agents.builtin.coverage.language_coverage`);
* :func:`parse_python`, a parse that records syntax errors instead of raising;
* :func:`load_context_index`, the context manager's parse of every language (the index
  ``context_gathering`` builds), for analysers of languages other than Python;
* :func:`changed_files`, the files changed since a git revision;
* small markdown helpers for the run report.
"""

from __future__ import annotations

import ast
import os
import warnings
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath
from typing import TYPE_CHECKING, Literal

from pydantic import BaseModel, ConfigDict, Field

from agentrt.agents.builtin.coverage import ToolCoverage, language_coverage
from agentrt.context.git import run_git

if TYPE_CHECKING:
    from agentrt.context.relevance import RepoIndex
    from agentrt.context.sources import RepoScan, SkippedFile, SourceFile

__all__ = [
    "MINIFIED_MEAN_LINE",
    "SEVERITIES",
    "AnalyserInput",
    "Confidence",
    "Finding",
    "ParsedFile",
    "PythonSources",
    "RepoFiles",
    "Severity",
    "SeverityCounts",
    "changed_files",
    "confidence_rank",
    "findings_table",
    "is_minified",
    "is_test_path",
    "load_context_index",
    "load_python",
    "md_code",
    "md_table",
    "parse_python",
    "python_sources",
    "repo_relative",
    "resolve_repo",
    "restrict_scan",
    "scan_files",
    "select_files",
    "severity_rank",
    "sort_findings",
]

Severity = Literal["info", "low", "medium", "high", "critical"]
Confidence = Literal["low", "medium", "high"]

#: Severities from least to most severe; the index is the rank.
SEVERITIES: tuple[Severity, ...] = ("info", "low", "medium", "high", "critical")
_SEVERITY_RANK = {name: rank for rank, name in enumerate(SEVERITIES)}
_CONFIDENCE_RANK = {"low": 0, "medium": 1, "high": 2}


def severity_rank(severity: Severity) -> int:
    """Rank of a severity: ``info`` is 0, ``critical`` is 4 (higher is worse)."""
    return _SEVERITY_RANK[severity]


def confidence_rank(confidence: Confidence | None) -> int:
    """Rank of a confidence, ``None`` (not stated) ranking as ``high``: it was not doubted."""
    return 2 if confidence is None else _CONFIDENCE_RANK[confidence]


class Finding(BaseModel):
    """One problem found at a place in the repository."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    path: str = Field(description="Repository-relative POSIX path.")
    line: int = Field(ge=0, description="1-based line; 0 when the finding is about the file.")
    column: int | None = Field(default=None, description="1-based column, when known.")
    rule: str = Field(description="Rule code, e.g. F821, B602, long-function.")
    severity: Severity
    confidence: Confidence | None = None
    message: str
    tool: str = Field(description="What produced the finding: ruff, bandit, radon, agentrt.")

    @property
    def location(self) -> str:
        """``path:line`` (or ``path:line:column``), the form editors and terminals link."""
        where = f"{self.path}:{self.line}"
        return f"{where}:{self.column}" if self.column else where


def _finding_order(finding: Finding) -> tuple[object, ...]:
    return (
        finding.path,
        finding.line,
        finding.column or 0,
        finding.rule,
        finding.message,
        finding.tool,
        -severity_rank(finding.severity),
    )


def sort_findings(findings: Iterable[Finding], *, worst_first: bool = False) -> list[Finding]:
    """Findings in a deterministic order: by place, or worst severity first then by place."""
    if worst_first:
        return sorted(
            findings,
            key=lambda f: (
                -severity_rank(f.severity),
                -confidence_rank(f.confidence),
                *_finding_order(f),
            ),
        )
    return sorted(findings, key=_finding_order)


class SeverityCounts(BaseModel):
    """How many findings there are of each severity."""

    critical: int = 0
    high: int = 0
    medium: int = 0
    low: int = 0
    info: int = 0

    @classmethod
    def of(cls, findings: Iterable[Finding]) -> SeverityCounts:
        counts = dict.fromkeys(SEVERITIES, 0)
        for finding in findings:
            counts[finding.severity] += 1
        return cls(**counts)

    @property
    def total(self) -> int:
        return self.critical + self.high + self.medium + self.low + self.info

    def describe(self) -> str:
        """``"2 high, 5 low"``: the non-zero counts, worst first (``"none"`` if all zero)."""
        parts = [
            f"{getattr(self, name)} {name}" for name in reversed(SEVERITIES) if getattr(self, name)
        ]
        return ", ".join(parts) or "none"


class AnalyserInput(BaseModel):
    """Fields every analyser accepts: which repository, and optionally which files of it."""

    model_config = ConfigDict(extra="forbid")

    repo: str = Field(description="Path to the repository root.")
    files: list[str] | None = Field(
        default=None,
        description="Repository-relative paths to restrict the analysis to (e.g. the files "
        "changed since a revision); None analyses the whole repository.",
    )


# --------------------------------------------------------------------------------------------
# Selecting and parsing files


def repo_relative(path: str, root: Path) -> str:
    """A repository-relative POSIX path for a path a model wrote (``./a.py``, ``/abs/a.py``)."""
    clean = path.strip().replace("\\", "/")
    pure = PurePosixPath(clean)
    if pure.is_absolute():
        try:
            return pure.relative_to(root.as_posix()).as_posix()
        except ValueError:
            return clean
    return pure.as_posix().removeprefix("./")


def resolve_repo(repo: str | os.PathLike[str]) -> Path:
    """The repository root as an absolute path; ValueError if it is not a directory."""
    root = Path(repo).expanduser()
    if not root.is_dir():
        raise ValueError(
            f"repository {str(repo)!r} is not a directory; pass the path of the repository root"
        )
    return root.resolve()


def _normalise(path: str) -> str:
    """``./a\\b.py`` -> ``a/b.py``: the form :class:`SourceFile` paths take."""
    return PurePosixPath(path.replace("\\", "/")).as_posix().removeprefix("./")


@dataclass(slots=True)
class RepoFiles:
    """The text files of a repository (or of the part an analysis is restricted to).

    ``files``: every text file, of every language, sorted by path; ``unscanned``: files the
    scan left out with a reason (too large, binary, unreadable), for coverage reports.
    """

    root: Path
    files: list[SourceFile]
    unscanned: list[SkippedFile] = field(default_factory=list)


def scan_files(repo: str | os.PathLike[str], files: Sequence[str] | None = None) -> RepoFiles:
    """Every text file of ``repo``, restricted to ``files`` (repository-relative paths) when
    given; see :func:`select_files`."""
    from agentrt.context.sources import scan_repository  # deferred: keeps `import agents` light

    root = resolve_repo(repo)
    return restrict_scan(scan_repository(root), files)


def restrict_scan(scan: RepoScan, files: Sequence[str] | None = None) -> RepoFiles:
    """The files of ``scan`` (a whole repository's), restricted to ``files`` when given."""
    chosen, unscanned = scan.files, scan.skipped
    if files is not None:
        wanted = {_normalise(p) for p in files}
        chosen = [f for f in chosen if f.path in wanted]
        unscanned = [s for s in unscanned if s.path in wanted]
    return RepoFiles(scan.root, sorted(chosen, key=lambda f: f.path), unscanned)


def _chosen(files: list[SourceFile], language: str | None, stubs: bool) -> list[SourceFile]:
    if language is not None:
        files = [f for f in files if f.language == language]
    if not stubs:
        files = [f for f in files if not f.path.endswith(".pyi")]
    return files


def select_files(
    repo: str | os.PathLike[str],
    files: Sequence[str] | None = None,
    *,
    language: str | None = "python",
    stubs: bool = False,
) -> list[SourceFile]:
    """Source files of ``repo`` to analyse, sorted by path.

    The repository is enumerated by
    :func:`agentrt.context.sources.scan_repository`, so ``.gitignore``,
    default ignores (virtualenvs, caches, build output) and the size limit apply. ``files``,
    when given, restricts the result to those repository-relative paths; paths that are not in
    the scan (deleted, ignored, too large) are left out. ``language=None`` keeps every file;
    type stubs (``.pyi``) are kept only with ``stubs=True``.
    """
    return _chosen(scan_files(repo, files).files, language, stubs)


_TEST_DIRS = frozenset({"test", "tests"})


def is_test_path(path: str) -> bool:
    """Whether a repository-relative path is test code: under a ``test``/``tests`` directory,
    or named ``test_*.py``, ``*_test.py`` or ``conftest.py`` (pytest's conventions)."""
    pure = PurePosixPath(path)
    name = pure.name
    return (
        any(part in _TEST_DIRS for part in pure.parts[:-1])
        or name.startswith("test_")
        or name.endswith("_test.py")
        or name == "conftest.py"
    )


#: A file whose mean line is longer than this is minified (a bundle), not code someone edits:
#: hand-written code averages 30 to 40 characters a line.
MINIFIED_MEAN_LINE = 250


def is_minified(text: str) -> bool:
    """Whether ``text`` is minified code (a bundle): its mean line is over
    :data:`MINIFIED_MEAN_LINE` characters."""
    return len(text) > MINIFIED_MEAN_LINE * (text.count("\n") + 1)


@dataclass(frozen=True, slots=True)
class ParsedFile:
    """A Python file read and parsed once, shared by every check of one analyser."""

    path: str
    abs_path: Path
    text: str
    tree: ast.Module


@dataclass(slots=True)
class PythonSources:
    """The selected Python files of a repository, parsed one at a time as they are iterated.

    Iterating yields a :class:`ParsedFile` per file that parses; files that cannot be read or
    parsed are recorded in ``errors`` instead (rule ``unreadable`` or ``syntax-error``).
    Iterate once and keep only what you extract: holding every syntax tree of a large
    repository costs gigabytes, and the garbage collector's full passes over them make
    parsing several times slower (measured: 4 s vs 19 s for pandas' 1,440 files).
    """

    root: Path
    selected: list[SourceFile]
    errors: list[Finding] = field(default_factory=list)
    #: Every text file of the same scan, for :meth:`coverage` (None: only ``selected`` known).
    repo_files: RepoFiles | None = None

    def __iter__(self) -> Iterator[ParsedFile]:
        for source_file in self.selected:
            text = _read(source_file, self.errors)
            if text is None:
                continue
            tree = _parse_text(source_file.path, text, self.errors)
            if tree is not None:
                yield ParsedFile(source_file.path, Path(source_file.abs_path), text, tree)

    @property
    def notes(self) -> list[str]:
        """The errors as one-line notes, for analysers that do not report them as findings."""
        return [f"{e.location}: {e.message}" for e in self.errors]

    @property
    def everything(self) -> list[SourceFile]:
        """Every text file of the scan (just ``selected`` when the scan is not known)."""
        return self.repo_files.files if self.repo_files is not None else self.selected

    def left_out(self, reason: str = "left out") -> dict[str, str]:
        """Python files of the scan that are not selected -> why: ``type stub`` (``.pyi``)
        or ``reason`` (the analyser's own choice: tests, private modules…)."""
        selected = {f.path for f in self.selected}
        return {
            f.path: "type stub" if f.path.endswith(".pyi") else reason
            for f in self.everything
            if f.language == "python" and f.path not in selected
        }

    def coverage(
        self,
        tool: str,
        reason: str = "left out",
        *,
        analysed: Iterable[str] = (),
        excluded: Mapping[str, str] | None = None,
    ) -> ToolCoverage:
        """What ``tool`` covered: the ``selected`` files (and ``analysed``, other files it
        read), out of every code file of the scan. Python files not selected are skipped for
        the reasons of :meth:`left_out`, other files for those in ``excluded`` (path ->
        reason), if any."""
        return language_coverage(
            tool,
            self.everything,
            {f.path for f in self.selected} | set(analysed),
            excluded={**self.left_out(reason), **(excluded or {})},
            unscanned=self.repo_files.unscanned if self.repo_files is not None else (),
        )


def _parse_text(path: str, text: str, errors: list[Finding] | None) -> ast.Module | None:
    try:
        # Invalid escape sequences and the like warn at parse time; they are the code
        # reviewer's business (ruff W605), not noise for the process running the analysis.
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            return ast.parse(text, filename=path, type_comments=False)
    except SyntaxError as exc:
        if errors is not None:
            errors.append(
                Finding(
                    path=path,
                    line=exc.lineno or 0,
                    column=exc.offset or None,
                    rule="syntax-error",
                    severity="high",
                    confidence="high",
                    message=f"file does not parse as Python: {exc.msg}",
                    tool="agentrt",
                )
            )
    except (ValueError, RecursionError, MemoryError) as exc:
        # ValueError: NUL bytes in the source; RecursionError/MemoryError: pathologically
        # deep nesting. Either way the file cannot be analysed, which is worth reporting.
        if errors is not None:
            errors.append(
                Finding(
                    path=path,
                    line=0,
                    rule="syntax-error",
                    severity="high",
                    confidence="high",
                    message=f"file cannot be parsed: {type(exc).__name__}: {exc}",
                    tool="agentrt",
                )
            )
    return None


def _read(source_file: SourceFile, errors: list[Finding] | None) -> str | None:
    try:
        return source_file.read_text()
    except (OSError, UnicodeDecodeError) as exc:
        if errors is not None:
            errors.append(
                Finding(
                    path=source_file.path,
                    line=0,
                    rule="unreadable",
                    severity="low",
                    confidence="high",
                    message=f"file could not be read: {type(exc).__name__}: {exc}",
                    tool="agentrt",
                )
            )
        return None


def parse_python(source_file: SourceFile, errors: list[Finding] | None = None) -> ast.Module | None:
    """Parse one Python file without importing or executing it.

    Returns None when the file cannot be read or parsed, appending a finding that says why to
    ``errors`` (when given) rather than raising.
    """
    text = _read(source_file, errors)
    return None if text is None else _parse_text(source_file.path, text, errors)


def load_python(
    repo: str | os.PathLike[str], files: Sequence[str] | None = None, *, stubs: bool = False
) -> PythonSources:
    """The selected Python files of ``repo`` (see :func:`select_files`), to iterate once."""
    return python_sources(scan_files(repo, files), stubs=stubs)


def python_sources(repo_files: RepoFiles, *, stubs: bool = False) -> PythonSources:
    """The Python files of ``repo_files`` (type stubs only with ``stubs``), to iterate once."""
    selected = _chosen(repo_files.files, "python", stubs)
    return PythonSources(root=repo_files.root, selected=selected, repo_files=repo_files)


def load_context_index(root: Path, scanned: RepoFiles | None = None) -> RepoIndex:
    """The context manager's index of the repository at ``root``: every file's structure
    (units with qualified names, imports; tree-sitter for the languages of
    :data:`agentrt.context.syntax.LANGUAGES`, :mod:`ast` for Python), its import graph.

    Built by :func:`agentrt.context.relevance.build_index` from the scan
    :func:`agentrt.context.select.select` makes (its default excludes, no include patterns)
    and with the store it uses (``$AGENTRT_HOME/context``): after ``context_gathering`` in
    the same run this is the index it built, from memory (same process) or from the store,
    so a workflow parses each file once; on its own it is built (and stored) here.
    ``scanned``, the whole repository's :func:`scan_files` (not restricted to some files),
    saves scanning it again: select's scan is that one without its default excludes.
    """
    from pathspec import GitIgnoreSpec

    from agentrt.context.relevance import IndexStats, build_index
    from agentrt.context.select import DEFAULT_EXCLUDES
    from agentrt.context.sources import RepoScan, scan_repository
    from agentrt.context.store import ContextStore, default_store_dir

    if scanned is None:
        scan = scan_repository(root, extra_ignores=DEFAULT_EXCLUDES)
    else:
        excluded = GitIgnoreSpec.from_lines(DEFAULT_EXCLUDES)
        kept = [f for f in scanned.files if not excluded.match_file(f.path)]
        scan = RepoScan(scanned.root, kept, list(scanned.unscanned))
    stats = IndexStats(skipped=len(scan.skipped))
    return build_index(scan.root, scan, ContextStore(default_store_dir()), stats)


# --------------------------------------------------------------------------------------------
# Git (run by agentrt.context.git.run_git: the repository's config runs no programs)


def _nul_split(output: bytes) -> list[str]:
    return [os.fsdecode(p) for p in output.split(b"\0") if p]


def changed_files(repo: str | os.PathLike[str], since: str) -> list[str]:
    """Files of ``repo`` changed since git revision ``since``, sorted, repository-relative.

    Includes committed, staged and unstaged changes (``git diff --name-only REV``) and
    untracked files that are not ignored; deleted files are left out. Paths are relative to
    ``repo`` even when it is a subdirectory of the git work tree (files outside it are left
    out). Raises ValueError when ``repo`` is not inside a git work tree or ``since`` is not a
    known revision.
    """
    root = resolve_repo(repo)
    inside = run_git(root, "rev-parse", "--is-inside-work-tree")
    if inside.returncode != 0 or inside.stdout.strip() != b"true":
        detail = inside.stderr.decode(errors="replace").strip()
        raise ValueError(
            f"{root} is not a git work tree ({detail or 'git rev-parse failed'}); "
            "changed files need a git repository — pass files explicitly instead"
        )
    if since.startswith("-"):  # never let a revision be read as an option
        raise ValueError(f"revision {since!r} is not valid: it must not start with '-'")
    verified = run_git(root, "rev-parse", "--verify", "--quiet", f"{since}^{{commit}}")
    if verified.returncode != 0:
        raise ValueError(
            f"unknown revision {since!r} in {root}; use a commit, branch or tag that exists "
            "there (see `git log --oneline`)"
        )
    commit = verified.stdout.decode().strip()
    diff = run_git(
        root,
        "diff", "--name-only", "-z", "--relative", "--no-ext-diff", "--no-textconv",
        "--diff-filter=d", commit, "--",
    )  # fmt: skip
    untracked = run_git(root, "ls-files", "--others", "--exclude-standard", "-z", "--", ".")
    for result in (diff, untracked):
        if result.returncode != 0:
            raise ValueError(
                f"git failed in {root}: {result.stderr.decode(errors='replace').strip()}"
            )
    paths = set(_nul_split(diff.stdout)) | set(_nul_split(untracked.stdout))
    # A file changed since REV may still be absent now (e.g. deleted after a rename);
    # only files that exist can be analysed.
    return sorted(p for p in paths if (root / p).is_file())


# --------------------------------------------------------------------------------------------
# Markdown


def md_code(text: str) -> str:
    """Inline code that survives backticks inside ``text``."""
    text = text.replace("\n", " ")
    fence = "``" if "`" in text else "`"
    pad = " " if text.startswith("`") or text.endswith("`") else ""
    return f"{fence}{pad}{text}{pad}{fence}"


def _cell(value: object) -> str:
    return str(value).replace("|", "\\|").replace("\n", " ")


def md_table(headers: Sequence[str], rows: Iterable[Sequence[object]]) -> str:
    """A GitHub-flavoured markdown table; cells are escaped (pipes, newlines)."""
    lines = [
        "| " + " | ".join(_cell(h) for h in headers) + " |",
        "|" + "|".join("---" for _ in headers) + "|",
    ]
    lines.extend("| " + " | ".join(_cell(c) for c in row) + " |" for row in rows)
    return "\n".join(lines)


def findings_table(findings: Sequence[Finding], *, limit: int = 50) -> str:
    """The worst ``limit`` findings as a markdown table, with a line saying how many are left."""
    if not findings:
        return "_No findings._"
    shown = sort_findings(findings, worst_first=True)[:limit]
    table = md_table(
        ["Severity", "Location", "Rule", "Message"],
        [(f.severity, md_code(f.location), md_code(f.rule), f.message) for f in shown],
    )
    if len(findings) > limit:
        table += f"\n\n_…and {len(findings) - limit} more (see the JSON output)._"
    return table
