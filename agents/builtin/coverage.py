"""What an analyser looked at: files per language analysed, and files it left out.

Every built-in analyser reports one :class:`ToolCoverage` per tool it runs (ruff, bandit,
lizard, the secret scan…) in its output's ``language_coverage`` field, and the run report
shows each as one line::

    ruff: 120 Python files; skipped 340 files in Go (212), TypeScript (128)

so that "0 findings" on a repository the tool never read is not mistaken for a clean bill.
Languages are :func:`agentrt.context.sources.language_of`'s names; a file counts as *skipped*
when it is source code (:data:`CODE_LANGUAGES`) that the tool did not analyse, with a reason
when the analyser left it out on purpose (test code, a type stub, a minified bundle) and none
when the tool does not read that language. Documentation and data files (Markdown, YAML,
JSON…) are not counted as skipped by code analysers: nobody expects ruff to read them. The
secret scan reads every text file, so it counts them all (``count_all=True``).
"""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Collection, Iterable, Mapping
from typing import TYPE_CHECKING

from pydantic import BaseModel, Field

if TYPE_CHECKING:
    from agentrt.context.sources import SkippedFile, SourceFile

__all__ = [
    "CODE_LANGUAGES",
    "LanguageCount",
    "ToolCoverage",
    "coverage_markdown",
    "display_language",
    "language_coverage",
]

#: Languages of source code (names from :func:`agentrt.context.sources.language_of`): files
#: of these that an analyser does not read are reported as skipped.
CODE_LANGUAGES = frozenset(
    {
        "python", "cython", "jupyter", "javascript", "typescript", "c", "cpp", "csharp",
        "objective-c", "rust", "go", "java", "kotlin", "scala", "swift", "ruby", "php",
        "perl", "lua", "shell", "sql", "vue", "zig", "solidity", "erlang", "fortran", "dart",
        "elixir", "haskell", "r",
    }
)  # fmt: skip

_DISPLAY = {
    "python": "Python", "cython": "Cython", "jupyter": "Jupyter", "javascript": "JavaScript",
    "typescript": "TypeScript", "c": "C", "cpp": "C++", "csharp": "C#",
    "objective-c": "Objective-C", "rust": "Rust", "go": "Go", "java": "Java",
    "kotlin": "Kotlin", "scala": "Scala", "swift": "Swift", "ruby": "Ruby", "php": "PHP",
    "perl": "Perl", "lua": "Lua", "shell": "Shell", "sql": "SQL", "vue": "Vue", "zig": "Zig",
    "solidity": "Solidity", "erlang": "Erlang", "fortran": "Fortran", "dart": "Dart",
    "elixir": "Elixir", "haskell": "Haskell", "r": "R", "markdown": "Markdown",
    "restructuredtext": "reStructuredText", "text": "other text", "toml": "TOML",
    "yaml": "YAML", "json": "JSON", "jsonl": "JSON Lines", "ini": "INI", "html": "HTML",
    "css": "CSS", "scss": "SCSS", "xml": "XML", "csv": "CSV", "make": "Makefile",
    "dockerfile": "Dockerfile", "cmake": "CMake",
}  # fmt: skip

#: Languages named in a coverage line before the rest are summed up as "N more".
_SHOWN = 8


def display_language(language: str) -> str:
    """How a language is written for people: ``cpp`` -> ``C++``, ``typescript`` ->
    ``TypeScript`` (unknown names are capitalised)."""
    return _DISPLAY.get(language, language.capitalize())


class LanguageCount(BaseModel):
    """Files of one language, and why they were left out (skipped entries only)."""

    language: str = Field(description="Language name, e.g. go, typescript, cpp.")
    files: int = Field(ge=0)
    reason: str | None = Field(
        default=None,
        description="Why these files were left out; None: the tool does not read the language.",
    )


class ToolCoverage(BaseModel):
    """Which files one tool of an analyser read, by language, and which it left out."""

    tool: str = Field(description="The tool, e.g. ruff, bandit, lizard, secrets.")
    files: int = Field(ge=0, description="Files analysed.")
    analysed: list[LanguageCount] = Field(description="Files analysed per language, most first.")
    skipped_files: int = Field(ge=0, description="Files left out.")
    skipped: list[LanguageCount] = Field(
        description="Files left out per language (and reason), most first."
    )
    line: str = Field(description="All of the above as one line, for reports.")


