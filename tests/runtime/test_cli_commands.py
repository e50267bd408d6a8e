"""The ``agentrt`` command groups: a command module that fails to import is an error."""

from __future__ import annotations

import sys

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
