"""The root ``agentrt`` app: every command group mounted, each from its own module.

A command module that cannot be imported is an error (:class:`CommandImportError`), not a
command that silently goes missing.
"""

from __future__ import annotations

import importlib
from types import ModuleType

import typer

from agentrt.errors import AgentrtError

__all__ = ["COMMAND_GROUPS", "CommandImportError", "app", "build_app"]

#: (module, name) of the command groups under ``agentrt``; each module has a typer ``app``.
COMMAND_GROUPS: tuple[tuple[str, str], ...] = (
    ("agentrt.cli.context", "context"),
    ("agentrt.cli.hook", "hook"),
    ("agentrt.cli.metrics", "metrics"),
    ("agentrt.cli.events", "events"),
    ("agentrt.cli.server", "server"),
)


class CommandImportError(AgentrtError, ImportError):
    """A module of the ``agentrt`` command line could not be imported."""

    retryable = False
    hint = "reinstall agentrt (pip install -e .) or fix the import error shown"


def _load(module: str, command: str) -> ModuleType:
    try:
        return importlib.import_module(module)
    except ImportError as exc:
        raise CommandImportError(
            f"cannot load `agentrt {command}` ({module}): {type(exc).__name__}: {exc}"
        ) from exc


def build_app() -> typer.Typer:
    """The ``agentrt`` typer app with every command; raises CommandImportError."""
    app = typer.Typer(
        name="agentrt",
        help="Agent runtime for context-limited LLM software-engineering work, built on Prefect.",
        no_args_is_help=True,
        add_completion=False,
        pretty_exceptions_enable=False,
    )
    _load("agentrt.cli.runtime", "run").register(app)
    for module, name in COMMAND_GROUPS:
        app.add_typer(_load(module, name).app, name=name)
    return app


app = build_app()