def _counts(
    counter: Counter[tuple[str, str | None]],
) -> list[LanguageCount]:
    ordered = sorted(counter.items(), key=lambda item: (-item[1], item[0][0], item[0][1] or ""))
    return [LanguageCount(language=lang, files=n, reason=why) for (lang, why), n in ordered]


def _listing(counts: list[LanguageCount]) -> str:
    """``Go (3, 1 too large), Python (1, type stub)``: per language, most files first, with
    the reasons files were left out (how many, when not all of them)."""
    by_language: dict[str, list[LanguageCount]] = {}
    for c in counts:
        by_language.setdefault(c.language, []).append(c)
    totals = sorted(
        ((sum(c.files for c in group), language) for language, group in by_language.items()),
        key=lambda item: (-item[0], item[1]),
    )
    parts = []
    for total, language in totals[:_SHOWN]:
        reasons = [c for c in by_language[language] if c.reason]
        if len(reasons) == 1 and reasons[0].files == total:
            why = f", {reasons[0].reason}"
        else:
            why = "".join(f", {c.files} {c.reason}" for c in reasons)
        parts.append(f"{display_language(language)} ({total}{why})")
    rest = totals[_SHOWN:]
    if rest:
        more = sum(total for total, _ in rest)
        parts.append(f"{len(rest)} more language{'s' if len(rest) != 1 else ''} ({more})")
    return ", ".join(parts)


def _describe(tool: str, files: int, analysed: list[LanguageCount], skipped_files: int,
              skipped: list[LanguageCount]) -> str:  # fmt: skip
    if not files:
        head = "no files"
    elif len(analysed) == 1:
        head = f"{files} {display_language(analysed[0].language)} file{'s' if files != 1 else ''}"
    else:
        head = f"{files} files in {_listing(analysed)}"
    tail = (
        f"skipped {skipped_files} file{'s' if skipped_files != 1 else ''} in {_listing(skipped)}"
        if skipped_files
        else "nothing skipped"
    )
    return f"{tool}: {head}; {tail}"


_REASON_END = re.compile(r" \(|:")


def language_coverage(
    tool: str,
    files: Iterable[SourceFile],
    analysed: Collection[str],
    *,
    excluded: Mapping[str, str] | None = None,
    unscanned: Iterable[SkippedFile] = (),
    count_all: bool = False,
) -> ToolCoverage:
    """The coverage of ``tool`` over ``files`` (the candidates: the repository's text files,
    or the ones the run was restricted to), of which the paths in ``analysed`` were analysed.

    Every other candidate in :data:`CODE_LANGUAGES` (every other candidate at all with
    ``count_all``) is counted as skipped, with its reason from ``excluded`` (path -> why the
    analyser left it out), or none when the tool does not read its language. ``unscanned``
    are files the repository scan itself left out (too large, unreadable…): those of a code
    language (all of them with ``count_all``) are skipped too, with the scan's reason.
    """
    from agentrt.context.sources import language_of  # deferred: keeps `import agents` light

    excluded = excluded or {}
    done: Counter[tuple[str, str | None]] = Counter()
    left: Counter[tuple[str, str | None]] = Counter()
    for source_file in files:
        if source_file.path in analysed:
            done[source_file.language, None] += 1
        elif count_all or source_file.language in CODE_LANGUAGES:
            left[source_file.language, excluded.get(source_file.path)] += 1
    for skipped_file in unscanned:
        language = language_of(skipped_file.path)
        if count_all or language in CODE_LANGUAGES:
            # "too large (2.1 MB > 1.0 MB limit)" -> "too large": one entry per kind of reason
            left[language, _REASON_END.split(skipped_file.reason, 1)[0]] += 1
    analysed_counts, skipped_counts = _counts(done), _counts(left)
    n_done, n_left = sum(done.values()), sum(left.values())
    return ToolCoverage(
        tool=tool,
        files=n_done,
        analysed=analysed_counts,
        skipped_files=n_left,
        skipped=skipped_counts,
        line=_describe(tool, n_done, analysed_counts, n_left, skipped_counts),
    )


def coverage_markdown(coverage: Iterable[ToolCoverage]) -> str:
    """The coverage lines as a markdown list under a "Coverage" label ("" if there are none)."""
    lines = [f"- {c.line}" for c in coverage]
    if not lines:
        return ""
    return "\n".join(["**Coverage** (files read, and code files left out):", "", *lines])
