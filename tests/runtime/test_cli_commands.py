"""The ``agentrt`` command groups: a command module that fails to import is an error."""

from __future__ import annotations

import inspect
import sys
from typing import Any

import pytest

import agentrt.cli
from agentrt.cli.root import COMMAND_GROUPS, CommandImportError


def test_a_command_module_that_fails_to_import_is_an_error(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    # None in sys.modules makes `import agentrt.cli.metrics` raise ImportError; the root app
    # is rebuilt from scratch (monkeypatch restores both modules afterwards).
    monkeypatch.setitem(sys.modules, "agentrt.cli.metrics", None)
    monkeypatch.delitem(sys.modules, "agentrt.cli.root")
    monkeypatch.setattr(sys, "argv", ["agentrt", "agents", "list"])
    with pytest.raises(SystemExit) as exit_info:
        agentrt.cli.main()
    assert exit_info.value.code == 1
    err = capsys.readouterr().err
    assert err.startswith("agentrt: error: cannot load `agentrt metrics` (agentrt.cli.metrics)")
    assert "Traceback" not in err
    # The root module is built afresh, so its CommandImportError is a class of its own.
    with pytest.raises(ImportError, match=r"agentrt\.cli\.metrics") as raised:
        agentrt.cli.app  # noqa: B018 - the lazy attribute builds the app
    assert type(raised.value).__name__ == CommandImportError.__name__


def test_every_command_group_is_mounted() -> None:
    import typer.main

    names = set(typer.main.get_command(agentrt.cli.app).commands)
    assert {name for _, name in COMMAND_GROUPS} | {"run", "schema", "agents", "workflows"} == names


def _commands() -> list[tuple[str, Any]]:
    import typer.main

    from agentrt.cli.root import build_app

    found: list[tuple[str, Any]] = []

    def walk(command: Any, path: str) -> None:
        found.append((path, command))
        for name, sub in getattr(command, "commands", {}).items():
            walk(sub, f"{path} {name}")

    walk(typer.main.get_command(build_app()), "agentrt")
    return found


def test_every_help_text_reads_whole_in_80_columns() -> None:
    # Typer keeps a help text's line breaks as written, except in the first paragraph of a
    # command's own page (but not in its group's list of commands): a first paragraph over
    # two lines shows a break mid-sentence in the list, and a later line longer than the
    # 78 columns inside an 80-column terminal wraps into a ragged stub ("co-changed\nfiles.").
    commands = _commands()
    assert len(commands) > 20
    for path, command in commands:
        text = inspect.cleandoc(command.help or "").partition("\f")[0]
        assert text, f"`{path}` has no help"
        first, *rest = text.split("\n\n")
        assert "\n" not in first, f"`{path}`: its summary spans lines: {first!r}"
        for line in (line for paragraph in rest for line in paragraph.splitlines()):
            assert len(line) <= 78, f"`{path}`: a help line of {len(line)} columns: {line!r}"
