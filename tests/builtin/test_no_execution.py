"""Repository content is data: no analyser imports or runs any of it."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from agentrt.agents.builtin import architecture, code_review, documentation, performance, security

from .conftest import RepoFactory


def _bomb(marker: Path) -> str:
    return (
        f"import pathlib\npathlib.Path({str(marker)!r}).write_text(__name__)\nraise SystemExit(3)\n"
    )


def test_analysers_never_import_repository_code(make_repo: RepoFactory, tmp_path: Path) -> None:
    marker = tmp_path / "imported.txt"
    bomb = _bomb(marker)
    # Named like modules that the analysers and their tools import themselves, so a tool that
    # put the repository on sys.path (as `python -m` does with its working directory) would
    # run them.
    root = make_repo(
        {
            "json.py": bomb,
            "logging.py": bomb,
            "ast.py": bomb,
            "yaml.py": bomb,
            "sitecustomize.py": bomb,
            "setup.py": bomb,
            "pkg/__init__.py": bomb,
            "pkg/__main__.py": bomb,
            "conftest.py": bomb,
        }
    )
    # The bombs work: anything that imports from the repository sets them off.
    control = subprocess.run([sys.executable, "-c", "import json"], cwd=root, check=False)
    assert control.returncode == 3 and marker.read_text() == "json"
    marker.unlink()

    repo = str(root)
    outputs = [
        architecture.run(architecture.Input(repo=repo)),
        code_review.run(code_review.Input(repo=repo)),
        security.run(security.Input(repo=repo, include_tests=True)),
        performance.run(performance.Input(repo=repo)),
        documentation.run(documentation.Input(repo=repo, include_tests=True)),
    ]
    assert not marker.exists()
    # documentation leaves out setup.py, conftest.py and __main__.py: they are not API.
    assert [out.files_analysed for out in outputs] == [9, 9, 9, 9, 6]
    # The analysis did happen, from the syntax tree.
    arch = outputs[0]
    assert isinstance(arch, architecture.Output)
    assert {e.kind for e in arch.entry_points} == {"main_module"}
