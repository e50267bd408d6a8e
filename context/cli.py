"""``agentrt context``: select context for a task, and inspect what a repository offers.

Exit codes: 0 success, 1 failure, 2 bad input (one line on stderr, no traceback).
This module must stay light: it never imports prefect.
"""

from __future__ import annotations

import json
import sys
from collections import Counter
from pathlib import Path
from typing import Annotated, Any

import typer

app = typer.Typer(
    name="context",
    help="Select the most useful repository context for a task within a token budget.",
    no_args_is_help=True,
    add_completion=False,
)

EXIT_FAILURE = 1
EXIT_BAD_INPUT = 2


def _fail(message: str, code: int) -> typer.Exit:
    typer.echo(f"error: {message}", err=True)
    return typer.Exit(code)


def _repo_dir(repo: Path) -> Path:
    if not repo.exists():
        raise _fail(f"--repo {repo}: no such directory", EXIT_BAD_INPUT)
    if not repo.is_dir():
        raise _fail(f"--repo {repo}: not a directory (pass the repository root)", EXIT_BAD_INPUT)
    return repo


@app.command("select")
def select_command(
    repo: Annotated[Path, typer.Option("--repo", help="Repository root.")],
    budget: Annotated[int, typer.Option("--budget", help="Token budget (hard limit).")],
    query: Annotated[str | None, typer.Option("--query", help="The task or issue text.")] = None,
    query_file: Annotated[
        Path | None,
        typer.Option("--query-file", help="Read the query from this file ('-': stdin)."),
    ] = None,
    output_format: Annotated[
        str, typer.Option("--format", help="Output format: json or markdown.")
    ] = "markdown",
    encoding: Annotated[
        str | None, typer.Option("--encoding", help="tiktoken encoding (default cl100k_base).")
    ] = None,
) -> None:
    """Print the context selected for a query: Markdown, or JSON for tools."""
    _repo_dir(repo)
    if (query is None) == (query_file is None):
        raise _fail("give exactly one of --query TEXT or --query-file FILE", EXIT_BAD_INPUT)
    if budget <= 0:
        raise _fail(f"--budget must be a positive number of tokens, got {budget}", EXIT_BAD_INPUT)
    if output_format not in ("json", "markdown"):
        raise _fail(f"--format must be json or markdown, got {output_format!r}", EXIT_BAD_INPUT)
    if query_file is not None:
        try:
            query = sys.stdin.read() if str(query_file) == "-" else query_file.read_text()
        except (OSError, UnicodeDecodeError) as exc:
            raise _fail(f"--query-file {query_file}: {exc}", EXIT_BAD_INPUT) from None
    from agentrt.context.select import select
    from agentrt.context.sources import SourceError

    try:
        selection = select(repo, query or "", budget, encoding=encoding)
    except (SourceError, ValueError) as exc:
        raise _fail(str(exc), EXIT_BAD_INPUT) from None
    except Exception as exc:  # report, don't dump a traceback on the user
        raise _fail(f"selection failed: {type(exc).__name__}: {exc}", EXIT_FAILURE) from None
    if selection.message:  # stderr: the JSON shape stays as documented
        typer.echo(f"warning: {selection.message}", err=True)
    if output_format == "json":
        typer.echo(json.dumps(selection.to_json(), ensure_ascii=False))
    else:
        typer.echo(selection.to_markdown(), nl=False)


@app.command("stats")
def stats_command(
    repo: Annotated[Path, typer.Option("--repo", help="Repository root.")],
    as_json: Annotated[bool, typer.Option("--json", help="Machine-readable output.")] = False,
    encoding: Annotated[
        str | None, typer.Option("--encoding", help="tiktoken encoding (default cl100k_base).")
    ] = None,
) -> None:
    """Files, tokens, skipped files (with reasons), and index and cache state of a repository."""
    _repo_dir(repo)
    try:
        report = repository_stats(repo, encoding=encoding)
    except ValueError as exc:
        raise _fail(str(exc), EXIT_BAD_INPUT) from None
    except Exception as exc:
        raise _fail(f"stats failed: {type(exc).__name__}: {exc}", EXIT_FAILURE) from None
    if as_json:
        typer.echo(json.dumps(report, ensure_ascii=False))
        return
    from rich.console import Console
    from rich.table import Table

    console = Console()
    console.print(
        f"[bold]{report['repo']}[/]: {report['files']} files, {report['tokens']:,} tokens "
        f"({report['encoding']}), {len(report['skipped'])} skipped"
    )
    languages = Table("language", "files", "tokens", title="By language")
    for row in report["languages"]:
        languages.add_row(row["language"], str(row["files"]), f"{row['tokens']:,}")
    console.print(languages)
    if report["skipped"]:
        reasons = Counter(s["reason"] for s in report["skipped"])
        skipped = Table("reason", "files", title="Skipped")
        for reason, n in reasons.most_common():
            skipped.add_row(reason, str(n))
        console.print(skipped)
    index = report["index"]
    console.print(
        f"Index: {index['source']} ({index['parsed']} files parsed, {index['cached']} from "
        f"cache, {index['seconds']:.2f} s); store {report['store']['directory']}"
    )


def repository_stats(repo: Path, *, encoding: str | None = None) -> dict[str, Any]:
    """What ``stats`` reports, as a JSON-ready dict (also builds or refreshes the index)."""
    import time

    from agentrt.context.relevance import IndexStats, build_index
    from agentrt.context.select import DEFAULT_EXCLUDES
    from agentrt.context.sources import iter_text_files, scan_repository
    from agentrt.context.store import ContextStore, default_store_dir
    from agentrt.context.tokens import TokenCounter, default_encoding_name

    encoding = encoding or default_encoding_name()
    store = ContextStore(default_store_dir())
    counter = TokenCounter(encoding, store)
    scan = scan_repository(repo, extra_ignores=DEFAULT_EXCLUDES)
    started = time.perf_counter()
    index_stats = IndexStats(skipped=len(scan.skipped))
    build_index(scan.root, scan, store, index_stats)
    files: list[tuple[str, str]] = []
    texts: list[str] = []
    for source, text in iter_text_files(scan):
        files.append((source.path, source.language))
        texts.append(text)
    tokens = counter.count_batch(texts)
    by_language: dict[str, list[int]] = {}
    for (_, language), n in zip(files, tokens, strict=True):
        entry = by_language.setdefault(language or "other", [0, 0])
        entry[0] += 1
        entry[1] += n
    store_stats = store.stats()
    return {
        "repo": str(scan.root),
        "encoding": encoding,
        "files": len(files),
        "tokens": sum(tokens),
        "languages": [
            {"language": lang, "files": v[0], "tokens": v[1]}
            for lang, v in sorted(by_language.items(), key=lambda kv: -kv[1][1])
        ],
        "skipped": [{"path": s.path, "reason": s.reason} for s in scan.skipped],
        "index": {
            "source": index_stats.index_source,
            "parsed": index_stats.parsed,
            "cached": index_stats.records_cached + index_stats.unchanged,
            "seconds": round(time.perf_counter() - started, 3),
        },
        "store": {"directory": str(store.directory), **_jsonable(store_stats)},
    }


def _jsonable(stats: object) -> dict[str, Any]:
    from dataclasses import asdict, is_dataclass

    if is_dataclass(stats) and not isinstance(stats, type):
        return {k: v for k, v in asdict(stats).items() if isinstance(v, int | float | str)}
    return {}


def main() -> None:
    app()


if __name__ == "__main__":
    main()
