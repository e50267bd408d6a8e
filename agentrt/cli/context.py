"""``agentrt context``: select context for a task, and inspect what a repository offers.

Exit codes (:class:`agentrt.cli.output.ExitCode`): 0 success, 1 failure, 2 bad input (one line
on stderr, no traceback). This module must stay light: it never imports prefect.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer

from agentrt.cli.output import ExitCode, fail, print_json, read_text_file, tables_to_fit

if TYPE_CHECKING:
    from rich.console import Console
    from rich.table import Table

app = typer.Typer(
    name="context",
    help="Select the most useful repository context for a task within a token budget.",
    no_args_is_help=True,
    add_completion=False,
)


def _repo_dir(repo: Path) -> Path:
    if not repo.exists():
        raise fail(f"--repo {repo}: no such directory", ExitCode.BAD_INPUT)
    if not repo.is_dir():
        raise fail(f"--repo {repo}: not a directory (pass the repository root)", ExitCode.BAD_INPUT)
    return repo


def _check_budget_and_format(budget: int, output_format: str) -> None:
    if budget <= 0:
        raise fail(
            f"--budget must be a positive number of tokens, got {budget}", ExitCode.BAD_INPUT
        )
    if output_format not in ("json", "markdown"):
        raise fail(f"--format must be json or markdown, got {output_format!r}", ExitCode.BAD_INPUT)


def _print_selection(make: Callable[[], Any], what: str, output_format: str) -> None:
    """Run a selection (``select`` or ``select_impact``) and print it in ``output_format``."""
    from agentrt.context.sources import SourceError

    try:
        selection = make()
    except (SourceError, ValueError) as exc:  # ChangeError is a ValueError
        raise fail(str(exc), ExitCode.BAD_INPUT) from None
    except Exception as exc:  # report, don't dump a traceback on the user
        raise fail(f"{what} failed: {type(exc).__name__}: {exc}", ExitCode.FAILURE) from None
    if selection.message:  # stderr: the JSON shape stays as documented
        typer.echo(f"warning: {selection.message}", err=True)
    if output_format == "json":
        print_json(selection.to_json(), indent=None, ensure_ascii=False)
    else:
        typer.echo(selection.to_markdown(), nl=False)


#: Options the context commands share.
Budget = Annotated[int, typer.Option("--budget", help="Token budget (hard limit).")]
Format = Annotated[str, typer.Option("--format", help="Output format: json or markdown.")]
Encoding = Annotated[
    str | None, typer.Option("--encoding", help="tiktoken encoding (default cl100k_base).")
]


@app.command("select")
def select_command(
    repo: Annotated[Path, typer.Option("--repo", help="Repository root.")],
    budget: Budget,
    query: Annotated[str | None, typer.Option("--query", help="The task or issue text.")] = None,
    query_file: Annotated[
        Path | None,
        typer.Option("--query-file", help="Read the query from this file ('-': stdin)."),
    ] = None,
    output_format: Format = "markdown",
    encoding: Encoding = None,
    history: Annotated[
        bool,
        typer.Option(
            "--history/--no-history",
            help="Rank up files that past commits changed together with the best ones "
            "(read from the repository's git log).",
        ),
    ] = True,
) -> None:
    """Print the context selected for a query: Markdown, or JSON for tools."""
    _repo_dir(repo)
    if (query is None) == (query_file is None):
        raise fail("give exactly one of --query TEXT or --query-file FILE", ExitCode.BAD_INPUT)
    _check_budget_and_format(budget, output_format)
    if query_file is not None:
        query = read_text_file("--query-file", str(query_file))
    from agentrt.context.select import select

    _print_selection(
        lambda: select(repo, query or "", budget, encoding=encoding, history=history),
        "selection",
        output_format,
    )


@app.command("impact")
def impact_command(
    repo: Annotated[Path, typer.Option("--repo", help="Repository root.")],
    budget: Budget,
    since: Annotated[
        str | None,
        typer.Option("--since", help="Git revision: the change is the working tree against it."),
    ] = None,
    diff_file: Annotated[
        Path | None,
        typer.Option("--diff", help="A unified diff of the change, in a file ('-': stdin)."),
    ] = None,
    output_format: Format = "markdown",
    encoding: Encoding = None,
    history: Annotated[
        bool,
        typer.Option(
            "--history/--no-history",
            help="Offer the files that past commits changed together with the changed files "
            "(read from the repository's git log).",
        ),
    ] = True,
) -> None:
    """Print what a reviewer of a change must see, each item with why it is there.

    The changed hunks and their units, then callers, tests, importers, callees
    and co-changed files."""
    _repo_dir(repo)
    if (since is None) == (diff_file is None):
        raise fail(
            "give exactly one of --since REV or --diff FILE ('-': stdin)", ExitCode.BAD_INPUT
        )
    _check_budget_and_format(budget, output_format)
    diff = read_text_file("--diff", str(diff_file)) if diff_file is not None else None
    from agentrt.context.impact import select_impact

    _print_selection(
        lambda: select_impact(
            repo, budget, since=since, diff=diff, encoding=encoding, history=history
        ),
        "impact",
        output_format,
    )


@app.command("stats")
def stats_command(
    repo: Annotated[Path, typer.Option("--repo", help="Repository root.")],
    as_json: Annotated[bool, typer.Option("--json", help="Machine-readable output.")] = False,
    encoding: Encoding = None,
) -> None:
    """Files, tokens and code units per language, and what agentrt understands of each.

    Per language its structure, skeleton and graph; skipped files (with their
    reasons), index and cache state."""
    _repo_dir(repo)
    from agentrt.context.stats import repository_stats

    try:
        report = repository_stats(repo, encoding=encoding)
    except ValueError as exc:
        raise fail(str(exc), ExitCode.BAD_INPUT) from None
    except Exception as exc:
        raise fail(f"stats failed: {type(exc).__name__}: {exc}", ExitCode.FAILURE) from None
    if as_json:
        print_json(report, indent=None, ensure_ascii=False)
        return
    from rich.console import Console

    console = Console()
    console.print(
        f"[bold]{report['repo']}[/]: {report['files']} files, {report['tokens']:,} tokens "
        f"({report['encoding']}), {len(report['skipped'])} skipped"
    )
    for table in _language_tables(report["languages"], console):
        console.print(table)
    if report["skipped"]:
        reasons = Counter(s["reason"] for s in report["skipped"])
        from rich.table import Table

        skipped = Table("reason", "files", title="Skipped")
        for reason, n in reasons.most_common():
            skipped.add_row(reason, str(n))
        console.print(skipped)
    index = report["index"]
    console.print(
        f"Index: {index['source']} ({index['parsed']} files parsed, {index['cached']} from "
        f"cache, {index['seconds']:.2f} s); store {report['store']['directory']}"
    )


def _language_tables(rows: list[dict[str, Any]], console: Console) -> list[Table]:
    """The per-language table of ``stats``, or two (sizes, then what agentrt understands)
    where one is wider than the terminal."""
    from rich.table import Table

    def table(columns: Sequence[str], part: int) -> Table:
        title = ("By language: what agentrt understands", "By language", "What agentrt understands")
        out = Table(*columns, title=title[part + 1])
        for column in out.columns:  # rich narrows wrapping columns first: keep words whole
            column.no_wrap = column.header != "imports resolved"
        for row in rows:
            cells = {
                "language": row["language"],
                "files": f"{row['files']:,}",
                "tokens": f"{row['tokens']:,}",
                "units": f"{row['units']:,}",
                "structure": row["structure"],
                "skeleton": row["skeleton"],
                "graph": row["graph"],
                "imports resolved": (
                    f"{row['imports_resolved']:,} of {row['imports']:,}" if row["imports"] else ""
                ),
            }
            out.add_row(*(cells[c] for c in columns))
        return out

    sizes = ("files", "tokens", "units")
    understood = ("structure", "skeleton", "graph", "imports resolved")
    return tables_to_fit(console, table, ("language", *sizes, *understood), (sizes, understood))


def main() -> None:
    app()


if __name__ == "__main__":
    main()
