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
    import typer

__all__ = ["ExitCode", "fail", "print_json", "read_text_file"]


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
