"""The ``agentrt`` command line: one module per command group, one way to fail and print.

* :mod:`agentrt.cli.output`: exit codes (:class:`~agentrt.cli.output.ExitCode`), ``fail``,
  ``print_json``;
* :mod:`agentrt.cli.root`: the root typer app, every group mounted;
* :mod:`agentrt.cli.runtime`: ``run``, ``workflows``, ``agents``, ``schema``;
* :mod:`agentrt.cli.context`, :mod:`agentrt.cli.metrics`, :mod:`agentrt.cli.events`,
  :mod:`agentrt.cli.hook`: ``agentrt context``, ``metrics``, ``events``, ``hook``.

Claude Code runs ``agentrt hook`` before every subagent starts, so :func:`main` serves that one
call without importing typer or the other commands (or Prefect). Importing this package is
cheap: :data:`app` is built on first access.
"""

from __future__ import annotations

import sys
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import typer

    app: typer.Typer  # built on first access, see __getattr__

__all__ = ["app", "main"]


def main() -> None:
    """The ``agentrt`` console script."""
    if sys.argv[1:] == ["hook"]:
        from agentrt.cli.hook import main as hook_main

        hook_main([])
        return
    from agentrt.cli.output import ExitCode

    try:
        from agentrt.cli.root import app
    except ImportError as exc:  # a command module is broken: say so, never drop the command
        sys.stderr.write(f"agentrt: error: {exc}\n")
        sys.exit(ExitCode.FAILURE)
    try:
        app()
    except KeyboardInterrupt:
        sys.stderr.write("interrupted\n")
        sys.exit(130)


def __getattr__(name: str) -> Any:
    """``app`` (the root typer app) is built on first access."""
    if name == "app":
        from agentrt.cli.root import app

        return app
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
