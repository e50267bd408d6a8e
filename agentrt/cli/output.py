"""What every ``agentrt`` command shares: exit codes, error messages and JSON output.

Exit codes: 0 ok; 1 the work failed (a run failed, nothing to show, a server not reachable);
2 bad input (invalid manifest, unknown agent or workflow, bad option). Errors are one line on
stderr, ``error: …``, never a traceback. Importing this module costs nothing (no typer, no
rich): the bare ``agentrt hook`` call must stay fast.
"""

from __future__ import annotations

import json
import sys
from collections.abc import Iterable
from enum import IntEnum
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from collections.abc import Callable, Collection, Sequence

    import typer
    from rich.console import Console
    from rich.table import Table

__all__ = ["ExitCode", "fail", "print_json", "read_text_file", "tables_to_fit"]


class ExitCode(IntEnum):
    """The exit codes of every ``agentrt`` command."""

    OK = 0
    FAILURE = 1
    BAD_INPUT = 2


def fail(message: str | Iterable[object], code: ExitCode) -> typer.Exit:
    """Report an error on stderr and return the :class:`typer.Exit` to raise
    (``raise fail(...) from None``).

    A string is printed as ``error: message`` (``error:`` in red on a terminal); a list of
    problems that already say where they are (``file:line: field: message``) one per line.
    """
    import typer

    if isinstance(message, str):
        typer.echo(f"{typer.style('error:', fg='red')} {message}", err=True)
    else:
        for line in message:
            typer.echo(str(line), err=True)
    return typer.Exit(code)


def print_json(data: Any, *, indent: int | None = 2, ensure_ascii: bool = True) -> None:
    """Write ``data`` as JSON to stdout, one document followed by a newline."""
    sys.stdout.write(json.dumps(data, indent=indent, ensure_ascii=ensure_ascii, default=str) + "\n")


def read_text_file(option: str, path: str) -> str:
    """The text of the file a command-line value names (``-``: standard input); a file that
    cannot be read is bad input (one line, exit 2, through :func:`fail`). ``option`` names
    it in the message (``--diff``, or ``--param issue=`` written against the value)."""
    from pathlib import Path

    where = f"{option}{path}" if option.endswith("=") else f"{option} {path}"
    try:
        return sys.stdin.read() if path == "-" else Path(path).read_text(encoding="utf-8")
    except FileNotFoundError:
        raise fail(f"{where}: no such file", ExitCode.BAD_INPUT) from None
    except IsADirectoryError:
        raise fail(f"{where}: a directory, not a file", ExitCode.BAD_INPUT) from None
    except (OSError, UnicodeDecodeError) as exc:
        raise fail(f"{where}: {exc}", ExitCode.BAD_INPUT) from None


#: The columns a wrapped prose column (a description) needs to read well in a table.
PROSE_WIDTH = 30


def tables_to_fit(
    console: Console,
    make: Callable[[Sequence[str], int], Table],
    columns: Sequence[str],
    groups: Sequence[Sequence[str]],
    prose: Collection[str] = (),
) -> list[Table]:
    """One table of ``columns`` when the terminal is wide enough for all of it, else one per
    group of them (each led by the first column): a table wider than the terminal loses the
    ends of its words and numbers (``succ…``, ``1…``), which a reader cannot get back.

    ``make(columns, part)`` builds a table of those columns; ``part`` is -1 for the whole
    table, else the group's position (the first may carry the title). ``prose``: columns
    that wrap (descriptions), which need :data:`PROSE_WIDTH` columns, not their longest line.
    """
    whole = make(columns, -1)
    unbounded = console.options.update_width(10_000)  # its natural width, not the terminal's
    need = console.measure(whole, options=unbounded).maximum
    wrapping = [c for c in columns if c in prose]
    if wrapping:
        rest = make([c for c in columns if c not in prose], -1)
        wrapped = console.measure(rest, options=unbounded).maximum
        need = min(need, wrapped + (PROSE_WIDTH + 3) * len(wrapping))  # + padding and rule
    if need <= console.width:
        return [whole]
    return [make([columns[0], *group], part) for part, group in enumerate(groups)]
